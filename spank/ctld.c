/* libslurm RPCs to slurmctld. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctld.h"
#include "gres.h"
#include "slurm_compat.h"

/* Position of node in the job's node list, or -1. */
static int node_position(const char *nodes, const char *node)
{
	vgpu_hostlist_t hl;
	int pos;

	if (!nodes || !node || !node[0])
		return -1;
	hl = slurm_hostlist_create(nodes);
	if (!hl)
		return -1;
	pos = slurm_hostlist_find(hl, node);
	slurm_hostlist_destroy(hl);
	return pos;
}

int vgpu_ctld_job_alloc(uint32_t job_id, const char *node, const char *gres,
			struct vgpu_job_alloc *out, char *err, size_t errlen)
{
	job_info_msg_t *resp = NULL;
	slurm_job_info_t *j = NULL;
	int rv = -1, pos;

	memset(out, 0, sizeof(*out));
	if (vgpu_load_job(&resp, job_id, SHOW_DETAIL) != SLURM_SUCCESS || !resp) {
		snprintf(err, errlen, "cannot ask slurmctld about job %u: %s", job_id,
			 slurm_strerror(vgpu_slurm_errno()));
		goto fail;
	}
	for (uint32_t i = 0; i < resp->record_count; i++)
		if (resp->job_array[i].job_id == job_id)
			j = &resp->job_array[i];
	if (!j) {
		snprintf(err, errlen, "slurmctld does not know job %u", job_id);
		goto fail;
	}
	out->uid = (uid_t)j->user_id;
	out->nnodes = j->num_nodes;
	out->gid = (gid_t)j->group_id;
	snprintf(out->admin_comment, sizeof(out->admin_comment), "%s",
		 j->admin_comment ? j->admin_comment : "");
	/* a truncated name must never match a preemptible one: unknown instead */
	if (snprintf(out->partition, sizeof(out->partition), "%s",
		     j->partition ? j->partition : "") >= (int)sizeof(out->partition))
		out->partition[0] = '\0';
	if (snprintf(out->qos, sizeof(out->qos), "%s", j->qos ? j->qos : "") >=
	    (int)sizeof(out->qos))
		out->qos[0] = '\0';
	if (j->gres_detail_cnt == 0) {
		rv = 0; /* no GRES at all */
		goto fail;
	}
	pos = node_position(j->nodes, node);
	if (pos < 0 && j->gres_detail_cnt == 1)
		pos = 0; /* one node: its detail is the only one */
	if (pos < 0 || (uint32_t)pos >= j->gres_detail_cnt) {
		snprintf(err, errlen, "node %s is not among job %u's nodes (%s)",
			 node && node[0] ? node : "(unknown)", job_id, j->nodes ? j->nodes : "");
		goto fail;
	}
	if (vgpu_gres_detail_count(j->gres_detail_str[pos], gres, &out->count)) {
		snprintf(err, errlen, "cannot read the %s count of job %u from '%s'", gres, job_id,
			 j->gres_detail_str[pos] ? j->gres_detail_str[pos] : "");
		goto fail;
	}
	rv = 0;
fail:
	if (resp)
		slurm_free_job_info_msg(resp);
	return rv;
}

int vgpu_ctld_step_count(uint32_t job_id, uint32_t step_id, const char *gres,
			 uint32_t *requested, uint32_t *allocated)
{
	job_step_info_response_msg_t *resp = NULL;
	int rv = -1;

	*requested = 0;
	*allocated = 0;
	if (vgpu_get_job_step(job_id, step_id, &resp) != SLURM_SUCCESS || !resp)
		goto fail;
	for (uint32_t i = 0; i < resp->job_step_count; i++) {
		job_step_info_t *s = &resp->job_steps[i];

		if (s->step_id.job_id != job_id || s->step_id.step_id != step_id)
			continue;
		if (vgpu_tres_count(s->tres_per_node, gres, requested) < 0 ||
		    vgpu_tres_alloc_count(VGPU_STEP_TRES_ALLOC(s), gres, allocated))
			break;
		rv = 0;
		break;
	}
fail:
	if (resp)
		slurm_free_job_step_info_response_msg(resp);
	return rv;
}

int vgpu_ctld_job_on_node(uint32_t job_id, const char *node)
{
	job_info_msg_t *resp = NULL;
	int rv = 0;

	if (vgpu_load_job(&resp, job_id, 0) != SLURM_SUCCESS || !resp) {
		int e = vgpu_slurm_errno();

		return e == ESLURM_INVALID_JOB_ID ? 0 : -1;
	}
	for (uint32_t i = 0; i < resp->record_count; i++) {
		slurm_job_info_t *j = &resp->job_array[i];
		uint32_t base = j->job_state & JOB_STATE_BASE;

		if (j->job_id != job_id)
			continue;
		if ((base == JOB_RUNNING || base == JOB_SUSPENDED ||
		     (j->job_state & JOB_COMPLETING)) && node_position(j->nodes, node) >= 0)
			rv = 1;
	}
	slurm_free_job_info_msg(resp);
	return rv;
}

int vgpu_ctld_job_requeued(uint32_t job_id)
{
	job_info_msg_t *resp = NULL;
	int rv = 0;

	if (vgpu_load_job(&resp, job_id, 0) != SLURM_SUCCESS || !resp)
		return -1;
	for (uint32_t i = 0; i < resp->record_count; i++) {
		slurm_job_info_t *j = &resp->job_array[i];

		if (j->job_id != job_id)
			continue;
		if ((j->job_state & JOB_STATE_BASE) == JOB_PENDING ||
		    (j->job_state & (JOB_REQUEUE | JOB_REQUEUE_HOLD | JOB_SPECIAL_EXIT |
				     JOB_REQUEUE_FED)))
			rv = 1;
	}
	slurm_free_job_info_msg(resp);
	return rv;
}

int vgpu_ctld_requeue(uint32_t job_id, char *err, size_t errlen)
{
	if (vgpu_requeue(job_id) != SLURM_SUCCESS) {
		snprintf(err, errlen, "cannot requeue job %u: %s", job_id,
			 slurm_strerror(vgpu_slurm_errno()));
		return -1;
	}
	return 0;
}

/* The job's current AdminComment into buf ("" when none). 0 or -1. */
static int load_admin_comment(uint32_t job_id, char *buf, size_t len)
{
	job_info_msg_t *resp = NULL;
	int rv = -1;

	buf[0] = '\0';
	if (vgpu_load_job(&resp, job_id, 0) != SLURM_SUCCESS || !resp)
		return -1;
	for (uint32_t i = 0; i < resp->record_count; i++) {
		if (resp->job_array[i].job_id != job_id)
			continue;
		snprintf(buf, len, "%s", resp->job_array[i].admin_comment ?
			 resp->job_array[i].admin_comment : "");
		rv = 0;
	}
	slurm_free_job_info_msg(resp);
	return rv;
}

int vgpu_ctld_add_admin_comment(uint32_t job_id, uint32_t nnodes, const char *current,
				const char *token, char *err, size_t errlen)
{
	char now[1024], buf[1100];

	snprintf(now, sizeof(now), "%s", current ? current : "");
	/* The prologs of a multi-node job run at once on every node and each appends its own
	 * token: there, read back after a short pause and append again if another node's write
	 * replaced ours (bounded: 4 rounds). A one-node job writes once. */
	for (int attempt = 0; attempt < 4; attempt++) {
		job_desc_msg_t desc;

		if (attempt > 0) {
			struct timespec pause = { 0, (long)(job_id % 5 + attempt) * 4000000L };

			nanosleep(&pause, NULL);
			if (load_admin_comment(job_id, now, sizeof(now)))
				break;
		}
		if (strstr(now, token))
			return 0;
		snprintf(buf, sizeof(buf), "%s%s%s", now, now[0] ? ";" : "", token);
		slurm_init_job_desc_msg(&desc);
		vgpu_job_desc_set_id(&desc, job_id);
		desc.admin_comment = buf;
		vgpu_slurm_api_init();
		if (slurm_update_job(&desc) != SLURM_SUCCESS) {
			snprintf(err, errlen, "cannot record the placement in job %u's "
				 "AdminComment: %s", job_id, slurm_strerror(vgpu_slurm_errno()));
			return -1;
		}
		if (nnodes <= 1)
			return 0;
	}
	snprintf(err, errlen, "could not confirm placement token %s in job %u's AdminComment",
		 token, job_id);
	return -1;
}
