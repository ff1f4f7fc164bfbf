/* slurm-vgpu SPANK plugin: the per-job files of docs/contracts.md. */
#ifndef VGPU_SPANK_JOBFILES_H
#define VGPU_SPANK_JOBFILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "inventory.h"
#include "placement.h"
#include "vgpu_abi.h"

/* Fill a limits record for the placed entries (memory = slices x slice_bytes, compute
 * guaranteed = limit = slices x slice_permille). Returns -1 if an entry's GPU is not in inv. */
int vgpu_limits_build(struct vgpu_limits *lim, uint64_t job_id, uid_t uid, uint32_t share,
		      const struct vgpu_inventory *inv, const struct vgpu_place_entry *e,
		      uint32_t n, char *err, size_t errlen);

/* Write the root-owned 0644 limits file atomically. */
int vgpu_limits_write(const char *path, const struct vgpu_limits *lim, char *err,
		      size_t errlen);

/* Read and validate a limits file the way the hook does (root-owned, not group/other
 * writable, magic, version, size). */
int vgpu_limits_read(const char *path, struct vgpu_limits *lim, char *err, size_t errlen);

/*
 * Limits for an srun step holding `slices` (per node) of a job whose limits are `job`. A step
 * holding fewer slices than the job on a one-GPU placement gets the same record with the GPU's
 * slices, memory cap and compute shares cut to its slices (returns 1: write `out` as the
 * step's own limits file). Otherwise the job's limits apply as they are (returns 0). The step
 * shares the job's state file, so together its processes and the job's others stay within the
 * job's cap, and the step's alone within its own.
 */
int vgpu_limits_for_step(const struct vgpu_limits *job, uint32_t slices,
			 struct vgpu_limits *out);

/* Create the empty state file owned by uid:gid, mode 0600 (replacing a stale one). */
int vgpu_state_create(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen);

/* "0,2" from the limits' physical indices. */
int vgpu_visible_devices(const struct vgpu_limits *lim, char *out, size_t outlen);

/* Human/accounting summary "gpu0:3,gpu1:2" */
int vgpu_placement_summary(const struct vgpu_limits *lim, char *out, size_t outlen);

#endif
