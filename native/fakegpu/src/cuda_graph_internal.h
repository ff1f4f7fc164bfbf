/* fakegpu libcuda: graph, node and executable-graph layouts shared by the graph files. */
#ifndef FG_CUDA_GRAPH_INTERNAL_H
#define FG_CUDA_GRAPH_INTERNAL_H

#include "cuda_internal.h"

/* cuda.h maps these to their _v2 (edge data) versions; the fake exports both. */
#undef cuGraphGetEdges
#undef cuGraphNodeGetDependencies
#undef cuGraphNodeGetDependentNodes
#undef cuGraphRemoveDependencies
CUresult cuGraphGetEdges(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to, size_t *numEdges);
CUresult cuGraphNodeGetDependencies(CUgraphNode hNode, CUgraphNode *deps, size_t *n);
CUresult cuGraphNodeGetDependentNodes(CUgraphNode hNode, CUgraphNode *nodes, size_t *n);
CUresult cuGraphRemoveDependencies(CUgraph hGraph, const CUgraphNode *from,
				   const CUgraphNode *to, size_t n);

struct fg_node {
	uint32_t tag;
	CUgraphNodeType type;
	struct fg_graph *graph;
	uint64_t dur;                      /* kernel */
	struct fg_ctx *ctx;
	CUDA_KERNEL_NODE_PARAMS kparams;   /* kernel, as given */
	CUDA_MEMCPY3D copy;                /* memcpy */
	CUDA_MEMSET_NODE_PARAMS_v1 set;    /* memset */
	CUDA_HOST_NODE_PARAMS_v1 host;     /* host */
	CUevent event;                     /* event record / wait */
	struct fg_graph *child;            /* child graph (owned clone) */
	int disabled;                      /* exec copies only: cuGraphNodeSetEnabled(0) */
};

struct edge {
	struct fg_node *from, *to;
};

struct fg_graph {
	uint32_t tag;
	unsigned long long id;
	struct fg_node **nodes;
	size_t n, cap;
	struct edge *edges;
	size_t ne, ecap;
};

struct fg_exec {
	uint32_t tag;
	struct fg_node *nodes;             /* copies, in execution order */
	const struct fg_node **origin;     /* the graph node each copy came from */
	size_t n;
	unsigned long long flags;
};

int fg_graph_valid(const struct fg_graph *g);
struct fg_node *fg_node_get(CUgraphNode h);
struct fg_exec *fg_exec_get(CUgraphExec h);
int fg_graph_add_edge(struct fg_graph *g, struct fg_node *from, struct fg_node *to);
CUresult fg_graph_check_deps(struct fg_graph *g, const CUgraphNode *deps, size_t n);
CUresult fg_kernel_node_set(struct fg_node *x, const CUDA_KERNEL_NODE_PARAMS *p);

#endif /* FG_CUDA_GRAPH_INTERNAL_H */
