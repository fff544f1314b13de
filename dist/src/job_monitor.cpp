#include "job_monitor.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "flight_recorder.h"
#include "process_group_impl.h"

namespace braid::dist::detail {

namespace {

enum Tag : int { kGoodbye = 1, kQuestion = 2, kAnswer = 3, kGone = 4 };

constexpr auto kPollPeriod = std::chrono::milliseconds(30);
// A send/recv with a rank whose own transfers all completed may still complete (its last message in flight): wait
// this long before ending.
constexpr int64_t kP2PGraceNs = 2'000'000'000;
constexpr auto kAnswerWait = std::chrono::milliseconds(1500);

// A rank that left: the collectives it issued per group id, and when its own transfers had all completed (0: not yet).
struct Leaver {
  int64_t gone_ns = 0;
  std::map<int64_t, int64_t> issued;
};

struct Monitor {
  MPI_Comm comm = MPI_COMM_NULL;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  bool said_goodbye = false;
  std::map<int, Leaver> leavers;  // only the monitor thread touches it
};

Monitor& monitor() {
  static Monitor* m = new Monitor();  // never destroyed: finalize can run from atexit
  return *m;
}

void receive_goodbye(Monitor& m, const MPI_Status& status) {
  int count = 0;
  MPI_Get_count(&status, MPI_INT64_T, &count);
  std::vector<int64_t> pairs(size_t(count > 0 ? count : 0));
  MPI_Recv(pairs.data(), count, MPI_INT64_T, status.MPI_SOURCE, kGoodbye, m.comm, MPI_STATUS_IGNORE);
  Leaver& leaver = m.leavers[status.MPI_SOURCE];
  for (size_t i = 0; i + 1 < pairs.size(); i += 2) leaver.issued[pairs[i]] = pairs[i + 1];
}

// What this rank does now, for a question's answer and a leaver report.
std::string doing_now(const FlightRecorder& recorder) {
  std::vector<RecordedOp> ops = recorder.snapshot();
  const RecordedOp* op = recorder.oldest_unfinished(ops);
  if (!op) return "in no operation (last: " + (ops.empty() ? std::string("none") : recorder.describe(ops.back())) + ")";
  char since[32];
  std::snprintf(since, sizeof since, "%.1f s", double(now_ns() - (op->started_ns ? op->started_ns : op->issued_ns)) * 1e-9);
  return std::string(op->state == OpState::Started ? "in " : "queued behind others: ") + recorder.describe(*op) +
         " for " + since;
}

void answer_question(Monitor& m, const MPI_Status& status) {
  int64_t question[2] = {0, 0};  // group id, seq no. of the asker's stuck operation
  MPI_Recv(question, 2, MPI_INT64_T, status.MPI_SOURCE, kQuestion, m.comm, MPI_STATUS_IGNORE);
  const FlightRecorder& recorder = FlightRecorder::instance();
  const int me = runtime().rank;
  std::string text = doing_now(recorder);
  std::fprintf(stderr,
               "braid::dist: rank %d, asked by rank %d (whose operation #%lld on group %lld timed out), is %s; its "
               "last operations:\n%s",
               me, status.MPI_SOURCE, (long long)question[1], (long long)question[0], text.c_str(),
               recorder.lines(16).c_str());
  std::fflush(stderr);
  std::vector<char> reply(sizeof(int64_t) + text.size());
  const int64_t issued = recorder.issued_on(question[0]);
  std::memcpy(reply.data(), &issued, sizeof issued);
  std::memcpy(reply.data() + sizeof issued, text.data(), text.size());
  MPI_Send(reply.data(), int(reply.size()), MPI_BYTE, status.MPI_SOURCE, kAnswer, m.comm);
}

bool contains(const std::vector<int>& ranks, int rank) {
  for (int r : ranks)
    if (r == rank) return true;
  return false;
}

// Does `op` (unfinished, on a group with `ranks`) wait for `leaver`, which left with `info`?
bool waits_for(const RecordedOp& op, const std::vector<int>& ranks, int leaver, const Leaver& info) {
  if (!contains(ranks, leaver)) return false;
  if (op.seq > 0) {
    auto it = info.issued.find(op.group);
    return op.seq > (it == info.issued.end() ? 0 : it->second);
  }
  // Pending for the whole grace since both the leaver's last transfer and its own issue: a message the leaver sent
  // is delivered within it.
  if (info.gone_ns == 0 || now_ns() - std::max(info.gone_ns, op.issued_ns) < kP2PGraceNs) return false;
  const bool p2p = !op.label[0] && (op.sig.op == int32_t(OpKind::Send) || op.sig.op == int32_t(OpKind::Recv));
  if (p2p) return op.sig.root >= 0 && size_t(op.sig.root) < ranks.size() && ranks[size_t(op.sig.root)] == leaver;
  return true;  // a batch or an internal operation on a group with the leaver
}

[[noreturn]] void end_for_leaver(const RecordedOp& op, int leaver, const Leaver& info) {
  const FlightRecorder& recorder = FlightRecorder::instance();
  auto it = info.issued.find(op.group);
  const int64_t issued = it == info.issued.end() ? 0 : it->second;
  std::fprintf(stderr,
               "braid::dist: rank %d left the job (it finalized or exited after issuing %lld collectives on group "
               "%lld) while rank %d waits for it in %s; aborting the job. Rank %d's last operations:\n%s",
               leaver, (long long)issued, (long long)op.group, runtime().rank, recorder.describe(op).c_str(),
               runtime().rank, recorder.lines(16).c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

void check_leavers(const Monitor& m) {
  const FlightRecorder& recorder = FlightRecorder::instance();
  for (const RecordedOp& op : recorder.snapshot()) {
    if (op.id == 0 || op.finished()) continue;
    std::vector<int> ranks = recorder.group_ranks(op.group);
    for (const auto& [leaver, info] : m.leavers)
      if (waits_for(op, ranks, leaver, info)) end_for_leaver(op, leaver, info);
  }
}

void poll_once(Monitor& m) {
  for (int tag : {kGoodbye, kGone, kQuestion}) {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      if (MPI_Iprobe(MPI_ANY_SOURCE, tag, m.comm, &flag, &status) != MPI_SUCCESS || !flag) break;
      if (tag == kGoodbye) {
        receive_goodbye(m, status);
      } else if (tag == kGone) {
        MPI_Recv(nullptr, 0, MPI_BYTE, status.MPI_SOURCE, kGone, m.comm, MPI_STATUS_IGNORE);
        m.leavers[status.MPI_SOURCE].gone_ns = now_ns();
      } else {
        answer_question(m, status);
      }
    }
  }
  if (!m.leavers.empty()) check_leavers(m);
}

void run(Monitor& m) {
  std::unique_lock<std::mutex> lock(m.mutex);
  while (!m.stopping) {
    lock.unlock();
    poll_once(m);
    lock.lock();
    m.cv.wait_for(lock, kPollPeriod, [&] { return m.stopping; });
  }
}

}  // namespace

void start_job_monitor() {
  Monitor& m = monitor();
  BRAID_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &m.comm));
  BRAID_MPI_CHECK(MPI_Comm_set_errhandler(m.comm, MPI_ERRORS_RETURN));
  m.thread = std::thread([&m] { run(m); });
}

bool job_monitor_running() { return monitor().comm != MPI_COMM_NULL; }

namespace {

// Sends `data` to every other rank, waiting at most a second: a rank that is gone must not keep this one from
// leaving too (small messages leave at once).
void tell_everyone(Monitor& m, int tag, std::vector<int64_t> data) {
  const Runtime& rt = runtime();
  std::vector<MPI_Request> requests;
  for (int r = 0; r < rt.size; ++r) {
    if (r == rt.rank) continue;
    MPI_Request request = MPI_REQUEST_NULL;
    if (MPI_Isend(data.data(), int(data.size()), MPI_INT64_T, r, tag, m.comm, &request) == MPI_SUCCESS)
      requests.push_back(request);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  int done = 0;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    if (MPI_Testall(int(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) break;
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

void say_goodbye() {
  Monitor& m = monitor();
  if (m.comm == MPI_COMM_NULL || m.said_goodbye) return;
  m.said_goodbye = true;
  std::vector<int64_t> pairs;
  for (auto [group, issued] : FlightRecorder::instance().issued_counts()) {
    pairs.push_back(group);
    pairs.push_back(issued);
  }
  tell_everyone(m, kGoodbye, std::move(pairs));
}

void stop_job_monitor() {
  Monitor& m = monitor();
  if (m.comm == MPI_COMM_NULL) return;
  // The backends are shut down: every transfer of this rank completed.
  tell_everyone(m, kGone, {});
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    m.stopping = true;
  }
  m.cv.notify_all();
  if (m.thread.joinable()) m.thread.join();
  MPI_Comm_free(&m.comm);
  m.comm = MPI_COMM_NULL;
}

std::vector<MemberAnswer> ask_members(int64_t group, int64_t seq, const std::vector<int>& ranks) {
  Monitor& m = monitor();
  std::vector<MemberAnswer> answers;
  if (m.comm == MPI_COMM_NULL) return answers;
  int64_t question[2] = {group, seq};
  std::vector<MPI_Request> requests;
  for (int r : ranks) {
    MemberAnswer answer;
    answer.rank = r;
    answers.push_back(answer);
    MPI_Request request = MPI_REQUEST_NULL;
    if (MPI_Isend(question, 2, MPI_INT64_T, r, kQuestion, m.comm, &request) == MPI_SUCCESS) requests.push_back(request);
  }
  auto deadline = std::chrono::steady_clock::now() + kAnswerWait;
  size_t answered = 0;
  while (answered < answers.size() && std::chrono::steady_clock::now() < deadline) {
    int flag = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kAnswer, m.comm, &flag, &status) != MPI_SUCCESS) break;
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    std::vector<char> reply(size_t(std::max(count, int(sizeof(int64_t)))));
    MPI_Recv(reply.data(), count, MPI_BYTE, status.MPI_SOURCE, kAnswer, m.comm, MPI_STATUS_IGNORE);
    for (MemberAnswer& a : answers) {
      if (a.rank != status.MPI_SOURCE || a.answered) continue;
      a.answered = true;
      std::memcpy(&a.issued, reply.data(), sizeof a.issued);
      a.doing.assign(reply.data() + sizeof a.issued, size_t(std::max(count - int(sizeof(int64_t)), 0)));
      ++answered;
    }
  }
  // The questions to ranks that never answered stay posted: the job ends next.
  return answers;
}

}  // namespace braid::dist::detail
