// The machine's limit for the benchmark: the median GFLOP/s of a large square OpenBLAS cblas_sgemm,
// with the thread count the training runs use. Prints one JSON line.
// Usage: sgemm_peak N THREADS WARMUP REPEATS
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern char* openblas_get_corename(void);

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int by_value(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: sgemm_peak N THREADS WARMUP REPEATS\n");
    return 2;
  }
  const int n = atoi(argv[1]), threads = atoi(argv[2]), warmup = atoi(argv[3]), repeats = atoi(argv[4]);
  if (n <= 0 || threads <= 0 || warmup < 0 || repeats <= 0) {
    fprintf(stderr, "sgemm_peak: N, THREADS and REPEATS must be positive, WARMUP >= 0\n");
    return 2;
  }
  openblas_set_num_threads(threads);
  float* a = malloc(sizeof(float) * n * n);
  float* b = malloc(sizeof(float) * n * n);
  float* c = malloc(sizeof(float) * n * n);
  double* gflops = malloc(sizeof(double) * repeats);
  if (!a || !b || !c || !gflops) {
    fprintf(stderr, "sgemm_peak: out of memory for N = %d\n", n);
    return 2;
  }
  for (long i = 0; i < (long)n * n; i++) {
    a[i] = (float)(i % 7) * 0.25f - 0.75f;  // fixed, non-trivial values; denormals cannot occur
    b[i] = (float)(i % 5) * 0.5f - 1.0f;
    c[i] = 0.0f;
  }
  for (int r = -warmup; r < repeats; r++) {
    double t0 = now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double seconds = now_seconds() - t0;
    if (r >= 0) gflops[r] = 2.0 * n * n * n / seconds / 1e9;
  }
  qsort(gflops, repeats, sizeof(double), by_value);
  printf("{\"n\":%d,\"threads\":%d,\"repeats\":%d,\"median_gflops\":%.3f,\"best_gflops\":%.3f,\"core\":\"%s\"}\n",
         n, threads, repeats, gflops[repeats / 2], gflops[repeats - 1], openblas_get_corename());
  free(a), free(b), free(c), free(gflops);
  return 0;
}
