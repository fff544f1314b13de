#include <string>

#include "braid/core/error.h"
#include "braid/dist/pipeline.h"
#include "braid/dist/pipeline_schedules.h"

namespace braid::dist {

std::string to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::GPipe:
      return "gpipe";
    case ScheduleKind::OneFOneB:
      return "1f1b";
    case ScheduleKind::Interleaved:
      return "interleaved";
    case ScheduleKind::ZeroBubble:
      return "zb";
  }
  BRAID_FAIL("to_string: unknown ScheduleKind ", int(kind));
}

ScheduleKind parse_schedule_kind(std::string_view name) {
  for (ScheduleKind kind :
       {ScheduleKind::GPipe, ScheduleKind::OneFOneB, ScheduleKind::Interleaved, ScheduleKind::ZeroBubble})
    if (name == to_string(kind)) return kind;
  BRAID_FAIL("parse_schedule_kind: unknown pipeline schedule '", name, "', expected gpipe, 1f1b, interleaved or zb");
}

Schedule make_schedule(ScheduleKind kind, int num_ranks, int stages_per_rank, int num_microbatches) {
  BRAID_CHECK(stages_per_rank == 1 || kind == ScheduleKind::Interleaved, "make_schedule: ", stages_per_rank,
              " virtual stages per rank need the interleaved schedule; ", to_string(kind), " runs one stage per rank");
  switch (kind) {
    case ScheduleKind::GPipe:
      return gpipe(num_ranks, num_microbatches);
    case ScheduleKind::OneFOneB:
      return one_f_one_b(num_ranks, num_microbatches);
    case ScheduleKind::Interleaved:
      return interleaved_one_f_one_b(num_ranks, stages_per_rank, num_microbatches);
    case ScheduleKind::ZeroBubble:
      return zero_bubble_h1(num_ranks, num_microbatches);
  }
  BRAID_FAIL("make_schedule: unknown ScheduleKind ", int(kind));
}

}  // namespace braid::dist
