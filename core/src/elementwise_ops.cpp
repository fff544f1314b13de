#include <cstring>

#include "braid/core/creation.h"
#include "braid/core/memory_overlap.h"
#include "braid/kernels/cpu/threads.h"
#include "braid/kernels/functors.h"
#include "braid/kernels/op_kinds.h"
#include "op_util.h"

namespace braid::ops {

using detail::check_device;
using detail::make_loop;
namespace k = braid::kernels;
namespace kc = braid::kernels::cpu;

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  BRAID_CHECK(a.device() == b.device(), op, ": tensors are on different devices (", a.device(), " and ",
              b.device(), "); move one with .to(device) first");
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  BRAID_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", a.dtype(), " ", shape_str(a.shape()), " and ",
              b.dtype(), " ", shape_str(b.shape()), "); convert one with to_dtype first");
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    BRAID_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

void check_integer_ok(bool ok, const char* name, const Tensor& a) {
  BRAID_CHECK(ok || is_floating(a.dtype()), name, ": expected a floating-point tensor, got ", a.dtype(), " ",
              shape_str(a.shape()));
}

// out = op(a, b) over a loop; one functor per op, launched on the out tensor's device.
void launch_binary(BinaryOp op, kernels::OpParams p, const kc::Loop<3>& L, const Tensor& out, const Tensor& a,
                   const Tensor& b) {
  dispatch_all(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = static_cast<T*>(out.raw_data());
    const T* x = static_cast<const T*>(a.raw_data());
    const T* y = static_cast<const T*>(b.raw_data());
#if BRAID_WITH_CUDA
    if (out.device().is_cuda()) return kernels::cuda::binary<T>(op, p, L, o, x, y, detail::stream_of(out));
#endif
    k::with_binary(op, p, [&](auto f) { kc::binary(f, L, o, x, y); });
  });
}

void launch_unary(UnaryOp op, kernels::OpParams p, const kc::Loop<2>& L, const Tensor& out, const Tensor& a) {
  dispatch_all(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = static_cast<T*>(out.raw_data());
    const T* x = static_cast<const T*>(a.raw_data());
#if BRAID_WITH_CUDA
    if (out.device().is_cuda()) return kernels::cuda::unary<T>(op, p, L, o, x, detail::stream_of(out));
#endif
    k::with_unary(op, p, [&](auto f) { kc::unary(f, L, o, x); });
  });
}

Tensor binary_op(BinaryOp op, kernels::OpParams p, const Tensor& a, const Tensor& b) {
  const char* name = k::op_name(op);
  check_device(name, a);
  check_device(name, b);
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  check_integer_ok(k::integer_ok(op), name, a);
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(s, TensorOptions(a.dtype(), a.device()));
  launch_binary(op, p, make_loop<3>(s, {&out, &a, &b}), out, a, b);
  return out;
}

Tensor unary_op(UnaryOp op, kernels::OpParams p, const Tensor& a) {
  const char* name = k::op_name(op);
  check_device(name, a);
  check_integer_ok(k::integer_ok(op), name, a);
  Tensor out = empty(a.shape(), TensorOptions(a.dtype(), a.device()));
  launch_unary(op, p, make_loop<2>(a.shape(), {&out, &a}), out, a);
  return out;
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) { return binary_op(op, {}, a, b); }

Tensor unary(UnaryOp op, const Tensor& a) { return unary_op(op, {}, a); }

namespace {
BinaryOp activation_backward_op(ActivationBackward op) {
  switch (op) {
    case ActivationBackward::Relu: return BinaryOp::ReluBackward;
    case ActivationBackward::Gelu: return BinaryOp::GeluBackward;
    case ActivationBackward::GeluTanh: return BinaryOp::GeluTanhBackward;
    case ActivationBackward::Tanh: return BinaryOp::TanhBackward;
    case ActivationBackward::Sigmoid: return BinaryOp::SigmoidBackward;
  }
  BRAID_FAIL("activation_backward: unknown activation ", int(op));
}
}  // namespace

Tensor activation_backward(ActivationBackward op, const Tensor& grad, const Tensor& saved) {
  BRAID_CHECK(grad.shape() == saved.shape(), "activation_backward: gradient ", shape_str(grad.shape()),
              " and saved tensor ", shape_str(saved.shape()), " differ");
  return binary_op(activation_backward_op(op), {}, grad, saved);
}

Tensor affine(const Tensor& a, double scale, double shift) { return unary_op(UnaryOp::Affine, {scale, shift}, a); }

Tensor clamp(const Tensor& a, double lo, double hi) {
  BRAID_CHECK(lo <= hi, "clamp: min ", lo, " is greater than max ", hi);
  return unary_op(UnaryOp::Clamp, {lo, hi}, a);
}

Tensor clamp_backward(const Tensor& grad, const Tensor& input, double lo, double hi) {
  return binary_op(BinaryOp::ClampBackward, {lo, hi}, grad, input);
}

Tensor pow_scalar(const Tensor& a, double exponent) { return unary_op(UnaryOp::PowScalar, {exponent, 0}, a); }

// ---- in place ----

namespace {

void check_copy_args(const Tensor& dst, const Tensor& src) {
  check_device("copy_", dst);
  check_device("copy_", src);
  Shape s = broadcast_shapes(dst.shape(), src.shape(), "copy_");
  BRAID_CHECK(s == dst.shape(), "copy_: source ", shape_str(src.shape()), " does not broadcast to destination ",
              shape_str(dst.shape()));
}

void check_add_args(const char* op, const Tensor& dst, const Tensor& src) {
  check_device(op, dst);
  check_device(op, src);
  check_same_device(op, dst, src);
  check_same_dtype(op, dst, src);
}

// copy_'s write, its arguments checked by the caller.
void copy_checked(const Tensor& dst, const Tensor& src) {
  bool plain = dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape();
  size_t nbytes = size_t(dst.numel()) * element_size(dst.dtype());
  if (dst.device() != src.device()) {
#if BRAID_WITH_CUDA
    // Across devices: bring the source to the destination's device as a plain block, then copy there.
    Tensor block = plain ? src : contiguous(to_dtype(src, dst.dtype()));
    if (block.shape() != dst.shape() || !dst.is_contiguous()) {
      Tensor staged = empty(block.shape(), TensorOptions(block.dtype(), dst.device()));
      cuda::detail::copy_bytes(staged.raw_data(), dst.device(), block.raw_data(), block.device(),
                               size_t(block.numel()) * element_size(block.dtype()));
      return copy_checked(dst, staged);
    }
    cuda::detail::copy_bytes(dst.raw_data(), dst.device(), block.raw_data(), block.device(), nbytes);
    return;
#endif
  }
  if (plain) {
    if (dst.raw_data() == src.raw_data()) return;
#if BRAID_WITH_CUDA
    if (dst.device().is_cuda())
      return cuda::detail::copy_bytes(dst.raw_data(), dst.device(), src.raw_data(), src.device(), nbytes);
#endif
    std::memcpy(dst.raw_data(), src.raw_data(), nbytes);
    return;
  }
  auto L = make_loop<2>(dst.shape(), {&dst, &src});
  dispatch_all(dst.dtype(), [&](auto to) {
    using TO = typename decltype(to)::type;
    dispatch_all(src.dtype(), [&](auto from) {
      using TF = typename decltype(from)::type;
      TO* o = static_cast<TO*>(dst.raw_data());
      const TF* x = static_cast<const TF*>(src.raw_data());
#if BRAID_WITH_CUDA
      if (dst.device().is_cuda()) return kernels::cuda::convert<TO, TF>(L, o, x, detail::stream_of(dst));
#endif
      kc::unary([](TF v) { return v; }, L, o, x);
    });
  });
}

}  // namespace

namespace detail {

void copy_into(const Tensor& dst, const Tensor& src) {
  check_copy_args(dst, src);
  copy_checked(dst, src);
}

void fill_into(const Tensor& dst, double value) {
  check_device("fill_", dst);
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T x = T(value);
    if (dst.is_contiguous()) {
      T* p = static_cast<T*>(dst.raw_data());
      int64_t n = dst.numel();
#if BRAID_WITH_CUDA
      if (dst.device().is_cuda()) return kernels::cuda::fill<T>(p, n, x, detail::stream_of(dst));
#endif
#pragma omp parallel for simd if (n >= kc::kParallelGrain)
      for (int64_t i = 0; i < n; ++i) p[i] = x;
      return;
    }
    copy_into(dst, full({}, value, TensorOptions(dst.dtype(), dst.device())));
  });
}

void scale_into(const Tensor& dst, double value) {
  check_device("mul_", dst);
  launch_unary(UnaryOp::Affine, {value, 0}, make_loop<2>(dst.shape(), {&dst, &dst}), dst, dst);
}

}  // namespace detail

// Each in-place op checks its arguments, then the overlaps, and bumps the destination's version once before it
// writes (so a write that fails halfway still counts as a change).
void copy_(const Tensor& dst, const Tensor& src) {
  check_copy_args(dst, src);
  check_no_internal_overlap("copy_", dst);
  bool self_copy = check_no_partial_overlap("copy_", dst, src) == MemoryOverlap::Full;
  dst.bump_version();
  if (!self_copy) copy_checked(dst, src);
}

void fill_(const Tensor& dst, double value) {
  check_device("fill_", dst);
  check_no_internal_overlap("fill_", dst);
  dst.bump_version();
  detail::fill_into(dst, value);
}

void add_(const Tensor& dst, const Tensor& src, double alpha) {
  check_add_args("add_", dst, src);
  Shape s = broadcast_shapes(dst.shape(), src.shape(), "add_");
  BRAID_CHECK(s == dst.shape(), "add_: source ", shape_str(src.shape()), " does not broadcast to destination ",
              shape_str(dst.shape()));
  check_no_internal_overlap("add_", dst);
  check_no_partial_overlap("add_", dst, src);
  dst.bump_version();
  launch_binary(alpha == 1 ? BinaryOp::Add : BinaryOp::AddScaled, {alpha, 0}, make_loop<3>(s, {&dst, &dst, &src}),
                dst, dst, src);
}

void mul_(const Tensor& dst, double value) {
  check_device("mul_", dst);
  check_no_internal_overlap("mul_", dst);
  dst.bump_version();
  detail::scale_into(dst, value);
}

void affine_(const Tensor& dst, const Tensor& src, double scale, double shift) {
  check_add_args("affine_", dst, src);
  BRAID_CHECK(dst.shape() == src.shape(), "affine_: source ", shape_str(src.shape()), " and destination ",
              shape_str(dst.shape()), " differ");
  check_no_internal_overlap("affine_", dst);
  check_no_partial_overlap("affine_", dst, src);
  dst.bump_version();
  launch_unary(UnaryOp::Affine, {scale, shift}, make_loop<2>(dst.shape(), {&dst, &src}), dst, src);
}

// ---- conversion ----

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  return clone(t);
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), TensorOptions(t.dtype(), t.device()));
  detail::copy_into(out, t);
  return out;
}

Tensor to_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), TensorOptions(dtype, t.device()));
  detail::copy_into(out, t);
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  detail::check_defined("to_device", t);
  if (t.device() == device) return t;
#if BRAID_WITH_CUDA
  Tensor out = empty(t.shape(), TensorOptions(t.dtype(), device));
  detail::copy_into(out, t);
  return out;
#else
  BRAID_FAIL("to_device: cannot move a tensor from ", t.device(), " to ", device,
             ": this build of Braid has no CUDA backend");
#endif
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i)
    if (!(std::abs(x[i] - y[i]) <= atol + rtol * std::abs(y[i]))) return false;
  return true;
}

}  // namespace braid::ops

namespace braid {
void set_num_threads(int n) { kernels::cpu::set_num_threads(n); }
int get_num_threads() { return kernels::cpu::get_num_threads(); }
}  // namespace braid
