// Checks the emulated CUDA target's NCCL stand-in (runtime/cuda/emulate/mpi/nccl_standin.cpp) under
// `mpirun -np 2`: every collective the CUDA backend calls, out of place and in place, against values
// each rank computes for every rank from the definitions here, and NCCL's argument validation. The
// inputs are copied to the device on the collective's stream without a host synchronisation, so a
// collective that did not wait for its stream's earlier work would see the NaN bytes of fresh memory.
//
// Each rank prints "PASS/FAIL rank R: name"; rank 0 then prints the ranks' total, "N passed, M failed".
// Exits 1 on any failure.
#define OMPI_SKIP_MPICXX 1
#include <cuda_runtime.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// NCCL, as its C API declares it (the enumerations are ints; ncclUniqueId is 128 opaque bytes).
struct ncclComm;
struct NcclUniqueId {
  char internal[128];
};
extern "C" int ncclGetUniqueId(NcclUniqueId* id);
extern "C" int ncclCommInitRank(ncclComm** comm, int nranks, NcclUniqueId id, int rank);
extern "C" int ncclCommDestroy(ncclComm* comm);
extern "C" int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, ncclComm* comm, cudaStream_t stream);
extern "C" int ncclAllGather(const void* send, void* recv, size_t send_count, int type, ncclComm* comm, cudaStream_t stream);
extern "C" int ncclReduceScatter(const void* send, void* recv, size_t recv_count, int type, int op, ncclComm* comm, cudaStream_t stream);
extern "C" int ncclBroadcast(const void* send, void* recv, size_t count, int type, int root, ncclComm* comm, cudaStream_t stream);
extern "C" const char* ncclGetErrorString(int result);

namespace {

constexpr int kInt32 = 2, kFloat32 = 7, kFloat64 = 8;  // ncclDataType_t
constexpr int kSum = 0, kMax = 2;                       // ncclRedOp_t
constexpr int kSuccess = 0, kInvalidArgument = 4;       // ncclResult_t

int g_rank = 0, g_ranks = 1, g_passed = 0, g_failed = 0;

void report(bool ok, const std::string& name, const std::string& detail = "") {
  (ok ? g_passed : g_failed)++;
  std::printf("%s rank %d: %s%s%s\n", ok ? "PASS" : "FAIL", g_rank, name.c_str(), ok || detail.empty() ? "" : ": ",
              ok ? "" : detail.c_str());
  std::fflush(stdout);
}

// A device buffer of `host`, filled on `stream` without waiting: the collective must order itself.
template <class T>
T* device_copy(const std::vector<T>& host, cudaStream_t stream, T** pinned_out) {
  void* d = nullptr;
  void* pinned = nullptr;
  cudaMalloc(&d, host.size() * sizeof(T));
  cudaMallocHost(&pinned, host.size() * sizeof(T));
  std::memcpy(pinned, host.data(), host.size() * sizeof(T));
  cudaMemcpyAsync(d, pinned, host.size() * sizeof(T), cudaMemcpyHostToDevice, stream);
  *pinned_out = static_cast<T*>(pinned);
  return static_cast<T*>(d);
}

template <class T>
std::vector<T> read_back(const T* d, size_t n) {
  std::vector<T> h(n);
  cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

template <class T>
std::string first_difference(const std::vector<T>& got, const std::vector<T>& want) {
  for (size_t i = 0; i < want.size(); i++)
    if (!(got[i] == want[i])) return "element " + std::to_string(i) + ": " + std::to_string(got[i]) + ", expected " + std::to_string(want[i]);
  return "";
}

// The value rank q contributes at element i, for each data type.
float f_value(int q, size_t i) { return float(q + 1) * float(i % 97) + 0.25f * float(q); }
int i_value(int q, size_t i) { return int((i * 7 + size_t(q) * 13) % 101) - 50; }
double d_value(int q, size_t i) { return double(q) * 1e6 + double(i) * 0.5; }

// Runs a collective whose output is `out_count` elements at `recv`, freeing what device_copy made.
template <class T>
void check_result(const std::string& name, int result, T* recv, const std::vector<T>& want, cudaStream_t stream) {
  cudaStreamSynchronize(stream);
  const std::vector<T> got = read_back(recv, want.size());
  const std::string diff = result == kSuccess ? first_difference(got, want) : std::string("result ") + ncclGetErrorString(result);
  report(diff.empty(), name, diff);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_ranks);
  const int R = g_ranks, r = g_rank;
  cudaSetDevice(r);
  cudaStream_t stream;
  cudaStreamCreate(&stream);

  NcclUniqueId id;
  if (r == 0) report(ncclGetUniqueId(&id) == kSuccess, "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  ncclComm* comm = nullptr;
  const int init = ncclCommInitRank(&comm, R, id, r);
  report(init == kSuccess && comm != nullptr, "ncclCommInitRank", ncclGetErrorString(init));
  if (init != kSuccess) {
    MPI_Finalize();
    return 1;
  }

  const size_t n = 1000;
  std::vector<void*> pinned;
  auto keep = [&](void* p) { pinned.push_back(p); };
  {  // all_reduce sum, float, out of place
    std::vector<float> send(n), want(n, 0.0f);
    for (size_t i = 0; i < n; i++) {
      send[i] = f_value(r, i);
      for (int q = 0; q < R; q++) want[i] += f_value(q, i);
    }
    float* p;
    float* d_send = device_copy(send, stream, &p);
    keep(p);
    float* d_recv = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d_recv), n * sizeof(float));
    check_result("ncclAllReduce sum float32", ncclAllReduce(d_send, d_recv, n, kFloat32, kSum, comm, stream), d_recv, want, stream);
    report(read_back(d_send, n) == send, "ncclAllReduce leaves the send buffer unchanged");
    cudaFree(d_send);
    cudaFree(d_recv);
  }
  {  // all_reduce max, int32, in place
    std::vector<int> send(n), want(n, -1000);
    for (size_t i = 0; i < n; i++) {
      send[i] = i_value(r, i);
      for (int q = 0; q < R; q++) want[i] = std::max(want[i], i_value(q, i));
    }
    int* p;
    int* d = device_copy(send, stream, &p);
    keep(p);
    check_result("ncclAllReduce max int32 in place", ncclAllReduce(d, d, n, kInt32, kMax, comm, stream), d, want, stream);
    cudaFree(d);
  }
  {  // all_reduce sum, float64, in place
    std::vector<double> send(n), want(n, 0.0);
    for (size_t i = 0; i < n; i++) {
      send[i] = d_value(r, i);
      for (int q = 0; q < R; q++) want[i] += d_value(q, i);
    }
    double* p;
    double* d = device_copy(send, stream, &p);
    keep(p);
    check_result("ncclAllReduce sum float64 in place", ncclAllReduce(d, d, n, kFloat64, kSum, comm, stream), d, want, stream);
    cudaFree(d);
  }
  const size_t c = 37;  // per-rank count of the gathers and scatters
  {  // all_gather, out of place and in place
    std::vector<float> send(c), want(c * size_t(R));
    for (size_t j = 0; j < c; j++) send[j] = f_value(r, j);
    for (int q = 0; q < R; q++)
      for (size_t j = 0; j < c; j++) want[size_t(q) * c + j] = f_value(q, j);
    float* p;
    float* d_send = device_copy(send, stream, &p);
    keep(p);
    float* d_recv = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d_recv), want.size() * sizeof(float));
    check_result("ncclAllGather float32", ncclAllGather(d_send, d_recv, c, kFloat32, comm, stream), d_recv, want, stream);
    cudaFree(d_send);
    cudaFree(d_recv);
    // In place: this rank's block already sits at its place in the output; the rest holds -7.
    std::vector<float> whole(c * size_t(R), -7.0f);
    for (size_t j = 0; j < c; j++) whole[size_t(r) * c + j] = f_value(r, j);
    float* d_whole = device_copy(whole, stream, &p);
    keep(p);
    check_result("ncclAllGather float32 in place", ncclAllGather(d_whole + size_t(r) * c, d_whole, c, kFloat32, comm, stream), d_whole,
                 want, stream);
    cudaFree(d_whole);
  }
  {  // reduce_scatter sum, out of place and in place
    std::vector<float> send(c * size_t(R)), want(c, 0.0f);
    for (size_t i = 0; i < send.size(); i++) send[i] = f_value(r, i);
    for (size_t j = 0; j < c; j++)
      for (int q = 0; q < R; q++) want[j] += f_value(q, size_t(r) * c + j);
    float* p;
    float* d_send = device_copy(send, stream, &p);
    keep(p);
    float* d_recv = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d_recv), c * sizeof(float));
    check_result("ncclReduceScatter sum float32", ncclReduceScatter(d_send, d_recv, c, kFloat32, kSum, comm, stream), d_recv, want,
                 stream);
    cudaFree(d_recv);
    check_result("ncclReduceScatter sum float32 in place (recv is this rank's block of send)",
                 ncclReduceScatter(d_send, d_send + size_t(r) * c, c, kFloat32, kSum, comm, stream), d_send + size_t(r) * c, want,
                 stream);
    cudaFree(d_send);
  }
  {  // reduce_scatter max, int32
    std::vector<int> send(c * size_t(R)), want(c, -1000);
    for (size_t i = 0; i < send.size(); i++) send[i] = i_value(r, i);
    for (size_t j = 0; j < c; j++)
      for (int q = 0; q < R; q++) want[j] = std::max(want[j], i_value(q, size_t(r) * c + j));
    int* p;
    int* d_send = device_copy(send, stream, &p);
    keep(p);
    int* d_recv = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d_recv), c * sizeof(int));
    check_result("ncclReduceScatter max int32", ncclReduceScatter(d_send, d_recv, c, kInt32, kMax, comm, stream), d_recv, want, stream);
    cudaFree(d_send);
    cudaFree(d_recv);
  }
  {  // broadcast from the last rank, out of place and in place
    const int root = R - 1;
    std::vector<float> send(n), want(n);
    for (size_t i = 0; i < n; i++) {
      send[i] = f_value(r, i);
      want[i] = f_value(root, i);
    }
    float* p;
    float* d_send = device_copy(send, stream, &p);
    keep(p);
    float* d_recv = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d_recv), n * sizeof(float));
    check_result("ncclBroadcast float32 from rank " + std::to_string(root),
                 ncclBroadcast(d_send, d_recv, n, kFloat32, root, comm, stream), d_recv, want, stream);
    check_result("ncclBroadcast float32 in place from rank 0", ncclBroadcast(d_send, d_send, n, kFloat32, 0, comm, stream), d_send,
                 [&] {
                   std::vector<float> w(n);
                   for (size_t i = 0; i < n; i++) w[i] = f_value(0, i);
                   return w;
                 }(),
                 stream);
    cudaFree(d_send);
    cudaFree(d_recv);
  }
  {  // validation: every rank makes the same bad call, so none reaches MPI
    float* d = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d), 64 * sizeof(float));
    std::vector<float> host(64, 1.0f);
    struct Bad {
      const char* what;
      int result;
    };
    const Bad bad[] = {
        {"ncclAllReduce from a host buffer", ncclAllReduce(host.data(), d, 64, kFloat32, kSum, comm, stream)},
        {"ncclAllReduce into a host buffer", ncclAllReduce(d, host.data(), 64, kFloat32, kSum, comm, stream)},
        {"ncclAllReduce with data type 42", ncclAllReduce(d, d, 64, 42, kSum, comm, stream)},
        {"ncclAllReduce with operation 17", ncclAllReduce(d, d, 64, kFloat32, 17, comm, stream)},
        {"ncclAllReduce with a null communicator", ncclAllReduce(d, d, 64, kFloat32, kSum, nullptr, stream)},
        {"ncclAllReduce past the end of its allocation", ncclAllReduce(d, d, 65, kFloat32, kSum, comm, stream)},
        {"ncclAllGather into a buffer too small for all ranks", ncclAllGather(d, d + 16, 48, kFloat32, comm, stream)},
        {"ncclReduceScatter with data type 42", ncclReduceScatter(d, d, 8, 42, kSum, comm, stream)},
        {"ncclBroadcast with root out of range", ncclBroadcast(d, d, 64, kFloat32, R, comm, stream)},
        {"ncclBroadcast with a negative root", ncclBroadcast(d, d, 64, kFloat32, -1, comm, stream)},
    };
    for (const Bad& b : bad)
      report(b.result == kInvalidArgument, std::string(b.what) + ": ncclInvalidArgument",
             "result " + std::to_string(b.result) + " (" + ncclGetErrorString(b.result) + ")");
    // The communicator still works after the refusals.
    std::vector<float> ones(64, 1.0f), want(64, float(R));
    float* p;
    float* d_ones = device_copy(ones, stream, &p);
    keep(p);
    check_result("a collective after the refused ones", ncclAllReduce(d_ones, d_ones, 64, kFloat32, kSum, comm, stream), d_ones, want,
                 stream);
    cudaFree(d_ones);
    cudaFree(d);
  }
  report(cudaDeviceSynchronize() == cudaSuccess, "no CUDA error at the end");
  report(ncclCommDestroy(comm) == kSuccess, "ncclCommDestroy");
  for (void* p : pinned) cudaFreeHost(p);
  cudaStreamDestroy(stream);

  int counts[2] = {g_passed, g_failed}, totals[2] = {0, 0};
  MPI_Reduce(counts, totals, 2, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  if (r == 0) std::printf("%d passed, %d failed\n", totals[0], totals[1]);
  return g_failed == 0 ? 0 : 1;
}
