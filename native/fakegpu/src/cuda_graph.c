/*
 * fakegpu libcuda: CUDA graphs, built node by node or captured from streams.
 *
 * A kernel node keeps the simulated duration computed when it was added (its parameters
 * are read then, like the real driver copies them). cuGraphLaunch runs the nodes in a
 * topological order on the launch stream: kernels queue on the device timeline, copies
 * and memsets move data, host nodes run once the stream's earlier work is done.
 */
#include "cuda_graph_internal.h"

#include <stdlib.h>
#include <string.h>

CUresult fg_copy3d(const CUDA_MEMCPY3D *p, CUstream s, int sync);


static unsigned long long next_graph_id = 1;
static pthread_mutex_t graph_mu = PTHREAD_MUTEX_INITIALIZER;

int fg_graph_valid(const struct fg_graph *g)
{
	return fg_handle_is(g, FG_TAG_GRAPH);
}

struct fg_node *fg_node_get(CUgraphNode h)
{
	return fg_handle_is(h, FG_TAG_NODE) ? (struct fg_node *)h : NULL;
}

struct fg_exec *fg_exec_get(CUgraphExec h)
{
	return fg_handle_is(h, FG_TAG_EXEC) ? (struct fg_exec *)h : NULL;
}

struct fg_graph *fg_graph_new(void)
{
	struct fg_graph *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->tag = FG_TAG_GRAPH;
	pthread_mutex_lock(&graph_mu);
	g->id = next_graph_id++;
	pthread_mutex_unlock(&graph_mu);
	if (fg_handle_add(g, FG_TAG_GRAPH)) {
		free(g);
		return NULL;
	}
	return g;
}

unsigned long long fg_graph_id(const struct fg_graph *g)
{
	return g->id;
}

size_t fg_graph_tail(struct fg_graph *g, CUgraphNode *out, size_t max)
{
	if (!g->n || !max)
		return 0;
	out[0] = (CUgraphNode)g->nodes[g->n - 1];
	return 1;
}

int fg_graph_add_edge(struct fg_graph *g, struct fg_node *from, struct fg_node *to)
{
	if (g->ne == g->ecap) {
		size_t cap = g->ecap ? g->ecap * 2 : 16;
		struct edge *e = realloc(g->edges, cap * sizeof(*e));

		if (!e)
			return -1;
		g->edges = e;
		g->ecap = cap;
	}
	g->edges[g->ne].from = from;
	g->edges[g->ne].to = to;
	g->ne++;
	return 0;
}

/* Add a node of type t after deps; returns it (NULL: out of memory). */
static struct fg_node *add_node(struct fg_graph *g, CUgraphNodeType t, struct fg_node **deps,
				size_t ndeps)
{
	struct fg_node *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		struct fg_node **n = realloc(g->nodes, cap * sizeof(*n));

		if (!n) {
			free(x);
			return NULL;
		}
		g->nodes = n;
		g->cap = cap;
	}
	x->tag = FG_TAG_NODE;
	x->type = t;
	x->graph = g;
	if (fg_handle_add(x, FG_TAG_NODE)) {
		free(x);
		return NULL;
	}
	for (size_t i = 0; i < ndeps; i++)
		if (fg_graph_add_edge(g, deps[i], x))
			return NULL;
	g->nodes[g->n++] = x;
	return x;
}

/* Check a dependency list: every entry a node of graph g. */
CUresult fg_graph_check_deps(struct fg_graph *g, const CUgraphNode *deps, size_t n)
{
	if (n && !deps)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < n; i++) {
		struct fg_node *d = fg_node_get(deps[i]);

		if (!d || d->graph != g)
			return CUDA_ERROR_INVALID_VALUE;
	}
	return CUDA_SUCCESS;
}

static struct fg_node *capture_add(struct fg_graph *g, CUgraphNodeType t)
{
	struct fg_node *tail = g->n ? g->nodes[g->n - 1] : NULL;

	return add_node(g, t, tail ? &tail : NULL, tail ? 1 : 0);
}

int fg_capture_kernel(struct fg_graph *g, struct fg_ctx *c, uint64_t dur)
{
	struct fg_node *x = capture_add(g, CU_GRAPH_NODE_TYPE_KERNEL);

	if (!x)
		return -1;
	x->dur = dur;
	x->ctx = c;
	return 0;
}

int fg_capture_memcpy(struct fg_graph *g, void *dst, const void *src, size_t n)
{
	struct fg_node *x = capture_add(g, CU_GRAPH_NODE_TYPE_MEMCPY);

	if (!x)
		return -1;
	x->copy.srcMemoryType = CU_MEMORYTYPE_UNIFIED;
	x->copy.srcDevice = (CUdeviceptr)src;
	x->copy.dstMemoryType = CU_MEMORYTYPE_UNIFIED;
	x->copy.dstDevice = (CUdeviceptr)dst;
	x->copy.WidthInBytes = n;
	x->copy.Height = 1;
	x->copy.Depth = 1;
	return 0;
}

int fg_capture_memset(struct fg_graph *g, void *dst, unsigned val, unsigned elt, size_t w,
		      size_t h, size_t pitch)
{
	struct fg_node *x = capture_add(g, CU_GRAPH_NODE_TYPE_MEMSET);

	if (!x)
		return -1;
	x->set.dst = (CUdeviceptr)dst;
	x->set.value = val;
	x->set.elementSize = elt;
	x->set.width = w;
	x->set.height = h;
	x->set.pitch = pitch;
	return 0;
}

CUresult cuGraphCreate(CUgraph *phGraph, unsigned int flags)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!phGraph || flags)
		return CUDA_ERROR_INVALID_VALUE;
	*phGraph = (CUgraph)fg_graph_new();
	return *phGraph ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static void graph_free(struct fg_graph *g)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->nodes[i]->child)
			graph_free(g->nodes[i]->child);
		fg_handle_del(g->nodes[i], FG_TAG_NODE);
		free(g->nodes[i]);
	}
	fg_handle_del(g, FG_TAG_GRAPH);
	free(g->nodes);
	free(g->edges);
	free(g);
}

CUresult cuGraphDestroy(CUgraph hGraph)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_graph_valid((struct fg_graph *)hGraph))
		return CUDA_ERROR_INVALID_VALUE;
	graph_free((struct fg_graph *)hGraph);
	return CUDA_SUCCESS;
}

CUresult fg_kernel_node_set(struct fg_node *x, const CUDA_KERNEL_NODE_PARAMS *p)
{
	struct fg_function *f;
	struct fg_ctx *c;

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	f = (struct fg_function *)(p->func ? p->func : (CUfunction)p->kern);
	if (!fg_function_valid(f))
		return CUDA_ERROR_INVALID_VALUE;
	c = p->ctx ? (struct fg_ctx *)p->ctx : fg_current_ctx();
	if (!fg_ctx_valid(c))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!p->gridDimX || !p->gridDimY || !p->gridDimZ || !p->blockDimX || !p->blockDimY ||
	    !p->blockDimZ || (uint64_t)p->blockDimX * p->blockDimY * p->blockDimZ > 1024)
		return CUDA_ERROR_INVALID_VALUE;
	x->ctx = c;
	x->kparams = *p;
	x->dur = fg_kernel_duration(c, f, (uint64_t)p->gridDimX * p->gridDimY * p->gridDimZ,
				    p->kernelParams, p->extra);
	return CUDA_SUCCESS;
}

/* Common front of every cuGraphAdd*Node: validate and create an (unfilled) node. */
static CUresult add_front(CUgraphNode *ph, CUgraph hGraph, const CUgraphNode *deps, size_t n,
			  CUgraphNodeType t, struct fg_node **out)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!ph || !fg_graph_valid(g))
		return CUDA_ERROR_INVALID_VALUE;
	r = fg_graph_check_deps(g, deps, n);
	if (r)
		return r;
	*out = add_node(g, t, (struct fg_node **)deps, n);
	if (!*out)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*ph = (CUgraphNode)*out;
	return CUDA_SUCCESS;
}

static void drop_last(struct fg_node *x) /* undo add_front after a bad parameter */
{
	struct fg_graph *g = x->graph;

	g->n--;
	while (g->ne && g->edges[g->ne - 1].to == x)
		g->ne--;
	fg_handle_del(x, FG_TAG_NODE);
	free(x);
}

CUresult cuGraphAddKernelNode_v2(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
				 const CUDA_KERNEL_NODE_PARAMS *p)
{
	struct fg_node *x;
	CUresult r = add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_KERNEL, &x);

	if (r)
		return r;
	r = fg_kernel_node_set(x, p);
	if (r)
		drop_last(x);
	return r;
}

CUresult cuGraphAddKernelNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
			      const CUDA_KERNEL_NODE_PARAMS *p)
{
	return cuGraphAddKernelNode_v2(ph, g, deps, n, p);
}

CUresult cuGraphAddMemcpyNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
			      const CUDA_MEMCPY3D *copyParams, CUcontext ctx)
{
	struct fg_node *x;
	CUresult r;

	(void)ctx;
	if (!copyParams)
		return CUDA_ERROR_INVALID_VALUE;
	r = add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_MEMCPY, &x);
	if (!r)
		x->copy = *copyParams;
	return r;
}

CUresult cuGraphAddMemsetNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
			      const CUDA_MEMSET_NODE_PARAMS *p, CUcontext ctx)
{
	struct fg_node *x;
	CUresult r;

	(void)ctx;
	if (!p || (p->elementSize != 1 && p->elementSize != 2 && p->elementSize != 4))
		return CUDA_ERROR_INVALID_VALUE;
	r = add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_MEMSET, &x);
	if (!r)
		x->set = *p;
	return r;
}

CUresult cuGraphAddHostNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
			    const CUDA_HOST_NODE_PARAMS *p)
{
	struct fg_node *x;
	CUresult r;

	if (!p || !p->fn)
		return CUDA_ERROR_INVALID_VALUE;
	r = add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_HOST, &x);
	if (!r)
		x->host = *p;
	return r;
}

CUresult cuGraphAddEmptyNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n)
{
	struct fg_node *x;

	return add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_EMPTY, &x);
}

CUresult cuGraphAddEventRecordNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
				   CUevent event)
{
	struct fg_node *x;
	CUresult r;

	if (!fg_handle_is(event, FG_TAG_EVENT))
		return CUDA_ERROR_INVALID_VALUE;
	r = add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_EVENT_RECORD, &x);
	if (!r)
		x->event = event;
	return r;
}

CUresult cuGraphAddEventWaitNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
				 CUevent event)
{
	struct fg_node *x;
	CUresult r;

	if (!fg_handle_is(event, FG_TAG_EVENT))
		return CUDA_ERROR_INVALID_VALUE;
	r = add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_WAIT_EVENT, &x);
	if (!r)
		x->event = event;
	return r;
}

static struct fg_graph *graph_clone(const struct fg_graph *src)
{
	struct fg_graph *g = fg_graph_new();

	if (!g)
		return NULL;
	for (size_t i = 0; i < src->n; i++) {
		struct fg_node *x = add_node(g, src->nodes[i]->type, NULL, 0);

		if (!x) {
			graph_free(g);
			return NULL;
		}
		memcpy((char *)x + offsetof(struct fg_node, dur),
		       (const char *)src->nodes[i] + offsetof(struct fg_node, dur),
		       sizeof(*x) - offsetof(struct fg_node, dur));
		if (x->child && !(x->child = graph_clone(src->nodes[i]->child))) {
			graph_free(g);
			return NULL;
		}
	}
	for (size_t e = 0; e < src->ne; e++) {
		size_t a = 0, b = 0;

		while (a < src->n && src->nodes[a] != src->edges[e].from)
			a++;
		while (b < src->n && src->nodes[b] != src->edges[e].to)
			b++;
		if (a < src->n && b < src->n && fg_graph_add_edge(g, g->nodes[a], g->nodes[b])) {
			graph_free(g);
			return NULL;
		}
	}
	return g;
}

CUresult cuGraphAddChildGraphNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
				  CUgraph childGraph)
{
	struct fg_node *x;
	CUresult r;

	if (!fg_graph_valid((struct fg_graph *)childGraph))
		return CUDA_ERROR_INVALID_VALUE;
	r = add_front(ph, g, deps, n, CU_GRAPH_NODE_TYPE_GRAPH, &x);
	if (r)
		return r;
	x->child = graph_clone((struct fg_graph *)childGraph);
	if (!x->child) {
		drop_last(x);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return CUDA_SUCCESS;
}

CUresult cuGraphAddNode_v2(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps,
			   const CUgraphEdgeData *edgeData, size_t n, CUgraphNodeParams *p)
{
	CUDA_MEMSET_NODE_PARAMS_v1 set;
	CUDA_HOST_NODE_PARAMS_v1 host;
	CUresult r;

	(void)edgeData;
	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	switch (p->type) {
	case CU_GRAPH_NODE_TYPE_KERNEL:
		return cuGraphAddKernelNode_v2(ph, g, deps, n,
					       (const CUDA_KERNEL_NODE_PARAMS *)&p->kernel);
	case CU_GRAPH_NODE_TYPE_MEMCPY:
		return cuGraphAddMemcpyNode(ph, g, deps, n, &p->memcpy.copyParams,
					    p->memcpy.copyCtx);
	case CU_GRAPH_NODE_TYPE_MEMSET:
		set.dst = p->memset.dst;
		set.pitch = p->memset.pitch;
		set.value = p->memset.value;
		set.elementSize = p->memset.elementSize;
		set.width = p->memset.width;
		set.height = p->memset.height;
		return cuGraphAddMemsetNode(ph, g, deps, n, &set, p->memset.ctx);
	case CU_GRAPH_NODE_TYPE_HOST:
		host.fn = p->host.fn;
		host.userData = p->host.userData;
		return cuGraphAddHostNode(ph, g, deps, n, &host);
	case CU_GRAPH_NODE_TYPE_EMPTY:
		return cuGraphAddEmptyNode(ph, g, deps, n);
	case CU_GRAPH_NODE_TYPE_EVENT_RECORD:
		return cuGraphAddEventRecordNode(ph, g, deps, n, p->eventRecord.event);
	case CU_GRAPH_NODE_TYPE_WAIT_EVENT:
		return cuGraphAddEventWaitNode(ph, g, deps, n, p->eventWait.event);
	case CU_GRAPH_NODE_TYPE_GRAPH:
		r = cuGraphAddChildGraphNode(ph, g, deps, n, p->graph.graph);
		return r;
	default:
		return CUDA_ERROR_NOT_SUPPORTED;
	}
}

CUresult cuGraphAddNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
			CUgraphNodeParams *p)
{
	return cuGraphAddNode_v2(ph, g, deps, NULL, n, p);
}

CUresult cuGraphAddMemAllocNode(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps, size_t n,
				CUDA_MEM_ALLOC_NODE_PARAMS *p)
{
	(void)ph;
	(void)g;
	(void)deps;
	(void)n;
	(void)p;
	return CUDA_ERROR_NOT_SUPPORTED;
}

CUresult cuGraphAddDependencies_v2(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to,
				   const CUgraphEdgeData *edgeData, size_t n)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;
	CUresult r = fg_ready();

	(void)edgeData;
	if (r)
		return r;
	if (!fg_graph_valid(g))
		return CUDA_ERROR_INVALID_VALUE;
	if ((r = fg_graph_check_deps(g, from, n)) || (r = fg_graph_check_deps(g, to, n)))
		return r;
	for (size_t i = 0; i < n; i++)
		if (fg_graph_add_edge(g, (struct fg_node *)from[i], (struct fg_node *)to[i]))
			return CUDA_ERROR_OUT_OF_MEMORY;
	return CUDA_SUCCESS;
}

CUresult cuGraphAddDependencies(CUgraph g, const CUgraphNode *from, const CUgraphNode *to,
				size_t n)
{
	return cuGraphAddDependencies_v2(g, from, to, NULL, n);
}

CUresult cuGraphGetNodes(CUgraph hGraph, CUgraphNode *nodes, size_t *numNodes)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;

	if (!fg_graph_valid(g) || !numNodes)
		return CUDA_ERROR_INVALID_VALUE;
	if (nodes) {
		size_t k = *numNodes < g->n ? *numNodes : g->n;

		for (size_t i = 0; i < k; i++)
			nodes[i] = (CUgraphNode)g->nodes[i];
		for (size_t i = k; i < *numNodes; i++)
			nodes[i] = NULL;
	}
	*numNodes = g->n;
	return CUDA_SUCCESS;
}

CUresult cuGraphGetRootNodes(CUgraph hGraph, CUgraphNode *roots, size_t *numRoots)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;
	size_t k = 0;

	if (!fg_graph_valid(g) || !numRoots)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < g->n; i++) {
		int root = 1;

		for (size_t e = 0; e < g->ne && root; e++)
			root = g->edges[e].to != g->nodes[i];
		if (root) {
			if (roots && k < *numRoots)
				roots[k] = (CUgraphNode)g->nodes[i];
			k++;
		}
	}
	*numRoots = k;
	return CUDA_SUCCESS;
}

CUresult cuGraphNodeGetType(CUgraphNode hNode, CUgraphNodeType *type)
{
	struct fg_node *x = fg_node_get(hNode);

	if (!x || !type)
		return CUDA_ERROR_INVALID_VALUE;
	*type = x->type;
	return CUDA_SUCCESS;
}

CUresult cuGraphKernelNodeGetParams_v2(CUgraphNode hNode, CUDA_KERNEL_NODE_PARAMS *p)
{
	struct fg_node *x = fg_node_get(hNode);

	if (!x || !p || x->type != CU_GRAPH_NODE_TYPE_KERNEL)
		return CUDA_ERROR_INVALID_VALUE;
	*p = x->kparams;
	return CUDA_SUCCESS;
}

CUresult cuGraphKernelNodeSetParams_v2(CUgraphNode hNode, const CUDA_KERNEL_NODE_PARAMS *p)
{
	struct fg_node *x = fg_node_get(hNode);

	if (!x || x->type != CU_GRAPH_NODE_TYPE_KERNEL)
		return CUDA_ERROR_INVALID_VALUE;
	return fg_kernel_node_set(x, p);
}

CUresult cuGraphClone(CUgraph *phGraphClone, CUgraph originalGraph)
{
	if (!phGraphClone || !fg_graph_valid((struct fg_graph *)originalGraph))
		return CUDA_ERROR_INVALID_VALUE;
	*phGraphClone = (CUgraph)graph_clone((struct fg_graph *)originalGraph);
	return *phGraphClone ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

/* Kahn's algorithm, stable in insertion order. Returns -1 on a cycle. */
static int topo_order(const struct fg_graph *g, size_t *order)
{
	size_t *indeg = calloc(g->n ? g->n : 1, sizeof(*indeg));
	unsigned char *done = calloc(g->n ? g->n : 1, 1);
	size_t k = 0;
	int rv = -1;

	if (!indeg || !done)
		goto fail;
	for (size_t e = 0; e < g->ne; e++)
		for (size_t i = 0; i < g->n; i++)
			if (g->nodes[i] == g->edges[e].to)
				indeg[i]++;
	while (k < g->n) {
		size_t i = 0;

		while (i < g->n && (done[i] || indeg[i]))
			i++;
		if (i == g->n)
			goto fail;
		done[i] = 1;
		order[k++] = i;
		for (size_t e = 0; e < g->ne; e++) {
			if (g->edges[e].from != g->nodes[i])
				continue;
			for (size_t j = 0; j < g->n; j++)
				if (g->nodes[j] == g->edges[e].to && indeg[j])
					indeg[j]--;
		}
	}
	rv = 0;
fail:
	free(indeg);
	free(done);
	return rv;
}

static CUresult instantiate(CUgraphExec *phExec, CUgraph hGraph, unsigned long long flags)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;
	struct fg_exec *x = NULL;
	size_t *order = NULL;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!phExec || !fg_graph_valid(g))
		return CUDA_ERROR_INVALID_VALUE;
	r = CUDA_ERROR_OUT_OF_MEMORY;
	x = calloc(1, sizeof(*x));
	order = calloc(g->n ? g->n : 1, sizeof(*order));
	if (!x || !order)
		goto fail;
	x->nodes = calloc(g->n ? g->n : 1, sizeof(*x->nodes));
	x->origin = calloc(g->n ? g->n : 1, sizeof(*x->origin));
	if (!x->nodes || !x->origin)
		goto fail;
	if (topo_order(g, order)) {
		r = CUDA_ERROR_INVALID_VALUE; /* a cycle */
		goto fail;
	}
	for (size_t i = 0; i < g->n; i++) {
		x->nodes[i] = *g->nodes[order[i]];
		x->origin[i] = g->nodes[order[i]];
		if (x->nodes[i].child) {
			x->nodes[i].child = graph_clone(g->nodes[order[i]]->child);
			if (!x->nodes[i].child)
				goto fail;
		}
	}
	x->n = g->n;
	x->tag = FG_TAG_EXEC;
	x->flags = flags;
	if (fg_handle_add(x, FG_TAG_EXEC))
		goto fail;
	*phExec = (CUgraphExec)x;
	free(order);
	return CUDA_SUCCESS;
fail:
	if (x) {
		free(x->nodes);
		free(x->origin);
	}
	free(x);
	free(order);
	return r;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *phExec, CUgraph g, unsigned long long flags)
{
	return instantiate(phExec, g, flags);
}

CUresult cuGraphInstantiate_v2(CUgraphExec *phExec, CUgraph g, CUgraphNode *phErrorNode,
			       char *logBuffer, size_t bufferSize)
{
	if (phErrorNode)
		*phErrorNode = NULL;
	if (logBuffer && bufferSize)
		logBuffer[0] = '\0';
	return instantiate(phExec, g, 0);
}

CUresult cuGraphInstantiateWithParams(CUgraphExec *phExec, CUgraph g,
				      CUDA_GRAPH_INSTANTIATE_PARAMS *p)
{
	CUresult r;

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	r = instantiate(phExec, g, p->flags);
	p->hErrNode_out = NULL;
	p->result_out = r ? CUDA_GRAPH_INSTANTIATE_ERROR : CUDA_GRAPH_INSTANTIATE_SUCCESS;
	return r;
}

CUresult cuGraphExecDestroy(CUgraphExec hExec)
{
	struct fg_exec *x = fg_exec_get(hExec);

	if (!x)
		return CUDA_ERROR_INVALID_VALUE;
	fg_handle_del(x, FG_TAG_EXEC);
	for (size_t i = 0; i < x->n; i++)
		if (x->nodes[i].child)
			graph_free(x->nodes[i].child);
	free(x->nodes);
	free(x->origin);
	free(x);
	return CUDA_SUCCESS;
}

CUresult cuGraphExecGetFlags(CUgraphExec hExec, cuuint64_t *flags)
{
	struct fg_exec *x = fg_exec_get(hExec);

	if (!x || !flags)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = x->flags;
	return CUDA_SUCCESS;
}

static CUresult run_nodes(struct fg_node *nodes, struct fg_node **ptrs, size_t n, CUstream s);

static CUresult run_node(struct fg_node *x, CUstream s)
{
	struct fg_ctx *c = x->ctx ? x->ctx : fg_current_ctx();
	CUresult r = CUDA_SUCCESS;

	if (x->disabled)
		return CUDA_SUCCESS;
	switch (x->type) {
	case CU_GRAPH_NODE_TYPE_KERNEL:
		if (!fg_ctx_valid(c))
			return CUDA_ERROR_INVALID_CONTEXT;
		r = fg_timeline_launch(c, x->dur, s);
		break;
	case CU_GRAPH_NODE_TYPE_MEMCPY:
		r = fg_copy3d(&x->copy, s, 0);
		break;
	case CU_GRAPH_NODE_TYPE_MEMSET:
		fg_memset_run((void *)x->set.dst, x->set.value, x->set.elementSize, x->set.width,
			      x->set.height, x->set.pitch ? x->set.pitch :
							    x->set.width * x->set.elementSize);
		break;
	case CU_GRAPH_NODE_TYPE_HOST:
		r = fg_sync_stream(s);
		if (!r)
			x->host.fn(x->host.userData);
		break;
	case CU_GRAPH_NODE_TYPE_EVENT_RECORD:
		r = fg_handle_is(x->event, FG_TAG_EVENT) ? cuEventRecord(x->event, s) :
							   CUDA_ERROR_INVALID_HANDLE;
		break;
	case CU_GRAPH_NODE_TYPE_GRAPH:
		r = run_nodes(NULL, x->child->nodes, x->child->n, s);
		break;
	default:
		break;
	}
	return r;
}

static CUresult run_nodes(struct fg_node *nodes, struct fg_node **ptrs, size_t n, CUstream s)
{
	for (size_t i = 0; i < n; i++) {
		CUresult r = run_node(nodes ? &nodes[i] : ptrs[i], s);

		if (r)
			return r;
	}
	return CUDA_SUCCESS;
}

CUresult cuGraphLaunch(CUgraphExec hExec, CUstream s)
{
	struct fg_exec *x = fg_exec_get(hExec);
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!x)
		return CUDA_ERROR_INVALID_VALUE;
	if (fg_stream_bad(s))
		return CUDA_ERROR_INVALID_HANDLE;
	FG_TRACE("cuGraphLaunch %zu nodes", x->n);
	return run_nodes(x->nodes, NULL, x->n, s);
}

CUresult cuGraphUpload(CUgraphExec hExec, CUstream s)
{
	if (!fg_exec_get(hExec))
		return CUDA_ERROR_INVALID_VALUE;
	return fg_stream_bad(s) ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
}

CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec hExec, CUgraphNode hNode,
					   const CUDA_KERNEL_NODE_PARAMS *p)
{
	struct fg_exec *x = fg_exec_get(hExec);

	if (!x)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < x->n; i++)
		if (x->origin[i] == (const struct fg_node *)hNode &&
		    x->nodes[i].type == CU_GRAPH_NODE_TYPE_KERNEL)
			return fg_kernel_node_set(&x->nodes[i], p);
	return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGraphExecUpdate_v2(CUgraphExec hExec, CUgraph hGraph,
			      CUgraphExecUpdateResultInfo *resultInfo)
{
	struct fg_exec *x = fg_exec_get(hExec);
	struct fg_graph *g = (struct fg_graph *)hGraph;
	CUgraphExec fresh;
	struct fg_exec *y;
	CUresult r;

	if (!x || !fg_graph_valid(g) || !resultInfo)
		return CUDA_ERROR_INVALID_VALUE;
	memset(resultInfo, 0, sizeof(*resultInfo));
	if (g->n != x->n) {
		resultInfo->result = CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED;
		return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
	}
	r = instantiate(&fresh, hGraph, x->flags);
	if (r)
		return r;
	y = (struct fg_exec *)fresh;
	for (size_t i = 0; i < x->n; i++) {
		if (y->nodes[i].type != x->nodes[i].type) {
			cuGraphExecDestroy(fresh);
			resultInfo->result = CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED;
			return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
		}
	}
	for (size_t i = 0; i < x->n; i++) { /* swap contents: x takes the new nodes */
		struct fg_node t = x->nodes[i];

		x->nodes[i] = y->nodes[i];
		y->nodes[i] = t;
		x->origin[i] = y->origin[i];
	}
	cuGraphExecDestroy(fresh);
	resultInfo->result = CU_GRAPH_EXEC_UPDATE_SUCCESS;
	return CUDA_SUCCESS;
}

CUresult cuGraphDestroyNode(CUgraphNode hNode)
{
	struct fg_node *x = fg_node_get(hNode);
	struct fg_graph *g;
	size_t k = 0;

	if (!x)
		return CUDA_ERROR_INVALID_VALUE;
	g = x->graph;
	for (size_t i = 0; i < g->n; i++)
		if (g->nodes[i] != x)
			g->nodes[k++] = g->nodes[i];
	g->n = k;
	k = 0;
	for (size_t e = 0; e < g->ne; e++)
		if (g->edges[e].from != x && g->edges[e].to != x)
			g->edges[k++] = g->edges[e];
	g->ne = k;
	if (x->child)
		graph_free(x->child);
	fg_handle_del(x, FG_TAG_NODE);
	free(x);
	return CUDA_SUCCESS;
}
