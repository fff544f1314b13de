// The element-wise math of Braid, one functor per operation (forward and backward), shared by the CPU and CUDA
// launchers. Each functor is a plain value type; parameters (a clamp's bounds, an optimizer's coefficients) are
// members. Functors compute in the element type T; comparisons return 1 or 0 in T.
#pragma once

#include <cmath>

#include "braid/kernels/host_device.h"

namespace braid::kernels {

// ---- binary ---------------------------------------------------------------------------------------------------
struct Add { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return a + b; } };
struct Sub { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return a - b; } };
struct Mul { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return a * b; } };
struct Div { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return a / b; } };
struct Pow { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return std::pow(a, b); } };
struct Maximum { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return a > b ? a : b; } };
struct Minimum { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return a < b ? a : b; } };
struct AddScaled {  // a + alpha * b
  double alpha;
  template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return a + T(alpha) * b; }
};
struct Eq { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return T(a == b); } };
struct Ne { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return T(a != b); } };
struct Lt { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return T(a < b); } };
struct Le { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return T(a <= b); } };
struct Gt { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return T(a > b); } };
struct Ge { template <class T> BRAID_HOST_DEVICE T operator()(T a, T b) const { return T(a >= b); } };

// ---- unary ----------------------------------------------------------------------------------------------------
struct Neg { template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return -a; } };
struct Exp { template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return std::exp(a); } };
struct Log { template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return std::log(a); } };
struct Sqrt { template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return std::sqrt(a); } };
struct Abs { template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return a < T(0) ? -a : a; } };
struct Sign {
  template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return T(a > T(0)) - T(a < T(0)); }
};
struct Relu { template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return a > T(0) ? a : T(0); } };
struct Tanh { template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return std::tanh(a); } };
struct Sigmoid {
  template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return T(1) / (T(1) + std::exp(-a)); }
};
// GELU as PyTorch defines it by default: x * Phi(x) with the exact normal CDF.
struct Gelu {
  template <class T> BRAID_HOST_DEVICE T operator()(T a) const {
    return a * T(0.5) * (T(1) + std::erf(a * T(0.70710678118654752440)));
  }
};
// GELU with PyTorch's tanh approximation (approximate="tanh"), in PyTorch's order of operations:
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
struct GeluTanh {
  template <class T> BRAID_HOST_DEVICE T operator()(T a) const {
    const T cube = a * a * a;
    const T inner = T(0.79788456080286535588) * (a + T(0.044715) * cube);
    return T(0.5) * a * (T(1) + std::tanh(inner));
  }
};
struct Clamp {
  double lo, hi;
  template <class T> BRAID_HOST_DEVICE T operator()(T a) const {
    return a < T(lo) ? T(lo) : (a > T(hi) ? T(hi) : a);
  }
};
struct Affine {  // a * scale + shift: scalar arithmetic without a broadcast operand
  double scale, shift;
  template <class T> BRAID_HOST_DEVICE T operator()(T a) const { return a * T(scale) + T(shift); }
};
struct PowScalar {
  double exponent;
  template <class T> BRAID_HOST_DEVICE T operator()(T a) const {
    return exponent == 2.0 ? a * a : std::pow(a, T(exponent));
  }
};

// ---- backward (grad, saved) -> grad_input ------------------------------------------------------------------------
struct ReluBackward {  // saved: the input
  template <class T> BRAID_HOST_DEVICE T operator()(T g, T x) const { return x > T(0) ? g : T(0); }
};
struct TanhBackward {  // saved: the output y
  template <class T> BRAID_HOST_DEVICE T operator()(T g, T y) const { return g * (T(1) - y * y); }
};
struct SigmoidBackward {  // saved: the output y
  template <class T> BRAID_HOST_DEVICE T operator()(T g, T y) const { return g * y * (T(1) - y); }
};
struct GeluBackward {  // saved: the input x
  template <class T> BRAID_HOST_DEVICE T operator()(T g, T x) const {
    T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
    T pdf = std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
    return g * (cdf + x * pdf);
  }
};
struct GeluTanhBackward {  // saved: the input x; the product rule on 0.5 x (1 + tanh(inner)), as PyTorch
  template <class T> BRAID_HOST_DEVICE T operator()(T g, T x) const {
    const T beta = T(0.79788456080286535588), kappa = T(0.044715);
    const T x_sq = x * x;
    const T tanh_inner = std::tanh(beta * (x + kappa * (x_sq * x)));
    const T left = T(0.5) * x;
    const T right = T(1) + tanh_inner;
    const T inner_derivative = beta * (T(1) + T(3) * kappa * x_sq);
    const T right_derivative = left * (T(1) - tanh_inner * tanh_inner) * inner_derivative;
    return g * (T(0.5) * right + right_derivative);
  }
};
struct ClampBackward {  // saved: the input x; gradient passes where the input was inside [lo, hi]
  double lo, hi;
  template <class T> BRAID_HOST_DEVICE T operator()(T g, T x) const {
    return (x >= T(lo) && x <= T(hi)) ? g : T(0);
  }
};

// ---- optimizer updates, one element at a time (PyTorch's documented rules) ---------------------------------------
struct SgdUpdate {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
  // p, g, buf are updated in place (buf only when momentum != 0).
  template <class T> BRAID_HOST_DEVICE void operator()(T& p, T g, T& buf) const {
    if (weight_decay != 0) g += T(weight_decay) * p;
    if (momentum != 0) {
      buf = first_step ? g : T(momentum) * buf + T(1 - dampening) * g;
      g = nesterov ? g + T(momentum) * buf : buf;
    }
    p -= T(lr) * g;
  }
};
struct AdamUpdate {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
  bool decoupled;                             // AdamW: decay the weight directly instead of through the gradient
  template <class T> BRAID_HOST_DEVICE void operator()(T& p, T g, T& m, T& v) const {
    if (weight_decay != 0) {
      if (decoupled) p *= T(1 - lr * weight_decay);
      else g += T(weight_decay) * p;
    }
    m = T(beta1) * m + T(1 - beta1) * g;
    v = T(beta2) * v + T(1 - beta2) * g * g;
    T denom = std::sqrt(v) / T(std::sqrt(bias_correction2)) + T(eps);
    p -= T(lr / bias_correction1) * m / denom;
  }
};

}  // namespace braid::kernels
