// test-rt-basic (cudart 13, nvcc's default static runtime) and test-rt-cudart12 (the same
// source linked against cudart 12 from PyPI): a real CUDA runtime program on the fake.
//   test-rt-basic                   checks: devices, malloc, copies, kernels, sync, OOM
//   test-rt-basic alloc MIB         try cudaMalloc(MIB); print rc, free, total
//   test-rt-basic busy MS US        keep the device busy for MS ms with US-long kernels
// Only API calls whose ABI is the same in cudart 12 and 13 are used here.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cuda_runtime.h>

// The fake runs no kernel; one named fakegpu_ns lasts `ns` nanoseconds of simulated time.
extern "C" __global__ void fakegpu_ns(unsigned long long ns) { (void)ns; }
__global__ void add_one(float *x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.0f;
}

static int fails = 0;
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
  printf("FAIL %s -> %d %s\n", #x, (int)e_, cudaGetErrorString(e_)); fails++; } } while (0)

static double now_s() {
  timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc > 2 && !strcmp(argv[1], "alloc")) {
    void *p = nullptr; size_t fr = 0, tot = 0;
    cudaError_t e = cudaMalloc(&p, (size_t)atol(argv[2]) << 20);
    CK(cudaMemGetInfo(&fr, &tot));
    printf("alloc_rc=%d free=%zu total=%zu\n", (int)e, fr, tot);
    return e == cudaSuccess ? 0 : 3;
  }
  if (argc > 3 && !strcmp(argv[1], "busy")) {
    double end = now_s() + atof(argv[2]) / 1e3;
    unsigned long long ns = (unsigned long long)(atof(argv[3]) * 1e3);
    long k = 0;
    while (now_s() < end) { fakegpu_ns<<<1, 1>>>(ns); CK(cudaDeviceSynchronize()); k++; }
    printf("launches=%ld\n", k);
    return fails != 0;
  }
  int drv = 0, rt = 0, n = 0, sms = 0;
  CK(cudaDriverGetVersion(&drv));
  CK(cudaRuntimeGetVersion(&rt));
  CK(cudaGetDeviceCount(&n));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  printf("driver=%d runtime=%d devices=%d sms=%d\n", drv, rt, n, sms);
  const int N = 1 << 20;
  float *d = nullptr, *h = (float *)malloc(N * sizeof(float)), *b = (float *)malloc(N * sizeof(float));
  for (int i = 0; i < N; i++) h[i] = (float)i;
  CK(cudaMalloc(&d, N * sizeof(float)));
  size_t fr = 0, tot = 0;
  CK(cudaMemGetInfo(&fr, &tot));
  printf("after_malloc free=%zu total=%zu\n", fr, tot);
  CK(cudaMemcpy(d, h, N * sizeof(float), cudaMemcpyHostToDevice));
  add_one<<<(N + 255) / 256, 256>>>(d, N);
  CK(cudaGetLastError());
  double t0 = now_s();
  for (int i = 0; i < 4; i++) fakegpu_ns<<<1, 1>>>(5000000ULL);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  double waited = now_s() - t0;
  printf("sync_ms=%.3f\n", waited * 1e3);
  if (waited < 0.0199) { printf("FAIL 4 x 5 ms kernels took %.3f ms\n", waited * 1e3); fails++; }
  CK(cudaMemcpy(b, d, N * sizeof(float), cudaMemcpyDeviceToHost));
  if (memcmp(h, b, N * sizeof(float))) { printf("FAIL memcpy round trip\n"); fails++; }
  void *big = nullptr;
  cudaError_t e = cudaMalloc(&big, tot);
  if (e != cudaErrorMemoryAllocation) { printf("FAIL malloc(total) -> %d\n", (int)e); fails++; }
  cudaGetLastError();
  CK(cudaFree(d));
  size_t fr2 = 0;
  CK(cudaMemGetInfo(&fr2, &tot));
  printf("after_free free=%zu\n", fr2);
  if (fr2 - fr != N * sizeof(float)) { printf("FAIL free gave back %zu\n", fr2 - fr); fails++; }
  free(h); free(b);
  printf("%s\n", fails ? "FAIL" : "OK");
  return fails != 0;
}
