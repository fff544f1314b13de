// The MPI backend of one group: it turns each operation into an MpiTask over the group's communicator, which the
// rank's shared CommThread runs (comm_thread.cpp). Collectives become blocking MPI calls; send, recv and
// batch_isend_irecv become MPI_Isend/MPI_Irecv requests, posted in issue order and polled until complete. A recv
// checks that the message had the expected size.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>

#include "process_group_impl.h"

namespace braid::dist::detail {

namespace {

MPI_Datatype mpi_dtype(DType t) {
  switch (t) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    case DType::Int64:
      return MPI_INT64_T;
  }
  BRAID_FAIL("MPI process group: unsupported dtype ", t);
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  BRAID_FAIL("MPI process group: unknown reduce op");
}

// MPI counts are ints: element-wise operations on bigger tensors go in pieces of at most INT_MAX elements (an empty
// tensor still makes one call, so every rank makes the same calls).
template <class Fn>
void for_each_piece(void* data, int64_t numel, DType dtype, Fn&& fn) {
  char* p = static_cast<char*>(data);
  do {
    int count = int(std::min<int64_t>(numel, INT_MAX));
    fn(p, count);
    p += size_t(count) * element_size(dtype);
    numel -= count;
  } while (numel > 0);
}

int checked_count(const char* op, int64_t numel) {
  BRAID_CHECK(numel <= INT_MAX, op, ": ", numel, " elements per rank is more than MPI's int count allows (", INT_MAX,
              ")");
  return int(numel);
}

// Avg: the sum divided by the group size (integers truncate toward zero, as NCCL's ncclAvg does).
void divide(const Tensor& t, int size) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(t.raw_data());
    const T d = T(size);
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] / d;
  });
}

}  // namespace


MpiBackend::MpiBackend(MPI_Comm comm, std::vector<int> global_ranks, int64_t group_id)
    : comm_(comm), global_ranks_(std::move(global_ranks)), group_id_(group_id) {
  BRAID_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  BRAID_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  BRAID_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  BRAID_CHECK(size_t(size_) == global_ranks_.size(), "MpiBackend: communicator of ", size_, " ranks for ",
              global_ranks_.size(), " global ranks");
  int* tag_ub = nullptr;
  int has_tag_ub = 0;
  BRAID_MPI_CHECK(MPI_Comm_get_attr(comm_, MPI_TAG_UB, &tag_ub, &has_tag_ub));
  if (has_tag_ub && tag_ub) tag_ub_ = *tag_ub;
  if (runtime().debug) {
    BRAID_MPI_CHECK(MPI_Comm_dup(comm_, &debug_comm_));
    BRAID_MPI_CHECK(MPI_Comm_set_errhandler(debug_comm_, MPI_ERRORS_RETURN));
  }
}

MpiBackend::~MpiBackend() {
  try {
    shutdown(false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "braid::dist: closing a process group failed: %s\n", e.what());
  }
}

// ---- issuing (caller's thread) ----

WorkHandle MpiBackend::enqueue(std::unique_ptr<MpiTask> task) {
  task->owner = this;
  if (task->check_signature && task->sig.seq == 0) task->sig.seq = ++seq_;
  return CommThread::instance().enqueue(std::move(task));
}

WorkHandle MpiBackend::submit(std::string description, std::function<void(MPI_Comm)> fn) {
  auto task = std::make_unique<MpiTask>();
  task->label = std::move(description);
  task->collective = std::move(fn);
  return enqueue(std::move(task));
}

namespace {

std::unique_ptr<MpiTask> make_task(const Signature& sig, std::vector<Tensor> tensors) {
  auto task = std::make_unique<MpiTask>();
  task->sig = sig;
  task->tensors = std::move(tensors);
  task->check_signature = true;
  return task;
}

char* chunk(const Tensor& t, int64_t chunk_numel, int index) {
  return static_cast<char*>(t.raw_data()) + size_t(chunk_numel) * size_t(index) * element_size(t.dtype());
}

}  // namespace

WorkHandle MpiBackend::all_reduce(const Tensor& tensor, ReduceOp op) {
  auto task = make_task(make_signature(OpKind::AllReduce, op, -1, 0, tensor), {tensor});
  int size = size_;
  task->collective = [tensor, op, size](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for_each_piece(tensor.raw_data(), tensor.numel(), tensor.dtype(), [&](void* p, int count) {
      BRAID_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, count, type, mpi_op(op), comm));
    });
    if (op == ReduceOp::Avg) divide(tensor, size);
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::broadcast(const Tensor& tensor, int root) {
  auto task = make_task(make_signature(OpKind::Broadcast, ReduceOp::Sum, root, 0, tensor), {tensor});
  task->collective = [tensor, root](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for_each_piece(tensor.raw_data(), tensor.numel(), tensor.dtype(),
                   [&](void* p, int count) { BRAID_MPI_CHECK(MPI_Bcast(p, count, type, root, comm)); });
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::all_gather(const Tensor& output, const Tensor& input) {
  int count = checked_count("all_gather", input.numel());
  auto task = make_task(make_signature(OpKind::AllGather, ReduceOp::Sum, -1, 0, input, output), {output, input});
  // The input may be the output's own chunk (ProcessGroup checked that it overlaps nothing else): MPI_IN_PLACE.
  bool in_place = input.raw_data() == chunk(output, count, rank_);
  task->collective = [output, input, count, in_place](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(input.dtype());
    BRAID_MPI_CHECK(
        MPI_Allgather(in_place ? MPI_IN_PLACE : input.raw_data(), count, type, output.raw_data(), count, type, comm));
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) {
  int count = checked_count("reduce_scatter", output.numel());
  auto task = make_task(make_signature(OpKind::ReduceScatter, op, -1, 0, input, output), {output, input});
  int size = size_;
  task->collective = [output, input, count, op, size](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(input.dtype());
    BRAID_MPI_CHECK(MPI_Reduce_scatter_block(input.raw_data(), output.raw_data(), count, type, mpi_op(op), comm));
    if (op == ReduceOp::Avg) divide(output, size);
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::reduce(const Tensor& tensor, int dst, ReduceOp op) {
  auto task = make_task(make_signature(OpKind::Reduce, op, dst, 0, tensor), {tensor});
  int size = size_;
  bool root = rank_ == dst;
  task->collective = [tensor, dst, op, size, root](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for_each_piece(tensor.raw_data(), tensor.numel(), tensor.dtype(), [&](void* p, int count) {
      // Only the root's buffer receives; the others' stays as it was.
      BRAID_MPI_CHECK(MPI_Reduce(root ? MPI_IN_PLACE : p, root ? p : nullptr, count, type, mpi_op(op), dst, comm));
    });
    if (root && op == ReduceOp::Avg) divide(tensor, size);
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::gather(const Tensor& output, const Tensor& input, int dst) {
  int count = checked_count("gather", input.numel());
  auto task = make_task(make_signature(OpKind::Gather, ReduceOp::Sum, dst, 0, input), {output, input});
  bool root = rank_ == dst;
  bool in_place = root && input.raw_data() == chunk(output, count, rank_);
  task->collective = [output, input, count, dst, root, in_place](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(input.dtype());
    const void* send = in_place ? MPI_IN_PLACE : input.raw_data();
    BRAID_MPI_CHECK(MPI_Gather(send, count, type, root ? output.raw_data() : nullptr, count, type, dst, comm));
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::scatter(const Tensor& output, const Tensor& input, int src) {
  int count = checked_count("scatter", output.numel());
  auto task = make_task(make_signature(OpKind::Scatter, ReduceOp::Sum, src, 0, output), {output, input});
  bool root = rank_ == src;
  bool in_place = root && output.raw_data() == chunk(input, count, rank_);
  task->collective = [output, input, count, src, root, in_place](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(output.dtype());
    void* receive = in_place ? MPI_IN_PLACE : output.raw_data();
    BRAID_MPI_CHECK(MPI_Scatter(root ? input.raw_data() : nullptr, count, type, receive, count, type, src, comm));
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::all_to_all(const Tensor& output, const Tensor& input) {
  int count = checked_count("all_to_all", input.numel() / std::max(size_, 1));
  auto task = make_task(make_signature(OpKind::AllToAll, ReduceOp::Sum, -1, 0, input, output), {output, input});
  task->collective = [output, input, count](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(input.dtype());
    BRAID_MPI_CHECK(MPI_Alltoall(input.raw_data(), count, type, output.raw_data(), count, type, comm));
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::barrier() {
  auto task = make_task(make_signature(OpKind::Barrier, ReduceOp::Sum, -1, 0, Tensor()), {});
  task->collective = [](MPI_Comm comm) { BRAID_MPI_CHECK(MPI_Barrier(comm)); };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::verify(const Signature& sig) {
  auto task = std::make_unique<MpiTask>();
  task->sig = sig;
  task->check_signature = true;
  task->collective = [](MPI_Comm) {};
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::create_group(const std::vector<int>& ranks, int64_t* id, MPI_Comm* out) {
  auto task = std::make_unique<MpiTask>();
  task->sig = new_group_signature(ranks);
  task->check_signature = true;
  // The operation's number on the world names the group: the check compares it, so every rank that gets past
  // the check agrees on it, even after a failed new_group that some ranks did not call.
  task->sig.seq = ++seq_;
  *id = task->sig.seq;
  const int tag = int(*id % 32768);  // keeps concurrent MPI_Comm_create_group calls apart
  const bool member = std::find(ranks.begin(), ranks.end(), global_rank()) != ranks.end();
  task->collective = [ranks, tag, out, member](MPI_Comm comm) {
    if (!member) return;
    // Collective over the members only: ranks outside the list took part in the check and are done.
    MPI_Group parent = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
    BRAID_MPI_CHECK(MPI_Comm_group(comm, &parent));
    int rc = MPI_Group_incl(parent, int(ranks.size()), ranks.data(), &group);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_create_group(comm, group, tag, out);
    if (group != MPI_GROUP_NULL) MPI_Group_free(&group);
    MPI_Group_free(&parent);
    check_mpi(rc, "MPI_Comm_create_group(world, group, tag, &comm)", __FILE__, __LINE__);
  };
  return enqueue(std::move(task));
}

// ---- point-to-point ----

namespace {

// One send or receive of a point-to-point task, and where its requests sit in the task's list.
struct P2PItem {
  P2POp op;
  Signature sig;                                       // what this rank passed
  std::shared_ptr<Signature> peer;                     // debug mode: what the peer passed (receives)
  std::shared_ptr<Signature> sent;                     // debug mode: what travels to the peer (sends)
  size_t first = 0, count = 0;                         // its requests
};

}  // namespace

WorkHandle MpiBackend::send(const Tensor& tensor, int dst, int tag) {
  return p2p(make_signature(OpKind::Send, ReduceOp::Sum, dst, tag, tensor), "", {P2POp::isend(tensor, dst, tag)});
}

WorkHandle MpiBackend::recv(const Tensor& tensor, int src, int tag) {
  return p2p(make_signature(OpKind::Recv, ReduceOp::Sum, src, tag, tensor), "", {P2POp::irecv(tensor, src, tag)});
}

WorkHandle MpiBackend::batch_isend_irecv(const std::vector<P2POp>& ops) {
  return p2p(Signature{}, describe_batch(ops), ops);
}

// Posts every request of `ops` in list order (each tensor in pieces of at most INT_MAX elements; in debug mode its
// signature first, over the debug communicator with the same tag, so it pairs with the peer's the way the data
// does), and once all completed, checks each receive: the peer's signature, then the size that arrived.
WorkHandle MpiBackend::p2p(Signature sig, std::string label, const std::vector<P2POp>& ops) {
  std::vector<Tensor> tensors;
  auto items = std::make_shared<std::vector<P2PItem>>();
  for (const P2POp& op : ops) {
    const bool is_send = op.kind == P2POp::Kind::ISend;
    BRAID_CHECK(op.tag <= tag_ub_, is_send ? "send" : "recv", ": tag ", op.tag, " is above MPI's largest tag (",
                tag_ub_, ")");
    P2PItem item;
    item.op = op;
    item.sig = make_signature(is_send ? OpKind::Send : OpKind::Recv, ReduceOp::Sum, op.peer, op.tag, op.tensor);
    item.peer = std::make_shared<Signature>();
    item.sent = std::make_shared<Signature>(item.sig);
    items->push_back(std::move(item));
    tensors.push_back(op.tensor);
  }
  auto task = std::make_unique<MpiTask>();
  task->sig = sig;
  task->label = std::move(label);
  task->tensors = std::move(tensors);
  MPI_Comm comm = comm_, debug_comm = debug_comm_;
  task->start = [items, comm, debug_comm](std::vector<MPI_Request>& requests) {
    for (P2PItem& item : *items) {
      const P2POp& op = item.op;
      const bool is_send = op.kind == P2POp::Kind::ISend;
      if (debug_comm != MPI_COMM_NULL) {
        requests.emplace_back();
        if (is_send)
          BRAID_MPI_CHECK(MPI_Isend(item.sent.get(), int(sizeof(Signature)), MPI_BYTE, op.peer, op.tag, debug_comm,
                                    &requests.back()));
        else
          BRAID_MPI_CHECK(MPI_Irecv(item.peer.get(), int(sizeof(Signature)), MPI_BYTE, op.peer, op.tag, debug_comm,
                                    &requests.back()));
      }
      item.first = requests.size();
      MPI_Datatype type = mpi_dtype(op.tensor.dtype());
      for_each_piece(op.tensor.raw_data(), op.tensor.numel(), op.tensor.dtype(), [&](void* p, int count) {
        requests.emplace_back();
        if (is_send)
          BRAID_MPI_CHECK(MPI_Isend(p, count, type, op.peer, op.tag, comm, &requests.back()));
        else
          BRAID_MPI_CHECK(MPI_Irecv(p, count, type, op.peer, op.tag, comm, &requests.back()));
      });
      item.count = requests.size() - item.first;
    }
  };
  int my_global = global_rank();
  std::vector<int> globals = global_ranks_;
  task->finish = [items, debug_comm, my_global, globals](const std::vector<MPI_Status>& statuses) {
    for (const P2PItem& item : *items) {
      if (item.op.kind == P2POp::Kind::ISend) continue;
      const Tensor& tensor = item.op.tensor;
      int src_global = globals[size_t(item.op.peer)];
      if (debug_comm != MPI_COMM_NULL) {
        const Signature& peer = *item.peer;
        bool match = OpKind(peer.op) == OpKind::Send && peer.a.dtype == item.sig.a.dtype &&
                     peer.a.numel == item.sig.a.numel;
        if (!match)
          throw MismatchError("recv: ranks disagree: rank " + std::to_string(my_global) + " passed " +
                              describe(item.sig) + ", rank " + std::to_string(src_global) + " passed " +
                              describe(peer));
      }
      int64_t received = 0;
      MPI_Datatype type = mpi_dtype(tensor.dtype());
      for (size_t i = item.first; i < item.first + item.count; ++i) {
        int count = 0;
        BRAID_MPI_CHECK(MPI_Get_count(&statuses[i], type, &count));
        received += count;
      }
      BRAID_CHECK(received == tensor.numel(), "rank ", src_global, " sent ", received, " elements, the tensor holds ",
                  tensor.numel());
    }
  };
  return enqueue(std::move(task));
}

// ---- on the communication thread ----

// One MPI_Allreduce (MAX) of {h, ~h} gives every rank the largest and the smallest fingerprint at once: equal means
// every rank passed the same call, and every rank reaches the same verdict, so they take the same next step (the
// full exchange, or the operation). It costs one small collective, whatever the tensor's size: a check that only
// some ranks skipped (below a size, say) would itself be a mismatch.
void MpiBackend::check_signatures(const Signature& mine) {
  if (runtime().debug) return compare_signatures(mine);
  const uint64_t h = fingerprint(mine);
  uint64_t extremes[2] = {h, ~h};
  BRAID_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, extremes, 2, MPI_UINT64_T, MPI_MAX, comm_));
  if (extremes[0] == ~extremes[1]) return;
  compare_signatures(mine);
  // Different fingerprints, alike signatures: a hash collision is not a mismatch, so the operation goes on.
}

void MpiBackend::compare_signatures(const Signature& mine) {
  std::vector<Signature> all(static_cast<size_t>(size_));
  BRAID_MPI_CHECK(
      MPI_Allgather(&mine, int(sizeof(Signature)), MPI_BYTE, all.data(), int(sizeof(Signature)), MPI_BYTE, comm_));
  if (std::all_of(all.begin(), all.end(), [&](const Signature& s) { return s == mine; })) return;
  std::string msg = std::string(op_name(OpKind(mine.op))) + ": ranks disagree:";
  for (int r = 0; r < size_; ++r)
    msg += std::string(r ? "," : "") + " rank " + std::to_string(global_ranks_[size_t(r)]) + " passed " +
           describe(all[size_t(r)]) + " as operation #" + std::to_string(all[size_t(r)].seq);
  throw MismatchError(msg);
}

// Waits for this group's outstanding operations, then frees its communicators.
void MpiBackend::shutdown(bool /*at_exit*/) {
  std::lock_guard<std::mutex> lock(shutdown_mutex_);
  if (stopped_) return;
  CommThread::instance().close(*this);
  int down = 0;
  MPI_Finalized(&down);
  if (!down) {
    if (debug_comm_ != MPI_COMM_NULL) MPI_Comm_free(&debug_comm_);
    MPI_Comm_free(&comm_);
  }
  stopped_ = true;
}

}  // namespace braid::dist::detail
