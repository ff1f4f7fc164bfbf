/*
 * fakegpu libcuda: streams, the simulated time each stream's work ends, synchronization
 * (bounded waits), stream capture into graphs.
 *
 * Every kernel of every process queues FIFO on its device (cuda_launch.c), so a stream's
 * work is done once its last kernel's simulated end has passed: a stream is its end time.
 */
#include "cuda_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fg_graph *fg_graph_new(void);
unsigned long long fg_graph_id(const struct fg_graph *g);
size_t fg_graph_tail(struct fg_graph *g, CUgraphNode *out, size_t max);
int fg_graph_valid(const struct fg_graph *g);

static pthread_mutex_t streams_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fg_stream *streams;
static unsigned long long next_stream_id = 100;
static __thread uint64_t per_thread_end[FG_MAX_DEVICES];
static uint64_t wait_limit_ns;

static int is_special(CUstream s)
{
	return s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD;
}

int fg_stream_per_thread(CUstream s)
{
	return s == CU_STREAM_PER_THREAD;
}

struct fg_stream *fg_stream_get(CUstream s)
{
	if (is_special(s) || !fg_handle_is(s, FG_TAG_STREAM))
		return NULL;
	return (struct fg_stream *)s;
}

int fg_stream_bad(CUstream s)
{
	return !is_special(s) && !fg_handle_is(s, FG_TAG_STREAM);
}

uint64_t fg_stream_end(struct fg_ctx *c, CUstream s)
{
	struct fg_stream *x = fg_stream_get(s);

	if (x)
		return __atomic_load_n(&x->last_end, __ATOMIC_ACQUIRE);
	if (s == CU_STREAM_PER_THREAD)
		return c ? per_thread_end[c->dev] : 0;
	/* the legacy stream waits for all blocking streams of its context */
	return c ? __atomic_load_n(&c->legacy_end, __ATOMIC_ACQUIRE) : 0;
}

static void atomic_max(uint64_t *p, uint64_t v)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_RELEASE,
						       __ATOMIC_RELAXED))
		;
}

void fg_stream_set_end(struct fg_ctx *c, CUstream s, uint64_t end)
{
	struct fg_stream *x = fg_stream_get(s);
	int blocking = 1;

	if (x) {
		atomic_max(&x->last_end, end);
		blocking = !(x->flags & CU_STREAM_NON_BLOCKING);
	} else if (s == CU_STREAM_PER_THREAD) {
		if (per_thread_end[c->dev] < end)
			per_thread_end[c->dev] = end;
	}
	atomic_max(&c->all_end, end);
	if (blocking)
		atomic_max(&c->legacy_end, end);
}

static uint64_t limit_ns(void)
{
	if (!wait_limit_ns) {
		const char *v = getenv("FAKEGPU_WAIT_LIMIT_S");
		unsigned long long s = v && *v ? strtoull(v, NULL, 10) : 0;

		wait_limit_ns = (s ? s : 600) * 1000000000ULL;
	}
	return wait_limit_ns;
}

/* Lock, advance the device, and tell about the ticket's work: 1 done, 0 not yet (then *est_ns
 * is a lower bound of the time it still needs). */
static int ticket_state(uint64_t ticket, uint64_t *est_ns, uint64_t *done_at)
{
	struct fg_state *s = fg_shm();
	uint32_t phys = (uint32_t)(ticket >> 56) - 1;
	uint64_t work = ticket & FG_TICKET_WORK_MASK, now;
	struct fg_proc *p = NULL;
	int pid = getpid(), done = 1;

	if (!ticket || phys >= FG_MAX_DEVICES || phys >= s->device_count)
		return 1;
	if (fg_lock(s))
		return 1;
	now = fg_now_ns();
	fg_sched_advance(s, phys, now);
	for (uint32_t i = 0; i < FG_MAX_PROCS; i++) {
		if (s->procs[i].pid == pid && s->procs[i].device == phys) {
			p = &s->procs[i];
			break;
		}
	}
	/* no slot (forked child, reaped) or a ticket past its queue: nothing to wait for */
	if (p && work > p->done_ns && work <= p->enq_ns) {
		const struct fg_device_state *d = &s->dev[phys];
		uint64_t est = work - p->done_ns;

		done = 0;
		if (d->cur >= 0 && (uint32_t)d->cur < FG_MAX_PROCS &&
		    d->cur != (int32_t)(p - s->procs)) {
			/* the running process goes first: the rest of its slice or of its work,
			 * whichever ends first, plus a switch if it is preempted (a lower bound:
			 * never sleep past the moment the work could be done) */
			const struct fg_proc *q = &s->procs[d->cur];
			uint64_t left = d->run_start_ns + s->timeslice_ns > d->sim_ns ?
						d->run_start_ns + s->timeslice_ns - d->sim_ns : 0;
			uint64_t pend = q->enq_ns > q->done_ns ? q->enq_ns - q->done_ns : 0;

			est += pend < left ? pend : left + s->switch_ns;
		}
		if (est_ns)
			*est_ns = est;
	} else if (done_at) {
		*done_at = p ? fg_sched_work_time(s, phys, pid, work) : 0;
	}
	fg_unlock(s);
	return done;
}

int fg_ticket_done(uint64_t ticket)
{
	return ticket_state(ticket, NULL, NULL);
}

uint64_t fg_ticket_time(uint64_t ticket)
{
	uint64_t at = 0;

	return ticket_state(ticket, NULL, &at) ? at : 0;
}

CUresult fg_wait_until(uint64_t ticket)
{
	uint64_t start = fg_now_ns(), est = 0;
	struct timespec ts;

	while (!ticket_state(ticket, &est, NULL)) {
		uint64_t now = fg_now_ns();

		if (now - start > limit_ns())
			return CUDA_ERROR_LAUNCH_TIMEOUT;
		if (est < 20000)
			est = 20000; /* others may run first: poll no faster than every 20 us */
		ts.tv_sec = (time_t)(est / 1000000000ULL);
		ts.tv_nsec = (long)(est % 1000000000ULL);
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	return CUDA_SUCCESS;
}

CUresult fg_sync_ctx(struct fg_ctx *c)
{
	return fg_wait_until(__atomic_load_n(&c->all_end, __ATOMIC_ACQUIRE));
}

CUresult fg_sync_stream(CUstream s)
{
	struct fg_ctx *c = fg_current_ctx();
	struct fg_stream *x = fg_stream_get(s);

	if (x)
		c = x->ctx;
	return fg_wait_until(fg_stream_end(c, s));
}

/* Is s capturing? Then *g is its graph. Capturing the legacy stream is never allowed. */
CUresult fg_capture_check(CUstream s, struct fg_graph **g)
{
	struct fg_stream *x = fg_stream_get(s);

	*g = x ? x->capture : NULL;
	return CUDA_SUCCESS;
}

static CUresult stream_create(CUstream *ph, unsigned flags, int priority)
{
	struct fg_stream *s;
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!ph || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
		return CUDA_ERROR_INVALID_VALUE;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	s->tag = FG_TAG_STREAM;
	s->ctx = c;
	s->flags = flags;
	s->priority = priority < -5 ? -5 : (priority > 0 ? 0 : priority);
	pthread_mutex_lock(&streams_mu);
	s->id = next_stream_id++;
	s->next = streams;
	streams = s;
	pthread_mutex_unlock(&streams_mu);
	if (fg_handle_add(s, FG_TAG_STREAM)) {
		free(s);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*ph = (CUstream)s;
	return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream *phStream, unsigned int flags)
{
	return stream_create(phStream, flags, 0);
}

CUresult cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority)
{
	return stream_create(phStream, flags, priority);
}

CUresult cuStreamDestroy_v2(CUstream hStream)
{
	struct fg_stream *s = fg_stream_get(hStream);
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	fg_handle_del(s, FG_TAG_STREAM);
	pthread_mutex_lock(&streams_mu);
	for (struct fg_stream **pp = &streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&streams_mu);
	/* Work already queued still completes on the device; nothing to wait for here. */
	free(s);
	return CUDA_SUCCESS;
}

#define STREAM_ARG(h, x)                                         \
	struct fg_stream *x = fg_stream_get(h);                  \
	do {                                                     \
		CUresult r_ = fg_ready();                        \
		if (r_)                                          \
			return r_;                               \
		if (!x && fg_stream_bad(h))                      \
			return CUDA_ERROR_INVALID_HANDLE;        \
	} while (0)

CUresult cuStreamGetPriority(CUstream hStream, int *priority)
{
	STREAM_ARG(hStream, s);
	if (!priority)
		return CUDA_ERROR_INVALID_VALUE;
	*priority = s ? s->priority : 0;
	return CUDA_SUCCESS;
}

CUresult cuStreamGetFlags(CUstream hStream, unsigned int *flags)
{
	STREAM_ARG(hStream, s);
	if (!flags)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = s ? s->flags : 0;
	return CUDA_SUCCESS;
}

CUresult cuStreamGetId(CUstream hStream, unsigned long long *streamId)
{
	STREAM_ARG(hStream, s);
	if (!streamId)
		return CUDA_ERROR_INVALID_VALUE;
	*streamId = s ? s->id : (hStream == CU_STREAM_PER_THREAD ? 2 : 1);
	return CUDA_SUCCESS;
}

CUresult cuStreamGetCtx(CUstream hStream, CUcontext *pctx)
{
	struct fg_ctx *c = fg_current_ctx();

	STREAM_ARG(hStream, s);
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (s)
		c = s->ctx;
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	*pctx = (CUcontext)c;
	return CUDA_SUCCESS;
}

CUresult cuStreamGetCtx_v2(CUstream hStream, CUcontext *pCtx, CUgreenCtx *pGreenCtx)
{
	if (pGreenCtx)
		*pGreenCtx = NULL;
	return cuStreamGetCtx(hStream, pCtx);
}

CUresult cuStreamGetDevice(CUstream hStream, CUdevice *device)
{
	struct fg_ctx *c = fg_current_ctx();

	STREAM_ARG(hStream, s);
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	if (s)
		c = s->ctx;
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	*device = c->dev;
	return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream hStream)
{
	STREAM_ARG(hStream, s);
	if (s && s->capture)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	return fg_sync_stream(hStream);
}

CUresult cuStreamQuery(CUstream hStream)
{
	struct fg_ctx *c = fg_current_ctx();

	STREAM_ARG(hStream, s);
	if (s && s->capture)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (s)
		c = s->ctx;
	return fg_ticket_done(fg_stream_end(c, hStream)) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int flags)
{
	struct fg_event *e = (struct fg_event *)hEvent;

	STREAM_ARG(hStream, s);
	if (!fg_handle_is(e, FG_TAG_EVENT))
		return CUDA_ERROR_INVALID_HANDLE;
	if (flags & ~1u)
		return CUDA_ERROR_INVALID_VALUE;
	/* Waiting on an event recorded in a capture pulls this stream into that capture. */
	if (e->capture && s && !s->capture)
		s->capture = e->capture;
	/* One queue per process and device: the event's work precedes anything queued later. */
	return CUDA_SUCCESS;
}

struct host_call {
	CUstreamCallback cb;
	CUhostFn fn;
	CUstream stream;
	void *user;
	uint64_t at;
};

static void *host_call_thread(void *arg)
{
	struct host_call *h = arg;

	fg_wait_until(h->at);
	if (h->cb)
		h->cb(h->stream, CUDA_SUCCESS, h->user);
	else
		h->fn(h->user);
	free(h);
	return NULL;
}

/* Host functions run on a driver thread once the stream's earlier work is done. */
static CUresult host_call(CUstream hStream, CUstreamCallback cb, CUhostFn fn, void *user)
{
	struct host_call *h = calloc(1, sizeof(*h));
	struct fg_ctx *c = fg_current_ctx();
	struct fg_stream *s = fg_stream_get(hStream);
	pthread_attr_t a;
	pthread_t t;
	int err;

	if (!h)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (s)
		c = s->ctx;
	h->cb = cb;
	h->fn = fn;
	h->stream = hStream;
	h->user = user;
	h->at = fg_stream_end(c, hStream);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&t, &a, host_call_thread, h);
	pthread_attr_destroy(&a);
	if (err) {
		free(h);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return CUDA_SUCCESS;
}

CUresult cuStreamAddCallback(CUstream hStream, CUstreamCallback callback, void *userData,
			     unsigned int flags)
{
	STREAM_ARG(hStream, s);
	if (!callback || flags)
		return CUDA_ERROR_INVALID_VALUE;
	if (s && s->capture)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	return host_call(hStream, callback, NULL, userData);
}

CUresult cuLaunchHostFunc(CUstream hStream, CUhostFn fn, void *userData)
{
	STREAM_ARG(hStream, s);
	if (!fn)
		return CUDA_ERROR_INVALID_VALUE;
	if (s && s->capture)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	return host_call(hStream, NULL, fn, userData);
}

CUresult cuStreamAttachMemAsync(CUstream hStream, CUdeviceptr dptr, size_t length,
				unsigned int flags)
{
	(void)dptr;
	(void)length;
	(void)flags;
	STREAM_ARG(hStream, s);
	(void)s;
	return CUDA_SUCCESS;
}

CUresult cuStreamGetAttribute(CUstream hStream, CUstreamAttrID attr, CUstreamAttrValue *value)
{
	(void)attr;
	STREAM_ARG(hStream, s);
	(void)s;
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	memset(value, 0, sizeof(*value));
	return CUDA_SUCCESS;
}

CUresult cuStreamSetAttribute(CUstream hStream, CUstreamAttrID attr,
			      const CUstreamAttrValue *value)
{
	(void)attr;
	STREAM_ARG(hStream, s);
	(void)s;
	return value ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuStreamCopyAttributes(CUstream dst, CUstream src)
{
	STREAM_ARG(dst, d);
	(void)d;
	return fg_stream_bad(src) ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
}

CUresult cuStreamWriteValue32_v2(CUstream stream, CUdeviceptr addr, cuuint32_t value,
				 unsigned int flags)
{
	(void)flags;
	STREAM_ARG(stream, s);
	(void)s;
	if (fg_ptr_lookup((uintptr_t)addr, NULL, NULL, NULL, NULL, NULL))
		return CUDA_ERROR_INVALID_VALUE;
	__atomic_store_n((uint32_t *)(uintptr_t)addr, value, __ATOMIC_SEQ_CST);
	return CUDA_SUCCESS;
}

CUresult cuStreamWriteValue64_v2(CUstream stream, CUdeviceptr addr, cuuint64_t value,
				 unsigned int flags)
{
	(void)flags;
	STREAM_ARG(stream, s);
	(void)s;
	if (fg_ptr_lookup((uintptr_t)addr, NULL, NULL, NULL, NULL, NULL))
		return CUDA_ERROR_INVALID_VALUE;
	__atomic_store_n((uint64_t *)(uintptr_t)addr, value, __ATOMIC_SEQ_CST);
	return CUDA_SUCCESS;
}

CUresult cuStreamWriteValue32(CUstream s, CUdeviceptr addr, cuuint32_t value, unsigned int flags)
{
	return cuStreamWriteValue32_v2(s, addr, value, flags);
}

CUresult cuStreamWriteValue64(CUstream s, CUdeviceptr addr, cuuint64_t value, unsigned int flags)
{
	return cuStreamWriteValue64_v2(s, addr, value, flags);
}

CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
	static __thread CUstreamCaptureMode current = CU_STREAM_CAPTURE_MODE_GLOBAL;
	CUstreamCaptureMode old = current;

	if (!mode)
		return CUDA_ERROR_INVALID_VALUE;
	current = *mode;
	*mode = old;
	return CUDA_SUCCESS;
}

static CUresult begin_capture(CUstream hStream, struct fg_graph *g)
{
	STREAM_ARG(hStream, s);
	if (!s)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; /* the legacy stream cannot capture */
	if (s->capture)
		return CUDA_ERROR_ILLEGAL_STATE;
	if (!g)
		g = fg_graph_new();
	if (!g)
		return CUDA_ERROR_OUT_OF_MEMORY;
	s->capture = g;
	s->capture_origin = 1;
	return CUDA_SUCCESS;
}

CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode)
{
	if ((unsigned)mode > CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_ERROR_INVALID_VALUE;
	return begin_capture(hStream, NULL);
}

/* CUDA 10.0's form took no mode; it captured in global mode. */
CUresult fg_stream_begin_capture_v1(CUstream hStream)
{
	return begin_capture(hStream, NULL);
}

CUresult cuStreamBeginCapture(CUstream hStream, CUstreamCaptureMode mode)
{
	return cuStreamBeginCapture_v2(hStream, mode);
}

CUresult cuStreamBeginCaptureToGraph(CUstream hStream, CUgraph hGraph,
				     const CUgraphNode *dependencies,
				     const CUgraphEdgeData *dependencyData, size_t numDependencies,
				     CUstreamCaptureMode mode)
{
	(void)dependencies;
	(void)dependencyData;
	(void)numDependencies;
	if ((unsigned)mode > CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_graph_valid((struct fg_graph *)hGraph))
		return CUDA_ERROR_INVALID_VALUE;
	return begin_capture(hStream, (struct fg_graph *)hGraph);
}

CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph)
{
	struct fg_graph *g;

	STREAM_ARG(hStream, s);
	if (!phGraph)
		return CUDA_ERROR_INVALID_VALUE;
	if (!s || !s->capture)
		return CUDA_ERROR_ILLEGAL_STATE;
	if (!s->capture_origin)
		return CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
	g = s->capture;
	pthread_mutex_lock(&streams_mu);
	for (struct fg_stream *x = streams; x; x = x->next) {
		if (x->capture == g) {
			x->capture = NULL;
			x->capture_origin = 0;
		}
	}
	pthread_mutex_unlock(&streams_mu);
	*phGraph = (CUgraph)g;
	return CUDA_SUCCESS;
}

CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
	STREAM_ARG(hStream, s);
	if (!captureStatus)
		return CUDA_ERROR_INVALID_VALUE;
	*captureStatus = s && s->capture ? CU_STREAM_CAPTURE_STATUS_ACTIVE :
					   CU_STREAM_CAPTURE_STATUS_NONE;
	return CUDA_SUCCESS;
}

static __thread CUgraphNode capture_deps[1];

CUresult cuStreamGetCaptureInfo_v3(CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
				   cuuint64_t *id_out, CUgraph *graph_out,
				   const CUgraphNode **dependencies_out,
				   const CUgraphEdgeData **edgeData_out, size_t *numDependencies_out)
{
	STREAM_ARG(hStream, s);
	if (!captureStatus_out)
		return CUDA_ERROR_INVALID_VALUE;
	*captureStatus_out = s && s->capture ? CU_STREAM_CAPTURE_STATUS_ACTIVE :
					       CU_STREAM_CAPTURE_STATUS_NONE;
	if (id_out)
		*id_out = s && s->capture ? fg_graph_id(s->capture) : 0;
	if (graph_out)
		*graph_out = s ? (CUgraph)s->capture : NULL;
	if (edgeData_out)
		*edgeData_out = NULL;
	if (dependencies_out || numDependencies_out) {
		size_t n = s && s->capture ? fg_graph_tail(s->capture, capture_deps, 1) : 0;

		if (dependencies_out)
			*dependencies_out = n ? capture_deps : NULL;
		if (numDependencies_out)
			*numDependencies_out = n;
	}
	return CUDA_SUCCESS;
}

CUresult cuStreamGetCaptureInfo_v2(CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
				   cuuint64_t *id_out, CUgraph *graph_out,
				   const CUgraphNode **dependencies_out, size_t *numDependencies_out)
{
	return cuStreamGetCaptureInfo_v3(hStream, captureStatus_out, id_out, graph_out,
					 dependencies_out, NULL, numDependencies_out);
}

CUresult cuStreamGetCaptureInfo(CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
				cuuint64_t *id_out)
{
	return cuStreamGetCaptureInfo_v3(hStream, captureStatus_out, id_out, NULL, NULL, NULL, NULL);
}

CUresult cuStreamUpdateCaptureDependencies_v2(CUstream hStream, CUgraphNode *dependencies,
					      const CUgraphEdgeData *dependencyData,
					      size_t numDependencies, unsigned int flags)
{
	(void)dependencies;
	(void)dependencyData;
	(void)numDependencies;
	(void)flags;
	STREAM_ARG(hStream, s);
	return s && s->capture ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_STATE;
}

CUresult cuStreamUpdateCaptureDependencies(CUstream hStream, CUgraphNode *dependencies,
					   size_t numDependencies, unsigned int flags)
{
	return cuStreamUpdateCaptureDependencies_v2(hStream, dependencies, NULL, numDependencies,
						    flags);
}
