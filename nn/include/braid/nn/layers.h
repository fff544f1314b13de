// The standard layers. Each is an Impl (a Module) and a holder of the same name without "Impl"; see module.h.
#pragma once

#include <functional>

#include "braid/nn/module.h"

namespace braid::nn {

// y = x W^T + b, W [out, in] and b [out] initialised as PyTorch does (uniform in +-1/sqrt(in)).
class LinearImpl : public Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x);
  int64_t in_features, out_features;
  Tensor weight, bias;
};
BRAID_MODULE(Linear);

class ReLUImpl : public Module {
 public:
  ReLUImpl() : Module("ReLU") {}
  Tensor forward(const Tensor& x) { return relu(x); }
};
BRAID_MODULE(ReLU);

class GELUImpl : public Module {
 public:
  GELUImpl() : Module("GELU") {}
  Tensor forward(const Tensor& x) { return gelu(x); }
};
BRAID_MODULE(GELU);

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

class LayerNormImpl : public Module {
 public:
  explicit LayerNormImpl(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                         DType dtype = DType::Float32);
  explicit LayerNormImpl(int64_t features, double eps = 1e-5) : LayerNormImpl(Shape{features}, eps) {}
  Tensor forward(const Tensor& x);
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};
BRAID_MODULE(LayerNorm);

// Rows of a [num_embeddings, embedding_dim] table, initialised N(0, 1); indices are int64 of any shape.
class EmbeddingImpl : public Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, DType dtype = DType::Float32);
  Tensor forward(const Tensor& indices);
  Tensor weight;
};
BRAID_MODULE(Embedding);

// Runs its modules in order; each must have Tensor forward(const Tensor&).
class SequentialImpl : public Module {
 public:
  SequentialImpl() : Module("Sequential") {}
  template <class... Holders>
    requires(sizeof...(Holders) >= 1)
  explicit SequentialImpl(Holders&&... modules) : SequentialImpl() {
    (push_back(std::forward<Holders>(modules)), ...);
  }
  template <class Holder>
  void push_back(Holder holder) {
    auto impl = holder.ptr();
    register_module(std::to_string(layers_.size()), impl);
    layers_.push_back([impl](const Tensor& x) { return impl->forward(x); });
  }
  Tensor forward(const Tensor& x);
  size_t size() const { return layers_.size(); }

 private:
  std::vector<std::function<Tensor(const Tensor&)>> layers_;
};
BRAID_MODULE(Sequential);

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
