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
	char admin_comment[512]; /* current AdminComment, truncated */
};

/* The job's `gres` count on `node` from gres_detail_str (slurm_load_job SHOW_DETAIL). */
int vgpu_ctld_job_alloc(uint32_t job_id, const char *node, const char *gres,
			struct vgpu_job_alloc *out, char *err, size_t errlen);

/* A step's `gres` count from its tres_per_node. 1 = found (*count set, may be 0), 0 = the step
 * names none (it inherits the job's), -1 = RPC failed or malformed. */
int vgpu_ctld_step_count(uint32_t job_id, uint32_t step_id, const char *gres, uint32_t *count);

/* Is the job still running (or completing) on `node`? 1 yes, 0 no, -1 cannot tell. */
int vgpu_ctld_job_on_node(uint32_t job_id, const char *node);

/* Append `token` to the job's AdminComment (kept if already there). 0 or -1. */
int vgpu_ctld_add_admin_comment(uint32_t job_id, const char *current, const char *token,
				char *err, size_t errlen);

#endif
