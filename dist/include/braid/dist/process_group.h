// ProcessGroup: the one interface to communication between ranks. Every operation takes contiguous tensors
// (float32, float64 or int64), works in place where PyTorch's does, and returns a Work handle at once: the
// operation runs in the background (CPU tensors over MPI on the group's communication thread, CUDA tensors over
// NCCL on the group's own stream) and wait() blocks until it is done (over MPI, a collective that has not started
// yet runs on the waiting thread). The free functions at the end are the blocking forms. Operations of one group
// run in the order they were issued, and every rank of the group must issue the same collectives in the same order.
//
// Safety: with BRAID_DIST_DEBUG=1 each collective first checks, across the group, that every rank called the
// same operation with the same shape and dtype, and throws braid::Error on every rank naming the ranks and what
// each passed. wait() gives up after BRAID_DIST_TIMEOUT seconds (default 300) and aborts the job with a message
// naming the operation.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/tensor.h"

namespace braid::dist {

enum class ReduceOp { Sum, Avg, Max, Min };
// "sum", "avg", "max" or "min".
const char* reduce_op_name(ReduceOp op);

class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the operation finished; rethrows its error. Past the timeout it aborts the job.
  virtual void wait() = 0;
  virtual bool is_completed() = 0;
  // A short description, e.g. "all_reduce(sum, [1024] float32)".
  virtual std::string description() const = 0;
};
using WorkHandle = std::shared_ptr<Work>;

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;  // this process's rank within the group
  virtual int size() const = 0;
  // Global ranks of the members, in group-rank order.
  virtual const std::vector<int>& ranks() const = 0;

  virtual WorkHandle all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::Sum) = 0;
  virtual WorkHandle broadcast(const Tensor& tensor, int root) = 0;
  // output holds size() chunks of input.numel() elements, rank i's input in chunk i.
  virtual WorkHandle all_gather(const Tensor& output, const Tensor& input) = 0;
  // input holds size() chunks of output.numel() elements; rank i receives the reduction of chunk i.
  virtual WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::Sum) = 0;
  virtual WorkHandle send(const Tensor& tensor, int dst, int tag = 0) = 0;
  virtual WorkHandle recv(const Tensor& tensor, int src, int tag = 0) = 0;
  virtual WorkHandle barrier() = 0;
};

// The group of all ranks (created by init()).
std::shared_ptr<ProcessGroup> world();
// A sub-group of the given global ranks; every rank of the parent world must call it with the same list (ranks not
// in the list get nullptr).
std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks);

// Blocking forms, as torch.distributed's default async_op=False: issue on `group` (the world when null) and wait.
// A collective issued this way does not wake the group's communication thread: the calling thread runs it itself
// (when nothing issued earlier is still queued), which saves the thread hand-off, a few microseconds per call.
void all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::Sum,
                const std::shared_ptr<ProcessGroup>& group = nullptr);
void broadcast(const Tensor& tensor, int root, const std::shared_ptr<ProcessGroup>& group = nullptr);
void all_gather(const Tensor& output, const Tensor& input, const std::shared_ptr<ProcessGroup>& group = nullptr);
void reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::Sum,
                    const std::shared_ptr<ProcessGroup>& group = nullptr);
void barrier(const std::shared_ptr<ProcessGroup>& group = nullptr);

}  // namespace braid::dist
