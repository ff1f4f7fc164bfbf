/*
 * fakegpu libcuda: what the driver API files share.
 *
 * Device ordinals seen by the program are "visible" ordinals (after CUDA_VISIBLE_DEVICES);
 * the state file is indexed by physical index (fg_phys()). Device memory is host memory
 * (MAP_NORESERVE mappings), so copies really move data; kernels never run, they only take
 * simulated time on the device's timeline.
 */
#ifndef FG_CUDA_INTERNAL_H
#define FG_CUDA_INTERNAL_H

#define _GNU_SOURCE
#define CUDA_ENABLE_DEPRECATED /* the fake implements deprecated entry points too */
#include <cuda.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_log.h"
#include "fg_state.h"

/* cuda.h maps these names to their newest version; the fake exports every version. */
#undef cuStreamBeginCapture
#undef cuStreamGetCaptureInfo
#undef cuStreamUpdateCaptureDependencies
#undef cuGetProcAddress
#undef cuDeviceGetUuid
#undef cuEventElapsedTime
#undef cuGraphInstantiate
#undef cuGraphAddKernelNode
#undef cuGraphAddDependencies
#undef cuGraphAddNode
#undef cuGraphKernelNodeGetParams
#undef cuGraphKernelNodeSetParams
#undef cuGraphExecKernelNodeSetParams
#undef cuGraphExecUpdate
#undef cuMemPrefetchAsync
#undef cuMemAdvise
#undef cuStreamWriteValue32
#undef cuStreamWriteValue64
CUresult cuStreamBeginCapture(CUstream s, CUstreamCaptureMode mode);
CUresult cuStreamGetCaptureInfo(CUstream s, CUstreamCaptureStatus *st, cuuint64_t *id);
CUresult cuStreamGetCaptureInfo_v2(CUstream s, CUstreamCaptureStatus *st, cuuint64_t *id,
				   CUgraph *g, const CUgraphNode **deps, size_t *n);
CUresult cuStreamUpdateCaptureDependencies(CUstream s, CUgraphNode *d, size_t n, unsigned f);
CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);
CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev);
CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b);
CUresult cuGraphInstantiate_v2(CUgraphExec *phExec, CUgraph g, CUgraphNode *phErrorNode,
			       char *logBuffer, size_t bufferSize);
CUresult cuGraphAddKernelNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
			      const CUDA_KERNEL_NODE_PARAMS *p);
CUresult cuGraphAddDependencies(CUgraph g, const CUgraphNode *from, const CUgraphNode *to,
				size_t n);
CUresult cuGraphAddNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
			CUgraphNodeParams *p);
CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int n, unsigned int flags,
			CUdevice dev);
CUresult cuGetExportTable(const void **ppExportTable, const CUuuid *pExportTableId);
CUresult cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream s);
CUresult cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device);
CUresult cuStreamWriteValue32(CUstream s, CUdeviceptr addr, cuuint32_t value, unsigned int flags);
CUresult cuStreamWriteValue64(CUstream s, CUdeviceptr addr, cuuint64_t value, unsigned int flags);

#define FG_DRIVER_VERSION 13000
#define FG_PENDING_LIMIT 1024u /* launches a context may have in flight before launch blocks */

/* Handle tags: a handle whose tag does not match is CUDA_ERROR_INVALID_HANDLE/CONTEXT. */
#define FG_TAG_CTX 0x31585443u
#define FG_TAG_MOD 0x31444f4du
#define FG_TAG_FUN 0x314e5546u
#define FG_TAG_STREAM 0x31525453u
#define FG_TAG_EVENT 0x31545645u
#define FG_TAG_POOL 0x314c4f50u
#define FG_TAG_GRAPH 0x31485247u
#define FG_TAG_EXEC 0x31455845u
#define FG_TAG_NODE 0x31444f4eu
#define FG_TAG_ARRAY 0x31525241u
#define FG_TAG_DEAD 0xdeadu

struct fg_graph;

struct fg_ctx {
	uint32_t tag;
	int dev;                 /* visible ordinal */
	unsigned flags;
	int primary;
	int refcount;            /* primary: retain count; regular: 1 until destroyed */
	unsigned long long id;
	uint64_t legacy_end;     /* end of work on the NULL (legacy) stream */
	uint64_t all_end;        /* end of all work queued in this context */
	uint64_t pending[FG_PENDING_LIMIT]; /* ends of recent launches, for the queue bound */
	uint32_t pending_next;
	pthread_mutex_t mu;
};

struct fg_stream {
	uint32_t tag;
	struct fg_ctx *ctx;
	unsigned flags;
	int priority;
	unsigned long long id;
	uint64_t last_end;
	struct fg_graph *capture; /* non-NULL while capturing into a graph */
	int capture_origin;
	struct fg_stream *next;   /* all streams of the process */
};

struct fg_module {
	uint32_t tag;
	const void *image;
	int is_library;
};

struct fg_function {
	uint32_t tag;
	struct fg_module *mod;
	struct fg_function *next;
	int sleep_kernel;        /* name contains "fakegpu_ns": first parameter is its duration */
	char name[256];
};

struct fg_event {
	uint32_t tag;
	unsigned flags;
	int recorded;
	uint64_t t;              /* ticket of the recorded work */
	uint64_t rec_ns;         /* when it was recorded */
	struct fg_graph *capture;
};

/* init / devices */
CUresult fg_ready(void);
int fg_visible_count(void);
uint32_t fg_phys(int dev);   /* visible ordinal -> physical index; caller checked range */
struct fg_state *fg_shm(void);
int fg_valid_dev(int dev);

/* contexts */
struct fg_ctx *fg_current_ctx(void);
CUresult fg_need_ctx(struct fg_ctx **c);
int fg_ctx_valid(const struct fg_ctx *c);

/* streams and time */
struct fg_stream *fg_stream_get(CUstream s);
int fg_stream_bad(CUstream s);      /* a non-special handle that is not a live stream */
int fg_stream_per_thread(CUstream s);
uint64_t fg_stream_end(struct fg_ctx *c, CUstream s);
void fg_stream_set_end(struct fg_ctx *c, CUstream s, uint64_t end);
/* Work of a process is identified by a ticket: its device and the process's cumulative queued
 * work (ns) after it; the work is done when the process's completed work reaches it. 0: none.
 * Tickets of one device grow with queue order, so the larger of two is the later. */
#define FG_TICKET_WORK_MASK ((1ULL << 56) - 1)
static inline uint64_t fg_ticket(uint32_t phys, uint64_t work)
{
	return ((uint64_t)(phys + 1) << 56) | (work & FG_TICKET_WORK_MASK);
}
/* Wait until the ticket's work is done (bounded by FAKEGPU_WAIT_LIMIT_S: LAUNCH_TIMEOUT). */
CUresult fg_wait_until(uint64_t ticket);
int fg_ticket_done(uint64_t ticket);
/* When the ticket's work completed (CLOCK_MONOTONIC ns), or 0 when not done or not known. */
uint64_t fg_ticket_time(uint64_t ticket);
CUresult fg_sync_stream(CUstream s);
CUresult fg_sync_ctx(struct fg_ctx *c);
CUresult fg_capture_check(CUstream s, struct fg_graph **g);

/* launches */
CUresult fg_launch(struct fg_ctx *c, struct fg_function *f, uint64_t blocks, CUstream s,
		   void **params, void **extra);
uint64_t fg_kernel_duration(struct fg_ctx *c, const struct fg_function *f, uint64_t blocks,
			    void **params, void **extra);
CUresult fg_timeline_launch(struct fg_ctx *c, uint64_t dur, CUstream s);

/* memory */
enum fg_alloc_kind {
	FG_ALLOC_DEVICE = 0,
	FG_ALLOC_MANAGED,
	FG_ALLOC_PITCH,
	FG_ALLOC_ASYNC,
	FG_ALLOC_HOST,
	FG_ALLOC_ARRAY,
	FG_ALLOC_VMM,
	FG_ALLOC_REGISTERED,
};
CUresult fg_alloc(CUdeviceptr *dp, size_t bytes, int kind, int dev, void *pool);
CUresult fg_free(CUdeviceptr dp, int expect_host);
int fg_ptr_lookup(uintptr_t p, uintptr_t *base, size_t *size, int *kind, int *dev, void **pool);
CUresult fg_copy(void *dst, const void *src, size_t n);
CUresult fg_mem_usage(uint32_t phys, int64_t delta);
int fg_capture_memcpy(struct fg_graph *g, void *dst, const void *src, size_t n);
int fg_capture_memset(struct fg_graph *g, void *dst, unsigned val, unsigned elt, size_t w,
		      size_t h, size_t pitch);
void fg_memset_run(void *dst, unsigned val, unsigned elt, size_t w, size_t h, size_t pitch);

/* functions */
struct fg_function *fg_function_get(struct fg_module *m, const char *name);
int fg_function_valid(const struct fg_function *f);
CUresult fg_module_new(CUmodule *m, const void *image, int is_library);

/* graphs */
int fg_capture_kernel(struct fg_graph *g, struct fg_ctx *c, uint64_t dur);

/* live-handle registry */
int fg_handle_add(const void *h, uint32_t tag);
int fg_handle_is(const void *h, uint32_t tag);
int fg_handle_del(const void *h, uint32_t tag);

/* allocation table extras */
void fg_free_ctx_allocs(struct fg_ctx *c);
int fg_table_add_foreign(uintptr_t base, size_t size, int kind, int dev);
int fg_table_remove_foreign(uintptr_t base);

/* error strings */
const char *fg_error_name(CUresult r);

/* unknown export-table slots */
CUresult fg_unimplemented_slot(void);

/* entry points the simulation deliberately does not offer (cuda_unsupported.c) */
void *fg_unsupported_lookup(const char *name);

#endif /* FG_CUDA_INTERNAL_H */
