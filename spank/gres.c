/* Parsing of the GRES strings slurmctld reports for jobs and steps. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gres.h"

int vgpu_parse_count(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > VGPU_MAX_COUNT)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Number of indices in an IDX list such as "0-2,5". Returns 0 or -1. */
static int count_index_list(const char *s, size_t len, uint32_t *out)
{
	uint32_t total = 0;
	size_t i = 0;

	while (i < len) {
		size_t start = i, dash = 0;
		uint32_t lo, hi;

		while (i < len && s[i] != ',') {
			if (s[i] == '-' && !dash)
				dash = i;
			i++;
		}
		if (dash) {
			if (vgpu_parse_count(s + start, dash - start, &lo) ||
			    vgpu_parse_count(s + dash + 1, i - dash - 1, &hi) || hi < lo)
				return -1;
			total += hi - lo + 1;
		} else {
			if (vgpu_parse_count(s + start, i - start, &lo))
				return -1;
			total += 1;
		}
		if (total > VGPU_MAX_COUNT)
			return -1;
		i++; /* skip ',' */
	}
	*out = total;
	return 0;
}

/* Find "KEY:" inside a parenthesised detail "(CNT:3)" / "(IDX:0-2)"; value runs to ')' */
static const char *find_key(const char *s, size_t len, const char *key, size_t *vlen)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i + klen <= len; i++) {
		if ((i == 0 || s[i - 1] == '(' || s[i - 1] == ' ' || s[i - 1] == ',') &&
		    memcmp(s + i, key, klen) == 0) {
			size_t j = i + klen;

			while (j < len && s[j] != ')' && s[j] != ' ')
				j++;
			*vlen = j - (i + klen);
			return s + i + klen;
		}
	}
	return NULL;
}

/* One detail entry "head(paren)" of `len` bytes. Returns 1 (name matched), 0 (other), -1 bad */
static int detail_entry(const char *s, size_t len, const char *name, uint32_t *count)
{
	size_t nlen = strlen(name), head = 0, last_colon = 0;
	const char *v;
	size_t vlen;

	while (head < len && s[head] != '(') {
		if (s[head] == ':')
			last_colon = head;
		head++;
	}
	if (!(head >= nlen && memcmp(s, name, nlen) == 0 && (head == nlen || s[nlen] == ':')))
		return 0;
	if (head < len && (v = find_key(s + head, len - head, "CNT:", &vlen)))
		return vgpu_parse_count(v, vlen, count) ? -1 : 1;
	if (last_colon && vgpu_parse_count(s + last_colon + 1, head - last_colon - 1, count) == 0)
		return 1;
	if (head < len && (v = find_key(s + head, len - head, "IDX:", &vlen)))
		return count_index_list(v, vlen, count) ? -1 : 1;
	return -1;
}

int vgpu_gres_detail_count(const char *detail, const char *name, uint32_t *count)
{
	uint32_t total = 0;
	size_t i = 0, len;

	if (!detail || !name || !count)
		return -1;
	len = strlen(detail);
	while (i < len) {
		size_t start = i;
		int depth = 0;
		uint32_t one = 0;
		int rc;

		/* entries are separated by commas outside parentheses (IDX lists contain commas) */
		while (i < len && (depth > 0 || detail[i] != ',')) {
			if (detail[i] == '(')
				depth++;
			else if (detail[i] == ')' && depth > 0)
				depth--;
			i++;
		}
		rc = detail_entry(detail + start, i - start, name, &one);
		if (rc < 0)
			return -1;
		if (rc > 0)
			total += one;
		if (total > VGPU_MAX_COUNT)
			return -1;
		i++;
	}
	*count = total;
	return 0;
}

int vgpu_tres_count(const char *tres, const char *name, uint32_t *count)
{
	uint32_t total = 0;
	int found = 0;
	size_t i = 0, len, nlen;

	if (!tres || !name || !count)
		return tres ? -1 : 0;
	len = strlen(tres);
	nlen = strlen(name);
	while (i < len) {
		size_t start = i, end, p;

		while (i < len && tres[i] != ',' && tres[i] != ';')
			i++;
		end = i++;
		p = start;
		if (end - p > 5 && memcmp(tres + p, "gres", 4) == 0 &&
		    (tres[p + 4] == ':' || tres[p + 4] == '/'))
			p += 5;
		else
			continue; /* cpu=, mem=, license... */
		if (end - p >= nlen && memcmp(tres + p, name, nlen) == 0 &&
		    (end - p == nlen || tres[p + nlen] == ':' || tres[p + nlen] == '=')) {
			size_t last = end;
			uint32_t one = 1;

			while (last > p + nlen && tres[last - 1] != ':' && tres[last - 1] != '=')
				last--;
			/* "gres:vgpu" means one; "gres:vgpu:g0" (a type, no count) also means one */
			if (last > p + nlen && vgpu_parse_count(tres + last, end - last, &one) &&
			    (tres[last] >= '0' && tres[last] <= '9'))
				return -1;
			found = 1;
			total += one;
			if (total > VGPU_MAX_COUNT)
				return -1;
		}
	}
	*count = found ? total : 0;
	return found;
}

int vgpu_tres_alloc_count(const char *tres, const char *name, uint32_t *count)
{
	size_t nlen;

	if (!name || !count)
		return -1;
	*count = 0;
	if (!tres)
		return 0;
	nlen = strlen(name);
	for (const char *p = tres; *p; ) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > 5 + nlen + 1 && !memcmp(p, "gres/", 5) && !memcmp(p + 5, name, nlen) &&
		    p[5 + nlen] == '=')
			return vgpu_parse_count(p + 6 + nlen, len - 6 - nlen, count) ? -1 : 0;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}
