// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay, following
// torch.optim.SGD's documented update.
#pragma once

#include "braid/optim/optimizer.h"

namespace braid::optim {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options = {});
  void step() override;
  const SGDOptions& options() const { return options_; }
  // The momentum buffer of parameter i (undefined before the first step or without momentum).
  const Tensor& momentum_buffer(size_t i) const { return buffers_.at(i); }

 private:
  SGDOptions options_;
  std::vector<Tensor> buffers_;
};

}  // namespace braid::optim
