/* Once per job and node (slurmd's prolog/epilog, as root): place slices, write the per-job
 * files, and release them again. A failure here must not fail the prolog (Slurm would drain
 * the node), so it is written to jobs/<id>/error and the job's steps apply on_error. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "ctld.h"
#include "fsutil.h"
#include "inventory.h"
#include "jobfiles.h"
#include "lent.h"
#include "log.h"
#include "placement.h"
#include "plugin.h"
#include "vgpu_state.h"

#define ERRLEN 512

/* Big tables live in static storage, not on slurmstepd's stack. */
static struct vgpu_placements table;
static struct vgpu_inventory inventory;
static struct vgpu_limits limits;
static struct vgpu_lent lent;

struct node_ctx {
	char node[256];
	char runtime_dir[PATH_MAX];
	char inventory[PATH_MAX];
	char jobs_dir[PATH_MAX];
	char table_path[PATH_MAX];
	char lock_path[PATH_MAX];
	char reconcile_path[PATH_MAX];
	char lent_path[PATH_MAX];
	char refused_path[PATH_MAX];
};

static int node_ctx_init(spank_t sp, const struct vgpu_config *cfg, struct node_ctx *nc,
			 char *err, size_t errlen)
{
	if (vgpu_node_paths(sp, cfg, nc->node, sizeof(nc->node), nc->runtime_dir, nc->inventory,
			    err, errlen))
		return -1;
	if (vgpu_fmt(nc->jobs_dir, sizeof(nc->jobs_dir), "%s/jobs", nc->runtime_dir) ||
	    vgpu_fmt(nc->table_path, sizeof(nc->table_path), "%s/placements", nc->runtime_dir) ||
	    vgpu_fmt(nc->lock_path, sizeof(nc->lock_path), "%s/placements.lock",
		     nc->runtime_dir) ||
	    vgpu_fmt(nc->reconcile_path, sizeof(nc->reconcile_path), "%s/reconcile",
		     nc->runtime_dir) ||
	    vgpu_fmt(nc->lent_path, sizeof(nc->lent_path), "%s/lent", nc->runtime_dir) ||
	    vgpu_fmt(nc->refused_path, sizeof(nc->refused_path), "%s/lent.refused",
		     nc->runtime_dir) ||
	    /* room for "/<jobid>/limits.tmp.<pid>" below jobs_dir */
	    strlen(nc->jobs_dir) + 48 >= PATH_MAX) {
		vgpu_fmt(err, errlen, "runtime_dir %s is too long", nc->runtime_dir);
		return -1;
	}
	return 0;
}

static void job_dir_path(const struct node_ctx *nc, uint32_t job_id, char *out, size_t len)
{
	(void)vgpu_fmt(out, len, "%s/%u", nc->jobs_dir, job_id); /* length checked in init */
}

/* Leave the reason where the job's steps will find it (root-owned, readable). */
static void record_error(const struct node_ctx *nc, uint32_t job_id, const char *msg)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], err[ERRLEN];

	vgpu_log_error("job %u: %s", job_id, msg);
	job_dir_path(nc, job_id, dir, sizeof(dir));
	if (vgpu_mkdir_root(nc->jobs_dir, 0755, err, sizeof(err)) ||
	    vgpu_mkdir_root(dir, 0755, err, sizeof(err))) {
		vgpu_log_error("job %u: cannot record the error: %s", job_id, err);
		return;
	}
	(void)vgpu_fmt(path, sizeof(path), "%s/error", dir);
	if (vgpu_write_atomic(path, msg, strlen(msg), 0644, err, sizeof(err)))
		vgpu_log_error("job %u: cannot record the error: %s", job_id, err);
}

/* Drop placements and job dirs of jobs slurmctld no longer runs on this node. Keeps entries
 * it cannot decide about (slurmctld unreachable): a stale entry only wastes slices, a wrongly
 * dropped one would double-book them. Called with the table lock held. */
static void reconcile(const struct node_ctx *nc, uint32_t self)
{
	uint32_t checked[VGPU_MAX_PLACEMENTS];
	uint32_t nchecked = 0;
	char err[ERRLEN];
	DIR *d;
	struct dirent *de;

	for (uint32_t i = 0; i < table.n; ) {
		uint32_t job = table.e[i].job_id;
		int seen = 0;

		for (uint32_t k = 0; k < nchecked; k++)
			seen |= checked[k] == job;
		if (seen || job == self) {
			i++;
			continue;
		}
		checked[nchecked++] = job;
		if (vgpu_ctld_job_on_node(job, nc->node) == 0) {
			char dir[PATH_MAX];

			vgpu_log_info("reconcile: job %u no longer runs on %s; freeing its slices",
				      job, nc->node);
			vgpu_placements_drop(&table, job);
			job_dir_path(nc, job, dir, sizeof(dir));
			if (vgpu_remove_dir(dir, err, sizeof(err)))
				vgpu_log_error("reconcile: %s", err);
			continue; /* entries shifted; re-read index i */
		}
		i++;
	}
	/* job dirs with no placement (e.g. an error record of a job that is gone) */
	d = opendir(nc->jobs_dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end = NULL;
		unsigned long job = strtoul(de->d_name, &end, 10);
		int placed = 0;
		char dir[PATH_MAX];

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || job == self)
			continue;
		if (!strcmp(end, ".requeued")) {
			char marker[PATH_MAX + 16];

			if (vgpu_ctld_job_on_node((uint32_t)job, nc->node) == 0 &&
			    vgpu_ctld_job_requeued((uint32_t)job) == 0) {
				(void)vgpu_fmt(marker, sizeof(marker), "%s/%s", nc->jobs_dir,
					       de->d_name);
				(void)unlink(marker);
			}
			continue;
		}
		if (*end)
			continue;
		for (uint32_t i = 0; i < table.n; i++)
			placed |= table.e[i].job_id == job;
		if (placed || vgpu_ctld_job_on_node((uint32_t)job, nc->node) != 0)
			continue;
		job_dir_path(nc, (uint32_t)job, dir, sizeof(dir));
		if (vgpu_remove_dir(dir, err, sizeof(err)))
			vgpu_log_error("reconcile: %s", err);
	}
	closedir(d);
}

/* "pid starttime" of our parent, slurmd (it forks the SPANK prolog). A different value than
 * the one recorded means slurmd restarted (or the node rebooted) since the last placement:
 * jobs may have ended without their epilog, so the table is reconciled. Returns 0 or -1. */
static int slurmd_identity(char *out, size_t len)
{
	char path[64], stat_buf[1024], *p;
	unsigned long long start = 0;
	pid_t ppid = getppid();
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)ppid);
	if (vgpu_read_small(path, stat_buf, sizeof(stat_buf)) <= 0)
		return -1;
	p = strrchr(stat_buf, ')'); /* comm may contain spaces; fields restart after ')' */
	if (!p)
		return -1;
	/* after ')' come field 3 (state) onwards; starttime is field 22 */
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &start) != 1)
		return -1;
	return vgpu_fmt(out, len, "%d %llu\n", (int)ppid, start);
}

static int slurmd_restarted(const struct node_ctx *nc, char *current, size_t len)
{
	char path[PATH_MAX + 16], recorded[128];

	if (slurmd_identity(current, len))
		return 0;
	(void)vgpu_fmt(path, sizeof(path), "%s/slurmd.id", nc->runtime_dir);
	if (vgpu_read_small(path, recorded, sizeof(recorded)) < 0)
		return 1; /* first placement since the runtime dir was made (or /run was wiped) */
	return strcmp(recorded, current) != 0;
}

static void record_slurmd(const struct node_ctx *nc, const char *current)
{
	char path[PATH_MAX + 16], err[ERRLEN];

	(void)vgpu_fmt(path, sizeof(path), "%s/slurmd.id", nc->runtime_dir);
	if (current[0] && vgpu_write_atomic(path, current, strlen(current), 0644, err, sizeof(err)))
		vgpu_log_error("%s", err);
}

/* A job that does not fit in the free slices may use the slices the policy daemon lends
 * (<runtime_dir>/lent) when it is preemptible by the file's own list (vgpu_place_lent). A
 * bad file means nothing is lent. On failure err (the normal placement's reason) says why
 * the lent slices did not help. 0 placed, VGPU_LENT_REFUSED when the job is not preemptible
 * but fits only on the lent slices (slurmctld started it on them), -1 not. The table lock is
 * held. */
static int place_on_lent(const struct node_ctx *nc, uint32_t job_id,
			 const struct vgpu_job_alloc *alloc, struct vgpu_place_entry *chosen,
			 uint32_t *nchosen, char *err, size_t errlen)
{
	char why[ERRLEN];
	int rc;

	rc = vgpu_lent_load(nc->lent_path, nc->node, &inventory, &lent, why, sizeof(why));
	if (rc < 0) {
		vgpu_log_error("job %u: ignoring the lent file, nothing counts as lent: %s", job_id,
			       why);
		return -1;
	}
	if (rc == 0)
		return -1;
	rc = vgpu_place_lent(&inventory, &table, &lent, alloc->partition, alloc->qos,
			     alloc->count, chosen, nchosen, err, errlen);
	if (rc)
		return rc == VGPU_LENT_REFUSED ? VGPU_LENT_REFUSED : -1;
	vgpu_log_info("job %u (partition %s, QOS %s: preemptible) uses slices lent by the policy "
		      "daemon", job_id, alloc->partition[0] ? alloc->partition : "(unknown)",
		      alloc->qos[0] ? alloc->qos : "(unknown)");
	return 0;
}

/* Place the job and write its files; the lock is held by the caller. 0, VGPU_LENT_REFUSED
 * (see place_on_lent; nothing written) or -1. */
static int place_job(const struct node_ctx *nc, uint32_t job_id,
		     const struct vgpu_job_alloc *alloc, uint32_t share, int parent_is_slurmd,
		     char *summary, size_t summarylen, char *err, size_t errlen)
{
	struct vgpu_place_entry chosen[VGPU_MAX_GPUS];
	char dir[PATH_MAX], limits_path[PATH_MAX + 16], state_path[PATH_MAX + 16];
	char error_path[PATH_MAX + 16], identity[128];
	uint32_t nchosen = 0;
	struct stat st;
	int rv = -1;

	if (vgpu_placements_read(nc->table_path, &table, err, errlen))
		goto fail;
	vgpu_placements_drop(&table, job_id); /* a requeued job starts afresh */
	identity[0] = '\0';
	if ((parent_is_slurmd && slurmd_restarted(nc, identity, sizeof(identity))) ||
	    stat(nc->reconcile_path, &st) == 0) {
		vgpu_log_info("reconciling %s's placements with slurmctld", nc->node);
		reconcile(nc, job_id);
		(void)unlink(nc->reconcile_path);
		record_slurmd(nc, identity);
	}
	if (vgpu_place(&inventory, &table, NULL, alloc->count, chosen, &nchosen, err, errlen)) {
		/* maybe slices of jobs that ended without an epilog are still booked */
		reconcile(nc, job_id);
		if (vgpu_place(&inventory, &table, NULL, alloc->count, chosen, &nchosen, err,
			       errlen)) {
			int lr = place_on_lent(nc, job_id, alloc, chosen, &nchosen, err, errlen);

			if (lr == VGPU_LENT_REFUSED)
				rv = VGPU_LENT_REFUSED;
			if (lr)
				goto fail;
		}
	}
	if (vgpu_limits_build(&limits, job_id, alloc->uid, share, &inventory, chosen, nchosen,
			      err, errlen))
		goto fail;
	job_dir_path(nc, job_id, dir, sizeof(dir));
	(void)vgpu_fmt(limits_path, sizeof(limits_path), "%s/limits", dir);
	(void)vgpu_fmt(state_path, sizeof(state_path), "%s/state", dir);
	(void)vgpu_fmt(error_path, sizeof(error_path), "%s/error", dir);
	if (vgpu_mkdir_root(nc->jobs_dir, 0755, err, errlen) ||
	    vgpu_mkdir_root(dir, 0755, err, errlen))
		goto fail;
	(void)unlink(error_path);
	{
		char marker[PATH_MAX + 16];

		(void)vgpu_fmt(marker, sizeof(marker), "%s.requeued", dir);
		(void)unlink(marker);
	}
	if (vgpu_state_create(state_path, alloc->uid, alloc->gid, err, errlen) ||
	    vgpu_limits_write(limits_path, &limits, err, errlen))
		goto fail;
	if (vgpu_placements_add(&table, job_id, chosen, nchosen)) {
		vgpu_fmt(err, errlen, "the placement table of %s is full", nc->table_path);
		goto fail;
	}
	/* the table is written last: a crash before this leaves files but no booking, and the
	 * next prolog of this job id (or reconcile) replaces them */
	if (vgpu_placements_write(nc->table_path, &table, err, errlen))
		goto fail;
	(void)vgpu_placement_summary(&limits, summary, summarylen);
	rv = 0;
fail:
	if (rv) {
		char rmerr[ERRLEN];

		job_dir_path(nc, job_id, dir, sizeof(dir));
		if (vgpu_remove_dir(dir, rmerr, sizeof(rmerr)))
			vgpu_log_error("job %u: %s", job_id, rmerr);
	}
	return rv;
}

/* <runtime_dir>/lent.refused (docs/contracts.md): tells the policy daemon that a job that is
 * not preemptible was started on the capacity it lends, so it withdraws the offer. */
static void mark_lent_refused(const struct node_ctx *nc, uint32_t job_id, uint32_t count)
{
	char text[128], err[ERRLEN];

	(void)vgpu_fmt(text, sizeof(text), "time=%lld job=%u slices=%u\n",
		       (long long)time(NULL), job_id, count);
	if (vgpu_write_atomic(nc->refused_path, text, strlen(text), 0644, err, sizeof(err)))
		vgpu_log_error("job %u: %s", job_id, err);
}

/* A job that is not preemptible landed on lent slices: requeue it (it runs again, PENDING
 * first, once slurmctld finds real capacity). The note jobs/<id>/requeue, written first,
 * keeps a step that Slurm still launches before the requeue takes effect from running (see
 * step.c), and keeps the job dir, so the epilog leaves <id>.requeued for the next run.
 * 0 requeued, -1 not (err says why; the note is gone again). */
static int requeue_from_lent(const struct node_ctx *nc, uint32_t job_id, uint32_t count,
			     const char *why, char *err, size_t errlen)
{
	char dir[PATH_MAX], note[PATH_MAX + 16], text[ERRLEN + 128];

	mark_lent_refused(nc, job_id, count);
	job_dir_path(nc, job_id, dir, sizeof(dir));
	(void)vgpu_fmt(note, sizeof(note), "%s/requeue", dir);
	(void)vgpu_fmt(text, sizeof(text), "job %u landed on slices lent to preemptible jobs "
		       "and was requeued (%s)\n", job_id, why);
	if (vgpu_mkdir_root(nc->jobs_dir, 0755, err, errlen) ||
	    vgpu_mkdir_root(dir, 0755, err, errlen) ||
	    vgpu_write_atomic(note, text, strlen(text), 0644, err, errlen))
		return -1;
	if (vgpu_ctld_requeue(job_id, err, errlen)) {
		char rmerr[ERRLEN];

		if (vgpu_remove_dir(dir, rmerr, sizeof(rmerr)))
			vgpu_log_error("job %u: %s", job_id, rmerr);
		return -1;
	}
	vgpu_log_info("job %u landed on slices lent to preemptible jobs; requeued it", job_id);
	return 0;
}

int vgpu_job_prolog(spank_t sp, const struct vgpu_config *cfg, int from_step)
{
	struct node_ctx nc;
	struct vgpu_job_alloc alloc;
	char err[ERRLEN], summary[256], token[512];
	uint32_t job_id = 0, share;
	int lock_fd = -1, rc;

	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS || !job_id) {
		vgpu_log_error("job_prolog: no job id");
		return 0;
	}
	if (node_ctx_init(sp, cfg, &nc, err, sizeof(err))) {
		/* nowhere to record it for the steps: they see no job dir and run untouched
		 * unless on_error=deny finds the same problem (it will: same paths) */
		vgpu_log_error("job %u: %s", job_id, err);
		return 0;
	}
	if (vgpu_ctld_job_alloc(job_id, nc.node, cfg->gres_name, &alloc, err, sizeof(err))) {
		record_error(&nc, job_id, err);
		return 0;
	}
	vgpu_log_debug("job %u on %s: %u %s slices", job_id, nc.node, alloc.count,
		       cfg->gres_name);
	if (alloc.count == 0)
		return 0; /* not a vgpu job: untouched, no files */
	/* in a step the option callback has already run; there getopt is not available */
	share = from_step ? vgpu_args_share() : vgpu_args_share_in_prolog(sp);
	if (vgpu_inventory_load(nc.inventory, &inventory, err, sizeof(err))) {
		record_error(&nc, job_id, err);
		return 0;
	}
	if (vgpu_mkdir_root(nc.runtime_dir, 0755, err, sizeof(err))) {
		vgpu_log_error("job %u: %s", job_id, err);
		return 0;
	}
	lock_fd = vgpu_lock(nc.lock_path, cfg->lock_timeout_ms, err, sizeof(err));
	if (lock_fd < 0) {
		record_error(&nc, job_id, err);
		return 0;
	}
	if (from_step) {
		char dir[PATH_MAX], limits_path[PATH_MAX + 16];
		struct stat st;

		/* steps of a requeued job may race here: the first one places, the rest use it */
		job_dir_path(&nc, job_id, dir, sizeof(dir));
		(void)vgpu_fmt(limits_path, sizeof(limits_path), "%s/limits", dir);
		if (stat(limits_path, &st) == 0) {
			vgpu_unlock(lock_fd);
			return 0;
		}
	}
	rc = place_job(&nc, job_id, &alloc, share, !from_step, summary, sizeof(summary), err,
		       sizeof(err));
	if (rc) {
		char msg[2 * ERRLEN + 64], rqerr[ERRLEN];

		vgpu_unlock(lock_fd);
		(void)vgpu_fmt(msg, sizeof(msg), "cannot place %u slices: %s", alloc.count, err);
		if (rc == VGPU_LENT_REFUSED) {
			if (requeue_from_lent(&nc, job_id, alloc.count, err, rqerr,
					      sizeof(rqerr)) == 0)
				return 0;
			(void)vgpu_fmt(msg, sizeof(msg), "cannot place %u slices: %s (and it could "
				       "not be requeued: %s)", alloc.count, err, rqerr);
		}
		record_error(&nc, job_id, msg);
		return 0;
	}
	vgpu_unlock(lock_fd);
	vgpu_log_info("job %u: %u slices on %s placed %s (share=%s)", job_id, alloc.count,
		      nc.node, summary, share == VGPU_SHARE_BURST ? "burst" : "guaranteed");
	if (cfg->admin_comment) {
		(void)vgpu_fmt(token, sizeof(token), "vgpu:%s=%s", nc.node, summary);
		if (vgpu_ctld_add_admin_comment(job_id, alloc.nnodes, alloc.admin_comment, token, err,
						sizeof(err)))
			vgpu_log_error("job %u: %s", job_id, err);
	}
	return 0;
}

/* /proc/<pid>: start time (stat field 22) and real uid; -1 when gone. */
static int proc_identity(pid_t pid, unsigned long long *start, uid_t *uid)
{
	char path[64], buf[2048], *p;
	unsigned long v;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (vgpu_read_small(path, buf, sizeof(buf)) <= 0 || !(p = strrchr(buf, ')')))
		return -1;
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	*start = strtoull(p + 1, NULL, 10);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (vgpu_read_small(path, buf, sizeof(buf)) <= 0 || !(p = strstr(buf, "\nUid:")) ||
	    sscanf(p + 6, "%lu", &v) != 1)
		return -1;
	*uid = (uid_t)v;
	return 0;
}

/* Kill what is left of the job's processes that registered in its state file (pid and start
 * time per slot) and still run as the state file's owner, the job's user: one that escaped its
 * step (setsid, double fork) with the hook loaded would otherwise keep memory on slices the
 * next job is promised. One without the hook is the daemon's backstop's (docs/security.md). */
static void reap_job_processes(const char *dir, uint32_t job_id)
{
	char path[PATH_MAX + 16];
	struct vgpu_state_proc slot;
	struct stat st;
	int fd, killed = 0;

	if (vgpu_fmt(path, sizeof(path), "%s/state", dir))
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size != sizeof(struct vgpu_state) ||
	    st.st_uid == 0)
		goto out;
	for (uint32_t i = 0; i < VGPU_MAX_PROCS; i++) {
		off_t off = (off_t)(offsetof(struct vgpu_state, proc) + i * sizeof(slot));
		unsigned long long start;
		uid_t uid;
		pid_t pid;

		if (pread(fd, &slot, sizeof(slot), off) != (ssize_t)sizeof(slot))
			break;
		pid = (pid_t)slot.pid;
		if (pid <= 1 || proc_identity(pid, &start, &uid) || uid != st.st_uid ||
		    start != slot.start_time)
			continue;
		if (kill(pid, SIGKILL) == 0)
			killed++;
	}
	if (killed)
		vgpu_log_info("job %u epilog: killed %d process(es) of the job still registered "
			      "on its GPUs", job_id, killed);
out:
	close(fd);
}

int vgpu_job_epilog(spank_t sp, const struct vgpu_config *cfg)
{
	struct node_ctx nc;
	char err[ERRLEN], dir[PATH_MAX];
	uint32_t job_id = 0;
	struct stat st;
	int lock_fd;

	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS || !job_id)
		return 0;
	if (node_ctx_init(sp, cfg, &nc, err, sizeof(err))) {
		vgpu_log_error("job %u epilog: %s", job_id, err);
		return 0;
	}
	job_dir_path(&nc, job_id, dir, sizeof(dir));
	if (stat(dir, &st) && errno == ENOENT)
		return 0; /* not a vgpu job here: nothing to do, no lock taken */
	lock_fd = vgpu_lock(nc.lock_path, cfg->lock_timeout_ms, err, sizeof(err));
	if (lock_fd < 0) {
		/* leave the booking; the next placement on this node reconciles it */
		vgpu_log_error("job %u epilog: %s", job_id, err);
		(void)vgpu_write_atomic(nc.reconcile_path, "", 0, 0644, err, sizeof(err));
		return 0;
	}
	if (vgpu_placements_read(nc.table_path, &table, err, sizeof(err)) == 0) {
		if (vgpu_placements_drop(&table, job_id) &&
		    vgpu_placements_write(nc.table_path, &table, err, sizeof(err)))
			vgpu_log_error("job %u epilog: %s", job_id, err);
	} else {
		vgpu_log_error("job %u epilog: %s", job_id, err);
	}
	reap_job_processes(dir, job_id);
	if (vgpu_remove_dir(dir, err, sizeof(err)))
		vgpu_log_error("job %u epilog: %s", job_id, err);
	if (vgpu_ctld_job_requeued(job_id) == 1) {
		char marker[PATH_MAX + 16];

		/* slurmd runs no prolog for the next run of this job id on this node: leave a
		 * root-owned note so that run's first step places the slices itself */
		(void)vgpu_fmt(marker, sizeof(marker), "%s.requeued", dir);
		if (vgpu_write_atomic(marker, "", 0, 0644, err, sizeof(err)))
			vgpu_log_error("job %u epilog: %s", job_id, err);
	}
	vgpu_unlock(lock_fd);
	return 0;
}

void vgpu_mark_reconcile(spank_t sp, const struct vgpu_config *cfg)
{
	struct node_ctx nc;
	char err[ERRLEN];
	struct stat st;

	/* slurmd (re)start: jobs may have ended while it was down. Only flag it here (no RPC
	 * while slurmd starts); the next prolog on this node reconciles. */
	if (node_ctx_init(sp, cfg, &nc, err, sizeof(err)))
		return;
	if (stat(nc.runtime_dir, &st))
		return; /* nothing placed yet on this node */
	if (vgpu_write_atomic(nc.reconcile_path, "", 0, 0644, err, sizeof(err)))
		vgpu_log_error("%s", err);
}
