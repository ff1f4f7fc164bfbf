/* fakegpu: create, validate, map and lock the shared state file; per-process accounting. */
#define _GNU_SOURCE
#include "fg_state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_TIMEOUT_NS (10ULL * 1000000000ULL)

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint64_t fg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int fg_state_path(char *out, size_t outlen, char *err, size_t errlen)
{
	const char *tmpl = getenv("FAKEGPU_STATE");
	size_t o = 0;
	int rv = -1;

	if (!tmpl || !*tmpl) {
		if ((size_t)snprintf(out, outlen, "/dev/shm/fakegpu-%u.state", (unsigned)getuid()) >= outlen)
			goto fail;
		return 0;
	}
	for (const char *p = tmpl; *p; p++) {
		const char *piece = p;
		size_t n = 1;

		if (p[0] == '%' && p[1] == 'n') {
			piece = getenv("SLURMD_NODENAME");
			if (!piece || !*piece) {
				set_err(err, errlen, "FAKEGPU_STATE=%s uses %%n but SLURMD_NODENAME is not set: "
					"set it to the simulated node's name", tmpl);
				return -1;
			}
			n = strlen(piece);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			p++;
		}
		if (o + n >= outlen)
			goto fail;
		memcpy(out + o, piece, n);
		o += n;
	}
	out[o] = '\0';
	rv = 0;
fail:
	if (rv)
		set_err(err, errlen, "state file path too long: %s", tmpl ? tmpl : "(default)");
	return rv;
}

static int validate(const struct fg_state *s, const char *path, char *err, size_t errlen)
{
	if (s->magic != FG_STATE_MAGIC) {
		set_err(err, errlen, "%s is not a fakegpu state file (bad magic); create one with "
			"fakegpu-ctl create", path);
		return -1;
	}
	if (s->version != FG_STATE_VERSION) {
		set_err(err, errlen, "%s has state version %u, this fakegpu understands %u; recreate "
			"it with fakegpu-ctl create --force", path, s->version, FG_STATE_VERSION);
		return -1;
	}
	if (s->size != sizeof(struct fg_state)) {
		set_err(err, errlen, "%s records size %u, expected %zu (built from other sources?); "
			"recreate it with fakegpu-ctl create --force", path, s->size,
			sizeof(struct fg_state));
		return -1;
	}
	if (s->device_count > FG_MAX_DEVICES || !s->blocks_per_sm || !s->util_window_ms ||
	    !s->alloc_granularity || !s->timeslice_ns || !s->sample_ms) {
		set_err(err, errlen, "%s: corrupt header (device_count %u); recreate it", path,
			s->device_count);
		return -1;
	}
	for (uint32_t i = 0; i < s->device_count; i++) {
		if (!s->config[i].memory_bytes || !s->config[i].sms) {
			set_err(err, errlen, "%s: device %u has no memory or SMs; recreate it", path, i);
			return -1;
		}
		if (s->config[i].vendor != s->config[0].vendor ||
		    s->config[i].vendor > FG_VENDOR_AMD) {
			set_err(err, errlen, "%s: device %u has a bad vendor; recreate it", path, i);
			return -1;
		}
	}
	return 0;
}

struct fg_state *fg_state_open(const char *path, char *err, size_t errlen)
{
	struct fg_state *s = NULL;
	struct stat st;
	void *map;
	int fd;

	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ELOOP) {
		set_err(err, errlen, "state file %s is a symbolic link; point FAKEGPU_STATE at the "
			"file itself", path);
		return NULL;
	}
	if (fd < 0) {
		set_err(err, errlen, "cannot open state file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		set_err(err, errlen, "state file %s is not a regular file", path);
		goto out;
	}
	if ((size_t)st.st_size != sizeof(struct fg_state)) {
		set_err(err, errlen, "%s is not a fakegpu state file of this version (size %lld, "
			"expected %zu); recreate it with fakegpu-ctl create --force", path,
			(long long)st.st_size, sizeof(struct fg_state));
		goto out;
	}
	map = mmap(NULL, sizeof(struct fg_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		set_err(err, errlen, "cannot map state file %s: %s", path, strerror(errno));
		goto out;
	}
	if (validate(map, path, err, errlen) != 0) {
		munmap(map, sizeof(struct fg_state));
		goto out;
	}
	s = map;
out:
	close(fd);
	return s;
}

static int init_lock(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rv = -1;

	if (pthread_mutexattr_init(&a))
		return -1;
	if (pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) || pthread_mutex_init(m, &a))
		goto fail;
	rv = 0;
fail:
	pthread_mutexattr_destroy(&a);
	return rv;
}

int fg_state_create(const char *path, const struct fg_create_params *p, int replace, int *exists,
		    char *err, size_t errlen)
{
	char tmp[4096];
	struct fg_state *s = MAP_FAILED;
	struct timespec rt;
	unsigned rnd = 0;
	int fd = -1, rv = -1, linked = 0;

	*exists = 0;
	if (p->device_count > FG_MAX_DEVICES) {
		set_err(err, errlen, "at most %u devices", FG_MAX_DEVICES);
		return -1;
	}
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) < 0)
		rnd = (unsigned)fg_now_ns();
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%08x", path, (int)getpid(), rnd) >=
	    sizeof(tmp)) {
		set_err(err, errlen, "state file path too long: %s", path);
		return -1;
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		set_err(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	/* Jobs of any test user share the simulated machine: make it usable by all of them. */
	if (fchmod(fd, 0666) != 0 || ftruncate(fd, (off_t)sizeof(struct fg_state)) != 0) {
		set_err(err, errlen, "cannot size %s: %s", tmp, strerror(errno));
		goto fail;
	}
	s = mmap(NULL, sizeof(struct fg_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s == MAP_FAILED) {
		set_err(err, errlen, "cannot map %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (init_lock(&s->lock) != 0) {
		set_err(err, errlen, "cannot initialize the state lock");
		goto fail;
	}
	s->version = FG_STATE_VERSION;
	s->size = sizeof(struct fg_state);
	s->device_count = p->device_count;
	s->blocks_per_sm = p->blocks_per_sm;
	s->kernel_ns = p->kernel_ns;
	s->alloc_granularity = p->alloc_granularity;
	s->util_window_ms = p->util_window_ms;
	s->ctx_overhead_mib = p->ctx_overhead_mib;
	s->timeslice_ns = p->timeslice_ns;
	s->switch_ns = p->switch_ns;
	s->sample_ms = p->sample_ms;
	s->ideal = p->ideal;
	clock_gettime(CLOCK_REALTIME, &rt);
	s->created_unix_ns = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
	memcpy(s->config, p->config, sizeof(s->config));
	__atomic_store_n(&s->magic, FG_STATE_MAGIC, __ATOMIC_RELEASE);
	if (validate(s, path, err, errlen) != 0)
		goto fail;
	if (replace) {
		if (rename(tmp, path) != 0) {
			set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
			goto fail;
		}
		linked = 1;
	} else if (link(tmp, path) != 0) {
		if (errno == EEXIST)
			*exists = 1;
		set_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
		goto fail;
	}
	rv = 0;
fail:
	if (s != MAP_FAILED)
		munmap(s, sizeof(struct fg_state));
	if (fd >= 0)
		close(fd);
	if (!linked)
		unlink(tmp);
	return rv;
}

const char *fg_vendor_name(unsigned vendor)
{
	return vendor == FG_VENDOR_AMD ? "amd" : "nvidia";
}

void fg_gfx_format(const struct fg_device_config *c, char *out, size_t outlen)
{
	snprintf(out, outlen, "gfx%u%u%x", c->cc_major, c->cc_minor, c->gfx_step & 0xfu);
}

struct fg_state *fg_state_attach_vendor(unsigned vendor, char *err, size_t errlen)
{
	struct fg_create_params p;
	struct fg_state *s;
	char path[4096];
	int exists;

	if (fg_state_path(path, sizeof(path), err, errlen) != 0)
		return NULL;
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		if (fg_params_from_env_vendor(&p, vendor == FG_VENDOR_ANY ? FG_VENDOR_NVIDIA : vendor,
					      err, errlen) != 0)
			return NULL;
		if (fg_state_create(path, &p, 0, &exists, err, errlen) != 0 && !exists)
			return NULL;
	}
	s = fg_state_open(path, err, errlen);
	if (s && vendor != FG_VENDOR_ANY && s->device_count && s->config[0].vendor != vendor) {
		set_err(err, errlen, "%s simulates %s GPUs; the fake %s sees no %s device there "
			"(fakegpu-ctl create --vendor %s makes a machine for it)", path,
			s->config[0].vendor == FG_VENDOR_AMD ? "AMD" : "NVIDIA",
			vendor == FG_VENDOR_AMD ? "HIP runtime / ROCm SMI" : "libcuda / NVML",
			vendor == FG_VENDOR_AMD ? "AMD" : "NVIDIA", fg_vendor_name(vendor));
		munmap(s, sizeof(*s));
		return NULL;
	}
	return s;
}

struct fg_state *fg_state_attach(char *err, size_t errlen)
{
	return fg_state_attach_vendor(FG_VENDOR_NVIDIA, err, errlen);
}

int fg_lock(struct fg_state *s)
{
	struct timespec dl;
	uint64_t t = fg_now_ns() + LOCK_TIMEOUT_NS;
	int r;

	dl.tv_sec = (time_t)(t / 1000000000ULL);
	dl.tv_nsec = (long)(t % 1000000000ULL);
	r = pthread_mutex_clocklock(&s->lock, CLOCK_MONOTONIC, &dl);
	if (r == EOWNERDEAD) {
		/* A process died holding the lock: its update may be half done, which the
		 * simulation tolerates (counters are re-derived when it is reaped). */
		pthread_mutex_consistent(&s->lock);
		r = 0;
	}
	if (r == ETIMEDOUT) {
		fprintf(stderr, "fakegpu: the state file's lock has been held for over %llu s (a "
			"stopped process?); giving up\n", LOCK_TIMEOUT_NS / 1000000000ULL);
		return -1;
	}
	if (r) {
		fprintf(stderr, "fakegpu: cannot lock the state file: %s\n", strerror(r));
		return -1;
	}
	return 0;
}

void fg_unlock(struct fg_state *s)
{
	pthread_mutex_unlock(&s->lock);
}

uint64_t fg_proc_start_time(int pid)
{
	char path[64], buf[1024];
	unsigned long long st = 0;
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* after "pid (comm)": state is field 3, starttime field 22 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
		   "%*d %llu", &st) != 1)
		return 0;
	return st;
}

static char proc_state(int pid)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

int fg_alive(int pid, uint64_t start_time)
{
	char st;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 0;
	/* A killed child stays a zombie until reaped, but the real driver frees its memory at
	 * exit: count zombies as gone. A different start time means the pid was reused. */
	st = proc_state(pid);
	if (st == 'Z' || st == 'X')
		return 0;
	if (start_time && st != '?' && fg_proc_start_time(pid) != start_time)
		return 0;
	return 1;
}

static uint64_t self_start_time(void)
{
	static int cached_pid;
	static uint64_t cached;
	int pid = getpid();

	if (cached_pid != pid) {
		cached = fg_proc_start_time(pid);
		cached_pid = pid;
	}
	return cached;
}

static void release_slot(struct fg_state *s, struct fg_proc *p)
{
	if (p->device < FG_MAX_DEVICES) {
		struct fg_device_state *d = &s->dev[p->device];

		d->used_bytes = d->used_bytes > p->used_bytes ? d->used_bytes - p->used_bytes : 0;
		/* a GPU aborts the queued work of a context whose process died */
		fg_sched_drop(s, p, fg_now_ns());
	}
	memset(p, 0, sizeof(*p));
}

void fg_reap_dead(struct fg_state *s)
{
	for (uint32_t i = 0; i < FG_MAX_PROCS; i++) {
		struct fg_proc *p = &s->procs[i];

		if (p->pid && !fg_alive(p->pid, p->start_time))
			release_slot(s, p);
	}
}

struct fg_proc *fg_proc_slot(struct fg_state *s, int pid, uint32_t dev)
{
	struct fg_proc *free_slot = NULL;
	uint64_t start = pid == getpid() ? self_start_time() : fg_proc_start_time(pid);

	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < FG_MAX_PROCS; i++) {
			struct fg_proc *p = &s->procs[i];

			if (p->pid == pid && p->device == dev) {
				if (p->start_time == start)
					return p;
				release_slot(s, p); /* an earlier process with our pid */
			}
			if (!p->pid && !free_slot)
				free_slot = p;
		}
		if (free_slot)
			break;
		fg_reap_dead(s);
	}
	if (!free_slot)
		return NULL;
	free_slot->pid = pid;
	free_slot->device = dev;
	free_slot->start_time = start;
	return free_slot;
}

int fg_mem_account(struct fg_state *s, int pid, uint32_t dev, int64_t delta)
{
	struct fg_device_state *d;
	struct fg_proc *p;
	uint64_t total;

	if (dev >= s->device_count || dev >= FG_MAX_DEVICES)
		return -1;
	d = &s->dev[dev];
	total = s->config[dev].memory_bytes;
	p = fg_proc_slot(s, pid, dev);
	if (!p)
		return -1;
	if (delta > 0) {
		if (d->used_bytes + (uint64_t)delta > total) {
			fg_reap_dead(s); /* memory of killed processes comes back first */
			if (!p->pid)
				return -1;
			if (d->used_bytes + (uint64_t)delta > total)
				return -1;
		}
		d->used_bytes += (uint64_t)delta;
		p->used_bytes += (uint64_t)delta;
		d->allocs++;
	} else {
		uint64_t n = (uint64_t)(-delta);

		d->used_bytes = d->used_bytes > n ? d->used_bytes - n : 0;
		p->used_bytes = p->used_bytes > n ? p->used_bytes - n : 0;
		d->frees++;
	}
	return 0;
}

void fg_timeline_add(struct fg_state *s, uint32_t dev, int pid, uint64_t start, uint64_t end,
		     uint64_t work_at_start)
{
	struct fg_device_state *d = &s->dev[dev];
	struct fg_interval *last;
	uint32_t head = d->ring_head % FG_RING_SIZE;

	if (d->ring_count > FG_RING_SIZE)
		d->ring_count = FG_RING_SIZE;
	if (d->ring_count) {
		last = &d->ring[(head + FG_RING_SIZE - 1) % FG_RING_SIZE];
		if (last->pid == pid && last->end_ns == start) {
			last->end_ns = end;
			last->launches++;
			return;
		}
	}
	d->ring[head].start_ns = start;
	d->ring[head].end_ns = end;
	d->ring[head].work_at_start = work_at_start;
	d->ring[head].pid = pid;
	d->ring[head].launches = 1;
	d->ring_head = (head + 1) % FG_RING_SIZE;
	if (d->ring_count < FG_RING_SIZE)
		d->ring_count++;
}

uint64_t fg_busy_ns(const struct fg_state *s, uint32_t dev, uint64_t from, uint64_t to, int pid,
		    int *complete)
{
	const struct fg_device_state *d = &s->dev[dev];
	uint32_t head = d->ring_head % FG_RING_SIZE;
	uint32_t count = d->ring_count > FG_RING_SIZE ? FG_RING_SIZE : d->ring_count;
	uint64_t busy = 0;
	uint32_t k;

	for (k = 0; k < count; k++) {
		const struct fg_interval *iv = &d->ring[(head + FG_RING_SIZE - 1 - k) % FG_RING_SIZE];
		uint64_t a, b;

		if (iv->end_ns <= from)
			break; /* the device is FIFO: everything older ended earlier */
		if (pid && iv->pid != pid)
			continue;
		a = iv->start_ns > from ? iv->start_ns : from;
		b = iv->end_ns < to ? iv->end_ns : to;
		if (b > a)
			busy += b - a;
	}
	if (complete)
		*complete = k < count || count < FG_RING_SIZE;
	return busy;
}
