#include "braid/dist/tensor_parallel_generator.h"

#include <map>
#include <memory>
#include <mutex>

#include "braid/core/error.h"

namespace braid::dist {

namespace {

// Megatron-LM offsets the model-parallel seed by a constant so that it never equals the data seed.
constexpr uint64_t kOffset = 2718;

struct Registry {
  std::mutex mutex;
  std::map<const ProcessGroup*, std::unique_ptr<Generator>> generators;
};

Registry& registry() {
  static Registry* r = new Registry;  // leaked: layers may draw while static objects are destroyed
  return *r;
}

uint64_t rank_seed(const ProcessGroup& group, uint64_t seed) { return seed + kOffset + uint64_t(group.rank()); }

void check_member(const ProcessGroupPtr& group, const char* what) {
  BRAID_CHECK(group && group->is_member(), what, ": needs a group this rank belongs to");
}

}  // namespace

Generator& tensor_parallel_generator(const ProcessGroupPtr& group) {
  check_member(group, "tensor_parallel_generator");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto& g = r.generators[group.get()];
  if (!g) g = std::make_unique<Generator>(rank_seed(*group, 0));
  return *g;
}

void manual_seed_tensor_parallel(const ProcessGroupPtr& group, uint64_t seed) {
  check_member(group, "manual_seed_tensor_parallel");
  Generator& g = tensor_parallel_generator(group);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.seed(rank_seed(*group, seed));
}

}  // namespace braid::dist
