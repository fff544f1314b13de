#include "braid/nn/layers.h"

#include <cmath>

#include "braid/nn/init.h"

namespace braid::nn {

namespace {
// Parameters are initialised on the CPU, where the generator is, and then moved, so the values do not depend on
// the device they are born on.
Tensor on_device(const Tensor& cpu_value, Device device) { return ops::to_device(cpu_value, device); }
}  // namespace

LinearImpl::LinearImpl(int64_t in, int64_t out, const LinearOptions& o)
    : Module("Linear"), in_features(in), out_features(out) {
  BRAID_CHECK(in > 0 && out > 0, "Linear: in_features and out_features must be positive, got ", in, " and ", out);
  Tensor w = empty({out, in}, o.dtype);
  init::kaiming_uniform_(w, std::sqrt(5.0));
  weight = register_parameter("weight", on_device(w, o.device));
  if (o.bias) {
    Tensor b = empty({out}, o.dtype);
    double bound = 1.0 / std::sqrt(double(in));
    init::uniform_(b, -bound, bound);
    bias = register_parameter("bias", on_device(b, o.device));
  }
}

Tensor LinearImpl::forward(const Tensor& x) { return linear(x, weight, bias); }

DropoutImpl::DropoutImpl(double prob) : Module("Dropout"), p(prob) {
  BRAID_CHECK(p >= 0 && p <= 1, "Dropout: probability must be in [0, 1], got ", p);
}

Tensor DropoutImpl::forward(const Tensor& x) { return functional::dropout(x, p, is_training()); }

LayerNormImpl::LayerNormImpl(Shape shape, const LayerNormOptions& o)
    : Module("LayerNorm"), normalized_shape(std::move(shape)), eps(o.eps) {
  BRAID_CHECK(!normalized_shape.empty(), "LayerNorm: normalized_shape must not be empty");
  if (o.elementwise_affine) {
    weight = register_parameter("weight", ones(normalized_shape, TensorOptions(o.dtype, o.device)));
    bias = register_parameter("bias", zeros(normalized_shape, TensorOptions(o.dtype, o.device)));
  }
}

Tensor LayerNormImpl::forward(const Tensor& x) {
  return functional::layer_norm(x, normalized_shape, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim, const EmbeddingOptions& o) : Module("Embedding") {
  BRAID_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got ", num, " x ", dim);
  weight = register_parameter("weight", on_device(randn({num, dim}, o.dtype), o.device));
}

Tensor EmbeddingImpl::forward(const Tensor& indices) { return functional::embedding(indices, weight); }

}  // namespace braid::nn
