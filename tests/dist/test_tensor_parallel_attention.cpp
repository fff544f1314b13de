// ParallelCausalSelfAttention (heads split across the tensor-parallel group) against nn::CausalSelfAttention built
// from the same seed: output, input gradient and every parameter gradient (gathered; the fused QKV weight through
// its partition stride of 3) for sizes 1, 2 and 4, with and without sequence parallelism; one all-reduce each way
// (one all-gather and one reduce-scatter with sequence parallelism); heads that do not split are an error.
#include <braid/braid.h>
#include <braid/nn/attention.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test_tensor_parallel_util.h"

namespace braid {
namespace {

using dist_test::error_of;
using dist_test::expect_contains;
using tp_test::case_name;
using tp_test::CountingGroup;
using tp_test::expect_close;
using tp_test::gathered_grads;
using tp_test::leaf;
using tp_test::slice_of;
using tp_test::TpCase;

class TensorParallelAttention : public testing::TestWithParam<TpCase> {};

TEST_P(TensorParallelAttention, MatchesCausalSelfAttention) {
  const auto [tp, sp] = GetParam();
  TP_GROUP_OR_SKIP(base, tp);
  auto group = std::make_shared<CountingGroup>(base);
  const int64_t B = 2, T = 4, C = 16, H = 4;
  manual_seed(41);
  nn::CausalSelfAttention ref(C, H);
  manual_seed(41);
  dist::ParallelCausalSelfAttention attn(C, H, group, {.sequence_parallel = sp});
  Generator g(6);
  Tensor x = randn({B, T, C}, {}, &g), w = randn({B, T, C}, {}, &g);
  Tensor xr = leaf(x);
  Tensor yr = ref(xr);
  sum(yr * w).backward();

  Tensor xp = leaf(sp ? slice_of(x, *group, 1) : x);
  group->counts.clear();
  Tensor y = attn(xp);
  std::map<std::string, int> forward = group->counts;
  group->counts.clear();
  sum(y * (sp ? slice_of(w, *group, 1) : w)).backward();
  EXPECT_EQ(forward, tp_test::expected_collectives(GetParam()));
  EXPECT_EQ(group->counts, tp_test::expected_collectives(GetParam()));

  expect_close(y, sp ? slice_of(yr.detach(), *group, 1) : yr.detach(), "output");
  expect_close(xp.grad(), sp ? slice_of(xr.grad(), *group, 1) : xr.grad(), "input gradient");
  if (sp) dist::all_reduce_sequence_parallel_grads(*attn);
  nn::StateDict grads = gathered_grads(*attn);
  expect_close(grads.at("c_attn_weight"), ref->c_attn->weight.grad(), "c_attn.weight gradient");
  expect_close(grads.at("c_attn_bias"), ref->c_attn->bias.grad(), "c_attn.bias gradient");
  expect_close(grads.at("c_proj_weight"), ref->c_proj->weight.grad(), "c_proj.weight gradient");
  expect_close(grads.at("c_proj_bias"), ref->c_proj->bias.grad(), "c_proj.bias gradient");
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelAttention,
                         testing::Values(TpCase{1, false}, TpCase{2, false}, TpCase{2, true}, TpCase{4, false},
                                         TpCase{4, true}),
                         case_name);

// Heads that do not split over the group, and an embedding that does not split into the heads.
TEST(TensorParallelAttentionErrors, HeadsThatDoNotSplitAreErrors) {
  for (int tp : {2, 4}) {
    auto group = tp_test::tp_group(tp);
    if (!group) continue;
    const int64_t heads = 2 * tp + 1;
    expect_contains(error_of([&] { dist::ParallelCausalSelfAttention(heads * 4, heads, group); }),
                    "ParallelCausalSelfAttention: num_heads " + std::to_string(heads) +
                        " does not divide by the tensor-parallel size " + std::to_string(tp));
    expect_contains(error_of([&] { dist::ParallelCausalSelfAttention(10, 4, group); }),
                    "ParallelCausalSelfAttention: embed_dim 10 does not divide by num_heads 4");
  }
}

}  // namespace
}  // namespace braid
