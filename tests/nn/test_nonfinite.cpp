// nn::first_nonfinite_grad: the first NaN or infinity among named parameters' gradients, by parameter order and then
// row-major position, in float32 and float64; what --stop-on-nonfinite in the examples reports.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "braid/braid.h"

using namespace braid;

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using Named = std::vector<std::pair<std::string, Tensor>>;

// A parameter of `shape` and `dtype` whose gradient holds `grad` (row-major).
Tensor param_with_grad(const std::vector<double>& grad, const Shape& shape, DType dtype) {
  Tensor p = ops::to_dtype(zeros(shape), dtype);
  p.requires_grad_();
  p.set_grad(ops::to_dtype(ops::reshape(from_vector(grad), shape), dtype));
  return p;
}

class FirstNonfiniteGrad : public ::testing::TestWithParam<DType> {};

TEST_P(FirstNonfiniteGrad, NoneWhenEveryGradientIsFinite) {
  const double big = GetParam() == DType::Float32 ? 3e38 : 1e308;
  Named named{{"a", param_with_grad({1, -2, big, -big}, {2, 2}, GetParam())},
              {"b", param_with_grad({0.5, 0}, {2}, GetParam())}};
  EXPECT_FALSE(nn::first_nonfinite_grad(named).has_value());
}

TEST_P(FirstNonfiniteGrad, NamesTheParameterElementAndValueOfNanPlusAndMinusInfinity) {
  for (double bad : {kNan, kInf, -kInf}) {
    Named named{{"layer1.weight", param_with_grad({1, 2, 3, 4, 5, 6}, {2, 3}, GetParam())},
                {"layer2.weight", param_with_grad({1, 2, 3, 4, 5, bad}, {2, 3}, GetParam())},
                {"layer2.bias", param_with_grad({bad, bad}, {2}, GetParam())}};
    auto found = nn::first_nonfinite_grad(named);
    ASSERT_TRUE(found.has_value()) << bad;
    EXPECT_EQ(found->name, "layer2.weight");
    EXPECT_EQ(found->index, (std::vector<int64_t>{1, 2}));
    if (std::isnan(bad)) {
      EXPECT_TRUE(std::isnan(found->value));
    } else {
      EXPECT_EQ(found->value, bad);
    }
    EXPECT_EQ(nn::to_string(*found), "layer2.weight[1, 2] = " + nn::value_name(bad));
  }
}

TEST_P(FirstNonfiniteGrad, TakesTheFirstElementInRowMajorOrderOfAView) {
  // The gradient is stored transposed: logical element [0, 1] is stored second-to-last.
  Tensor p = param_with_grad({0, 0, 0, 0, 0, 0}, {2, 3}, GetParam());
  Tensor stored = ops::to_dtype(from_vector(std::vector<double>{1, 2, kInf, 4, kNan, 6}, {3, 2}), GetParam());
  p.set_grad(ops::transpose(stored, 0, 1));  // logical rows {1, kInf, kNan}, {2, 4, 6}
  auto found = nn::first_nonfinite_grad({{"w", p}});
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->index, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(found->value, kInf);
}

TEST_P(FirstNonfiniteGrad, SkipsParametersWithoutAGradient) {
  Tensor no_grad = ops::to_dtype(zeros({3}), GetParam());
  no_grad.requires_grad_();
  Named named{{"unused", no_grad}, {"scalar", param_with_grad({-kInf}, {}, GetParam())}};
  auto found = nn::first_nonfinite_grad(named);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(nn::to_string(*found), "scalar[] = -inf");
  EXPECT_FALSE(nn::first_nonfinite_grad({{"unused", no_grad}}).has_value());
}

INSTANTIATE_TEST_SUITE_P(DTypes, FirstNonfiniteGrad, ::testing::Values(DType::Float32, DType::Float64),
                         [](const auto& info) { return info.param == DType::Float32 ? "Float32" : "Float64"; });

TEST(FirstNonfiniteGradModule, FindsTheLayerAfterABackwardThroughAnInfiniteInput) {
  nn::Sequential model(nn::Linear(3, 2), nn::ReLU(), nn::Linear(2, 1));
  Tensor x = from_vector(std::vector<float>{1, 2, 3}, {1, 3});
  nn::mse_loss(model(x), zeros({1, 1})).backward();
  EXPECT_FALSE(nn::first_nonfinite_grad(model->named_parameters()).has_value());
  model->zero_grad();
  Tensor bad = from_vector(std::vector<float>{1, float(kInf), 3}, {1, 3});
  nn::mse_loss(model(bad), zeros({1, 1})).backward();
  auto found = nn::first_nonfinite_grad(model->named_parameters());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name.substr(0, 2), "0.") << nn::to_string(*found);  // the first layer's weight
  EXPECT_FALSE(std::isfinite(found->value));
}

}  // namespace
