#include "braid/nn/functional.h"

#include <cmath>

namespace braid {

using autograd::any_requires_grad;
using autograd::record;
using ops::BinaryOp;
using ops::UnaryOp;

namespace {

Tensor need(bool needed, Tensor g) { return needed ? std::move(g) : Tensor(); }

Tensor scalar_like(const Tensor& a, double v) { return scalar_tensor(v, TensorOptions(a.dtype(), a.device())); }

void check_floating(const char* op, const Tensor& a) {
  BRAID_CHECK(a.defined(), op, ": got an undefined tensor");
  BRAID_CHECK(is_floating(a.dtype()), op, ": expected a floating-point tensor, got ", a.dtype(), " ",
              shape_str(a.shape()));
}

}  // namespace

// ---- element-wise ----

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = ops::binary(BinaryOp::Add, a, b);
  if (!any_requires_grad({a, b})) return out;
  return record("AddBackward", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{ops::sum_to(g, sa), ops::sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = ops::binary(BinaryOp::Sub, a, b);
  if (!any_requires_grad({a, b})) return out;
  return record("SubBackward", out, {a, b}, [sa = a.shape(), sb = b.shape(), nb = b.requires_grad()](const Tensor& g) {
    return std::vector<Tensor>{ops::sum_to(g, sa), need(nb, ops::sum_to(ops::unary(UnaryOp::Neg, g), sb))};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = ops::binary(BinaryOp::Mul, a, b);
  if (!any_requires_grad({a, b})) return out;
  bool na = a.requires_grad(), nb = b.requires_grad();
  // Each side's gradient reads the other side only.
  Tensor sa = nb ? a.detach() : Tensor(), sb = na ? b.detach() : Tensor();
  return record("MulBackward", out, {a, b},
                [sa, sb, shape_a = a.shape(), shape_b = b.shape()](const Tensor& g) {
                  return std::vector<Tensor>{
                      sb.defined() ? ops::sum_to(ops::binary(BinaryOp::Mul, g, sb), shape_a) : Tensor(),
                      sa.defined() ? ops::sum_to(ops::binary(BinaryOp::Mul, g, sa), shape_b) : Tensor()};
                },
                {sa, sb});
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = ops::binary(BinaryOp::Div, a, b);
  if (!any_requires_grad({a, b})) return out;
  return record("DivBackward", out, {a, b},
                [a = a.detach(), b = b.detach(), na = a.requires_grad(), nb = b.requires_grad()](const Tensor& g) {
                  Tensor ga, gb;
                  Tensor gdb = ops::binary(BinaryOp::Div, g, b);
                  if (na) ga = ops::sum_to(gdb, a.shape());
                  if (nb) {  // -g * a / b^2
                    Tensor t = ops::binary(BinaryOp::Div, ops::binary(BinaryOp::Mul, gdb, a), b);
                    gb = ops::sum_to(ops::unary(UnaryOp::Neg, t), b.shape());
                  }
                  return std::vector<Tensor>{ga, gb};
                },
                {b, b.requires_grad() ? a : Tensor()});
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = ops::binary(BinaryOp::Pow, a, b);
  if (!any_requires_grad({a, b})) return out;
  return record("PowBackward", out, {a, b},
                [a = a.detach(), b = b.detach(), y = out.detach(), na = a.requires_grad(),
                 nb = b.requires_grad()](const Tensor& g) {
                  Tensor ga, gb;
                  if (na) {  // g * b * a^(b-1)
                    Tensor p = ops::binary(BinaryOp::Pow, a, ops::affine(b, 1, -1));
                    ga = ops::sum_to(ops::binary(BinaryOp::Mul, g, ops::binary(BinaryOp::Mul, b, p)), a.shape());
                  }
                  if (nb)  // g * y * log(a)
                    gb = ops::sum_to(
                        ops::binary(BinaryOp::Mul, g, ops::binary(BinaryOp::Mul, y, ops::unary(UnaryOp::Log, a))),
                        b.shape());
                  return std::vector<Tensor>{ga, gb};
                },
                {a, b, b.requires_grad() ? out : Tensor()});
}

Tensor pow(const Tensor& a, double e) {
  check_floating("pow", a);
  Tensor out = ops::pow_scalar(a, e);
  if (!any_requires_grad({a})) return out;
  return record("PowScalarBackward", out, {a},
                [a = a.detach(), e](const Tensor& g) {
                  Tensor d = e == 2.0 ? ops::affine(a, 2.0, 0.0) : ops::affine(ops::pow_scalar(a, e - 1), e, 0.0);
                  return std::vector<Tensor>{ops::binary(BinaryOp::Mul, g, d)};
                },
                {a});
}

namespace {
// maximum/minimum: the gradient goes to the chosen side; ties split it in half, as PyTorch does.
Tensor extremum(const Tensor& a, const Tensor& b, bool max) {
  Tensor out = ops::binary(max ? BinaryOp::Maximum : BinaryOp::Minimum, a, b);
  if (!any_requires_grad({a, b})) return out;
  return record(max ? "MaximumBackward" : "MinimumBackward", out, {a, b},
                [a = a.detach(), b = b.detach(), max](const Tensor& g) {
                  Tensor wins = ops::binary(max ? BinaryOp::Gt : BinaryOp::Lt, a, b);
                  Tensor ties = ops::binary(BinaryOp::Eq, a, b);
                  Tensor wa = ops::binary(BinaryOp::Add, wins, ops::affine(ties, 0.5, 0));
                  Tensor wb = ops::affine(wa, -1, 1);
                  return std::vector<Tensor>{ops::sum_to(ops::binary(BinaryOp::Mul, g, wa), a.shape()),
                                             ops::sum_to(ops::binary(BinaryOp::Mul, g, wb), b.shape())};
                },
                {a, b});
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(a, b, false); }

Tensor neg(const Tensor& a) {
  Tensor out = ops::unary(UnaryOp::Neg, a);
  if (!any_requires_grad({a})) return out;
  return record("NegBackward", out, {a},
                [](const Tensor& g) { return std::vector<Tensor>{ops::unary(UnaryOp::Neg, g)}; });
}

Tensor exp(const Tensor& a) {
  Tensor out = ops::unary(UnaryOp::Exp, a);
  if (!any_requires_grad({a})) return out;
  return record("ExpBackward", out, {a},
                [y = out.detach()](const Tensor& g) { return std::vector<Tensor>{ops::binary(BinaryOp::Mul, g, y)}; },
                {out});
}

Tensor log(const Tensor& a) {
  Tensor out = ops::unary(UnaryOp::Log, a);
  if (!any_requires_grad({a})) return out;
  return record("LogBackward", out, {a},
                [a = a.detach()](const Tensor& g) { return std::vector<Tensor>{ops::binary(BinaryOp::Div, g, a)}; },
                {a});
}

Tensor sqrt(const Tensor& a) {
  Tensor out = ops::unary(UnaryOp::Sqrt, a);
  if (!any_requires_grad({a})) return out;
  return record("SqrtBackward", out, {a},
                [y = out.detach()](const Tensor& g) {
                  return std::vector<Tensor>{ops::binary(BinaryOp::Div, g, ops::affine(y, 2, 0))};
                },
                {out});
}

Tensor abs(const Tensor& a) {
  Tensor out = ops::unary(UnaryOp::Abs, a);
  if (!any_requires_grad({a})) return out;
  return record("AbsBackward", out, {a},
                [a = a.detach()](const Tensor& g) {
                  return std::vector<Tensor>{ops::binary(BinaryOp::Mul, g, ops::unary(UnaryOp::Sign, a))};
                },
                {a});
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  Tensor out = ops::clamp(a, lo, hi);
  if (!any_requires_grad({a})) return out;
  return record(
      "ClampBackward", out, {a},
      [a = a.detach(), lo, hi](const Tensor& g) { return std::vector<Tensor>{ops::clamp_backward(g, a, lo, hi)}; },
      {a});
}

namespace {
Tensor activation(UnaryOp op, ops::ActivationBackward bop, bool save_output, const char* name, const Tensor& a) {
  Tensor out = ops::unary(op, a);
  if (!any_requires_grad({a})) return out;
  Tensor saved = save_output ? out.detach() : a.detach();
  return record(name, out, {a},
                [bop, saved](const Tensor& g) { return std::vector<Tensor>{ops::activation_backward(bop, g, saved)}; },
                {saved});
}
}  // namespace

Tensor relu(const Tensor& a) {
  return activation(UnaryOp::Relu, ops::ActivationBackward::Relu, true, "ReluBackward", a);
}
Tensor gelu(const Tensor& a, std::string_view approximate) {
  if (approximate == "tanh")
    return activation(UnaryOp::GeluTanh, ops::ActivationBackward::GeluTanh, false, "GeluBackward", a);
  BRAID_CHECK(approximate == "none", "gelu: approximate must be \"none\" or \"tanh\", got \"", approximate, "\"");
  return activation(UnaryOp::Gelu, ops::ActivationBackward::Gelu, false, "GeluBackward", a);
}
Tensor tanh(const Tensor& a) {
  return activation(UnaryOp::Tanh, ops::ActivationBackward::Tanh, true, "TanhBackward", a);
}
Tensor sigmoid(const Tensor& a) {
  return activation(UnaryOp::Sigmoid, ops::ActivationBackward::Sigmoid, true, "SigmoidBackward", a);
}

Tensor affine(const Tensor& a, double scale, double shift) {
  Tensor out = ops::affine(a, scale, shift);
  if (!any_requires_grad({a})) return out;
  return record("AffineBackward", out, {a},
                [scale](const Tensor& g) { return std::vector<Tensor>{ops::affine(g, scale, 0)}; });
}

Tensor eq(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Ge, a, b); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return affine(a, 1, s); }
Tensor operator+(double s, const Tensor& a) { return affine(a, 1, s); }
Tensor operator-(const Tensor& a, double s) { return affine(a, 1, -s); }
Tensor operator-(double s, const Tensor& a) { return affine(a, -1, s); }
Tensor operator*(const Tensor& a, double s) { return affine(a, s, 0); }
Tensor operator*(double s, const Tensor& a) { return affine(a, s, 0); }
Tensor operator/(const Tensor& a, double s) { return affine(a, 1.0 / s, 0); }
Tensor operator/(double s, const Tensor& a) { return div(scalar_like(a, s), a); }

// ---- reductions ----

namespace {
// Broadcasts a reduced gradient back to the input's shape (re-inserting the reduced dims when !keepdim).
Tensor unreduce(const Tensor& g, const Shape& in_shape, std::vector<int64_t> dims, bool keepdim) {
  int64_t nd = int64_t(in_shape.size());
  if (dims.empty())
    for (int64_t d = 0; d < nd; ++d) dims.push_back(d);
  for (auto& d : dims) d = d < 0 ? d + nd : d;
  std::sort(dims.begin(), dims.end());
  Tensor r = g;
  if (!keepdim && nd > 0) {
    Shape s = in_shape;
    for (int64_t d : dims) s[d] = 1;
    r = ops::reshape(g, s);
  }
  return ops::expand(r, in_shape);
}
}  // namespace

Tensor sum(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  Tensor out = ops::sum(a, dims, keepdim);
  if (!any_requires_grad({a})) return out;
  return record("SumBackward", out, {a}, [s = a.shape(), dims, keepdim](const Tensor& g) {
    return std::vector<Tensor>{ops::contiguous(unreduce(g, s, dims, keepdim))};
  });
}

Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  Tensor out = ops::mean(a, dims, keepdim);
  if (!any_requires_grad({a})) return out;
  double count = out.numel() ? double(a.numel()) / double(out.numel()) : 1.0;
  return record("MeanBackward", out, {a}, [s = a.shape(), dims, keepdim, count](const Tensor& g) {
    return std::vector<Tensor>{ops::affine(unreduce(g, s, dims, keepdim), 1.0 / count, 0)};
  });
}

namespace {
Tensor extreme_reduce(const Tensor& a, std::vector<int64_t> dims, bool keepdim, bool max) {
  Tensor out = max ? ops::amax(a, dims, keepdim) : ops::amin(a, dims, keepdim);
  if (!any_requires_grad({a})) return out;
  return record(max ? "AmaxBackward" : "AminBackward", out, {a},
                [a = a.detach(), y = out.detach(), dims, keepdim](const Tensor& g) {
                  Tensor mask = ops::binary(BinaryOp::Eq, a, unreduce(y, a.shape(), dims, keepdim));
                  Tensor count = unreduce(ops::sum(mask, dims, keepdim), a.shape(), dims, keepdim);
                  Tensor share = ops::binary(BinaryOp::Div, unreduce(g, a.shape(), dims, keepdim), count);
                  return std::vector<Tensor>{ops::binary(BinaryOp::Mul, share, mask)};
                },
                {a, out});
}
}  // namespace

Tensor amax(const Tensor& a, std::vector<int64_t> dims, bool keepdim) { return extreme_reduce(a, dims, keepdim, true); }
Tensor amin(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return extreme_reduce(a, dims, keepdim, false);
}
Tensor max(const Tensor& a) { return amax(a); }
Tensor min(const Tensor& a) { return amin(a); }
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) { return ops::argmax(a, dim, keepdim); }
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim) { return ops::argmin(a, dim, keepdim); }

Tensor var(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  Tensor centered = sub(a, mean(a, dims, true));
  return mean(mul(centered, centered), dims, keepdim);
}

// ---- shape ----

namespace {
// A view's gradient is the incoming gradient reshaped back to the input's shape.
Tensor reshape_like(const char* name, const Tensor& out, const Tensor& a) {
  if (!any_requires_grad({a})) return out;
  return record(name, out, {a}, [s = a.shape()](const Tensor& g) {
    return std::vector<Tensor>{ops::reshape(g, s)};
  });
}
}  // namespace

Tensor reshape(const Tensor& a, const Shape& shape) { return reshape_like("ReshapeBackward", ops::reshape(a, shape), a); }
Tensor view(const Tensor& a, const Shape& shape) { return reshape_like("ViewBackward", ops::view(a, shape), a); }
Tensor flatten(const Tensor& a, int64_t s, int64_t e) { return reshape_like("FlattenBackward", ops::flatten(a, s, e), a); }
Tensor squeeze(const Tensor& a, int64_t dim) { return reshape_like("SqueezeBackward", ops::squeeze(a, dim), a); }
Tensor unsqueeze(const Tensor& a, int64_t dim) {
  return reshape_like("UnsqueezeBackward", ops::unsqueeze(a, dim), a);
}

Tensor transpose(const Tensor& a, int64_t d0, int64_t d1) {
  Tensor out = ops::transpose(a, d0, d1);
  if (!any_requires_grad({a})) return out;
  return record("TransposeBackward", out, {a},
                [d0, d1](const Tensor& g) { return std::vector<Tensor>{ops::transpose(g, d0, d1)}; });
}

Tensor t(const Tensor& a) {
  BRAID_CHECK(a.dim() == 2, "t: expected a 2-D tensor, got ", shape_str(a.shape()));
  return transpose(a, 0, 1);
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& dims) {
  Tensor out = ops::permute(a, dims);
  if (!any_requires_grad({a})) return out;
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[size_t(dims[i] < 0 ? dims[i] + a.dim() : dims[i])] = int64_t(i);
  return record("PermuteBackward", out, {a},
                [inverse](const Tensor& g) { return std::vector<Tensor>{ops::permute(g, inverse)}; });
}

Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length) {
  Tensor out = ops::narrow(a, dim, start, length);
  if (!any_requires_grad({a})) return out;
  int64_t d = dim < 0 ? dim + a.dim() : dim;
  int64_t st = start < 0 ? start + a.shape()[d] : start;
  return record("NarrowBackward", out, {a}, [s = a.shape(), d, st, length](const Tensor& g) {
    Tensor full_g = zeros(s, TensorOptions(g.dtype(), g.device()));
    ops::copy_(ops::narrow(full_g, d, st, length), g);
    return std::vector<Tensor>{full_g};
  });
}

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) {
  BRAID_CHECK(a.dim() > 0, "slice: cannot slice a 0-d tensor");
  int64_t n = a.size(dim);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  return narrow(a, dim, start, end - start);
}

Tensor select(const Tensor& a, int64_t dim, int64_t index) {
  Tensor out = ops::select(a, dim, index);
  if (!any_requires_grad({a})) return out;
  int64_t d = dim < 0 ? dim + a.dim() : dim;
  int64_t i = index < 0 ? index + a.shape()[d] : index;
  return record("SelectBackward", out, {a}, [s = a.shape(), d, i](const Tensor& g) {
    Tensor full_g = zeros(s, TensorOptions(g.dtype(), g.device()));
    ops::copy_(ops::select(full_g, d, i), g);
    return std::vector<Tensor>{full_g};
  });
}

Tensor expand(const Tensor& a, const Shape& shape) {
  Tensor out = ops::expand(a, shape);
  if (!any_requires_grad({a})) return out;
  return record("ExpandBackward", out, {a},
                [s = a.shape()](const Tensor& g) { return std::vector<Tensor>{ops::sum_to(g, s)}; });
}

Tensor contiguous(const Tensor& a) {
  if (a.is_contiguous()) return a;
  Tensor out = ops::clone(a);
  if (!any_requires_grad({a})) return out;
  return record("ContiguousBackward", out, {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor clone(const Tensor& a) {
  Tensor out = ops::clone(a);
  if (!any_requires_grad({a})) return out;
  return record("CloneBackward", out, {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  Tensor out = ops::cat(ts, dim);
  if (!any_requires_grad(ts)) return out;
  int64_t d = dim < 0 ? dim + ts[0].dim() : dim;
  std::vector<int64_t> sizes;
  for (const auto& x : ts) sizes.push_back(x.shape()[d]);
  return record("CatBackward", out, ts, [d, sizes](const Tensor& g) {
    std::vector<Tensor> gs;
    int64_t pos = 0;
    for (int64_t n : sizes) {
      gs.push_back(ops::narrow(g, d, pos, n));
      pos += n;
    }
    return gs;
  });
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  BRAID_CHECK(!ts.empty(), "stack: expected a non-empty list of tensors");
  int64_t d = dim < 0 ? dim + ts[0].dim() + 1 : dim;
  std::vector<Tensor> us;
  for (const auto& x : ts) us.push_back(unsqueeze(x, d));
  return cat(us, d);
}

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index) {
  Tensor out = ops::index_select(a, dim, index);
  if (!any_requires_grad({a})) return out;
  int64_t d = dim < 0 ? dim + a.dim() : dim;
  return record("IndexSelectBackward", out, {a},
                [s = a.shape(), d, index = index.detach()](const Tensor& g) {
                  if (d == 0) return std::vector<Tensor>{ops::index_add(s, index, g)};
                  Shape ts = s;
                  std::swap(ts[0], ts[d]);
                  Tensor gt = ops::index_add(ts, index, ops::contiguous(ops::transpose(g, 0, d)));
                  return std::vector<Tensor>{ops::contiguous(ops::transpose(gt, 0, d))};
                },
                {index});
}

Tensor to_dtype(const Tensor& a, DType dtype) {
  Tensor out = ops::to_dtype(a, dtype);
  if (out.same(a) || !any_requires_grad({a})) return out;
  BRAID_CHECK(is_floating(dtype), "to_dtype: cannot differentiate through a conversion to ", dtype);
  return record("ToDtypeBackward", out, {a},
                [from = a.dtype()](const Tensor& g) { return std::vector<Tensor>{ops::to_dtype(g, from)}; });
}

Tensor to(const Tensor& a, Device device) {
  Tensor out = ops::to_device(a, device);
  if (out.same(a) || !any_requires_grad({a})) return out;
  return record("ToDeviceBackward", out, {a},
                [from = a.device()](const Tensor& g) { return std::vector<Tensor>{ops::to_device(g, from)}; });
}

// ---- linear algebra ----

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = ops::matmul(a, b);
  if (!any_requires_grad({a, b})) return out;
  return record("MatmulBackward", out, {a, b},
                autograd::MaskedBackwardFn([a = a.detach(), b = b.detach(), a_grad = a.requires_grad(),
                                            b_grad = b.requires_grad()](const Tensor& g,
                                                                        const autograd::EdgeMask& wanted) {
                  const bool na = a_grad && wanted[0], nb = b_grad && wanted[1];
                  Tensor ga, gb;
                  auto mT = [](const Tensor& x) { return x.dim() == 1 ? x : ops::transpose(x, -1, -2); };
                  if (a.dim() == 1 || b.dim() == 1) {
                    // Promote vectors to matrices so one rule serves every case.
                    Tensor a2 = a.dim() == 1 ? ops::unsqueeze(a, 0) : a;
                    Tensor b2 = b.dim() == 1 ? ops::unsqueeze(b, 1) : b;
                    Tensor g2 = g;
                    if (b.dim() == 1) g2 = ops::unsqueeze(g2, -1);  // first: a 0-d g (vector @ vector)
                    if (a.dim() == 1) g2 = ops::unsqueeze(g2, -2);
                    if (na) ga = ops::reshape(ops::sum_to(ops::matmul(g2, mT(b2)), a2.shape()), a.shape());
                    if (nb && b.dim() == 1) {  // a vector shared by every row of a: one [k, rows] @ [rows, 1]
                      int64_t k = b.shape()[0];
                      gb = ops::reshape(ops::matmul(ops::transpose(ops::reshape(a, {-1, k}), 0, 1),
                                                    ops::reshape(g, {-1, 1})),
                                        b.shape());
                    } else if (nb) {
                      gb = ops::sum_to(ops::matmul(mT(a2), g2), b.shape());
                    }
                    return std::vector<Tensor>{ga, gb};
                  }
                  if (na) ga = ops::sum_to(ops::matmul(g, mT(b)), a.shape());
                  if (nb) {
                    if (b.dim() == 2 && a.dim() > 2) {  // weights shared across the batch: one GEMM
                      int64_t k = a.shape().back(), n = g.shape().back();
                      gb = ops::matmul(ops::transpose(ops::reshape(a, {-1, k}), 0, 1), ops::reshape(g, {-1, n}));
                    } else {
                      gb = ops::sum_to(ops::matmul(mT(a), g), b.shape());
                    }
                  }
                  return std::vector<Tensor>{ga, gb};
                }),
                {a.requires_grad() ? b : Tensor(), b.requires_grad() ? a : Tensor()});
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor out = ops::linear(x, w, b);
  if (!any_requires_grad({x, w, b})) return out;
  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  return record("LinearBackward", out, inputs,
                autograd::MaskedBackwardFn([x = x.detach(), w = w.detach(), has_b = b.defined(),
                                            x_grad = x.requires_grad(), w_grad = w.requires_grad(),
                                            b_grad = b.defined() && b.requires_grad()](
                                               const Tensor& g, const autograd::EdgeMask& wanted) {
                  const bool nx = x_grad && wanted[0], nw = w_grad && wanted[1], nb = b_grad && wanted[2];
                  int64_t in = w.shape()[1], outf = w.shape()[0];
                  Tensor g2 = ops::reshape(g, {-1, outf});
                  std::vector<Tensor> grads(has_b ? 3 : 2);
                  if (nx) grads[0] = ops::reshape(ops::matmul(g2, w), x.shape());
                  if (nw) {
                    Tensor gw = empty({outf, in}, TensorOptions(w.dtype(), w.device()));
                    ops::gemm_into(gw, ops::transpose(g2, 0, 1), ops::reshape(x, {-1, in}), 1, 0);
                    grads[1] = gw;
                  }
                  if (nb) grads[2] = ops::sum(g2, {0});
                  return grads;
                }),
                {x.requires_grad() ? w : Tensor(), w.requires_grad() ? x : Tensor()});
}

// ---- softmax ----

Tensor softmax(const Tensor& a, int64_t dim) {
  Tensor out = ops::softmax(a, dim, false);
  if (!any_requires_grad({a})) return out;
  return record(
      "SoftmaxBackward", out, {a},
      [y = out.detach(), dim](const Tensor& g) { return std::vector<Tensor>{ops::softmax_backward(g, y, dim, false)}; },
      {out});
}

Tensor log_softmax(const Tensor& a, int64_t dim) {
  Tensor out = ops::softmax(a, dim, true);
  if (!any_requires_grad({a})) return out;
  return record(
      "LogSoftmaxBackward", out, {a},
      [y = out.detach(), dim](const Tensor& g) { return std::vector<Tensor>{ops::softmax_backward(g, y, dim, true)}; },
      {out});
}

}  // namespace braid

namespace braid::nn::functional {

namespace {
Tensor reduce_loss(const Tensor& per_element, Reduction r) {
  switch (r) {
    case Reduction::None: return per_element;
    case Reduction::Sum: return sum(per_element);
    default: return mean(per_element);
  }
}
}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_floating("mse_loss", input);
  check_floating("mse_loss", target);
  BRAID_CHECK(input.shape() == target.shape(), "mse_loss: input ", shape_str(input.shape()), " and target ",
              shape_str(target.shape()), " must have the same shape");
  ops::check_same_dtype("mse_loss", input, target);
  Tensor d = sub(input, target);
  return reduce_loss(mul(d, d), reduction);
}

namespace {
// Shared by cross_entropy (fused log-softmax) and nll_loss.
Tensor nll_impl(const char* name, const Tensor& x, const Tensor& target, Reduction reduction, bool fused) {
  check_floating(name, x);
  BRAID_CHECK(x.dim() == 2, name, ": expected input [batch, classes], got ", shape_str(x.shape()));
  BRAID_CHECK(target.defined(), name, ": got an undefined target");
  ops::check_same_device(name, x, target);
  BRAID_CHECK(target.dtype() == DType::Int64, name, ": target must be int64 class indices, got ", target.dtype(),
              " ", shape_str(target.shape()));
  BRAID_CHECK(target.dim() == 1 && target.shape()[0] == x.shape()[0], name, ": target shape ",
              shape_str(target.shape()), " does not match input ", shape_str(x.shape()), " (expected [",
              x.shape()[0], "])");
  Tensor lp = fused ? ops::softmax(x, 1, true) : x;
  Tensor per = ops::nll(lp, target);
  int64_t n = x.shape()[0];
  Tensor out = reduction == Reduction::None ? per
               : reduction == Reduction::Sum ? ops::sum(per)
                                             : ops::mean(per);
  if (!autograd::any_requires_grad({x})) return out;
  double scale = reduction == Reduction::Mean ? 1.0 / double(std::max<int64_t>(n, 1)) : 1.0;
  return record(fused ? "CrossEntropyBackward" : "NllLossBackward", out, {x},
                [lp = lp.detach(), target = target.detach(), scale, fused](const Tensor& g) {
                  return std::vector<Tensor>{ops::nll_backward(lp, target, g, scale, fused)};
                },
                {lp, target});
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction) {
  return nll_impl("cross_entropy", logits, target, reduction, true);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction) {
  return nll_impl("nll_loss", log_probs, target, reduction, false);
}

Tensor dropout(const Tensor& input, double p, bool training, Generator* gen) {
  BRAID_CHECK(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0) return input;
  check_floating("dropout", input);
  if (p == 1) return mul(input, zeros_like(input));
  Tensor keep = ops::binary(BinaryOp::Lt, rand(input.shape(), TensorOptions(input.dtype(), input.device()), gen),
                            scalar_like(input, 1 - p));
  return mul(input, ops::affine(keep, 1.0 / (1 - p), 0));
}

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  check_floating("layer_norm", input);
  int64_t k = int64_t(normalized_shape.size());
  bool ok = k >= 1 && input.dim() >= k;
  for (int64_t i = 0; ok && i < k; ++i) ok = input.shape()[input.dim() - k + i] == normalized_shape[i];
  BRAID_CHECK(ok, "layer_norm: input ", shape_str(input.shape()), " does not end in normalized_shape ",
              shape_str(normalized_shape));
  // The affine parameters must match normalized_shape exactly: anything else would broadcast silently.
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    const char* what = p == &weight ? "weight" : "bias";
    BRAID_CHECK(p->shape() == normalized_shape, "layer_norm: ", what, " ", shape_str(p->shape()),
                " does not match normalized_shape ", shape_str(normalized_shape));
    ops::check_same_dtype("layer_norm", input, *p);
  }
  const int64_t cols = shape_numel(normalized_shape);
  ops::LayerNormOutput r = ops::layer_norm(input, cols, weight, bias, eps);
  if (!any_requires_grad({input, weight, bias})) return r.output;
  std::vector<Tensor> inputs{input};
  if (weight.defined()) inputs.push_back(weight);
  if (bias.defined()) inputs.push_back(bias);
  const bool nx = input.requires_grad(), nw = weight.defined() && weight.requires_grad(),
             nb = bias.defined() && bias.requires_grad();
  // The input's gradient reads the weight; the weight's reads the input; the bias's only the incoming gradient.
  Tensor x = nx || nw ? input.detach() : Tensor(), w = nx && weight.defined() ? weight.detach() : Tensor();
  Tensor row_mean = x.defined() ? r.mean : Tensor(), row_rstd = x.defined() ? r.rstd : Tensor();
  return record("LayerNormBackward", r.output, inputs,
                autograd::MaskedBackwardFn([x, w, row_mean, row_rstd, cols, nx, nw, nb, has_w = weight.defined(),
                                            has_b = bias.defined(), param_shape = normalized_shape](
                                               const Tensor& g, const autograd::EdgeMask& wanted) {
                  // The weight and bias are inputs 1 and 2 when both are given, else the one given is input 1.
                  const bool want_x = nx && wanted[0], want_w = nw && wanted[1],
                             want_b = nb && wanted[has_w ? 2 : 1];
                  ops::LayerNormGrads d;
                  if (x.defined() && (want_x || want_w))
                    d = ops::layer_norm_backward(g, x, cols, w, row_mean, row_rstd, want_x, want_w, want_b);
                  else if (want_b)
                    d.bias = ops::sum(ops::reshape(g, {-1, cols}), {0});
                  std::vector<Tensor> grads{d.input};
                  if (has_w) grads.push_back(want_w ? ops::view(d.weight, param_shape) : Tensor());
                  if (has_b) grads.push_back(want_b ? ops::view(d.bias, param_shape) : Tensor());
                  return grads;
                }),
                {x, w, row_mean, row_rstd});
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  BRAID_CHECK(weight.dim() == 2, "embedding: weight must be [num_embeddings, dim], got ", shape_str(weight.shape()));
  BRAID_CHECK(indices.dtype() == DType::Int64, "embedding: indices must be int64, got ", indices.dtype());
  return index_select(weight, 0, indices);
}

}  // namespace braid::nn::functional
