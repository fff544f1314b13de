// Finding the first NaN or infinity among parameters' gradients, for training loops that stop at the step where a
// run diverged (as `torch.autograd.detect_anomaly` or an `isfinite` check on the gradients would in PyTorch).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "braid/core/tensor.h"

namespace braid::nn {

// One non-finite gradient element: the parameter's name, the element's position in it and its value (NaN, +inf
// or -inf).
struct NonFiniteGrad {
  std::string name;
  std::vector<int64_t> index;
  double value = 0;
};

// "fc.weight[2, 5] = nan".
std::string to_string(const NonFiniteGrad& found);

// "nan", "inf" or "-inf" (the value of a finite number otherwise).
std::string value_name(double value);

// The first element, in the order given and then row-major within each gradient, whose gradient is NaN or
// infinite; nothing when every defined gradient is finite (parameters without a gradient are skipped). Pass
// `module.named_parameters()`. On a GPU the common case costs one small reduction per parameter and one
// synchronisation; only a non-finite result copies gradients to the host to find the element.
std::optional<NonFiniteGrad> first_nonfinite_grad(const std::vector<std::pair<std::string, Tensor>>& named_parameters);

}  // namespace braid::nn
