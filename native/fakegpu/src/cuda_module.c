/*
 * fakegpu libcuda: modules, libraries, functions and kernels, their attributes, occupancy.
 *
 * Images are not parsed: any image loads and any function name resolves (a function is
 * only a name; see cuda_launch.c for what its name may mean). __device__ variables get a
 * zeroed 1 MiB host-backed buffer each, so cudaMemcpyToSymbol and friends work.
 */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GLOBAL_BYTES ((size_t)1 << 20)

int fg_table_add_foreign(uintptr_t base, size_t size, int kind, int dev);

struct global {
	const struct fg_module *mod;
	struct global *next;
	uintptr_t addr;
	char name[256];
};

static pthread_mutex_t mod_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fg_function *functions;
static struct global *globals;

CUresult fg_module_new(CUmodule *m, const void *image, int is_library)
{
	struct fg_module *x;

	if (!m || !image)
		return CUDA_ERROR_INVALID_VALUE;
	x = calloc(1, sizeof(*x));
	if (!x)
		return CUDA_ERROR_OUT_OF_MEMORY;
	x->tag = FG_TAG_MOD;
	x->image = image;
	x->is_library = is_library;
	if (fg_handle_add(x, FG_TAG_MOD)) {
		free(x);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*m = (CUmodule)x;
	FG_TRACE("module load image=%p -> %p", image, (void *)x);
	return CUDA_SUCCESS;
}

static struct fg_module *module_get(const void *h)
{
	return fg_handle_is(h, FG_TAG_MOD) ? (struct fg_module *)h : NULL;
}

int fg_function_valid(const struct fg_function *f)
{
	return fg_handle_is(f, FG_TAG_FUN);
}

struct fg_function *fg_function_get(struct fg_module *m, const char *name)
{
	struct fg_function *f;

	pthread_mutex_lock(&mod_mu);
	for (f = functions; f; f = f->next)
		if (f->mod == m && !strcmp(f->name, name))
			break;
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (f) {
			f->tag = FG_TAG_FUN;
			f->mod = m;
			snprintf(f->name, sizeof(f->name), "%s", name);
			f->sleep_kernel = strstr(name, "fakegpu_ns") != NULL;
			if (fg_handle_add(f, FG_TAG_FUN)) {
				free(f);
				f = NULL;
			} else {
				f->next = functions;
				functions = f;
			}
		}
	}
	pthread_mutex_unlock(&mod_mu);
	return f;
}

static CUresult global_get(CUdeviceptr *dptr, size_t *bytes, struct fg_module *m, const char *name)
{
	struct global *g;
	CUresult r = CUDA_SUCCESS;

	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&mod_mu);
	for (g = globals; g; g = g->next)
		if (g->mod == m && !strcmp(g->name, name))
			break;
	if (!g) {
		void *p = mmap(NULL, GLOBAL_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		struct fg_ctx *c = fg_current_ctx();

		g = calloc(1, sizeof(*g));
		if (!g || p == MAP_FAILED ||
		    fg_table_add_foreign((uintptr_t)p, GLOBAL_BYTES, FG_ALLOC_DEVICE,
					 c ? c->dev : 0)) {
			free(g);
			if (p != MAP_FAILED)
				munmap(p, GLOBAL_BYTES);
			r = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		g->mod = m;
		g->addr = (uintptr_t)p;
		snprintf(g->name, sizeof(g->name), "%s", name);
		g->next = globals;
		globals = g;
	}
	if (dptr)
		*dptr = (CUdeviceptr)g->addr;
	if (bytes)
		*bytes = GLOBAL_BYTES;
out:
	pthread_mutex_unlock(&mod_mu);
	return r;
}

CUresult cuModuleLoad(CUmodule *module, const char *fname)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!fname)
		return CUDA_ERROR_INVALID_VALUE;
	if (access(fname, R_OK) != 0)
		return CUDA_ERROR_FILE_NOT_FOUND;
	return fg_module_new(module, fname, 0);
}

CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	return r ? r : fg_module_new(module, image, 0);
}

CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int numOptions,
			    CUjit_option *options, void **optionValues)
{
	if (numOptions && (!options || !optionValues))
		return CUDA_ERROR_INVALID_VALUE;
	return cuModuleLoadData(module, image);
}

CUresult cuModuleLoadFatBinary(CUmodule *module, const void *fatCubin)
{
	return cuModuleLoadData(module, fatCubin);
}

CUresult cuModuleUnload(CUmodule hmod)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!module_get(hmod))
		return CUDA_ERROR_INVALID_HANDLE;
	/* Functions and globals stay allocated so stale handles fail cleanly, not crash. */
	fg_handle_del(hmod, FG_TAG_MOD);
	return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
	struct fg_module *m = module_get(hmod);
	struct fg_function *f;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!hfunc || !name)
		return CUDA_ERROR_INVALID_VALUE;
	f = fg_function_get(m, name);
	if (!f)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*hfunc = (CUfunction)f;
	FG_TRACE("cuModuleGetFunction(%s) -> %p", name, (void *)f);
	return CUDA_SUCCESS;
}

CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name)
{
	CUresult r = fg_ready();

	return r ? r : global_get(dptr, bytes, module_get(hmod), name);
}

CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode)
{
	if (!mode)
		return CUDA_ERROR_INVALID_VALUE;
	*mode = CU_MODULE_LAZY_LOADING;
	return CUDA_SUCCESS;
}

CUresult cuModuleGetFunctionCount(unsigned int *count, CUmodule mod)
{
	if (!module_get(mod))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!count)
		return CUDA_ERROR_INVALID_VALUE;
	*count = 0;
	return CUDA_SUCCESS;
}

static CUresult library_load(CUlibrary *library, const void *code, unsigned int numJitOptions,
			     CUjit_option *jitOptions, void **jitOptionsValues,
			     unsigned int numLibraryOptions, CUlibraryOption *libraryOptions,
			     void **libraryOptionValues)
{
	if ((numJitOptions && (!jitOptions || !jitOptionsValues)) ||
	    (numLibraryOptions && (!libraryOptions || !libraryOptionValues)))
		return CUDA_ERROR_INVALID_VALUE;
	/* Libraries are context-independent: they load before any context exists. */
	return fg_ready() ? CUDA_ERROR_NOT_INITIALIZED : fg_module_new((CUmodule *)library, code, 1);
}

CUresult cuLibraryLoadData(CUlibrary *library, const void *code, CUjit_option *jitOptions,
			   void **jitOptionsValues, unsigned int numJitOptions,
			   CUlibraryOption *libraryOptions, void **libraryOptionValues,
			   unsigned int numLibraryOptions)
{
	return library_load(library, code, numJitOptions, jitOptions, jitOptionsValues,
			    numLibraryOptions, libraryOptions, libraryOptionValues);
}

CUresult cuLibraryLoadFromFile(CUlibrary *library, const char *fileName, CUjit_option *jitOptions,
			       void **jitOptionsValues, unsigned int numJitOptions,
			       CUlibraryOption *libraryOptions, void **libraryOptionValues,
			       unsigned int numLibraryOptions)
{
	if (!fileName)
		return CUDA_ERROR_INVALID_VALUE;
	if (access(fileName, R_OK) != 0)
		return CUDA_ERROR_FILE_NOT_FOUND;
	return library_load(library, fileName, numJitOptions, jitOptions, jitOptionsValues,
			    numLibraryOptions, libraryOptions, libraryOptionValues);
}

CUresult cuLibraryUnload(CUlibrary library)
{
	return cuModuleUnload((CUmodule)library);
}

CUresult cuLibraryGetModule(CUmodule *pMod, CUlibrary library)
{
	if (!module_get(library))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!pMod)
		return CUDA_ERROR_INVALID_VALUE;
	*pMod = (CUmodule)library;
	return CUDA_SUCCESS;
}

CUresult cuLibraryGetKernel(CUkernel *pKernel, CUlibrary library, const char *name)
{
	return cuModuleGetFunction((CUfunction *)pKernel, (CUmodule)library, name);
}

CUresult cuLibraryGetKernelCount(unsigned int *count, CUlibrary lib)
{
	return cuModuleGetFunctionCount(count, (CUmodule)lib);
}

CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name)
{
	return cuModuleGetGlobal_v2(dptr, bytes, (CUmodule)library, name);
}

CUresult cuLibraryGetManaged(CUdeviceptr *dptr, size_t *bytes, CUlibrary library,
			     const char *name)
{
	return cuModuleGetGlobal_v2(dptr, bytes, (CUmodule)library, name);
}

CUresult cuLibraryGetUnifiedFunction(void **fptr, CUlibrary library, const char *symbol)
{
	(void)symbol;
	if (!module_get(library))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!fptr)
		return CUDA_ERROR_INVALID_VALUE;
	*fptr = NULL;
	return CUDA_ERROR_NOT_FOUND;
}

CUresult cuKernelGetFunction(CUfunction *pFunc, CUkernel kernel)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_function_valid((struct fg_function *)kernel))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!pFunc)
		return CUDA_ERROR_INVALID_VALUE;
	*pFunc = (CUfunction)kernel;
	return CUDA_SUCCESS;
}

CUresult cuKernelGetLibrary(CUlibrary *pLib, CUkernel kernel)
{
	if (!fg_function_valid((struct fg_function *)kernel))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!pLib)
		return CUDA_ERROR_INVALID_VALUE;
	*pLib = (CUlibrary)((struct fg_function *)kernel)->mod;
	return CUDA_SUCCESS;
}

CUresult cuFuncGetName(const char **name, CUfunction hfunc)
{
	if (!fg_function_valid((struct fg_function *)hfunc))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	*name = ((struct fg_function *)hfunc)->name;
	return CUDA_SUCCESS;
}

CUresult cuKernelGetName(const char **name, CUkernel hfunc)
{
	return cuFuncGetName(name, (CUfunction)hfunc);
}

CUresult cuFuncGetModule(CUmodule *hmod, CUfunction hfunc)
{
	if (!fg_function_valid((struct fg_function *)hfunc))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!hmod)
		return CUDA_ERROR_INVALID_VALUE;
	*hmod = (CUmodule)((struct fg_function *)hfunc)->mod;
	return CUDA_SUCCESS;
}

CUresult cuFuncIsLoaded(CUfunctionLoadingState *state, CUfunction function)
{
	if (!fg_function_valid((struct fg_function *)function))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!state)
		return CUDA_ERROR_INVALID_VALUE;
	*state = CU_FUNCTION_LOADING_STATE_LOADED;
	return CUDA_SUCCESS;
}

CUresult cuFuncLoad(CUfunction function)
{
	return fg_function_valid((struct fg_function *)function) ? CUDA_SUCCESS :
								   CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc)
{
	struct fg_ctx *c = fg_current_ctx();
	int cc = 80;

	if (!fg_function_valid((struct fg_function *)hfunc))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!pi || (int)attrib < 0 || attrib >= CU_FUNC_ATTRIBUTE_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	if (c && fg_ctx_valid(c)) {
		const struct fg_device_config *d = &fg_shm()->config[fg_phys(c->dev)];

		cc = (int)(d->cc_major * 10 + d->cc_minor);
	}
	switch (attrib) {
	case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = 1024; break;
	case CU_FUNC_ATTRIBUTE_NUM_REGS: *pi = 32; break;
	case CU_FUNC_ATTRIBUTE_PTX_VERSION:
	case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *pi = cc; break;
	case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *pi = 49152; break;
	case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: *pi = -1; break;
	default: *pi = 0;
	}
	return CUDA_SUCCESS;
}

CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value)
{
	(void)value;
	if (!fg_function_valid((struct fg_function *)hfunc))
		return CUDA_ERROR_INVALID_HANDLE;
	if ((int)attrib < 0 || attrib >= CU_FUNC_ATTRIBUTE_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

CUresult cuFuncSetCacheConfig(CUfunction hfunc, CUfunc_cache config)
{
	(void)config;
	return fg_function_valid((struct fg_function *)hfunc) ? CUDA_SUCCESS :
								CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuFuncSetSharedMemConfig(CUfunction hfunc, CUsharedconfig config)
{
	(void)config;
	return fg_function_valid((struct fg_function *)hfunc) ? CUDA_SUCCESS :
								CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuKernelGetAttribute(int *pi, CUfunction_attribute attrib, CUkernel kernel, CUdevice dev)
{
	if (fg_ready())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncGetAttribute(pi, attrib, (CUfunction)kernel);
}

CUresult cuKernelSetAttribute(CUfunction_attribute attrib, int val, CUkernel kernel, CUdevice dev)
{
	if (fg_ready())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncSetAttribute((CUfunction)kernel, attrib, val);
}

CUresult cuKernelSetCacheConfig(CUkernel kernel, CUfunc_cache config, CUdevice dev)
{
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncSetCacheConfig((CUfunction)kernel, config);
}

static int blocks_per_sm(int blockSize)
{
	int n = blockSize > 0 ? 2048 / blockSize : 1;

	return n > 32 ? 32 : (n < 1 ? 1 : n);
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks, CUfunction func,
						     int blockSize, size_t dynamicSMemSize)
{
	(void)dynamicSMemSize;
	if (!fg_function_valid((struct fg_function *)func))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!numBlocks || blockSize <= 0 || blockSize > 1024)
		return CUDA_ERROR_INVALID_VALUE;
	*numBlocks = blocks_per_sm(blockSize);
	return CUDA_SUCCESS;
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *numBlocks, CUfunction func,
							      int blockSize,
							      size_t dynamicSMemSize,
							      unsigned int flags)
{
	(void)flags;
	return cuOccupancyMaxActiveBlocksPerMultiprocessor(numBlocks, func, blockSize,
							   dynamicSMemSize);
}

CUresult cuOccupancyMaxPotentialBlockSize(int *minGridSize, int *blockSize, CUfunction func,
					  CUoccupancyB2DSize blockSizeToDynamicSMemSize,
					  size_t dynamicSMemSize, int blockSizeLimit)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);
	int bs;

	(void)blockSizeToDynamicSMemSize;
	(void)dynamicSMemSize;
	if (r)
		return r;
	if (!fg_function_valid((struct fg_function *)func))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!minGridSize || !blockSize)
		return CUDA_ERROR_INVALID_VALUE;
	bs = blockSizeLimit > 0 && blockSizeLimit < 1024 ? blockSizeLimit : 1024;
	*blockSize = bs;
	*minGridSize = blocks_per_sm(bs) * (int)fg_shm()->config[fg_phys(c->dev)].sms;
	return CUDA_SUCCESS;
}

CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(int *minGridSize, int *blockSize,
						   CUfunction func,
						   CUoccupancyB2DSize blockSizeToDynamicSMemSize,
						   size_t dynamicSMemSize, int blockSizeLimit,
						   unsigned int flags)
{
	(void)flags;
	return cuOccupancyMaxPotentialBlockSize(minGridSize, blockSize, func,
						blockSizeToDynamicSMemSize, dynamicSMemSize,
						blockSizeLimit);
}

CUresult cuOccupancyAvailableDynamicSMemPerBlock(size_t *dynamicSmemSize, CUfunction func,
						 int numBlocks, int blockSize)
{
	(void)numBlocks;
	(void)blockSize;
	if (!fg_function_valid((struct fg_function *)func))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!dynamicSmemSize)
		return CUDA_ERROR_INVALID_VALUE;
	*dynamicSmemSize = 49152;
	return CUDA_SUCCESS;
}

CUresult cuLibraryEnumerateKernels(CUkernel *kernels, unsigned int numKernels, CUlibrary lib)
{
	(void)kernels;
	if (!module_get(lib))
		return CUDA_ERROR_INVALID_HANDLE;
	/* images are not parsed, so no kernel is known before it is asked for by name */
	return numKernels ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

CUresult cuModuleEnumerateFunctions(CUfunction *functions, unsigned int numFunctions,
				    CUmodule mod)
{
	return cuLibraryEnumerateKernels((CUkernel *)functions, numFunctions, (CUlibrary)mod);
}
