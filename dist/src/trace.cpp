// The trace recorder of this rank: events kept in memory while recording (one mutex; the hot paths only record when
// a trace is on), the clock offset to rank 0 measured at the start, and the Chrome-trace JSON written at the stop.
#include "braid/dist/trace.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "process_group_impl.h"

namespace braid::dist {
namespace {

struct Event {
  std::string name;
  trace::Lane lane;
  int64_t start_ns, end_ns;
  trace::EventArgs args;
};

struct Recorder {
  std::mutex mutex;
  std::string file;
  int rank = 0, world_size = 1;
  double offset_us = 0, round_trip_us = 0;
  std::vector<Event> events;
};

Recorder& recorder() {
  static auto* r = new Recorder();  // never destroyed: finalize can run from atexit
  return *r;
}

int64_t ns(trace::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

double now_us() { return double(ns(trace::Clock::now())) / 1e3; }

constexpr int kPingPongs = 8;
constexpr int kPingTag = 1;

// Rank 0's clock minus this rank's, from the ping-pong with the shortest round trip (its reply is assumed to have
// been stamped halfway through it). Every rank takes part; rank 0 serves the others one at a time.
std::pair<double, double> measure_clock_offset(MPI_Comm comm, int rank, int size) {
  if (rank == 0) {
    for (int peer = 1; peer < size; ++peer)
      for (int i = 0; i < kPingPongs; ++i) {
        char ping = 0;
        BRAID_MPI_CHECK(MPI_Recv(&ping, 1, MPI_CHAR, peer, kPingTag, comm, MPI_STATUS_IGNORE));
        double stamp = now_us();
        BRAID_MPI_CHECK(MPI_Send(&stamp, 1, MPI_DOUBLE, peer, kPingTag, comm));
      }
    return {0.0, 0.0};
  }
  double best_offset = 0, best_trip = 1e300;
  for (int i = 0; i < kPingPongs; ++i) {
    char ping = 0;
    double stamp = 0, sent = now_us();
    BRAID_MPI_CHECK(MPI_Send(&ping, 1, MPI_CHAR, 0, kPingTag, comm));
    BRAID_MPI_CHECK(MPI_Recv(&stamp, 1, MPI_DOUBLE, 0, kPingTag, comm, MPI_STATUS_IGNORE));
    double back = now_us();
    if (back - sent < best_trip) {
      best_trip = back - sent;
      best_offset = stamp - (sent + back) / 2;
    }
  }
  return {best_offset, best_trip};
}

// Empty when this rank can write its file, else why not.
std::string try_create(const std::string& file) {
  std::ofstream out(file, std::ios::trunc);
  if (out) return "";
  return std::strerror(errno);
}

// Every rank learns the lowest rank that cannot write its file (INT_MAX when all can), so all throw together.
int first_failing_rank(MPI_Comm comm, bool ok, int rank) {
  int mine = ok ? INT_MAX : rank, first = INT_MAX;
  BRAID_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
  return first;
}

nlohmann::json args_json(const trace::EventArgs& a) {
  nlohmann::json j = nlohmann::json::object();
  if (!a.op.empty()) j["op"] = a.op;
  if (a.stage >= 0) j["stage"] = a.stage;
  if (a.microbatch >= 0) j["microbatch"] = a.microbatch;
  if (a.bytes >= 0) j["bytes"] = a.bytes;
  if (a.peer >= 0) j["peer"] = a.peer;
  if (a.tag >= 0) j["tag"] = a.tag;
  return j;
}

nlohmann::json metadata(const char* what, int pid, int tid, const std::string& name) {
  return {{"name", what}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}};
}

// Communication events overlap (a receive is posted long before it completes): each goes to the first
// communication lane free at its start, so that every lane holds events one after another.
std::vector<int> communication_tids(std::vector<Event>& events) {
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) { return a.start_ns < b.start_ns; });
  std::vector<int64_t> lane_end;
  std::vector<int> tids(events.size(), 0);
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].lane == trace::Lane::Compute) continue;
    size_t lane = 0;
    while (lane < lane_end.size() && lane_end[lane] > events[i].start_ns) ++lane;
    if (lane == lane_end.size()) lane_end.push_back(0);
    lane_end[lane] = events[i].end_ns;
    tids[i] = int(lane) + 1;
  }
  return tids;
}

nlohmann::json to_json(Recorder& r) {
  std::vector<int> tids = communication_tids(r.events);
  nlohmann::json events = nlohmann::json::array();
  events.push_back(metadata("process_name", r.rank, 0, "rank " + std::to_string(r.rank)));
  events.push_back(metadata("thread_name", r.rank, 0, "compute"));
  int lanes = tids.empty() ? 0 : *std::max_element(tids.begin(), tids.end());
  for (int t = 1; t <= lanes; ++t) {
    std::string lane = "communication";
    if (t > 1) lane += ' ' + std::to_string(t);
    events.push_back(metadata("thread_name", r.rank, t, lane));
  }
  for (size_t i = 0; i < r.events.size(); ++i) {
    const Event& e = r.events[i];
    events.push_back({{"name", e.name},
                      {"cat", e.lane == trace::Lane::Compute ? "compute" : "communication"},
                      {"ph", "X"},
                      {"pid", r.rank},
                      {"tid", tids[i]},
                      {"ts", double(e.start_ns) / 1e3},
                      {"dur", double(std::max<int64_t>(e.end_ns - e.start_ns, 0)) / 1e3},
                      {"args", args_json(e.args)}});
  }
  nlohmann::json other = {{"rank", r.rank},
                          {"world_size", r.world_size},
                          {"clock", "steady_clock, microseconds"},
                          {"clock_offset_us", r.offset_us},
                          {"clock_round_trip_us", r.round_trip_us}};
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}, {"otherData", std::move(other)}};
}

thread_local const trace::WaitContext* t_wait_context = nullptr;

}  // namespace

std::string trace_path(const std::string& path, int rank) {
  const std::string ext = ".json", tag = ".rank" + std::to_string(rank);
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return path.substr(0, path.size() - ext.size()) + tag + ext;
  return path + tag + ext;
}

void start_trace(const std::string& path) {
  const detail::Runtime& rt = detail::require_running("start_trace");
  Recorder& r = recorder();
  BRAID_CHECK(!is_tracing(), "start_trace: a trace is already being recorded to '", r.file, "'");
  BRAID_CHECK(!path.empty(), "start_trace: the path is empty");
  const std::string file = trace_path(path, rt.rank);
  const std::string why = try_create(file);
  std::pair<double, double> clock{0.0, 0.0};
  if (rt.mpi) {
    MPI_Comm comm = MPI_COMM_NULL;
    BRAID_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
    int failing = first_failing_rank(comm, why.empty(), rt.rank);
    if (failing == INT_MAX) clock = measure_clock_offset(comm, rt.rank, rt.size);
    MPI_Comm_free(&comm);
    BRAID_CHECK(failing == INT_MAX, "start_trace: rank ", failing, " cannot write its trace file '",
                trace_path(path, failing), "'", (why.empty() ? "" : ": " + why));
  }
  BRAID_CHECK(why.empty(), "start_trace: cannot write the trace file '", file, "': ", why);
  std::lock_guard<std::mutex> lock(r.mutex);
  r.file = file;
  r.rank = rt.rank;
  r.world_size = rt.size;
  r.offset_us = clock.first;
  r.round_trip_us = clock.second;
  r.events.clear();
  detail::g_tracing.store(true);
}

void stop_trace() {
  if (!is_tracing()) return;
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mutex);
  detail::g_tracing.store(false);
  nlohmann::json doc = to_json(r);
  r.events.clear();
  std::ofstream out(r.file, std::ios::trunc);
  out << doc.dump() << '\n';
  out.close();
  BRAID_CHECK(bool(out), "stop_trace: cannot write the trace file '", r.file, "': ", std::strerror(errno));
}

namespace trace {

void record(std::string name, Lane lane, Clock::time_point start, Clock::time_point end, EventArgs args) {
  if (!is_tracing()) return;
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!is_tracing()) return;
  r.events.push_back(Event{std::move(name), lane, ns(start), ns(end), std::move(args)});
}

WaitContext::WaitContext(std::string label, int stage, int microbatch)
    : previous_(t_wait_context), label_(std::move(label)), stage_(stage), microbatch_(microbatch) {
  t_wait_context = this;
}

WaitContext::~WaitContext() { t_wait_context = previous_; }

void record_wait(const std::string& op, Clock::time_point start, Clock::time_point end, EventArgs args) {
  std::string name = "wait " + op;
  if (const WaitContext* c = t_wait_context) {
    name += " for " + c->label_;
    args.stage = c->stage_;
    args.microbatch = c->microbatch_;
  }
  args.op = op;
  record(std::move(name), Lane::Compute, start, end, std::move(args));
}

}  // namespace trace
}  // namespace braid::dist
