// The GPT example's command line: every flag parsed and checked (an error names the flag, the value and what was
// expected), then compared across the ranks of mpirun, since a rank with other sizes or another seed would train
// another model or hang in a collective of another shape.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gpt_model.h"

namespace gpt {

struct RunConfig {
  GPTConfig model;
  int64_t steps = 0, batch_size = 0, warmup = 0;
  double lr = 0, min_lr = 0, weight_decay = 0, grad_clip = 0, beta2 = 0;
  uint64_t seed = 0;
  int64_t eval_every = 0, eval_batches = 0, print_every = 0;
  int64_t tp = 1;
  std::string prompt;
  int64_t sample_len = 0;
  double temperature = 0;
  std::string device, data;
  int64_t threads = 0;
  bool stop_on_nonfinite = false;
  int64_t nan_loss_at_step = 0;  // a test hook: this step's loss is made NaN
  // Every flag's name and its parsed value as text, in the order the help lists them (what the ranks compare).
  std::vector<std::pair<std::string, std::string>> flags;
};

// Parses argv and checks each value. Returns false (and rank 0 prints the help) for --help. Throws braid::Error
// naming the flag on a bad value, and cxxopts' own exception (naming the flag) for an unknown flag.
bool parse_run_config(int argc, char** argv, RunConfig& config);

// The checks between flags (sizes that must divide, --tp against the ranks mpirun started); after
// check_ranks_agree, so that every rank fails alike.
void check_run_config(const RunConfig& config);

// Every rank of the world calls this with its own outcome of parse_run_config (error empty when it succeeded).
// Throws, on every rank alike, when any rank failed (with that rank's message) or when the ranks disagree on a
// flag (naming it and each rank's value); with one process it rethrows the error, if any.
void check_ranks_agree(const RunConfig& config, const std::string& error);

}  // namespace gpt
