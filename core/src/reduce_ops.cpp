#include <algorithm>

#include "braid/core/creation.h"
#include "braid/kernels/cpu/reduce.h"
#include "op_util.h"

namespace braid::ops {

namespace kc = braid::kernels::cpu;
using detail::check_device;
using detail::wrap_dim;

namespace {

struct Plan {
  Tensor input;  // contiguous, laid out as [outer, reduce, inner]
  int64_t outer = 1, reduce = 1, inner = 1;
  Shape out_shape;
};

Plan plan_reduction(const Tensor& t, std::vector<int64_t> dims, bool keepdim, const char* op) {
  check_device(op, t);
  int64_t nd = t.dim();
  if (dims.empty())
    for (int64_t d = 0; d < nd; ++d) dims.push_back(d);
  for (auto& d : dims) d = wrap_dim(d, nd, op);
  std::sort(dims.begin(), dims.end());
  BRAID_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op, ": a dim is repeated");
  if (nd == 0) dims.clear();
  std::vector<bool> red(size_t(nd), false);
  for (int64_t d : dims) red[d] = true;

  Plan p;
  for (int64_t d = 0; d < nd; ++d) {
    if (!red[d]) p.out_shape.push_back(t.shape()[d]);
    else if (keepdim) p.out_shape.push_back(1);
  }
  bool block = dims.empty() || dims.back() - dims.front() + 1 == int64_t(dims.size());
  if (block) {
    p.input = contiguous(t);
    int64_t lo = dims.empty() ? nd : dims.front(), hi = dims.empty() ? nd - 1 : dims.back();
    for (int64_t d = 0; d < lo; ++d) p.outer *= t.shape()[d];
    for (int64_t d = lo; d <= hi; ++d) p.reduce *= t.shape()[d];
    for (int64_t d = hi + 1; d < nd; ++d) p.inner *= t.shape()[d];
  } else {  // move the reduced dims last
    std::vector<int64_t> order;
    for (int64_t d = 0; d < nd; ++d)
      if (!red[d]) order.push_back(d), p.outer *= t.shape()[d];
    for (int64_t d : dims) order.push_back(d), p.reduce *= t.shape()[d];
    p.input = contiguous(permute(t, order));
  }
  return p;
}

Tensor reduce_with(kc::ReduceOp rop, const Tensor& t, std::vector<int64_t> dims, bool keepdim, const char* op) {
  Plan p = plan_reduction(t, std::move(dims), keepdim, op);
  if (rop != kc::ReduceOp::Sum)
    BRAID_CHECK(p.reduce > 0, op, ": cannot reduce an empty dimension of ", shape_str(t.shape()));
  Tensor out = empty(p.out_shape, TensorOptions(t.dtype(), t.device()));
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(t, kc::reduce<T>(rop, p.input.data<T>(), out.data<T>(), p.outer, p.reduce, p.inner),
                    kernels::cuda::reduce<T>(rop, p.input.data<T>(), out.data<T>(), p.outer, p.reduce, p.inner,
                                             detail::stream_of(t)));
  });
  return out;
}

Tensor arg_with(bool max, const Tensor& t, int64_t dim, bool keepdim, const char* op) {
  BRAID_CHECK(t.numel() > 0, op, ": cannot take the arg of an empty tensor");
  Plan p = plan_reduction(t, {dim}, keepdim, op);
  Tensor out = empty(p.out_shape, TensorOptions(DType::Int64, t.device()));
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(t, kc::arg_reduce<T>(max, p.input.data<T>(), out.data<int64_t>(), p.outer, p.reduce, p.inner),
                    kernels::cuda::arg_reduce<T>(max, p.input.data<T>(), out.data<int64_t>(), p.outer, p.reduce,
                                                 p.inner, detail::stream_of(t)));
  });
  return out;
}

}  // namespace

Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  return reduce_with(kc::ReduceOp::Sum, t, std::move(dims), keepdim, "sum");
}

Tensor mean(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  detail::check_defined("mean", t);
  BRAID_CHECK(is_floating(t.dtype()), "mean: expected a floating-point tensor, got ", t.dtype());
  Tensor s = sum(t, dims, keepdim);
  int64_t count = s.numel() ? t.numel() / s.numel() : 0;
  return affine(s, count ? 1.0 / double(count) : std::nan(""), 0.0);
}

Tensor amax(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  return reduce_with(kc::ReduceOp::Max, t, std::move(dims), keepdim, "max");
}

Tensor amin(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  return reduce_with(kc::ReduceOp::Min, t, std::move(dims), keepdim, "min");
}

Tensor argmax(const Tensor& t, int64_t dim, bool keepdim) { return arg_with(true, t, dim, keepdim, "argmax"); }
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim) { return arg_with(false, t, dim, keepdim, "argmin"); }

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  int64_t lead = t.dim() - int64_t(shape.size());
  BRAID_CHECK(lead >= 0, "sum_to: cannot sum ", shape_str(t.shape()), " to the larger shape ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < lead) dims.push_back(d);
    else if (shape[d - lead] == 1 && t.shape()[d] != 1) dims.push_back(d);
    else
      BRAID_CHECK(shape[d - lead] == t.shape()[d], "sum_to: ", shape_str(t.shape()), " does not reduce to ",
                  shape_str(shape));
  }
  if (dims.empty()) return reshape(t, shape);
  return reshape(sum(t, dims, true), shape);
}

Tensor softmax(const Tensor& t, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_device(op, t);
  dim = wrap_dim(dim, t.dim(), op);
  Tensor c = contiguous(t);
  int64_t outer = 1, n = t.dim() ? t.shape()[dim] : 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= t.shape()[d];
  for (int64_t d = dim + 1; d < t.dim(); ++d) inner *= t.shape()[d];
  Tensor out = empty(t.shape(), TensorOptions(t.dtype(), t.device()));
  dispatch_floating(t.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(t, kc::softmax<T>(log, c.data<T>(), out.data<T>(), outer, n, inner),
                    kernels::cuda::softmax<T>(log, c.data<T>(), out.data<T>(), outer, n, inner, detail::stream_of(t)));
  });
  return out;
}

Tensor softmax_backward(const Tensor& grad, const Tensor& output, int64_t dim, bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  check_device(op, grad);
  check_device(op, output);
  check_same_device(op, grad, output);
  check_same_dtype(op, grad, output);
  BRAID_CHECK(grad.shape() == output.shape(), op, ": gradient ", shape_str(grad.shape()), " vs output ",
              shape_str(output.shape()));
  dim = wrap_dim(dim, output.dim(), op);
  Tensor g = contiguous(grad), y = contiguous(output);
  int64_t outer = 1, n = output.dim() ? output.shape()[dim] : 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= output.shape()[d];
  for (int64_t d = dim + 1; d < output.dim(); ++d) inner *= output.shape()[d];
  Tensor out = empty(output.shape(), TensorOptions(output.dtype(), output.device()));
  dispatch_floating(output.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(output,
                    kc::softmax_backward<T>(log, g.data<T>(), y.data<T>(), out.data<T>(), outer, n, inner),
                    kernels::cuda::softmax_backward<T>(log, g.data<T>(), y.data<T>(), out.data<T>(), outer, n, inner,
                                                       detail::stream_of(output)));
  });
  return out;
}

namespace {
void check_nll_args(const char* op, const Tensor& lp, const Tensor& target) {
  check_device(op, lp);
  check_device(op, target);
  check_same_device(op, lp, target);
  BRAID_CHECK(lp.dim() == 2, op, ": expected input of shape [batch, classes], got ", shape_str(lp.shape()));
  BRAID_CHECK(target.dtype() == DType::Int64, op, ": target must be int64 class indices, got ", target.dtype());
  BRAID_CHECK(target.dim() == 1 && target.shape()[0] == lp.shape()[0], op, ": target shape ",
              shape_str(target.shape()), " does not match input ", shape_str(lp.shape()), " (expected [",
              lp.shape()[0], "])");
}
}  // namespace

Tensor nll(const Tensor& log_probs, const Tensor& target) {
  check_nll_args("nll_loss", log_probs, target);
  Tensor lp = contiguous(log_probs), tg = contiguous(target);
  int64_t n = lp.shape()[0], c = lp.shape()[1];
  Tensor out = empty({n}, TensorOptions(lp.dtype(), lp.device()));
  dispatch_floating(lp.dtype(), "nll_loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    int64_t bad = -1;
    BRAID_ON_DEVICE(
        lp, bad = kc::nll_forward<T>(lp.data<T>(), tg.data<int64_t>(), out.data<T>(), n, c), {
          Tensor flag = full({}, double(n), TensorOptions(DType::Int64, lp.device()));
          kernels::cuda::nll_forward<T>(lp.data<T>(), tg.data<int64_t>(), out.data<T>(), flag.data<int64_t>(), n, c,
                                        detail::stream_of(lp));
          bad = flag.item<int64_t>();
          if (bad == n) bad = -1;
        });
    BRAID_CHECK(bad < 0, "nll_loss: target[", bad, "] = ", ops::select(tg, 0, bad).item<int64_t>(),
                " is not a class index in [0, ", c, ")");
  });
  return out;
}

Tensor nll_backward(const Tensor& log_probs, const Tensor& target, const Tensor& grad_loss, double scale,
                    bool from_log_softmax) {
  check_nll_args("nll_loss_backward", log_probs, target);
  check_device("nll_loss_backward", grad_loss);
  check_same_device("nll_loss_backward", log_probs, grad_loss);
  check_same_dtype("nll_loss_backward", log_probs, grad_loss);
  Tensor lp = contiguous(log_probs), tg = contiguous(target), gl = contiguous(grad_loss);
  int64_t n = lp.shape()[0], c = lp.shape()[1];
  BRAID_CHECK(gl.numel() == 1 || gl.numel() == n, "nll_loss_backward: gradient of ", gl.numel(),
              " elements for ", n, " samples");
  if (tg.device().is_cpu()) {  // the CUDA kernel skips a bad target; the CPU one would write out of bounds
    const int64_t* t = tg.data<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      BRAID_CHECK(t[i] >= 0 && t[i] < c, "nll_loss_backward: target[", i, "] = ", t[i],
                  " is not a class index in [0, ", c, ")");
  }
  Tensor out = empty(lp.shape(), TensorOptions(lp.dtype(), lp.device()));
  dispatch_floating(lp.dtype(), "nll_loss_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool per_sample = gl.numel() == n && n != 1;
    BRAID_ON_DEVICE(lp,
                    kc::nll_backward<T>(from_log_softmax, lp.data<T>(), tg.data<int64_t>(), gl.data<T>(), per_sample,
                                        T(scale), out.data<T>(), n, c),
                    kernels::cuda::nll_backward<T>(from_log_softmax, lp.data<T>(), tg.data<int64_t>(), gl.data<T>(),
                                                   per_sample, T(scale), out.data<T>(), n, c, detail::stream_of(lp)));
  });
  return out;
}

}  // namespace braid::ops
