// split_by_parameter_count: a least-squares linear partition by dynamic programming over the cut points. Squares
// rather than the largest stage alone: with one huge layer the largest stage is fixed by that layer, and min-max
// would accept any lopsided split of the rest.
#include <limits>
#include <vector>

#include "braid/core/error.h"
#include "braid/dist/pipeline.h"

namespace braid::dist {
namespace {

std::vector<double> parameter_counts(const nn::Sequential& model) {
  std::vector<double> counts;
  for (const auto& module : *model) {
    double n = 0;
    for (const Tensor& p : module->parameters()) n += double(p.numel());
    counts.push_back(n);
  }
  return counts;
}

// cuts[k] is where stage k begins; cuts.back() is the module count.
std::vector<size_t> least_squares_cuts(const std::vector<double>& counts, size_t num_stages) {
  const size_t n = counts.size();
  std::vector<double> prefix(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + counts[i];
  const double inf = std::numeric_limits<double>::infinity();
  // cost[k][i]: the least sum of squares of k stages over the first i modules; from[k][i]: where the k-th begins.
  std::vector<std::vector<double>> cost(num_stages + 1, std::vector<double>(n + 1, inf));
  std::vector<std::vector<size_t>> from(num_stages + 1, std::vector<size_t>(n + 1, 0));
  cost[0][0] = 0.0;
  for (size_t k = 1; k <= num_stages; ++k)
    for (size_t i = k; i <= n; ++i)
      for (size_t j = k - 1; j < i; ++j) {
        const double size = prefix[i] - prefix[j], c = cost[k - 1][j] + size * size;
        // On a tie the later cut wins, so modules without parameters stay with the stage before them.
        if (c <= cost[k][i]) {
          cost[k][i] = c;
          from[k][i] = j;
        }
      }
  std::vector<size_t> cuts(num_stages + 1, n);
  for (size_t k = num_stages; k >= 1; --k) cuts[k - 1] = from[k][cuts[k]];
  return cuts;
}

}  // namespace

std::vector<nn::Sequential> split_by_parameter_count(const nn::Sequential& model, int num_stages) {
  BRAID_CHECK(num_stages >= 1, "split_by_parameter_count: the number of stages must be at least 1, got ", num_stages);
  const size_t modules = model->size();
  BRAID_CHECK(size_t(num_stages) <= modules, "split_by_parameter_count: cannot split a model of ", modules,
              " modules into ", num_stages, " stages (every stage needs at least one module)");
  std::vector<size_t> cuts = least_squares_cuts(parameter_counts(model), size_t(num_stages));
  std::vector<nn::Sequential> stages;
  for (size_t k = 0; k < size_t(num_stages); ++k)
    stages.push_back(model->slice(int64_t(cuts[k]), int64_t(cuts[k + 1])));
  return stages;
}

}  // namespace braid::dist
