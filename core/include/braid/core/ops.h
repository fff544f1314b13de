// The non-differentiable tensor operations of core/: they validate their arguments, allocate results and call
// the kernels of the tensors' device. nn/ wraps them into the differentiable ops users call (braid::add, ...),
// which also record the autograd graph. Binary ops broadcast NumPy-style; results are contiguous.
#pragma once

#include <vector>

#include "braid/core/memory_overlap.h"
#include "braid/core/tensor.h"
#include "braid/kernels/op_kinds.h"

namespace braid::ops {

// ---- element-wise ----
// The operation names are the kernels' (op_kinds.h), so CPU and CUDA run the same functor for each.
using kernels::BinaryOp;
using kernels::UnaryOp;
// Backward of an activation from the incoming gradient and the saved input (Relu, Gelu, GeluTanh) or output (Tanh,
// Sigmoid). GeluTanh is GELU's tanh approximation (approximate="tanh").
enum class ActivationBackward { Relu, Gelu, GeluTanh, Tanh, Sigmoid };

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor unary(UnaryOp op, const Tensor& a);
Tensor activation_backward(ActivationBackward op, const Tensor& grad, const Tensor& saved);
Tensor affine(const Tensor& a, double scale, double shift);  // a * scale + shift
Tensor clamp(const Tensor& a, double lo, double hi);
Tensor clamp_backward(const Tensor& grad, const Tensor& input, double lo, double hi);
Tensor pow_scalar(const Tensor& a, double exponent);

// ---- in place (the caller handles autograd: these are for optimizers and no-grad code) ----
// Every in-place op (here, gemm_into and the optimizer updates) bumps its destination's version once per call,
// refuses a destination with internal overlap, and a source that partially overlaps it (memory_overlap.h); a
// source that is exactly the destination is fine, and copy_(a, a) does nothing but the bump.
void copy_(const Tensor& dst, const Tensor& src);  // broadcasts src to dst's shape, converts dtype
void fill_(const Tensor& dst, double value);
void add_(const Tensor& dst, const Tensor& src, double alpha = 1);  // dst += alpha * src
void mul_(const Tensor& dst, double value);
void affine_(const Tensor& dst, const Tensor& src, double scale, double shift = 0);  // dst = src * scale + shift

// ---- conversion ----
Tensor contiguous(const Tensor& t);
Tensor clone(const Tensor& t);
Tensor to_dtype(const Tensor& t, DType dtype);
Tensor to_device(const Tensor& t, Device device);

// ---- views (share storage) ----
Tensor view(const Tensor& t, const Shape& shape);      // error if the strides cannot express it
Tensor reshape(const Tensor& t, const Shape& shape);   // a view when possible, else a copy
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& t, int64_t dim, int64_t index);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);  // resolves one -1

Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);

// ---- reductions (dims empty = all dims) ----
Tensor sum(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amax(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim = false);
// Sums a broadcast result back to `shape` (the gradient of a broadcast).
Tensor sum_to(const Tensor& t, const Shape& shape);

// ---- linear algebra ----
// 2-D @ 2-D, batched 3-D @ 3-D (batch broadcast when one side has batch 1), N-D @ 2-D.
Tensor matmul(const Tensor& a, const Tensor& b);
// [batch, m, k] @ [batch, k, n] as one strided-batched GEMM, operands that are batches of row-major or transposed
// matrices (a transposed view included) read in place; on the CPU each thread multiplies whole matrices.
Tensor bmm(const Tensor& a, const Tensor& b);
// out = beta * out + alpha * op(a) @ op(b) for 2-D operands; transposed views go to BLAS as flags. `out` must
// not share memory with a or b.
void gemm_into(const Tensor& out, const Tensor& a, const Tensor& b, double alpha = 1, double beta = 0);
// x @ w^T + bias, x [.., in], w [out, in], bias [out] or undefined: the Linear layer's forward.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);

// ---- softmax and losses ----
Tensor softmax(const Tensor& t, int64_t dim, bool log = false);
Tensor softmax_backward(const Tensor& grad, const Tensor& output, int64_t dim, bool log = false);
// Per-sample negative log-likelihood of int64 targets [n] under log-probabilities [n, c].
Tensor nll(const Tensor& log_probs, const Tensor& target);
// Gradient of per-sample nll w.r.t. log-probabilities (from_log_softmax=false) or w.r.t. the logits of a fused
// log-softmax (true); grad_loss is [n] or one element, times scale.
Tensor nll_backward(const Tensor& log_probs, const Tensor& target, const Tensor& grad_loss, double scale,
                    bool from_log_softmax);

// ---- fused attention softmax and layer normalisation ----
// P = softmax(scale * scores) over the last dim of scores [.., q_len, k_len], max-subtracted; causal (q_len ==
// k_len) lets query i see keys 0..i only, the others getting probability exactly 0, with no mask tensor. The
// backward gives the gradient of the raw scores from the gradient of P and P itself.
Tensor attention_softmax(const Tensor& scores, double scale, bool causal);
Tensor attention_softmax_backward(const Tensor& grad_probs, const Tensor& probs, double scale, bool causal);
// Layer normalisation over the trailing dims of input that hold normalized_numel elements; weight and bias have
// that many elements or are undefined. mean and rstd (one per normalised row, [rows]) are what the backward reads.
struct LayerNormOutput {
  Tensor output, mean, rstd;
};
LayerNormOutput layer_norm(const Tensor& input, int64_t normalized_numel, const Tensor& weight, const Tensor& bias,
                           double eps);
// The gradients asked for (undefined where not); those of weight and bias are [normalized_numel].
struct LayerNormGrads {
  Tensor input, weight, bias;
};
LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& input, int64_t normalized_numel,
                                   const Tensor& weight, const Tensor& mean, const Tensor& rstd, bool input_grad,
                                   bool weight_grad, bool bias_grad);

// ---- indexing ----
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);  // index: int64, 1-D or any shape for dim 0
// out[index[i]] += src[i] along dim 0, out of shape `shape` (the gradient of index_select / embedding).
Tensor index_add(const Shape& shape, const Tensor& index, const Tensor& src);

// ---- checks ----
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace braid::ops

namespace braid {
void set_num_threads(int n);
int get_num_threads();
}  // namespace braid

namespace braid::ops {
// ---- fused optimizer updates, in place on contiguous tensors of one dtype and device ----
// The parameter and its state buffers must not share memory; the gradient may be the parameter itself, not a
// part of it. Each tensor written has its version bumped.
struct SgdParams {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};
// momentum_buffer may be undefined when momentum is 0.
void sgd_update_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdParams& p);
struct AdamParams {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // 1 for the first update
  bool decoupled_weight_decay;
};
void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamParams& p);
}  // namespace braid::ops
