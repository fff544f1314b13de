#include "gpt_model.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

using namespace braid;

namespace gpt {

namespace {

dist::ParallelTransformerOptions block_options(const GPTConfig& c) {
  return {.dropout = c.dropout,
          .bias = true,
          .sequence_parallel = c.sequence_parallel,
          .init_std = 0.02,
          .proj_init_std = 0.02 / std::sqrt(2.0 * double(c.n_layer))};
}

void check_config(const GPTConfig& c, int group_size) {
  BRAID_CHECK(c.vocab_size >= 1 && c.block_size >= 1 && c.n_layer >= 1 && c.n_head >= 1 && c.n_embd >= 1,
              "GPT: vocab_size, block_size, n_layer, n_head and n_embd must be positive, got ", c.vocab_size, ", ",
              c.block_size, ", ", c.n_layer, ", ", c.n_head, ", ", c.n_embd);
  BRAID_CHECK(c.n_embd % c.n_head == 0, "GPT: n_embd ", c.n_embd, " does not divide into n_head ", c.n_head, " heads");
  BRAID_CHECK(c.dropout >= 0 && c.dropout < 1, "GPT: dropout must be in [0, 1), got ", c.dropout);
  BRAID_CHECK(!c.sequence_parallel || c.block_size % group_size == 0, "GPT: with sequence parallelism block_size ",
              c.block_size, " must divide by the tensor-parallel size ", group_size);
}

}  // namespace

BlockImpl::BlockImpl(const GPTConfig& c, const dist::ProcessGroupPtr& group)
    : Module("Block"),
      ln_1(register_module("ln_1", nn::LayerNorm(c.n_embd))),
      attn(register_module("attn", dist::ParallelCausalSelfAttention(c.n_embd, c.n_head, group, block_options(c)))),
      ln_2(register_module("ln_2", nn::LayerNorm(c.n_embd))),
      mlp(register_module("mlp", dist::ParallelMLP(c.n_embd, 4 * c.n_embd, group, block_options(c)))) {
  // With sequence parallelism each rank normalises its own slice of the sequence, so their gradients are partial.
  if (c.sequence_parallel) {
    dist::mark_sequence_parallel(*ln_1, group);
    dist::mark_sequence_parallel(*ln_2, group);
  }
}

Tensor BlockImpl::forward(const Tensor& x) {
  Tensor y = x + attn(ln_1(x));
  return y + mlp(ln_2(y));
}

GPTImpl::GPTImpl(const GPTConfig& c, dist::ProcessGroupPtr g)
    : Module("GPT"),
      config((check_config(c, g->size()), c)),
      group(std::move(g)),
      wte(register_module("wte", dist::VocabParallelEmbedding(c.vocab_size, c.n_embd, group,
                                                              dist::VocabParallelEmbeddingOptions{.init_std = 0.02}))),
      wpe(register_module("wpe", nn::Embedding(c.block_size, c.n_embd))),
      drop(register_module("drop", nn::Dropout(c.dropout))),
      h(register_module("h", nn::ModuleList())),
      ln_f(register_module("ln_f", nn::LayerNorm(c.n_embd))) {
  nn::init::normal_(wpe->weight, 0, 0.02);
  for (int64_t i = 0; i < c.n_layer; ++i) h->push_back(Block(c, group));
  if (c.sequence_parallel) dist::mark_sequence_parallel(*ln_f, group);
}

void GPTImpl::check_input(const Tensor& idx) const {
  BRAID_CHECK(idx.dtype() == DType::Int64 && idx.dim() == 2, "GPT: expected int64 token ids [batch, sequence], got ",
              idx.dtype(), " ", shape_str(idx.shape()));
  const int64_t t = idx.size(1);
  BRAID_CHECK(t >= 1 && t <= config.block_size, "GPT: a sequence of ", t,
              " tokens does not fit the positional table of block_size ", config.block_size);
  BRAID_CHECK(!config.sequence_parallel || t % group->size() == 0, "GPT: with sequence parallelism the sequence of ", t,
              " tokens must divide by the tensor-parallel size ", group->size());
  const std::vector<int64_t> ids = idx.to_vector<int64_t>();
  auto [lo, hi] = std::minmax_element(ids.begin(), ids.end());
  BRAID_CHECK(*lo >= 0 && *hi < config.vocab_size, "GPT: token id ", *lo < 0 ? *lo : *hi,
              " is outside the vocabulary [0, ", config.vocab_size, ")");
}

// The output of ln_f, [B, T, C] whole on every rank, ready for the vocabulary-parallel head.
Tensor GPTImpl::hidden_states(const Tensor& idx) {
  check_input(idx);
  const int64_t t = idx.size(1);
  Tensor pos = arange(double(t), TensorOptions(DType::Int64, wpe->weight.device()));
  Tensor x = wte(idx) + wpe(pos);
  if (config.sequence_parallel) {
    // Each rank now holds its own slice of the sequence, so it draws its own dropout mask.
    x = dist::scatter_to_sequence_parallel_region(x, group, 1);
    x = nn::functional::dropout(x, drop->p, is_training(), &dist::tensor_parallel_generator(group));
  } else {
    x = drop(x);
  }
  for (const auto& block : *h) x = std::static_pointer_cast<BlockImpl>(block)->forward(x);
  x = ln_f(x);
  // Each rank's head sees every position; backward then sums the ranks' partial input gradients.
  return config.sequence_parallel ? dist::gather_from_sequence_parallel_region(x, group, 1)
                                  : dist::copy_to_tensor_parallel_region(x, group);
}

Tensor GPTImpl::forward(const Tensor& idx) { return linear(hidden_states(idx), wte->weight); }

Tensor GPTImpl::loss(const Tensor& idx, const Tensor& targets) {
  BRAID_CHECK(targets.shape() == idx.shape(), "GPT::loss: targets ", shape_str(targets.shape()),
              " do not match the inputs ", shape_str(idx.shape()));
  Tensor logits = forward(idx);
  return dist::vocab_parallel_cross_entropy(reshape(logits, {-1, logits.size(2)}), reshape(targets, {-1}), group);
}

Tensor GPTImpl::last_logits(const Tensor& idx) {
  NoGradGuard no_grad;
  Tensor input = idx;
  const int64_t t = idx.size(1), ranks = group->size();
  if (config.sequence_parallel && t % ranks != 0) {
    // Padding after the last token changes nothing before it (the attention is causal).
    const int64_t padded = (t + ranks - 1) / ranks * ranks;
    input = cat({idx, zeros({idx.size(0), padded - t}, TensorOptions(DType::Int64, idx.device()))}, 1);
  }
  Tensor last = select(forward(input), 1, t - 1);
  return dist::gather_from_tensor_parallel_region(last, group);
}

int64_t GPTImpl::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel() * nn::parallel_attributes(p).num_shards;
  return n;
}

void GPTImpl::finish_gradients() {
  if (config.sequence_parallel) dist::all_reduce_sequence_parallel_grads(*this);
}

std::string generate(GPTImpl& model, const std::string& prompt, int64_t length, double temperature,
                     Generator& generator) {
  BRAID_CHECK(length >= 0, "generate: length must be >= 0, got ", length);
  BRAID_CHECK(temperature >= 0, "generate: temperature must be >= 0, got ", temperature);
  const bool was_training = model.is_training();
  model.eval();
  std::vector<int64_t> tokens;
  for (unsigned char c : prompt.empty() ? std::string("\n") : prompt) tokens.push_back(c);
  const Device device = model.wpe->weight.device();
  std::string out;
  for (int64_t i = 0; i < length; ++i) {
    const auto n = int64_t(std::min<size_t>(tokens.size(), size_t(model.config.block_size)));
    std::vector<int64_t> window(tokens.end() - n, tokens.end());
    std::vector<double> logits = model.last_logits(to(from_vector(window, {1, n}), device)).to_vector<double>();
    int64_t next = std::max_element(logits.begin(), logits.end()) - logits.begin();
    if (temperature > 0) {
      const double top = logits[size_t(next)];
      double total = 0;
      for (double& l : logits) total += (l = std::exp((l - top) / temperature));
      double u = generator.uniform() * total;
      next = 0;
      while (next + 1 < int64_t(logits.size()) && (u -= logits[size_t(next)]) >= 0) ++next;
    }
    tokens.push_back(next);
    out.push_back(char(next));
  }
  model.train(was_training);
  return out;
}

}  // namespace gpt
