// Fused layer normalisation (kernels/cpu/layer_norm.h and its CUDA twin).
#include "braid/core/creation.h"
#include "braid/kernels/cpu/layer_norm.h"
#include "op_util.h"

namespace braid::ops {

using detail::check_device;

namespace {

// The parameter checks both directions share; returns the parameter made contiguous (or undefined).
Tensor affine_parameter(const char* op, const char* what, const Tensor& p, const Tensor& input, int64_t cols) {
  if (!p.defined()) return p;
  check_device(op, p);
  check_same_device(op, input, p);
  check_same_dtype(op, input, p);
  BRAID_CHECK(p.numel() == cols, op, ": ", what, " ", shape_str(p.shape()), " should have ", cols,
              " elements (the normalised size)");
  return contiguous(p);
}

int64_t checked_rows(const char* op, const Tensor& input, int64_t cols) {
  check_device(op, input);
  BRAID_CHECK(is_floating(input.dtype()), op, ": expected a floating-point input, got ", input.dtype());
  BRAID_CHECK(cols > 0 && input.numel() % cols == 0, op, ": input ", shape_str(input.shape()),
              " does not split into rows of ", cols, " elements");
  return input.numel() / cols;
}

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

LayerNormOutput layer_norm(const Tensor& input, int64_t cols, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  const int64_t rows = checked_rows(op, input, cols);
  Tensor w = affine_parameter(op, "weight", weight, input, cols), b = affine_parameter(op, "bias", bias, input, cols);
  Tensor x = contiguous(input);
  const TensorOptions opts(input.dtype(), input.device());
  LayerNormOutput out{empty(input.shape(), opts), empty({rows}, opts), empty({rows}, opts)};
  dispatch_floating(input.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(
        input,
        kernels::cpu::layer_norm<T>(x.data<T>(), data_or_null<T>(w), data_or_null<T>(b), out.output.data<T>(),
                                    out.mean.data<T>(), out.rstd.data<T>(), rows, cols, eps),
        kernels::cuda::layer_norm<T>(x.data<T>(), data_or_null<T>(w), data_or_null<T>(b), out.output.data<T>(),
                                     out.mean.data<T>(), out.rstd.data<T>(), rows, cols, eps,
                                     detail::stream_of(input)));
  });
  return out;
}

LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& input, int64_t cols, const Tensor& weight,
                                   const Tensor& mean, const Tensor& rstd, bool input_grad, bool weight_grad,
                                   bool bias_grad) {
  const char* op = "layer_norm_backward";
  const int64_t rows = checked_rows(op, input, cols);
  for (const Tensor* t : {&grad, &mean, &rstd}) {
    check_device(op, *t);
    check_same_device(op, input, *t);
    check_same_dtype(op, input, *t);
  }
  BRAID_CHECK(grad.shape() == input.shape(), op, ": gradient ", shape_str(grad.shape()), " vs input ",
              shape_str(input.shape()));
  BRAID_CHECK(mean.numel() == rows && rstd.numel() == rows, op, ": mean ", shape_str(mean.shape()), " and rstd ",
              shape_str(rstd.shape()), " should have one element per row (", rows, ")");
  Tensor w = affine_parameter(op, "weight", weight, input, cols);
  Tensor g = contiguous(grad), x = contiguous(input), mu = contiguous(mean), rs = contiguous(rstd);
  const TensorOptions opts(input.dtype(), input.device());
  LayerNormGrads out;
  if (input_grad) out.input = empty(input.shape(), opts);
  if (weight_grad) out.weight = empty({cols}, opts);
  if (bias_grad) out.bias = empty({cols}, opts);
  dispatch_floating(input.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(
        input,
        kernels::cpu::layer_norm_backward<T>(g.data<T>(), x.data<T>(), data_or_null<T>(w), mu.data<T>(), rs.data<T>(),
                                             data_or_null<T>(out.input), data_or_null<T>(out.weight),
                                             data_or_null<T>(out.bias), rows, cols),
        kernels::cuda::layer_norm_backward<T>(g.data<T>(), x.data<T>(), data_or_null<T>(w), mu.data<T>(), rs.data<T>(),
                                              data_or_null<T>(out.input), data_or_null<T>(out.weight),
                                              data_or_null<T>(out.bias), rows, cols, detail::stream_of(input)));
  });
  return out;
}

}  // namespace braid::ops
