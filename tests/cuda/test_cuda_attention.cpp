// The fused attention softmax, ops::bmm, scaled_dot_product_attention and layer_norm on a CUDA device against their CPU
// twins, forward and backward, on random inputs: row lengths that give each thread-group size of the row kernels
// (a few lanes, a warp, a whole block), causal and not, float32 and float64, with and without LayerNorm's affine
// parameters. CUDA allocations are poisoned, so an element a kernel leaves unwritten fails. Skips without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <vector>

#include "../test_util.h"
#include "braid/core/core.h"
#include "braid/nn/functional.h"
#include "cuda_test_util.h"

using namespace braid;
namespace F = braid::nn::functional;
using braid::test::kGpu;

namespace {

class CudaAttention : public braid::test::CudaTest {};

Tensor to_gpu(const Tensor& t) { return ops::to_device(t, kGpu); }

Tensor randn_cpu(const Shape& s, DType dt, uint64_t seed, double std = 1) {
  Generator g(seed);
  return normal(s, 0, std, dt, &g);
}

// Per element |got - want| <= tol * max|want| (the sums and GEMMs behind these accumulate in different orders on
// the two devices); exact zeros of the CPU result (masked probabilities) must be exact zeros on the GPU too.
testing::AssertionResult close_to_cpu(const Tensor& got, const Tensor& want, double tol) {
  if (!got.defined()) return testing::AssertionFailure() << "result is undefined";
  if (!got.device().is_cuda()) return testing::AssertionFailure() << "result is on " << got.device();
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return testing::AssertionFailure() << "result " << shape_str(got.shape()) << " " << got.dtype() << ", expected "
                                       << shape_str(want.shape()) << " " << want.dtype();
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 0;
  for (double x : w) scale = std::max(scale, std::abs(x));
  for (size_t i = 0; i < g.size(); ++i) {
    const bool ok = w[i] == 0 ? g[i] == 0 || std::abs(g[i]) <= tol * scale : std::abs(g[i] - w[i]) <= tol * scale;
    if (!ok || std::isnan(g[i]))
      return testing::AssertionFailure() << "element " << i << ": got " << g[i] << ", expected " << w[i]
                                         << " (max |expected| " << scale << ")";
  }
  return testing::AssertionSuccess();
}

double tol_for(DType dt) { return dt == DType::Float64 ? 1e-12 : 2e-6; }

}  // namespace

TEST_F(CudaAttention, SoftmaxKernelsMatchCpu) {
  uint64_t seed = 1;
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t n : {1, 7, 33, 128, 300, 2100, 5000}) {
      for (bool causal : {false, true}) {
        SCOPED_TRACE(testing::Message() << dt << " rows of " << n << " causal " << causal);
        Tensor s = randn_cpu({3, n, n}, dt, ++seed, 3);
        if (n > 300) s = randn_cpu({1, 2, n}, dt, seed, 3);  // long rows, not causal-square
        if (causal && s.shape()[1] != s.shape()[2]) continue;
        Tensor p = ops::attention_softmax(s, 0.37, causal);
        Tensor pg = ops::attention_softmax(to_gpu(s), 0.37, causal);
        EXPECT_TRUE(close_to_cpu(pg, p, tol_for(dt)));
        Tensor dp = randn_cpu(s.shape(), dt, ++seed);
        EXPECT_TRUE(close_to_cpu(ops::attention_softmax_backward(to_gpu(dp), pg, 0.37, causal),
                                 ops::attention_softmax_backward(dp, p, 0.37, causal), 10 * tol_for(dt)));
      }
    }
  }
}

TEST_F(CudaAttention, BatchedMatmulMatchesCpu) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = randn_cpu({6, 33, 17}, dt, 11), b = randn_cpu({6, 29, 17}, dt, 12);
    Tensor bt = ops::transpose(b, 1, 2);  // read in place as a transposed operand
    EXPECT_TRUE(close_to_cpu(ops::bmm(to_gpu(a), ops::transpose(to_gpu(b), 1, 2)), ops::bmm(a, bt), tol_for(dt)));
    Tensor strided = ops::narrow(a, 2, 1, 15);
    EXPECT_TRUE(
        close_to_cpu(ops::bmm(ops::narrow(to_gpu(a), 2, 1, 15), ops::narrow(ops::transpose(to_gpu(b), 1, 2), 1, 0, 15)),
                     ops::bmm(strided, ops::narrow(bt, 1, 0, 15)), tol_for(dt)));
  }
}

TEST_F(CudaAttention, ScaledDotProductAttentionForwardAndBackwardMatchCpu) {
  uint64_t seed = 100;
  struct Case {
    int64_t b, h, t, s, d, dv;
    bool causal;
    std::optional<double> scale;
  };
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Case& c : {Case{2, 3, 17, 17, 8, 8, true, {}}, Case{2, 2, 5, 40, 16, 12, false, 0.2},
                          Case{1, 4, 128, 128, 32, 32, true, {}}}) {
      SCOPED_TRACE(testing::Message() << dt << " T " << c.t << " S " << c.s << " causal " << c.causal);
      Tensor q = randn_cpu({c.b, c.h, c.t, c.d}, dt, ++seed), k = randn_cpu({c.b, c.h, c.s, c.d}, dt, ++seed);
      Tensor v = randn_cpu({c.b, c.h, c.s, c.dv}, dt, ++seed), go = randn_cpu({c.b, c.h, c.t, c.dv}, dt, ++seed);
      std::vector<Tensor> cpu{q.detach().requires_grad_(), k.detach().requires_grad_(), v.detach().requires_grad_()};
      std::vector<Tensor> gpu{to_gpu(q).requires_grad_(), to_gpu(k).requires_grad_(), to_gpu(v).requires_grad_()};
      Tensor y = F::scaled_dot_product_attention(cpu[0], cpu[1], cpu[2], c.causal, 0, c.scale);
      Tensor yg = F::scaled_dot_product_attention(gpu[0], gpu[1], gpu[2], c.causal, 0, c.scale);
      EXPECT_TRUE(close_to_cpu(yg, y, tol_for(dt)));
      y.backward(go);
      yg.backward(to_gpu(go));
      for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(close_to_cpu(gpu[size_t(i)].grad(), cpu[size_t(i)].grad(), 10 * tol_for(dt))) << i;
    }
  }
}

TEST_F(CudaAttention, LayerNormForwardAndBackwardMatchCpu) {
  uint64_t seed = 200;
  struct Case {
    Shape input, normalized;
  };
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Case& c :
         {Case{{2048, 128}, {128}}, Case{{3, 5, 7}, {5, 7}}, Case{{4, 5000}, {5000}}, Case{{6, 3}, {3}}}) {
      for (int affine = 0; affine < 4; ++affine) {
        SCOPED_TRACE(testing::Message() << dt << " " << shape_str(c.input) << " affine " << affine);
        Tensor x = ops::affine(randn_cpu(c.input, dt, ++seed), 2, 0.5), go = randn_cpu(c.input, dt, ++seed);
        Tensor w = affine & 1 ? randn_cpu(c.normalized, dt, ++seed) : Tensor();
        Tensor b = affine & 2 ? randn_cpu(c.normalized, dt, ++seed) : Tensor();
        auto leaf = [](const Tensor& t, bool gpu) {
          return t.defined() ? (gpu ? to_gpu(t) : t.detach()).requires_grad_() : Tensor();
        };
        Tensor xc = leaf(x, false), wc = leaf(w, false), bc = leaf(b, false);
        Tensor xg = leaf(x, true), wg = leaf(w, true), bg = leaf(b, true);
        Tensor y = F::layer_norm(xc, c.normalized, wc, bc), yg = F::layer_norm(xg, c.normalized, wg, bg);
        EXPECT_TRUE(close_to_cpu(yg, y, tol_for(dt)));
        y.backward(go);
        yg.backward(to_gpu(go));
        EXPECT_TRUE(close_to_cpu(xg.grad(), xc.grad(), 10 * tol_for(dt)));
        if (w.defined()) {
          EXPECT_TRUE(close_to_cpu(wg.grad(), wc.grad(), 10 * tol_for(dt)));
        }
        if (b.defined()) {
          EXPECT_TRUE(close_to_cpu(bg.grad(), bc.grad(), 10 * tol_for(dt)));
        }
      }
    }
  }
}

TEST_F(CudaAttention, OperandsOnDifferentDevicesAreErrors) {
  Tensor q = zeros({1, 2, 3, 4}), k = zeros({1, 2, 3, 4});
  braid::test::expect_error([&] { F::scaled_dot_product_attention(to_gpu(q), k, to_gpu(k)); },
                            {"scaled_dot_product_attention", "key", "cpu", "cuda"});
  braid::test::expect_error([&] { F::layer_norm(to_gpu(q), {4}, ones({4}), Tensor()); }, {"layer_norm"});
}
