// The provided pipeline schedules, as functions that build the per-rank action lists of pipeline_schedule.h for p
// ranks and M micro-batches. Each list carries its sends and receives: a receive right before the compute that
// needs it, a send right after the compute that produces it, so that running every list in order with
// non-blocking sends cannot deadlock (validate() proves it for any given sizes).
#pragma once

#include "braid/dist/pipeline_schedule.h"

namespace braid::dist {

// All forwards, then all full backwards (Huang et al., GPipe). Holds all M micro-batches' activations at once.
Schedule gpipe(int num_ranks, int num_microbatches);

// Warm-up forwards, then one forward / one full backward alternately, then the remaining backwards (PipeDream-Flush,
// as Megatron-LM). At most min(p, M) micro-batches' activations held, on the first rank.
Schedule one_f_one_b(int num_ranks, int num_microbatches);

// Megatron-LM's interleaved 1F1B (Narayanan et al., arXiv 2104.04473): v virtual stages per rank, stage s on rank
// s % p, micro-batches taken p at a time through each rank's stages; the bubble is 1/v of 1F1B's in time. For v > 1
// M must be a multiple of p; v = 1 is one_f_one_b().
Schedule interleaved_one_f_one_b(int num_ranks, int stages_per_rank, int num_microbatches);

// ZB-H1 (Qi et al., Zero Bubble Pipeline Parallelism, arXiv 2401.10241): 1F1B's order with the backward split into
// backward-for-input (I) and backward-for-weights (W); rank r defers its W by r steps, so the input gradients reach
// the earlier ranks sooner and the deferred W fill the tail's bubble. Same activation bound as 1F1B.
Schedule zero_bubble_h1(int num_ranks, int num_microbatches);

// `schedule` with the sends and receives its compute actions need added between neighbouring stages on different
// ranks (a receive right before its consumer, a send right after its producer). Existing sends and receives are kept
// and not duplicated. For users who write only the compute order.
Schedule with_communication(const Schedule& schedule);

}  // namespace braid::dist
