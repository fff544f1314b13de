#include "braid/dist/vocab_parallel_embedding.h"

#include "braid/core/ops.h"
#include "braid/dist/shard_init.h"
#include "tensor_parallel_layer.h"
#include "vocab_range.h"

namespace braid::dist {

VocabParallelEmbeddingImpl::VocabParallelEmbeddingImpl(int64_t num, int64_t dim, ProcessGroupPtr g,
                                                       const VocabParallelEmbeddingOptions& o)
    : nn::Module("VocabParallelEmbedding"), num_embeddings(num), embedding_dim(dim), group(std::move(g)) {
  const char* name = "VocabParallelEmbedding";
  detail::check_layer_sizes(name, group, {{"num_embeddings (vocabulary)", num, true}, {"embedding_dim", dim, false}});
  BRAID_CHECK(o.init_std >= 0, name, ": init_std must be >= 0, got ", o.init_std);
  int64_t part = num / group->size();
  vocab_start = group->rank() * part;
  vocab_end = vocab_start + part;
  weight = register_parameter("weight", normal_shard({num, dim}, detail::shard_spec(group, 0), 0, o.init_std,
                                                     TensorOptions(o.dtype, o.device)));
  detail::mark_shard(weight, group, 0);
}

Tensor VocabParallelEmbeddingImpl::forward(const Tensor& indices) {
  detail::check_ids_in_vocabulary("VocabParallelEmbedding", indices, num_embeddings);
  if (group->size() == 1) return nn::functional::embedding(indices, weight);
  detail::VocabSlice s = detail::vocab_slice(indices, vocab_start, vocab_end, weight.dtype());
  Tensor rows = nn::functional::embedding(s.local_ids, weight) * unsqueeze(s.held, s.held.dim());
  return reduce_from_tensor_parallel_region(rows, group);
}

}  // namespace braid::dist
