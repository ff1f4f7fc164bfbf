/* Reader of the lent file written by `vgpu daemon` (idle-slice backfill). The file comes from
 * root, but it decides who may use slices another job owns: every field is checked, and any
 * doubt means nothing is lent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "gres.h"
#include "lent.h"

#define LENT_MAX_BYTES (64 * 1024)

/* A partition/QOS list: comma-separated names of printable ASCII without ' ', ',', '=', '#';
 * "" (none) is fine, empty names ("a,,b") are not. */
static int valid_names(const char *s)
{
	size_t namelen = 0;

	for (const char *p = s; *p; p++) {
		if (*p == ',') {
			if (namelen == 0)
				return -1;
			namelen = 0;
			continue;
		}
		if (*p <= ' ' || *p > '~' || *p == '=' || *p == '#')
			return -1;
		namelen++;
	}
	return s[0] && namelen == 0 ? -1 : 0;
}

static int name_listed(const char *list, const char *name)
{
	size_t n;

	if (!name || !name[0])
		return 0;
	n = strlen(name);
	for (const char *p = list; *p; ) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && !strncmp(p, name, n))
			return 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int vgpu_lent_preemptible(const struct vgpu_lent *lent, const char *partition,
			  const char *qos)
{
	return name_listed(lent->partitions, partition) || name_listed(lent->qos, qos);
}

static int parse_preemptible(char *rest, struct vgpu_lent *out)
{
	char *save = NULL;
	int have_part = 0, have_qos = 0;

	for (char *tok = strtok_r(rest, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		char *dst;
		int *have;

		if (!eq)
			return -1;
		*eq = '\0';
		if (!strcmp(tok, "partitions")) {
			dst = out->partitions;
			have = &have_part;
		} else if (!strcmp(tok, "qos")) {
			dst = out->qos;
			have = &have_qos;
		} else {
			continue; /* unknown key: forward compatible */
		}
		if (*have || valid_names(eq + 1) || strlen(eq + 1) >= VGPU_LENT_NAMES_LEN)
			return -1;
		memcpy(dst, eq + 1, strlen(eq + 1) + 1);
		*have = 1;
	}
	return 0;
}

static int parse_gpu(char *rest, const struct vgpu_inventory *inv, struct vgpu_lent *out,
		     const char *path, int lineno, char *err, size_t errlen)
{
	char *save = NULL, *uuid = NULL;
	uint32_t index = 0, slices = 0, pos = VGPU_MAX_GPUS;
	int have_index = 0, have_slices = 0;

	for (char *tok = strtok_r(rest, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq)
			goto bad;
		*eq = '\0';
		if (!strcmp(tok, "index")) {
			if (have_index || vgpu_parse_count(eq + 1, strlen(eq + 1), &index))
				goto bad;
			have_index = 1;
		} else if (!strcmp(tok, "uuid")) {
			if (uuid || !eq[1])
				goto bad;
			uuid = eq + 1;
		} else if (!strcmp(tok, "slices")) {
			if (have_slices || vgpu_parse_count(eq + 1, strlen(eq + 1), &slices))
				goto bad;
			have_slices = 1;
		}
	}
	if (!have_index || !uuid || !have_slices) {
		snprintf(err, errlen, "%s line %d: gpu record needs index=, uuid= and slices=", path,
			 lineno);
		return -1;
	}
	for (uint32_t i = 0; i < inv->ngpus; i++)
		if (inv->gpu[i].index == index)
			pos = i;
	if (pos == VGPU_MAX_GPUS || strcmp(inv->gpu[pos].uuid, uuid)) {
		snprintf(err, errlen, "%s line %d: gpu index=%u uuid=%s is not a GPU of the node "
			 "inventory", path, lineno, index, uuid);
		return -1;
	}
	if (slices < 1 || slices > inv->gpu[pos].slices) {
		snprintf(err, errlen, "%s line %d: slices=%u lent on GPU %u, which has %u", path,
			 lineno, slices, index, inv->gpu[pos].slices);
		return -1;
	}
	if (out->slices[pos]) {
		snprintf(err, errlen, "%s line %d: gpu index=%u is listed twice", path, lineno,
			 index);
		return -1;
	}
	out->slices[pos] = slices;
	out->total += slices;
	return 0;
bad:
	snprintf(err, errlen, "%s line %d: bad gpu record (expected gpu index=<n> uuid=<uuid> "
		 "slices=<n>)", path, lineno);
	return -1;
}

int vgpu_lent_parse(const char *text, const char *path, const char *node,
		    const struct vgpu_inventory *inv, struct vgpu_lent *out, char *err,
		    size_t errlen)
{
	char *copy = strdup(text);
	int lineno = 0, rv = -1, have_version = 0, have_node = 0, have_preemptible = 0;

	memset(out, 0, sizeof(*out));
	if (!copy) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (!node || !node[0]) {
		snprintf(err, errlen, "%s: this node's name is unknown, so its node= cannot be "
			 "checked", path);
		goto fail;
	}
	for (char *line = copy; line; ) {
		char *next = strchr(line, '\n'), *p, *hash, *end;

		if (next)
			*next++ = '\0';
		lineno++;
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		for (end = p + strlen(p); end > p && (end[-1] == ' ' || end[-1] == '\t' ||
						       end[-1] == '\r'); end--)
			end[-1] = '\0';
		if (!*p) {
			line = next;
			continue;
		}
		if (!strncmp(p, "version=", 8)) {
			uint32_t v;

			if (have_version || vgpu_parse_count(p + 8, strlen(p + 8), &v) ||
			    v != VGPU_LENT_VERSION) {
				snprintf(err, errlen, "%s line %d: unsupported lent file version (this "
					 "plugin reads version=%u)", path, lineno, VGPU_LENT_VERSION);
				goto fail;
			}
			have_version = 1;
		} else if (!strncmp(p, "node=", 5)) {
			if (have_node || strcmp(p + 5, node)) {
				snprintf(err, errlen, "%s line %d: written for node '%s', this is %s",
					 path, lineno, p + 5, node);
				goto fail;
			}
			have_node = 1;
		} else if (!strncmp(p, "preemptible", 11) && (p[11] == ' ' || p[11] == '\t' ||
							      !p[11])) {
			if (have_preemptible || parse_preemptible(p + 11, out)) {
				snprintf(err, errlen, "%s line %d: bad preemptible record (expected "
					 "preemptible partitions=<a,b> qos=<c,d>, once)", path, lineno);
				goto fail;
			}
			have_preemptible = 1;
		} else if (!strncmp(p, "gpu", 3) && (p[3] == ' ' || p[3] == '\t')) {
			if (parse_gpu(p + 4, inv, out, path, lineno, err, errlen))
				goto fail;
		}
		/* other record types: ignored (forward compatible) */
		line = next;
	}
	if (!have_version || !have_node || !have_preemptible) {
		snprintf(err, errlen, "%s: no %s record", path,
			 !have_version ? "version=" : !have_node ? "node=" : "preemptible");
		goto fail;
	}
	rv = 0;
fail:
	free(copy);
	if (rv)
		memset(out, 0, sizeof(*out)); /* what was parsed before the error grants nothing */
	return rv;
}

int vgpu_lent_load(const char *path, const char *node, const struct vgpu_inventory *inv,
		   struct vgpu_lent *out, char *err, size_t errlen)
{
	static char buf[LENT_MAX_BYTES];
	ssize_t len;

	memset(out, 0, sizeof(*out));
	len = vgpu_read_root_file(path, buf, sizeof(buf), err, errlen);
	if (len < 0)
		return errno == ENOENT ? 0 : -1;
	if (strlen(buf) != (size_t)len) {
		snprintf(err, errlen, "%s contains a NUL byte", path);
		return -1;
	}
	return vgpu_lent_parse(buf, path, node, inv, out, err, errlen) ? -1 : 1;
}

int vgpu_place_lent(const struct vgpu_inventory *inv, const struct vgpu_placements *cur,
		    const struct vgpu_lent *lent, const char *partition, const char *qos,
		    uint32_t want, struct vgpu_place_entry *out, uint32_t *nout, char *err,
		    size_t errlen)
{
	char base[512], why[512];

	*nout = 0;
	if (lent->total == 0)
		return -1; /* nothing lent: the normal reason stands */
	(void)vgpu_fmt(base, sizeof(base), "%s", err);
	if (!vgpu_lent_preemptible(lent, partition, qos)) {
		(void)vgpu_fmt(err, errlen, "%s; %u more are lent by the policy daemon, but only to "
			       "jobs in a preemptible partition (%s) or QOS (%s), and this job runs "
			       "in partition %s with QOS %s", base, lent->total,
			       lent->partitions[0] ? lent->partitions : "none",
			       lent->qos[0] ? lent->qos : "none",
			       partition && partition[0] ? partition : "(unknown)",
			       qos && qos[0] ? qos : "(unknown)");
		/* would the lent slices have held it? then slurmctld put it on them */
		if (vgpu_place(inv, cur, lent->slices, want, out, nout, why, sizeof(why)) == 0) {
			*nout = 0;
			return VGPU_LENT_REFUSED;
		}
		*nout = 0;
		return -1;
	}
	if (vgpu_place(inv, cur, lent->slices, want, out, nout, why, sizeof(why))) {
		(void)vgpu_fmt(err, errlen, "%s; with the %u slices lent by the policy daemon: %s",
			       base, lent->total, why);
		return -1;
	}
	return 0;
}
