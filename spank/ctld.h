/* slurm-vgpu SPANK plugin: the few questions asked of slurmctld (libslurm RPCs). Each RPC is
 * bounded by slurm.conf MessageTimeout (libslurm's own timeout); nothing here retries. */
#ifndef VGPU_SPANK_CTLD_H
#define VGPU_SPANK_CTLD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vgpu_job_alloc {
	uint32_t count;          /* slices of `gres` on this node; 0 = job has none here */
	uid_t uid;
	gid_t gid;
	uint32_t nnodes;         /* nodes of the job */
	char admin_comment[512]; /* current AdminComment, truncated */
	char partition[128];     /* the partition it runs in, "" when unknown or too long */
	char qos[128];           /* its QOS, "" when unknown or too long */
};

/* The job's `gres` count on `node` from gres_detail_str (slurm_load_job SHOW_DETAIL). */
int vgpu_ctld_job_alloc(uint32_t job_id, const char *node, const char *gres,
			struct vgpu_job_alloc *out, char *err, size_t errlen);

/* A step's `gres` allocation: *requested from tres_per_node (what srun --gres asked for per
 * node; 0 when it named none), *allocated from tres_alloc_str (the step's total, 0 when it got
 * none: srun --gres=vgpu:0 or --gres=none). 0, or -1 when the RPC failed or a string is
 * malformed. */
int vgpu_ctld_step_count(uint32_t job_id, uint32_t step_id, const char *gres,
			 uint32_t *requested, uint32_t *allocated);

/* Is the job still running (or completing) on `node`? 1 yes, 0 no, -1 cannot tell. */
int vgpu_ctld_job_on_node(uint32_t job_id, const char *node);

/* Is the job being requeued (pending again, or completing with a requeue flag)? 1, 0, or -1
 * when slurmctld cannot tell. */
int vgpu_ctld_job_requeued(uint32_t job_id);

/* Requeue the job (slurm_requeue, as root from the prolog or a step): slurmctld ends this
 * run and the job waits, PENDING, for its next one. 0, or -1 with err set (e.g. the job
 * does not allow requeueing). */
int vgpu_ctld_requeue(uint32_t job_id, char *err, size_t errlen);

/* Append `token` to the job's AdminComment (kept if already there; verified against the
 * other nodes' concurrent appends when the job has several nodes). 0 or -1. */
int vgpu_ctld_add_admin_comment(uint32_t job_id, uint32_t nnodes, const char *current,
				const char *token, char *err, size_t errlen);

#endif
