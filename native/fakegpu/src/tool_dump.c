/*
 * fakegpu-dump: the simulated machine's ground truth as JSON, read straight from the state
 * file (no libcuda or libnvidia-ml involved, so no hook can change what it reports).
 *
 *   fakegpu-dump [--state PATH] [--window-ms MS | --from-ns T0 [--to-ns T1]]
 *
 * Per device: configuration, memory total/used, launches, simulated busy time, utilization
 * and per-process memory and busy time within the window. Times are CLOCK_MONOTONIC ns
 * (the same clock in every process), so a benchmark can pass the exact interval it measured.
 * Processes that exited are reaped first, as the real driver frees their memory at exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fg_state.h"

static void json_string(const char *s, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int parse_u64(const char *s, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return end == s || *end || errno || *s == '-' ? -1 : 0;
}

static int has_slot(const struct fg_state *s, uint32_t dev, int pid)
{
	for (uint32_t k = 0; k < FG_MAX_PROCS; k++)
		if (s->procs[k].pid == pid && s->procs[k].device == dev)
			return 1;
	return 0;
}

/* Processes that ran kernels in the window but have exited: the timeline still knows them. */
static void dump_exited(const struct fg_state *s, uint32_t dev, uint64_t from, uint64_t to,
			int first)
{
	const struct fg_device_state *d = &s->dev[dev];
	uint32_t head = d->ring_head % FG_RING_SIZE;
	uint32_t count = d->ring_count > FG_RING_SIZE ? FG_RING_SIZE : d->ring_count;
	int seen[256];
	unsigned nseen = 0;

	for (uint32_t k = 0; k < count && nseen < sizeof(seen) / sizeof(seen[0]); k++) {
		const struct fg_interval *iv = &d->ring[(head + FG_RING_SIZE - 1 - k) % FG_RING_SIZE];
		unsigned j;

		if (iv->end_ns <= from)
			break;
		if (iv->start_ns >= to || has_slot(s, dev, iv->pid))
			continue;
		for (j = 0; j < nseen && seen[j] != iv->pid; j++)
			;
		if (j < nseen)
			continue;
		seen[nseen++] = iv->pid;
		printf("%s{\"pid\":%d,\"alive\":false,\"memory_used\":0,\"busy_window_ns\":%llu}",
		       first ? "" : ",", iv->pid,
		       (unsigned long long)fg_busy_ns(s, dev, from, to, iv->pid, NULL));
		first = 0;
	}
}

static void dump_device(const struct fg_state *s, uint32_t i, uint64_t from, uint64_t to)
{
	const struct fg_device_config *c = &s->config[i];
	const struct fg_device_state *d = &s->dev[i];
	char uuid[64], bus[FG_BUSID_LEN];
	uint64_t busy, win = to > from ? to - from : 0;
	int complete, first = 1;

	busy = fg_busy_ns(s, i, from, to, 0, &complete);
	fg_uuid_format(c->uuid, uuid, sizeof(uuid));
	fg_busid_format(c, bus, sizeof(bus));
	printf("%s{\"index\":%u,\"name\":", i ? "," : "", i);
	json_string(c->name, FG_NAME_LEN);
	printf(",\"vendor\":\"%s\"", fg_vendor_name(c->vendor));
	if (c->vendor == FG_VENDOR_AMD) {
		char gfx[32];

		fg_gfx_format(c, gfx, sizeof(gfx));
		printf(",\"arch\":\"%s\"", gfx);
	}
	printf(",\"uuid\":\"%s\",\"bus_id\":\"%s\",\"sms\":%u,\"cc\":\"%u.%u\","
	       "\"memory_total\":%llu,\"memory_used\":%llu,\"allocs\":%llu,\"frees\":%llu,"
	       "\"launches\":%llu,\"busy_total_ns\":%llu,\"busy_until_ns\":%llu,"
	       "\"busy_window_ns\":%llu,\"utilization\":%.4f,\"window_complete\":%s,\"processes\":[",
	       uuid, bus, c->sms, c->cc_major, c->cc_minor, (unsigned long long)c->memory_bytes,
	       (unsigned long long)d->used_bytes, (unsigned long long)d->allocs,
	       (unsigned long long)d->frees, (unsigned long long)d->launches,
	       (unsigned long long)d->busy_total_ns, (unsigned long long)d->busy_until_ns,
	       (unsigned long long)busy, win ? (double)busy / (double)win : 0.0,
	       complete ? "true" : "false");
	for (uint32_t k = 0; k < FG_MAX_PROCS; k++) {
		const struct fg_proc *p = &s->procs[k];

		if (!p->pid || p->device != i)
			continue;
		printf("%s{\"pid\":%d,\"alive\":true,\"memory_used\":%llu,\"launches\":%llu,"
		       "\"busy_total_ns\":%llu,\"busy_window_ns\":%llu}", first ? "" : ",", p->pid,
		       (unsigned long long)p->used_bytes, (unsigned long long)p->launches,
		       (unsigned long long)p->busy_ns,
		       (unsigned long long)fg_busy_ns(s, i, from, to, p->pid, NULL));
		first = 0;
	}
	dump_exited(s, i, from, to, first);
	printf("]}");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "window-ms", required_argument, NULL, 'w' },
		{ "from-ns", required_argument, NULL, 'f' },
		{ "to-ns", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long window_ms = 0, from = 0, to = 0;
	char path[4096], err[512];
	struct fg_state *s;
	uint64_t now;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			setenv("FAKEGPU_STATE", optarg, 1);
			break;
		case 'w':
			if (parse_u64(optarg, &window_ms) || !window_ms) {
				fprintf(stderr, "fakegpu: --window-ms wants a positive number\n");
				return 2;
			}
			break;
		case 'f':
		case 't':
			if (parse_u64(optarg, o == 'f' ? &from : &to)) {
				fprintf(stderr, "fakegpu: --from-ns/--to-ns want CLOCK_MONOTONIC ns\n");
				return 2;
			}
			break;
		case 'h':
			printf("usage: fakegpu-dump [--state PATH] [--window-ms MS | --from-ns T0 "
			       "[--to-ns T1]]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "fakegpu: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (fg_state_path(path, sizeof(path), err, sizeof(err)) != 0) {
		fprintf(stderr, "fakegpu: %s\n", err);
		return 2;
	}
	s = fg_state_open(path, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "fakegpu: %s\n", err);
		return 1;
	}
	if (fg_lock(s)) {
		munmap(s, sizeof(*s));
		return 1;
	}
	fg_reap_dead(s);
	now = fg_now_ns();
	for (uint32_t i = 0; i < s->device_count && i < FG_MAX_DEVICES; i++)
		fg_sched_advance(s, i, now);
	if (!to)
		to = now;
	if (!from) {
		uint64_t w = (window_ms ? window_ms : s->util_window_ms) * 1000000ULL;

		from = to > w ? to - w : 0;
	}
	printf("{\"state\":");
	json_string(path, sizeof(path));
	printf(",\"version\":%u,\"now_ns\":%llu,\"from_ns\":%llu,\"to_ns\":%llu,"
	       "\"kernel_ns\":%llu,\"blocks_per_sm\":%u,\"alloc_granularity\":%llu,"
	       "\"ctx_overhead\":%llu,\"timeslice_ns\":%llu,\"switch_ns\":%llu,"
	       "\"sample_ms\":%u,\"sensors\":\"%s\",\"devices\":[",
	       s->version, (unsigned long long)now, from, to, (unsigned long long)s->kernel_ns,
	       s->blocks_per_sm, (unsigned long long)s->alloc_granularity,
	       (unsigned long long)s->ctx_overhead_mib << 20, (unsigned long long)s->timeslice_ns,
	       (unsigned long long)s->switch_ns, s->sample_ms, s->ideal ? "ideal" : "real");
	for (uint32_t i = 0; i < s->device_count; i++)
		dump_device(s, i, from, to);
	printf("]}\n");
	fg_unlock(s);
	munmap(s, sizeof(*s));
	return 0;
}
