// The NCCL backend (built with BRAID_WITH_NCCL): CUDA tensors of a group go over two NCCL communicators, made with
// the group when every local rank has a GPU of its own, else on its first CUDA operation (group rank 0's
// ncclGetUniqueIds reach the others by MPI_Bcast over the group's communicator). Collectives run on one
// communicator and stream, point-to-point operations on the other communicator and a stream of their own (NCCL
// runs the operations of one communicator in order, whatever their streams), so a receive waiting for its sender
// cannot hold back the collectives issued after it (DDP's all-reduces behind a pipeline's pending recv).
//
// Each operation first waits (cudaEvent) for the work already queued on Braid's compute stream of the device, so
// it reads finished values; Work::wait() makes the compute stream wait for the operation's event in turn, without
// blocking the host (is_completed() asks the event; wait(timeout) polls it). gather, scatter and all_to_all are
// ncclSend/ncclRecv pairs inside one ncclGroupStart/End. NCCL has no tags: messages between two ranks match in
// issue order per peer, so the k-th send to a peer must meet that peer's k-th receive from this rank with the same
// tag; in debug mode every send/recv's signature (tag included) crosses over MPI in that same order and a mismatch
// throws. The timeout does not apply to wait() here (it never blocks); NCCL's own asynchronous errors are reported
// by wait().
//
// Uses braid::cuda::current_stream(device) (braid/core/cuda.h) for the compute stream.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "braid/core/creation.h"
#include "braid/core/cuda.h"
#include "braid/kernels/cuda/check.h"
#include "process_group_impl.h"

#define BRAID_NCCL_CHECK(call)                                                                                  \
  do {                                                                                                          \
    ncclResult_t braid_nccl_rc_ = (call);                                                                       \
    if (braid_nccl_rc_ != ncclSuccess)                                                                          \
      BRAID_FAIL(#call, " failed at ", __FILE__, ":", __LINE__, ": ", ncclGetErrorString(braid_nccl_rc_), " (", \
                 ncclGetLastError(nullptr), ")");                                                               \
  } while (0)

namespace braid::dist::detail {

namespace {

ncclDataType_t nccl_dtype(DType t) {
  switch (t) {
    case DType::Float32:
      return ncclFloat32;
    case DType::Float64:
      return ncclFloat64;
    case DType::Int64:
      return ncclInt64;
  }
  BRAID_FAIL("NCCL process group: unsupported dtype ", t);
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Avg:
      return ncclAvg;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  BRAID_FAIL("NCCL process group: unknown reduce op");
}

// Makes `device` current for the scope (NCCL and the stream calls act on the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    BRAID_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) BRAID_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

cudaStream_t compute_stream(int device) { return static_cast<cudaStream_t>(braid::cuda::current_stream(device)); }

class NcclBackend;

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<NcclBackend> backend, std::string description, std::vector<Tensor> tensors);
  ~NcclWork() override;
  void wait() override;
  bool wait(std::chrono::milliseconds timeout) override;
  bool is_completed() override;
  std::exception_ptr exception() override;
  std::string description() const override { return description_; }
  cudaEvent_t event() const { return done_; }

 private:
  std::shared_ptr<NcclBackend> backend_;
  std::string description_;
  std::vector<Tensor> tensors_;
  cudaEvent_t done_ = nullptr;
  bool waited_ = false;
  std::mutex mutex_;
};

class NcclBackend : public Backend, public std::enable_shared_from_this<NcclBackend> {
 public:
  NcclBackend(std::shared_ptr<MpiBackend> mpi, int device, int global_rank)
      : mpi_(std::move(mpi)), device_(device), global_rank_(global_rank) {
    int count = braid::cuda::device_count();
    BRAID_CHECK(device >= 0 && device < count, "NCCL process group: CUDA device ", device, " does not exist (", count,
                " visible)");
    rank_ = mpi_->rank();
    size_ = mpi_->size();
    // Group rank 0 makes the id; a failure there travels with the broadcast so no rank waits for an id forever.
    // Two communicators: one for collectives, one for point-to-point.
    struct Bootstrap {
      int32_t ok = 0;
      ncclUniqueId id{};
      ncclUniqueId p2p_id{};
      char error[256] = {};
    };
    auto boot = std::make_shared<Bootstrap>();
    if (rank_ == 0) {
      ncclResult_t rc = ncclGetUniqueId(&boot->id);
      if (rc == ncclSuccess) rc = ncclGetUniqueId(&boot->p2p_id);
      boot->ok = rc == ncclSuccess;
      if (!boot->ok)
        std::snprintf(boot->error, sizeof boot->error, "ncclGetUniqueId failed: %s", ncclGetErrorString(rc));
    }
    mpi_->submit("NCCL communicator set-up",
                 [boot](MPI_Comm comm) {
                   BRAID_MPI_CHECK(MPI_Bcast(boot.get(), int(sizeof(Bootstrap)), MPI_BYTE, 0, comm));
                 })
        ->wait();
    BRAID_CHECK(boot->ok, "NCCL process group on rank ", global_rank_, ": group rank 0 could not make the NCCL id (",
                boot->error, ")");
    DeviceGuard guard(device_);
    BRAID_NCCL_CHECK(ncclCommInitRank(&comm_, size_, boot->id, rank_));
    BRAID_NCCL_CHECK(ncclCommInitRank(&p2p_comm_, size_, boot->p2p_id, rank_));
    BRAID_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BRAID_CUDA_CHECK(cudaStreamCreateWithFlags(&p2p_stream_, cudaStreamNonBlocking));
    BRAID_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  }

  ~NcclBackend() override {
    try {
      shutdown(false);  // a no-op after finalize()
    } catch (const std::exception& e) {
      std::fprintf(stderr, "braid::dist: closing an NCCL communicator failed: %s\n", e.what());
    }
  }

  WorkHandle all_reduce(const Tensor& t, ReduceOp op) override {
    return collective(make_signature(OpKind::AllReduce, op, -1, 0, t), {t}, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(
          ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), nccl_op(op), comm_, s));
    });
  }

  WorkHandle broadcast(const Tensor& t, int root) override {
    return collective(make_signature(OpKind::Broadcast, ReduceOp::Sum, root, 0, t), {t}, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(
          ncclBroadcast(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), root, comm_, s));
    });
  }

  WorkHandle all_gather(const Tensor& output, const Tensor& input) override {
    return collective(make_signature(OpKind::AllGather, ReduceOp::Sum, -1, 0, input, output), {output, input},
                      [&](cudaStream_t s) {
                        BRAID_NCCL_CHECK(ncclAllGather(input.raw_data(), output.raw_data(), size_t(input.numel()),
                                                       nccl_dtype(input.dtype()), comm_, s));
                      });
  }

  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    return collective(make_signature(OpKind::ReduceScatter, op, -1, 0, input, output), {output, input},
                      [&](cudaStream_t s) {
                        BRAID_NCCL_CHECK(ncclReduceScatter(input.raw_data(), output.raw_data(), size_t(output.numel()),
                                                           nccl_dtype(input.dtype()), nccl_op(op), comm_, s));
                      });
  }

  // Only dst's buffer receives (NCCL ignores recvbuff elsewhere), so the others' tensors stay as they were.
  WorkHandle reduce(const Tensor& t, int dst, ReduceOp op) override {
    return collective(make_signature(OpKind::Reduce, op, dst, 0, t), {t}, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(ncclReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), nccl_op(op),
                                  dst, comm_, s));
    });
  }

  WorkHandle gather(const Tensor& output, const Tensor& input, int dst) override {
    const size_t count = size_t(input.numel());
    return collective(make_signature(OpKind::Gather, ReduceOp::Sum, dst, 0, input), {output, input},
                      [&](cudaStream_t s) {
                        BRAID_NCCL_CHECK(ncclGroupStart());
                        if (rank_ == dst) {
                          for (int r = 0; r < size_; ++r) {
                            if (r == rank_)
                              copy_chunk(chunk(output, count, r), input.raw_data(), count, input.dtype(), s);
                            else
                              BRAID_NCCL_CHECK(
                                  ncclRecv(chunk(output, count, r), count, nccl_dtype(input.dtype()), r, comm_, s));
                          }
                        } else {
                          BRAID_NCCL_CHECK(ncclSend(input.raw_data(), count, nccl_dtype(input.dtype()), dst, comm_, s));
                        }
                        BRAID_NCCL_CHECK(ncclGroupEnd());
                      });
  }

  WorkHandle scatter(const Tensor& output, const Tensor& input, int src) override {
    const size_t count = size_t(output.numel());
    return collective(make_signature(OpKind::Scatter, ReduceOp::Sum, src, 0, output), {output, input},
                      [&](cudaStream_t s) {
                        BRAID_NCCL_CHECK(ncclGroupStart());
                        if (rank_ == src) {
                          for (int r = 0; r < size_; ++r) {
                            if (r == rank_)
                              copy_chunk(output.raw_data(), chunk(input, count, r), count, output.dtype(), s);
                            else
                              BRAID_NCCL_CHECK(
                                  ncclSend(chunk(input, count, r), count, nccl_dtype(output.dtype()), r, comm_, s));
                          }
                        } else {
                          BRAID_NCCL_CHECK(ncclRecv(output.raw_data(), count, nccl_dtype(output.dtype()), src, comm_, s));
                        }
                        BRAID_NCCL_CHECK(ncclGroupEnd());
                      });
  }

  WorkHandle all_to_all(const Tensor& output, const Tensor& input) override {
    const size_t count = size_t(input.numel() / size_);
    return collective(make_signature(OpKind::AllToAll, ReduceOp::Sum, -1, 0, input, output), {output, input},
                      [&](cudaStream_t s) {
                        BRAID_NCCL_CHECK(ncclGroupStart());
                        for (int r = 0; r < size_; ++r) {
                          if (r == rank_) {
                            copy_chunk(chunk(output, count, r), chunk(input, count, r), count, input.dtype(), s);
                            continue;
                          }
                          ncclDataType_t type = nccl_dtype(input.dtype());
                          BRAID_NCCL_CHECK(ncclSend(chunk(input, count, r), count, type, r, comm_, s));
                          BRAID_NCCL_CHECK(ncclRecv(chunk(output, count, r), count, type, r, comm_, s));
                        }
                        BRAID_NCCL_CHECK(ncclGroupEnd());
                      });
  }

  WorkHandle send(const Tensor& t, int dst, int tag) override { return batch_isend_irecv({P2POp::isend(t, dst, tag)}); }

  WorkHandle recv(const Tensor& t, int src, int tag) override { return batch_isend_irecv({P2POp::irecv(t, src, tag)}); }

  // One ncclGroupStart/End on the point-to-point stream: the sends and receives progress together.
  WorkHandle batch_isend_irecv(const std::vector<P2POp>& ops) override {
    if (runtime().debug) check_tags(ops);
    std::vector<Tensor> tensors;
    for (const P2POp& op : ops) tensors.push_back(op.tensor);
    std::string description = ops.size() == 1 ? describe(single_signature(ops.front())) : describe_batch(ops);
    return launch(description, std::move(tensors), p2p_stream_, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(ncclGroupStart());
      for (const P2POp& op : ops) {
        const Tensor& t = op.tensor;
        if (op.kind == P2POp::Kind::ISend)
          BRAID_NCCL_CHECK(ncclSend(t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), op.peer, p2p_comm_, s));
        else
          BRAID_NCCL_CHECK(ncclRecv(t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), op.peer, p2p_comm_, s));
      }
      BRAID_NCCL_CHECK(ncclGroupEnd());
    });
  }

  WorkHandle barrier() override { return mpi_->barrier(); }

  void shutdown(bool at_exit) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    // At exit the CUDA runtime may already be torn down (its atexit handler ran first): leave the communicator to
    // the process's end.
    if (at_exit) return;
    DeviceGuard guard(device_);
    BRAID_CUDA_CHECK(cudaStreamSynchronize(stream_));
    BRAID_CUDA_CHECK(cudaStreamSynchronize(p2p_stream_));
    BRAID_NCCL_CHECK(ncclCommDestroy(comm_));
    BRAID_NCCL_CHECK(ncclCommDestroy(p2p_comm_));
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
    cudaStreamDestroy(p2p_stream_);
    comm_ = nullptr;
    p2p_comm_ = nullptr;
  }

  int device() const { return device_; }

  // NCCL reports failures of queued operations (a peer gone, a network error) asynchronously.
  void check_async_error(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_ || !comm_) return;
    for (ncclComm_t comm : {comm_, p2p_comm_}) {
      ncclResult_t async = ncclSuccess;
      BRAID_NCCL_CHECK(ncclCommGetAsyncError(comm, &async));
      BRAID_CHECK(async == ncclSuccess || async == ncclInProgress, what, " on rank ", global_rank_,
                  " failed: NCCL reported ", ncclGetErrorString(async), " (", ncclGetLastError(comm), ")");
    }
  }

 private:
  static Signature single_signature(const P2POp& op) {
    bool is_send = op.kind == P2POp::Kind::ISend;
    return make_signature(is_send ? OpKind::Send : OpKind::Recv, ReduceOp::Sum, op.peer, op.tag, op.tensor);
  }

  static char* chunk(const Tensor& t, size_t count, int index) {
    return static_cast<char*>(t.raw_data()) + count * size_t(index) * element_size(t.dtype());
  }

  static void copy_chunk(void* dst, const void* src, size_t count, DType dtype, cudaStream_t s) {
    if (dst == src || count == 0) return;
    BRAID_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * element_size(dtype), cudaMemcpyDeviceToDevice, s));
  }

  // Debug mode: the signature of every send and receive crosses over MPI in the order NCCL will match them (one
  // tag for all, so MPI too matches them in order per peer); a receive whose sender passed another tag, dtype or
  // size throws on the receiving rank before anything is launched.
  void check_tags(const std::vector<P2POp>& ops) {
    constexpr int64_t kFields = 3;  // tag, dtype, numel
    std::vector<P2POp> mirror;
    std::vector<Tensor> received;
    for (const P2POp& op : ops) {
      Tensor record = braid::zeros({kFields}, DType::Int64);
      if (op.kind == P2POp::Kind::ISend) {
        int64_t* p = record.data<int64_t>();
        p[0] = op.tag, p[1] = int64_t(op.tensor.dtype()), p[2] = op.tensor.numel();
        mirror.push_back(P2POp::isend(record, op.peer, 0));
      } else {
        mirror.push_back(P2POp::irecv(record, op.peer, 0));
        received.push_back(record);
      }
    }
    mpi_->batch_isend_irecv(mirror)->wait();
    size_t k = 0;
    for (const P2POp& op : ops) {
      if (op.kind == P2POp::Kind::ISend) continue;
      const int64_t* p = received[k++].data<int64_t>();
      bool match = p[0] == op.tag && p[1] == int64_t(op.tensor.dtype()) && p[2] == op.tensor.numel();
      if (!match)
        throw MismatchError("recv: ranks disagree: rank " + std::to_string(global_rank_) + " passed " +
                            describe(single_signature(op)) + ", but the matching send (the same position among the " +
                            "sends from group rank " + std::to_string(op.peer) + " to it; NCCL matches in order) " +
                            "carried tag " + std::to_string(p[0]) + ", " + std::to_string(p[2]) + " elements of " +
                            std::string(dtype_name(DType(p[1]))));
    }
  }

  template <class Fn>
  WorkHandle collective(const Signature& sig, std::vector<Tensor> tensors, Fn&& issue) {
    // The MPI backend's signature check, over the group's MPI communicator, before NCCL sees the call: a mismatch
    // there would read or write past a buffer on the device. It holds the caller until every rank has issued its
    // call (host-side only: the device's queue keeps running).
    mpi_->verify(sig)->wait();
    return launch(describe(sig), std::move(tensors), stream_, std::forward<Fn>(issue));
  }

  template <class Fn>
  WorkHandle launch(const std::string& description, std::vector<Tensor> tensors, cudaStream_t stream, Fn&& issue) {
    std::shared_ptr<NcclWork> work;
    std::lock_guard<std::mutex> lock(mutex_);
    BRAID_CHECK(!stopped_, description, ": the process group was shut down (braid::dist::finalize() was called)");
    DeviceGuard guard(device_);
    BRAID_CUDA_CHECK(cudaEventRecord(ready_, compute_stream(device_)));
    BRAID_CUDA_CHECK(cudaStreamWaitEvent(stream, ready_, 0));
    issue(stream);
    work = std::make_shared<NcclWork>(shared_from_this(), description, std::move(tensors));
    BRAID_CUDA_CHECK(cudaEventRecord(work->event(), stream));
    return work;
  }

  std::shared_ptr<MpiBackend> mpi_;
  int device_;
  int global_rank_;
  int rank_ = 0;
  int size_ = 1;
  ncclComm_t comm_ = nullptr;      // collectives, on stream_
  ncclComm_t p2p_comm_ = nullptr;  // send, recv, batch_isend_irecv, on p2p_stream_
  cudaStream_t stream_ = nullptr;      // collectives
  cudaStream_t p2p_stream_ = nullptr;  // send, recv, batch_isend_irecv
  cudaEvent_t ready_ = nullptr;  // recorded on the compute stream before each operation
  std::mutex mutex_;
  bool stopped_ = false;
};

NcclWork::NcclWork(std::shared_ptr<NcclBackend> backend, std::string description, std::vector<Tensor> tensors)
    : backend_(std::move(backend)), description_(std::move(description)), tensors_(std::move(tensors)) {
  BRAID_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
}

NcclWork::~NcclWork() {
  // Never waited for: still order the compute stream after the operation, so memory of tensors freed now is not
  // handed to new compute work (the caching allocator reuses blocks in compute-stream order) while NCCL uses it.
  if (!waited_) {
    int previous = 0;
    if (cudaGetDevice(&previous) == cudaSuccess) {
      cudaSetDevice(backend_->device());
      try {
        cudaStreamWaitEvent(compute_stream(backend_->device()), done_, 0);
      } catch (...) {
      }
      cudaSetDevice(previous);
    }
  }
  cudaEventDestroy(done_);
}

void NcclWork::wait() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!waited_) {
    DeviceGuard guard(backend_->device());
    BRAID_CUDA_CHECK(cudaStreamWaitEvent(compute_stream(backend_->device()), done_, 0));
    waited_ = true;
    tensors_.clear();  // later compute-stream work, including reuse of their memory, comes after the operation
  }
  backend_->check_async_error(description_);
}

// Polls the event (the host has nothing to sleep on), then orders the compute stream after it as wait() does.
bool NcclWork::wait(std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!is_completed()) {
    backend_->check_async_error(description_);
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  wait();
  return true;
}

std::exception_ptr NcclWork::exception() {
  try {
    if (!is_completed()) return nullptr;
    backend_->check_async_error(description_);
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

bool NcclWork::is_completed() {
  cudaError_t rc = cudaEventQuery(done_);
  if (rc == cudaErrorNotReady) return false;
  BRAID_CUDA_CHECK(rc);
  return true;
}

}  // namespace

std::shared_ptr<Backend> make_nccl_backend(std::shared_ptr<MpiBackend> mpi, int device, int global_rank) {
  BRAID_CHECK(mpi, "NCCL process group: needs the group's MPI communicator");
  return std::make_shared<NcclBackend>(std::move(mpi), device, global_rank);
}

}  // namespace braid::dist::detail
