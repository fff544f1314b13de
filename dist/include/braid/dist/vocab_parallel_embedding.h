// VocabParallelEmbedding: an embedding table [V, D] split by rows (the vocabulary) across the tensor-parallel
// group, Megatron-LM's layout: rank r holds ids [r V/t, (r+1) V/t). Each rank looks up the ids it holds (zeros for
// the others) and the rows are summed over the group (reduce_from_tensor_parallel_region), so every rank gets the
// full [.., D] output. The shard is drawn as nn::Embedding(V, D) draws the whole table (N(0, init_std), in order),
// so with init_std 1 the layer is that Embedding built from the same generator state. Its weight also serves as a
// weight-tied output head: logits_shard = copy_to_tensor_parallel_region(x) @ weight^T is [.., V/t], the input
// of vocab_parallel_cross_entropy.
#pragma once

#include <cstdint>
#include <memory>

#include "braid/dist/parallel_regions.h"
#include "braid/nn/module.h"

namespace braid::dist {

struct VocabParallelEmbeddingOptions {
  double init_std = 1;  // N(0, init_std), as nn::Embedding (std 1)
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

class VocabParallelEmbeddingImpl : public nn::Module {
 public:
  VocabParallelEmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, ProcessGroupPtr group,
                             const VocabParallelEmbeddingOptions& options = {});
  // indices: int64 of any shape; an id outside [0, num_embeddings) is a braid::Error naming it.
  Tensor forward(const Tensor& indices);

  int64_t num_embeddings, embedding_dim;  // of the full table
  int64_t vocab_start, vocab_end;         // the ids this rank holds: [vocab_start, vocab_end)
  ProcessGroupPtr group;
  Tensor weight;  // [num_embeddings / t, embedding_dim]
};

class VocabParallelEmbedding : public nn::ModuleHolder<VocabParallelEmbeddingImpl> {
 public:
  using nn::ModuleHolder<VocabParallelEmbeddingImpl>::ModuleHolder;
  VocabParallelEmbedding(int64_t num_embeddings, int64_t embedding_dim, ProcessGroupPtr group,
                         const VocabParallelEmbeddingOptions& options = {})
      : ModuleHolder(
            std::make_shared<VocabParallelEmbeddingImpl>(num_embeddings, embedding_dim, std::move(group), options)) {}
};

}  // namespace braid::dist
