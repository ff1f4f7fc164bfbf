/*
 * fakegpu libcuda: cuGetExportTable, the driver's private tables that cudart requires.
 *
 * Their layouts are undocumented; slot meanings follow public reverse engineering (ZLUDA
 * and others) and what the spike observed cudart 12.9 and 13.0 calling. A slot we do not
 * understand answers CUDA_ERROR_NOT_SUPPORTED with a message instead of crashing on NULL.
 */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

int fg_integrity_digest(unsigned version, uint64_t unix_seconds, uint64_t out[2],
			const void *cudart_table, const void *integrity_table, const void *fn);

struct fatbin_wrapper {
	uint32_t magic, version;
	const void *data;
	const void *filename_or_fatbins;
};

CUresult fg_unimplemented_slot(void)
{
	fg_msg("cudart called a private driver function the simulation does not implement");
	return CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- cudart interface {6bd5fb6c-5bf4-e74a-8987-d93912fd9df9} ---- */
static CUresult et_module_from_cubin(CUmodule *m, const struct fatbin_wrapper *w)
{
	FG_TRACE("export table: module from fatbin wrapper %p", (const void *)w);
	if (!m || !w)
		return CUDA_ERROR_INVALID_VALUE;
	return fg_module_new(m, w->data ? w->data : (const void *)w, 0);
}

static CUresult et_primary_ctx(CUcontext *pctx, CUdevice d)
{
	return cuDevicePrimaryCtxRetain(pctx, d);
}

static CUresult et_module_from_cubin_ext1(CUmodule *m, const struct fatbin_wrapper *w, void *a3,
					  void *a4, unsigned a5)
{
	(void)a3;
	(void)a4;
	(void)a5;
	return et_module_from_cubin(m, w);
}

static void et_noop(uintptr_t a)
{
	(void)a;
}

static CUresult et_module_from_cubin_ext2(const void *fatbin, CUmodule *m, void *a3, void *a4,
					  unsigned a5)
{
	(void)a3;
	(void)a4;
	(void)a5;
	return m ? fg_module_new(m, fatbin ? fatbin : (const void *)m, 0) : CUDA_ERROR_INVALID_VALUE;
}

static CUresult et_load_compilers(void)
{
	return CUDA_SUCCESS;
}

#define CUDART_SLOTS 16
static const void *et_cudart[CUDART_SLOTS];

/* ---- tools runtime callback hooks {a094798c-2e74-2e74-93f2-0800200c0a66} ---- */
static unsigned char tools_buf1[1024], tools_buf2[14];

static void et_tools_event(unsigned e, void *d)
{
	(void)e;
	(void)d;
}

static void et_tools_buf1(void **p, size_t *n)
{
	if (p)
		*p = tools_buf1;
	if (n)
		*n = sizeof(tools_buf1);
}

static void et_tools_span(void *c, void *d)
{
	(void)c;
	(void)d;
}

static void et_tools_buf2(void **p, size_t *n)
{
	if (p)
		*p = tools_buf2;
	if (n)
		*n = sizeof(tools_buf2);
}

static const void *et_tools_hooks[7];

/* ---- tools TLS {42d85a81-23f6-cb47-8298-f6e78a3aecdc} ---- */
static void et_tls_cb(void *r)
{
	(void)r;
}

static const void *et_tools_tls[4];

/* ---- context local storage {c693336e-1121-df11-a8c3-68f355d89593}: no size header ---- */
struct cls {
	void *ctx, *key, *val;
	struct cls *next;
};

static struct cls *cls_list;
static pthread_mutex_t cls_mu = PTHREAD_MUTEX_INITIALIZER;

static void *cls_ctx(void *c)
{
	return c ? c : (void *)fg_current_ctx();
}

static CUresult et_cls_put(void *ctx, void *key, void *val, void *dtor)
{
	struct cls *e;

	(void)dtor;
	ctx = cls_ctx(ctx);
	pthread_mutex_lock(&cls_mu);
	for (e = cls_list; e; e = e->next)
		if (e->ctx == ctx && e->key == key)
			break;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&cls_mu);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
		e->ctx = ctx;
		e->key = key;
		e->next = cls_list;
		cls_list = e;
	}
	e->val = val;
	pthread_mutex_unlock(&cls_mu);
	return CUDA_SUCCESS;
}

static CUresult et_cls_del(void *ctx, void *key)
{
	ctx = cls_ctx(ctx);
	pthread_mutex_lock(&cls_mu);
	for (struct cls **pp = &cls_list; *pp; pp = &(*pp)->next) {
		if ((*pp)->ctx == ctx && (*pp)->key == key) {
			struct cls *e = *pp;

			*pp = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&cls_mu);
	return CUDA_SUCCESS;
}

static CUresult et_cls_get(void **val, void *ctx, void *key)
{
	ctx = cls_ctx(ctx);
	pthread_mutex_lock(&cls_mu);
	for (struct cls *e = cls_list; e; e = e->next) {
		if (e->ctx == ctx && e->key == key) {
			*val = e->val;
			pthread_mutex_unlock(&cls_mu);
			return CUDA_SUCCESS;
		}
	}
	pthread_mutex_unlock(&cls_mu);
	*val = NULL;
	return CUDA_ERROR_INVALID_HANDLE;
}

static const void *et_cls[4];

/* ---- context checks {263e8860-7cd2-6143-92f6-bbd5006dfa7e} ---- */
static CUresult et_ctx_check(void *ctx, unsigned *r1, const void **r2)
{
	(void)ctx;
	(void)r2;
	if (r1)
		*r1 = 0;
	return CUDA_SUCCESS;
}

static unsigned et_ctx_check_flags(void)
{
	return 0;
}

static const void *et_ctx_checks[4];

/* ---- integrity check {d4082055-bde6-704b-8d34-ba123c66e1f2} ---- */
static const void *et_integrity[3];

static CUresult et_integrity_fn(unsigned version, uint64_t unix_seconds, uint64_t out[2])
{
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	return fg_integrity_digest(version, unix_seconds, out, et_cudart, et_integrity,
				   (const void *)et_integrity_fn) ? CUDA_ERROR_UNKNOWN : CUDA_SUCCESS;
}

static const struct {
	unsigned char id[16];
	const char *name;
	const void **table;
} tables[] = {
	{ {0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9},
	  "cudart_interface", et_cudart },
	{ {0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74, 0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66},
	  "tools_runtime_callback_hooks", et_tools_hooks },
	{ {0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb, 0x47, 0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc},
	  "tools_tls", et_tools_tls },
	{ {0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11, 0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93},
	  "context_local_storage", et_cls },
	{ {0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43, 0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e},
	  "context_checks", et_ctx_checks },
	{ {0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b, 0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2},
	  "integrity_check", et_integrity },
	/* {f8cff951-2146-8b4e-b9e2-fb469e7c0dd9} ("skip the normal bootstrap") must stay absent */
};

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void fill_unknown(const void **t, int n)
{
	for (int i = 1; i < n; i++)
		if (!t[i])
			t[i] = (const void *)fg_unimplemented_slot;
}

static void tables_init(void)
{
	et_cudart[0] = (const void *)(uintptr_t)(CUDART_SLOTS * sizeof(void *));
	et_cudart[1] = (const void *)et_module_from_cubin;
	et_cudart[2] = (const void *)et_primary_ctx;
	et_cudart[6] = (const void *)et_module_from_cubin_ext1;
	et_cudart[7] = (const void *)et_noop;
	et_cudart[8] = (const void *)et_module_from_cubin_ext2;
	et_cudart[12] = (const void *)et_load_compilers;
	fill_unknown(et_cudart, CUDART_SLOTS);
	et_tools_hooks[0] = (const void *)(uintptr_t)(7 * sizeof(void *));
	et_tools_hooks[1] = (const void *)et_tools_event;
	et_tools_hooks[2] = (const void *)et_tools_buf1;
	et_tools_hooks[4] = (const void *)et_tools_span;
	et_tools_hooks[6] = (const void *)et_tools_buf2;
	fill_unknown(et_tools_hooks, 7);
	et_tools_tls[0] = (const void *)(uintptr_t)(4 * sizeof(void *));
	et_tools_tls[2] = (const void *)et_tls_cb;
	fill_unknown(et_tools_tls, 4);
	et_integrity[0] = (const void *)(uintptr_t)(3 * sizeof(void *));
	et_integrity[1] = (const void *)et_integrity_fn;
	fill_unknown(et_integrity, 3);
	et_cls[0] = (const void *)et_cls_put;
	et_cls[1] = (const void *)et_cls_del;
	et_cls[2] = (const void *)et_cls_get;
	et_ctx_checks[0] = (const void *)(uintptr_t)(4 * sizeof(void *));
	et_ctx_checks[2] = (const void *)et_ctx_check;
	et_ctx_checks[3] = (const void *)et_ctx_check_flags;
	fill_unknown(et_ctx_checks, 4);
}

CUresult cuGetExportTable(const void **ppExportTable, const CUuuid *pExportTableId)
{
	pthread_once(&tables_once, tables_init);
	if (!ppExportTable || !pExportTableId)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		if (!memcmp(pExportTableId->bytes, tables[i].id, 16)) {
			*ppExportTable = tables[i].table;
			FG_TRACE("cuGetExportTable(%s)", tables[i].name);
			return CUDA_SUCCESS;
		}
	}
	*ppExportTable = NULL;
	return CUDA_ERROR_NOT_FOUND; /* what cudart expects for tables it may do without */
}
