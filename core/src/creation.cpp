#include "braid/core/creation.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "braid/core/ops.h"
#include "op_util.h"

namespace braid {

namespace {

// Besides negative sizes: a zero dimension makes the tensor empty, but the strides still multiply the others, so
// their product must fit in int64 too.
void check_shape(const Shape& shape, const char* op) {
  int64_t strides = 1;
  for (int64_t d : shape) {
    BRAID_CHECK(d >= 0, op, ": negative dimension in shape ", shape_str(shape));
    BRAID_CHECK(d <= 1 || strides <= INT64_MAX / d, op, ": shape ", shape_str(shape),
                " has more elements than int64 can count");
    strides *= std::max<int64_t>(d, 1);
  }
}

Tensor finish(Tensor t, const TensorOptions& opts) {
  if (opts.requires_grad) t.requires_grad_(true);
  return t;
}

// Fills a CPU tensor from a generator, then moves it to the requested device.
template <class Fill>
Tensor random_tensor(const Shape& shape, TensorOptions opts, Generator* gen, const char* op, Fill fill) {
  check_shape(shape, op);
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, TensorOptions(opts.dtype, Device::cpu()));
  std::lock_guard<std::mutex> lock(g.mutex());
  dispatch_floating(opts.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = T(fill(g));
  });
  return finish(ops::to_device(t, opts.device), opts);
}

template <class T>
Tensor from_values(const std::vector<T>& values, const Shape& shape, TensorOptions opts) {
  Shape s = shape.empty() ? Shape{int64_t(values.size())} : shape;
  BRAID_CHECK(shape_numel(s) == int64_t(values.size()), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(s));
  Tensor t = empty(s, TensorOptions(dtype_of<T>::value, Device::cpu()));
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return finish(ops::to_device(t, opts.device), opts);
}

}  // namespace

Tensor empty(const Shape& shape, TensorOptions opts) {
  check_shape(shape, "empty");
  size_t nbytes = size_t(shape_numel(shape)) * element_size(opts.dtype);
  return finish(make_tensor(Storage::allocate(nbytes, opts.device), shape, contiguous_strides(shape), 0, opts.dtype),
                opts);
}

Tensor zeros_on_huge_pages(const Shape& shape, TensorOptions opts) {
  check_shape(shape, "zeros_on_huge_pages");
  size_t nbytes = size_t(shape_numel(shape)) * element_size(opts.dtype);
  Tensor t = make_tensor(Storage::allocate(nbytes, opts.device, true), shape, contiguous_strides(shape), 0, opts.dtype);
  ops::detail::fill_into(t, 0);
  return finish(t, opts);
}

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  Tensor t = empty(shape, TensorOptions(opts.dtype, opts.device));
  ops::detail::fill_into(t, value);
  return finish(t, opts);
}

Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }
Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor arange(double end, TensorOptions opts) { return arange(0, end, 1, opts); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  BRAID_CHECK(step != 0, "arange: step must be non-zero");
  BRAID_CHECK((end - start) / step >= 0, "arange: start ", start, ", end ", end, " and step ", step,
              " give no elements in the step's direction");
  int64_t n = int64_t(std::ceil((end - start) / step));
  Tensor t = empty({n}, TensorOptions(opts.dtype, Device::cpu()));
  dispatch_all(opts.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(t.raw_data());
    for (int64_t i = 0; i < n; ++i) p[i] = T(start + double(i) * step);
  });
  return finish(ops::to_device(t, opts.device), opts);
}

Tensor uniform(const Shape& shape, double low, double high, TensorOptions opts, Generator* gen) {
  return random_tensor(shape, opts, gen, "uniform", [&](Generator& g) { return low + (high - low) * g.uniform(); });
}

Tensor rand(const Shape& shape, TensorOptions opts, Generator* gen) { return uniform(shape, 0, 1, opts, gen); }

Tensor normal(const Shape& shape, double mean, double std, TensorOptions opts, Generator* gen) {
  return random_tensor(shape, opts, gen, "normal", [&](Generator& g) { return mean + std * g.normal(); });
}

Tensor randn(const Shape& shape, TensorOptions opts, Generator* gen) { return normal(shape, 0, 1, opts, gen); }

Tensor randperm(int64_t n, Generator* gen) {
  BRAID_CHECK(n >= 0, "randperm: n must be non-negative, got ", n);
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty({n}, DType::Int64);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  std::lock_guard<std::mutex> lock(g.mutex());
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates with an unbiased bounded draw
    uint64_t bound = uint64_t(i) + 1, limit = UINT64_MAX - UINT64_MAX % bound, r;
    do r = g.next(); while (r >= limit);
    std::swap(p[i], p[r % bound]);
  }
  return t;
}

Tensor empty_like(const Tensor& t) { return empty(t.shape(), TensorOptions(t.dtype(), t.device())); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), TensorOptions(t.dtype(), t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), TensorOptions(t.dtype(), t.device())); }

Tensor from_vector(const std::vector<float>& v, const Shape& s, TensorOptions o) { return from_values(v, s, o); }
Tensor from_vector(const std::vector<double>& v, const Shape& s, TensorOptions o) { return from_values(v, s, o); }
Tensor from_vector(const std::vector<int64_t>& v, const Shape& s, TensorOptions o) { return from_values(v, s, o); }

Tensor from_blob(void* data, const Shape& shape, DType dtype, std::function<void(void*)> deleter, Device device) {
  check_shape(shape, "from_blob");
  BRAID_CHECK(data || shape_numel(shape) == 0, "from_blob: null data pointer for shape ", shape_str(shape));
  std::shared_ptr<void> ptr = deleter ? std::shared_ptr<void>(data, deleter) : std::shared_ptr<void>(data, [](void*) {});
  Storage st{ptr, size_t(shape_numel(shape)) * element_size(dtype), device};
  return make_tensor(st, shape, contiguous_strides(shape), 0, dtype);
}

}  // namespace braid
