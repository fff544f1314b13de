// Tensor factories. Each takes a shape and TensorOptions (dtype, device, requires_grad), which converts from a
// DType or a Device: zeros({2, 3}), randn({64, 10}, device), ones({3}, DType::Float64).
#pragma once

#include <vector>

#include "braid/core/random.h"
#include "braid/core/tensor.h"

namespace braid {

Tensor empty(const Shape& shape, TensorOptions opts = {});
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});
Tensor arange(double end, TensorOptions opts = {});
Tensor arange(double start, double end, double step = 1, TensorOptions opts = {});
// Uniform in [low, high) and normal(mean, std); without a generator they draw from default_generator().
Tensor rand(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor uniform(const Shape& shape, double low, double high, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double std, TensorOptions opts = {}, Generator* gen = nullptr);
// A random permutation of 0..n-1 (int64).
Tensor randperm(int64_t n, Generator* gen = nullptr);

// zeros() on 2 MiB transparent huge pages whatever its size (the CPU storage rounded up to 2 MiB; on CUDA plain
// zeros): for buffers that MPI moves between processes, where pinning small pages costs most of a medium-sized
// transfer (a 1 MiB all-reduce between two ranks here: 85 us on small pages, 36 us on huge ones).
Tensor zeros_on_huge_pages(const Shape& shape, TensorOptions opts = {});

Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);

// Copies the values (the element type picks the dtype); an empty shape means 1-D of values.size().
Tensor from_vector(const std::vector<float>& values, const Shape& shape = {}, TensorOptions opts = {});
Tensor from_vector(const std::vector<double>& values, const Shape& shape = {}, TensorOptions opts = {});
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape = {}, TensorOptions opts = {});
// Wraps a user buffer without copying; `deleter` (may be empty) runs when the last view goes away.
Tensor from_blob(void* data, const Shape& shape, DType dtype, std::function<void(void*)> deleter = {},
                 Device device = Device::cpu());

}  // namespace braid
