/* Placement algorithm and the node-local placement table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "gres.h"
#include "placement.h"

/* Free slices of inventory GPU i counting `extra` lent slices, at most the GPU's slices. */
static uint32_t gpu_free_with(const struct vgpu_inventory *inv,
			      const struct vgpu_placements *cur, uint32_t i, uint32_t extra)
{
	uint64_t used = 0, cap = (uint64_t)inv->gpu[i].slices + extra, left;

	for (uint32_t k = 0; k < cur->n; k++)
		if (cur->e[k].gpu_index == inv->gpu[i].index)
			used += cur->e[k].slices;
	left = used >= cap ? 0 : cap - used;
	return left > inv->gpu[i].slices ? inv->gpu[i].slices : (uint32_t)left;
}

uint32_t vgpu_gpu_free(const struct vgpu_inventory *inv, const struct vgpu_placements *cur,
		       uint32_t i)
{
	return gpu_free_with(inv, cur, i, 0);
}

/* Span `want` slices over GPUs of one vendor, most-free first; 0 and taken[] filled, or -1
 * when that vendor's GPUs lack them. *ngpus: how many GPUs the span uses. */
static int span_vendor(const struct vgpu_inventory *inv, const uint32_t *free_of,
		       uint32_t vendor, uint32_t want, uint32_t *taken, uint32_t *ngpus)
{
	uint32_t remaining = want;

	*ngpus = 0;
	memset(taken, 0, sizeof(*taken) * VGPU_MAX_GPUS);
	while (remaining > 0) {
		uint32_t pick = VGPU_MAX_GPUS;

		for (uint32_t i = 0; i < inv->ngpus; i++)
			if (inv->gpu[i].vendor == vendor && !taken[i] && free_of[i] > 0 &&
			    (pick == VGPU_MAX_GPUS || free_of[i] > free_of[pick]))
				pick = i;
		if (pick == VGPU_MAX_GPUS)
			return -1;
		taken[pick] = free_of[pick] < remaining ? free_of[pick] : remaining;
		remaining -= taken[pick];
		(*ngpus)++;
	}
	return 0;
}

int vgpu_place(const struct vgpu_inventory *inv, const struct vgpu_placements *cur,
	       const uint32_t *lent, uint32_t want, struct vgpu_place_entry *out,
	       uint32_t *nout, char *err, size_t errlen)
{
	uint32_t free_of[VGPU_MAX_GPUS], taken[VGPU_MAX_GPUS] = { 0 }, span[VGPU_MAX_GPUS];
	uint32_t best = VGPU_MAX_GPUS, n = 0, best_gpus = 0;
	uint64_t total_free = 0, vendor_free[2] = { 0, 0 };
	int found = 0;

	*nout = 0;
	if (want == 0 || inv->ngpus == 0) {
		snprintf(err, errlen, want ? "the node inventory lists no sliced GPU"
					   : "nothing to place");
		return -1;
	}
	for (uint32_t i = 0; i < inv->ngpus; i++) {
		uint32_t v = inv->gpu[i].vendor ? 1 : 0;

		free_of[i] = gpu_free_with(inv, cur, i, lent ? lent[i] : 0);
		total_free += free_of[i];
		vendor_free[v] += free_of[i];
		if (free_of[i] >= want && (best == VGPU_MAX_GPUS || free_of[i] < free_of[best]))
			best = i;
	}
	if (best != VGPU_MAX_GPUS) {
		out[0].job_id = 0;
		out[0].gpu_index = inv->gpu[best].index;
		out[0].slices = want;
		*nout = 1;
		return 0;
	}
	if (total_free < want) {
		snprintf(err, errlen, "%u slices wanted but only %llu free on this node%s", want,
			 (unsigned long long)total_free, lent ? " (counting lent slices)" : "");
		return -1;
	}
	/* span: a job's slices stay on GPUs of one vendor (one visibility variable, one
	 * runtime); of the vendors that can hold them, the span over the fewest GPUs (ties: the
	 * vendor of the earlier GPU in the inventory), taking the most-free GPU first */
	for (uint32_t i = 0; i < inv->ngpus; i++) {
		uint32_t v = inv->gpu[i].vendor, ngpus, seen = 0;

		for (uint32_t k = 0; k < i; k++)
			seen |= inv->gpu[k].vendor == v;
		if (seen || span_vendor(inv, free_of, v, want, span, &ngpus))
			continue;
		if (!found || ngpus < best_gpus) {
			memcpy(taken, span, sizeof(taken));
			best_gpus = ngpus;
			found = 1;
		}
	}
	if (!found) {
		snprintf(err, errlen, "%u slices wanted: %llu free on this node's NVIDIA GPUs and "
			 "%llu on its AMD GPUs%s, and a job's slices stay on GPUs of one vendor",
			 want, (unsigned long long)vendor_free[0],
			 (unsigned long long)vendor_free[1], lent ? " (counting lent slices)" : "");
		return -1;
	}
	/* report in inventory order so the visible devices list ascending indices */
	for (uint32_t i = 0; i < inv->ngpus; i++) {
		if (!taken[i])
			continue;
		out[n].job_id = 0;
		out[n].gpu_index = inv->gpu[i].index;
		out[n].slices = taken[i];
		n++;
	}
	*nout = n;
	return 0;
}

static int parse_field(const char *tok, const char *key, uint32_t *out)
{
	size_t klen = strlen(key);

	if (strncmp(tok, key, klen) || tok[klen] != '=')
		return -1;
	return vgpu_parse_count(tok + klen + 1, strlen(tok + klen + 1), out) == 0 ? 0 : -1;
}

static int parse_job_id(const char *tok, uint32_t *out)
{
	char *end = NULL;
	unsigned long v;

	if (strncmp(tok, "job=", 4) || tok[4] < '0' || tok[4] > '9')
		return -1;
	errno = 0;
	v = strtoul(tok + 4, &end, 10);
	if (errno || *end || v == 0 || v > 0xfffffff0UL)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int vgpu_placements_read(const char *path, struct vgpu_placements *pl, char *err,
			 size_t errlen)
{
	static char buf[VGPU_MAX_PLACEMENTS * 64];
	ssize_t len;
	int lineno = 0;

	pl->n = 0;
	len = vgpu_read_small(path, buf, sizeof(buf));
	if (len < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read placements %s: %s", path, strerror(errno));
		return -1;
	}
	for (char *line = buf; line && *line; ) {
		char *next = strchr(line, '\n'), *save = NULL, *t1, *t2, *t3;
		struct vgpu_place_entry e;

		if (next)
			*next++ = '\0';
		lineno++;
		if (line[0] == '#' || line[0] == '\0') {
			line = next;
			continue;
		}
		t1 = strtok_r(line, " \t", &save);
		t2 = strtok_r(NULL, " \t", &save);
		t3 = strtok_r(NULL, " \t", &save);
		if (!t1 || !t2 || !t3 || parse_job_id(t1, &e.job_id) ||
		    parse_field(t2, "gpu", &e.gpu_index) || parse_field(t3, "slices", &e.slices) ||
		    pl->n >= VGPU_MAX_PLACEMENTS) {
			snprintf(err, errlen, "placements %s line %d is malformed (expected "
				 "job=<id> gpu=<index> slices=<n>)", path, lineno);
			return -1;
		}
		pl->e[pl->n++] = e;
		line = next;
	}
	return 0;
}

int vgpu_placements_write(const char *path, const struct vgpu_placements *pl, char *err,
			  size_t errlen)
{
	static char buf[VGPU_MAX_PLACEMENTS * 64 + 128];
	size_t off = 0;

	off += (size_t)snprintf(buf, sizeof(buf),
				"# slurm-vgpu node placements (written by the SPANK plugin)\n");
	for (uint32_t i = 0; i < pl->n && off < sizeof(buf); i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "job=%u gpu=%u slices=%u\n",
					pl->e[i].job_id, pl->e[i].gpu_index, pl->e[i].slices);
	if (off >= sizeof(buf)) {
		snprintf(err, errlen, "placements table too large");
		return -1;
	}
	return vgpu_write_atomic(path, buf, off, 0644, err, errlen);
}

uint32_t vgpu_placements_drop(struct vgpu_placements *pl, uint32_t job_id)
{
	uint32_t kept = 0, dropped = 0;

	for (uint32_t i = 0; i < pl->n; i++) {
		if (pl->e[i].job_id == job_id)
			dropped++;
		else
			pl->e[kept++] = pl->e[i];
	}
	pl->n = kept;
	return dropped;
}

int vgpu_placements_add(struct vgpu_placements *pl, uint32_t job_id,
			const struct vgpu_place_entry *add, uint32_t nadd)
{
	if (pl->n + nadd > VGPU_MAX_PLACEMENTS)
		return -1;
	for (uint32_t i = 0; i < nadd; i++) {
		pl->e[pl->n] = add[i];
		pl->e[pl->n].job_id = job_id;
		pl->n++;
	}
	return 0;
}
