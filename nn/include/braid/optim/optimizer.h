// Optimizer: the base of SGD, Adam and AdamW. It holds the parameters and the learning rate (which schedulers
// change) and updates parameters in place, without recording a graph, from their accumulated .grad.
#pragma once

#include <vector>

#include "braid/core/core.h"
#include "braid/nn/autograd.h"

namespace braid::optim {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Clears the parameters' gradients (to undefined by default, as PyTorch 2 does).
  void zero_grad(bool set_to_none = true);
  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<Tensor>& params() const { return params_; }

 protected:
  std::vector<Tensor> params_;
  double lr_;
};

}  // namespace braid::optim
