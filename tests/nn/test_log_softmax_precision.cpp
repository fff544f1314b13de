// float32 log-softmax and cross-entropy on logits in the hundreds, against the same computation in float64 from
// the same float32 values. Rounding max + log(sum) to float32 before subtracting it (the defect of issue 8) moves
// every log-probability by up to half a float spacing near the max (1.5e-5 at 300): several percent of the
// log-probability of a class that holds almost all the mass, and a cross-entropy gradient whose rows no longer
// sum to zero. PyTorch's order, (x - max) - log(sum), keeps both to float32 rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "braid/braid.h"

using namespace braid;
namespace F = braid::nn::functional;

namespace {

constexpr int64_t kClasses = 6;

// Each row has a class holding nearly all the probability (a log-probability between -1e-4 and -1e-6) or a few
// close classes; negative rows and a row near 1000 check that nothing depends on the sign or the size.
const std::vector<float> kLogits = {
    300.0f,  290.0f,  285.0f,  280.0f,   270.0f,  250.0f,   //
    300.0f,  299.5f,  290.0f,  250.0f,   301.25f, 296.0f,   //
    310.0f,  298.0f,  297.0f,  296.5f,   295.0f,  200.0f,   //
    -300.0f, -310.0f, -305.5f, -299.75f, -320.0f, -314.0f,  //
    1000.0f, 989.0f,  987.5f,  985.0f,   990.25f, 900.0f,   //
    300.0f,  300.0f,  286.0f,  299.0f,   270.0f,  288.0f,   //
};
const std::vector<int64_t> kTarget = {0, 4, 0, 3, 1, 2};

int64_t rows() { return int64_t(kLogits.size()) / kClasses; }

// log_softmax in float64 from the float32 logits, row by row.
std::vector<double> reference_log_softmax() {
  std::vector<double> out(kLogits.size());
  for (int64_t r = 0; r < rows(); ++r) {
    const float* x = kLogits.data() + r * kClasses;
    double m = *std::max_element(x, x + kClasses), s = 0;
    for (int64_t j = 0; j < kClasses; ++j) s += std::exp(double(x[j]) - m);
    for (int64_t j = 0; j < kClasses; ++j) out[size_t(r * kClasses + j)] = (double(x[j]) - m) - std::log(s);
  }
  return out;
}

Tensor logits(DType dtype = DType::Float32) { return ops::to_dtype(from_vector(kLogits, {rows(), kClasses}), dtype); }

void expect_close_relative(const std::vector<double>& got, const std::vector<double>& want, double rtol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(std::abs(got[i] - want[i]), rtol * std::abs(want[i]))
        << "element " << i << " (row " << i / kClasses << "): got " << got[i] << ", float64 " << want[i];
}

TEST(LogSoftmaxPrecision, TheReferenceHasLogProbabilitiesNearZero) {
  std::vector<double> want = reference_log_softmax();
  int64_t small = std::count_if(want.begin(), want.end(), [](double v) { return std::abs(v) < 1e-4; });
  EXPECT_GE(small, 3);
}

TEST(LogSoftmaxPrecision, Float32LargeLogitsMatchFloat64) {
  std::vector<double> got = log_softmax(logits(), 1).to_vector<double>();
  expect_close_relative(got, reference_log_softmax(), 1e-5);
}

// The same rows along dim 0 of the transpose: the kernel's strided (non-last-dim) path.
TEST(LogSoftmaxPrecision, Float32LargeLogitsAlongAStridedDimMatchFloat64) {
  Tensor columns = ops::contiguous(transpose(logits(), 0, 1));
  std::vector<double> got = transpose(log_softmax(columns, 0), 0, 1).to_vector<double>();
  expect_close_relative(got, reference_log_softmax(), 1e-5);
}

TEST(LogSoftmaxPrecision, Float32CrossEntropyLossMatchesFloat64) {
  std::vector<double> lp = reference_log_softmax();
  double want = 0;
  for (int64_t r = 0; r < rows(); ++r) want -= lp[size_t(r * kClasses + kTarget[size_t(r)])];
  want /= double(rows());
  double got = F::cross_entropy(logits(), from_vector(kTarget)).item<double>();
  EXPECT_NEAR(got, want, 1e-5 * std::abs(want));
}

// d loss / d logits = (softmax - onehot) / n: each row sums to zero, and each element is within float32 rounding
// of its float64 value.
TEST(LogSoftmaxPrecision, Float32CrossEntropyGradientRowsSumToZero) {
  std::vector<double> lp = reference_log_softmax();
  for (auto reduction : {F::Reduction::Mean, F::Reduction::Sum}) {
    SCOPED_TRACE(reduction == F::Reduction::Mean ? "mean" : "sum");
    Tensor x = logits().requires_grad_(true);
    F::cross_entropy(x, from_vector(kTarget), reduction).backward();
    std::vector<double> g = x.grad().to_vector<double>();
    const double scale = reduction == F::Reduction::Mean ? 1.0 / double(rows()) : 1.0;
    for (int64_t r = 0; r < rows(); ++r) {
      double sum = 0;
      for (int64_t j = 0; j < kClasses; ++j) {
        const size_t i = size_t(r * kClasses + j);
        sum += g[i];
        const double want = scale * (std::exp(lp[i]) - (j == kTarget[size_t(r)] ? 1.0 : 0.0));
        EXPECT_NEAR(g[i], want, 2e-7) << "row " << r << " class " << j;
      }
      EXPECT_LT(std::abs(sum), 1e-6) << "row " << r;
    }
  }
}

// log_softmax's own backward (g - exp(y) sum(g)) gives rows that sum to zero for the same reason.
TEST(LogSoftmaxPrecision, Float32LogSoftmaxBackwardRowsSumToZero) {
  Tensor x = logits().requires_grad_(true);
  Tensor y = log_softmax(x, 1);
  Tensor onehot = zeros({rows(), kClasses});
  for (int64_t r = 0; r < rows(); ++r) onehot.data<float>()[r * kClasses + kTarget[size_t(r)]] = -1.0f;
  y.backward(onehot);
  std::vector<double> g = x.grad().to_vector<double>();
  for (int64_t r = 0; r < rows(); ++r) {
    double sum = 0;
    for (int64_t j = 0; j < kClasses; ++j) sum += g[size_t(r * kClasses + j)];
    EXPECT_LT(std::abs(sum), 1e-6) << "row " << r;
  }
}

}  // namespace
