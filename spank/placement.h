/* slurm-vgpu SPANK plugin: which slices of which GPUs each job on this node holds. */
#ifndef VGPU_SPANK_PLACEMENT_H
#define VGPU_SPANK_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "inventory.h"

#define VGPU_MAX_PLACEMENTS 4096u

struct vgpu_place_entry {
	uint32_t job_id;
	uint32_t gpu_index; /* physical index, as in the inventory */
	uint32_t slices;
};

struct vgpu_placements {
	uint32_t n;
	struct vgpu_place_entry e[VGPU_MAX_PLACEMENTS];
};

/*
 * Choose slices for a job wanting `want` (> 0): best fit on one GPU (the GPU whose free
 * slices are the fewest that still hold `want`; ties go to the lower inventory position),
 * otherwise span GPUs, most-free first, each GPU capped at its own share. Writes up to
 * VGPU_MAX_GPUS entries (job_id 0) to out. Returns 0, or -1 when the node lacks `want` free
 * slices (err says how many are free).
 *
 * lent: NULL, or per inventory position the slices the policy daemon lends on that GPU (only
 * for a preemptible job): a GPU's free slices are then slices + lent - booked, never more than
 * the GPU's slices (one job's share of a GPU stays within the GPU).
 */
int vgpu_place(const struct vgpu_inventory *inv, const struct vgpu_placements *cur,
	       const uint32_t *lent, uint32_t want, struct vgpu_place_entry *out,
	       uint32_t *nout, char *err, size_t errlen);

/* Free slices of inventory GPU i given the current placements. */
uint32_t vgpu_gpu_free(const struct vgpu_inventory *inv, const struct vgpu_placements *cur,
		       uint32_t i);

/* Text form: "job=<id> gpu=<index> slices=<n>" per line; '#' comments. Missing file = empty.*/
int vgpu_placements_read(const char *path, struct vgpu_placements *pl, char *err,
			 size_t errlen);
int vgpu_placements_write(const char *path, const struct vgpu_placements *pl, char *err,
			  size_t errlen);

/* Remove every entry of job_id; returns how many were removed. */
uint32_t vgpu_placements_drop(struct vgpu_placements *pl, uint32_t job_id);

/* Append entries; returns -1 if the table is full. */
int vgpu_placements_add(struct vgpu_placements *pl, uint32_t job_id,
			const struct vgpu_place_entry *add, uint32_t nadd);

#endif
