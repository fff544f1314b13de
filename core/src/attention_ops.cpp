// The fused softmax of scaled dot-product attention (kernels/cpu/attention_softmax.h and its CUDA twin).
#include <cmath>

#include "braid/core/creation.h"
#include "braid/kernels/cpu/attention_softmax.h"
#include "op_util.h"

namespace braid::ops {

using detail::check_device;

namespace {

struct ScoreRows {
  int64_t rows, cols, q_len;
};

ScoreRows score_rows(const char* op, const Tensor& scores, double scale, bool causal) {
  BRAID_CHECK(scores.dim() >= 2, op, ": expected scores [.., q_len, k_len], got ", shape_str(scores.shape()));
  BRAID_CHECK(is_floating(scores.dtype()), op, ": expected floating-point scores, got ", scores.dtype());
  BRAID_CHECK(std::isfinite(scale), op, ": scale must be finite, got ", scale);
  const int64_t q_len = scores.shape()[scores.dim() - 2], cols = scores.shape().back();
  BRAID_CHECK(!causal || q_len == cols, op, ": causal attention needs as many queries as keys, got scores ",
              shape_str(scores.shape()));
  return {cols ? scores.numel() / cols : 0, cols, q_len};
}

}  // namespace

Tensor attention_softmax(const Tensor& scores, double scale, bool causal) {
  const char* op = "attention_softmax";
  check_device(op, scores);
  const ScoreRows r = score_rows(op, scores, scale, causal);
  Tensor s = contiguous(scores);
  Tensor out = empty(scores.shape(), TensorOptions(scores.dtype(), scores.device()));
  dispatch_floating(scores.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(
        scores,
        kernels::cpu::attention_softmax<T>(s.data<T>(), out.data<T>(), r.rows, r.cols, r.q_len, causal, T(scale)),
        kernels::cuda::attention_softmax<T>(s.data<T>(), out.data<T>(), r.rows, r.cols, r.q_len, causal, T(scale),
                                            detail::stream_of(scores)));
  });
  return out;
}

Tensor attention_softmax_backward(const Tensor& grad_probs, const Tensor& probs, double scale, bool causal) {
  const char* op = "attention_softmax_backward";
  check_device(op, grad_probs);
  check_device(op, probs);
  check_same_device(op, grad_probs, probs);
  check_same_dtype(op, grad_probs, probs);
  BRAID_CHECK(grad_probs.shape() == probs.shape(), op, ": gradient ", shape_str(grad_probs.shape()),
              " vs probabilities ", shape_str(probs.shape()));
  const ScoreRows r = score_rows(op, probs, scale, causal);
  Tensor g = contiguous(grad_probs), p = contiguous(probs);
  Tensor out = empty(probs.shape(), TensorOptions(probs.dtype(), probs.device()));
  dispatch_floating(probs.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(
        probs,
        kernels::cpu::attention_softmax_backward<T>(g.data<T>(), p.data<T>(), out.data<T>(), r.rows, r.cols, r.q_len,
                                                    causal, T(scale)),
        kernels::cuda::attention_softmax_backward<T>(g.data<T>(), p.data<T>(), out.data<T>(), r.rows, r.cols, r.q_len,
                                                     causal, T(scale), detail::stream_of(probs)));
  });
  return out;
}

}  // namespace braid::ops
