/* fakegpu libcuda: graph queries and edits: edges, dependencies, node parameters, enabling
 * nodes of an instantiated graph. */
#include "cuda_graph_internal.h"

#include <stdio.h>
#include <string.h>

/* Fill up to *n entries of a and b (either may be NULL), report the total in *n. */
static CUresult edges(struct fg_graph *g, const struct fg_node *from, const struct fg_node *to,
		      CUgraphNode *a, CUgraphNode *b, CUgraphEdgeData *data, size_t *n)
{
	size_t k = 0;

	if (!n)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t e = 0; e < g->ne; e++) {
		if ((from && g->edges[e].from != from) || (to && g->edges[e].to != to))
			continue;
		if (k < *n) {
			if (a)
				a[k] = (CUgraphNode)(from ? g->edges[e].to : g->edges[e].from);
			if (b)
				b[k] = (CUgraphNode)g->edges[e].to;
			if (data)
				memset(&data[k], 0, sizeof(data[k]));
		}
		k++;
	}
	if ((a || b) && k > *n)
		return CUDA_ERROR_INVALID_VALUE; /* the real driver: arrays too small */
	*n = k;
	return CUDA_SUCCESS;
}

CUresult cuGraphGetEdges_v2(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to,
			    CUgraphEdgeData *edgeData, size_t *numEdges)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;
	size_t k = 0;

	if (!fg_graph_valid(g) || !numEdges || (!from != !to))
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t e = 0; e < g->ne; e++, k++) {
		if (from && k < *numEdges) {
			from[k] = (CUgraphNode)g->edges[e].from;
			to[k] = (CUgraphNode)g->edges[e].to;
			if (edgeData)
				memset(&edgeData[k], 0, sizeof(edgeData[k]));
		}
	}
	*numEdges = k;
	return CUDA_SUCCESS;
}

CUresult cuGraphGetEdges(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to, size_t *numEdges)
{
	return cuGraphGetEdges_v2(hGraph, from, to, NULL, numEdges);
}

CUresult cuGraphNodeGetDependencies_v2(CUgraphNode hNode, CUgraphNode *deps,
				       CUgraphEdgeData *edgeData, size_t *n)
{
	struct fg_node *x = fg_node_get(hNode);

	if (!x)
		return CUDA_ERROR_INVALID_VALUE;
	return edges(x->graph, NULL, x, deps, NULL, edgeData, n);
}

CUresult cuGraphNodeGetDependencies(CUgraphNode hNode, CUgraphNode *deps, size_t *n)
{
	return cuGraphNodeGetDependencies_v2(hNode, deps, NULL, n);
}

CUresult cuGraphNodeGetDependentNodes_v2(CUgraphNode hNode, CUgraphNode *nodes,
					 CUgraphEdgeData *edgeData, size_t *n)
{
	struct fg_node *x = fg_node_get(hNode);

	if (!x)
		return CUDA_ERROR_INVALID_VALUE;
	return edges(x->graph, x, NULL, nodes, NULL, edgeData, n);
}

CUresult cuGraphNodeGetDependentNodes(CUgraphNode hNode, CUgraphNode *nodes, size_t *n)
{
	return cuGraphNodeGetDependentNodes_v2(hNode, nodes, NULL, n);
}

CUresult cuGraphRemoveDependencies_v2(CUgraph hGraph, const CUgraphNode *from,
				      const CUgraphNode *to, const CUgraphEdgeData *edgeData,
				      size_t n)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;
	CUresult r;

	(void)edgeData;
	if (!fg_graph_valid(g))
		return CUDA_ERROR_INVALID_VALUE;
	if ((r = fg_graph_check_deps(g, from, n)) || (r = fg_graph_check_deps(g, to, n)))
		return r;
	for (size_t i = 0; i < n; i++) {
		size_t e = 0;

		while (e < g->ne && (g->edges[e].from != (struct fg_node *)from[i] ||
				     g->edges[e].to != (struct fg_node *)to[i]))
			e++;
		if (e == g->ne)
			return CUDA_ERROR_INVALID_VALUE;
		memmove(&g->edges[e], &g->edges[e + 1], (g->ne - e - 1) * sizeof(g->edges[0]));
		g->ne--;
	}
	return CUDA_SUCCESS;
}

CUresult cuGraphRemoveDependencies(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to,
				   size_t n)
{
	return cuGraphRemoveDependencies_v2(hGraph, from, to, NULL, n);
}

static struct fg_node *typed(CUgraphNode h, CUgraphNodeType t)
{
	struct fg_node *x = fg_node_get(h);

	return x && x->type == t ? x : NULL;
}

CUresult cuGraphMemcpyNodeGetParams(CUgraphNode hNode, CUDA_MEMCPY3D *p)
{
	struct fg_node *x = typed(hNode, CU_GRAPH_NODE_TYPE_MEMCPY);

	if (!x || !p)
		return CUDA_ERROR_INVALID_VALUE;
	*p = x->copy;
	return CUDA_SUCCESS;
}

CUresult cuGraphMemcpyNodeSetParams(CUgraphNode hNode, const CUDA_MEMCPY3D *p)
{
	struct fg_node *x = typed(hNode, CU_GRAPH_NODE_TYPE_MEMCPY);

	if (!x || !p)
		return CUDA_ERROR_INVALID_VALUE;
	x->copy = *p;
	return CUDA_SUCCESS;
}

static int memset_ok(const CUDA_MEMSET_NODE_PARAMS *p)
{
	return p && (p->elementSize == 1 || p->elementSize == 2 || p->elementSize == 4);
}

CUresult cuGraphMemsetNodeGetParams(CUgraphNode hNode, CUDA_MEMSET_NODE_PARAMS *p)
{
	struct fg_node *x = typed(hNode, CU_GRAPH_NODE_TYPE_MEMSET);

	if (!x || !p)
		return CUDA_ERROR_INVALID_VALUE;
	*p = x->set;
	return CUDA_SUCCESS;
}

CUresult cuGraphMemsetNodeSetParams(CUgraphNode hNode, const CUDA_MEMSET_NODE_PARAMS *p)
{
	struct fg_node *x = typed(hNode, CU_GRAPH_NODE_TYPE_MEMSET);

	if (!x || !memset_ok(p))
		return CUDA_ERROR_INVALID_VALUE;
	x->set = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphHostNodeGetParams(CUgraphNode hNode, CUDA_HOST_NODE_PARAMS *p)
{
	struct fg_node *x = typed(hNode, CU_GRAPH_NODE_TYPE_HOST);

	if (!x || !p)
		return CUDA_ERROR_INVALID_VALUE;
	*p = x->host;
	return CUDA_SUCCESS;
}

CUresult cuGraphHostNodeSetParams(CUgraphNode hNode, const CUDA_HOST_NODE_PARAMS *p)
{
	struct fg_node *x = typed(hNode, CU_GRAPH_NODE_TYPE_HOST);

	if (!x || !p || !p->fn)
		return CUDA_ERROR_INVALID_VALUE;
	x->host = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphChildGraphNodeGetGraph(CUgraphNode hNode, CUgraph *phGraph)
{
	struct fg_node *x = typed(hNode, CU_GRAPH_NODE_TYPE_GRAPH);

	if (!x || !phGraph)
		return CUDA_ERROR_INVALID_VALUE;
	*phGraph = (CUgraph)x->child;
	return CUDA_SUCCESS;
}

static CUresult event_get(CUgraphNode h, CUgraphNodeType t, CUevent *out)
{
	struct fg_node *x = typed(h, t);

	if (!x || !out)
		return CUDA_ERROR_INVALID_VALUE;
	*out = x->event;
	return CUDA_SUCCESS;
}

static CUresult event_set(CUgraphNode h, CUgraphNodeType t, CUevent e)
{
	struct fg_node *x = typed(h, t);

	if (!x || !fg_handle_is(e, FG_TAG_EVENT))
		return CUDA_ERROR_INVALID_VALUE;
	x->event = e;
	return CUDA_SUCCESS;
}

CUresult cuGraphEventRecordNodeGetEvent(CUgraphNode hNode, CUevent *event_out)
{
	return event_get(hNode, CU_GRAPH_NODE_TYPE_EVENT_RECORD, event_out);
}

CUresult cuGraphEventRecordNodeSetEvent(CUgraphNode hNode, CUevent event)
{
	return event_set(hNode, CU_GRAPH_NODE_TYPE_EVENT_RECORD, event);
}

CUresult cuGraphEventWaitNodeGetEvent(CUgraphNode hNode, CUevent *event_out)
{
	return event_get(hNode, CU_GRAPH_NODE_TYPE_WAIT_EVENT, event_out);
}

CUresult cuGraphEventWaitNodeSetEvent(CUgraphNode hNode, CUevent event)
{
	return event_set(hNode, CU_GRAPH_NODE_TYPE_WAIT_EVENT, event);
}

CUresult cuGraphNodeFindInClone(CUgraphNode *phNode, CUgraphNode hOriginalNode,
				CUgraph hClonedGraph)
{
	struct fg_node *x = fg_node_get(hOriginalNode);
	struct fg_graph *c = (struct fg_graph *)hClonedGraph;

	if (!phNode || !x || !fg_graph_valid(c))
		return CUDA_ERROR_INVALID_VALUE;
	/* a clone keeps the original's node order */
	for (size_t i = 0; i < x->graph->n && i < c->n; i++) {
		if (x->graph->nodes[i] == x && c->nodes[i]->type == x->type) {
			*phNode = (CUgraphNode)c->nodes[i];
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* The exec copy of graph node h, optionally of type t (t < 0: any). */
static struct fg_node *exec_node(CUgraphExec hExec, CUgraphNode h, int t)
{
	struct fg_exec *x = fg_exec_get(hExec);

	if (!x)
		return NULL;
	for (size_t i = 0; i < x->n; i++)
		if (x->origin[i] == (const struct fg_node *)h && (t < 0 || (int)x->nodes[i].type == t))
			return &x->nodes[i];
	return NULL;
}

CUresult cuGraphNodeSetEnabled(CUgraphExec hGraphExec, CUgraphNode hNode, unsigned int isEnabled)
{
	struct fg_node *n = exec_node(hGraphExec, hNode, -1);

	if (!n)
		return CUDA_ERROR_INVALID_VALUE;
	n->disabled = !isEnabled;
	return CUDA_SUCCESS;
}

CUresult cuGraphNodeGetEnabled(CUgraphExec hGraphExec, CUgraphNode hNode, unsigned int *isEnabled)
{
	struct fg_node *n = exec_node(hGraphExec, hNode, -1);

	if (!n || !isEnabled)
		return CUDA_ERROR_INVALID_VALUE;
	*isEnabled = !n->disabled;
	return CUDA_SUCCESS;
}

CUresult cuGraphExecMemcpyNodeSetParams(CUgraphExec hGraphExec, CUgraphNode hNode,
					const CUDA_MEMCPY3D *p, CUcontext ctx)
{
	struct fg_node *n = exec_node(hGraphExec, hNode, CU_GRAPH_NODE_TYPE_MEMCPY);

	(void)ctx;
	if (!n || !p)
		return CUDA_ERROR_INVALID_VALUE;
	n->copy = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec hGraphExec, CUgraphNode hNode,
					const CUDA_MEMSET_NODE_PARAMS *p, CUcontext ctx)
{
	struct fg_node *n = exec_node(hGraphExec, hNode, CU_GRAPH_NODE_TYPE_MEMSET);

	(void)ctx;
	if (!n || !memset_ok(p))
		return CUDA_ERROR_INVALID_VALUE;
	n->set = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphExecHostNodeSetParams(CUgraphExec hGraphExec, CUgraphNode hNode,
				      const CUDA_HOST_NODE_PARAMS *p)
{
	struct fg_node *n = exec_node(hGraphExec, hNode, CU_GRAPH_NODE_TYPE_HOST);

	if (!n || !p || !p->fn)
		return CUDA_ERROR_INVALID_VALUE;
	n->host = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphExecEventRecordNodeSetEvent(CUgraphExec hGraphExec, CUgraphNode hNode,
					    CUevent event)
{
	struct fg_node *n = exec_node(hGraphExec, hNode, CU_GRAPH_NODE_TYPE_EVENT_RECORD);

	if (!n || !fg_handle_is(event, FG_TAG_EVENT))
		return CUDA_ERROR_INVALID_VALUE;
	n->event = event;
	return CUDA_SUCCESS;
}

CUresult cuGraphExecEventWaitNodeSetEvent(CUgraphExec hGraphExec, CUgraphNode hNode,
					  CUevent event)
{
	struct fg_node *n = exec_node(hGraphExec, hNode, CU_GRAPH_NODE_TYPE_WAIT_EVENT);

	if (!n || !fg_handle_is(event, FG_TAG_EVENT))
		return CUDA_ERROR_INVALID_VALUE;
	n->event = event;
	return CUDA_SUCCESS;
}

/* Kernel node attributes (access policy, priority, ...) change nothing simulated. */
CUresult cuGraphKernelNodeGetAttribute(CUgraphNode hNode, CUkernelNodeAttrID attr,
				       CUkernelNodeAttrValue *value_out)
{
	(void)attr;
	if (!typed(hNode, CU_GRAPH_NODE_TYPE_KERNEL) || !value_out)
		return CUDA_ERROR_INVALID_VALUE;
	memset(value_out, 0, sizeof(*value_out));
	return CUDA_SUCCESS;
}

CUresult cuGraphKernelNodeSetAttribute(CUgraphNode hNode, CUkernelNodeAttrID attr,
				       const CUkernelNodeAttrValue *value)
{
	(void)attr;
	if (!typed(hNode, CU_GRAPH_NODE_TYPE_KERNEL) || !value)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

CUresult cuGraphKernelNodeCopyAttributes(CUgraphNode dst, CUgraphNode src)
{
	if (!typed(dst, CU_GRAPH_NODE_TYPE_KERNEL) || !typed(src, CU_GRAPH_NODE_TYPE_KERNEL))
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

CUresult cuGraphDebugDotPrint(CUgraph hGraph, const char *path, unsigned int flags)
{
	struct fg_graph *g = (struct fg_graph *)hGraph;
	FILE *f;

	(void)flags;
	if (!fg_graph_valid(g) || !path)
		return CUDA_ERROR_INVALID_VALUE;
	f = fopen(path, "we");
	if (!f)
		return CUDA_ERROR_OPERATING_SYSTEM;
	fprintf(f, "digraph fakegpu_graph_%llu {\n", g->id);
	for (size_t i = 0; i < g->n; i++)
		fprintf(f, "  n%p [label=\"type %d\"];\n", (void *)g->nodes[i], (int)g->nodes[i]->type);
	for (size_t e = 0; e < g->ne; e++)
		fprintf(f, "  n%p -> n%p;\n", (void *)g->edges[e].from, (void *)g->edges[e].to);
	fprintf(f, "}\n");
	return fclose(f) ? CUDA_ERROR_OPERATING_SYSTEM : CUDA_SUCCESS;
}

/* Graph memory nodes are not simulated: the graph memory pool is always empty. */
CUresult cuDeviceGetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
	(void)attr;
	if (fg_ready())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!fg_valid_dev(device))
		return CUDA_ERROR_INVALID_DEVICE;
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	*(cuuint64_t *)value = 0;
	return CUDA_SUCCESS;
}

CUresult cuDeviceSetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
	(void)attr;
	if (fg_ready())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!fg_valid_dev(device))
		return CUDA_ERROR_INVALID_DEVICE;
	return value ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuDeviceGraphMemTrim(CUdevice device)
{
	if (fg_ready())
		return CUDA_ERROR_NOT_INITIALIZED;
	return fg_valid_dev(device) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}
