#include "braid/nn/nonfinite.h"

#include <cmath>
#include <sstream>

#include "braid/core/ops.h"

namespace braid::nn {

namespace {

// The row-major position of flat element `flat` in `shape`.
std::vector<int64_t> position(const Shape& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

template <class T>
std::optional<NonFiniteGrad> scan(const std::string& name, const Tensor& host_grad) {
  const T* p = host_grad.data<T>();
  const int64_t n = host_grad.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return NonFiniteGrad{name, position(host_grad.shape(), i), double(p[i])};
  return std::nullopt;
}

std::optional<NonFiniteGrad> scan_on_host(const std::string& name, const Tensor& grad) {
  const Tensor host = ops::contiguous(grad.device().is_cpu() ? grad : ops::to_device(grad, Device::cpu()));
  switch (host.dtype()) {
    case DType::Float32: return scan<float>(name, host);
    case DType::Float64: return scan<double>(name, host);
    case DType::Int64: return std::nullopt;  // integers are always finite
  }
  return std::nullopt;
}

// Whether every element of the device-resident gradients is finite, in one synchronisation: a NaN or infinity
// makes its tensor's sum, and so the sum of the sums, non-finite. A sum can also overflow from finite elements; the
// caller's element scan then finds nothing.
bool all_finite_on_device(const std::vector<Tensor>& grads) {
  if (grads.empty()) return true;
  std::vector<Tensor> sums;
  sums.reserve(grads.size());
  for (const Tensor& g : grads) sums.push_back(ops::to_dtype(ops::sum(g), DType::Float64));
  return std::isfinite(ops::sum(ops::stack(sums, 0)).item<double>());
}

}  // namespace

std::string value_name(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::ostringstream out;
  out << value;
  return out.str();
}

std::string to_string(const NonFiniteGrad& found) {
  std::string text = found.name + "[";
  for (size_t d = 0; d < found.index.size(); ++d) text += (d ? ", " : "") + std::to_string(found.index[d]);
  return text + "] = " + value_name(found.value);
}

std::optional<NonFiniteGrad> first_nonfinite_grad(const std::vector<std::pair<std::string, Tensor>>& named_parameters) {
  std::vector<Tensor> on_device;
  for (const auto& [name, param] : named_parameters) {
    const Tensor grad = param.grad();
    if (grad.defined() && !grad.device().is_cpu() && is_floating(grad.dtype())) on_device.push_back(grad);
  }
  const bool device_finite = all_finite_on_device(on_device);
  for (const auto& [name, param] : named_parameters) {
    const Tensor grad = param.grad();
    if (!grad.defined() || (device_finite && !grad.device().is_cpu())) continue;
    if (auto found = scan_on_host(name, grad)) return found;
  }
  return std::nullopt;
}

}  // namespace braid::nn
