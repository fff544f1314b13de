// The numerical cases of issue 8 on a CUDA device: float32 log-softmax and cross-entropy of logits in the hundreds
// (both the row kernel and the strided-column kernel) against float64 and against the CPU twin, and GELU's tanh
// approximation forward and backward against the CPU. Skipped without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "braid/braid.h"
#include "cuda_test_util.h"

using namespace braid;
namespace F = braid::nn::functional;

namespace {

using braid::test::kGpu;

class CudaNumerics : public braid::test::CudaTest {};

Tensor to_gpu(const Tensor& t) { return ops::to_device(t, kGpu); }

// Rows whose likeliest class has a log-probability between -1e-4 and -1e-6 (see
// tests/nn/test_log_softmax_precision.cpp), then a long row that spreads over a whole block of threads.
std::vector<float> large_logits(int64_t& rows, int64_t& classes) {
  classes = 4099;
  const std::vector<float> heads = {300, 290, 285, 310, 298, 297, -300, -310, -305.5f, 1000, 989, 987.5f};
  rows = int64_t(heads.size()) / 3 + 1;
  std::vector<float> v(size_t(rows * classes));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = v.data() + r * classes;
    const float top = r + 1 < rows ? heads[size_t(r * 3)] : 400.0f;
    for (int64_t j = 0; j < classes; ++j) row[j] = top - 20.0f - float(j % 97) * 0.125f;  // far below the head
    if (r + 1 < rows) {
      row[0] = heads[size_t(r * 3)];
      row[1] = heads[size_t(r * 3 + 1)];
      row[2] = heads[size_t(r * 3 + 2)];
    } else {
      row[classes - 1] = top;  // the head last, in another thread's share of the row
    }
  }
  return v;
}

std::vector<double> reference_log_softmax(const std::vector<float>& x, int64_t rows, int64_t classes) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * classes;
    double m = *std::max_element(row, row + classes), s = 0;
    for (int64_t j = 0; j < classes; ++j) s += std::exp(double(row[j]) - m);
    for (int64_t j = 0; j < classes; ++j) out[size_t(r * classes + j)] = (double(row[j]) - m) - std::log(s);
  }
  return out;
}

void expect_relative(const std::vector<double>& got, const std::vector<double>& want, double rtol) {
  ASSERT_EQ(got.size(), want.size());
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want[i]) <= rtol * std::abs(want[i])) && bad++ < 5)
      ADD_FAILURE() << "element " << i << ": got " << got[i] << ", float64 " << want[i];
  EXPECT_EQ(bad, 0);
}

TEST_F(CudaNumerics, LargeLogitsLogSoftmaxMatchesFloat64) {
  int64_t rows = 0, classes = 0;
  std::vector<float> v = large_logits(rows, classes);
  std::vector<double> want = reference_log_softmax(v, rows, classes);
  Tensor x = from_vector(v, {rows, classes});
  expect_relative(ops::softmax(to_gpu(x), 1, true).to_vector<double>(), want, 1e-5);
  // Along dim 0 of the transpose: the strided-column kernel.
  Tensor columns = to_gpu(ops::contiguous(ops::transpose(x, 0, 1)));
  expect_relative(ops::transpose(ops::softmax(columns, 0, true), 0, 1).to_vector<double>(), want, 1e-5);
}

TEST_F(CudaNumerics, LargeLogitsCrossEntropyGradientRowsSumToZero) {
  int64_t rows = 0, classes = 0;
  std::vector<float> v = large_logits(rows, classes);
  std::vector<int64_t> target(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) target[size_t(r)] = r % 3;
  Tensor x = to_gpu(from_vector(v, {rows, classes})).requires_grad_(true);
  F::cross_entropy(x, to_gpu(from_vector(target)), F::Reduction::Sum).backward();
  std::vector<double> g = x.grad().to_vector<double>();
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += g[size_t(r * classes + j)];
    EXPECT_LT(std::abs(sum), 1e-6) << "row " << r;
  }
}

TEST_F(CudaNumerics, GeluBothFormsForwardBackwardMatchCpu) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (const char* approximate : {"none", "tanh"}) {
      SCOPED_TRACE(std::string(approximate) + " " + std::string(dtype_name(dt)));
      Generator gen(2024);
      Tensor x = uniform({33, 65}, -7, 7, dt, &gen), w = normal({33, 65}, 0, 1, dt, &gen);
      Tensor cx = ops::clone(x).requires_grad_(true), gx = to_gpu(x).requires_grad_(true);
      Tensor cy = gelu(cx, approximate), gy = gelu(gx, approximate);
      cy.backward(w);
      gy.backward(to_gpu(w));
      const double rtol = dt == DType::Float64 ? 1e-12 : 1e-5, atol = dt == DType::Float64 ? 1e-14 : 1e-6;
      for (auto [got, want] : {std::pair{gy, cy}, std::pair{gx.grad(), cx.grad()}}) {
        EXPECT_EQ(got.device(), kGpu);
        std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], atol + rtol * std::abs(b[i])) << "element " << i;
      }
    }
}

}  // namespace
