// Join: training with uneven inputs (PyTorch's torch.distributed.algorithms.Join). Ranks may run out of batches at
// different steps; a rank that is done "joins" and, until every rank is done, shadows the collectives the others
// still issue each step (DistributedDataParallel: its gradient all-reduces, with zeros), so nobody waits forever.
//
//   dist::DistributedDataParallel ddp(model);
//   {
//     dist::Join join({&ddp});  // or: auto join = ddp.join();
//     for (auto& batch : my_batches) {  // any number of batches on each rank
//       optimizer.zero_grad();
//       loss_fn(model.forward(batch.x), batch.y).backward();
//       optimizer.step();
//     }
//   }  // here each rank shadows the others' steps until all are done; then every rank holds the same model
//
// Each step, the joinables' first collective is preceded by one tiny all_gather that tells every rank which ranks
// still iterate (notify_join_context). A rank that leaves the loop enters the join loop when the Join is destroyed
// (or at finish()): it gathers with the others each step, runs each joinable's main_hook to match their
// collectives, and once no rank iterates, runs each post_hook (DDP: broadcast the final model from a last joiner).
// All joinables must use the same process group.
#pragma once

#include <memory>
#include <vector>

#include "braid/core/device.h"
#include "braid/dist/process_group.h"

namespace braid::dist {

struct JoinOptions {
  // False: the Join does nothing (no per-step gather, no join loop), as without it.
  bool enable = true;
  // True: as soon as one rank runs out of inputs, every rank throws a braid::Error (the joined one from the join
  // loop, the others from their next step's notify), instead of shadowing.
  bool throw_on_early_termination = false;
  // DistributedDataParallel: divide the summed gradients by the group's size (true, PyTorch's default: joined ranks
  // count as zero gradients) or by the number of ranks that still contributed this step (false).
  bool divide_by_initial_world_size = true;
};

// Which ranks of the joinables' group still iterate in this step: the outcome of one notify all_gather.
struct JoinRound {
  std::vector<int> active;  // group ranks, ascending; empty once every rank has joined
};

class JoinHook {
 public:
  virtual ~JoinHook() = default;
  // On a joined rank, once per step that other ranks still run: issue the collectives that step issues.
  virtual void main_hook(const JoinRound& /*round*/) {}
  // On every rank once all have joined; `is_last_joiner`: this rank iterated in the last step any rank ran.
  virtual void post_hook(bool /*is_last_joiner*/) {}
};

class Join;

// A class whose per-step collectives a Join can shadow (DistributedDataParallel is one).
class Joinable {
 public:
  // A joinable's destructor may throw (DistributedDataParallel: its step-count error).
  virtual ~Joinable() noexcept(false) = default;
  // The hook a Join runs for this joinable on a joined rank; called when the Join is constructed, on every rank.
  virtual std::unique_ptr<JoinHook> join_hook(const JoinOptions& options) = 0;
  virtual std::shared_ptr<ProcessGroup> join_process_group() const = 0;
  // Where the Join's small gather tensors live (the CPU for MPI, the joinable's GPU for NCCL).
  virtual Device join_device() const = 0;

 protected:
  Joinable() = default;
  Joinable(const Joinable&) = delete;
  Joinable& operator=(const Joinable&) = delete;
  // The Join this joinable is in (null outside one).
  Join* join_context() const { return join_context_; }

 private:
  friend class Join;
  Join* join_context_ = nullptr;
};

class Join {
 public:
  // Every joinable must be distinct, outside any other Join, and share one process group (the same ranks).
  explicit Join(std::vector<Joinable*> joinables, JoinOptions options = {});
  // Runs finish() unless it ran or an exception is unwinding through the scope (then the others are left to the
  // error or the timeout). It may throw what finish() throws.
  ~Join() noexcept(false);
  Join(const Join&) = delete;
  Join& operator=(const Join&) = delete;

  // This rank has no more inputs: shadow the others' steps until every rank is done, then run the post hooks.
  void finish();

  const JoinOptions& options() const { return options_; }

  // Called by a joinable once per step before its collectives: on the Join's first joinable it gathers which ranks
  // still iterate (throwing if some rank joined and throw_on_early_termination is set); the others get that step's
  // round. Null when the joinable is in no enabled Join: then every rank of its group takes part.
  static const JoinRound* notify_join_context(Joinable& joinable);

 private:
  JoinRound gather(bool active);
  void detach();

  std::vector<Joinable*> joinables_;
  std::vector<std::unique_ptr<JoinHook>> hooks_;
  JoinOptions options_;
  std::shared_ptr<ProcessGroup> group_;
  Device device_;
  JoinRound round_;
  bool finished_ = false;
  int uncaught_at_start_ = 0;
};

}  // namespace braid::dist
