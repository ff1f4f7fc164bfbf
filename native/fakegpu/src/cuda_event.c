/* fakegpu libcuda: events. An event records the simulated time its stream's work ends. */
#include "cuda_internal.h"

#include <stdlib.h>


#define EVENT_FLAGS (CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS)

static struct fg_event *event_get(CUevent h)
{
	return fg_handle_is(h, FG_TAG_EVENT) ? (struct fg_event *)h : NULL;
}

CUresult cuEventCreate(CUevent *phEvent, unsigned int flags)
{
	struct fg_event *e;
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!phEvent || (flags & ~(unsigned)EVENT_FLAGS) ||
	    ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING)))
		return CUDA_ERROR_INVALID_VALUE;
	e = calloc(1, sizeof(*e));
	if (!e)
		return CUDA_ERROR_OUT_OF_MEMORY;
	e->tag = FG_TAG_EVENT;
	e->flags = flags;
	if (fg_handle_add(e, FG_TAG_EVENT)) {
		free(e);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*phEvent = (CUevent)e;
	return CUDA_SUCCESS;
}

CUresult cuEventDestroy_v2(CUevent hEvent)
{
	struct fg_event *e = event_get(hEvent);
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	fg_handle_del(e, FG_TAG_EVENT);
	free(e);
	return CUDA_SUCCESS;
}

CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream, unsigned int flags)
{
	struct fg_event *e = event_get(hEvent);
	struct fg_stream *s = fg_stream_get(hStream);
	struct fg_ctx *c = fg_current_ctx();
	CUresult r = fg_ready();
	uint64_t t, now;

	if (r)
		return r;
	if (!e || fg_stream_bad(hStream))
		return CUDA_ERROR_INVALID_HANDLE;
	if (flags & ~(unsigned)CU_EVENT_RECORD_EXTERNAL)
		return CUDA_ERROR_INVALID_VALUE;
	if (s)
		c = s->ctx;
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (s && s->capture) { /* becomes a join point for streams that wait on it */
		e->capture = s->capture;
		return CUDA_SUCCESS;
	}
	t = fg_stream_end(c, hStream);
	now = fg_now_ns();
	e->t = t;
	e->rec_ns = now;
	e->capture = NULL;
	e->recorded = 1;
	return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
{
	return cuEventRecordWithFlags(hEvent, hStream, 0);
}

CUresult cuEventQuery(CUevent hEvent)
{
	struct fg_event *e = event_get(hEvent);
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	return !e->recorded || fg_ticket_done(e->t) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

CUresult cuEventSynchronize(CUevent hEvent)
{
	struct fg_event *e = event_get(hEvent);
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	return e->recorded ? fg_wait_until(e->t) : CUDA_SUCCESS;
}

CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
	struct fg_event *a = event_get(hStart), *b = event_get(hEnd);
	uint64_t ta, tb;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pMilliseconds)
		return CUDA_ERROR_INVALID_VALUE;
	if (!a || !b || !a->recorded || !b->recorded ||
	    ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!fg_ticket_done(a->t) || !fg_ticket_done(b->t))
		return CUDA_ERROR_NOT_READY;
	/* an event completes when its work does, and not before it was recorded */
	ta = fg_ticket_time(a->t);
	tb = fg_ticket_time(b->t);
	ta = ta > a->rec_ns ? ta : a->rec_ns;
	tb = tb > b->rec_ns ? tb : b->rec_ns;
	*pMilliseconds = (float)((double)((int64_t)tb - (int64_t)ta) / 1e6);
	return CUDA_SUCCESS;
}

CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
	return cuEventElapsedTime_v2(pMilliseconds, hStart, hEnd);
}
