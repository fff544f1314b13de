// The element-wise operations by name, and the one place that turns a name (plus its scalar parameters) into the
// functor of functors.h. The CPU launcher in core and the CUDA launcher in kernels/cuda both go through
// with_unary / with_binary, so both devices run the same math for the same name.
//
// Every fact about an op (its enumerator, the name errors print, its functor built from the scalar parameters
// `p`, whether it is defined on integers) is one row of BRAID_UNARY_OPS / BRAID_BINARY_OPS: a new op is one new
// row, and the enum, op_name, integer_ok, integer_functor and the dispatch switches follow from it.
#pragma once

#include "braid/kernels/error.h"
#include "braid/kernels/functors.h"

namespace braid::kernels {

// Scalar parameters: Affine (scale, shift), Clamp/ClampBackward (lo, hi), PowScalar (exponent), AddScaled (alpha).
struct OpParams {
  double a = 0, b = 0;
};

// X(enumerator, name, functor type, functor built from OpParams p, defined on integers)
#define BRAID_UNARY_OPS(X)                              \
  X(Neg, "neg", Neg, Neg{}, true)                       \
  X(Exp, "exp", Exp, Exp{}, false)                      \
  X(Log, "log", Log, Log{}, false)                      \
  X(Sqrt, "sqrt", Sqrt, Sqrt{}, false)                  \
  X(Abs, "abs", Abs, Abs{}, true)                       \
  X(Sign, "sign", Sign, Sign{}, true)                   \
  X(Relu, "relu", Relu, Relu{}, false)                  \
  X(Gelu, "gelu", Gelu, Gelu{}, false)                  \
  X(GeluTanh, "gelu_tanh", GeluTanh, GeluTanh{}, false) \
  X(Tanh, "tanh", Tanh, Tanh{}, false)                  \
  X(Sigmoid, "sigmoid", Sigmoid, Sigmoid{}, false)      \
  X(Affine, "affine", Affine, (Affine{p.a, p.b}), true) \
  X(Clamp, "clamp", Clamp, (Clamp{p.a, p.b}), true)     \
  X(PowScalar, "pow", PowScalar, PowScalar{p.a}, false)

// The activation backwards take (grad, saved) where saved is the input (Relu, Gelu, GeluTanh, Clamp) or the
// output (Tanh, Sigmoid).
#define BRAID_BINARY_OPS(X)                                                              \
  X(Add, "add", Add, Add{}, true)                                                        \
  X(Sub, "sub", Sub, Sub{}, true)                                                        \
  X(Mul, "mul", Mul, Mul{}, true)                                                        \
  X(Div, "div", Div, Div{}, true)                                                        \
  X(Pow, "pow", Pow, Pow{}, false)                                                       \
  X(Maximum, "maximum", Maximum, Maximum{}, true)                                        \
  X(Minimum, "minimum", Minimum, Minimum{}, true)                                        \
  X(Eq, "eq", Eq, Eq{}, true)                                                            \
  X(Ne, "ne", Ne, Ne{}, true)                                                            \
  X(Lt, "lt", Lt, Lt{}, true)                                                            \
  X(Le, "le", Le, Le{}, true)                                                            \
  X(Gt, "gt", Gt, Gt{}, true)                                                            \
  X(Ge, "ge", Ge, Ge{}, true)                                                            \
  X(AddScaled, "add_", AddScaled, AddScaled{p.a}, true)                                  \
  X(ReluBackward, "relu_backward", ReluBackward, ReluBackward{}, false)                  \
  X(GeluBackward, "gelu_backward", GeluBackward, GeluBackward{}, false)                  \
  X(GeluTanhBackward, "gelu_tanh_backward", GeluTanhBackward, GeluTanhBackward{}, false) \
  X(TanhBackward, "tanh_backward", TanhBackward, TanhBackward{}, false)                  \
  X(SigmoidBackward, "sigmoid_backward", SigmoidBackward, SigmoidBackward{}, false)      \
  X(ClampBackward, "clamp_backward", ClampBackward, (ClampBackward{p.a, p.b}), false)

#define BRAID_OP_ENUMERATOR(e, name, type, make, integer) e,
enum class UnaryOp { BRAID_UNARY_OPS(BRAID_OP_ENUMERATOR) };
enum class BinaryOp { BRAID_BINARY_OPS(BRAID_OP_ENUMERATOR) };
#undef BRAID_OP_ENUMERATOR

enum class ReduceOp { Sum, Max, Min };

#define BRAID_OP_NAME_CASE(e, name, type, make, integer) \
  case Op::e:                                            \
    return name;
#define BRAID_OP_INTEGER_CASE(e, name, type, make, integer) \
  case Op::e:                                               \
    return integer;

inline const char* op_name(UnaryOp op) {
  using Op = UnaryOp;
  switch (op) { BRAID_UNARY_OPS(BRAID_OP_NAME_CASE) }
  return "?";
}
inline const char* op_name(BinaryOp op) {
  using Op = BinaryOp;
  switch (op) { BRAID_BINARY_OPS(BRAID_OP_NAME_CASE) }
  return "?";
}

// Operations that make sense on integers (the rest need floating point).
inline bool integer_ok(UnaryOp op) {
  using Op = UnaryOp;
  switch (op) { BRAID_UNARY_OPS(BRAID_OP_INTEGER_CASE) }
  return false;
}
inline bool integer_ok(BinaryOp op) {
  using Op = BinaryOp;
  switch (op) { BRAID_BINARY_OPS(BRAID_OP_INTEGER_CASE) }
  return false;
}

#undef BRAID_OP_NAME_CASE
#undef BRAID_OP_INTEGER_CASE

// integer_ok by functor type, for launchers that must not instantiate floating-point math for integers.
template <class F>
inline constexpr bool integer_functor = false;
#define BRAID_OP_INTEGER_FUNCTOR(e, name, type, make, integer) \
  template <>                                                  \
  inline constexpr bool integer_functor<type> = integer;
BRAID_UNARY_OPS(BRAID_OP_INTEGER_FUNCTOR)
BRAID_BINARY_OPS(BRAID_OP_INTEGER_FUNCTOR)
#undef BRAID_OP_INTEGER_FUNCTOR

#define BRAID_OP_DISPATCH_CASE(e, name, type, make, integer) \
  case Op::e:                                                \
    return fn(make);

// Calls fn(functor) with the functor of `op`.
template <class Fn>
decltype(auto) with_unary(UnaryOp op, OpParams p, Fn&& fn) {
  using Op = UnaryOp;
  switch (op) { BRAID_UNARY_OPS(BRAID_OP_DISPATCH_CASE) }
  BRAID_FAIL("element-wise op: unknown unary op ", int(op));
}

template <class Fn>
decltype(auto) with_binary(BinaryOp op, OpParams p, Fn&& fn) {
  using Op = BinaryOp;
  switch (op) { BRAID_BINARY_OPS(BRAID_OP_DISPATCH_CASE) }
  BRAID_FAIL("element-wise op: unknown binary op ", int(op));
}

#undef BRAID_OP_DISPATCH_CASE

}  // namespace braid::kernels
