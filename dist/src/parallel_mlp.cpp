#include "braid/dist/parallel_transformer.h"
#include "braid/dist/tensor_parallel_generator.h"
#include "parallel_transformer_options.h"
#include "tensor_parallel_layer.h"

namespace braid::dist {

ParallelMLPImpl::ParallelMLPImpl(int64_t c, int64_t hidden, ProcessGroupPtr g, const ParallelTransformerOptions& o)
    : nn::Module("ParallelMLP"),
      embed_dim(c),
      hidden_dim(hidden),
      group(std::move(g)),
      c_fc(nullptr),
      c_proj(nullptr),
      dropout(o.dropout) {
  detail::check_layer_sizes("ParallelMLP", group, {{"embed_dim", c, false}, {"hidden_dim", hidden, true}});
  BRAID_CHECK(o.dropout >= 0 && o.dropout <= 1, "ParallelMLP: dropout must be in [0, 1], got ", o.dropout);
  c_fc = register_module("c_fc", ColumnParallelLinear(c, hidden, group, detail::input_projection_options(o, 1)));
  c_proj = register_module("c_proj", RowParallelLinear(hidden, c, group, detail::output_projection_options(o)));
}

Tensor ParallelMLPImpl::forward(const Tensor& x) {
  Tensor y = c_proj(gelu(c_fc(x), "tanh"));
  // Under sequence parallelism each rank holds its own slice of the sequence: its own mask (see
  // tensor_parallel_generator.h); otherwise the output is whole on every rank and so is the mask.
  Generator* gen = c_proj->options.sequence_parallel ? &tensor_parallel_generator(group) : nullptr;
  return nn::functional::dropout(y, dropout, is_training(), gen);
}

}  // namespace braid::dist
