/*
 * Loading what the hook enforces: the admin setting (hook.conf), the root-owned limits file
 * and the job's shared state file. Every file is checked before it is trusted; a bad one
 * produces ONE log line naming the file and the fix, then the admin's on_error choice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"

#define VGPU_DEFAULT_CONF "/etc/slurm-vgpu/hook.conf"

/* The limits file this process maps: its path and identity, to notice a replaced file. */
static char limits_path[PATH_MAX];
static dev_t limits_dev;
static ino_t limits_ino;
#define VGPU_FLOCK_WAIT_MS 2000
#define VGPU_SEQLOCK_TRIES 10000

uint64_t vgpu_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vgpu_log(const char *fmt, ...)
{
	char buf[768];
	int n = snprintf(buf, sizeof buf, "vgpu: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	buf[len++] = '\n';
	/* One write() so that lines of concurrent processes do not interleave. */
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}

/* /proc/<pid>/stat: state (field 3) and starttime (field 22). Returns -1 if unreadable. */
static int read_proc_stat(pid_t pid, char *state, uint64_t *start_time)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	*state = *p;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*start_time = strtoull(p, NULL, 10);
	return 0;
}

uint64_t vgpu_proc_start_time(pid_t pid)
{
	char state;
	uint64_t start = 0;
	if (read_proc_stat(pid, &state, &start) != 0)
		return 0;
	return start;
}

int vgpu_proc_alive(pid_t pid, uint64_t start_time)
{
	char state;
	uint64_t start = 0;
	if (pid <= 0)
		return 0;
	if (read_proc_stat(pid, &state, &start) != 0)
		return 0;
	if (state == 'Z' || state == 'X') /* exited, not yet reaped: its memory is gone */
		return 0;
	return start_time == 0 || start == start_time;
}

/* ------------------------------------------------------------------ admin setting */

/* A file the admin controls: root-owned regular file, not writable by group or others. */
static int admin_owned(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == 0 && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

uint64_t vgpu_alloc_granularity = 2ull << 20;

/* Reads hook.conf. Returns on_error as VGPU_MODE_DENY or VGPU_MODE_UNLIMITED (what to do
 * when a job's files are bad) and sets vgpu_alloc_granularity. */
static int read_conf(char *conf_used, size_t conf_len, int in_step)
{
	const char *path = VGPU_DEFAULT_CONF;
	/* inside a vgpu step only the admin's file counts: no variable picks another */
	const char *override = in_step ? NULL : getenv("VGPU_HOOK_CONF");
	struct stat st;
	int mode = VGPU_MODE_DENY;

	/* The override exists for tests. Only an admin-owned file is honoured, so a user can
	 * select nothing more permissive than what root wrote. */
	if (override && *override) {
		if (stat(override, &st) == 0 && admin_owned(&st))
			path = override;
		else
			vgpu_log("ignoring VGPU_HOOK_CONF=%s: it must be a root-owned regular file not "
				 "writable by group or others; using %s",
				 override, VGPU_DEFAULT_CONF);
	}
	snprintf(conf_used, conf_len, "%s", path);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return mode; /* no file: the safe default */
	char buf[4096];
	ssize_t n = -1;
	if (fstat(fd, &st) == 0 && admin_owned(&st))
		n = read(fd, buf, sizeof buf - 1);
	else
		vgpu_log("ignoring %s: it must be a root-owned regular file not writable by group "
			 "or others; on_error=deny",
			 path);
	close(fd);
	if (n <= 0)
		return mode;
	buf[n] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char key[64], value[64];
		if (sscanf(line, " %63[a-z_] = %63s", key, value) != 2)
			continue;
		if (strcmp(key, "alloc_granularity") == 0) {
			char *end;
			unsigned long long g = strtoull(value, &end, 10);
			if (*end || g == 0 || (g & (g - 1)) || g > (1ull << 30))
				vgpu_log("%s: alloc_granularity=%s is not a power of two in 1..1073741824; "
					 "using %llu", path, value,
					 (unsigned long long)vgpu_alloc_granularity);
			else
				vgpu_alloc_granularity = g;
			continue;
		}
		if (strcmp(key, "on_error") != 0)
			continue;
		if (strcmp(value, "deny") == 0)
			mode = VGPU_MODE_DENY;
		else if (strcmp(value, "unlimited") == 0)
			mode = VGPU_MODE_UNLIMITED;
		else
			vgpu_log("%s: on_error=%s is not deny or unlimited; using deny", path, value);
	}
	return mode;
}

/* ------------------------------------------------------------------ limits file */

static int dir_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(out, len, ".");
		return 0;
	}
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1;
	if (n >= len)
		return -1;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

static int open_limits(const char *path, struct vgpu_runtime *rt, char *why, size_t wlen,
		       struct stat *dir_st)
{
	int rv = -1;
	char dir[PATH_MAX];
	struct stat st;
	int fd = -1;
	void *map = MAP_FAILED;

	if (dir_of(path, dir, sizeof dir) != 0 || stat(dir, dir_st) != 0) {
		snprintf(why, wlen, "limits file %s: its directory is missing", path);
		goto fail;
	}
	if (dir_st->st_uid != 0 || (dir_st->st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, wlen,
			 "limits file %s: directory %s must be owned by root and not writable by "
			 "group or others",
			 path, dir);
		goto fail;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(why, wlen, "limits file %s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, wlen, "limits file %s: not a regular file", path);
		goto fail;
	}
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, wlen,
			 "limits file %s: owned by uid %u mode %03o; it must be owned by root and "
			 "not writable by group or others",
			 path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	if (st.st_size != (off_t)sizeof(struct vgpu_limits)) {
		snprintf(why, wlen, "limits file %s: %lld bytes, expected %zu (truncated or another "
			 "version)", path, (long long)st.st_size, sizeof(struct vgpu_limits));
		goto fail;
	}
	map = mmap(NULL, sizeof(struct vgpu_limits), PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, wlen, "limits file %s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	const struct vgpu_limits *l = map;
	if (l->magic != VGPU_LIMITS_MAGIC) {
		snprintf(why, wlen, "limits file %s: bad magic (not a slurm-vgpu limits file)", path);
		goto fail;
	}
	if (l->version != VGPU_LIMITS_VERSION || l->size != sizeof(struct vgpu_limits)) {
		snprintf(why, wlen, "limits file %s: version %u size %u, this hook reads version %u "
			 "size %zu", path, l->version, l->size, VGPU_LIMITS_VERSION,
			 sizeof(struct vgpu_limits));
		goto fail;
	}
	if (l->uid != (uint32_t)getuid()) {
		snprintf(why, wlen, "limits file %s: written for uid %u, this process runs as uid %u",
			 path, l->uid, (unsigned)getuid());
		goto fail;
	}
	if (l->ngpus > VGPU_MAX_GPUS) {
		snprintf(why, wlen, "limits file %s: ngpus %u exceeds %u", path, l->ngpus,
			 VGPU_MAX_GPUS);
		goto fail;
	}
	rt->limits = l;
	rt->ngpus = l->ngpus;
	rt->share_policy = l->share_policy;
	limits_dev = st.st_dev;
	limits_ino = st.st_ino;
	map = MAP_FAILED;
	rv = 0;
fail:
	if (map != MAP_FAILED)
		munmap(map, sizeof(struct vgpu_limits));
	if (fd >= 0)
		close(fd);
	return rv;
}

/* ------------------------------------------------------------------ state file */

static int flock_bounded(int fd)
{
	for (int waited = 0; waited < VGPU_FLOCK_WAIT_MS; waited++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	errno = ETIMEDOUT;
	return -1;
}

static int init_state(struct vgpu_state *s)
{
	pthread_mutexattr_t attr;
	memset(s, 0, sizeof *s);
	if (pthread_mutexattr_init(&attr) != 0)
		return -1;
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	int r = pthread_mutex_init(&s->lock.mutex, &attr);
	pthread_mutexattr_destroy(&attr);
	if (r != 0)
		return -1;
	s->version = VGPU_STATE_VERSION;
	s->size = sizeof(struct vgpu_state);
	s->ngpus = VGPU_MAX_GPUS;
	s->nprocs = VGPU_MAX_PROCS;
	__atomic_store_n(&s->magic, VGPU_STATE_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static int open_state(const char *path, const struct stat *limits_dir, struct vgpu_runtime *rt,
		      char *why, size_t wlen)
{
	int rv = -1;
	char dir[PATH_MAX];
	struct stat st, dst;
	int fd = -1, locked = 0;
	void *map = MAP_FAILED;

	/* The state must sit beside the limits: a job may not pair its limits with a private,
	 * empty accounting (or another job's limits with its own state). */
	if (dir_of(path, dir, sizeof dir) != 0 || stat(dir, &dst) != 0 ||
	    dst.st_dev != limits_dir->st_dev || dst.st_ino != limits_dir->st_ino) {
		snprintf(why, wlen, "state file %s: must be in the limits file's directory", path);
		goto fail;
	}
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(why, wlen, "state file %s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, wlen, "state file %s: not a regular file", path);
		goto fail;
	}
	if (st.st_uid != getuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, wlen,
			 "state file %s: owned by uid %u mode %03o; it must be owned by uid %u "
			 "(the job's user) with mode 0600",
			 path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777), (unsigned)getuid());
		goto fail;
	}
	if (flock_bounded(fd) != 0) {
		snprintf(why, wlen, "state file %s: flock: %s", path, strerror(errno));
		goto fail;
	}
	locked = 1;
	if (fstat(fd, &st) != 0) {
		snprintf(why, wlen, "state file %s: fstat: %s", path, strerror(errno));
		goto fail;
	}
	int fresh = st.st_size == 0;
	if (!fresh && st.st_size != (off_t)sizeof(struct vgpu_state)) {
		snprintf(why, wlen, "state file %s: %lld bytes, expected 0 or %zu (corrupt or "
			 "another version)", path, (long long)st.st_size, sizeof(struct vgpu_state));
		goto fail;
	}
	if (fresh && ftruncate(fd, sizeof(struct vgpu_state)) != 0) {
		snprintf(why, wlen, "state file %s: ftruncate: %s", path, strerror(errno));
		goto fail;
	}
	map = mmap(NULL, sizeof(struct vgpu_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, wlen, "state file %s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	struct vgpu_state *s = map;
	uint64_t magic = __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE);
	if (fresh || magic == 0) {
		/* Nobody can be using it: users start only after magic is stored, under flock. */
		if (init_state(s) != 0) {
			snprintf(why, wlen, "state file %s: cannot initialize its mutex", path);
			goto fail;
		}
	} else if (magic != VGPU_STATE_MAGIC || s->version != VGPU_STATE_VERSION ||
		   s->size != sizeof(struct vgpu_state) || s->ngpus != VGPU_MAX_GPUS ||
		   s->nprocs != VGPU_MAX_PROCS) {
		snprintf(why, wlen, "state file %s: bad magic or version %u (this hook writes "
			 "version %u); remove it and restart the job", path, s->version,
			 VGPU_STATE_VERSION);
		goto fail;
	}
	rt->state = s;
	map = MAP_FAILED;
	rv = 0;
fail:
	if (map != MAP_FAILED)
		munmap(map, sizeof(struct vgpu_state));
	if (locked)
		flock(fd, LOCK_UN);
	if (fd >= 0)
		close(fd);
	return rv;
}

/* ------------------------------------------------------------------ step anchor */

struct vgpu_anchor {
	pid_t stepd;
	char limits[PATH_MAX];
	char state[PATH_MAX];
	char job[32], step[32];
};

/* /proc/<pid>/status: Name, real uid and PPid (status shows the real uid even for a
 * non-dumpable process, whose /proc entries are owned by root). */
static int proc_status(pid_t pid, char *name, size_t nlen, uid_t *uid, pid_t *ppid)
{
	char path[64], buf[2048];
	int have = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long v;
		if (strncmp(line, "Name:\t", 6) == 0) {
			snprintf(name, nlen, "%s", line + 6);
			have |= 1;
		} else if (sscanf(line, "Uid: %lu", &v) == 1) {
			*uid = (uid_t)v;
			have |= 2;
		} else if (sscanf(line, "PPid: %lu", &v) == 1) {
			*ppid = (pid_t)v;
			have |= 4;
		}
	}
	return have == 7 ? 0 : -1;
}

/* Which vgpu step is this process in? Walks the parents to the nearest root-owned
 * slurmstepd and reads its anchor (vgpu_abi.h). Returns 1 with *a filled, 0 when there is no
 * such slurmstepd or it anchors nothing (a plain job step), -1 with why set when the anchor
 * is not trustworthy. Bounded: at most 64 parents, one small file. */
static int find_anchor(struct vgpu_anchor *a, char *why, size_t wlen)
{
	pid_t pid = getppid();
	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		char name[64] = "";
		uid_t uid = (uid_t)-1;
		pid_t ppid = 0;
		if (proc_status(pid, name, sizeof name, &uid, &ppid) != 0)
			return 0;
		if (uid != 0 || strcmp(name, "slurmstepd") != 0) {
			pid = ppid;
			continue;
		}
		char path[PATH_MAX], buf[3 * PATH_MAX];
		struct stat st, dst;
		snprintf(path, sizeof path, "%s/%d", VGPU_STEP_DIR, (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno == ENOENT)
				return 0; /* a step that is not a vgpu step */
			snprintf(why, wlen, "step anchor %s: cannot open: %s", path, strerror(errno));
			return -1;
		}
		ssize_t n = -1;
		if (fstat(fd, &st) == 0 && admin_owned(&st) && stat(VGPU_STEP_DIR, &dst) == 0 &&
		    dst.st_uid == 0 && !(dst.st_mode & (S_IWGRP | S_IWOTH)))
			n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0) {
			snprintf(why, wlen, "step anchor %s: must be a root-owned file not writable "
				 "by group or others in a root-owned directory", path);
			return -1;
		}
		buf[n] = '\0';
		unsigned long long start = 0;
		char *save = NULL;
		a->limits[0] = a->state[0] = a->job[0] = a->step[0] = '\0';
		for (char *line = strtok_r(buf, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (strncmp(line, "limits=", 7) == 0)
				snprintf(a->limits, sizeof a->limits, "%s", line + 7);
			else if (strncmp(line, "state=", 6) == 0)
				snprintf(a->state, sizeof a->state, "%s", line + 6);
			else if (strncmp(line, "job=", 4) == 0)
				snprintf(a->job, sizeof a->job, "%s", line + 4);
			else if (strncmp(line, "step=", 5) == 0)
				snprintf(a->step, sizeof a->step, "%s", line + 5);
			else if (strncmp(line, "start=", 6) == 0)
				start = strtoull(line + 6, NULL, 10);
		}
		if (start == 0 || start != vgpu_proc_start_time(pid)) {
			/* left by a slurmstepd that is gone; this one anchors nothing */
			return 0;
		}
		if (!a->limits[0] || !a->state[0]) {
			snprintf(why, wlen, "step anchor %s: no limits= or state= line", path);
			return -1;
		}
		a->stepd = pid;
		return 1;
	}
	return 0;
}

static int deny(struct vgpu_runtime *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int deny(struct vgpu_runtime *rt, const char *fmt, ...)
{
	char msg[2 * PATH_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	rt->mode = VGPU_MODE_DENY;
	vgpu_log("%s; device memory allocations will fail (whatever on_error says)", msg);
	return -1;
}

int vgpu_load(struct vgpu_runtime *rt)
{
	const char *limits = getenv("VGPU_LIMITS");
	const char *state = getenv("VGPU_STATE");
	char conf[PATH_MAX], why[2 * PATH_MAX + 256], state_path[PATH_MAX + 16];
	struct vgpu_anchor anchor;
	struct stat limits_dir;

	why[0] = '\0';
	/* Inside a vgpu job step the root-owned anchor decides; the variables must agree with it
	 * (a missing, empty or foreign one is a user's doing: deny, never unlimited). */
	int in_step = find_anchor(&anchor, why, sizeof why);
	if (in_step < 0)
		return deny(rt, "%s", why);
	if (in_step > 0) {
		if (strcmp(anchor.limits, "-") == 0)
			return deny(rt, "job %s step %s holds no GPU slices", anchor.job, anchor.step);
		if (!limits || strcmp(limits, anchor.limits) != 0)
			return deny(rt, "VGPU_LIMITS=%s inside job %s step %s, whose limits are %s "
				    "(the variable is set by slurm-vgpu; do not change it)",
				    limits ? limits : "(unset)", anchor.job, anchor.step,
				    anchor.limits);
		if (state && *state && strcmp(state, anchor.state) != 0)
			return deny(rt, "VGPU_STATE=%s inside job %s step %s, whose state is %s "
				    "(the variable is set by slurm-vgpu; do not change it)",
				    state, anchor.job, anchor.step, anchor.state);
		limits = anchor.limits;
		state = anchor.state;
	}
	if (!limits || !*limits) {
		rt->mode = VGPU_MODE_OFF;
		return 0;
	}
	int on_error = read_conf(conf, sizeof conf, in_step > 0);
	if (!state || !*state) {
		char dir[PATH_MAX];
		if (dir_of(limits, dir, sizeof dir) == 0)
			snprintf(state_path, sizeof state_path, "%s/state", dir);
		else
			state_path[0] = '\0';
		state = state_path;
	}
	snprintf(limits_path, sizeof limits_path, "%s", limits);
	if (open_limits(limits, rt, why, sizeof why, &limits_dir) == 0 &&
	    open_state(state, &limits_dir, rt, why, sizeof why) == 0) {
		rt->mode = VGPU_MODE_ENFORCE;
		return 0;
	}
	if (rt->limits) {
		munmap((void *)rt->limits, sizeof(struct vgpu_limits));
		rt->limits = NULL;
	}
	rt->mode = on_error;
	vgpu_log("%s; %s (on_error=%s, set in %s)", why,
		 on_error == VGPU_MODE_DENY ? "device memory allocations will fail"
					    : "running WITHOUT limits",
		 on_error == VGPU_MODE_DENY ? "deny" : "unlimited", conf);
	return -1;
}

/* Live changes are made in place (seqlock). A writer that instead REPLACED the file (new
 * inode, e.g. rename) would leave this process reading the old one: notice, validate the
 * new file like the first, and switch to it. The old mapping is kept (a reader may hold it). */
void vgpu_limits_refresh(void)
{
	static dev_t rejected_dev;
	static ino_t rejected_ino;
	struct stat st, dir;
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE || stat(limits_path, &st) != 0)
		return;
	if ((st.st_dev == limits_dev && st.st_ino == limits_ino) ||
	    (st.st_dev == rejected_dev && st.st_ino == rejected_ino))
		return;
	struct vgpu_runtime fresh = {.slot = -1};
	char why[PATH_MAX + 256];
	dev_t old_dev = limits_dev;
	ino_t old_ino = limits_ino;
	if (open_limits(limits_path, &fresh, why, sizeof why, &dir) != 0 ||
	    fresh.ngpus != vgpu_rt.ngpus) {
		if (fresh.limits) {
			munmap((void *)fresh.limits, sizeof(struct vgpu_limits));
			snprintf(why, sizeof why, "limits file %s: replaced by one with %u GPUs, "
				 "not %u", limits_path, fresh.ngpus, vgpu_rt.ngpus);
		}
		limits_dev = old_dev;
		limits_ino = old_ino;
		rejected_dev = st.st_dev;
		rejected_ino = st.st_ino;
		vgpu_log("%s; keeping the limits loaded before", why);
		return;
	}
	__atomic_store_n(&vgpu_rt.limits, fresh.limits, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------ seqlock reader */

uint64_t vgpu_limits_generation(void)
{
	return __atomic_load_n(&vgpu_limits()->generation, __ATOMIC_ACQUIRE);
}

static void copy_gpu_limit(const struct vgpu_limits *l, uint32_t gpu, struct vgpu_gpu_limit *out,
			   uint32_t *policy)
{
	out->memory_limit_bytes = __atomic_load_n(&l->gpu[gpu].memory_limit_bytes, __ATOMIC_RELAXED);
	out->compute_guaranteed_permille =
		__atomic_load_n(&l->gpu[gpu].compute_guaranteed_permille, __ATOMIC_RELAXED);
	out->compute_limit_permille =
		__atomic_load_n(&l->gpu[gpu].compute_limit_permille, __ATOMIC_RELAXED);
	out->slices = __atomic_load_n(&l->gpu[gpu].slices, __ATOMIC_RELAXED);
	out->physical_index = __atomic_load_n(&l->gpu[gpu].physical_index, __ATOMIC_RELAXED);
	if (policy)
		*policy = __atomic_load_n(&l->share_policy, __ATOMIC_RELAXED);
}

int vgpu_limits_read(uint32_t gpu, struct vgpu_gpu_limit *out, uint32_t *policy)
{
	static int warned;
	const struct vgpu_limits *l = vgpu_limits();
	if (!l || gpu >= vgpu_rt.ngpus)
		return -1;
	for (int i = 0; i < VGPU_SEQLOCK_TRIES; i++) {
		uint64_t g1 = __atomic_load_n(&l->generation, __ATOMIC_ACQUIRE);
		if (g1 & 1) {
			if (i > 100)
				sched_yield();
			continue;
		}
		copy_gpu_limit(l, gpu, out, policy);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&l->generation, __ATOMIC_RELAXED) == g1)
			return 0;
	}
	/* A writer that died mid-update leaves the generation odd. Each field is still either
	 * its old or its new value (aligned stores), so a plain copy is usable. */
	copy_gpu_limit(l, gpu, out, policy);
	if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		vgpu_log("limits file is stuck mid-update (generation odd); using its current "
			 "values");
	return 0;
}
