// Checks and helpers the optimizers and schedulers share; internal to nn/src/optim.
#pragma once

#include <cmath>
#include <set>
#include <string>

#include "braid/core/core.h"

namespace braid::optim::detail {

// A gradient the fused kernels can read: contiguous, same dtype and device as the parameter.
inline Tensor usable_grad(const Tensor& p) {
  Tensor g = p.grad();
  return g.defined() ? ops::contiguous(g) : g;
}

inline void check_lr(const std::string& op, double lr) {
  BRAID_CHECK(lr >= 0 && std::isfinite(lr), op, ": learning rate must be finite and >= 0, got ", lr);
}

// A boolean hyper-parameter as a state dict stores it.
inline bool flag_from(const std::string& op, const char* name, double v) {
  BRAID_CHECK(v == 0 || v == 1, op, ": hyper-parameter '", name, "' is a flag (0 or 1), got ", v);
  return v == 1;
}

// An integral setting (a step size, a period) as a state dict stores it.
inline int64_t count_from(const std::string& op, const char* name, double v) {
  BRAID_CHECK(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 0x1p62, op, ": '", name,
              "' must be a whole number, got ", v);
  return int64_t(v);
}

// Names in `got` and not in `want` or the other way round, as "missing 'a', 'b'; unexpected 'c'".
inline std::string name_mismatch(const std::set<std::string>& want, const std::set<std::string>& got) {
  auto quoted = [](const std::set<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
    return out;
  };
  std::set<std::string> missing, unexpected;
  for (const auto& n : want)
    if (!got.count(n)) missing.insert(n);
  for (const auto& n : got)
    if (!want.count(n)) unexpected.insert(n);
  std::string out;
  if (!missing.empty()) out += "missing " + quoted(missing);
  if (!unexpected.empty()) out += (out.empty() ? "" : "; ") + std::string("unexpected ") + quoted(unexpected);
  return out;
}

}  // namespace braid::optim::detail
