/* Reader of the node inventory written by `vgpu gres generate`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gres.h"
#include "inventory.h"

#define INVENTORY_MAX_BYTES (256 * 1024)

static int parse_u64(const char *s, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

const char *vgpu_vendor_name(uint32_t vendor)
{
	return vendor == VGPU_VENDOR_AMD ? "amd" : "nvidia";
}

int vgpu_inventory_find_uuid(const struct vgpu_inventory *inv, const char *uuid)
{
	for (uint32_t i = 0; i < inv->ngpus; i++)
		if (!strcmp(inv->gpu[i].uuid, uuid))
			return (int)i;
	return -1;
}

/* An AMD GPU's uuid: "GPU-" and 16 lowercase hex digits (ROCm SMI's unique id, the form
 * ROCR_VISIBLE_DEVICES accepts). */
static int amd_uuid_ok(const char *uuid)
{
	if (strncmp(uuid, "GPU-", 4) || strlen(uuid) != 20)
		return 0;
	for (const char *p = uuid + 4; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* One "gpu key=value ... model=rest" record (tokens after "gpu"). */
static int parse_gpu_line(char *rest, struct vgpu_inv_gpu *g, const char *path, int lineno,
			  char *err, size_t errlen)
{
	int have_index = 0, have_uuid = 0, have_slices = 0, have_bytes = 0, have_permille = 0;
	char *save = NULL;

	memset(g, 0, sizeof(*g));
	for (char *tok = strtok_r(rest, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		uint64_t v;

		if (!eq)
			continue;
		*eq = '\0';
		if (!strcmp(tok, "model"))
			break; /* takes the rest of the line; not needed here */
		if (!strcmp(tok, "index")) {
			if (parse_u64(eq + 1, &v) || v > 65535)
				goto bad;
			g->index = (uint32_t)v;
			have_index = 1;
		} else if (!strcmp(tok, "uuid")) {
			if (!eq[1] || strlen(eq + 1) >= VGPU_UUID_LEN)
				goto bad;
			snprintf(g->uuid, sizeof(g->uuid), "%s", eq + 1);
			have_uuid = 1;
		} else if (!strcmp(tok, "slices")) {
			if (parse_u64(eq + 1, &v) || v < 1 || v > VGPU_MAX_SLICES_PER_GPU)
				goto bad;
			g->slices = (uint32_t)v;
			have_slices = 1;
		} else if (!strcmp(tok, "slice_bytes")) {
			if (parse_u64(eq + 1, &v) || v < 1)
				goto bad;
			g->slice_bytes = v;
			have_bytes = 1;
		} else if (!strcmp(tok, "slice_permille")) {
			if (parse_u64(eq + 1, &v) || v < 1 || v > 1000)
				goto bad;
			g->slice_permille = (uint32_t)v;
			have_permille = 1;
		} else if (!strcmp(tok, "vendor")) {
			if (!strcmp(eq + 1, "nvidia")) {
				g->vendor = VGPU_VENDOR_NVIDIA;
			} else if (!strcmp(eq + 1, "amd")) {
				g->vendor = VGPU_VENDOR_AMD;
			} else {
				snprintf(err, errlen, "%s line %d: bad value vendor=%s (this plugin "
					 "knows vendor=nvidia and vendor=amd)", path, lineno, eq + 1);
				return -1;
			}
		}
		continue;
bad:
		snprintf(err, errlen, "%s line %d: bad value %s=%s", path, lineno, tok, eq + 1);
		return -1;
	}
	if (!have_index || !have_uuid || !have_slices || !have_bytes || !have_permille) {
		snprintf(err, errlen, "%s line %d: gpu record needs index=, uuid=, slices=, "
			 "slice_bytes= and slice_permille=", path, lineno);
		return -1;
	}
	if (g->vendor == VGPU_VENDOR_AMD && !amd_uuid_ok(g->uuid)) {
		snprintf(err, errlen, "%s line %d: uuid=%s of an AMD GPU must be GPU- and 16 "
			 "lowercase hex digits (its ROCm SMI unique id)", path, lineno, g->uuid);
		return -1;
	}
	if ((uint64_t)g->slices * g->slice_permille > 1000) {
		snprintf(err, errlen, "%s line %d: slices x slice_permille exceeds 1000", path,
			 lineno);
		return -1;
	}
	return 0;
}

int vgpu_inventory_parse(const char *text, const char *path, struct vgpu_inventory *inv,
			 char *err, size_t errlen)
{
	char *copy = strdup(text), *save = NULL;
	int lineno = 0, rv = -1;

	memset(inv, 0, sizeof(*inv));
	if (!copy) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	/* strtok_r on "\n" would skip empty lines and miscount; walk lines by hand */
	for (char *line = copy; line; ) {
		char *next = strchr(line, '\n'), *p, *hash;

		if (next)
			*next++ = '\0';
		lineno++;
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		for (p = line; *p == ' ' || *p == '\t' || *p == '\r'; p++)
			;
		if (!*p) {
			line = next;
			continue;
		}
		if (!strncmp(p, "version=", 8)) {
			uint64_t v;

			if (parse_u64(strtok_r(p + 8, " \t\r", &save), &v) || v != 1) {
				snprintf(err, errlen, "%s line %d: unsupported inventory version (this "
					 "plugin reads version=1)", path, lineno);
				goto fail;
			}
		} else if (!strncmp(p, "node=", 5)) {
			char *name = strtok_r(p + 5, " \t\r", &save);

			snprintf(inv->node, sizeof(inv->node), "%s", name ? name : "");
		} else if (!strncmp(p, "gpu", 3) && (p[3] == ' ' || p[3] == '\t')) {
			struct vgpu_inv_gpu *g;

			if (inv->ngpus >= VGPU_MAX_GPUS) {
				snprintf(err, errlen, "%s line %d: more than %u gpu records", path,
					 lineno, VGPU_MAX_GPUS);
				goto fail;
			}
			g = &inv->gpu[inv->ngpus];
			if (parse_gpu_line(p + 4, g, path, lineno, err, errlen))
				goto fail;
			for (uint32_t i = 0; i < inv->ngpus; i++) {
				if (inv->gpu[i].index == g->index || !strcmp(inv->gpu[i].uuid, g->uuid)) {
					snprintf(err, errlen, "%s line %d: gpu index=%u or its uuid is "
						 "listed twice", path, lineno, g->index);
					goto fail;
				}
			}
			inv->ngpus++;
		}
		/* other record types: ignored (forward compatible) */
		line = next;
	}
	rv = 0;
fail:
	free(copy);
	return rv;
}

int vgpu_inventory_load(const char *path, struct vgpu_inventory *inv, char *err, size_t errlen)
{
	int fd = -1, rv = -1;
	char *buf = NULL;
	struct stat st;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open inventory %s: %s (generate it with `vgpu gres "
			 "generate` or set inventory= in plugstack.conf)", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "inventory %s must be a regular file owned by root and not "
			 "writable by group or others", path);
		goto fail;
	}
	if (st.st_size > INVENTORY_MAX_BYTES) {
		snprintf(err, errlen, "inventory %s is larger than %d bytes", path,
			 INVENTORY_MAX_BYTES);
		goto fail;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading %s", path);
		goto fail;
	}
	n = read(fd, buf, (size_t)st.st_size);
	if (n != st.st_size) {
		snprintf(err, errlen, "short read of inventory %s", path);
		goto fail;
	}
	rv = vgpu_inventory_parse(buf, path, inv, err, errlen);
fail:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rv;
}
