#include <cstring>

#include "braid/core/creation.h"
#include "braid/kernels/cpu/threads.h"
#include "braid/kernels/functors.h"
#include "op_util.h"

namespace braid::ops {

using detail::check_cpu;
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

template <class F>
Tensor binary_with(F f, const char* name, const Tensor& a, const Tensor& b) {
  check_cpu(name, a);
  check_cpu(name, b);
  check_same_dtype(name, a, b);
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(s, TensorOptions(a.dtype(), a.device()));
  auto L = make_loop<3>(s, {&out, &a, &b});
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    kc::binary(f, L, out.data<T>(), static_cast<const T*>(a.raw_data()), static_cast<const T*>(b.raw_data()));
  });
  return out;
}

template <class F>
Tensor unary_with(F f, const char* name, const Tensor& a, bool floating_only = true) {
  check_cpu(name, a);
  if (floating_only)
    BRAID_CHECK(is_floating(a.dtype()), name, ": expected a floating-point tensor, got ", a.dtype(), " ",
                shape_str(a.shape()));
  Tensor out = empty(a.shape(), TensorOptions(a.dtype(), a.device()));
  auto L = make_loop<2>(a.shape(), {&out, &a});
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    kc::unary(f, L, out.data<T>(), static_cast<const T*>(a.raw_data()));
  });
  return out;
}

const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[int(op)];
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* n = binary_name(op);
  switch (op) {
    case BinaryOp::Add: return binary_with(k::Add{}, n, a, b);
    case BinaryOp::Sub: return binary_with(k::Sub{}, n, a, b);
    case BinaryOp::Mul: return binary_with(k::Mul{}, n, a, b);
    case BinaryOp::Div: return binary_with(k::Div{}, n, a, b);
    case BinaryOp::Pow: return binary_with(k::Pow{}, n, a, b);
    case BinaryOp::Maximum: return binary_with(k::Maximum{}, n, a, b);
    case BinaryOp::Minimum: return binary_with(k::Minimum{}, n, a, b);
    case BinaryOp::Eq: return binary_with(k::Eq{}, n, a, b);
    case BinaryOp::Ne: return binary_with(k::Ne{}, n, a, b);
    case BinaryOp::Lt: return binary_with(k::Lt{}, n, a, b);
    case BinaryOp::Le: return binary_with(k::Le{}, n, a, b);
    case BinaryOp::Gt: return binary_with(k::Gt{}, n, a, b);
    case BinaryOp::Ge: return binary_with(k::Ge{}, n, a, b);
  }
  BRAID_FAIL("binary: unknown op");
}

Tensor unary(UnaryOp op, const Tensor& a) {
  switch (op) {
    case UnaryOp::Neg: return unary_with(k::Neg{}, "neg", a, false);
    case UnaryOp::Exp: return unary_with(k::Exp{}, "exp", a);
    case UnaryOp::Log: return unary_with(k::Log{}, "log", a);
    case UnaryOp::Sqrt: return unary_with(k::Sqrt{}, "sqrt", a);
    case UnaryOp::Abs: return unary_with(k::Abs{}, "abs", a, false);
    case UnaryOp::Sign: return unary_with(k::Sign{}, "sign", a, false);
    case UnaryOp::Relu: return unary_with(k::Relu{}, "relu", a);
    case UnaryOp::Gelu: return unary_with(k::Gelu{}, "gelu", a);
    case UnaryOp::Tanh: return unary_with(k::Tanh{}, "tanh", a);
    case UnaryOp::Sigmoid: return unary_with(k::Sigmoid{}, "sigmoid", a);
  }
  BRAID_FAIL("unary: unknown op");
}

Tensor activation_backward(ActivationBackward op, const Tensor& grad, const Tensor& saved) {
  BRAID_CHECK(grad.shape() == saved.shape(), "activation_backward: gradient ", shape_str(grad.shape()),
              " and saved tensor ", shape_str(saved.shape()), " differ");
  switch (op) {
    case ActivationBackward::Relu: return binary_with(k::ReluBackward{}, "relu_backward", grad, saved);
    case ActivationBackward::Gelu: return binary_with(k::GeluBackward{}, "gelu_backward", grad, saved);
    case ActivationBackward::Tanh: return binary_with(k::TanhBackward{}, "tanh_backward", grad, saved);
    case ActivationBackward::Sigmoid: return binary_with(k::SigmoidBackward{}, "sigmoid_backward", grad, saved);
  }
  BRAID_FAIL("activation_backward: unknown op");
}

Tensor affine(const Tensor& a, double scale, double shift) {
  return unary_with(k::Affine{scale, shift}, "affine", a, false);
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  BRAID_CHECK(lo <= hi, "clamp: min ", lo, " is greater than max ", hi);
  return unary_with(k::Clamp{lo, hi}, "clamp", a, false);
}

Tensor clamp_backward(const Tensor& grad, const Tensor& input, double lo, double hi) {
  return binary_with(k::ClampBackward{lo, hi}, "clamp_backward", grad, input);
}

Tensor pow_scalar(const Tensor& a, double exponent) { return unary_with(k::PowScalar{exponent}, "pow", a); }

// ---- in place ----

void copy_(const Tensor& dst, const Tensor& src) {
  check_cpu("copy_", dst);
  check_cpu("copy_", src);
  Shape s = broadcast_shapes(dst.shape(), src.shape(), "copy_");
  BRAID_CHECK(s == dst.shape(), "copy_: source ", shape_str(src.shape()), " does not broadcast to destination ",
              shape_str(dst.shape()));
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape()) {
    if (dst.raw_data() != src.raw_data())
      std::memcpy(dst.raw_data(), src.raw_data(), size_t(dst.numel()) * element_size(dst.dtype()));
    return;
  }
  auto L = make_loop<2>(s, {&dst, &src});
  dispatch_all(dst.dtype(), [&](auto to) {
    using TO = typename decltype(to)::type;
    dispatch_all(src.dtype(), [&](auto from) {
      using TF = typename decltype(from)::type;
      kc::unary([](TF x) { return x; }, L, static_cast<TO*>(dst.raw_data()), static_cast<const TF*>(src.raw_data()));
    });
  });
}

void fill_(const Tensor& dst, double value) {
  check_cpu("fill_", dst);
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (dst.is_contiguous()) {
      T* p = static_cast<T*>(dst.raw_data());
      int64_t n = dst.numel();
      T x = T(value);
#pragma omp parallel for simd if (n >= kc::kParallelGrain)
      for (int64_t i = 0; i < n; ++i) p[i] = x;
      return;
    }
    T x = T(value);
    Tensor one = from_blob(&x, {}, dst.dtype());
    copy_(dst, one);
  });
}

void add_(const Tensor& dst, const Tensor& src, double alpha) {
  check_cpu("add_", dst);
  check_cpu("add_", src);
  check_same_dtype("add_", dst, src);
  Shape s = broadcast_shapes(dst.shape(), src.shape(), "add_");
  BRAID_CHECK(s == dst.shape(), "add_: source ", shape_str(src.shape()), " does not broadcast to destination ",
              shape_str(dst.shape()));
  auto L = make_loop<3>(s, {&dst, &dst, &src});
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = static_cast<T*>(dst.raw_data());
    const T* x = static_cast<const T*>(src.raw_data());
    if (alpha == 1) kc::binary(k::Add{}, L, d, d, x);
    else kc::binary([a = T(alpha)](T p, T q) { return p + a * q; }, L, d, d, x);
  });
}

void mul_(const Tensor& dst, double value) {
  check_cpu("mul_", dst);
  auto L = make_loop<2>(dst.shape(), {&dst, &dst});
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = static_cast<T*>(dst.raw_data());
    kc::unary(k::Affine{value, 0.0}, L, d, d);
  });
}

// ---- conversion ----

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  return clone(t);
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), TensorOptions(t.dtype(), t.device()));
  copy_(out, t);
  return out;
}

Tensor to_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), TensorOptions(dtype, t.device()));
  copy_(out, t);
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  detail::check_defined("to_device", t);
  if (t.device() == device) return t;
  BRAID_FAIL("to_device: cannot move a tensor from ", t.device(), " to ", device,
             ": this build of Braid has no CUDA backend");
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
