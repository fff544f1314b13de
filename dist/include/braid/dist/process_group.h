// ProcessGroup: the one interface to communication between ranks. Every operation takes contiguous tensors
// (float32, float64 or int64), works in place where PyTorch's does, and returns a Work handle at once: the
// operation runs in the background (CPU tensors over MPI on this rank's communication thread, CUDA tensors over
// NCCL on the group's own streams) and wait() blocks until it is done (over MPI, a collective that has not started
// yet runs on the waiting thread). An operation that writes a tensor bumps its version counter once, when issued.
// The free functions at the end are the blocking forms.
//
// Ordering. All groups of a rank share one communication thread, which runs the collectives of every group one at
// a time in the order this rank issued them. So:
// - the operations of one group run in issue order, and every rank of the group must issue the same collectives
//   in the same order;
// - across groups, the ranks' issue orders must agree with one global order: two ranks that share groups A and B
//   must both issue A's collective before B's, or both after (as with PyTorch's NCCL groups). Ranks that disagree
//   deadlock (each waits in the collective the other has not reached), and the wait's timeout ends the job.
// Point-to-point operations are exempt: they are posted at once, in issue order, on the issuing thread and then
// progress in the background, so they never wait behind a collective, and a pending recv of one group does not
// hold back another group's collectives. Messages between two ranks of a group match in issue order (per tag).
//
// Membership. new_group() gives a rank outside its list a non-member group (is_member() false, rank() -1): every
// operation on it throws braid::Error, so such a rank can never enter a collective by mistake. A null group is
// never read as the world: the blocking forms take the world as their explicit default and reject null.
//
// Safety: before any data moves, every collective (and every new_group) checks across its group that each rank
// called the same operation, as the same operation number on that group, with the same shapes, dtype, root and
// reduce op (one small all-reduce of a fingerprint); a mismatch throws braid::Error on every rank naming what each
// passed, instead of reading or writing past a buffer. BRAID_DIST_DEBUG=1 exchanges the whole records every time
// and also checks send/recv pairs. A group is used from one thread: the first thread that issues an operation on it
// keeps it, and another thread's call throws (make a group per thread). wait() gives up after BRAID_DIST_TIMEOUT
// seconds (default 300) and aborts the job with a message naming the operation; wait(timeout) returns false
// instead.
#pragma once

#include <chrono>
#include <exception>
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
  // Blocks until the operation finished; rethrows its error. Past BRAID_DIST_TIMEOUT it aborts the job.
  virtual void wait() = 0;
  // Blocks at most `timeout`: false when the operation has not finished by then (it goes on; wait again later),
  // true when it has; rethrows its error. Never aborts the job.
  virtual bool wait(std::chrono::milliseconds timeout) = 0;
  virtual bool is_completed() = 0;
  // The error of a finished operation that failed; null while it runs and when it succeeded. Never throws.
  virtual std::exception_ptr exception() = 0;
  // A short description, e.g. "all_reduce(sum, [1024] float32)".
  virtual std::string description() const = 0;
};
using WorkHandle = std::shared_ptr<Work>;

// One send or receive of batch_isend_irecv (PyTorch's P2POp).
struct P2POp {
  enum class Kind { ISend, IRecv };
  Kind kind = Kind::ISend;
  Tensor tensor;
  int peer = 0;  // group rank
  int tag = 0;
  static P2POp isend(Tensor tensor, int dst, int tag = 0) { return {Kind::ISend, std::move(tensor), dst, tag}; }
  static P2POp irecv(Tensor tensor, int src, int tag = 0) { return {Kind::IRecv, std::move(tensor), src, tag}; }
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  // False for the value new_group() gives the ranks outside its list.
  virtual bool is_member() const { return true; }
  virtual int rank() const = 0;  // this process's rank within the group; -1 on a non-member
  virtual int size() const = 0;
  // Global ranks of the members, in group-rank order.
  virtual const std::vector<int>& ranks() const = 0;

  virtual WorkHandle all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::Sum) = 0;
  virtual WorkHandle broadcast(const Tensor& tensor, int root) = 0;
  // output holds size() chunks of input.numel() elements, rank i's input in chunk i.
  virtual WorkHandle all_gather(const Tensor& output, const Tensor& input) = 0;
  // input holds size() chunks of output.numel() elements; rank i receives the reduction of chunk i.
  virtual WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::Sum) = 0;
  // The reduction over the group lands in dst's tensor; the other ranks' tensors are left as they were.
  virtual WorkHandle reduce(const Tensor& tensor, int dst, ReduceOp op = ReduceOp::Sum) = 0;
  // On dst, output holds size() chunks of input.numel() elements, rank i's input in chunk i (the input may be
  // dst's own chunk). Other ranks' output is not used and may be undefined.
  virtual WorkHandle gather(const Tensor& output, const Tensor& input, int dst) = 0;
  // On src, input holds size() chunks of output.numel() elements; rank i receives chunk i. Other ranks' input is
  // not used and may be undefined.
  virtual WorkHandle scatter(const Tensor& output, const Tensor& input, int src) = 0;
  // input and output hold size() equal chunks: chunk j of this rank's input goes to rank j, and chunk i of its
  // output comes from rank i (as torch.distributed.all_to_all_single with equal splits).
  virtual WorkHandle all_to_all(const Tensor& output, const Tensor& input) = 0;
  virtual WorkHandle send(const Tensor& tensor, int dst, int tag = 0) = 0;
  virtual WorkHandle recv(const Tensor& tensor, int src, int tag = 0) = 0;
  // Every send and receive of `ops` is posted at once and they progress together, so a ring exchange (each rank
  // sending to the next and receiving from the previous in one batch) cannot deadlock; one Work completes when
  // all of them have. Messages between two ranks match by tag, and in order among equal tags (MPI's rule); over
  // NCCL, which has no tags, they match in order per peer, so the k-th send to a peer and that peer's k-th receive
  // from this rank must carry the same tag (BRAID_DIST_DEBUG=1 checks it).
  virtual WorkHandle batch_isend_irecv(const std::vector<P2POp>& ops) = 0;
  virtual WorkHandle barrier() = 0;
};

// The group of all ranks (created by init()).
std::shared_ptr<ProcessGroup> world();
// A sub-group of the given global ranks, in the list's order. Every rank of the world must call it with the same
// list, in the same order as its other new_group calls; the ranks not in the list get a non-member group.
std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks);

// Blocking forms, as torch.distributed's default async_op=False: issue on `group` and wait. The group must not be
// null (pass world() for every rank). A collective issued this way does not wake the communication thread: the
// calling thread runs it itself (when nothing issued earlier is still queued), which saves the thread hand-off, a
// few microseconds per call.
void all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::Sum, const std::shared_ptr<ProcessGroup>& group = world());
void broadcast(const Tensor& tensor, int root, const std::shared_ptr<ProcessGroup>& group = world());
void all_gather(const Tensor& output, const Tensor& input, const std::shared_ptr<ProcessGroup>& group = world());
void reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::Sum,
                    const std::shared_ptr<ProcessGroup>& group = world());
void reduce(const Tensor& tensor, int dst, ReduceOp op = ReduceOp::Sum,
            const std::shared_ptr<ProcessGroup>& group = world());
void gather(const Tensor& output, const Tensor& input, int dst, const std::shared_ptr<ProcessGroup>& group = world());
void scatter(const Tensor& output, const Tensor& input, int src, const std::shared_ptr<ProcessGroup>& group = world());
void all_to_all(const Tensor& output, const Tensor& input, const std::shared_ptr<ProcessGroup>& group = world());
void send(const Tensor& tensor, int dst, int tag = 0, const std::shared_ptr<ProcessGroup>& group = world());
void recv(const Tensor& tensor, int src, int tag = 0, const std::shared_ptr<ProcessGroup>& group = world());
void batch_isend_irecv(const std::vector<P2POp>& ops, const std::shared_ptr<ProcessGroup>& group = world());
void barrier(const std::shared_ptr<ProcessGroup>& group = world());

}  // namespace braid::dist
