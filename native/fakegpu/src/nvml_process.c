/* fakegpu libnvidia-ml: utilization (from the device timeline) and running processes. */
#include "nvml_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t window_ns(const struct fg_state *s)
{
	const char *v = getenv("FAKEGPU_UTIL_WINDOW_MS");
	unsigned long long ms = v && *v ? strtoull(v, NULL, 10) : 0;

	return (ms ? ms : s->util_window_ms) * 1000000ULL;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
	struct fg_state *s = fg_nvml_state();
	uint64_t now, win, busy;

	NVML_DEV(device, d);
	if (!utilization)
		return NVML_ERROR_INVALID_ARGUMENT;
	win = window_ns(s);
	if (fg_lock(s))
		return NVML_ERROR_TIMEOUT;
	now = fg_now_ns();
	fg_sched_advance(s, d->index, now);
	if (!s->ideal) {
		/* the driver's latest sample: the share of its period with any work queued */
		utilization->gpu = s->dev[d->index].sample_util;
		utilization->memory = utilization->gpu / 2;
		fg_unlock(s);
		return NVML_SUCCESS;
	}
	busy = fg_busy_ns(s, d->index, now > win ? now - win : 0, now, 0, NULL);
	fg_unlock(s);
	utilization->gpu = (unsigned)((busy * 100 + win / 2) / win);
	if (utilization->gpu > 100)
		utilization->gpu = 100;
	utilization->memory = utilization->gpu / 2;
	return NVML_SUCCESS;
}

static nvmlReturn_t list_procs(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *v2,
			       nvmlProcessInfo_v1_t *v1)
{
	struct fg_state *s = fg_nvml_state();
	unsigned n = 0;

	NVML_DEV(device, d);
	if (!count || (*count && !v2 && !v1))
		return NVML_ERROR_INVALID_ARGUMENT;
	if (fg_lock(s))
		return NVML_ERROR_TIMEOUT;
	fg_reap_dead(s);
	for (unsigned i = 0; i < FG_MAX_PROCS; i++) {
		const struct fg_proc *p = &s->procs[i];

		if (!p->pid || p->device != d->index)
			continue;
		if (n < *count && v2) {
			v2[n].pid = (unsigned)p->pid;
			v2[n].usedGpuMemory = p->used_bytes;
			v2[n].gpuInstanceId = 0xFFFFFFFFu;
			v2[n].computeInstanceId = 0xFFFFFFFFu;
		} else if (n < *count && v1) {
			v1[n].pid = (unsigned)p->pid;
			v1[n].usedGpuMemory = p->used_bytes;
		}
		n++;
	}
	fg_unlock(s);
	if (n > *count) {
		*count = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	*count = n;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
						     nvmlProcessInfo_t *infos)
{
	return list_procs(device, infoCount, infos, NULL);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
						     nvmlProcessInfo_v2_t *infos)
{
	return list_procs(device, infoCount, infos, NULL);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
						  nvmlProcessInfo_v1_t *infos)
{
	return list_procs(device, infoCount, NULL, infos);
}

static nvmlReturn_t no_procs(nvmlDevice_t device, unsigned int *infoCount)
{
	NVML_DEV(device, d);
	(void)d;
	if (!infoCount)
		return NVML_ERROR_INVALID_ARGUMENT;
	*infoCount = 0;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
						      nvmlProcessInfo_t *infos)
{
	(void)infos;
	return no_procs(device, infoCount);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
						      nvmlProcessInfo_v2_t *infos)
{
	(void)infos;
	return no_procs(device, infoCount);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
						   nvmlProcessInfo_v1_t *infos)
{
	(void)infos;
	return no_procs(device, infoCount);
}

nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t device,
							unsigned int *infoCount,
							nvmlProcessInfo_t *infos)
{
	(void)infos;
	return no_procs(device, infoCount);
}

/* Realistic: the driver's latest per-process sample (one per sample_ms), reported when it is
 * newer than lastSeenTimeStamp and saw the process active; smUtil is the share of the period
 * in which the process had work queued or running. NOT_FOUND when there is no new sample. */
static nvmlReturn_t sampled_process_util(struct fg_state *s, uint32_t dev,
					 nvmlProcessUtilizationSample_t *utilization,
					 unsigned int *count, unsigned long long lastSeen)
{
	uint64_t now;
	unsigned n = 0;

	if (fg_lock(s))
		return NVML_ERROR_TIMEOUT;
	now = fg_now_ns();
	fg_sched_advance(s, dev, now);
	for (unsigned i = 0; i < FG_MAX_PROCS; i++) {
		const struct fg_proc *p = &s->procs[i];
		uint64_t ts;

		if (!p->pid || p->device != dev || !p->sample_ns || !p->sample_seen)
			continue;
		ts = (uint64_t)((int64_t)(p->sample_ns / 1000) + s->dev[dev].sample_rt_offset_us);
		if (ts <= lastSeen)
			continue;
		if (utilization && n < *count) {
			memset(&utilization[n], 0, sizeof(utilization[n]));
			utilization[n].pid = (unsigned)p->pid;
			utilization[n].timeStamp = ts;
			utilization[n].smUtil = p->sample_util;
		}
		n++;
	}
	fg_unlock(s);
	if (!n) {
		*count = 0;
		return NVML_ERROR_NOT_FOUND;
	}
	if (!utilization || n > *count) {
		*count = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	*count = n;
	return NVML_SUCCESS;
}

/* The newer call: the driver's latest per-process sample, smUtil = the share of the sample
 * period in which the process's kernels ran (its device time), reported when newer than
 * lastSeenTimeStamp and non-zero. With idealized sensors the same from exact busy time. */
nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t device,
						   nvmlProcessesUtilizationInfo_t *info)
{
	struct fg_state *s = fg_nvml_state();
	uint64_t now;
	unsigned n = 0, cap;

	NVML_DEV(device, d);
	if (!info)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (info->version != nvmlProcessesUtilizationInfo_v1)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	cap = info->procUtilArray ? info->processSamplesCount : 0;
	if (fg_lock(s))
		return NVML_ERROR_TIMEOUT;
	now = fg_now_ns();
	fg_sched_advance(s, d->index, now);
	for (unsigned i = 0; i < FG_MAX_PROCS; i++) {
		const struct fg_proc *p = &s->procs[i];
		uint64_t ts;

		if (!p->pid || p->device != d->index || !p->sample_ns || !p->sample_run_util)
			continue;
		ts = (uint64_t)((int64_t)(p->sample_ns / 1000) + s->dev[d->index].sample_rt_offset_us);
		if (ts <= info->lastSeenTimeStamp)
			continue;
		if (n < cap) {
			nvmlProcessUtilizationInfo_v1_t *u = &info->procUtilArray[n];

			memset(u, 0, sizeof(*u));
			u->pid = (unsigned)p->pid;
			u->timeStamp = ts;
			u->smUtil = p->sample_run_util;
		}
		n++;
	}
	fg_unlock(s);
	if (!n) {
		info->processSamplesCount = 0;
		return NVML_ERROR_NOT_FOUND;
	}
	if (n > cap) {
		info->processSamplesCount = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	info->processSamplesCount = n;
	return NVML_SUCCESS;
}

/* Per-process SM utilization: realistic (sampled), or with idealized sensors the exact busy
 * time over (lastSeenTimeStamp, now] or the default window. */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
					     nvmlProcessUtilizationSample_t *utilization,
					     unsigned int *processSamplesCount,
					     unsigned long long lastSeenTimeStamp)
{
	struct fg_state *s = fg_nvml_state();
	struct timespec rt;
	uint64_t now, from, win, now_us;
	unsigned n = 0;

	NVML_DEV(device, d);
	if (!processSamplesCount)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!s->ideal)
		return sampled_process_util(s, d->index, utilization, processSamplesCount,
					    lastSeenTimeStamp);
	clock_gettime(CLOCK_REALTIME, &rt);
	now_us = (uint64_t)rt.tv_sec * 1000000ULL + (uint64_t)rt.tv_nsec / 1000;
	if (fg_lock(s))
		return NVML_ERROR_TIMEOUT;
	now = fg_now_ns();
	fg_sched_advance(s, d->index, now);
	win = window_ns(s);
	if (lastSeenTimeStamp && lastSeenTimeStamp < now_us &&
	    (now_us - lastSeenTimeStamp) * 1000ULL < 60ULL * 1000000000ULL)
		win = (now_us - lastSeenTimeStamp) * 1000ULL;
	from = now > win ? now - win : 0;
	for (unsigned i = 0; i < FG_MAX_PROCS; i++) {
		const struct fg_proc *p = &s->procs[i];
		uint64_t busy;

		if (!p->pid || p->device != d->index)
			continue;
		busy = fg_busy_ns(s, d->index, from, now, p->pid, NULL);
		if (!busy)
			continue;
		if (utilization && n < *processSamplesCount) {
			memset(&utilization[n], 0, sizeof(utilization[n]));
			utilization[n].pid = (unsigned)p->pid;
			utilization[n].timeStamp = now_us;
			utilization[n].smUtil = (unsigned)((busy * 100 + win / 2) / win);
		}
		n++;
	}
	fg_unlock(s);
	if (!n) {
		*processSamplesCount = 0;
		return NVML_ERROR_NOT_FOUND;
	}
	if (!utilization || n > *processSamplesCount) {
		*processSamplesCount = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	*processSamplesCount = n;
	return NVML_SUCCESS;
}
