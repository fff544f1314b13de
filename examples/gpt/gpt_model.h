// A decoder-only Transformer over bytes, as GPT-2 (and nanoGPT) build it: token and learned positional
// embeddings, pre-LayerNorm blocks of causal self-attention and a GELU(tanh) MLP with residual connections, a final
// LayerNorm, and an output head tied to the token embedding. GPT-2's initialisation: every weight N(0, 0.02),
// except the projections back into the residual stream (attn.c_proj, mlp.c_proj), N(0, 0.02 / sqrt(2 n_layer)),
// which keeps the residual stream's variance from growing with depth; biases zero, LayerNorms one and zero.
//
// Tensor-parallel (Megatron-LM's layout) over `group`: the token embedding and head are split by vocabulary, the
// attention by heads and the MLP by hidden units, so forward() returns this rank's vocabulary slice of the logits
// and loss() the full model's loss on every rank. A group of size 1 is the plain, single-process model; built from
// the same seed, every tensor-parallel size is the same function. With sequence_parallel the LayerNorm and dropout
// regions between the blocks hold [B, T / t, C] slices along the sequence (T must then divide by the group size).
#pragma once

#include <braid/braid.h>

#include <cstdint>
#include <memory>

namespace gpt {

struct GPTConfig {
  int64_t vocab_size = 256;
  int64_t block_size = 64;  // the longest sequence (rows of the positional table)
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  double dropout = 0;
  bool sequence_parallel = false;
};

class BlockImpl : public braid::nn::Module {
 public:
  BlockImpl(const GPTConfig& config, const braid::dist::ProcessGroupPtr& group);
  braid::Tensor forward(const braid::Tensor& x);
  braid::nn::LayerNorm ln_1;
  braid::dist::ParallelCausalSelfAttention attn;
  braid::nn::LayerNorm ln_2;
  braid::dist::ParallelMLP mlp;
};
BRAID_MODULE(Block);

class GPTImpl : public braid::nn::Module {
 public:
  // Draws the weights from the default generator (braid::manual_seed first for a reproducible model).
  GPTImpl(const GPTConfig& config, braid::dist::ProcessGroupPtr group);
  // idx: int64 [B, T] byte ids with T <= block_size; returns this rank's logits [B, T, vocab_size / t].
  braid::Tensor forward(const braid::Tensor& idx);
  // The mean cross-entropy (nats per byte) of predicting targets [B, T] from idx [B, T]; the same on every rank.
  braid::Tensor loss(const braid::Tensor& idx, const braid::Tensor& targets);
  // The full logits [B, vocab_size] of the last position of idx, on every rank (for sampling; no graph).
  braid::Tensor last_logits(const braid::Tensor& idx);
  // The parameter count of the whole (unsplit) model; the tied head is counted once.
  int64_t num_parameters() const;
  // Called after backward: sums the gradients of parameters that sequence parallelism leaves partial on each rank
  // (the LayerNorms'); does nothing without it.
  void finish_gradients();

  GPTConfig config;
  braid::dist::ProcessGroupPtr group;
  braid::dist::VocabParallelEmbedding wte;
  braid::nn::Embedding wpe;
  braid::nn::Dropout drop;
  braid::nn::ModuleList h;
  braid::nn::LayerNorm ln_f;

 private:
  void check_input(const braid::Tensor& idx) const;
  braid::Tensor hidden_states(const braid::Tensor& idx);
};
BRAID_MODULE(GPT);

// Autoregressive generation with a sliding window of the last block_size bytes: `length` bytes after `prompt`,
// greedy (temperature 0) or sampled from softmax(logits / temperature) with `generator`. Every rank returns the
// same bytes when every rank passes the same generator state. The model is in eval mode while it runs.
std::string generate(GPTImpl& model, const std::string& prompt, int64_t length, double temperature,
                     braid::Generator& generator);

}  // namespace gpt
