// The element-wise operations by name, and the one place that turns a name (plus its scalar parameters) into the
// functor of functors.h. The CPU launcher in core and the CUDA launcher in kernels/cuda both go through
// with_unary / with_binary, so both devices run the same math for the same name.
#pragma once

#include "braid/kernels/functors.h"

namespace braid::kernels {

enum class UnaryOp { Neg, Exp, Log, Sqrt, Abs, Sign, Relu, Gelu, Tanh, Sigmoid, Affine, Clamp, PowScalar };

// The activation backwards take (grad, saved) where saved is the input (Relu, Gelu, ClampBackward) or the
// output (Tanh, Sigmoid).
enum class BinaryOp {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge,
  AddScaled, ReluBackward, GeluBackward, TanhBackward, SigmoidBackward, ClampBackward
};

enum class ReduceOp { Sum, Max, Min };

// Scalar parameters: Affine (scale, shift), Clamp/ClampBackward (lo, hi), PowScalar (exponent), AddScaled (alpha).
struct OpParams {
  double a = 0, b = 0;
};

// Operations that make sense on integers (the rest need floating point).
inline bool integer_ok(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign || op == UnaryOp::Affine ||
         op == UnaryOp::Clamp;
}
inline bool integer_ok(BinaryOp op) {
  return op != BinaryOp::Pow && op < BinaryOp::ReluBackward;
}

inline const char* op_name(UnaryOp op) {
  static const char* names[] = {"neg",  "exp",  "log",     "sqrt",   "abs",   "sign",
                                "relu", "gelu", "tanh",    "sigmoid", "affine", "clamp", "pow"};
  return names[int(op)];
}
inline const char* op_name(BinaryOp op) {
  static const char* names[] = {"add",           "sub",           "mul",          "div",
                                "pow",           "maximum",       "minimum",      "eq",
                                "ne",            "lt",            "le",           "gt",
                                "ge",            "add_",          "relu_backward", "gelu_backward",
                                "tanh_backward", "sigmoid_backward", "clamp_backward"};
  return names[int(op)];
}

// Calls fn(functor) with the functor of `op`.
template <class Fn>
decltype(auto) with_unary(UnaryOp op, OpParams p, Fn&& fn) {
  switch (op) {
    case UnaryOp::Neg: return fn(Neg{});
    case UnaryOp::Exp: return fn(Exp{});
    case UnaryOp::Log: return fn(Log{});
    case UnaryOp::Sqrt: return fn(Sqrt{});
    case UnaryOp::Abs: return fn(Abs{});
    case UnaryOp::Sign: return fn(Sign{});
    case UnaryOp::Relu: return fn(Relu{});
    case UnaryOp::Gelu: return fn(Gelu{});
    case UnaryOp::Tanh: return fn(Tanh{});
    case UnaryOp::Sigmoid: return fn(Sigmoid{});
    case UnaryOp::Affine: return fn(Affine{p.a, p.b});
    case UnaryOp::Clamp: return fn(Clamp{p.a, p.b});
    default: return fn(PowScalar{p.a});
  }
}

template <class Fn>
decltype(auto) with_binary(BinaryOp op, OpParams p, Fn&& fn) {
  switch (op) {
    case BinaryOp::Add: return fn(Add{});
    case BinaryOp::Sub: return fn(Sub{});
    case BinaryOp::Mul: return fn(Mul{});
    case BinaryOp::Div: return fn(Div{});
    case BinaryOp::Pow: return fn(Pow{});
    case BinaryOp::Maximum: return fn(Maximum{});
    case BinaryOp::Minimum: return fn(Minimum{});
    case BinaryOp::Eq: return fn(Eq{});
    case BinaryOp::Ne: return fn(Ne{});
    case BinaryOp::Lt: return fn(Lt{});
    case BinaryOp::Le: return fn(Le{});
    case BinaryOp::Gt: return fn(Gt{});
    case BinaryOp::Ge: return fn(Ge{});
    case BinaryOp::AddScaled: return fn(AddScaled{p.a});
    case BinaryOp::ReluBackward: return fn(ReluBackward{});
    case BinaryOp::GeluBackward: return fn(GeluBackward{});
    case BinaryOp::TanhBackward: return fn(TanhBackward{});
    case BinaryOp::SigmoidBackward: return fn(SigmoidBackward{});
    default: return fn(ClampBackward{p.a, p.b});
  }
}

}  // namespace braid::kernels
