#include "braid/optim/param_groups.h"

#include <cmath>
#include <map>
#include <string>

namespace braid::optim {

namespace {

struct Found {
  Tensor param;
  bool in_embedding = false;
};

// Every parameter once, in model.parameters()'s order (own parameters before the children's, depth first), noting
// whether any module holding it is an embedding.
void collect(const nn::Module& m, std::vector<Found>& found, std::map<const TensorImpl*, size_t>& index) {
  const bool embedding = m.type_name().find("Embedding") != std::string::npos;
  for (const auto& [_, p] : m.named_parameters(/*recurse=*/false)) {
    if (!p.defined()) continue;
    auto [it, fresh] = index.emplace(p.impl(), found.size());
    if (fresh) found.push_back({p, false});
    found[it->second].in_embedding = found[it->second].in_embedding || embedding;
  }
  for (const auto& [_, child] : m.named_children()) collect(*child, found, index);
}

}  // namespace

std::vector<ParamGroup> weight_decay_groups(const nn::Module& model, double weight_decay) {
  BRAID_CHECK(std::isfinite(weight_decay) && weight_decay >= 0,
              "weight_decay_groups: weight_decay must be finite and >= 0, got ", weight_decay);
  std::vector<Found> found;
  std::map<const TensorImpl*, size_t> index;
  collect(model, found, index);
  ParamGroup decay{{}, {{"weight_decay", weight_decay}}}, no_decay{{}, {{"weight_decay", 0.0}}};
  for (const Found& f : found) (f.param.dim() >= 2 && !f.in_embedding ? decay : no_decay).params.push_back(f.param);
  return {std::move(decay), std::move(no_decay)};
}

}  // namespace braid::optim
