/*
 * fakegpu libamdhip64: waiting for simulated work, streams, events, synchronization.
 *
 * The device runs one queue per process (fg_sched.c, shared with the CUDA fake), so the
 * streams of a process are ordered by their tickets: a stream remembers the ticket of its
 * latest work, the device the newest of the process. Waiting takes the state lock, advances
 * the device to "now" and sleeps no longer than the work could still need; every wait is
 * bounded by FAKEGPU_WAIT_LIMIT_S (default 600 s; past it: hipErrorLaunchTimeOut).
 */
#include "hip_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t dev_last[FG_MAX_DEVICES];  /* newest ticket of this process per device */
static uint64_t null_last[FG_MAX_DEVICES]; /* the null stream's */

static void max_store(uint64_t *p, uint64_t v)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_ACQUIRE);

	while (v > cur && !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_ACQ_REL,
						       __ATOMIC_ACQUIRE))
		;
}

static uint64_t limit_ns(void)
{
	static uint64_t lim;

	if (!lim) {
		const char *v = getenv("FAKEGPU_WAIT_LIMIT_S");
		unsigned long long s = v && *v ? strtoull(v, NULL, 10) : 0;

		lim = (s ? s : 600) * 1000000000ULL;
	}
	return lim;
}

/* 1 when the ticket's work is done; else 0 and *left = work still queued ahead of it. */
static int probe(uint64_t ticket, uint64_t *left)
{
	struct fg_state *s = fg_hip_state();
	uint32_t phys = (uint32_t)(ticket >> 56) - 1;
	uint64_t work = ticket & FG_HIP_WORK_MASK;
	int pid = getpid(), done = 1;

	if (!ticket || !s || phys >= FG_MAX_DEVICES || phys >= s->device_count)
		return 1;
	if (fg_lock(s))
		return 1;
	fg_sched_advance(s, phys, fg_now_ns());
	for (uint32_t i = 0; i < FG_MAX_PROCS; i++) {
		const struct fg_proc *p = &s->procs[i];

		if (p->pid == pid && p->device == phys) {
			if (work > p->done_ns && work <= p->enq_ns) {
				done = 0;
				*left = work - p->done_ns;
			}
			break;
		}
	}
	fg_unlock(s);
	return done;
}

int fg_hip_done(uint64_t ticket)
{
	uint64_t left;

	return probe(ticket, &left);
}

hipError_t fg_hip_wait(uint64_t ticket)
{
	uint64_t start = fg_now_ns(), left = 0;

	while (!probe(ticket, &left)) {
		uint64_t waited = fg_now_ns() - start;
		struct timespec ts;

		if (waited > limit_ns()) {
			fg_msg("a wait for simulated work passed FAKEGPU_WAIT_LIMIT_S; giving up");
			return hipErrorLaunchTimeOut;
		}
		if (left < 20000)
			left = 20000; /* others may run first: poll no faster than every 20 us */
		if (left > limit_ns() - waited + 1000000)
			left = limit_ns() - waited + 1000000; /* wake up to give up in time */
		ts.tv_sec = (time_t)(left / 1000000000ULL);
		ts.tv_nsec = (long)(left % 1000000000ULL);
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	return hipSuccess;
}

uint64_t fg_hip_done_time(uint64_t ticket)
{
	struct fg_state *s = fg_hip_state();
	uint32_t phys = (uint32_t)(ticket >> 56) - 1;
	uint64_t t;

	if (!ticket || !s || phys >= FG_MAX_DEVICES || phys >= s->device_count)
		return 0;
	if (fg_lock(s))
		return 0;
	t = fg_sched_work_time(s, phys, getpid(), ticket & FG_HIP_WORK_MASK);
	fg_unlock(s);
	return t;
}

uint64_t fg_hip_dev_last(int dev)
{
	if (dev < 0 || dev >= fg_hip_count())
		return 0;
	return __atomic_load_n(&dev_last[dev], __ATOMIC_ACQUIRE);
}

/* ---- streams ---- */

static int special(hipStream_t s)
{
	return !s || s == hipStreamPerThread;
}

hipError_t fg_hip_stream(hipStream_t s, struct fg_hip_stream **out, int *dev)
{
	struct fg_hip_stream *x = (struct fg_hip_stream *)s;

	if (out)
		*out = NULL;
	if (special(s)) {
		*dev = fg_hip_current();
		return hipSuccess;
	}
	if (!fg_hip_handle_is(x, FG_HIP_TAG_STREAM))
		return hipErrorInvalidHandle;
	if (out)
		*out = x;
	*dev = x->dev;
	return hipSuccess;
}

uint64_t fg_hip_stream_last(hipStream_t s)
{
	struct fg_hip_stream *x;
	int dev;

	if (fg_hip_stream(s, &x, &dev))
		return 0;
	if (x)
		return __atomic_load_n(&x->last, __ATOMIC_ACQUIRE);
	/* the null stream waits for all blocking work of the device */
	return fg_hip_dev_last(dev);
}

void fg_hip_stream_note(hipStream_t s, int dev, uint64_t ticket)
{
	struct fg_hip_stream *x;
	int d;

	if (!fg_hip_stream(s, &x, &d) && x)
		max_store(&x->last, ticket);
	else if (dev >= 0 && dev < (int)FG_MAX_DEVICES)
		max_store(&null_last[dev], ticket);
	if (dev >= 0 && dev < (int)FG_MAX_DEVICES)
		max_store(&dev_last[dev], ticket);
}

static hipError_t stream_new(hipStream_t *out, unsigned flags, int priority)
{
	struct fg_hip_stream *x;
	int dev = fg_hip_current();
	hipError_t r = fg_hip_device_ready(dev);

	if (r)
		return fg_hip_err(r);
	if (!out || (flags & ~(unsigned)hipStreamNonBlocking))
		return fg_hip_err(hipErrorInvalidValue);
	x = calloc(1, sizeof(*x));
	if (!x)
		return fg_hip_err(hipErrorOutOfMemory);
	x->tag = FG_HIP_TAG_STREAM;
	x->dev = dev;
	x->flags = flags;
	x->priority = priority < -1 ? -1 : (priority > 0 ? 0 : priority);
	if (fg_hip_handle_add(x, FG_HIP_TAG_STREAM)) {
		free(x);
		return fg_hip_err(hipErrorOutOfMemory);
	}
	*out = (hipStream_t)x;
	return hipSuccess;
}

hipError_t hipStreamCreate(hipStream_t *stream)
{
	return stream_new(stream, 0, 0);
}

hipError_t hipStreamCreateWithFlags(hipStream_t *stream, unsigned int flags)
{
	return stream_new(stream, flags, 0);
}

hipError_t hipStreamCreateWithPriority(hipStream_t *stream, unsigned int flags, int priority)
{
	return stream_new(stream, flags, priority);
}

hipError_t hipExtStreamCreateWithCUMask(hipStream_t *stream, uint32_t cuMaskSize,
					const uint32_t *cuMask)
{
	if (!cuMaskSize || !cuMask)
		return fg_hip_err(hipErrorInvalidValue);
	return stream_new(stream, 0, 0); /* CU masks are not simulated: the whole device */
}

hipError_t hipStreamDestroy(hipStream_t stream)
{
	struct fg_hip_stream *x = (struct fg_hip_stream *)stream;

	if (special(stream) || fg_hip_handle_del(x, FG_HIP_TAG_STREAM))
		return fg_hip_err(hipErrorInvalidHandle);
	x->tag = FG_HIP_TAG_DEAD;
	free(x); /* its queued work still runs: the device's queue holds it */
	return hipSuccess;
}

hipError_t hipStreamSynchronize(hipStream_t stream)
{
	int dev;
	hipError_t r = fg_hip_init();

	if (!r)
		r = fg_hip_stream(stream, NULL, &dev);
	if (r)
		return fg_hip_err(r);
	return fg_hip_err(fg_hip_wait(fg_hip_stream_last(stream)));
}

hipError_t hipStreamQuery(hipStream_t stream)
{
	int dev;
	hipError_t r = fg_hip_init();

	if (!r)
		r = fg_hip_stream(stream, NULL, &dev);
	if (r)
		return fg_hip_err(r);
	return fg_hip_done(fg_hip_stream_last(stream)) ? hipSuccess : hipErrorNotReady;
}

hipError_t hipStreamGetFlags(hipStream_t stream, unsigned int *flags)
{
	struct fg_hip_stream *x;
	int dev;

	if (!flags || fg_hip_stream(stream, &x, &dev))
		return fg_hip_err(flags ? hipErrorInvalidHandle : hipErrorInvalidValue);
	*flags = x ? x->flags : 0;
	return hipSuccess;
}

hipError_t hipStreamGetPriority(hipStream_t stream, int *priority)
{
	struct fg_hip_stream *x;
	int dev;

	if (!priority || fg_hip_stream(stream, &x, &dev))
		return fg_hip_err(priority ? hipErrorInvalidHandle : hipErrorInvalidValue);
	*priority = x ? x->priority : 0;
	return hipSuccess;
}

hipError_t hipStreamWaitEvent(hipStream_t stream, hipEvent_t event, unsigned int flags)
{
	int dev;

	(void)flags;
	if (fg_hip_stream(stream, NULL, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	if (!fg_hip_handle_is(event, FG_HIP_TAG_EVENT))
		return fg_hip_err(hipErrorInvalidHandle);
	return hipSuccess; /* one queue per process and device: already in order */
}

hipError_t hipStreamAddCallback(hipStream_t stream, hipStreamCallback_t callback,
				void *userData, unsigned int flags)
{
	hipError_t r;

	if (!callback || flags)
		return fg_hip_err(hipErrorInvalidValue);
	r = hipStreamSynchronize(stream); /* run it when the stream's work is done */
	callback(stream, r, userData);
	return hipSuccess;
}

hipError_t hipDeviceSynchronize(void)
{
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	return fg_hip_err(fg_hip_wait(fg_hip_dev_last(fg_hip_current())));
}

/* ---- events ---- */

struct fg_hip_event {
	uint32_t tag;
	unsigned flags;
	int recorded;
	uint64_t ticket;
	uint64_t rec_ns;
};

static hipError_t event_new(hipEvent_t *out, unsigned flags)
{
	struct fg_hip_event *e;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!out)
		return fg_hip_err(hipErrorInvalidValue);
	e = calloc(1, sizeof(*e));
	if (!e)
		return fg_hip_err(hipErrorOutOfMemory);
	e->tag = FG_HIP_TAG_EVENT;
	e->flags = flags;
	if (fg_hip_handle_add(e, FG_HIP_TAG_EVENT)) {
		free(e);
		return fg_hip_err(hipErrorOutOfMemory);
	}
	*out = (hipEvent_t)e;
	return hipSuccess;
}

hipError_t hipEventCreate(hipEvent_t *event)
{
	return event_new(event, 0);
}

hipError_t hipEventCreateWithFlags(hipEvent_t *event, unsigned flags)
{
	return event_new(event, flags);
}

hipError_t hipEventDestroy(hipEvent_t event)
{
	struct fg_hip_event *e = (struct fg_hip_event *)event;

	if (fg_hip_handle_del(e, FG_HIP_TAG_EVENT))
		return fg_hip_err(hipErrorInvalidHandle);
	e->tag = FG_HIP_TAG_DEAD;
	free(e);
	return hipSuccess;
}

hipError_t hipEventRecord(hipEvent_t event, hipStream_t stream)
{
	struct fg_hip_event *e = (struct fg_hip_event *)event;
	int dev;

	if (!fg_hip_handle_is(e, FG_HIP_TAG_EVENT) || fg_hip_stream(stream, NULL, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	e->ticket = fg_hip_stream_last(stream);
	e->rec_ns = fg_now_ns();
	e->recorded = 1;
	return hipSuccess;
}

hipError_t hipEventSynchronize(hipEvent_t event)
{
	struct fg_hip_event *e = (struct fg_hip_event *)event;

	if (!fg_hip_handle_is(e, FG_HIP_TAG_EVENT))
		return fg_hip_err(hipErrorInvalidHandle);
	return fg_hip_err(e->recorded ? fg_hip_wait(e->ticket) : hipSuccess);
}

hipError_t hipEventQuery(hipEvent_t event)
{
	struct fg_hip_event *e = (struct fg_hip_event *)event;

	if (!fg_hip_handle_is(e, FG_HIP_TAG_EVENT))
		return fg_hip_err(hipErrorInvalidHandle);
	return !e->recorded || fg_hip_done(e->ticket) ? hipSuccess : hipErrorNotReady;
}

/* When the event's work completed: its ticket's simulated end, or when it was recorded if
 * that work was already done then. */
static uint64_t event_time(const struct fg_hip_event *e)
{
	uint64_t t = e->ticket ? fg_hip_done_time(e->ticket) : 0;

	return t > e->rec_ns ? t : e->rec_ns;
}

hipError_t hipEventElapsedTime(float *ms, hipEvent_t start, hipEvent_t stop)
{
	struct fg_hip_event *a = (struct fg_hip_event *)start, *b = (struct fg_hip_event *)stop;
	uint64_t ta, tb;

	if (!ms)
		return fg_hip_err(hipErrorInvalidValue);
	if (!fg_hip_handle_is(a, FG_HIP_TAG_EVENT) || !fg_hip_handle_is(b, FG_HIP_TAG_EVENT))
		return fg_hip_err(hipErrorInvalidHandle);
	if ((a->flags | b->flags) & hipEventDisableTiming)
		return fg_hip_err(hipErrorInvalidHandle);
	if (!a->recorded || !b->recorded)
		return fg_hip_err(hipErrorInvalidHandle);
	if (!fg_hip_done(a->ticket) || !fg_hip_done(b->ticket))
		return fg_hip_err(hipErrorNotReady);
	ta = event_time(a);
	tb = event_time(b);
	*ms = (float)((double)((int64_t)(tb - ta)) / 1e6);
	return hipSuccess;
}

/* ---- stream memory operations: done when the stream's earlier work is ---- */

hipError_t hipStreamWriteValue32(hipStream_t stream, void *ptr, uint32_t value, unsigned int flags)
{
	hipError_t r;

	(void)flags;
	if (!ptr)
		return fg_hip_err(hipErrorInvalidValue);
	r = hipStreamSynchronize(stream);
	if (!r)
		__atomic_store_n((uint32_t *)ptr, value, __ATOMIC_RELEASE);
	return r;
}

hipError_t hipStreamWriteValue64(hipStream_t stream, void *ptr, uint64_t value, unsigned int flags)
{
	hipError_t r;

	(void)flags;
	if (!ptr)
		return fg_hip_err(hipErrorInvalidValue);
	r = hipStreamSynchronize(stream);
	if (!r)
		__atomic_store_n((uint64_t *)ptr, value, __ATOMIC_RELEASE);
	return r;
}
