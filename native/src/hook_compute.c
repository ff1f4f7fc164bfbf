/*
 * Compute shares from MEASURED device time.
 *
 * Every process of an enforced job runs a monitor thread (started at cuInit). Per job GPU one
 * of them is the sampler (elected through sampler_pid with a heartbeat). Each tick (10 ms)
 * the sampler asks NVML how busy each process kept the GPU since the last tick
 * (nvmlDeviceGetProcessUtilization, the device's own per-process accounting), sums the
 * job's processes, and runs a token bucket per job GPU:
 *
 *     tokens += share * dt - measured_busy        (clamped to [-debt_max, +credit_max])
 *     gate closed  <=>  tokens < 0
 *
 * Launches (cuLaunchKernel*, cooperative, graphs) read one word, the gate mask; while their
 * GPU's bit is set they wait on a futex that the sampler wakes when it reopens the gate. The
 * long-run device time of the job therefore converges to share * wall time whenever it wants
 * at least that much (an integral controller: overshoot from queued kernels and measurement
 * lag is paid back as debt), and kernel length or grid size do not matter.
 *
 * Where the device time comes from is the telemetry of the front that started the monitor
 * (struct vgpu_telemetry): NVML here for CUDA, ROCm SMI (hook_rsmi.c) for HIP.
 *
 * share = compute_limit_permille (the daemon moves it live). With share_policy=burst the job
 * may also use what other jobs leave idle: share = max(limit, 1000 - others - margin), where
 * `others` is the measured busy fraction of every other process on the GPU (work-conserving).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"

#define TICK_NS 10000000ull          /* sampler period */
#define STALE_NS 100000000ull         /* a sampler silent this long is replaced */
#define MAX_WAIT_NS 3000000000ull     /* longest a launch waits at the gate */
#define CREDIT_WINDOW_NS 250000000ull /* unused share kept for later: 250 ms of it */
#define DEBT_WINDOW_NS 2000000000ull  /* debt beyond 2 s of share is forgiven */
#define BURST_MARGIN_PERMILLE 100     /* headroom left to others by a bursting job */
#define MAX_SAMPLES 512

typedef nvmlReturn_t (*nvml_init_fn)(void);
typedef nvmlReturn_t (*nvml_by_uuid_fn)(const char *, nvmlDevice_t *);
typedef nvmlReturn_t (*nvml_by_index_fn)(unsigned int, nvmlDevice_t *);
typedef nvmlReturn_t (*nvml_proc_util_fn)(nvmlDevice_t, nvmlProcessUtilizationSample_t *,
					  unsigned int *, unsigned long long);
typedef nvmlReturn_t (*nvml_procs_util_fn)(nvmlDevice_t, nvmlProcessesUtilizationInfo_v1_t *);
typedef nvmlReturn_t (*nvml_util_fn)(nvmlDevice_t, nvmlUtilization_t *);
typedef nvmlReturn_t (*nvml_running_fn)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_v2_t *);

static _Atomic int monitor_started;
static struct {
	int ready;
	nvml_proc_util_fn proc_util;   /* older call: smUtil = share with work queued or running */
	nvml_procs_util_fn procs_util; /* newer call: smUtil = share its kernels ran */
	nvml_util_fn dev_util;
	nvml_running_fn running;       /* processes and the memory each holds */
	nvmlDevice_t handle[VGPU_MAX_GPUS];
} nvml;

/* What this process knows as the sampler of a gpu (reset when it loses the role). */
static struct {
	int leading;
	uint64_t last_ns;        /* previous tick */
	uint64_t seen_us;        /* newest NVML sample timestamp taken */
	uint64_t period_us;      /* the driver's sample period, learned (default 200 ms) */
	uint64_t sample_mono_ns; /* when the newest sample was taken in (about) */
	uint64_t open_ns;        /* gate-open time since then */
	double rate;             /* the job's device time per ns of open gate, smoothed */
	double usable_permille;  /* burst: what the job could use (own + idle), smoothed */
} lead[VGPU_MAX_GPUS];

#define DEFAULT_PERIOD_US 200000ull
static nvmlProcessUtilizationSample_t samples[MAX_SAMPLES];
static nvmlProcessUtilizationInfo_v1_t infos[MAX_SAMPLES];

static long futex(void *addr, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, addr, op, val, timeout, NULL, 0);
}

/* ------------------------------------------------------------------ launches */

void vgpu_throttle_wait(const struct vgpu_front *f)
{
	struct vgpu_state *s = vgpu_rt.state;
	if (!s)
		return;
	uint32_t mask = atomic_load_explicit(&s->gate_mask, memory_order_acquire);
	int g = 0;
	if (vgpu_rt.ngpus != 1) {
		int err;
		g = vgpu_gpu_of_current(f, &err);
		if (g < 0 || g >= (int)VGPU_MAX_GPUS)
			return;
	}
	uint32_t bit = 1u << g;
	if (!(mask & bit))
		return;
	struct vgpu_state_gpu *sg = &s->gpu[g];
	uint64_t t0 = vgpu_now_ns(), now = t0;
	for (;;) {
		mask = atomic_load_explicit(&s->gate_mask, memory_order_acquire);
		if (!(mask & bit) || now - t0 >= MAX_WAIT_NS)
			break;
		/* A gate nobody tends any more (its sampler died) does not hold launches. */
		if (now - atomic_load(&sg->sampler_beat_ns) > 2 * STALE_NS)
			break;
		struct timespec ts = {0, 2000000};
		futex((void *)&s->gate_mask, FUTEX_WAIT, mask, &ts);
		now = vgpu_now_ns();
	}
	atomic_fetch_add(&sg->throttled_ns, now - t0);
}

/* ------------------------------------------------------------------ measuring */

static int nvml_open(void)
{
	void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return -1;
	nvml_init_fn init = (nvml_init_fn)vgpu_driver_sym(VGPU_LIB_NVML, "nvmlInit_v2");
	nvml_by_uuid_fn by_uuid =
		(nvml_by_uuid_fn)vgpu_driver_sym(VGPU_LIB_NVML, "nvmlDeviceGetHandleByUUID");
	nvml_by_index_fn by_index =
		(nvml_by_index_fn)vgpu_driver_sym(VGPU_LIB_NVML, "nvmlDeviceGetHandleByIndex_v2");
	nvml.proc_util = (nvml_proc_util_fn)vgpu_driver_sym(VGPU_LIB_NVML,
							    "nvmlDeviceGetProcessUtilization");
	nvml.procs_util = (nvml_procs_util_fn)vgpu_driver_sym(
		VGPU_LIB_NVML, "nvmlDeviceGetProcessesUtilizationInfo");
	nvml.dev_util = (nvml_util_fn)vgpu_driver_sym(VGPU_LIB_NVML,
						      "nvmlDeviceGetUtilizationRates");
	nvml.running = (nvml_running_fn)vgpu_driver_sym(VGPU_LIB_NVML,
							"nvmlDeviceGetComputeRunningProcesses_v3");
	if (!init || (!nvml.proc_util && !nvml.procs_util) || init() != NVML_SUCCESS)
		return -1;
	if (!nvml.procs_util)
		vgpu_log("NVML has no nvmlDeviceGetProcessesUtilizationInfo (driver older than 550?): "
			 "compute shares are measured from nvmlDeviceGetProcessUtilization, which "
			 "counts queued time too and overstates time-sliced jobs");
	const struct vgpu_limits *l = vgpu_limits();
	for (uint32_t g = 0; g < vgpu_rt.ngpus; g++) {
		char uuid[VGPU_UUID_LEN + 1];
		memcpy(uuid, l->gpu[g].uuid, VGPU_UUID_LEN);
		uuid[VGPU_UUID_LEN] = '\0';
		nvmlReturn_t r = -1;
		if (uuid[0] && by_uuid)
			r = by_uuid(uuid, &nvml.handle[g]);
		else if (by_index)
			r = by_index(l->gpu[g].physical_index, &nvml.handle[g]);
		if (r != NVML_SUCCESS) {
			nvml.handle[g] = NULL;
			vgpu_log("NVML does not know GPU %s (index %u): this process cannot measure "
				 "the job's compute on it", uuid[0] ? uuid : "(no uuid)",
				 l->gpu[g].physical_index);
		}
	}
	return 0;
}

/* The telemetry of the front that started the monitor (NVML for CUDA, ROCm SMI for HIP). */
static const struct vgpu_telemetry *tele;
static pthread_once_t tele_once = PTHREAD_ONCE_INIT;
static int tele_ok;

static void tele_open_once(void)
{
	const struct vgpu_telemetry *t = __atomic_load_n(&tele, __ATOMIC_ACQUIRE);
	tele_ok = t && t->open() == 0;
}

int vgpu_process_used(uint32_t g, uint64_t *bytes)
{
	const struct vgpu_telemetry *t = __atomic_load_n(&tele, __ATOMIC_ACQUIRE);
	if (!t)
		return -1;
	pthread_once(&tele_once, tele_open_once);
	if (!tele_ok)
		return -1;
	return t->process_used(g, bytes);
}

int vgpu_sampler_leads(uint32_t g)
{
	return g < VGPU_MAX_GPUS && lead[g].leading;
}

static int nvml_process_used(uint32_t g, uint64_t *bytes)
{
	nvmlProcessInfo_v2_t procs[64];
	unsigned int n = 64;
	if (!nvml.running || g >= vgpu_rt.ngpus || !nvml.handle[g])
		return -1;
	if (nvml.running(nvml.handle[g], &n, procs) != NVML_SUCCESS)
		return -1;
	*bytes = 0;
	for (unsigned int i = 0; i < n && i < 64; i++)
		if (procs[i].pid == (unsigned int)vgpu_rt.pid)
			*bytes = procs[i].usedGpuMemory;
	return 0;
}

static int job_slot_of(const struct vgpu_state *s, uint32_t pid)
{
	for (uint32_t i = 0; i < VGPU_MAX_PROCS; i++)
		if ((uint32_t)atomic_load_explicit(&s->proc[i].pid, memory_order_relaxed) == pid &&
		    pid != 0)
			return (int)i;
	return -1;
}

/* New NVML samples on gpu g: device time (ns) of the job's and of other processes in them.
 * Returns 1 when there were new samples, 0 when none, -1 when NVML cannot be asked.
 *
 * The newer call (nvmlDeviceGetProcessesUtilizationInfo) reports the share of each sample
 * period in which a process's kernels ran: device time. The older one reports the share in
 * which it had work queued or running (99 for each of two time-sliced busy processes on an
 * H200), which is used only when the newer one is missing. */
static int nvml_measure(uint32_t g, uint64_t now, uint64_t *job_ns, uint64_t *others_ns,
			uint64_t *others_queued_ns)
{
	(void)now;
	struct vgpu_state *s = vgpu_rt.state;
	unsigned int n = MAX_SAMPLES;
	nvmlReturn_t r;
	*job_ns = *others_ns = *others_queued_ns = 0;
	if (!nvml.handle[g])
		return -1;
	if (nvml.procs_util) {
		nvmlProcessesUtilizationInfo_v1_t q = {
			.version = nvmlProcessesUtilizationInfo_v1,
			.processSamplesCount = MAX_SAMPLES,
			.lastSeenTimeStamp = lead[g].seen_us,
			.procUtilArray = infos,
		};
		r = nvml.procs_util(nvml.handle[g], &q);
		n = q.processSamplesCount;
		if (r == NVML_SUCCESS) {
			if (n > MAX_SAMPLES)
				n = MAX_SAMPLES;
			for (unsigned int i = 0; i < n; i++) {
				samples[i].pid = infos[i].pid;
				samples[i].timeStamp = infos[i].timeStamp;
				samples[i].smUtil = infos[i].smUtil;
			}
		}
	} else {
		r = nvml.proc_util(nvml.handle[g], samples, &n, lead[g].seen_us);
	}
	if (r == NVML_ERROR_NOT_FOUND)
		return 0;
	if (r != NVML_SUCCESS)
		return -1;
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	if (nvml.procs_util && nvml.proc_util) {
		/* the older call's share with work queued or running: others that wait */
		unsigned int m = MAX_SAMPLES - n;
		nvmlProcessUtilizationSample_t *q = &samples[n];
		if (nvml.proc_util(nvml.handle[g], q, &m, lead[g].seen_us) == NVML_SUCCESS) {
			for (unsigned int i = 0; i < m && i < MAX_SAMPLES - n; i++)
				if (q[i].timeStamp > lead[g].seen_us && job_slot_of(s, q[i].pid) < 0)
					*others_queued_ns += lead[g].period_us * 1000ull *
							     (q[i].smUtil > 100 ? 100 : q[i].smUtil) /
							     100;
		}
	}
	uint64_t newest = lead[g].seen_us;
	for (unsigned int i = 0; i < n; i++) {
		const nvmlProcessUtilizationSample_t *x = &samples[i];
		if (x->timeStamp <= lead[g].seen_us)
			continue;
		/* a sample is the process's share of one sample period (a process that did not
		 * run in a period has no sample for it) */
		uint64_t span_us = lead[g].period_us;
		uint64_t busy = span_us * 1000ull * (x->smUtil > 100 ? 100 : x->smUtil) / 100;
		int slot = job_slot_of(s, x->pid);
		if (slot >= 0) {
			*job_ns += busy;
			s->proc[slot].busy_ns[g] += busy;
		} else {
			*others_ns += busy;
		}
		if (x->timeStamp > newest) {
			if (newest && x->timeStamp - newest > 50000 && x->timeStamp - newest < 2000000 &&
			    x->timeStamp - newest < lead[g].period_us)
				lead[g].period_us = x->timeStamp - newest; /* learn the period */
			newest = x->timeStamp;
		}
	}
	if (newest == lead[g].seen_us)
		return 0;
	lead[g].seen_us = newest;
	return 1;
}

static int nvml_busy_percent(uint32_t g, unsigned int *pct)
{
	nvmlUtilization_t u;
	if (!nvml.dev_util || !nvml.handle[g] ||
	    nvml.dev_util(nvml.handle[g], &u) != NVML_SUCCESS)
		return -1;
	*pct = u.gpu;
	return 0;
}

const struct vgpu_telemetry vgpu_nvml_telemetry = {
	.name = "NVML",
	.open = nvml_open,
	.process_used = nvml_process_used,
	.measure = nvml_measure,
	.busy_percent = nvml_busy_percent,
	.wait_until = NULL,
};

/* ------------------------------------------------------------------ the sampler */

static int take_lead(struct vgpu_state_gpu *sg, uint64_t now)
{
	int32_t me = (int32_t)vgpu_rt.pid;
	int32_t cur = atomic_load(&sg->sampler_pid);
	if (cur == me)
		return 1;
	if (cur != 0 && now - atomic_load(&sg->sampler_beat_ns) < STALE_NS)
		return 0;
	if (!atomic_compare_exchange_strong(&sg->sampler_pid, &cur, me))
		return 0;
	atomic_store(&sg->sampler_beat_ns, now);
	return 1;
}

static void set_gate(struct vgpu_state *s, uint32_t g, int closed)
{
	uint32_t bit = 1u << g;
	if (closed) {
		if (!(atomic_load(&s->gate_mask) & bit))
			atomic_fetch_or(&s->gate_mask, bit);
		return;
	}
	if (atomic_fetch_and(&s->gate_mask, ~bit) & bit)
		futex((void *)&s->gate_mask, FUTEX_WAKE, INT_MAX, NULL);
}

/*
 * The controller. NVML gives the job's device time once per sample period (200 ms on an
 * H200), so the bucket is charged per sample:
 *
 *     tokens += share * capacity - job      capacity = job + others + idle in that period
 *
 * (idle from the device-level utilization; when the job is alone capacity is the period, so a
 * guaranteed job gets its share of solo throughput; when others have work waiting, idle does
 * not count: the jobs split the work the device did, which is what time-slicing lets them
 * split). Between samples the gate is
 * decided on a prediction: the job is assumed to use `rate` device ns per ns of open gate
 * (learned from the previous samples), so it does not run unchecked for a whole period.
 */
static void sample_gpu(uint32_t g, uint64_t now)
{
	struct vgpu_state *s = vgpu_rt.state;
	struct vgpu_state_gpu *sg = &s->gpu[g];
	if (!take_lead(sg, now)) {
		lead[g].leading = 0;
		return;
	}
	if (!lead[g].leading) {
		/* New sampler: start the clock now, drop history measured under the old one. */
		memset(&lead[g], 0, sizeof lead[g]);
		lead[g].leading = 1;
		lead[g].last_ns = now;
		lead[g].sample_mono_ns = now;
		lead[g].seen_us = sg->sampler_seen_us;
		lead[g].period_us = DEFAULT_PERIOD_US;
		lead[g].rate = 1.0;
		/* credit is for a running job's own pauses: a new sampler (a new process, the
		 * previous one gone) does not inherit it, or a job would start with a burst */
		if (atomic_load(&sg->tokens_ns) > 0)
			atomic_store(&sg->tokens_ns, 0);
		atomic_store(&sg->sampler_beat_ns, now);
		return;
	}
	uint64_t dt = now - lead[g].last_ns;
	lead[g].last_ns = now;
	if (!(atomic_load(&s->gate_mask) & (1u << g)))
		lead[g].open_ns += dt;

	struct vgpu_gpu_limit lim;
	uint32_t policy = VGPU_SHARE_GUARANTEED;
	vgpu_limits_read(g, &lim, &policy);
	double share = lim.compute_limit_permille;
	if (share < 1)
		share = 1;

	uint64_t job_ns = 0, others_ns = 0, others_queued_ns = 0;
	int got = tele->measure(g, now, &job_ns, &others_ns, &others_queued_ns);
	if (got < 0) {
		set_gate(s, g, 0); /* cannot measure: never hold launches on a guess */
		atomic_store(&sg->sampler_beat_ns, now);
		return;
	}
	uint64_t period_ns = lead[g].period_us * 1000ull;
	double tokens = (double)atomic_load(&sg->tokens_ns);
	if (got == 0 && now - lead[g].sample_mono_ns > period_ns + period_ns / 10) {
		got = 1; /* a period in which nothing ran: an empty sample */
		job_ns = others_ns = 0;
	}
	if (got) {
		/* wall time since the previous accounting: summed, exactly the time elapsed */
		uint64_t span = now - lead[g].sample_mono_ns;
		if (span > DEBT_WINDOW_NS)
			span = DEBT_WINDOW_NS;
		sg->sampler_seen_us = lead[g].seen_us;
		atomic_fetch_add(&sg->busy_ns, job_ns);
		atomic_fetch_add(&sg->others_busy_ns, others_ns);
		/* idle: the part of the period in which no process had work (device-level
		 * utilization counts time with any work queued) */
		double idle = (double)span;
		unsigned int busy_pct;
		if (tele->busy_percent(g, &busy_pct) == 0)
			idle = busy_pct >= 100 ? 0 : (double)span * (100 - busy_pct) / 100.0;
		else if (job_ns + others_ns < span)
			idle = (double)(span - job_ns - others_ns);
		/* burst: what the job uses plus what nobody uses, less a margin for others */
		double usable = 1000.0 * ((double)job_ns + idle) / (double)span;
		lead[g].usable_permille = 0.5 * lead[g].usable_permille + 0.5 * usable;
		if (policy == VGPU_SHARE_BURST) {
			double b = lead[g].usable_permille - BURST_MARGIN_PERMILLE;
			if (b > share)
				share = b;
		}
		double capacity = (double)span;
		if (others_ns) {
			/* Others with work waiting (queued longer than they ran, by over 5 % of
			 * the period) contend for the device: the jobs split the work it does.
			 * Otherwise idle time is ours to use up to our share. */
			int contended = others_queued_ns > others_ns + period_ns / 20;
			capacity = (double)(job_ns + others_ns) + (contended ? 0 : idle);
			if (capacity > (double)span)
				capacity = (double)span;
		}
		tokens += share * capacity / 1000.0 - (double)job_ns;
		if (lead[g].open_ns > period_ns / 10)
			lead[g].rate = 0.5 * lead[g].rate +
				       0.5 * ((double)job_ns / (double)lead[g].open_ns);
		if (lead[g].rate < 0.05)
			lead[g].rate = 0.05;
		if (lead[g].rate > 1.0)
			lead[g].rate = 1.0;
		lead[g].open_ns = 0;
		lead[g].sample_mono_ns = now;
	}
	if (!got && policy == VGPU_SHARE_BURST &&
	    lead[g].usable_permille - BURST_MARGIN_PERMILLE > share)
		share = lead[g].usable_permille - BURST_MARGIN_PERMILLE;
	if (share >= 1000) {
		atomic_store(&sg->effective_permille, 1000);
		atomic_store(&sg->tokens_ns, 0);
		set_gate(s, g, 0);
		atomic_store(&sg->sampler_beat_ns, now);
		return;
	}
	atomic_store(&sg->effective_permille, (uint32_t)share);
	double credit_max = share * (double)CREDIT_WINDOW_NS / 1000.0;
	double debt_max = share * (double)DEBT_WINDOW_NS / 1000.0;
	if (tokens > credit_max)
		tokens = credit_max;
	if (tokens < -debt_max)
		tokens = -debt_max;
	atomic_store(&sg->tokens_ns, (int64_t)tokens);
	/* the prediction since the last sample: share accrues, open time is used at `rate` */
	double since = (double)(now - lead[g].sample_mono_ns);
	double pred = tokens + share * since / 1000.0 - lead[g].rate * (double)lead[g].open_ns;
	set_gate(s, g, pred < 0);
	atomic_store(&sg->sampler_beat_ns, now);
}

static void *monitor_main(void *arg)
{
	(void)arg;
	pthread_once(&tele_once, tele_open_once);
	int have_nvml = tele_ok; /* the telemetry (NVML or ROCm SMI) */
	if (!have_nvml)
		vgpu_log("%s unavailable in pid %d: it will not measure compute for the job",
			 tele->name, (int)vgpu_rt.pid);
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (unsigned tick = 0;; tick++) {
		next.tv_nsec += (long)TICK_NS;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		if (have_nvml && tele->wait_until)
			tele->wait_until(&next);
		else
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		uint64_t now = vgpu_now_ns();
		if (have_nvml)
			for (uint32_t g = 0; g < vgpu_rt.ngpus; g++)
				sample_gpu(g, now);
		vgpu_reclaim_dead(0);
		if (tick % 10 == 0)
			vgpu_limits_refresh(); /* every 100 ms */
		if (have_nvml && tick % 20 == 0)
			vgpu_mem_reconcile(); /* every 200 ms */
	}
	return NULL;
}

void vgpu_monitor_start(const struct vgpu_front *f)
{
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE)
		return;
	const struct vgpu_telemetry *none = NULL;
	__atomic_compare_exchange_n(&tele, &none, f->telemetry, 0, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
	if (atomic_exchange(&monitor_started, 1))
		return;
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	/* The application's signals stay with the application's threads. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&tid, &attr, monitor_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		atomic_store(&monitor_started, 0);
		vgpu_log("cannot start the monitor thread (%s); compute shares not measured here",
			 strerror(r));
	}
}

void vgpu_monitor_atfork_child(void)
{
	/* The monitor thread did not survive fork; the child starts its own at cuInit. */
	atomic_store(&monitor_started, 0);
	memset(lead, 0, sizeof lead);
}

__attribute__((destructor)) static void give_up_lead(void)
{
	struct vgpu_state *s = vgpu_rt.state;
	if (!s || vgpu_rt.mode != VGPU_MODE_ENFORCE)
		return;
	for (uint32_t g = 0; g < vgpu_rt.ngpus; g++) {
		int32_t me = (int32_t)vgpu_rt.pid;
		atomic_compare_exchange_strong(&s->gpu[g].sampler_pid, &me, 0);
	}
}
