/*
 * fakegpu libamdhip64: graphs, minimal. A stream in capture mode records the simulated
 * durations of the kernels launched on it (copies and memsets on it happen at once, as they
 * take no device time); an instantiated graph queues those kernels again at every launch, one
 * launch each, on the launching stream's device.
 */
#include "hip_internal.h"

#include <stdlib.h>
#include <string.h>

struct fg_hip_graph {
	uint32_t tag;            /* FG_HIP_TAG_GRAPH or FG_HIP_TAG_EXEC */
	size_t n, cap;
	uint64_t *dur;
};

int fg_hip_capture_add(struct fg_hip_graph *g, uint64_t dur)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		uint64_t *d = realloc(g->dur, cap * sizeof(*d));

		if (!d)
			return -1;
		g->dur = d;
		g->cap = cap;
	}
	g->dur[g->n++] = dur;
	return 0;
}

static struct fg_hip_graph *graph_new(uint32_t tag)
{
	struct fg_hip_graph *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->tag = tag;
	if (fg_hip_handle_add(g, tag)) {
		free(g);
		return NULL;
	}
	return g;
}

static hipError_t graph_free(struct fg_hip_graph *g, uint32_t tag)
{
	if (fg_hip_handle_del(g, tag))
		return hipErrorInvalidValue;
	g->tag = FG_HIP_TAG_DEAD;
	free(g->dur);
	free(g);
	return hipSuccess;
}

hipError_t hipGraphCreate(hipGraph_t *pGraph, unsigned int flags)
{
	struct fg_hip_graph *g;

	if (!pGraph || flags)
		return fg_hip_err(hipErrorInvalidValue);
	g = graph_new(FG_HIP_TAG_GRAPH);
	if (!g)
		return fg_hip_err(hipErrorOutOfMemory);
	*pGraph = (hipGraph_t)g;
	return hipSuccess;
}

hipError_t hipGraphDestroy(hipGraph_t graph)
{
	return fg_hip_err(graph_free((struct fg_hip_graph *)graph, FG_HIP_TAG_GRAPH));
}

hipError_t hipStreamBeginCapture(hipStream_t stream, hipStreamCaptureMode mode)
{
	struct fg_hip_stream *x;
	int dev;

	(void)mode;
	if (fg_hip_stream(stream, &x, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	if (!x)
		return fg_hip_err(hipErrorStreamCaptureUnsupported); /* not the null stream */
	if (x->capture)
		return fg_hip_err(hipErrorIllegalState);
	x->capture = graph_new(FG_HIP_TAG_GRAPH);
	return fg_hip_err(x->capture ? hipSuccess : hipErrorOutOfMemory);
}

hipError_t hipStreamEndCapture(hipStream_t stream, hipGraph_t *pGraph)
{
	struct fg_hip_stream *x;
	int dev;

	if (!pGraph)
		return fg_hip_err(hipErrorInvalidValue);
	if (fg_hip_stream(stream, &x, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	if (!x || !x->capture)
		return fg_hip_err(hipErrorIllegalState);
	*pGraph = (hipGraph_t)x->capture;
	x->capture = NULL;
	return hipSuccess;
}

hipError_t hipStreamIsCapturing(hipStream_t stream, hipStreamCaptureStatus *status)
{
	struct fg_hip_stream *x;
	int dev;

	if (!status)
		return fg_hip_err(hipErrorInvalidValue);
	if (fg_hip_stream(stream, &x, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	*status = x && x->capture ? hipStreamCaptureStatusActive : hipStreamCaptureStatusNone;
	return hipSuccess;
}

static hipError_t instantiate(hipGraphExec_t *out, hipGraph_t graph)
{
	struct fg_hip_graph *g = (struct fg_hip_graph *)graph, *e;

	if (!out || !fg_hip_handle_is(g, FG_HIP_TAG_GRAPH))
		return hipErrorInvalidValue;
	e = graph_new(FG_HIP_TAG_EXEC);
	if (!e)
		return hipErrorOutOfMemory;
	if (g->n) {
		e->dur = malloc(g->n * sizeof(*e->dur));
		if (!e->dur) {
			graph_free(e, FG_HIP_TAG_EXEC);
			return hipErrorOutOfMemory;
		}
		memcpy(e->dur, g->dur, g->n * sizeof(*e->dur));
		e->n = e->cap = g->n;
	}
	*out = (hipGraphExec_t)e;
	return hipSuccess;
}

hipError_t hipGraphInstantiate(hipGraphExec_t *pGraphExec, hipGraph_t graph,
			       hipGraphNode_t *pErrorNode, char *pLogBuffer, size_t bufferSize)
{
	(void)pErrorNode;
	if (pLogBuffer && bufferSize)
		pLogBuffer[0] = '\0';
	return fg_hip_err(instantiate(pGraphExec, graph));
}

hipError_t hipGraphInstantiateWithFlags(hipGraphExec_t *pGraphExec, hipGraph_t graph,
					unsigned long long flags)
{
	(void)flags;
	return fg_hip_err(instantiate(pGraphExec, graph));
}

hipError_t hipGraphExecDestroy(hipGraphExec_t graphExec)
{
	return fg_hip_err(graph_free((struct fg_hip_graph *)graphExec, FG_HIP_TAG_EXEC));
}

hipError_t hipGraphLaunch(hipGraphExec_t graphExec, hipStream_t stream)
{
	struct fg_hip_graph *e = (struct fg_hip_graph *)graphExec;
	struct fg_hip_stream *x;
	int dev;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!fg_hip_handle_is(e, FG_HIP_TAG_EXEC))
		return fg_hip_err(hipErrorInvalidValue);
	if (fg_hip_stream(stream, &x, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	r = fg_hip_device_ready(dev);
	for (size_t i = 0; !r && i < e->n; i++) {
		if (x && x->capture)
			r = fg_hip_capture_add(x->capture, e->dur[i]) ? hipErrorOutOfMemory : hipSuccess;
		else
			r = fg_hip_queue(dev, e->dur[i], stream, NULL);
	}
	return fg_hip_err(r);
}

static __thread hipStreamCaptureMode capture_mode = hipStreamCaptureModeGlobal;

hipError_t hipThreadExchangeStreamCaptureMode(hipStreamCaptureMode *mode)
{
	hipStreamCaptureMode old;

	if (!mode || (unsigned)*mode > hipStreamCaptureModeRelaxed)
		return fg_hip_err(hipErrorInvalidValue);
	old = capture_mode;
	capture_mode = *mode;
	*mode = old;
	return hipSuccess;
}
