/*
 * The sampler's telemetry on AMD GPUs: ROCm SMI (librocm_smi64.so.1), what the HIP front uses
 * as the CUDA front uses NVML (hook_compute.c).
 *
 * ROCm SMI (HIP 5.2's, 1.0) has no per-process utilization samples like NVML's. What it has
 * per process is KFD's cu_occupancy: the compute units the process's waves hold at the moment
 * of the query. So the sampler of a job gpu polls it, about every millisecond at jittered
 * times (no aliasing with the time slicer's period), and a process's device time over a
 * window is the window times the fraction of polls in which it held the device. Every 200 ms
 * (NVML's sample period) the window's figures go to the controller. Others are contending
 * (they had work waiting: what NVML's older call tells) when the device was busy for at least
 * 80 % of the window: under time slicing the rest is switch time, not idle.
 *
 * Devices: a limits uuid "GPU-<16 hex digits>" is the ROCm SMI device whose
 * rsmi_dev_unique_id_get is that number; an empty uuid, the device at physical_index.
 * Process memory: rsmi_compute_process_info_by_pid_get's vram_usage (HIP 5.2's ROCm SMI sums
 * it over the process's devices: exact for jobs of one GPU per process).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hook.h"

typedef int rsmi_status_t;
#define RSMI_STATUS_SUCCESS 0
#define RSMI_STATUS_NOT_FOUND 0xb
typedef struct {
	uint32_t process_id;
	uint32_t pasid;
	uint64_t vram_usage;
	uint64_t sdma_usage;
	uint32_t cu_occupancy;
} rsmi_process_info_t;

#define WINDOW_NS 200000000ull
#define POLL_NS 1000000ull
#define CONTENDED_PERMILLE 800
#define MAX_PROCS 256

static struct {
	rsmi_status_t (*init)(uint64_t);
	rsmi_status_t (*count)(uint32_t *);
	rsmi_status_t (*unique_id)(uint32_t, uint64_t *);
	rsmi_status_t (*procs)(rsmi_process_info_t *, uint32_t *);
	rsmi_status_t (*by_pid)(uint32_t, rsmi_process_info_t *);
	rsmi_status_t (*proc_gpus)(uint32_t, uint32_t *, uint32_t *);
	rsmi_status_t (*busy)(uint32_t, uint32_t *);
	uint32_t ndev;                /* devices ROCm SMI monitors */
	int64_t index[VGPU_MAX_GPUS]; /* ROCm SMI device of each job gpu, -1: unknown */
} rsmi;

/* Polls of the current window, per job gpu (monitor thread only). */
static struct {
	uint64_t start_ns, last_poll_ns;
	uint32_t polls, job_hits, others_hits;
	uint32_t slot_hits[VGPU_MAX_PROCS];
} win[VGPU_MAX_GPUS];
static rsmi_process_info_t procs[MAX_PROCS];

#define SYM(field, name) (rsmi.field = (__typeof__(rsmi.field))vgpu_driver_sym(VGPU_LIB_RSMI, name))

static int rsmi_open(void)
{
	SYM(init, "rsmi_init");
	SYM(count, "rsmi_num_monitor_devices");
	SYM(unique_id, "rsmi_dev_unique_id_get");
	SYM(procs, "rsmi_compute_process_info_get");
	SYM(by_pid, "rsmi_compute_process_info_by_pid_get");
	SYM(proc_gpus, "rsmi_compute_process_gpus_get");
	SYM(busy, "rsmi_dev_busy_percent_get");
	if (!rsmi.init || !rsmi.count || !rsmi.procs || !rsmi.by_pid ||
	    rsmi.init(0) != RSMI_STATUS_SUCCESS)
		return -1;
	uint32_t n = 0;
	if (rsmi.count(&n) != RSMI_STATUS_SUCCESS)
		n = 0;
	rsmi.ndev = n;
	const struct vgpu_limits *l = vgpu_limits();
	for (uint32_t g = 0; g < vgpu_rt.ngpus; g++) {
		char uuid[VGPU_UUID_LEN + 1];
		memcpy(uuid, l->gpu[g].uuid, VGPU_UUID_LEN);
		uuid[VGPU_UUID_LEN] = '\0';
		rsmi.index[g] = -1;
		if (!uuid[0]) {
			if (l->gpu[g].physical_index < n)
				rsmi.index[g] = l->gpu[g].physical_index;
		} else if (strncasecmp(uuid, "GPU-", 4) == 0 && strlen(uuid) == 20 && rsmi.unique_id) {
			char *end;
			uint64_t want = strtoull(uuid + 4, &end, 16), id;
			for (uint32_t i = 0; *end == '\0' && i < n; i++)
				if (rsmi.unique_id(i, &id) == RSMI_STATUS_SUCCESS && id == want)
					rsmi.index[g] = i;
		}
		if (rsmi.index[g] < 0)
			vgpu_log("ROCm SMI does not know GPU %s (index %u): this process cannot measure "
				 "the job's compute on it", uuid[0] ? uuid : "(no uuid)",
				 l->gpu[g].physical_index);
	}
	return 0;
}

static int rsmi_process_used(uint32_t g, uint64_t *bytes)
{
	rsmi_process_info_t p;
	if (g >= vgpu_rt.ngpus || rsmi.index[g] < 0)
		return -1;
	rsmi_status_t r = rsmi.by_pid((uint32_t)vgpu_rt.pid, &p);
	if (r == RSMI_STATUS_NOT_FOUND) {
		*bytes = 0; /* the process holds nothing on any device yet */
		return 0;
	}
	if (r != RSMI_STATUS_SUCCESS)
		return -1;
	*bytes = p.vram_usage;
	return 0;
}

static int job_slot(uint32_t pid)
{
	const struct vgpu_state *s = vgpu_rt.state;
	for (uint32_t i = 0; pid && i < VGPU_MAX_PROCS; i++)
		if ((uint32_t)atomic_load_explicit(&s->proc[i].pid, memory_order_relaxed) == pid)
			return (int)i;
	return -1;
}

/* Is process pid (busy now) on ROCm SMI device dev? */
static int on_device(uint32_t pid, int64_t dev, uint32_t ndev)
{
	uint32_t devs[VGPU_MAX_GPUS], n = VGPU_MAX_GPUS;
	if (ndev <= 1 || !rsmi.proc_gpus)
		return 1;
	if (rsmi.proc_gpus(pid, devs, &n) != RSMI_STATUS_SUCCESS)
		return 0;
	for (uint32_t i = 0; i < n && i < VGPU_MAX_GPUS; i++)
		if ((int64_t)devs[i] == dev)
			return 1;
	return 0;
}

static void poll_once(uint64_t now)
{
	uint32_t n = MAX_PROCS, ndev = rsmi.ndev;
	if (rsmi.procs(procs, &n) != RSMI_STATUS_SUCCESS && n == 0)
		return;
	if (n > MAX_PROCS)
		n = MAX_PROCS;
	for (uint32_t g = 0; g < vgpu_rt.ngpus; g++) {
		if (!vgpu_sampler_leads(g) || rsmi.index[g] < 0)
			continue;
		if (!win[g].start_ns || now - win[g].last_poll_ns > WINDOW_NS)
			memset(&win[g], 0, sizeof win[g]), win[g].start_ns = now;
		win[g].last_poll_ns = now;
		win[g].polls++;
		for (uint32_t i = 0; i < n; i++) {
			if (!procs[i].cu_occupancy || !on_device(procs[i].process_id, rsmi.index[g], ndev))
				continue;
			int slot = job_slot(procs[i].process_id);
			if (slot >= 0) {
				win[g].job_hits++;
				win[g].slot_hits[slot]++;
			} else {
				win[g].others_hits++;
			}
		}
	}
}

static int leads_any(void)
{
	for (uint32_t g = 0; g < vgpu_rt.ngpus; g++)
		if (vgpu_sampler_leads(g))
			return 1;
	return 0;
}

/* The monitor's sleep: poll at jittered times while this process samples a gpu. The poll
 * schedule runs on across ticks, so polls are spread evenly over time: polls bunched at the
 * start of each tick would see the job mostly just after its gate was decided (at the tick),
 * before its kernels run again, and count it short. */
static void rsmi_wait_until(const struct timespec *next)
{
	static unsigned int seed;
	static uint64_t next_poll; /* CLOCK_MONOTONIC ns */
	uint64_t until = (uint64_t)next->tv_sec * 1000000000ull + (uint64_t)next->tv_nsec;
	if (!seed)
		seed = (unsigned int)vgpu_rt.pid * 2654435761u;
	for (int i = 0; i < 256 && leads_any(); i++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		if (next_poll < now - 2 * POLL_NS || next_poll > now + 2 * POLL_NS)
			next_poll = now; /* first poll, or the schedule fell behind */
		if (next_poll >= until)
			break;
		if (next_poll > now) {
			ts.tv_sec = (time_t)(next_poll / 1000000000ull);
			ts.tv_nsec = (long)(next_poll % 1000000000ull);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		poll_once(vgpu_now_ns());
		next_poll += POLL_NS / 2 + (uint64_t)rand_r(&seed) % POLL_NS;
	}
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
}

static int rsmi_busy_percent(uint32_t g, unsigned int *pct)
{
	uint32_t b;
	if (g >= vgpu_rt.ngpus || rsmi.index[g] < 0 || !rsmi.busy ||
	    rsmi.busy((uint32_t)rsmi.index[g], &b) != RSMI_STATUS_SUCCESS)
		return -1;
	*pct = b;
	return 0;
}

static int rsmi_measure(uint32_t g, uint64_t now, uint64_t *job_ns, uint64_t *others_ns,
			uint64_t *others_queued_ns)
{
	*job_ns = *others_ns = *others_queued_ns = 0;
	if (g >= vgpu_rt.ngpus || rsmi.index[g] < 0)
		return -1;
	if (!win[g].start_ns || !win[g].polls || now - win[g].start_ns < WINDOW_NS)
		return 0;
	uint64_t span = now - win[g].start_ns;
	double per = (double)span / win[g].polls;
	*job_ns = (uint64_t)(per * win[g].job_hits);
	*others_ns = (uint64_t)(per * win[g].others_hits);
	struct vgpu_state *s = vgpu_rt.state;
	for (uint32_t i = 0; i < VGPU_MAX_PROCS; i++)
		if (win[g].slot_hits[i])
			s->proc[i].busy_ns[g] += (uint64_t)(per * win[g].slot_hits[i]);
	if (*others_ns && (*job_ns + *others_ns) * 1000 >= span * CONTENDED_PERMILLE)
		*others_queued_ns = *others_ns + span; /* contended: they had work waiting */
	memset(&win[g], 0, sizeof win[g]);
	win[g].start_ns = now;
	win[g].last_poll_ns = now;
	return 1;
}

const struct vgpu_telemetry vgpu_rsmi_telemetry = {
	.name = "ROCm SMI",
	.open = rsmi_open,
	.process_used = rsmi_process_used,
	.measure = rsmi_measure,
	.busy_percent = rsmi_busy_percent,
	.wait_until = rsmi_wait_until,
};
