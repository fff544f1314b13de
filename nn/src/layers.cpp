#include "braid/nn/layers.h"

#include <cmath>

#include "braid/nn/init.h"

namespace braid::nn {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, DType dtype)
    : Module("Linear"), in_features(in), out_features(out) {
  BRAID_CHECK(in > 0 && out > 0, "Linear: in_features and out_features must be positive, got ", in, " and ", out);
  weight = register_parameter("weight", empty({out, in}, dtype));
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    bias = register_parameter("bias", empty({out}, dtype));
    double bound = 1.0 / std::sqrt(double(in));
    init::uniform_(bias, -bound, bound);
  }
}

Tensor LinearImpl::forward(const Tensor& x) { return linear(x, weight, bias); }

DropoutImpl::DropoutImpl(double prob) : Module("Dropout"), p(prob) {
  BRAID_CHECK(p >= 0 && p <= 1, "Dropout: probability must be in [0, 1], got ", p);
}

Tensor DropoutImpl::forward(const Tensor& x) { return functional::dropout(x, p, is_training()); }

LayerNormImpl::LayerNormImpl(Shape shape, double e, bool affine, DType dtype)
    : Module("LayerNorm"), normalized_shape(std::move(shape)), eps(e) {
  BRAID_CHECK(!normalized_shape.empty(), "LayerNorm: normalized_shape must not be empty");
  if (affine) {
    weight = register_parameter("weight", ones(normalized_shape, dtype));
    bias = register_parameter("bias", zeros(normalized_shape, dtype));
  }
}

Tensor LayerNormImpl::forward(const Tensor& x) {
  return functional::layer_norm(x, normalized_shape, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim, DType dtype) : Module("Embedding") {
  BRAID_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got ", num, " x ", dim);
  weight = register_parameter("weight", randn({num, dim}, dtype));
}

Tensor EmbeddingImpl::forward(const Tensor& indices) { return functional::embedding(indices, weight); }

Tensor SequentialImpl::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& f : layers_) h = f(h);
  return h;
}

}  // namespace braid::nn
