// Measures the MPI link between the ranks of one job on this machine, for the `cpu` target's network
// term (ir/cost_model.ts: a ring collective of S bytes over p ranks costs
// passes * ((p-1)/p * S / bandwidth + (p-1) * latency), an all-reduce being two passes).
// Times MPI_Allreduce (a float sum, as the runtime's gradient all-reduce) at two sizes: a few bytes,
// where latency is all there is, and a large buffer, where bandwidth is. Each time is the fastest of REPEATS (of the
// slowest rank's time), after a warm-up: the ranks share the cores with the rest of the machine, and a
// rank that is not scheduled when its peer sends costs a time slice that is the scheduler's, not the
// link's. Rank 0 prints one JSON line:
//   {"ranks": p, "points": [[bytes, seconds], ...]}
// Usage: mpirun -np P mpi_probe REPEATS
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

double timed_allreduce(std::vector<float>& buffer, int count) {
  MPI_Barrier(MPI_COMM_WORLD);
  double start = MPI_Wtime();
  MPI_Allreduce(MPI_IN_PLACE, buffer.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  double local = MPI_Wtime() - start, slowest = 0;
  MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

double fastest_allreduce_seconds(int count, int repeats) {
  std::vector<float> buffer(static_cast<size_t>(count), 1.0f);
  timed_allreduce(buffer, count);  // warm-up: connections and buffers set up
  double fastest = timed_allreduce(buffer, count);
  for (int i = 1; i < repeats; i++) fastest = std::min(fastest, timed_allreduce(buffer, count));
  return fastest;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  int repeats = argc > 1 ? std::atoi(argv[1]) : 0;
  if (repeats < 1) {
    if (rank == 0) std::fprintf(stderr, "usage: mpirun -np P mpi_probe REPEATS\n");
    MPI_Finalize();
    return 2;
  }
  // 16 B and 16 MiB of floats.
  const int counts[] = {4, 1 << 22};
  if (rank == 0) std::printf("{\"ranks\": %d, \"points\": [", ranks);
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
    double seconds = fastest_allreduce_seconds(counts[i], repeats);
    if (rank == 0) std::printf("%s[%zu, %.9g]", i ? ", " : "", counts[i] * sizeof(float), seconds);
  }
  if (rank == 0) std::printf("]}\n");
  MPI_Finalize();
  return 0;
}
