/*
 * fakegpu libamdhip64: what the HIP runtime files share.
 *
 * The fake HIP runtime (HIP 5.2's ABI, soname libamdhip64.so.5, symbol versions hip_4.2 ..
 * hip_5.2) works on the same state file and device timeline as the fake libcuda: a state file
 * made with `fakegpu-ctl create --vendor amd` is a machine of simulated AMD GPUs. Device
 * ordinals seen by the program are "visible" ordinals (after HIP_VISIBLE_DEVICES); the state
 * file is indexed by physical index (fg_hip_phys()). Device memory is host memory, so copies
 * move data; kernels never run, they take simulated time on the device (fg_sched.c).
 */
#ifndef FG_HIP_INTERNAL_H
#define FG_HIP_INTERNAL_H

#define _GNU_SOURCE
#ifndef __HIP_PLATFORM_AMD__
#define __HIP_PLATFORM_AMD__ 1
#endif
#include <pthread.h>
/* The library is built -fvisibility=hidden: the API (declared by Debian's header and below)
 * is public, everything else stays inside; the version script picks the exported set. */
#pragma GCC visibility push(default)
#include <hip/hip_runtime_api.h>
#pragma GCC visibility pop
#include <stddef.h>
#include <stdint.h>

#include "fg_log.h"
#include "fg_state.h"

#define FG_HIP_VERSION 50221153 /* HIP_VERSION of Debian 12's HIP 5.2.3 */
#define FG_HIP_PENDING 1024u    /* launches in flight per device before launch blocks */

#pragma GCC visibility push(default)
/* Declared by hip_ext.h, which is C++ only. */
hipError_t hipExtLaunchKernel(const void *function_address, dim3 numBlocks, dim3 dimBlocks,
			      void **args, size_t sharedMemBytes, hipStream_t stream,
			      hipEvent_t startEvent, hipEvent_t stopEvent, int flags);
/* Emitted by clang for every translation unit with kernels (no header declares them). */
void **__hipRegisterFatBinary(const void *data);
void __hipUnregisterFatBinary(void **modules);
void __hipRegisterFunction(void **modules, const void *hostFunction, char *deviceFunction,
			   const char *deviceName, unsigned int threadLimit, void *tid, void *bid,
			   dim3 *blockDim, dim3 *gridDim, int *wSize);
void __hipRegisterVar(void **modules, void *var, char *hostVar, char *deviceVar, int ext,
		      size_t size, int constant, int global);
void __hipRegisterManagedVar(void *hipModule, void **pointer, void *init_value,
			     const char *name, size_t size, unsigned align);
#pragma GCC visibility pop

/* init / devices (hip_init.c) */
hipError_t fg_hip_init(void);            /* attach; hipErrorNoDevice when there is no device */
struct fg_state *fg_hip_state(void);
int fg_hip_count(void);
uint32_t fg_hip_phys(int dev);           /* caller checked the range */
int fg_hip_current(void);                /* this thread's device */
hipError_t fg_hip_set_current(int dev);
/* Make sure this process's runtime is set up on dev (charges the context overhead once). */
hipError_t fg_hip_device_ready(int dev);
void fg_hip_device_release(int dev);     /* hipDeviceReset: give the overhead back */
hipError_t fg_hip_err(hipError_t e);     /* remember e as this thread's last error */

/* time (hip_stream.c): work is identified by tickets, as in the CUDA fake: device + the
 * process's cumulative queued work (ns) after it. 0: nothing to wait for. */
#define FG_HIP_WORK_MASK ((1ULL << 56) - 1)
static inline uint64_t fg_hip_ticket(uint32_t phys, uint64_t work)
{
	return ((uint64_t)(phys + 1) << 56) | (work & FG_HIP_WORK_MASK);
}
hipError_t fg_hip_wait(uint64_t ticket); /* bounded by FAKEGPU_WAIT_LIMIT_S */
int fg_hip_done(uint64_t ticket);
uint64_t fg_hip_done_time(uint64_t ticket); /* when it completed; 0 unknown */
uint64_t fg_hip_dev_last(int dev);          /* the newest ticket of this process on dev */

struct fg_hip_graph;
struct fg_hip_stream {
	uint32_t tag;
	int dev;                 /* visible ordinal */
	unsigned flags;
	int priority;
	uint64_t last;           /* ticket of its latest work */
	struct fg_hip_graph *capture;
};
#define FG_HIP_TAG_STREAM 0x53504948u
#define FG_HIP_TAG_EVENT 0x45504948u
#define FG_HIP_TAG_GRAPH 0x47504948u
#define FG_HIP_TAG_EXEC 0x58504948u
#define FG_HIP_TAG_FUNC 0x46504948u
#define FG_HIP_TAG_MOD 0x4d504948u
#define FG_HIP_TAG_POOL 0x50504948u
#define FG_HIP_TAG_ARRAY 0x41504948u
#define FG_HIP_TAG_DEAD 0xdeadu

/* Resolve a stream handle: NULL (legacy), hipStreamPerThread or a live stream. *dev gets the
 * device work on it runs on. hipErrorInvalidHandle for anything else. */
hipError_t fg_hip_stream(hipStream_t s, struct fg_hip_stream **out, int *dev);
uint64_t fg_hip_stream_last(hipStream_t s);
void fg_hip_stream_note(hipStream_t s, int dev, uint64_t ticket);

/* launches (hip_launch.c) */
hipError_t fg_hip_queue(int dev, uint64_t dur, hipStream_t s, uint64_t *ticket);
uint64_t fg_hip_kernel_ns(int dev, uint64_t blocks, int sleep_kernel, uint64_t first_arg);
int fg_hip_kernel_known(const void *host); /* a registered kernel's host stub */

/* graphs (hip_graph.c): a capturing stream records kernel durations */
int fg_hip_capture_add(struct fg_hip_graph *g, uint64_t dur);

/* memory (hip_memory.c) */
enum fg_hip_kind {
	FG_HIP_DEVICE = 0,
	FG_HIP_MANAGED,
	FG_HIP_PITCH,
	FG_HIP_ASYNC,
	FG_HIP_HOST,
	FG_HIP_ARRAY,
	FG_HIP_REGISTERED,
	FG_HIP_VMM_RESERVE,  /* hipMemAddressReserve: address range, no memory */
};
hipError_t fg_hip_alloc(void **p, size_t bytes, int kind, int dev);
hipError_t fg_hip_free(void *p, int want_host);
int fg_hip_lookup(uintptr_t p, uintptr_t *base, size_t *size, int *kind, int *dev);
hipError_t fg_hip_charge(int dev, int64_t delta);   /* account delta bytes to this process */
uint64_t fg_hip_rounded(size_t bytes);              /* rounded up to alloc_granularity */
void fg_hip_free_device(int dev);                   /* hipDeviceReset */

/* handle registry (hip_handles.c) */
int fg_hip_handle_add(const void *h, uint32_t tag);
int fg_hip_handle_is(const void *h, uint32_t tag);
int fg_hip_handle_del(const void *h, uint32_t tag);

#endif /* FG_HIP_INTERNAL_H */
