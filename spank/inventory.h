/* slurm-vgpu SPANK plugin: the node inventory (docs/contracts.md), sliced GPUs only. */
#ifndef VGPU_SPANK_INVENTORY_H
#define VGPU_SPANK_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#include "vgpu_abi.h"

#define VGPU_MAX_SLICES_PER_GPU 100u

/* A GPU's maker (the inventory's vendor= token; a line without one is NVIDIA). It decides
 * which variable makes a job's GPUs visible (docs/spank.md). */
enum vgpu_vendor {
	VGPU_VENDOR_NVIDIA = 0,
	VGPU_VENDOR_AMD = 1,
};

struct vgpu_inv_gpu {
	uint32_t index;          /* physical (NVML) index */
	char uuid[VGPU_UUID_LEN];
	uint32_t slices;
	uint64_t slice_bytes;
	uint32_t slice_permille;
	uint32_t vendor;         /* enum vgpu_vendor */
};

struct vgpu_inventory {
	char node[64];           /* node= record, "" when absent */
	uint32_t ngpus;
	struct vgpu_inv_gpu gpu[VGPU_MAX_GPUS];
};

/* Load and validate. The file must be root-owned and not group/other-writable (it decides
 * limits). On error, err names the file, line and what to fix; returns -1. */
int vgpu_inventory_load(const char *path, struct vgpu_inventory *inv, char *err, size_t errlen);

/* Parse inventory text (no ownership checks); `path` is only used in messages. */
int vgpu_inventory_parse(const char *text, const char *path, struct vgpu_inventory *inv,
			 char *err, size_t errlen);

/* "nvidia" / "amd" */
const char *vgpu_vendor_name(uint32_t vendor);

/* Inventory position of the GPU with this uuid, or -1. */
int vgpu_inventory_find_uuid(const struct vgpu_inventory *inv, const char *uuid);

#endif
