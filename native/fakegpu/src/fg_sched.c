/*
 * fakegpu: the device's scheduler, modelled on an H200 without MPS (docs/fakegpu.md).
 *
 * Each process (proc slot) has one queue of work per device: enq_ns is the kernel time it has
 * queued, done_ns what has run. The device runs one process at a time: the current one runs
 * until its queue is empty or its time slice (timeslice_ns) is over while another process has
 * work; then the next process with work, round robin, gets the device. Switching away from a
 * process that still has work (preemption) costs switch_ns of device time in which nobody
 * progresses; handing an idle device to another process costs nothing. A preempted kernel
 * resumes where it stopped (work is counted in ns, not in kernels).
 *
 * Nothing runs in the background: whoever takes the state lock first advances the simulation
 * to "now" (fg_sched_advance), and only then changes the queues. Between two such calls the
 * queues do not change, so the lazily computed schedule is the one a device would have run.
 *
 * The driver's utilization sampler is simulated here too: at every sample boundary (multiples
 * of sample_ms) each process's sample is the share of the period in which it had work queued
 * or running, which is what NVML's per-process smUtil reports on the H200 (two time-sliced,
 * always-busy processes both read 99), and the device's sample is the share in which any
 * process had work. The newer per-process call (nvmlDeviceGetProcessesUtilizationInfo) reports
 * the share of the period in which the process's kernels ran (sample_run_util): on the H200 it
 * read 56-60 and 34-38 for an always-busy process next to a 30 %-duty one.
 */
#include "fg_state.h"

#include <string.h>
#include <time.h>

#define MAX_STEPS 100000u /* bound on one advance (a slice is >= 1 us) */

static int on_dev(const struct fg_proc *p, uint32_t dev)
{
	return p->pid && p->device == dev;
}

static int has_work(const struct fg_proc *p)
{
	return p->enq_ns > p->done_ns;
}

static uint64_t active_total(const struct fg_proc *p, uint64_t at)
{
	return p->active_acc_ns + (has_work(p) && at > p->active_since_ns ?
					   at - p->active_since_ns : 0);
}

static uint32_t pct(uint64_t part, uint64_t whole)
{
	uint64_t v = whole ? (part * 100 + whole / 2) / whole : 0;

	return v > 100 ? 100 : (uint32_t)v;
}

static void take_samples(struct fg_state *s, uint32_t dev, uint64_t at, uint64_t period)
{
	struct fg_device_state *d = &s->dev[dev];
	uint64_t tot;

	for (uint32_t i = 0; i < FG_MAX_PROCS; i++) {
		struct fg_proc *p = &s->procs[i];

		if (!on_dev(p, dev))
			continue;
		tot = active_total(p, at);
		p->sample_util = pct(tot - p->sample_prev_active, period);
		p->sample_seen = tot > p->sample_prev_active;
		p->sample_prev_active = tot;
		p->sample_run_util = pct(p->done_ns - p->sample_prev_done, period);
		p->sample_prev_done = p->done_ns;
		p->sample_ns = at;
	}
	tot = d->active_acc_ns + (d->nactive && at > d->active_since_ns ?
					  at - d->active_since_ns : 0);
	d->sample_util = pct(tot - d->sample_prev_active, period);
	{
		/* sample timestamps are wall-clock us; fix the offset once per sample so that
		 * every query reports the same timestamp for it */
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		d->sample_rt_offset_us = ((int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000) -
					 (int64_t)(fg_now_ns() / 1000);
	}
	d->sample_prev_active = tot;
	d->sample_ns = at;
}

/* The next process with work after slot `after`, round robin (itself last); -1 none. */
static int32_t pick(const struct fg_state *s, uint32_t dev, int32_t after)
{
	for (uint32_t k = 1; k <= FG_MAX_PROCS; k++) {
		uint32_t i = (uint32_t)(after + (int32_t)k + (int32_t)FG_MAX_PROCS) % FG_MAX_PROCS;
		const struct fg_proc *p = &s->procs[i];

		if (on_dev(p, dev) && has_work(p))
			return (int32_t)i;
	}
	return -1;
}

static void went_idle(struct fg_device_state *d, struct fg_proc *p, uint64_t at)
{
	p->active_acc_ns += at > p->active_since_ns ? at - p->active_since_ns : 0;
	if (d->nactive && --d->nactive == 0)
		d->active_acc_ns += at > d->active_since_ns ? at - d->active_since_ns : 0;
}

/* Run the device from sim_ns up to `limit` (no sample boundary inside). */
static void run_until(struct fg_state *s, uint32_t dev, uint64_t limit)
{
	struct fg_device_state *d = &s->dev[dev];
	uint64_t slice = s->timeslice_ns ? s->timeslice_ns : 1;

	for (uint32_t step = 0; d->sim_ns < limit && step < MAX_STEPS; step++) {
		struct fg_proc *p = NULL;
		uint64_t end;

		if (d->sim_ns < d->switch_until_ns) {
			d->sim_ns = d->switch_until_ns < limit ? d->switch_until_ns : limit;
			continue;
		}
		if (d->cur >= 0 && (uint32_t)d->cur < FG_MAX_PROCS)
			p = &s->procs[d->cur];
		if (!p || !on_dev(p, dev) || !has_work(p) || d->sim_ns >= d->run_start_ns + slice) {
			int preempt = p && on_dev(p, dev) && has_work(p);
			int32_t next = pick(s, dev, d->cur >= 0 ? d->cur : -1);

			if (next < 0) {
				d->sim_ns = limit; /* idle */
				break;
			}
			d->run_start_ns = d->sim_ns;
			if (next != d->cur && preempt && s->switch_ns) {
				d->switch_until_ns = d->sim_ns + s->switch_ns;
				d->run_start_ns = d->switch_until_ns;
			}
			d->cur = next;
			continue;
		}
		end = d->run_start_ns + slice;
		if (end > limit)
			end = limit;
		if (end > d->sim_ns + (p->enq_ns - p->done_ns))
			end = d->sim_ns + (p->enq_ns - p->done_ns);
		fg_timeline_add(s, dev, p->pid, d->sim_ns, end, p->done_ns);
		p->done_ns += end - d->sim_ns;
		d->sim_ns = end;
		if (!has_work(p))
			went_idle(d, p, end);
	}
	if (d->sim_ns < limit)
		d->sim_ns = limit; /* step bound hit: drop the rest rather than spin */
}

void fg_sched_advance(struct fg_state *s, uint32_t dev, uint64_t now)
{
	struct fg_device_state *d;
	uint64_t period = (uint64_t)(s->sample_ms ? s->sample_ms : 200) * 1000000ULL;

	if (dev >= FG_MAX_DEVICES)
		return;
	d = &s->dev[dev];
	if (!d->sim_ns || d->sim_ns > now + 1000000000ULL * 3600) {
		d->sim_ns = now;
		d->cur = -1;
		d->next_sample_ns = (now / period + 1) * period;
		return;
	}
	while (d->sim_ns < now) {
		uint64_t limit = d->next_sample_ns < now ? d->next_sample_ns : now;

		run_until(s, dev, limit);
		if (d->sim_ns < d->next_sample_ns)
			break;
		take_samples(s, dev, d->next_sample_ns, period);
		d->next_sample_ns += period;
		if (!d->nactive && d->next_sample_ns + period <= now) {
			/* idle: the samples in between all read 0; take only the newest */
			uint64_t k = (now - d->next_sample_ns) / period;

			take_samples(s, dev, d->next_sample_ns + k * period, period);
			d->next_sample_ns += (k + 1) * period;
			d->sim_ns = now;
		}
	}
}

uint64_t fg_sched_submit(struct fg_state *s, uint32_t dev, struct fg_proc *p, uint64_t dur,
			 uint64_t now)
{
	struct fg_device_state *d = &s->dev[dev];

	if (!dur)
		return p->enq_ns;
	if (!has_work(p)) {
		p->active_since_ns = now;
		if (d->nactive++ == 0)
			d->active_since_ns = now;
	}
	p->enq_ns += dur;
	return p->enq_ns;
}

void fg_sched_drop(struct fg_state *s, struct fg_proc *p, uint64_t now)
{
	if (p->device >= FG_MAX_DEVICES || !has_work(p))
		return;
	fg_sched_advance(s, p->device, now);
	if (has_work(p)) {
		p->done_ns = p->enq_ns;
		went_idle(&s->dev[p->device], p, now);
	}
}

uint64_t fg_sched_work_time(const struct fg_state *s, uint32_t dev, int pid, uint64_t work)
{
	const struct fg_device_state *d = &s->dev[dev];
	uint32_t head = d->ring_head % FG_RING_SIZE;
	uint32_t count = d->ring_count > FG_RING_SIZE ? FG_RING_SIZE : d->ring_count;

	for (uint32_t k = 0; k < count; k++) {
		const struct fg_interval *iv = &d->ring[(head + FG_RING_SIZE - 1 - k) % FG_RING_SIZE];
		uint64_t len = iv->end_ns - iv->start_ns;

		if (iv->pid != pid)
			continue;
		if (work > iv->work_at_start && work <= iv->work_at_start + len)
			return iv->start_ns + (work - iv->work_at_start);
		if (work > iv->work_at_start + len)
			return 0; /* not run yet (or never will be) */
	}
	return 0;
}
