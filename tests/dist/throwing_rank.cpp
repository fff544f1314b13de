// How jobs end, for the CTest entries that run this program under mpiexec with 2 ranks (argv[1] picks the case).
// The faulty ones must end the whole job quickly and non-zero; rank 0 waits in an all_reduce that rank 1 never joins:
//   throw        rank 1 throws an exception nobody catches: the terminate handler aborts the job.
//   hang         rank 1 sleeps: rank 0's wait gives up after BRAID_DIST_TIMEOUT and aborts the job.
//   hang_blocking  the same with the blocking dist::all_reduce, which rank 0's own thread runs inside MPI: the
//                communication thread watches the clock for it.
// The clean ones must exit 0:
//   drain        operations still outstanding when finalize() is called complete first (their results checked).
//   no_finalize  the program returns from main with an operation outstanding and without calling finalize():
//                the atexit handler finishes it and ends MPI (Open MPI fails the job if a rank skips MPI_Finalize).
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "braid/core/creation.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"

int main(int argc, char** argv) {
  braid::dist::init(argc, argv);
  std::string mode = argc > 1 ? argv[1] : "throw";
  int rank = braid::dist::rank(), size = braid::dist::world_size();
  if (size < 2) {
    std::fprintf(stderr, "run with at least 2 ranks\n");
    return 2;
  }
  auto world = braid::dist::world();

  if (mode == "drain" || mode == "no_finalize") {
    braid::Tensor sum = braid::full({1 << 16}, double(rank + 1));
    braid::Tensor ring = braid::full({1 << 16}, double(rank));
    braid::Tensor got = braid::zeros({1 << 16});
    world->all_reduce(sum);  // none of these is waited for
    world->send(ring, (rank + 1) % size);
    world->recv(got, (rank + size - 1) % size);
    if (mode == "no_finalize") return 0;
    braid::dist::finalize();
    float want_sum = float(size * (size + 1) / 2), want_got = float((rank + size - 1) % size);
    if (sum.to_vector<float>()[100] != want_sum || got.to_vector<float>()[100] != want_got) {
      std::fprintf(stderr, "rank %d: outstanding operations did not complete before finalize() returned\n", rank);
      return 1;
    }
    return 0;
  }

  if (rank == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (mode == "throw") throw std::runtime_error("deliberate failure on rank 1");
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  braid::Tensor t = braid::ones({4});
  if (mode == "hang_blocking")
    braid::dist::all_reduce(t);
  else
    world->all_reduce(t)->wait();
  std::fprintf(stderr, "rank %d: the all_reduce completed, which it must not\n", rank);
  return 0;
}
