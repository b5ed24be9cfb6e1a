// Measures this machine for the cost model's `cpu` target, with the thread count the plans run with,
// and prints one JSON line:
//   sgemm_flops    cblas_sgemm FLOP/s at an M x K x N shape like a training step's matmuls
//   stream_bytes   bytes/s of an OpenMP triad a = b + s*c (what elementwise kernels stream)
//   memcpy_bytes   bytes/s of one thread's memcpy (the transfer engine's copy thread)
//   adamw_bytes    bytes/s of an OpenMP AdamW loop, counted as the cost model counts it (28 per element)
// Each is the median of REPEATS timed runs after one warm-up run.
// Usage: cpu_probe THREADS M K N REPEATS
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int by_value(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static float* filled(long n, float scale) {
  float* p = malloc(sizeof(float) * n);
  if (!p) {
    fprintf(stderr, "cpu_probe: out of memory for %ld floats\n", n);
    exit(2);
  }
  for (long i = 0; i < n; i++) p[i] = (float)(i % 13) * scale + 0.5f;
  return p;
}

typedef void (*Work)(void* state);

/** Median seconds of `repeats` runs of work, after one warm-up run. */
static double median_seconds(Work work, void* state, int repeats) {
  double* t = malloc(sizeof(double) * repeats);
  work(state);
  for (int r = 0; r < repeats; r++) {
    double t0 = now_seconds();
    work(state);
    t[r] = now_seconds() - t0;
  }
  qsort(t, repeats, sizeof(double), by_value);
  double m = t[repeats / 2];
  free(t);
  return m;
}

struct Gemm { int m, k, n; float *a, *b, *c; };
static void gemm(void* s) {
  struct Gemm* g = s;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f, g->c, g->n);
}

struct Arrays { long n; float *a, *b, *c, *d; };
static void triad(void* s) {
  struct Arrays* x = s;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < x->n; i++) x->a[i] = x->b[i] + 0.5f * x->c[i];
}
static void copy(void* s) {
  struct Arrays* x = s;
  memcpy(x->a, x->b, sizeof(float) * x->n);
}
static void adamw(void* s) {
  struct Arrays* x = s;
  float *p = x->a, *m = x->c, *v = x->d;
  const float* g = x->b;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < x->n; i++) {
    const float mi = m[i] * 0.9f + 0.1f * g[i];
    const float vi = v[i] * 0.95f + 0.05f * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * 0.9999f - 1e-3f * (mi / (sqrtf(vi) / 0.3f + 1e-8f));
  }
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: cpu_probe THREADS M K N REPEATS\n");
    return 2;
  }
  const int threads = atoi(argv[1]), m = atoi(argv[2]), k = atoi(argv[3]), n = atoi(argv[4]), repeats = atoi(argv[5]);
  if (threads <= 0 || m <= 0 || k <= 0 || n <= 0 || repeats <= 0) {
    fprintf(stderr, "cpu_probe: every argument must be positive\n");
    return 2;
  }
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);

  struct Gemm g = { m, k, n, filled((long)m * k, 0.25f), filled((long)k * n, 0.5f), filled((long)m * n, 0.0f) };
  const double gemm_s = median_seconds(gemm, &g, repeats);

  // 16 Mi floats (64 MiB) an array: far beyond any cache, as the step's activations are.
  const long len = 16L << 20;
  struct Arrays x = { len, filled(len, 0.1f), filled(len, 0.01f), filled(len, 0.02f), filled(len, 0.001f) };
  const double triad_s = median_seconds(triad, &x, repeats);
  const double copy_s = median_seconds(copy, &x, repeats);
  const double adamw_s = median_seconds(adamw, &x, repeats);

  printf("{\"threads\":%d,\"sgemm_shape\":[%d,%d,%d],\"sgemm_flops\":%.6g,\"stream_bytes\":%.6g,"
         "\"memcpy_bytes\":%.6g,\"adamw_bytes\":%.6g}\n",
         threads, m, k, n, 2.0 * m * k * n / gemm_s, 12.0 * len / triad_s, 4.0 * len / copy_s, 28.0 * len / adamw_s);
  return 0;
}
