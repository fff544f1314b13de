// The ProcessGroup users hold: it validates every call (so a bad argument throws on the caller's thread, before any
// communication), bumps the version of the tensors the operation writes, then routes it by device: CPU tensors to
// the group's MPI backend, CUDA tensors to its NCCL backend (made with the group when every local rank has a GPU of
// its own, else on the first CUDA operation). A single process (not launched by mpirun) gets a group of one rank
// whose collectives are local copies. The non-member group, world(), new_group() and the blocking forms live here
// too.
#include "braid/dist/process_group.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <thread>

#include "braid/core/cuda.h"
#include "braid/core/ops.h"
#include "process_group_impl.h"
#include "traced_work.h"

namespace braid::dist {

namespace detail {

// ---- signatures and descriptions ----

const char* op_name(OpKind op) {
  switch (op) {
    case OpKind::AllReduce:
      return "all_reduce";
    case OpKind::Broadcast:
      return "broadcast";
    case OpKind::AllGather:
      return "all_gather";
    case OpKind::ReduceScatter:
      return "reduce_scatter";
    case OpKind::Reduce:
      return "reduce";
    case OpKind::Gather:
      return "gather";
    case OpKind::Scatter:
      return "scatter";
    case OpKind::AllToAll:
      return "all_to_all";
    case OpKind::Send:
      return "send";
    case OpKind::Recv:
      return "recv";
    case OpKind::Barrier:
      return "barrier";
    case OpKind::NewGroup:
      return "new_group";
  }
  return "unknown operation";
}

}  // namespace detail

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Avg:
      return "avg";
    case ReduceOp::Max:
      return "max";
    case ReduceOp::Min:
      return "min";
  }
  return "unknown";
}

namespace detail {

TensorSignature tensor_signature(const Tensor& t) {
  TensorSignature s;
  if (!t.defined()) return s;
  s.defined = 1;
  s.dtype = int32_t(t.dtype());
  s.ndim = int32_t(t.dim());
  for (int i = 0; i < s.ndim && i < TensorSignature::kMaxDims; ++i) s.shape[size_t(i)] = t.shape()[size_t(i)];
  s.numel = t.numel();
  return s;
}

Signature make_signature(OpKind op, ReduceOp reduce, int root, int tag, const Tensor& a, const Tensor& b) {
  Signature s;
  s.op = int32_t(op);
  s.reduce = int32_t(reduce);
  s.root = root;
  s.tag = tag;
  s.a = tensor_signature(a);
  s.b = tensor_signature(b);
  return s;
}

namespace {

uint64_t fnv1a(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

// The record has no padding, so equal records hash alike.
uint64_t fingerprint(const Signature& s) { return fnv1a(&s, sizeof s); }

Signature new_group_signature(const std::vector<int>& ranks) {
  Signature s;
  s.op = int32_t(OpKind::NewGroup);
  s.a.ndim = int32_t(std::min<size_t>(ranks.size(), TensorSignature::kMaxDims));
  for (int i = 0; i < s.a.ndim; ++i) s.a.shape[size_t(i)] = ranks[size_t(i)];
  s.a.numel = int64_t(ranks.size());
  s.list_hash = fnv1a(ranks.data(), ranks.size() * sizeof(int));
  return s;
}

namespace {

// "[0, 2, 3]", or "[0, 1, 2, 3, 4, 5, ... (12 ranks)]" for a long list (the signature keeps its first ranks).
std::string describe_rank_list(const TensorSignature& t) {
  std::string out = "[";
  for (int i = 0; i < t.ndim; ++i) out += (i ? ", " : "") + std::to_string(t.shape[size_t(i)]);
  if (t.numel > t.ndim) out += ", ... (" + std::to_string(t.numel) + " ranks)";
  return out + "]";
}

std::string describe_tensor(const TensorSignature& t) {
  std::string out = "[";
  if (t.ndim > TensorSignature::kMaxDims) {
    out += std::to_string(t.ndim) + " dims, " + std::to_string(t.numel) + " elements";
  } else {
    for (int i = 0; i < t.ndim; ++i) out += (i ? ", " : "") + std::to_string(t.shape[size_t(i)]);
  }
  return out + "] " + std::string(dtype_name(DType(t.dtype)));
}

}  // namespace

std::string describe(const Signature& s) {
  OpKind op = OpKind(s.op);
  std::string name = op_name(op);
  std::string reduce = reduce_op_name(ReduceOp(s.reduce));
  switch (op) {
    case OpKind::AllReduce:
      return name + "(" + reduce + ", " + describe_tensor(s.a) + ")";
    case OpKind::Broadcast:
      return name + "(" + describe_tensor(s.a) + ", root " + std::to_string(s.root) + ")";
    case OpKind::AllGather:
      return name + "(" + describe_tensor(s.a) + " -> " + describe_tensor(s.b) + ")";
    case OpKind::ReduceScatter:
      return name + "(" + reduce + ", " + describe_tensor(s.a) + " -> " + describe_tensor(s.b) + ")";
    case OpKind::Reduce:
      return name + "(" + reduce + ", " + describe_tensor(s.a) + ", dst " + std::to_string(s.root) + ")";
    case OpKind::Gather:
      return name + "(" + describe_tensor(s.a) + ", dst " + std::to_string(s.root) + ")";
    case OpKind::Scatter:
      return name + "(" + describe_tensor(s.a) + ", src " + std::to_string(s.root) + ")";
    case OpKind::AllToAll:
      return name + "(" + describe_tensor(s.a) + " -> " + describe_tensor(s.b) + ")";
    case OpKind::Send:
      return name + "(" + describe_tensor(s.a) + ", dst " + std::to_string(s.root) + ", tag " + std::to_string(s.tag) +
             ")";
    case OpKind::Recv:
      return name + "(" + describe_tensor(s.a) + ", src " + std::to_string(s.root) + ", tag " + std::to_string(s.tag) +
             ")";
    case OpKind::Barrier:
      return name + "()";
    case OpKind::NewGroup:
      return name + "(" + describe_rank_list(s.a) + ")";
  }
  return name;
}

std::string describe_batch(const std::vector<P2POp>& ops) {
  std::string out = "batch_isend_irecv(";
  for (size_t i = 0; i < ops.size(); ++i) {
    const P2POp& op = ops[i];
    bool is_send = op.kind == P2POp::Kind::ISend;
    std::string tensor = op.tensor.defined() ? describe_tensor(tensor_signature(op.tensor)) : "undefined";
    out += std::string(i ? ", " : "") + (is_send ? "isend(" : "irecv(") + tensor + (is_send ? ", dst " : ", src ") +
           std::to_string(op.peer) + ", tag " + std::to_string(op.tag) + ")";
  }
  return out + ")";
}

// ---- Work ----

void ThreadWork::complete(std::exception_ptr error) {
  if (is_tracing()) completed_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::move(error);
    done_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

void ThreadWork::wait() {
  if (!done_.load(std::memory_order_acquire)) {
    // Not started yet and next in line: running it here saves two thread hand-offs.
    if (runner_ && !runner_->run_inline(*this)) runner_->wake();
  }
  if (!done_.load(std::memory_order_acquire)) {
    const Runtime& rt = runtime();
    // Most waits end within tens of microseconds of being called (the operation was already under way); where
    // cores are spare (Runtime::spin), a short spin saves the condition variable's wake-up latency.
    if (rt.spin) {
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      while (!done_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    auto timeout = std::chrono::duration<double>(std::min(rt.timeout_s, 1e9));
    if (!cv_.wait_for(lock, timeout, [&] { return done_.load(std::memory_order_acquire); }))
      abort_on_timeout(description(), rank_);
  }
  if (error_) std::rethrow_exception(error_);
}

// Never runs the operation inline (a collective cannot be left once started, so the wait could not end in time).
bool ThreadWork::wait(std::chrono::milliseconds timeout) {
  if (!done_.load(std::memory_order_acquire)) {
    if (runner_) runner_->wake();
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return done_.load(std::memory_order_acquire); })) return false;
  }
  if (error_) std::rethrow_exception(error_);
  return true;
}

std::optional<std::chrono::steady_clock::time_point> ThreadWork::completed_at() const {
  const int64_t stamp = completed_ns_.load();
  if (stamp == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(stamp));
}

std::exception_ptr ThreadWork::exception() {
  if (!done_.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

// ---- backend registry ----

namespace {

struct Registry {
  std::mutex mutex;
  std::vector<std::weak_ptr<Backend>> backends;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: finalize can run from atexit
  return *r;
}

}  // namespace

void register_backend(const std::shared_ptr<Backend>& backend) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::erase_if(r.backends, [](const std::weak_ptr<Backend>& w) { return w.expired(); });
  r.backends.push_back(backend);
}

void shutdown_backends(bool at_exit) {
  std::vector<std::shared_ptr<Backend>> live;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (auto& w : r.backends)
      if (auto b = w.lock()) live.push_back(std::move(b));
    r.backends.clear();
  }
  // Newest first: NCCL backends go before the MPI communicators they were bootstrapped over.
  for (auto it = live.rbegin(); it != live.rend(); ++it) (*it)->shutdown(at_exit);
  CommThread::instance().stop();
}

std::shared_ptr<ProcessGroup>& world_slot() {
  static auto* slot = new std::shared_ptr<ProcessGroup>();  // never destroyed, like the runtime state
  return *slot;
}

std::string ranks_str(const std::vector<int>& ranks) {
  std::string out = "[";
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out + "]";
}

std::vector<int> shared_ranks(const ProcessGroup& a, const ProcessGroup& b) {
  std::vector<int> shared;
  for (int r : a.ranks())
    if (std::find(b.ranks().begin(), b.ranks().end(), r) != b.ranks().end()) shared.push_back(r);
  return shared;
}

namespace {

// ---- argument checks, shared by every backend ----

void check_tensor(const char* op, const char* role, const Tensor& t) {
  BRAID_CHECK(t.defined(), op, ": the ", role, " tensor is undefined");
  BRAID_CHECK(t.is_contiguous(), op, ": the ", role, " tensor must be contiguous, got shape ", shape_str(t.shape()),
              " with strides ", shape_str(t.strides()), " (call contiguous() first)");
}

void check_pair(const char* op, const Tensor& output, const Tensor& input) {
  check_tensor(op, "output", output);
  check_tensor(op, "input", input);
  BRAID_CHECK(output.dtype() == input.dtype(), op, ": output is ", output.dtype(), " but input is ", input.dtype());
  BRAID_CHECK(output.device() == input.device(), op, ": output is on ", output.device(), " but input is on ",
              input.device());
}

void check_root(const char* op, const char* role, int root, int size) {
  BRAID_CHECK(root >= 0 && root < size, op, ": ", role, " ", root, " is not a rank of this group (ranks 0..", size - 1,
              ")");
}

void check_peer(const char* op, const char* role, int peer, int rank, int size, int tag) {
  check_root(op, role, peer, size);
  BRAID_CHECK(peer != rank, op, ": ", role, " ", peer, " is this process's own rank; a rank cannot ", op, " to itself");
  BRAID_CHECK(tag >= 0, op, ": tag must be non-negative, got ", tag);
}

bool overlaps(const Tensor& a, const Tensor& b) {
  auto* pa = static_cast<const char*>(a.raw_data());
  auto* pb = static_cast<const char*>(b.raw_data());
  size_t na = size_t(a.numel()) * element_size(a.dtype()), nb = size_t(b.numel()) * element_size(b.dtype());
  return na && nb && pa < pb + nb && pb < pa + na;
}

const void* chunk_address(const Tensor& t, int64_t chunk_numel, int index) {
  return static_cast<const char*>(t.raw_data()) + size_t(chunk_numel) * size_t(index) * element_size(t.dtype());
}

// `whole` holds `size` chunks of `part`'s size (gather's output, scatter's input); `part` may be chunk `index`.
void check_chunks(const char* op, const char* whole_role, const Tensor& whole, const Tensor& part, int size,
                  int index) {
  BRAID_CHECK(whole.numel() == part.numel() * size, op, ": ", whole_role, " has ", whole.numel(),
              " elements, expected ", part.numel() * size, " (", size, " ranks x ", part.numel(), ")");
  bool own_chunk = part.raw_data() == chunk_address(whole, part.numel(), index);
  BRAID_CHECK(own_chunk || !overlaps(whole, part), op, ": the ", whole_role, " overlaps the other tensor (which may ",
              "only be its own chunk, chunk ", index, ")");
}

// One process, no MPI: every collective over a group of one rank is the identity (avg divides by one).
class LocalBackend : public Backend {
 public:
  WorkHandle all_reduce(const Tensor& t, ReduceOp op) override { return done(OpKind::AllReduce, op, t); }
  WorkHandle broadcast(const Tensor& t, int) override { return done(OpKind::Broadcast, ReduceOp::Sum, t, 0); }
  WorkHandle all_gather(const Tensor& output, const Tensor& input) override {
    copy_flat(output, input);
    return done(OpKind::AllGather, ReduceOp::Sum, input, -1, output);
  }
  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    copy_flat(output, input);
    return done(OpKind::ReduceScatter, op, input, -1, output);
  }
  WorkHandle reduce(const Tensor& t, int, ReduceOp op) override { return done(OpKind::Reduce, op, t, 0); }
  WorkHandle gather(const Tensor& output, const Tensor& input, int) override {
    copy_flat(output, input);
    return done(OpKind::Gather, ReduceOp::Sum, input, 0);
  }
  WorkHandle scatter(const Tensor& output, const Tensor& input, int) override {
    copy_flat(output, input);
    return done(OpKind::Scatter, ReduceOp::Sum, output, 0);
  }
  WorkHandle all_to_all(const Tensor& output, const Tensor& input) override {
    copy_flat(output, input);
    return done(OpKind::AllToAll, ReduceOp::Sum, input, -1, output);
  }
  WorkHandle send(const Tensor&, int, int) override { BRAID_FAIL("send: a single process has no peer"); }
  WorkHandle recv(const Tensor&, int, int) override { BRAID_FAIL("recv: a single process has no peer"); }
  WorkHandle batch_isend_irecv(const std::vector<P2POp>&) override {
    BRAID_FAIL("batch_isend_irecv: a single process has no peer");
  }
  WorkHandle barrier() override { return std::make_shared<CompletedWork>("barrier()"); }
  void shutdown(bool) override {}

 private:
  // Bumps dst's version once either way (copy_ bumps it), as the other backends' operations do.
  static void copy_flat(const Tensor& dst, const Tensor& src) {
    if (dst.raw_data() == src.raw_data()) return dst.bump_version();
    ops::copy_(ops::reshape(dst, {dst.numel()}), ops::reshape(src, {src.numel()}));
  }
  static WorkHandle done(OpKind op, ReduceOp reduce, const Tensor& a, int root = -1, const Tensor& b = Tensor()) {
    return std::make_shared<CompletedWork>(describe(make_signature(op, reduce, root, 0, a, b)));
  }
};

// ---- the groups users hold ----

// What new_group gives a rank outside its list: it knows the members, and every operation throws.
class NonMemberGroup : public ProcessGroup {
 public:
  explicit NonMemberGroup(std::vector<int> ranks) : ranks_(std::move(ranks)) {}
  bool is_member() const override { return false; }
  int rank() const override { return -1; }
  int size() const override { return int(ranks_.size()); }
  const std::vector<int>& ranks() const override { return ranks_; }

  WorkHandle all_reduce(const Tensor&, ReduceOp) override { refuse("all_reduce"); }
  WorkHandle broadcast(const Tensor&, int) override { refuse("broadcast"); }
  WorkHandle all_gather(const Tensor&, const Tensor&) override { refuse("all_gather"); }
  WorkHandle reduce_scatter(const Tensor&, const Tensor&, ReduceOp) override { refuse("reduce_scatter"); }
  WorkHandle reduce(const Tensor&, int, ReduceOp) override { refuse("reduce"); }
  WorkHandle gather(const Tensor&, const Tensor&, int) override { refuse("gather"); }
  WorkHandle scatter(const Tensor&, const Tensor&, int) override { refuse("scatter"); }
  WorkHandle all_to_all(const Tensor&, const Tensor&) override { refuse("all_to_all"); }
  WorkHandle send(const Tensor&, int, int) override { refuse("send"); }
  WorkHandle recv(const Tensor&, int, int) override { refuse("recv"); }
  WorkHandle batch_isend_irecv(const std::vector<P2POp>&) override { refuse("batch_isend_irecv"); }
  WorkHandle barrier() override { refuse("barrier"); }

 private:
  [[noreturn]] void refuse(const char* op) const {
    BRAID_FAIL(op, ": this rank (global ", runtime().rank, ") is not a member of group ", ranks_str(ranks_),
               " (new_group gave it a non-member group; only the listed ranks may use it)");
  }
  std::vector<int> ranks_;
};

// NCCL communicators are made with the group when every rank of this host has a GPU of its own (NCCL refuses two
// ranks of one communicator on one device); otherwise on the group's first CUDA operation.
bool nccl_with_the_group() {
#if BRAID_WITH_NCCL
  return cuda::is_available() && cuda::device_count() >= runtime().local_size;
#else
  return false;
#endif
}

class DispatchingProcessGroup : public ProcessGroup {
 public:
  // `mpi` null: a single process (LocalBackend for every device).
  DispatchingProcessGroup(std::shared_ptr<MpiBackend> mpi, std::vector<int> global_ranks)
      : mpi_(std::move(mpi)), ranks_(std::move(global_ranks)) {
    if (mpi_) {
      rank_ = mpi_->rank();
      size_ = mpi_->size();
      register_backend(mpi_);
      if (nccl_with_the_group()) nccl_for(runtime().local_rank % cuda::device_count(), "new_group");
    } else {
      local_ = std::make_shared<LocalBackend>();
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::vector<int>& ranks() const override { return ranks_; }

  WorkHandle all_reduce(const Tensor& tensor, ReduceOp op) override {
    check_tensor("all_reduce", "input", tensor);
    Backend& b = route("all_reduce", tensor);
    tensor.bump_version();
    return maybe_traced(b.all_reduce(tensor, op), "all_reduce", tensor_bytes(tensor));
  }

  WorkHandle broadcast(const Tensor& tensor, int root) override {
    check_tensor("broadcast", "input", tensor);
    check_root("broadcast", "root", root, size_);
    Backend& b = route("broadcast", tensor);
    if (rank_ != root) tensor.bump_version();
    return maybe_traced(b.broadcast(tensor, root), "broadcast", tensor_bytes(tensor));
  }

  WorkHandle all_gather(const Tensor& output, const Tensor& input) override {
    check_pair("all_gather", output, input);
    BRAID_CHECK(output.numel() == input.numel() * size_, "all_gather: output has ", output.numel(),
                " elements, expected ", input.numel() * size_, " (", size_, " ranks x input's ", input.numel(), ")");
    bool in_place = input.raw_data() == chunk_address(output, input.numel(), rank_);
    BRAID_CHECK(in_place || !overlaps(output, input), "all_gather: the input overlaps the output (it may only be ",
                "the output's own chunk, chunk ", rank_, ")");
    Backend& b = route("all_gather", input);
    bump_unless_local(output);
    return maybe_traced(b.all_gather(output, input), "all_gather", tensor_bytes(output));
  }

  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    check_pair("reduce_scatter", output, input);
    BRAID_CHECK(input.numel() == output.numel() * size_, "reduce_scatter: input has ", input.numel(),
                " elements, expected ", output.numel() * size_, " (", size_, " ranks x output's ", output.numel(), ")");
    BRAID_CHECK(size_ == 1 || !overlaps(output, input), "reduce_scatter: the output must not overlap the input");
    Backend& b = route("reduce_scatter", input);
    bump_unless_local(output);
    return maybe_traced(b.reduce_scatter(output, input, op), "reduce_scatter", tensor_bytes(input));
  }

  WorkHandle reduce(const Tensor& tensor, int dst, ReduceOp op) override {
    check_tensor("reduce", "input", tensor);
    check_root("reduce", "dst", dst, size_);
    Backend& b = route("reduce", tensor);
    if (rank_ == dst) tensor.bump_version();
    return maybe_traced(b.reduce(tensor, dst, op), "reduce", tensor_bytes(tensor));
  }

  WorkHandle gather(const Tensor& output, const Tensor& input, int dst) override {
    check_tensor("gather", "input", input);
    check_root("gather", "dst", dst, size_);
    const bool root = rank_ == dst;
    if (root) {
      check_pair("gather", output, input);
      check_chunks("gather", "output", output, input, size_, rank_);
    }
    Backend& b = route("gather", input);
    if (root) bump_unless_local(output);
    return maybe_traced(b.gather(root ? output : Tensor(), input, dst), "gather", tensor_bytes(input));
  }

  WorkHandle scatter(const Tensor& output, const Tensor& input, int src) override {
    check_tensor("scatter", "output", output);
    check_root("scatter", "src", src, size_);
    const bool root = rank_ == src;
    if (root) {
      check_pair("scatter", output, input);
      check_chunks("scatter", "input", input, output, size_, rank_);
    }
    Backend& b = route("scatter", output);
    bump_unless_local(output);
    return maybe_traced(b.scatter(output, root ? input : Tensor(), src), "scatter", tensor_bytes(output));
  }

  WorkHandle all_to_all(const Tensor& output, const Tensor& input) override {
    check_pair("all_to_all", output, input);
    BRAID_CHECK(output.numel() == input.numel(), "all_to_all: output has ", output.numel(), " elements but input has ",
                input.numel(), " (they must be equal)");
    BRAID_CHECK(input.numel() % size_ == 0, "all_to_all: ", input.numel(), " elements do not split into ", size_,
                " equal chunks (one per rank)");
    BRAID_CHECK(!overlaps(output, input) || (size_ == 1 && output.raw_data() == input.raw_data()),
                "all_to_all: the output must not overlap the input");
    Backend& b = route("all_to_all", input);
    bump_unless_local(output);
    return maybe_traced(b.all_to_all(output, input), "all_to_all", tensor_bytes(input));
  }

  WorkHandle send(const Tensor& tensor, int dst, int tag) override {
    check_tensor("send", "input", tensor);
    check_peer("send", "dst", dst, rank_, size_, tag);
    return maybe_traced(route("send", tensor).send(tensor, dst, tag), "send", tensor_bytes(tensor), ranks_[size_t(dst)],
                        tag);
  }

  WorkHandle recv(const Tensor& tensor, int src, int tag) override {
    check_tensor("recv", "output", tensor);
    check_peer("recv", "src", src, rank_, size_, tag);
    Backend& b = route("recv", tensor);
    tensor.bump_version();
    return maybe_traced(b.recv(tensor, src, tag), "recv", tensor_bytes(tensor), ranks_[size_t(src)], tag);
  }

  WorkHandle batch_isend_irecv(const std::vector<P2POp>& ops) override {
    BRAID_CHECK(!ops.empty(), "batch_isend_irecv: the list of operations is empty");
    for (const P2POp& op : ops) {
      bool is_send = op.kind == P2POp::Kind::ISend;
      const char* name = is_send ? "batch_isend_irecv: isend" : "batch_isend_irecv: irecv";
      check_tensor(name, is_send ? "input" : "output", op.tensor);
      check_peer(name, is_send ? "dst" : "src", op.peer, rank_, size_, op.tag);
      BRAID_CHECK(op.tensor.device() == ops.front().tensor.device(), "batch_isend_irecv: tensors on ",
                  ops.front().tensor.device(), " and ", op.tensor.device(), "; one batch goes over one device");
    }
    Backend& b = route("batch_isend_irecv", ops.front().tensor);
    for (const P2POp& op : ops)
      if (op.kind == P2POp::Kind::IRecv) op.tensor.bump_version();
    return maybe_traced(b.batch_isend_irecv(ops), "batch_isend_irecv", batch_bytes(ops), batch_peer(ops));
  }

  WorkHandle barrier() override {
    require_running("ProcessGroup::barrier");
    check_thread("barrier");
    return maybe_traced(mpi_ ? mpi_->barrier() : local_->barrier(), "barrier", 0);
  }

  // new_group's part on the world group (see MpiBackend::create_group).
  WorkHandle create_group(const std::vector<int>& ranks, int64_t* id, MPI_Comm* out) {
    require_running("new_group");
    check_thread("new_group");
    return mpi_->create_group(ranks, id, out);
  }

 private:
  // Ranks match a group's collectives by issue order, so two threads issuing on one group would pair different
  // calls across ranks (same shapes: silently wrong sums). The first thread that issues on a group keeps it.
  void check_thread(const char* op) {
    const std::thread::id me = std::this_thread::get_id();
    std::thread::id owner = owner_.load(std::memory_order_relaxed);
    if (owner == me) return;
    if (owner == std::thread::id() && owner_.compare_exchange_strong(owner, me)) return;
    BRAID_FAIL(op, ": group ", ranks_str(ranks_), " is already used by another thread; one group may be used from ",
               "one thread only (ranks match its operations by issue order, which two threads would mix up): make a ",
               "group per thread with new_group()");
  }

  int64_t batch_bytes(const std::vector<P2POp>& ops) const {
    int64_t bytes = 0;
    for (const P2POp& op : ops) bytes += tensor_bytes(op.tensor);
    return bytes;
  }
  // The global rank of the batch's one peer, or -1 when it talks to several.
  int batch_peer(const std::vector<P2POp>& ops) const {
    for (const P2POp& op : ops)
      if (op.peer != ops.front().peer) return -1;
    return ranks_[size_t(ops.front().peer)];
  }

  // The single-process backend's copies bump the version themselves.
  void bump_unless_local(const Tensor& t) const {
    if (mpi_) t.bump_version();
  }

  Backend& route(const char* op, const Tensor& t) {
    require_running(op);
    check_thread(op);
    if (!mpi_) return *local_;
    if (t.device().is_cpu()) return *mpi_;
    return nccl_for(t.device().index, op);
  }

  // The group's NCCL backend for CUDA device `device`, made now if it does not exist yet.
  Backend& nccl_for([[maybe_unused]] int device, [[maybe_unused]] const char* op) {
#if BRAID_WITH_NCCL
    std::lock_guard<std::mutex> lock(nccl_mutex_);
    if (!nccl_) {
      nccl_ = make_nccl_backend(mpi_, device, mpi_->global_rank());
      register_backend(nccl_);
      nccl_device_ = device;
    }
    BRAID_CHECK(device == nccl_device_, op, ": the tensor is on cuda:", device, " but this group's NCCL ",
                "communicator was made for cuda:", nccl_device_, " (one device per rank and group)");
    return *nccl_;
#else
    BRAID_FAIL(op, ": the tensor is on cuda:", device,
               ", and this build of Braid has no NCCL backend to communicate "
               "CUDA tensors (it was built without CUDA or NCCL); move the tensor to the CPU first");
#endif
  }

  std::shared_ptr<MpiBackend> mpi_;
  std::shared_ptr<Backend> local_;
  std::atomic<std::thread::id> owner_{};
#if BRAID_WITH_NCCL
  std::mutex nccl_mutex_;
  std::shared_ptr<Backend> nccl_;
  int nccl_device_ = -1;
#endif
  std::vector<int> ranks_;
  int rank_ = 0;
  int size_ = 1;
};

std::shared_ptr<ProcessGroup> make_mpi_group(MPI_Comm comm, std::vector<int> global_ranks, int64_t group_id) {
  return std::make_shared<DispatchingProcessGroup>(std::make_shared<MpiBackend>(comm, global_ranks, group_id),
                                                   global_ranks);
}

}  // namespace

std::shared_ptr<ProcessGroup> make_world_group() {
  const Runtime& rt = runtime();
  std::vector<int> all(size_t(rt.size));
  for (int r = 0; r < rt.size; ++r) all[size_t(r)] = r;
  if (!rt.mpi) return std::make_shared<DispatchingProcessGroup>(nullptr, std::move(all));
  MPI_Comm comm = MPI_COMM_NULL;
  BRAID_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  return make_mpi_group(comm, std::move(all), 0);
}

thread_local bool t_wait_follows = false;

}  // namespace detail

namespace {

// Issues fn() on the group with the hint that the caller waits at once, then waits. A null group is an error,
// never the world: a rank that got no group must not join the world's collective.
template <class Fn>
void issue_and_wait(const std::shared_ptr<ProcessGroup>& group, const char* op, Fn&& fn) {
  BRAID_CHECK(group, "braid::dist::", op, ": the group is null; pass braid::dist::world() for every rank, or a group ",
              "from new_group()");
  WorkHandle work;
  {
    detail::WaitFollowsHint hint;
    work = fn(*group);
  }
  work->wait();
}

}  // namespace

void all_reduce(const Tensor& tensor, ReduceOp op, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "all_reduce", [&](ProcessGroup& g) { return g.all_reduce(tensor, op); });
}
void broadcast(const Tensor& tensor, int root, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "broadcast", [&](ProcessGroup& g) { return g.broadcast(tensor, root); });
}
void all_gather(const Tensor& output, const Tensor& input, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "all_gather", [&](ProcessGroup& g) { return g.all_gather(output, input); });
}
void reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op,
                    const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "reduce_scatter", [&](ProcessGroup& g) { return g.reduce_scatter(output, input, op); });
}
void reduce(const Tensor& tensor, int dst, ReduceOp op, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "reduce", [&](ProcessGroup& g) { return g.reduce(tensor, dst, op); });
}
void gather(const Tensor& output, const Tensor& input, int dst, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "gather", [&](ProcessGroup& g) { return g.gather(output, input, dst); });
}
void scatter(const Tensor& output, const Tensor& input, int src, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "scatter", [&](ProcessGroup& g) { return g.scatter(output, input, src); });
}
void all_to_all(const Tensor& output, const Tensor& input, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "all_to_all", [&](ProcessGroup& g) { return g.all_to_all(output, input); });
}
void send(const Tensor& tensor, int dst, int tag, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "send", [&](ProcessGroup& g) { return g.send(tensor, dst, tag); });
}
void recv(const Tensor& tensor, int src, int tag, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "recv", [&](ProcessGroup& g) { return g.recv(tensor, src, tag); });
}
void batch_isend_irecv(const std::vector<P2POp>& ops, const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "batch_isend_irecv", [&](ProcessGroup& g) { return g.batch_isend_irecv(ops); });
}
void barrier(const std::shared_ptr<ProcessGroup>& group) {
  issue_and_wait(group, "barrier", [&](ProcessGroup& g) { return g.barrier(); });
}

std::shared_ptr<ProcessGroup> world() {
  detail::require_running("world");
  return detail::world_slot();
}

std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks) {
  const detail::Runtime& rt = detail::require_running("new_group");
  BRAID_CHECK(!ranks.empty(), "new_group: the list of ranks is empty");
  std::vector<int> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    BRAID_CHECK(sorted[i] >= 0 && sorted[i] < rt.size, "new_group: rank ", sorted[i], " in ", detail::ranks_str(ranks),
                " is not a rank of the world (ranks 0..", rt.size - 1, ")");
    BRAID_CHECK(i == 0 || sorted[i] != sorted[i - 1], "new_group: rank ", sorted[i], " appears twice in ",
                detail::ranks_str(ranks));
  }
  if (!rt.mpi) {
    if (std::find(ranks.begin(), ranks.end(), rt.rank) == ranks.end())
      return std::make_shared<detail::NonMemberGroup>(ranks);
    return std::make_shared<detail::DispatchingProcessGroup>(nullptr, ranks);
  }
  // Through the world group's queue: every rank's list is checked against the others' first (a rank that passed
  // another list, or issued another collective instead, makes it an error on every rank), and a rank that never
  // comes is caught by the wait's timeout, as for any collective.
  auto* world_group = dynamic_cast<detail::DispatchingProcessGroup*>(world().get());
  BRAID_CHECK(world_group, "new_group: the world group is not an MPI group");
  MPI_Comm comm = MPI_COMM_NULL;
  int64_t id = 0;
  {
    detail::WaitFollowsHint hint;
    WorkHandle work = world_group->create_group(ranks, &id, &comm);
    work->wait();
  }
  if (comm == MPI_COMM_NULL) return std::make_shared<detail::NonMemberGroup>(ranks);
  return detail::make_mpi_group(comm, ranks, id);
}

}  // namespace braid::dist
