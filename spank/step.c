/* Per step, in slurmstepd (remote context): find the job's placement and set up each task's
 * environment. A job with no directory under runtime_dir/jobs/ (and no requeue note) is not a
 * vgpu job on this node and stays untouched: two stats, no RPC. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "ctld.h"
#include "fsutil.h"
#include "inventory.h"
#include "jobfiles.h"
#include "log.h"
#include "plugin.h"
#include "visible.h"

#define ERRLEN 512

enum step_mode {
	STEP_UNTOUCHED = 0, /* no vgpu: leave the environment alone */
	STEP_LIMITED,       /* preload the hook with the job's limits */
	STEP_NO_GPUS,       /* the step asked for zero slices: hide every GPU */
	STEP_DENIED,        /* on_error=deny and the job's slices are unusable */
};

static enum step_mode mode = STEP_UNTOUCHED;
static struct vgpu_inventory step_inventory; /* which vendor the job's GPUs are */
static struct vgpu_env_ops visible;          /* the visibility variables, by vendor */
static char limits_path[PATH_MAX + 16];
static char state_path[PATH_MAX + 16];
static struct vgpu_limits step_limits;
static char denial[2 * ERRLEN];
static struct vgpu_limits own_limits;  /* a step's cut-down limits, when it holds fewer */
static char own_limits_path[PATH_MAX + 32]; /* set while this step's own file exists */

/* on_error: deny fails the step's tasks with a message the user sees; allow runs them
 * unconstrained. Denial happens in task_init: a task_init failure makes Slurm exit the task
 * with status 1 before exec (srun and the job report a failure), while a user_init failure
 * would leave a batch job COMPLETED with nothing run. */
static int fail_step(const struct vgpu_config *cfg, uint32_t job_id, const char *why)
{
	if (cfg->on_error == VGPU_ON_ERROR_ALLOW) {
		mode = STEP_UNTOUCHED;
		vgpu_log_error("job %u: %s; running WITHOUT GPU limits (on_error=allow)", job_id,
			       why);
		return 0;
	}
	mode = STEP_DENIED;
	/* said in user_init: from init_post_opt it would reach only the slurmd log, not srun */
	(void)vgpu_fmt(denial, sizeof(denial), "job %u cannot get its GPU slices: %s "
		       "(on_error=deny; ask your administrator)", job_id, why);
	return 0;
}

int vgpu_step_has_slices(void)
{
	return mode != STEP_UNTOUCHED;
}

void vgpu_step_tell_user(void)
{
	if (mode == STEP_DENIED)
		slurm_error("vgpu: %s", denial);
}

static void limit_srun_step(spank_t sp, const struct vgpu_config *cfg, const char *dir,
			    uint32_t job_id, uint32_t step_id);

static int is_whole_job_step(uint32_t step_id)
{
	return step_id == SLURM_BATCH_SCRIPT || step_id == SLURM_EXTERN_CONT ||
	       step_id == SLURM_INTERACTIVE_STEP;
}

int vgpu_step_setup(spank_t sp, const struct vgpu_config *cfg)
{
	char node[256], runtime_dir[PATH_MAX], inv_path[PATH_MAX], err[ERRLEN];
	char dir[PATH_MAX], error_path[PATH_MAX + 16], msg[ERRLEN];
	uint32_t job_id = 0, step_id = 0;
	struct stat st;

	mode = STEP_UNTOUCHED;
	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step_id) != ESPANK_SUCCESS) {
		vgpu_log_error("cannot read the job and step id");
		return 0;
	}
	if (vgpu_node_paths(sp, cfg, node, sizeof(node), runtime_dir, inv_path, err,
			    sizeof(err)))
		return fail_step(cfg, job_id, err);
	if (vgpu_fmt(dir, sizeof(dir), "%s/jobs/%u", runtime_dir, job_id) ||
	    strlen(dir) + 16 >= PATH_MAX)
		return fail_step(cfg, job_id, "runtime_dir is too long");
	if (stat(dir, &st) && errno == ENOENT) {
		char marker[PATH_MAX + 16];

		/* No directory: not a vgpu job here, as the prolog found. Except on a requeued
		 * job's next run, for which slurmd runs no prolog again: its epilog left a note
		 * (root-owned, in the root-owned jobs dir) and the first step places from here. */
		(void)vgpu_fmt(marker, sizeof(marker), "%s.requeued", dir);
		if (stat(marker, &st))
			return 0;
		vgpu_log_debug("job %u: requeued, no prolog ran here; placing from step %u",
			       job_id, step_id);
		(void)vgpu_job_prolog(sp, cfg, 1);
	}
	if (stat(dir, &st)) {
		if (errno == ENOENT)
			return 0; /* not a vgpu job on this node */
		(void)vgpu_fmt(msg, sizeof(msg), "cannot stat %s: %s", dir, strerror(errno));
		return fail_step(cfg, job_id, msg);
	}
	(void)vgpu_fmt(error_path, sizeof(error_path), "%s/requeue", dir);
	if (vgpu_read_small(error_path, msg, sizeof(msg)) >= 0) {
		/* the prolog requeued the job (it landed on slices lent to preemptible jobs) and
		 * Slurm launched this step before the requeue ended the run: it must not run
		 * without its slices, whatever on_error says */
		mode = STEP_DENIED;
		(void)vgpu_fmt(denial, sizeof(denial), "job %u was requeued: it landed on GPU "
			       "slices lent to preemptible jobs; this run stops here and the job "
			       "runs again once slices are free", job_id);
		vgpu_log_info("job %u step %u: not started, the job was requeued", job_id,
			      step_id);
		return 0;
	}
	(void)vgpu_fmt(error_path, sizeof(error_path), "%s/error", dir);
	if (vgpu_read_small(error_path, msg, sizeof(msg)) >= 0) {
		struct vgpu_job_alloc alloc;

		/* the prolog could not finish; if slurmctld now says the job has no slices
		 * here, it is an ordinary job after all */
		if (vgpu_ctld_job_alloc(job_id, node, cfg->gres_name, &alloc, err,
					sizeof(err)) == 0 && alloc.count == 0)
			return 0;
		return fail_step(cfg, job_id, msg);
	}
	(void)vgpu_fmt(limits_path, sizeof(limits_path), "%s/limits", dir);
	(void)vgpu_fmt(state_path, sizeof(state_path), "%s/state", dir);
	if (vgpu_limits_read(limits_path, &step_limits, err, sizeof(err)))
		return fail_step(cfg, job_id, err);
	if (step_limits.job_id != job_id) {
		(void)vgpu_fmt(msg, sizeof(msg), "%s names job %llu", limits_path,
			 (unsigned long long)step_limits.job_id);
		return fail_step(cfg, job_id, msg);
	}
	if (access(cfg->hook, R_OK)) {
		(void)vgpu_fmt(msg, sizeof(msg), "hook library %s: %s (set hook= in plugstack.conf)",
			 cfg->hook, strerror(errno));
		return fail_step(cfg, job_id, msg);
	}
	/* the inventory says each GPU's vendor, hence which variable selects it */
	if (vgpu_inventory_load(inv_path, &step_inventory, err, sizeof(err)))
		return fail_step(cfg, job_id, err);
	mode = STEP_LIMITED;
	if (!is_whole_job_step(step_id))
		limit_srun_step(sp, cfg, dir, job_id, step_id);
	if (vgpu_visible_env(cfg, &step_inventory, mode == STEP_NO_GPUS ? NULL : &step_limits,
			     &visible, err, sizeof(err)))
		return fail_step(cfg, job_id, err);
	if (vgpu_step_anchor_write(job_id, step_id))
		return fail_step(cfg, job_id, "cannot write its step anchor in " VGPU_STEP_DIR);
	return 0;
}

/* srun steps may hold fewer slices (--gres=vgpu:N) or none (--gres=vgpu:0 / --gres=none): a
 * zero-slice step sees no GPU; a smaller one gets its own limits file (root-owned, beside the
 * job's, removed when the step ends); any doubt leaves the job's limits in force. */
static void limit_srun_step(spank_t sp, const struct vgpu_config *cfg, const char *dir,
			    uint32_t job_id, uint32_t step_id)
{
	uint32_t requested = 0, allocated = 0, nnodes = 0, per_node;
	char err[ERRLEN];

	if (vgpu_ctld_step_count(job_id, step_id, cfg->gres_name, &requested, &allocated)) {
		vgpu_log_debug("step %u.%u: cannot learn its %s count; the job's limits apply",
			       job_id, step_id, cfg->gres_name);
		return;
	}
	if (allocated == 0) {
		mode = STEP_NO_GPUS;
		vgpu_log_debug("step %u.%u holds no %s: GPUs hidden", job_id, step_id,
			       cfg->gres_name);
		return;
	}
	/* tres_per_node is per node; tres_alloc_str is the step's total over its nodes */
	if (spank_get_item(sp, S_JOB_NNODES, &nnodes) != ESPANK_SUCCESS || nnodes == 0)
		nnodes = 1;
	per_node = requested ? requested : (nnodes == 1 ? allocated : 0);
	vgpu_log_debug("step %u.%u holds %u %s (%u per node asked)", job_id, step_id, allocated,
		       cfg->gres_name, requested);
	if (vgpu_limits_for_step(&step_limits, per_node, &own_limits) != 1)
		return;
	if (geteuid() != 0) {
		vgpu_log_debug("step %u.%u: not root here; the job's limits apply", job_id, step_id);
		return;
	}
	if (vgpu_fmt(own_limits_path, sizeof(own_limits_path), "%s/step.%u.limits", dir,
		     step_id) ||
	    vgpu_limits_write(own_limits_path, &own_limits, err, sizeof(err))) {
		vgpu_log_error("step %u.%u: %s; the job's limits apply", job_id, step_id, err);
		own_limits_path[0] = '\0';
		return;
	}
	(void)vgpu_fmt(limits_path, sizeof(limits_path), "%s", own_limits_path);
}

/* /proc/<pid>/stat field 22 (start time in clock ticks), or 0 (gone). */
static unsigned long long proc_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = vgpu_read_small(path, buf, sizeof(buf));
	if (n <= 0 || !(p = strrchr(buf, ')')))
		return 0;
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static char anchor_path[PATH_MAX];

/* Remove anchors left by slurmstepds that are gone (crashed, killed): their pid is dead or
 * now another process. They are inert (the hook compares the start time) but would pile up. */
static void sweep_anchors(void)
{
	DIR *d = opendir(VGPU_STEP_DIR);
	struct dirent *e;
	int seen = 0;

	if (!d)
		return;
	while ((e = readdir(d)) && seen++ < 4096) {
		char path[PATH_MAX], buf[256], *p;
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (pid <= 0 || *end)
			continue;
		if (vgpu_fmt(path, sizeof(path), "%s/%s", VGPU_STEP_DIR, e->d_name) ||
		    vgpu_read_small(path, buf, sizeof(buf)) <= 0 || !(p = strstr(buf, "start=")))
			continue;
		if (proc_start_time((pid_t)pid) != strtoull(p + 6, NULL, 10))
			(void)unlink(path);
	}
	closedir(d);
}

/* The step anchor (vgpu_abi.h): tells the hook in every process below this slurmstepd which
 * limits and state are this step's, from a root-owned file no job variable can redirect. */
int vgpu_step_anchor_write(uint32_t job_id, uint32_t step_id)
{
	char buf[3 * PATH_MAX], err[ERRLEN];
	int rv = -1;

	if (mode != STEP_LIMITED && mode != STEP_NO_GPUS)
		return 0;
	if (geteuid() != 0) {
		vgpu_log_debug("step %u.%u: not root here; no step anchor", job_id, step_id);
		return 0;
	}
	if (vgpu_fmt(anchor_path, sizeof(anchor_path), "%s/%d", VGPU_STEP_DIR, (int)getpid()) ||
	    vgpu_fmt(buf, sizeof(buf), "job=%u\nstep=%u\nstart=%llu\nlimits=%s\nstate=%s\n",
		     job_id, step_id, proc_start_time(getpid()),
		     mode == STEP_LIMITED ? limits_path : "-",
		     mode == STEP_LIMITED ? state_path : "-")) {
		vgpu_log_error("step %u.%u: step anchor path or content too long", job_id, step_id);
		goto fail;
	}
	sweep_anchors();
	if (vgpu_mkdir_root(VGPU_STEP_DIR, 0755, err, sizeof(err)) ||
	    vgpu_write_atomic(anchor_path, buf, strlen(buf), 0644, err, sizeof(err))) {
		vgpu_log_error("step %u.%u: %s", job_id, step_id, err);
		goto fail;
	}
	rv = 0;
fail:
	if (rv)
		anchor_path[0] = '\0';
	return rv;
}

void vgpu_step_exit(void)
{
	if (own_limits_path[0] && geteuid() == 0) {
		(void)unlink(own_limits_path);
		own_limits_path[0] = '\0';
	}
	if (anchor_path[0] && geteuid() == 0) {
		(void)unlink(anchor_path);
		anchor_path[0] = '\0';
	}
}

/* Set (or remove) the visibility variables chosen in step setup (visible.h). */
static int set_visible(spank_t sp)
{
	for (uint32_t i = 0; i < visible.n; i++) {
		const struct vgpu_env_op *o = &visible.op[i];

		if (o->unset) {
			spank_err_t rc = spank_unsetenv(sp, o->name);

			/* unsetting a variable the task does not have is fine */
			if (rc != ESPANK_SUCCESS && rc != ESPANK_ENV_NOEXIST)
				return -1;
		} else if (spank_setenv(sp, o->name, o->value, 1) != ESPANK_SUCCESS) {
			return -1;
		}
	}
	return 0;
}

/* LD_PRELOAD: the hook first (it must interpose before anything else resolves cu*), then
 * whatever the user preloads; never twice (nested srun inherits the batch step's value). */
static int set_preload(spank_t sp, const char *hook)
{
	char cur[4096], val[8192];
	const char *p;
	size_t hlen = strlen(hook);

	if (spank_getenv(sp, "LD_PRELOAD", cur, sizeof(cur)) != ESPANK_SUCCESS)
		cur[0] = '\0';
	for (p = cur; (p = strstr(p, hook)); p += hlen)
		if ((p == cur || p[-1] == ':' || p[-1] == ' ') &&
		    (p[hlen] == '\0' || p[hlen] == ':' || p[hlen] == ' '))
			return 0;
	if (cur[0])
		snprintf(val, sizeof(val), "%s:%s", hook, cur);
	else
		snprintf(val, sizeof(val), "%s", hook);
	return spank_setenv(sp, "LD_PRELOAD", val, 1) == ESPANK_SUCCESS ? 0 : -1;
}

int vgpu_task_setup(spank_t sp, const struct vgpu_config *cfg)
{
	if (mode == STEP_UNTOUCHED)
		return 0;
	if (mode == STEP_DENIED)
		return -1; /* the reason was logged once per step in user_init */
	if (mode == STEP_NO_GPUS) {
		/* a step inside a vgpu job inherits the batch step's variables: drop them */
		(void)spank_unsetenv(sp, "VGPU_LIMITS");
		(void)spank_unsetenv(sp, "VGPU_STATE");
		return set_visible(sp) ? -1 : 0;
	}
	if (set_visible(sp) || set_preload(sp, cfg->hook) ||
	    spank_setenv(sp, "VGPU_LIMITS", limits_path, 1) != ESPANK_SUCCESS ||
	    spank_setenv(sp, "VGPU_STATE", state_path, 1) != ESPANK_SUCCESS) {
		slurm_error("vgpu: cannot set the task environment");
		return -1;
	}
	return 0;
}
