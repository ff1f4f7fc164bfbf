/* slurm-vgpu SPANK plugin: which variables make a vgpu task's GPUs visible, by vendor. */
#ifndef VGPU_SPANK_VISIBLE_H
#define VGPU_SPANK_VISIBLE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "inventory.h"
#include "vgpu_abi.h"

#define VGPU_AMD_VISIBLE_ENV "ROCR_VISIBLE_DEVICES"
#define VGPU_MAX_ENV_OPS 16u

struct vgpu_env_op {
	char name[64];
	int unset;          /* 1: remove the variable; 0: set it to value */
	char value[VGPU_MAX_GPUS * (VGPU_UUID_LEN + 1)];
};

struct vgpu_env_ops {
	uint32_t n;
	uint32_t vendor;    /* the job's GPUs' vendor (enum vgpu_vendor) */
	struct vgpu_env_op op[VGPU_MAX_ENV_OPS];
};

/*
 * The task environment for a step's GPUs (docs/spank.md, "GPU vendors"). lim: the step's
 * limits (its GPUs, physical indices), or NULL for a step that holds no slices (every GPU
 * hidden). inv: the node inventory, which says each GPU's vendor (by uuid).
 *
 * - NVIDIA GPUs: every variable of visible_env= gets their indices (CUDA_VISIBLE_DEVICES
 *   by default); on a node whose inventory lists AMD GPUs, ROCR_VISIBLE_DEVICES is set
 *   empty (no AMD GPU), whatever visible_env says.
 * - AMD GPUs: ROCR_VISIBLE_DEVICES gets their UUIDs (GPU-<16 hex>); CUDA_VISIBLE_DEVICES,
 *   HIP_VISIBLE_DEVICES and the other visible_env= variables are removed (HIP reads the
 *   first two as a second, relative selection; an empty one would hide every device).
 * - No slices: every visible_env= variable empty, and ROCR_VISIBLE_DEVICES empty on a node
 *   with AMD GPUs.
 *
 * Returns 0, or -1 (err: a limits GPU that the inventory does not list, GPUs of two vendors,
 * a value too long).
 */
int vgpu_visible_env(const struct vgpu_config *cfg, const struct vgpu_inventory *inv,
		     const struct vgpu_limits *lim, struct vgpu_env_ops *ops, char *err,
		     size_t errlen);

#endif
