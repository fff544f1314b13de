#include "pipeline_forward.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

#include "braid/core/creation.h"
#include "braid/core/error.h"
#include "braid/core/ops.h"
#include "braid/nn/autograd.h"

namespace braid::dist::detail {
namespace {

constexpr int64_t kMaxDims = 8;
constexpr int64_t kHeader = 3 + kMaxDims;  // ok, dtype, rank, sizes
constexpr int64_t kMessageWords = 64;      // the failing stage's message, truncated to 511 bytes

const TensorOptions kInt64Cpu(DType::Int64, Device::cpu());

// What the forward of one stage left: its output, or why there is none.
struct StageResult {
  Tensor output;
  bool ok = true;
};

void send_boundary(ProcessGroup& group, int dst, const StageResult& result) {
  std::vector<int64_t> header(size_t(kHeader), 0);
  if (result.ok) {
    header[0] = 1;
    header[1] = int64_t(result.output.dtype());
    header[2] = result.output.dim();
    std::copy(result.output.shape().begin(), result.output.shape().end(), header.begin() + 3);
  }
  group.send(from_vector(header, {kHeader}), dst)->wait();
  if (result.ok) group.send(ops::contiguous(ops::to_device(result.output, Device::cpu())), dst)->wait();
}

StageResult recv_boundary(ProcessGroup& group, int src) {
  Tensor header = zeros({kHeader}, kInt64Cpu);
  group.recv(header, src)->wait();
  const int64_t* h = header.data<int64_t>();
  if (h[0] != 1) return {Tensor(), false};
  Tensor activation = empty(Shape(h + 3, h + 3 + h[2]), TensorOptions(DType(h[1]), Device::cpu()));
  group.recv(activation, src)->wait();
  return {activation, true};
}

Device stage_device(const nn::Sequential& stage) {
  auto params = stage->parameters();
  return params.empty() ? Device::cpu() : params.front().device();
}

// The stage on the input it was given; a thrown error is kept in `error` and reported as a failed result.
StageResult run_stage(const nn::Sequential& stage, const Tensor& input, bool sends_on, std::string& error) {
  try {
    BRAID_CHECK(input.defined(), "Pipeline::forward: stage 0 needs the input, got an undefined tensor");
    Tensor out = stage->forward(ops::to_device(input, stage_device(stage)));
    BRAID_CHECK(!sends_on || out.dim() <= kMaxDims, "Pipeline::forward: the stage's output has ", out.dim(),
                " dimensions, at most ", kMaxDims, " can cross between ranks");
    return {out, true};
  } catch (const std::exception& e) {
    error = e.what();
    return {Tensor(), false};
  }
}

// Throws the failing stage's error on every rank of the group, or returns when no stage failed.
void agree_on_failure(ProcessGroup& group, int num_stages, int failed_stage, const std::string& error) {
  Tensor worst = from_vector(std::vector<int64_t>{failed_stage + 1}, {1});
  group.all_reduce(worst, ReduceOp::Max)->wait();
  const int64_t stage = worst.data<int64_t>()[0] - 1;
  if (stage < 0) return;
  const int owner = int(stage % group.size());
  Tensor message = zeros({kMessageWords}, kInt64Cpu);
  if (group.rank() == owner)
    std::memcpy(message.raw_data(), error.data(), std::min(error.size(), size_t(kMessageWords * 8 - 1)));
  group.broadcast(message, owner)->wait();
  std::string text(static_cast<const char*>(message.raw_data()));
  BRAID_FAIL("Pipeline::forward: stage ", stage, " of ", num_stages, " on rank ", owner, " failed: ", text);
}

}  // namespace

Tensor forward_through_stages(const std::vector<nn::Sequential>& stages, ProcessGroup& group, int num_stages,
                              const Tensor& input) {
  NoGradGuard no_grad;
  const int rank = group.rank(), p = group.size();
  StageResult carried;  // the output of this rank's previous stage, handed over in place when p == 1
  int failed_stage = -1;
  std::string error;
  for (int s = rank; s < num_stages; s += p) {
    StageResult in = s == 0 ? StageResult{input, true} : carried;
    if (s > 0 && (s - 1) % p != rank) in = recv_boundary(group, (s - 1) % p);
    const bool sends_on = s + 1 < num_stages && (s + 1) % p != rank;
    StageResult out{Tensor(), false};
    if (in.ok) {
      out = run_stage(stages[size_t(s / p)], in.output, sends_on, error);
      if (!out.ok) failed_stage = s;
    }
    if (sends_on) send_boundary(group, (s + 1) % p, out);
    carried = out;
  }
  agree_on_failure(group, num_stages, failed_stage, error);
  return (num_stages - 1) % p == rank ? carried.output : Tensor();
}

}  // namespace braid::dist::detail
