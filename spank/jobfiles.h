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

/* Create the empty state file owned by uid:gid, mode 0600 (replacing a stale one). */
int vgpu_state_create(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen);

/* "0,2" from the limits' physical indices. */
int vgpu_visible_devices(const struct vgpu_limits *lim, char *out, size_t outlen);

/* Human/accounting summary "gpu0:3,gpu1:2" */
int vgpu_placement_summary(const struct vgpu_limits *lim, char *out, size_t outlen);

#endif
