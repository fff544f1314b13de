#include "braid/kernels/cpu/gelu.h"

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstring>
#include <unsupported/Eigen/SpecialFunctions>

namespace braid::kernels::cpu {

namespace {

// Every element goes through Eigen's packet math on an aligned block of kBlock: on a plain Map, Eigen would peel
// the unaligned head and the tail into its scalar path (std::exp, std::erf), so that a result would depend on
// where the array lies in memory and on how the threads split it.
constexpr int64_t kBlock = 256;
using Block = Eigen::Array<float, kBlock, 1>;
using BlockMap = Eigen::Map<Block, Eigen::Aligned64>;

constexpr float kBeta = 0.79788456080286535588f;  // sqrt(2 / pi)
constexpr float kKappa = 0.044715f;
constexpr float kSqrtHalf = 0.70710678118654752440f;
constexpr float kInvSqrtTwoPi = 0.39894228040143267794f;
// The backwards evaluate their exp terms at x clamped to [-kTail, kTail]: beyond it those terms are below float
// resolution (the derivatives are 0 or 1 to within 1e-16), and unclamped they overflow into inf * 0.
constexpr float kTail = 9.f;

// out[i] = compute(in...)[i] over blocks copied into aligned buffers, the last one padded with zeros.
template <size_t N, class Compute>
void by_blocks(float* out, std::array<const float*, N> in, int64_t n, Compute compute) {
  alignas(64) float in_block[N][kBlock];
  alignas(64) float out_block[kBlock];
  for (int64_t begin = 0; begin < n; begin += kBlock) {
    const int64_t m = std::min(kBlock, n - begin);
    for (size_t k = 0; k < N; ++k) {
      std::memcpy(in_block[k], in[k] + begin, size_t(m) * sizeof(float));
      std::fill(in_block[k] + m, in_block[k] + kBlock, 0.f);
    }
    BlockMap result(out_block);
    if constexpr (N == 1) compute(result, BlockMap(in_block[0]));
    else compute(result, BlockMap(in_block[0]), BlockMap(in_block[1]));
    std::memcpy(out + begin, out_block, size_t(m) * sizeof(float));
  }
}

}  // namespace

void gelu(float* y, const float* x, int64_t n) {
  by_blocks<1>(y, {x}, n, [](BlockMap out, BlockMap a) { out = a * 0.5f * (1.f + (a * kSqrtHalf).erf()); });
}

void gelu_tanh(float* y, const float* x, int64_t n) {
  by_blocks<1>(y, {x}, n, [](BlockMap out, BlockMap a) {
    out = a / (1.f + ((-2.f * kBeta) * (a + kKappa * a.cube())).exp());
  });
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x). Adding x - x (0, or NaN at +-inf and NaN) keeps the functor's NaN at
// +-inf, where its x * phi(x) is inf * 0.
void gelu_backward(float* grad_x, const float* grad_y, const float* x, int64_t n) {
  by_blocks<2>(grad_x, {grad_y, x}, n, [](BlockMap out, BlockMap g, BlockMap a) {
    const auto c = a.max(-kTail).min(kTail);
    out = g * (0.5f * (1.f + (a * kSqrtHalf).erf()) + c * kInvSqrtTwoPi * (-0.5f * c.square()).exp() + (a - a));
  });
}

// d/dx [x s(x)] with s = 1 / (1 + e), e = exp(-2 u): s + x * 2 u'(x) * e * s^2; e and s are evaluated once into
// blocks since the formula uses them more than once. As in gelu_backward, x - x keeps the functor's NaN at +-inf.
void gelu_tanh_backward(float* grad_x, const float* grad_y, const float* x, int64_t n) {
  by_blocks<2>(grad_x, {grad_y, x}, n, [](BlockMap out, BlockMap g, BlockMap a) {
    const auto c = a.max(-kTail).min(kTail);
    const Block e = ((-2.f * kBeta) * c * (1.f + kKappa * c.square())).exp();
    const Block s = (1.f + e).inverse();
    out = g * (s + (2.f * kBeta) * c * (1.f + (3.f * kKappa) * c.square()) * e * s * s + (a - a));
  });
}

}  // namespace braid::kernels::cpu
