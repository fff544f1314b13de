// A pipeline schedule as data: for each rank of a pipeline group, the list of actions it runs in order. The model
// is cut into num_stages() = num_ranks * stages_per_rank stages; stage s lives on rank s % num_ranks (round-robin,
// as Megatron-LM's and torch.distributed.pipelining's interleaving). A schedule holds no tensors and no group: the
// validator, the simulator and the executor all read the same lists.
//
// Text form of one action, as torch.distributed.pipelining writes it: <stage><code><microbatch>, where the code is
//   F       forward                         I       backward for the input (B of zero-bubble schedules)
//   W       backward for the weights        B       full backward (input and weights)
//   SEND_F  send this stage's output        RECV_F  receive this stage's input (from stage - 1)
//   SEND_B  send this stage's input grad    RECV_B  receive this stage's output grad (from stage + 1)
// e.g. "0F3", "1I2", "1W2", "0SEND_F3", "1RECV_F3". The stage of a send or receive is always the stage on the rank
// that runs it: SEND_F of stage s meets RECV_F of stage s + 1, SEND_B of stage s meets RECV_B of stage s - 1.
//
// CSV form: one line per rank (line 1 is rank 0), one action per cell, cells separated by commas; blank cells are
// skipped. Reading infers num_ranks from the lines, stages_per_rank and num_microbatches from the largest stage and
// micro-batch named.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace braid::dist {

enum class ActionKind {
  Forward,
  BackwardInput,
  BackwardWeight,
  FullBackward,
  SendActivation,
  RecvActivation,
  SendGradient,
  RecvGradient,
};

struct Action {
  ActionKind kind = ActionKind::Forward;
  int stage = 0;       // the global (virtual) stage index
  int microbatch = 0;  // 0 .. num_microbatches - 1
  bool operator==(const Action&) const = default;
};

// True for F, I, W and B: the actions that run the model rather than move tensors.
bool is_compute(ActionKind kind);

struct Schedule {
  int num_ranks = 1;
  int stages_per_rank = 1;  // v: virtual stages per rank
  int num_microbatches = 1;
  std::vector<std::vector<Action>> actions;  // actions[rank], run in order

  int num_stages() const { return num_ranks * stages_per_rank; }
  int rank_of_stage(int stage) const { return stage % num_ranks; }
  bool operator==(const Schedule&) const = default;
};

std::string to_string(ActionKind kind);
std::string to_string(const Action& action);
std::ostream& operator<<(std::ostream& os, const Action& action);
// Parses one action in the text form above; throws braid::Error naming the text and the expected grammar.
Action parse_action(std::string_view text);

std::string to_csv(const Schedule& schedule);
// Throws braid::Error naming the line, the column and the cell that does not parse.
Schedule from_csv(std::string_view text);
void write_csv(const Schedule& schedule, const std::string& path);
Schedule read_csv(const std::string& path);

// The rank-by-rank listing "rank 0: 0F0 0SEND_F0 ...", one line per rank, for messages and logs.
std::string to_string(const Schedule& schedule);

}  // namespace braid::dist
