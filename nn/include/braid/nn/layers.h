// The standard layers. Each is an Impl (a Module) and a holder of the same name without "Impl"; see module.h.
// A layer with parameters takes an options struct naming the device and dtype they are born with
// (nn::Linear(10, 1, {.bias = false, .device = Device::cuda(0)})); they are initialised on the CPU from the
// generator and then moved, so a seed gives the same values on every device, and the float32 values are the
// float64 ones rounded.
#pragma once

#include <functional>
#include <string>

#include "braid/nn/containers.h"
#include "braid/nn/module.h"

namespace braid::nn {

struct LinearOptions {
  bool bias = true;
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

// y = x W^T + b, W [out, in] and b [out] initialised as PyTorch does (uniform in +-1/sqrt(in)).
class LinearImpl : public Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, const LinearOptions& options);
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true, DType dtype = DType::Float32)
      : LinearImpl(in_features, out_features, LinearOptions{.bias = bias, .dtype = dtype}) {}
  Tensor forward(const Tensor& x);
  int64_t in_features, out_features;
  Tensor weight, bias;
};
// Not BRAID_MODULE: braced options ({.bias = false}) cannot be deduced through the holder's forwarding
// constructor, so this holder names the options type.
class Linear : public ModuleHolder<LinearImpl> {
 public:
  using ModuleHolder<LinearImpl>::ModuleHolder;
  Linear(int64_t in_features, int64_t out_features, const LinearOptions& options)
      : ModuleHolder(std::make_shared<LinearImpl>(in_features, out_features, options)) {}
};

class ReLUImpl : public Module {
 public:
  ReLUImpl() : Module("ReLU") {}
  Tensor forward(const Tensor& x) { return relu(x); }
};
BRAID_MODULE(ReLU);

struct GELUOptions {
  std::string approximate = "none";  // "none" (exact, erf) or "tanh", PyTorch's names; see braid::gelu
};

class GELUImpl : public Module {
 public:
  explicit GELUImpl(GELUOptions options_ = {}) : Module("GELU"), options(std::move(options_)) {
    BRAID_CHECK(options.approximate == "none" || options.approximate == "tanh",
                "GELU: approximate must be \"none\" or \"tanh\", got \"", options.approximate, "\"");
  }
  Tensor forward(const Tensor& x) { return gelu(x, options.approximate); }
  GELUOptions options;
};
// Not BRAID_MODULE: a braced GELUOptions (nn::GELU({.approximate = "tanh"})) cannot be deduced through the
// holder's forwarding constructor, so this holder names the options type.
class GELU : public ModuleHolder<GELUImpl> {
 public:
  using ModuleHolder<GELUImpl>::ModuleHolder;
  explicit GELU(GELUOptions options = {}) : ModuleHolder<GELUImpl>(std::make_shared<GELUImpl>(std::move(options))) {}
};

class TanhImpl : public Module {
 public:
  TanhImpl() : Module("Tanh") {}
  Tensor forward(const Tensor& x) { return braid::tanh(x); }
};
BRAID_MODULE(Tanh);

class SigmoidImpl : public Module {
 public:
  SigmoidImpl() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) { return sigmoid(x); }
};
BRAID_MODULE(Sigmoid);

// Zeroes elements with probability p while training (scaling the rest by 1/(1-p)); the identity in eval().
class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(double p = 0.5);
  Tensor forward(const Tensor& x);
  double p;
};
BRAID_MODULE(Dropout);

struct LayerNormOptions {
  double eps = 1e-5;
  bool elementwise_affine = true;
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

class LayerNormImpl : public Module {
 public:
  LayerNormImpl(Shape normalized_shape, const LayerNormOptions& options);
  LayerNormImpl(int64_t features, const LayerNormOptions& options) : LayerNormImpl(Shape{features}, options) {}
  explicit LayerNormImpl(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                         DType dtype = DType::Float32)
      : LayerNormImpl(std::move(normalized_shape),
                      LayerNormOptions{.eps = eps, .elementwise_affine = elementwise_affine, .dtype = dtype}) {}
  explicit LayerNormImpl(int64_t features, double eps = 1e-5) : LayerNormImpl(Shape{features}, eps) {}
  Tensor forward(const Tensor& x);
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};
class LayerNorm : public ModuleHolder<LayerNormImpl> {
 public:
  using ModuleHolder<LayerNormImpl>::ModuleHolder;
  LayerNorm(Shape normalized_shape, const LayerNormOptions& options)
      : ModuleHolder(std::make_shared<LayerNormImpl>(std::move(normalized_shape), options)) {}
  LayerNorm(int64_t features, const LayerNormOptions& options)
      : ModuleHolder(std::make_shared<LayerNormImpl>(features, options)) {}
};

struct EmbeddingOptions {
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

// Rows of a [num_embeddings, embedding_dim] table, initialised N(0, 1); indices are int64 of any shape.
class EmbeddingImpl : public Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, const EmbeddingOptions& options);
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, DType dtype = DType::Float32)
      : EmbeddingImpl(num_embeddings, embedding_dim, EmbeddingOptions{.dtype = dtype}) {}
  Tensor forward(const Tensor& indices);
  Tensor weight;
};
class Embedding : public ModuleHolder<EmbeddingImpl> {
 public:
  using ModuleHolder<EmbeddingImpl>::ModuleHolder;
  Embedding(int64_t num_embeddings, int64_t embedding_dim, const EmbeddingOptions& options)
      : ModuleHolder(std::make_shared<EmbeddingImpl>(num_embeddings, embedding_dim, options)) {}
};

// Losses as modules (the functions are in braid::nn::functional).
class MSELossImpl : public Module {
 public:
  explicit MSELossImpl(functional::Reduction r = functional::Reduction::Mean) : Module("MSELoss"), reduction(r) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return functional::mse_loss(input, target, reduction); }
  functional::Reduction reduction;
};
BRAID_MODULE(MSELoss);

class CrossEntropyLossImpl : public Module {
 public:
  explicit CrossEntropyLossImpl(functional::Reduction r = functional::Reduction::Mean)
      : Module("CrossEntropyLoss"), reduction(r) {}
  Tensor forward(const Tensor& logits, const Tensor& target) {
    return functional::cross_entropy(logits, target, reduction);
  }
  functional::Reduction reduction;
};
BRAID_MODULE(CrossEntropyLoss);

class NLLLossImpl : public Module {
 public:
  explicit NLLLossImpl(functional::Reduction r = functional::Reduction::Mean) : Module("NLLLoss"), reduction(r) {}
  Tensor forward(const Tensor& log_probs, const Tensor& target) {
    return functional::nll_loss(log_probs, target, reduction);
  }
  functional::Reduction reduction;
};
BRAID_MODULE(NLLLoss);

// The loss functions under the names PyTorch users know.
using functional::cross_entropy;
using functional::mse_loss;
using functional::nll_loss;

}  // namespace braid::nn
