/* fakegpu libnvidia-ml: what the NVML files share. NVML ignores CUDA_VISIBLE_DEVICES and
 * indexes devices physically, like the real library. */
#ifndef FG_NVML_INTERNAL_H
#define FG_NVML_INTERNAL_H

#define _GNU_SOURCE
#define NVML_NO_UNVERSIONED_FUNC_DEFS
#include <nvml.h>

#include "fg_log.h"
#include "fg_state.h"

struct fg_nvml_device {
	unsigned index;
};

struct fg_state *fg_nvml_state(void);  /* NULL until nvmlInit succeeded */
int fg_nvml_initialized(void);
/* Resolve a handle; NULL when it is not one of ours (never dereferenced first). */
const struct fg_nvml_device *fg_nvml_device(nvmlDevice_t h);
nvmlDevice_t fg_nvml_handle(unsigned index);

#define NVML_DEV(h, d)                                              \
	const struct fg_nvml_device *d = NULL;                      \
	do {                                                        \
		if (!fg_nvml_initialized())                         \
			return NVML_ERROR_UNINITIALIZED;            \
		d = fg_nvml_device(h);                              \
		if (!d)                                             \
			return NVML_ERROR_INVALID_ARGUMENT;         \
	} while (0)

#endif /* FG_NVML_INTERNAL_H */
