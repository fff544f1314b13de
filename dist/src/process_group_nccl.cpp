// The NCCL backend (built with BRAID_WITH_NCCL): CUDA tensors of a group go over one NCCL communicator, made on the
// group's first CUDA operation (group rank 0's ncclGetUniqueId reaches the others by MPI_Bcast over the group's
// communicator) for the device of that tensor, with a stream of its own. Each operation first waits (cudaEvent) for
// the work already queued on Braid's compute stream of the device, so it reads finished values; Work::wait() makes
// the compute stream wait for the operation's event in turn, without blocking the host (is_completed() asks the
// event). NCCL has no tags: send/recv between two ranks match in issue order, and `tag` is ignored. The timeout does
// not apply here (wait() never blocks); NCCL's own asynchronous errors are reported by wait().
//
// Uses braid::cuda::current_stream(device) (braid/core/cuda.h) for the compute stream.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstring>

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
  bool is_completed() override;
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
    struct Bootstrap {
      int32_t ok = 0;
      ncclUniqueId id{};
      char error[256] = {};
    };
    auto boot = std::make_shared<Bootstrap>();
    if (rank_ == 0) {
      ncclResult_t rc = ncclGetUniqueId(&boot->id);
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
    BRAID_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
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
    return launch(make_signature(OpKind::AllReduce, op, -1, 0, t), {t}, true, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(
          ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), nccl_op(op), comm_, s));
    });
  }

  WorkHandle broadcast(const Tensor& t, int root) override {
    return launch(make_signature(OpKind::Broadcast, ReduceOp::Sum, root, 0, t), {t}, true, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(
          ncclBroadcast(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), root, comm_, s));
    });
  }

  WorkHandle all_gather(const Tensor& output, const Tensor& input) override {
    return launch(make_signature(OpKind::AllGather, ReduceOp::Sum, -1, 0, input, output), {output, input}, true,
                  [&](cudaStream_t s) {
                    BRAID_NCCL_CHECK(ncclAllGather(input.raw_data(), output.raw_data(), size_t(input.numel()),
                                                   nccl_dtype(input.dtype()), comm_, s));
                  });
  }

  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    return launch(make_signature(OpKind::ReduceScatter, op, -1, 0, input, output), {output, input}, true,
                  [&](cudaStream_t s) {
                    BRAID_NCCL_CHECK(ncclReduceScatter(input.raw_data(), output.raw_data(), size_t(output.numel()),
                                                       nccl_dtype(input.dtype()), nccl_op(op), comm_, s));
                  });
  }

  WorkHandle send(const Tensor& t, int dst, int tag) override {
    return launch(make_signature(OpKind::Send, ReduceOp::Sum, dst, tag, t), {t}, false, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(ncclSend(t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), dst, comm_, s));
    });
  }

  WorkHandle recv(const Tensor& t, int src, int tag) override {
    return launch(make_signature(OpKind::Recv, ReduceOp::Sum, src, tag, t), {t}, false, [&](cudaStream_t s) {
      BRAID_NCCL_CHECK(ncclRecv(t.raw_data(), size_t(t.numel()), nccl_dtype(t.dtype()), src, comm_, s));
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
    BRAID_NCCL_CHECK(ncclCommDestroy(comm_));
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
    comm_ = nullptr;
  }

  int device() const { return device_; }

  // NCCL reports failures of queued operations (a peer gone, a network error) asynchronously.
  void check_async_error(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_ || !comm_) return;
    ncclResult_t async = ncclSuccess;
    BRAID_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    BRAID_CHECK(async == ncclSuccess || async == ncclInProgress, what, " on rank ", global_rank_,
                " failed: NCCL reported ", ncclGetErrorString(async), " (", ncclGetLastError(comm_), ")");
  }

 private:
  template <class Fn>
  WorkHandle launch(const Signature& sig, std::vector<Tensor> tensors, bool collective, Fn&& issue) {
    // Debug mode: the same signature check as the MPI backend's, over the group's MPI communicator; it blocks the
    // caller until every rank has issued its call (debug mode trades speed for the check).
    if (collective && runtime().debug) mpi_->verify(sig)->wait();
    std::shared_ptr<NcclWork> work;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      BRAID_CHECK(!stopped_, describe(sig), ": the process group was shut down (braid::dist::finalize() was called)");
      DeviceGuard guard(device_);
      BRAID_CUDA_CHECK(cudaEventRecord(ready_, compute_stream(device_)));
      BRAID_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
      issue(stream_);
      work = std::make_shared<NcclWork>(shared_from_this(), describe(sig), std::move(tensors));
      BRAID_CUDA_CHECK(cudaEventRecord(work->event(), stream_));
    }
    return work;
  }

  std::shared_ptr<MpiBackend> mpi_;
  int device_;
  int global_rank_;
  int rank_ = 0;
  int size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
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
