// DistributedDataParallel: data parallelism for any Module. At construction it checks that every rank of its
// group holds the same parameter and buffer names, shapes and dtypes (a braid::Error on every rank naming the first
// difference, before any weight is written), then broadcasts the parameters and buffers from rank 0 of its group.
// During backward, gradients are packed into buckets (default 25 MiB, in reverse registration order, so the last
// layers' gradients, which are ready first, fill the first bucket) and each bucket's all-reduce starts from the
// post-accumulate-grad hook as soon as its last gradient is ready, while backward goes on with the earlier layers.
// When backward ends, .grad holds the averaged gradients (a view of the bucket, or a copy:
// DDPOptions::gradient_as_bucket_view), so the optimizer's step() sees them. no_sync() skips the all-reduce
// (gradients accumulate locally).
//
// Every rank must run the same number of synchronised backward passes ("steps"). With uneven inputs, wrap the loop
// in a Join (`auto join = ddp.join();`, see join.h): ranks that run out of batches shadow the others' all-reduces
// with zeros until all are done, and then every rank takes the model of a rank that ran the most steps. Without
// one, a rank whose DistributedDataParallel is destroyed while the others still step makes every rank throw a
// braid::Error naming each rank's step count ("rank 0 ran 12 steps, rank 1 ran 10"), from the others' backward and
// from this destructor.
#pragma once

#include <memory>
#include <vector>

#include "braid/dist/join.h"
#include "braid/dist/process_group.h"
#include "braid/nn/module.h"

namespace braid::dist {

struct DDPOptions {
  size_t bucket_cap_bytes = size_t(25) << 20;
  bool broadcast_buffers = true;
  // A parameter that received no gradient in a backward pass is an error (naming it) unless this is true, in
  // which case its slot in the bucket is all-reduced as zeros.
  bool find_unused_parameters = false;
  // Start each bucket's all-reduce during backward (true) or all of them after it (false: for measuring overlap).
  bool overlap = true;
  // After a synchronised backward, each parameter's .grad is a view of its slot in the bucket (as PyTorch's
  // gradient_as_bucket_view=True) instead of a copy of it: no copy back, and one gradient-sized buffer less to
  // pass through the caches in the optimizer's step. The .grad tensors then share storage with the bucket and are
  // overwritten by the next synchronised backward; zero_grad(set_to_none=false) and accumulation work in place.
  // False copies the averages into the existing .grad tensors.
  bool gradient_as_bucket_view = true;
};

class DistributedDataParallel : public Joinable {
 public:
  // `group`: the data-parallel group (the world by default). Everything goes over it, the initial broadcast from
  // its rank 0 included; a null group or a non-member group (a rank outside the new_group list) is an error.
  explicit DistributedDataParallel(nn::Module& module, std::shared_ptr<ProcessGroup> group = world(),
                                   DDPOptions options = {});
  // Over a group of two or more ranks, and unless an exception is unwinding or dist is finalized, tells the other
  // ranks this one is done (one all-reduce of the first bucket's size): it throws the step-count error above when
  // the others are still stepping.
  ~DistributedDataParallel() noexcept(false) override;
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  nn::Module& module() { return module_; }
  const DDPOptions& options() const { return options_; }
  // Number of buckets and the parameter indices (into module().parameters()) each holds.
  const std::vector<std::vector<size_t>>& bucket_assignment() const;

  // While the returned guard lives, backward passes do not all-reduce; gradients accumulate in .grad.
  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& ddp);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& ddp_;
    bool prev_;
  };
  [[nodiscard]] NoSync no_sync() { return NoSync(*this); }

  // A Join over this model alone (PyTorch's ddp.join()): `auto join = ddp.join(); for (...) { ... }`.
  [[nodiscard]] Join join(JoinOptions options = {}) { return Join({this}, options); }
  // Synchronised backward passes this rank has run (each one all-reduce of every bucket).
  int64_t steps() const;

  std::unique_ptr<JoinHook> join_hook(const JoinOptions& options) override;
  std::shared_ptr<ProcessGroup> join_process_group() const override { return group_; }
  Device join_device() const override;

  struct State;

 private:
  nn::Module& module_;
  std::shared_ptr<ProcessGroup> group_;
  DDPOptions options_;
  std::shared_ptr<State> state_;
};

}  // namespace braid::dist
