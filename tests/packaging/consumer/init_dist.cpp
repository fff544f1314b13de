// A braid::dist program, run as one process (not under mpirun): init, the world of one, finalize.
#include <braid/braid.h>

#include <cstdio>

int main(int argc, char** argv) {
  braid::dist::init(argc, argv);
  std::printf("rank %d of %d\n", braid::dist::rank(), braid::dist::world_size());
  const bool ok = braid::dist::rank() == 0 && braid::dist::world_size() == 1;
  braid::dist::finalize();
  return ok ? 0 : 1;
}
