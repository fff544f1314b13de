// Checks and helpers the optimizers and schedulers share; internal to nn/src/optim.
#pragma once

#include <cmath>

#include "braid/core/core.h"

namespace braid::optim::detail {

// A gradient the fused kernels can read: contiguous, same dtype and device as the parameter.
inline Tensor usable_grad(const Tensor& p) {
  Tensor g = p.grad();
  return g.defined() ? ops::contiguous(g) : g;
}

inline void check_lr(const char* op, double lr) {
  BRAID_CHECK(lr >= 0 && std::isfinite(lr), op, ": learning rate must be finite and >= 0, got ", lr);
}

// A boolean hyper-parameter as a state dict stores it.
inline bool flag_from(const char* op, const char* name, double v) {
  BRAID_CHECK(v == 0 || v == 1, op, ": hyper-parameter '", name, "' is a flag (0 or 1), got ", v);
  return v == 1;
}

// An integral setting (a step size, a period) as a state dict stores it.
inline int64_t count_from(const char* op, const char* name, double v) {
  BRAID_CHECK(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 0x1p62, op, ": '", name,
              "' must be a whole number, got ", v);
  return int64_t(v);
}

}  // namespace braid::optim::detail
