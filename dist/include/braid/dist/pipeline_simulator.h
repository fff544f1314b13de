// Times a pipeline schedule from the cost of each action, without a model: each rank runs its list in order; a
// compute action takes its cost; a send takes no time on its rank and its tensor arrives `communication` later; a
// receive is posted at once, and the compute that reads it waits until the tensor has arrived. The step time is when
// the last rank finishes. The bubble fraction is the share of the ranks' time spent idle, 1 - (compute time summed
// over ranks) / (num_ranks * step time): for GPipe and 1F1B with no communication cost it is (p - 1) / (M + p - 1).
// idle_time is the idle time per rank (step time - compute time / num_ranks), the bubble measured in time:
// interleaving v stages per rank, each costing 1/v, divides it by v.
//
// The machine: by default every rank has a processor of its own. With SimulationOptions::cores = c below the number
// of ranks, the ranks share c processors as an operating system's time slicing does (processor sharing): while n
// ranks are computing, each progresses at rate min(1, c / n), so a compute can take longer than its cost. The
// compute time and the bubble fraction still count the costs, so the stretch shows up as bubble.
#pragma once

#include <vector>

#include "braid/dist/pipeline_schedule.h"

namespace braid::dist {

// The cost of one stage on one micro-batch; a full backward (B) costs backward_input + backward_weight.
struct StageCosts {
  double forward = 1.0;
  double backward_input = 1.0;
  double backward_weight = 1.0;
  double communication = 0.0;  // from a send to its receive being able to complete
};

struct SimulationResult {
  double step_time = 0.0;
  double bubble_fraction = 0.0;
  double idle_time = 0.0;
  std::vector<double> compute_time;                // per rank
  std::vector<std::vector<double>> start, finish;  // per rank, per action
};

double cost_of(const Action& action, const StageCosts& costs);

struct SimulationOptions {
  int cores = 0;  // processors the ranks share; 0: one per rank
};

// Validates `schedule` first (validate() without a bound), so a bad schedule gets validate()'s message.
SimulationResult simulate(const Schedule& schedule, const StageCosts& costs = {},
                          const SimulationOptions& options = {});

}  // namespace braid::dist
