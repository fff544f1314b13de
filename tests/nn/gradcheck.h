// A finite-difference gradient check in float64 for the nn suites that live outside test_gradcheck.cpp (the same
// method): f's output is reduced to a scalar by a weighted sum with fixed random weights W, the analytic gradient
// of that scalar comes from backward (out.backward(W)), and central differences (eps 1e-6) of the same scalar are
// compared element by element of every input with |analytic - numeric| <= atol + rtol * |numeric|.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "braid/core/core.h"
#include "braid/nn/autograd.h"

namespace braid::test {

using Inputs = std::vector<Tensor>;
using GradFn = std::function<Tensor(const Inputs&)>;

// Inputs must be contiguous float64 leaves that require grad; they are perturbed in place and restored.
inline testing::AssertionResult gradcheck(const GradFn& f, const Inputs& inputs, double rtol = 1e-5, double atol = 1e-7,
                                          double eps = 1e-6) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (x.dtype() != DType::Float64 || !x.is_contiguous() || !x.is_leaf() || !x.requires_grad())
      return testing::AssertionFailure() << "input " << i << " must be a contiguous float64 leaf that requires grad";
    x.set_grad(Tensor());
  }
  Tensor out = f(inputs);
  if (!out.requires_grad()) return testing::AssertionFailure() << "the output does not require grad";
  Generator wg(12345);
  Tensor w = randn(out.shape(), DType::Float64, &wg);
  const std::vector<double> wv = w.to_vector<double>();
  out.backward(w);
  auto objective = [&] {
    NoGradGuard no_grad;
    const std::vector<double> y = f(inputs).to_vector<double>();
    double s = 0;
    for (size_t k = 0; k < y.size(); ++k) s += y[k] * wv[k];
    return s;
  };
  std::ostringstream msg;
  int mismatches = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    const Tensor g = x.grad();
    if (g.defined() && g.shape() != x.shape())
      return testing::AssertionFailure() << "input " << i << ": gradient " << shape_str(g.shape()) << " for "
                                         << shape_str(x.shape());
    const std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    double* p = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double orig = p[j];
      p[j] = orig + eps;
      const double fp = objective();
      p[j] = orig - eps;
      const double fm = objective();
      p[j] = orig;
      const double numeric = (fp - fm) / (2 * eps), a = analytic[size_t(j)];
      if (!(std::abs(a - numeric) <= atol + rtol * std::abs(numeric)) && mismatches++ < 6)
        msg << "input " << i << " " << shape_str(x.shape()) << " element " << j << ": analytic " << a
            << (g.defined() ? "" : " (no gradient)") << ", numeric " << numeric << "\n";
    }
  }
  if (mismatches == 0) return testing::AssertionSuccess();
  return testing::AssertionFailure() << mismatches << " mismatches\n" << msg.str();
}

}  // namespace braid::test
