// Dropout in tensor-parallel regions: each rank of a group draws the parts that differ between ranks (its own
// attention heads) from its own reproducible stream, so two ranks' heads are not dropped in the same pattern.
#include <braid/braid.h>
#include <braid/nn/attention.h>
#include <gtest/gtest.h>

#include <vector>

#include "test_tensor_parallel_util.h"

namespace braid {
namespace {

// The first draws of this rank's tensor-parallel generator, gathered from every rank of the group: [size, n].
Tensor gathered_draws(const dist::ProcessGroupPtr& group, int64_t n) {
  Tensor mine = rand({n}, TensorOptions(DType::Float64), &dist::tensor_parallel_generator(group));
  Tensor all = zeros({int64_t(group->size()), n}, TensorOptions(DType::Float64));
  dist::all_gather(all, mine, group);
  return all;
}

TEST(TensorParallelGenerator, EachRankDrawsItsOwnStreamAndASeedReproducesIt) {
  TP_GROUP_OR_SKIP(group, 2);
  dist::manual_seed_tensor_parallel(group, 5);
  std::vector<double> first = gathered_draws(group, 4).to_vector<double>();
  EXPECT_NE(std::vector<double>(first.begin(), first.begin() + 4), std::vector<double>(first.begin() + 4, first.end()));
  dist::manual_seed_tensor_parallel(group, 5);
  EXPECT_EQ(gathered_draws(group, 4).to_vector<double>(), first);
  dist::manual_seed_tensor_parallel(group, 6);
  EXPECT_NE(gathered_draws(group, 4).to_vector<double>(), first);
}

// Two heads, one per rank, with the same weights, and an output projection that subtracts rank 1's head from rank
// 0's: the first half of the output is zero exactly when both ranks dropped the same attention probabilities.
TEST(TensorParallelDropout, RanksDropTheirAttentionHeadsIndependently) {
  TP_GROUP_OR_SKIP(group, 2);
  const int64_t B = 2, T = 6, C = 8, H = 2, D = C / H;
  manual_seed(3);
  nn::CausalSelfAttention ref(C, H);
  nn::StateDict full = ref->state_dict();
  NoGradGuard no_grad;
  for (int64_t part = 0; part < 3; ++part) {  // q, k, v: head 1's rows copy head 0's
    ops::copy_(narrow(full.at("c_attn.weight"), 0, part * C + D, D), narrow(full.at("c_attn.weight"), 0, part * C, D));
    ops::copy_(narrow(full.at("c_attn.bias"), 0, part * C + D, D), narrow(full.at("c_attn.bias"), 0, part * C, D));
  }
  Tensor proj = zeros({C, C});
  for (int64_t i = 0; i < D; ++i) {
    ops::fill_(narrow(narrow(proj, 0, i, 1), 1, i, 1), 1);
    ops::fill_(narrow(narrow(proj, 0, i, 1), 1, D + i, 1), -1);
  }
  full.at("c_proj.weight") = proj;
  full.at("c_proj.bias") = zeros({C});

  for (double p : {0.0, 0.5}) {
    dist::ParallelCausalSelfAttention attn(C, H, group, {.dropout = p});
    dist::load_full_state_dict(*attn, full);
    Generator g(8);
    Tensor difference = narrow(attn(randn({B, T, C}, {}, &g)), 2, 0, D);
    const double largest = amax(abs(difference)).item<double>();
    if (p == 0) EXPECT_EQ(largest, 0) << "identical heads without dropout must cancel";
    else EXPECT_GT(largest, 1e-3) << "both ranks dropped their heads in the same pattern";
  }
}

}  // namespace
}  // namespace braid
