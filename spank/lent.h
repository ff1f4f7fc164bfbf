/* slurm-vgpu SPANK plugin: the policy daemon's lent file (docs/contracts.md): which slices of
 * which GPUs the daemon lends back to Slurm, and which partitions/QOS may use them. */
#ifndef VGPU_SPANK_LENT_H
#define VGPU_SPANK_LENT_H

#include <stddef.h>
#include <stdint.h>

#include "inventory.h"
#include "placement.h"

#define VGPU_LENT_VERSION 2u
#define VGPU_LENT_NAMES_LEN 1024u

struct vgpu_lent {
	uint32_t slices[VGPU_MAX_GPUS];        /* lent slices, by inventory position */
	uint32_t total;                        /* sum of slices[] */
	char partitions[VGPU_LENT_NAMES_LEN];  /* comma-separated preemptible partitions */
	char qos[VGPU_LENT_NAMES_LEN];         /* comma-separated preemptible QOS */
};

/*
 * Read `path` (<runtime_dir>/lent) for this node. It must be root-owned, regular and not
 * group/other-writable; every record is checked: version=2, node= equal to `node`, one
 * `preemptible partitions=.. qos=..` record, `gpu index= uuid= slices=` records naming
 * inventory GPUs (same uuid) with 1..that GPU's slices, each GPU once.
 * Returns 1 when loaded, 0 when the file is absent (nothing lent), -1 with err set when it
 * is unusable. In every case other than 1, `out` says nothing is lent.
 */
int vgpu_lent_load(const char *path, const char *node, const struct vgpu_inventory *inv,
		   struct vgpu_lent *out, char *err, size_t errlen);

/* Parse lent-file text (no ownership checks); `path` is only used in messages. 0 or -1. */
int vgpu_lent_parse(const char *text, const char *path, const char *node,
		    const struct vgpu_inventory *inv, struct vgpu_lent *out, char *err,
		    size_t errlen);

/* 1 when `partition` or `qos` (either may be NULL or "") is listed as preemptible. */
int vgpu_lent_preemptible(const struct vgpu_lent *lent, const char *partition,
			  const char *qos);

/* vgpu_place_lent: the job is not preemptible, but it would fit with the lent slices, i.e.
 * slurmctld started it on the capacity the policy daemon lends (the prolog requeues it). */
#define VGPU_LENT_REFUSED 1

/*
 * Placement for a job that did not fit in the node's free slices: when `partition` or `qos`
 * is listed as preemptible in `lent`, vgpu_place with the lent slices added (best fit as
 * usual). A job that is not preemptible never gets lent slices. On entry err holds why the
 * normal placement failed; on failure it is extended with why the lent slices did not help
 * (nothing lent, not preemptible, still too few). 0 placed; VGPU_LENT_REFUSED when the job
 * is not preemptible and would have fitted on the lent slices (out is not filled); -1 not.
 */
int vgpu_place_lent(const struct vgpu_inventory *inv, const struct vgpu_placements *cur,
		    const struct vgpu_lent *lent, const char *partition, const char *qos,
		    uint32_t want, struct vgpu_place_entry *out, uint32_t *nout, char *err,
		    size_t errlen);

#endif
