// Checks a pipeline schedule without a model. Execution model (the executor's): each rank runs its list in order;
// sends and receives are posted without blocking; a compute that reads a received tensor waits until the matching
// send (same stage pair and micro-batch) has been issued. validate()
// throws braid::Error naming the rank, the action's index in that rank's list and the action when
// - an action names a stage not on its rank, a micro-batch out of range, or a send/receive with no neighbour there;
// - an action appears twice, or a stage/micro-batch lacks its F, or lacks both B and the pair I, W;
// - on a rank, a forward comes before the receive of its input (or the forward of the stage before, on the same
//   rank), a backward (I or B) before its forward or before the receive of its output's gradient, a W before its I,
//   a send before the compute that produces what it sends;
// - a send has no matching receive or a receive no matching send;
// - running the lists deadlocks (the message lists every stuck rank and the action it waits at);
// - a rank holds more than max_in_flight micro-batches' activations at once (an activation is held from its F to its
//   I or B; the message gives the rank's peak).
// With P2POrdering::InOrder (a transport without tags, as NCCL: a pair's messages match in issue order, and one
// rank's operations run in order on one stream) it also throws when
// - between an ordered pair of ranks the k-th send and the k-th receive are not the same message;
// - the lists deadlock when each maximal run of consecutive sends and receives on a rank is one batch
//   (batch_isend_irecv) that starts once the rank's earlier batches completed and completes once every partner
//   operation's batch has started, and a compute waits for the batch that receives its input or gradient.
#pragma once

#include <optional>
#include <vector>

#include "braid/dist/pipeline_schedule.h"

namespace braid::dist {

// How the transport tells a pair's messages apart: by tag (MPI), or only by their order (NCCL).
enum class P2POrdering { Tagged, InOrder };

struct ValidationReport {
  // Per rank: the most activations (F done, its I or B not yet) held at once, counted over all its stages.
  std::vector<int> peak_in_flight;
};

// Throws braid::Error on the first problem found; no bound on the activations when max_in_flight is empty.
ValidationReport validate(const Schedule& schedule, std::optional<int> max_in_flight = std::nullopt,
                          P2POrdering ordering = P2POrdering::Tagged);

}  // namespace braid::dist
