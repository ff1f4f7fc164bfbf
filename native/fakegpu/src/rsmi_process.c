/*
 * fakegpu librocm_smi64: compute processes. The real library lists the processes under
 * KFD's /sys/class/kfd/kfd/proc (those that opened the GPU) with their VRAM (vram_<gpu>),
 * SDMA time and CU occupancy (stats_<gpu>/cu_occupancy, the CUs its waves hold when read).
 * Here: the processes with memory or work on an AMD device in the state file (exited ones
 * reaped first); vram_usage is their memory summed over devices, sdma_usage 0 (copies take no
 * device time), cu_occupancy 100 while the process's kernels hold its device(s) at the moment
 * of the query and 0 otherwise (assumed: a kernel's waves fill every CU; averaged over the
 * devices it uses), pasid a stable small number per process.
 */
#include "rsmi_internal.h"

#include <string.h>

/* Fill info for pid from the state (lock held); 0 when pid has no slot. */
static int describe(struct fg_state *s, uint32_t pid, rsmi_process_info_t *info)
{
	uint32_t ndev = 0, busy = 0, first = FG_MAX_PROCS;
	uint64_t vram = 0;

	for (uint32_t i = 0; i < FG_MAX_PROCS; i++) {
		const struct fg_proc *p = &s->procs[i];
		const struct fg_device_state *d;

		if (!p->pid || (uint32_t)p->pid != pid || p->device >= s->device_count ||
		    p->device >= FG_MAX_DEVICES)
			continue;
		if (first == FG_MAX_PROCS)
			first = i;
		d = &s->dev[p->device];
		vram += p->used_bytes;
		ndev++;
		if (d->cur == (int32_t)i && p->enq_ns > p->done_ns && d->sim_ns >= d->switch_until_ns)
			busy++;
	}
	if (!ndev)
		return 0;
	memset(info, 0, sizeof(*info));
	info->process_id = pid;
	info->pasid = 0x8000u + first;
	info->vram_usage = vram;
	info->sdma_usage = 0;
	info->cu_occupancy = busy * 100 / ndev;
	return 1;
}

static void refresh(struct fg_state *s)
{
	uint64_t now = fg_now_ns();

	fg_reap_dead(s);
	for (uint32_t d = 0; d < s->device_count && d < FG_MAX_DEVICES; d++)
		fg_sched_advance(s, d, now);
}

rsmi_status_t rsmi_compute_process_info_get(rsmi_process_info_t *procs, uint32_t *num_items)
{
	struct fg_state *s = fg_rsmi_state();
	uint32_t pids[FG_MAX_PROCS], n = 0, written = 0;
	rsmi_status_t r = RSMI_STATUS_SUCCESS;

	if (!num_items)
		return RSMI_STATUS_INVALID_ARGS;
	if (!s)
		return RSMI_STATUS_INIT_ERROR;
	if (fg_lock(s))
		return RSMI_STATUS_BUSY;
	refresh(s);
	for (uint32_t i = 0; i < FG_MAX_PROCS; i++) {
		uint32_t pid = (uint32_t)s->procs[i].pid, k;

		if (!pid || s->procs[i].device >= s->device_count)
			continue;
		for (k = 0; k < n && pids[k] != pid; k++)
			;
		if (k == n)
			pids[n++] = pid;
	}
	if (procs) {
		for (uint32_t k = 0; k < n && written < *num_items; k++)
			written += (uint32_t)describe(s, pids[k], &procs[written]);
		if (written < n)
			r = RSMI_STATUS_INSUFFICIENT_SIZE;
		*num_items = written;
	} else {
		*num_items = n;
	}
	fg_unlock(s);
	return r;
}

rsmi_status_t rsmi_compute_process_info_by_pid_get(uint32_t pid, rsmi_process_info_t *proc)
{
	struct fg_state *s = fg_rsmi_state();
	int found;

	if (!proc)
		return RSMI_STATUS_INVALID_ARGS;
	if (!s)
		return RSMI_STATUS_INIT_ERROR;
	if (fg_lock(s))
		return RSMI_STATUS_BUSY;
	refresh(s);
	found = describe(s, pid, proc);
	fg_unlock(s);
	return found ? RSMI_STATUS_SUCCESS : RSMI_STATUS_NOT_FOUND;
}

rsmi_status_t rsmi_compute_process_gpus_get(uint32_t pid, uint32_t *dv_indices,
					    uint32_t *num_devices)
{
	struct fg_state *s = fg_rsmi_state();
	uint32_t devs[FG_MAX_DEVICES], n = 0;
	rsmi_status_t r = RSMI_STATUS_SUCCESS;

	if (!num_devices)
		return RSMI_STATUS_INVALID_ARGS;
	if (!s)
		return RSMI_STATUS_INIT_ERROR;
	if (fg_lock(s))
		return RSMI_STATUS_BUSY;
	refresh(s);
	for (uint32_t i = 0; i < FG_MAX_PROCS && n < FG_MAX_DEVICES; i++) {
		const struct fg_proc *p = &s->procs[i];

		if (p->pid && (uint32_t)p->pid == pid && p->device < s->device_count)
			devs[n++] = p->device;
	}
	fg_unlock(s);
	if (!n)
		return RSMI_STATUS_NOT_FOUND;
	if (dv_indices) {
		uint32_t k = n < *num_devices ? n : *num_devices;

		memcpy(dv_indices, devs, k * sizeof(*devs));
		if (k < n)
			r = RSMI_STATUS_INSUFFICIENT_SIZE;
		*num_devices = k;
	} else {
		*num_devices = n;
	}
	return r;
}
