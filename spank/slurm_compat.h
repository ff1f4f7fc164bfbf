/* slurm-vgpu SPANK plugin: the libslurm API differences between the releases we build against
 * (22.05 to 26.05), in one place. ctld.c calls the vgpu_ names below and nothing else that
 * changed. Where a release is recognisable by a feature of its headers, that feature is the
 * test (not the version number), so an in-between release picks the right side. */
#ifndef VGPU_SPANK_SLURM_COMPAT_H
#define VGPU_SPANK_SLURM_COMPAT_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurm_version.h>

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 2, 0)
/* 23.02 made hostlist_t the struct itself (handles are hostlist_t *) and dropped
 * slurm_get_errno(): libslurm leaves its error code in errno. */
typedef hostlist_t *vgpu_hostlist_t;
static inline int vgpu_slurm_errno(void)
{
	return errno;
}
#else
typedef hostlist_t vgpu_hostlist_t;
static inline int vgpu_slurm_errno(void)
{
	return slurm_get_errno();
}
#endif

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 11, 0)
/* From 23.11 an RPC needs libslurm's hash plugins, which the "spank prolog/epilog" process of
 * slurmstepd does not load ("fatal: No hash plugins loaded"): slurm_init() loads what is
 * missing and keeps the configuration already read. Once per process, before the first RPC. */
static inline void vgpu_slurm_api_init(void)
{
	static int done;

	if (!done) {
		slurm_init(NULL);
		done = 1;
	}
}
#else
static inline void vgpu_slurm_api_init(void)
{
}
#endif

#ifdef SLURM_STEP_ID_INITIALIZER
/* 26.05 names jobs by slurm_step_id_t (job id + cluster-unique sluid) in the job RPCs and the
 * job descriptor, and the step's allocated TRES string is tres_fmt_alloc_str. */
static inline slurm_step_id_t vgpu_job_step_id(uint32_t job_id, uint32_t step_id)
{
	slurm_step_id_t id = SLURM_STEP_ID_INITIALIZER;

	id.job_id = job_id;
	id.step_id = step_id;
	return id;
}

static inline int vgpu_load_job(job_info_msg_t **resp, uint32_t job_id, uint16_t flags)
{
	vgpu_slurm_api_init();
	return slurm_load_job(resp, vgpu_job_step_id(job_id, NO_VAL), flags);
}

static inline int vgpu_get_job_step(uint32_t job_id, uint32_t step_id,
				    job_step_info_response_msg_t **resp)
{
	slurm_step_id_t id = vgpu_job_step_id(job_id, step_id);

	vgpu_slurm_api_init();
	return slurm_get_job_steps(&id, resp, SHOW_ALL);
}

static inline int vgpu_requeue(uint32_t job_id)
{
	vgpu_slurm_api_init();
	return slurm_requeue(vgpu_job_step_id(job_id, NO_VAL), 0);
}

static inline void vgpu_job_desc_set_id(job_desc_msg_t *desc, uint32_t job_id)
{
	desc->step_id = vgpu_job_step_id(job_id, NO_VAL);
}

#define VGPU_STEP_TRES_ALLOC(step) ((step)->tres_fmt_alloc_str)
#else
static inline int vgpu_load_job(job_info_msg_t **resp, uint32_t job_id, uint16_t flags)
{
	vgpu_slurm_api_init();
	return slurm_load_job(resp, job_id, flags);
}

static inline int vgpu_get_job_step(uint32_t job_id, uint32_t step_id,
				    job_step_info_response_msg_t **resp)
{
	vgpu_slurm_api_init();
	return slurm_get_job_steps(0, job_id, step_id, resp, SHOW_ALL);
}

static inline int vgpu_requeue(uint32_t job_id)
{
	vgpu_slurm_api_init();
	return slurm_requeue(job_id, 0);
}

static inline void vgpu_job_desc_set_id(job_desc_msg_t *desc, uint32_t job_id)
{
	desc->job_id = job_id;
}

#define VGPU_STEP_TRES_ALLOC(step) ((step)->tres_alloc_str)
#endif

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(24, 5, 0)
/* 24.05 added REQUEST_JOB_STATE (slurm_load_job_state): only the ids and states of the jobs
 * asked for, packed without the job records, so the cluster controller can check what its last
 * job-table read still says at a fraction of REQUEST_JOB_INFO's cost. Calls seen(job, state)
 * for every asked job slurmctld still holds; 0, or -1 with the error in vgpu_slurm_errno(). */
#define VGPU_HAVE_JOB_STATE_RPC 1
static inline int vgpu_job_states(const uint32_t *ids, uint32_t n,
				  void (*seen)(uint32_t job_id, uint32_t state, void *arg),
				  void *arg)
{
	int rv = -1;
	slurm_selected_step_t *sel = calloc(n ? n : 1, sizeof(*sel));
	job_state_response_msg_t *resp = NULL;

	if (!sel)
		goto fail;
	/* field by field: SLURM_SELECTED_STEP_INITIALIZER leaves 24.11's sluid out
	 * (-Wmissing-field-initializers); calloc zeroed the rest (sluid 0: any) */
	for (uint32_t i = 0; i < n; i++) {
		sel[i].array_task_id = NO_VAL;
		sel[i].het_job_offset = NO_VAL;
		sel[i].step_id.job_id = ids[i];
		sel[i].step_id.step_het_comp = NO_VAL;
		sel[i].step_id.step_id = NO_VAL;
	}
	vgpu_slurm_api_init();
	/* n == 0 would ask for every job of the cluster: nothing asked, nothing to say */
	if (n && slurm_load_job_state((int)n, sel, &resp) != SLURM_SUCCESS)
		goto fail;
	for (uint32_t i = 0; resp && i < resp->jobs_count; i++)
		seen(resp->jobs[i].job_id, resp->jobs[i].state, arg);
	rv = 0;
fail:
	if (resp)
		slurm_free_job_state_response_msg(resp);
	free(sel);
	return rv;
}
#else
#define VGPU_HAVE_JOB_STATE_RPC 0
static inline int vgpu_job_states(const uint32_t *ids, uint32_t n,
				  void (*seen)(uint32_t job_id, uint32_t state, void *arg),
				  void *arg)
{
	(void)ids;
	(void)n;
	(void)seen;
	(void)arg;
	errno = ENOSYS;
	return -1;
}
#endif

#endif
