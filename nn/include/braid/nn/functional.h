// The differentiable tensor operations users call. Each validates its arguments (braid::Error naming the op,
// shapes, dtypes and devices), computes with core/ ops and records its backward when an input requires grad.
// Binary ops broadcast NumPy-style; comparisons return 0/1 in the inputs' dtype and are not differentiable.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "braid/core/core.h"
#include "braid/nn/autograd.h"

namespace braid {

// ---- element-wise ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor clamp(const Tensor& a, double lo, double hi);
Tensor relu(const Tensor& a);
// approximate: "none" (x * Phi(x), the exact normal CDF) or "tanh" (PyTorch's tanh approximation).
Tensor gelu(const Tensor& a, std::string_view approximate = "none");
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor affine(const Tensor& a, double scale, double shift);  // a * scale + shift

Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(const Tensor& a, double s);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(const Tensor& a, double s);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(const Tensor& a, double s);
Tensor operator/(double s, const Tensor& a);

// ---- reductions (dims empty = all) ----
Tensor sum(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
// Max / min values; the gradient is shared evenly between tied maxima (as PyTorch's amax).
Tensor amax(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor max(const Tensor& a);
Tensor min(const Tensor& a);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim = false);
// Biased variance (divides by the count), as layer normalisation uses it.
Tensor var(const Tensor& a, std::vector<int64_t> dims, bool keepdim = false);

// ---- shape (views share storage with their input) ----
Tensor reshape(const Tensor& a, const Shape& shape);
Tensor view(const Tensor& a, const Shape& shape);
Tensor transpose(const Tensor& a, int64_t d0, int64_t d1);
Tensor t(const Tensor& a);  // transpose of a 2-D tensor
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims);
Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end);  // [start, end)
Tensor select(const Tensor& a, int64_t dim, int64_t index);
Tensor expand(const Tensor& a, const Shape& shape);
Tensor squeeze(const Tensor& a, int64_t dim);
Tensor unsqueeze(const Tensor& a, int64_t dim);
Tensor flatten(const Tensor& a, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& a);
Tensor clone(const Tensor& a);
Tensor cat(const std::vector<Tensor>& ts, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim = 0);
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);
Tensor to_dtype(const Tensor& a, DType dtype);
Tensor to(const Tensor& a, Device device);

// ---- linear algebra ----
Tensor matmul(const Tensor& a, const Tensor& b);
// x @ weight^T + bias (bias may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- softmax ----
Tensor softmax(const Tensor& a, int64_t dim);
Tensor log_softmax(const Tensor& a, int64_t dim);

}  // namespace braid

namespace braid::nn::functional {

enum class Reduction { None, Mean, Sum };

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// Cross-entropy of logits [N, C] against int64 class indices [N], with a fused log-softmax.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::Mean);
// Negative log-likelihood of log-probabilities [N, C] against int64 class indices [N].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction = Reduction::Mean);
// Zeroes each element with probability p and scales the rest by 1/(1-p) while training.
Tensor dropout(const Tensor& input, double p, bool training, Generator* gen = nullptr);
// Normalises over the trailing dims given by normalized_shape; weight and bias may be undefined.
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps = 1e-5);
Tensor embedding(const Tensor& indices, const Tensor& weight);
// Attention of query [B, H, T, D] over key [B, H, S, D] and value [B, H, S, Dv]: softmax(q k^T * scale) v, with
// scale 1/sqrt(D) by default, as PyTorch's. is_causal (T == S) lets query i see keys 0..i only, through a fused
// softmax (no mask tensor); dropout_p > 0 drops attention probabilities (from gen, or the default generator).
// Differentiable in query, key and value.
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value, bool is_causal = false,
                                    double dropout_p = 0.0, std::optional<double> scale = std::nullopt,
                                    Generator* gen = nullptr);

}  // namespace braid::nn::functional
