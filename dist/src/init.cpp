// init/finalize: MPI start-up when launched by mpirun (single process otherwise), the rank numbers, and the two
// ways a job ends abnormally: an uncaught exception on any rank (std::terminate handler → MPI_Abort, so the other
// ranks do not hang in their next collective) and dist::abort().
#include "braid/dist/init.h"

#include <sched.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <typeinfo>

#include "braid/core/cpu.h"
#include "braid/core/cuda.h"
#include "braid/dist/trace.h"
#include "job_monitor.h"
#include "process_group_impl.h"

namespace braid::dist {

namespace detail {

void check_mpi(int rc, const char* call, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof text, "MPI error code %d", rc);
  BRAID_FAIL(call, " failed at ", file, ":", line, ": ", text);
}

Runtime& runtime() {
  static Runtime* state = new Runtime();  // never destroyed: finalize() may run after static destructors began
  return *state;
}

const Runtime& require_running(const char* what) {
  const Runtime& rt = runtime();
  BRAID_CHECK(rt.initialized, "braid::dist::", what, ": call braid::dist::init() first");
  BRAID_CHECK(!rt.finalized, "braid::dist::", what, ": braid::dist::finalize() was already called");
  return rt;
}

namespace {

std::mutex g_init_mutex;
std::terminate_handler g_previous_terminate = nullptr;

// mpirun/mpiexec of Open MPI, MPICH/Hydra, Intel MPI and PMIx-based launchers (srun --mpi=pmix) set these.
bool launched_by_mpirun() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(var)) return true;
  return false;
}

double read_timeout() {
  const char* text = std::getenv("BRAID_DIST_TIMEOUT");
  if (!text || !*text) return 300;
  char* end = nullptr;
  double v = std::strtod(text, &end);
  // strtod gives infinity for "inf" and for a value too large to represent ("1e999"): no timeout to wait for.
  BRAID_CHECK(end != text && *end == '\0' && v > 0 && std::isfinite(v),
              "braid::dist::init: BRAID_DIST_TIMEOUT must be a positive finite number of seconds, got '", text, "'");
  return v;
}

// An on/off environment variable: unset gives `fallback`; empty, 0, false, off, no mean off; 1, true, on, yes on (any
// case). Anything else is refused rather than guessed at (BRAID_DIST_DEBUG=of would otherwise turn the checks on).
bool read_flag(const char* name, bool fallback) {
  const char* text = std::getenv(name);
  if (!text) return fallback;
  std::string v(text);
  for (char& c : v) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (v.empty() || v == "0" || v == "false" || v == "off" || v == "no") return false;
  if (v == "1" || v == "true" || v == "on" || v == "yes") return true;
  BRAID_FAIL("braid::dist::init: ", name, " must be 1 or 0 (or true/false, on/off, yes/no), got '", text, "'");
}

// The cores this process may run on (its affinity mask).
int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return int(sysconf(_SC_NPROCESSORS_ONLN));
  return CPU_COUNT(&set);
}

[[noreturn]] void on_terminate() {
  std::string what = "std::terminate called without an active exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = std::string("uncaught exception: ") + ex.what();
    } catch (...) {
      what = "uncaught exception of a type not derived from std::exception";
    }
  }
  const Runtime& rt = runtime();
  int mpi_up = 0, mpi_down = 0;
  if (rt.mpi) {
    MPI_Initialized(&mpi_up);
    MPI_Finalized(&mpi_down);
  }
  if (mpi_up && !mpi_down) {
    std::fprintf(stderr, "braid::dist: rank %d: %s; aborting the job\n", rt.rank, what.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (g_previous_terminate) g_previous_terminate();
  std::abort();
}

void finalize_at_exit() {
  try {
    Runtime& rt = runtime();
    if (!rt.initialized || rt.finalized) return;
    say_goodbye();
    detail::shutdown_backends(/*at_exit=*/true);
    stop_job_monitor();
    rt.finalized = true;
    int down = 0;
    if (rt.owns_mpi && MPI_Finalized(&down) == MPI_SUCCESS && !down) MPI_Finalize();
    stop_trace();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "braid::dist: finalize at exit failed on rank %d: %s\n", runtime().rank, e.what());
  }
}

}  // namespace
}  // namespace detail

using detail::Runtime;

void init(int argc, char** argv) {
  std::lock_guard<std::mutex> lock(detail::g_init_mutex);
  Runtime& rt = detail::runtime();
  if (rt.initialized) {
    BRAID_CHECK(!rt.finalized, "braid::dist::init: MPI cannot be started again after braid::dist::finalize()");
    return;
  }
  rt.timeout_s = detail::read_timeout();
  rt.debug = detail::read_flag("BRAID_DIST_DEBUG", false);
  detail::read_flag("BRAID_DIST_SPIN", false);  // a malformed value is refused before MPI starts
  cpu::cache_limit();  // reads BRAID_CPU_CACHE_BYTES: refused here, not at the first large allocation

  int already = 0;
  BRAID_MPI_CHECK(MPI_Initialized(&already));
  if (already || detail::launched_by_mpirun()) {
    int provided = 0;
    if (already) {
      BRAID_MPI_CHECK(MPI_Query_thread(&provided));
    } else {
      int rc = MPI_Init_thread(argv ? &argc : nullptr, argv ? &argv : nullptr, MPI_THREAD_MULTIPLE, &provided);
      BRAID_CHECK(rc == MPI_SUCCESS, "braid::dist::init: MPI_Init_thread failed with error code ", rc);
      rt.owns_mpi = true;
    }
    if (provided < MPI_THREAD_MULTIPLE) {
      if (rt.owns_mpi) MPI_Finalize();
      BRAID_FAIL("braid::dist::init: MPI provides thread level ", provided, ", Braid needs MPI_THREAD_MULTIPLE (",
                 MPI_THREAD_MULTIPLE, ") for its communication threads; use an MPI built with thread support");
    }
    rt.mpi = true;
    // Errors come back as codes (turned into braid::Error by BRAID_MPI_CHECK) instead of killing the job.
    BRAID_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    BRAID_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rt.rank));
    BRAID_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &rt.size));
    MPI_Comm local = MPI_COMM_NULL;
    BRAID_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rt.rank, MPI_INFO_NULL, &local));
    BRAID_MPI_CHECK(MPI_Comm_rank(local, &rt.local_rank));
    BRAID_MPI_CHECK(MPI_Comm_size(local, &rt.local_size));
    BRAID_MPI_CHECK(MPI_Comm_free(&local));
  }
  // mpirun binds each rank to one core when it starts two or fewer; the communication thread then shares that core
  // with the computation it is meant to overlap, so say so (once, on rank 0).
  int cores = detail::usable_cores();
  if (rt.mpi && cores == 1 && sysconf(_SC_NPROCESSORS_ONLN) > 1 && rt.rank == 0)
    std::fprintf(stderr,
                 "braid::dist: this process is bound to a single core, so communication cannot overlap "
                 "computation; launch with `mpirun --bind-to none` (or bind each rank to several cores)\n");
  // Short busy-waits (yielding) instead of sleeping at once save a wake-up per hand-off between a rank's thread and
  // its communication thread; only when every rank of this host can have two cores for them. On fewer, the
  // spinning thread takes time from the one doing the work. BRAID_DIST_SPIN=1/0 overrides.
  rt.spin = detail::read_flag("BRAID_DIST_SPIN", cores >= 2 * rt.local_size);

  detail::world_slot() = detail::make_world_group();
  if (rt.mpi && rt.size > 1) detail::start_job_monitor();
  detail::g_previous_terminate = std::set_terminate(detail::on_terminate);
  rt.initialized = true;
  std::atexit(detail::finalize_at_exit);
  if (const char* trace = std::getenv("BRAID_TRACE"); trace && *trace) {
    try {
      start_trace(trace);
    } catch (const Error& e) {
      BRAID_FAIL("braid::dist::init: BRAID_TRACE: ", e.what());
    }
  }
}

bool is_initialized() {
  const Runtime& rt = detail::runtime();
  return rt.initialized && !rt.finalized;
}

int rank() { return detail::require_running("rank").rank; }
int world_size() { return detail::require_running("world_size").size; }
int local_rank() { return detail::require_running("local_rank").local_rank; }
int local_world_size() { return detail::require_running("local_world_size").local_size; }

Device local_device() {
  if (!cuda::is_available()) return Device::cpu();
  int local = is_initialized() ? detail::runtime().local_rank : 0;
  return Device::cuda(local % cuda::device_count());
}

void finalize() {
  std::lock_guard<std::mutex> lock(detail::g_init_mutex);
  Runtime& rt = detail::runtime();
  if (!rt.initialized || rt.finalized) return;
  detail::say_goodbye();
  detail::shutdown_backends(/*at_exit=*/false);
  detail::stop_job_monitor();
  rt.finalized = true;
  int down = 0;
  if (rt.owns_mpi) {
    BRAID_MPI_CHECK(MPI_Finalized(&down));
    if (!down) BRAID_MPI_CHECK(MPI_Finalize());
  }
  stop_trace();  // last: MPI is finished whether or not the file can be written
}

void abort(const std::string& message, int code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(nullptr);
  const Runtime& rt = detail::runtime();
  int up = 0, down = 0;
  if (rt.mpi) {
    MPI_Initialized(&up);
    MPI_Finalized(&down);
  }
  if (up && !down) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace braid::dist
