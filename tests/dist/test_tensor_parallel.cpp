// Megatron-style tensor parallelism against the unsplit model: for tensor-parallel sizes 1, 2 and 4 (groups carved
// out of the world; sizes the world cannot hold skip), with and without sequence parallelism, the forward output and
// every gradient (parameters gathered over the group, and the input's) equal those of nn layers built from the same
// seed and run on the full input on every rank; the MLP block costs one all-reduce each way; shards gather into the
// unsplit model's state dict bit for bit and load back at another size; bad sizes and ids fail on every rank.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <filesystem>
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
using tp_test::expect_equal;
using tp_test::gathered_grads;
using tp_test::leaf;
using tp_test::slice_of;
using tp_test::TpCase;

const std::vector<TpCase> kCases = {{1, false}, {1, true}, {2, false}, {2, true}, {4, false}, {4, true}};

Tensor ids_tensor(const Shape& shape, int64_t vocab, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> v(size_t(shape_numel(shape)));
  for (auto& id : v) id = int64_t(g.next() % uint64_t(vocab));
  return from_vector(v, shape);
}

class TensorParallelMLP : public testing::TestWithParam<TpCase> {};

// Linear(C, H) -> GELU(tanh) -> Linear(H, C) from seed 11 against ParallelMLP from seed 11; one all-reduce forward
// and one backward (or one all-gather and one reduce-scatter each way with sequence parallelism), none at size 1.
TEST_P(TensorParallelMLP, MatchesUnsplitModelWithOneCollectivePerDirection) {
  const auto [tp, sp] = GetParam();
  TP_GROUP_OR_SKIP(base, tp);
  auto group = std::make_shared<CountingGroup>(base);
  const int64_t B = 2, T = 4, C = 8, H = 16;
  manual_seed(11);
  nn::Linear fc(C, H), proj(H, C);
  manual_seed(11);
  dist::ParallelMLP mlp(C, H, group, {.sequence_parallel = sp});
  Generator g(5);
  Tensor x = randn({B, T, C}, {}, &g), w = randn({B, T, C}, {}, &g);

  Tensor xr = leaf(x);
  Tensor yr = proj(gelu(fc(xr), "tanh"));
  sum(yr * w).backward();

  Tensor xp = leaf(sp ? slice_of(x, *group, 1) : x);
  group->counts.clear();
  Tensor y = mlp(xp);
  std::map<std::string, int> forward = group->counts;
  group->counts.clear();
  sum(y * (sp ? slice_of(w, *group, 1) : w)).backward();
  std::map<std::string, int> backward = group->counts;

  EXPECT_EQ(forward, tp_test::expected_collectives(GetParam()));
  EXPECT_EQ(backward, tp_test::expected_collectives(GetParam()));

  expect_close(y, sp ? slice_of(yr.detach(), *group, 1) : yr.detach(), "output");
  expect_close(xp.grad(), sp ? slice_of(xr.grad(), *group, 1) : xr.grad(), "input gradient");
  if (sp) dist::all_reduce_sequence_parallel_grads(*mlp);
  nn::StateDict grads = gathered_grads(*mlp);
  expect_close(grads.at("c_fc_weight"), fc->weight.grad(), "c_fc.weight gradient");
  expect_close(grads.at("c_fc_bias"), fc->bias.grad(), "c_fc.bias gradient");
  expect_close(grads.at("c_proj_weight"), proj->weight.grad(), "c_proj.weight gradient");
  expect_close(grads.at("c_proj_bias"), proj->bias.grad(), "c_proj.bias gradient");
  EXPECT_EQ(dist::is_sequence_parallel(mlp->c_proj->bias), sp);
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelMLP, testing::ValuesIn(kCases), case_name);

class TensorParallelLinear : public testing::TestWithParam<int> {};

// ColumnParallelLinear with gather_output into RowParallelLinear that splits its own input: the scatter and gather
// regions, against Linear -> Linear.
TEST_P(TensorParallelLinear, GatheredOutputIntoSplitInputMatchesUnsplit) {
  const int tp = GetParam();
  TP_GROUP_OR_SKIP(group, tp);
  manual_seed(3);
  nn::Linear a(6, 8), b(8, 4, {.bias = false});
  manual_seed(3);
  dist::ColumnParallelLinear col(6, 8, group, {.gather_output = true});
  dist::RowParallelLinear row(8, 4, group, {.bias = false, .input_is_parallel = false});
  Generator g(8);
  Tensor x = randn({5, 6}, {}, &g), w = randn({5, 4}, {}, &g);
  Tensor xr = leaf(x), xp = leaf(x);
  sum(b(a(xr)) * w).backward();
  Tensor y = row(col(xp));
  sum(y * w).backward();
  expect_close(y, b(a(x)).detach(), "output");
  expect_close(xp.grad(), xr.grad(), "input gradient");
  nn::StateDict gc = gathered_grads(*col), gr = gathered_grads(*row);
  expect_close(gc.at("weight"), a->weight.grad(), "column weight gradient");
  expect_close(gc.at("bias"), a->bias.grad(), "column bias gradient");
  expect_close(gr.at("weight"), b->weight.grad(), "row weight gradient");
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelLinear, testing::Values(1, 2, 4));

class TensorParallelEmbeddingLoss : public testing::TestWithParam<TpCase> {};

// Embedding -> tanh -> weight-tied head -> cross-entropy, against nn::Embedding and cross_entropy on the full
// logits; the vocabulary-parallel loss never sees them.
TEST_P(TensorParallelEmbeddingLoss, MatchesUnsplitModel) {
  const auto [tp, sp] = GetParam();
  TP_GROUP_OR_SKIP(group, tp);
  const int64_t V = 16, D = 8, B = 2, T = 4;
  manual_seed(21);
  nn::Embedding ref(V, D);
  manual_seed(21);
  dist::VocabParallelEmbedding emb(V, D, group);
  Tensor ids = ids_tensor({B, T}, V, 1), targets = ids_tensor({B * T}, V, 2);

  Tensor logits = matmul(tanh(ref(ids)), t(ref->weight));
  Tensor loss_ref = nn::cross_entropy(reshape(logits, {B * T, V}), targets);
  loss_ref.backward();

  Tensor h = emb(ids);
  if (sp) h = dist::scatter_to_sequence_parallel_region(h, group, 1);
  h = tanh(h);
  Tensor head_in =
      sp ? dist::gather_from_sequence_parallel_region(h, group, 1) : dist::copy_to_tensor_parallel_region(h, group);
  Tensor shard = reshape(matmul(head_in, t(emb->weight)), {B * T, V / tp});
  Tensor loss = dist::vocab_parallel_cross_entropy(shard, targets, group);
  loss.backward();

  expect_close(loss, loss_ref.detach(), "loss");
  expect_close(gathered_grads(*emb).at("weight"), ref->weight.grad(), "embedding weight gradient");
  using nn::functional::Reduction;
  Tensor full_logits = reshape(logits, {B * T, V}).detach();
  expect_close(dist::vocab_parallel_cross_entropy(shard.detach(), targets, group, Reduction::None),
               nn::cross_entropy(full_logits, targets, Reduction::None), "per-row losses");
  expect_close(dist::vocab_parallel_cross_entropy(shard.detach(), targets, group, Reduction::Sum),
               nn::cross_entropy(full_logits, targets, Reduction::Sum), "summed loss");
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelEmbeddingLoss, testing::ValuesIn(kCases), case_name);

// The per-row losses' backward with a non-uniform incoming gradient (Reduction::None), against cross_entropy's.
TEST(TensorParallelCrossEntropy, PerRowGradientMatchesUnsplit) {
  for (int tp : {1, 2, 4}) {
    auto group = tp_test::tp_group(tp);
    if (!group) continue;
    const int64_t N = 6, V = 8;
    Generator g(4);
    Tensor logits = randn({N, V}, {}, &g) * 3.0, w = randn({N}, {}, &g);
    Tensor targets = ids_tensor({N}, V, 9);
    Tensor full = leaf(logits), part = leaf(tp_test::slice_of(logits, *group, 1));
    sum(nn::cross_entropy(full, targets, nn::functional::Reduction::None) * w).backward();
    sum(dist::vocab_parallel_cross_entropy(part, targets, group, nn::functional::Reduction::None) * w).backward();
    expect_close(part.grad(), tp_test::slice_of(full.grad(), *group, 1), "logits gradient, tp " + std::to_string(tp));
  }
}

// A small model with every kind of shard: vocabulary rows, column and row splits, and a stride-3 (fused QKV) weight.
struct TinyModel : nn::Module {
  explicit TinyModel(const dist::ProcessGroupPtr& g)
      : nn::Module("TinyModel"),
        wte(register_module("wte", dist::VocabParallelEmbedding(16, 8, g))),
        mlp(register_module("mlp", dist::ParallelMLP(8, 16, g))),
        qkv(register_module("qkv", dist::ColumnParallelLinear(8, 24, g, {.partition_stride = 3}))) {}
  dist::VocabParallelEmbedding wte;
  dist::ParallelMLP mlp;
  dist::ColumnParallelLinear qkv;
};

// The same layers unsplit, drawn in the same order.
nn::StateDict unsplit_state(uint64_t seed) {
  manual_seed(seed);
  nn::Embedding wte(16, 8);
  nn::Linear fc(8, 16), proj(16, 8), qkv(8, 24);
  return {{"wte.weight", wte->weight},     {"mlp.c_fc.weight", fc->weight},
          {"mlp.c_fc.bias", fc->bias},     {"mlp.c_proj.weight", proj->weight},
          {"mlp.c_proj.bias", proj->bias}, {"qkv.weight", qkv->weight},
          {"qkv.bias", qkv->bias}};
}

class TensorParallelStateDict : public testing::TestWithParam<std::pair<int, int>> {};

// Shards drawn from a seed gather into exactly the unsplit layers' values; saved with nn::save and loaded into a
// model of another tensor-parallel size, they gather back into the same values, bit for bit.
TEST_P(TensorParallelStateDict, GatherSaveLoadAtAnotherSizeRoundTripsExactly) {
  const auto [from, to] = GetParam();
  auto group_from = tp_test::tp_group(from);
  auto group_to = tp_test::tp_group(to);
  if (!group_from || !group_to) GTEST_SKIP() << "needs groups of " << from << " and " << to;
  manual_seed(31);
  TinyModel source(group_from);
  nn::StateDict full = dist::gather_full_state_dict(source);
  nn::StateDict expected = unsplit_state(31);
  ASSERT_EQ(full.size(), expected.size());
  for (const auto& [name, t] : expected) expect_equal(full.at(name), t, "gathered " + name);

  std::string path =
      (std::filesystem::temp_directory_path() / ("braid_tp_state_" + std::to_string(from) + "_" + std::to_string(to) +
                                                 "_rank" + std::to_string(dist::rank()) + ".safetensors"))
          .string();
  nn::save(full, path);
  manual_seed(77);
  TinyModel target(group_to);
  dist::load_full_state_dict(target, nn::load(path));
  std::filesystem::remove(path);
  nn::StateDict back = dist::gather_full_state_dict(target);
  for (const auto& [name, t] : expected) expect_equal(back.at(name), t, "reloaded " + name);
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelStateDict,
                         testing::Values(std::pair{2, 4}, std::pair{4, 2}, std::pair{2, 1}, std::pair{1, 4},
                                         std::pair{4, 1}, std::pair{1, 2}));

class TensorParallelErrors : public testing::TestWithParam<int> {};

// Sizes that do not split by the group's size, and ranks that disagree on a layer's sizes: a braid::Error naming
// them, on every rank (never a hang).
void expect_size_errors(const dist::ProcessGroupPtr& group) {
  const int tp = group->size();
  const int64_t odd = 2 * tp + 1;
  const std::string size = std::to_string(tp), n = std::to_string(odd);
  const std::string divide = " does not divide by the tensor-parallel size " + size;
  expect_contains(error_of([&] { dist::ColumnParallelLinear(4, odd, group); }),
                  "ColumnParallelLinear: out_features " + n + divide);
  expect_contains(error_of([&] { dist::RowParallelLinear(odd, 4, group); }),
                  "RowParallelLinear: in_features " + n + divide);
  expect_contains(error_of([&] { dist::VocabParallelEmbedding(odd, 4, group); }),
                  "VocabParallelEmbedding: num_embeddings (vocabulary) " + n + divide);
  expect_contains(error_of([&] { dist::ParallelMLP(4, odd, group); }), "ParallelMLP: hidden_dim " + n + divide);
  expect_contains(
      error_of([&] { dist::ColumnParallelLinear(4, 6 * tp, group, {.gather_output = true, .partition_stride = 3}); }),
      "gather_output");
  std::string disagree = error_of([&] { dist::ColumnParallelLinear(4, 8 * (1 + group->rank()), group); });
  expect_contains(disagree,
                  "ColumnParallelLinear: the ranks of the tensor-parallel group disagree on the sizes "
                  "(in_features, out_features, partition_stride)");
  for (int r = 0; r < tp; ++r)
    expect_contains(
        disagree, "rank " + std::to_string(group->ranks()[size_t(r)]) + " [4, " + std::to_string(8 * (1 + r)) + ", 1]");
  dist::ColumnParallelLinear col(4, 4 * tp, group);
  nn::StateDict bad = {{"weight", zeros({odd, 4})}, {"bias", zeros({4 * tp})}};
  expect_contains(error_of([&] { dist::load_full_state_dict(*col, bad); }),
                  "load_full_state_dict: \"weight\" of full shape [" + n + ", 4] does not split into " + size);
}

TEST_P(TensorParallelErrors, BadSizesAndIdsAreErrorsOnEveryRank) {
  const int tp = GetParam();
  TP_GROUP_OR_SKIP(group, tp);
  if (tp > 1) expect_size_errors(group);
  const int64_t vocab = 4 * tp;
  const std::string v = std::to_string(vocab);
  dist::VocabParallelEmbedding emb(vocab, 3, group);
  expect_contains(error_of([&] {
                    emb(from_vector(std::vector<int64_t>{0, vocab}));
                  }),
                  "VocabParallelEmbedding: id " + v + " is out of range for a vocabulary of " + v);
  expect_contains(error_of([&] { emb(from_vector(std::vector<int64_t>{-1, 2})); }), "id -1 is out of range");
  Tensor shard = zeros({2, 4});
  expect_contains(error_of([&] {
                    dist::vocab_parallel_cross_entropy(shard, from_vector(std::vector<int64_t>{1, vocab}), group);
                  }),
                  "vocab_parallel_cross_entropy: id " + v + " is out of range for a vocabulary of " + v);
  dist::ColumnParallelLinear col(4, 4 * tp, group);
  expect_contains(error_of([&] {
                    dist::load_full_state_dict(*col, {{"weight", zeros({4 * tp, 4})}});
                  }),
                  "load_full_state_dict: the model's \"bias\" is missing from the state dict");
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelErrors, testing::Values(1, 2, 4));

}  // namespace
}  // namespace braid
