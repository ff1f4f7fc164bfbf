/* plugstack.conf argument parsing: "required vgpu.so runtime_dir=/run/slurm-vgpu/%n ..." */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static int copy_value(char *dst, size_t len, const char *value, const char *key, char *err,
		      size_t errlen)
{
	if (!value[0] || strlen(value) >= len) {
		snprintf(err, errlen, "plugstack argument %s= needs a value shorter than %zu bytes",
			 key, len);
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

static int parse_int(const char *value, int lo, int hi, int *out)
{
	char *end = NULL;
	long v;

	if (!value[0])
		return -1;
	v = strtol(value, &end, 10);
	if (*end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

int vgpu_config_parse(struct vgpu_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->runtime_dir, sizeof(cfg->runtime_dir), "%s", VGPU_RUNTIME_DIR_DEFAULT);
	snprintf(cfg->inventory, sizeof(cfg->inventory), "%s", VGPU_INVENTORY_DEFAULT);
	snprintf(cfg->hook, sizeof(cfg->hook), "%s", VGPU_HOOK_DEFAULT);
	snprintf(cfg->gres_name, sizeof(cfg->gres_name), "vgpu");
	snprintf(cfg->visible_env, sizeof(cfg->visible_env), "%s", VGPU_VISIBLE_ENV_DEFAULT);
	cfg->on_error = VGPU_ON_ERROR_DENY;
	cfg->lock_timeout_ms = 5000;
	cfg->admin_comment = 1;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '=');
		char key[32];
		const char *value;
		size_t klen;

		if (!eq || eq == arg || (klen = (size_t)(eq - arg)) >= sizeof(key)) {
			snprintf(err, errlen, "plugstack argument '%s' is not key=value", arg);
			return -1;
		}
		memcpy(key, arg, klen);
		key[klen] = '\0';
		value = eq + 1;
		if (!strcmp(key, "runtime_dir")) {
			if (copy_value(cfg->runtime_dir, sizeof(cfg->runtime_dir), value, key, err,
				       errlen))
				return -1;
			if (value[0] != '/')
				goto not_absolute;
		} else if (!strcmp(key, "inventory")) {
			if (copy_value(cfg->inventory, sizeof(cfg->inventory), value, key, err, errlen))
				return -1;
			if (value[0] != '/')
				goto not_absolute;
		} else if (!strcmp(key, "hook")) {
			if (copy_value(cfg->hook, sizeof(cfg->hook), value, key, err, errlen))
				return -1;
			if (value[0] != '/')
				goto not_absolute;
			if (strpbrk(value, ": ")) {
				snprintf(err, errlen, "plugstack argument hook=%s: LD_PRELOAD paths may "
					 "not contain ':' or spaces", value);
				return -1;
			}
		} else if (!strcmp(key, "gres")) {
			if (copy_value(cfg->gres_name, sizeof(cfg->gres_name), value, key, err, errlen))
				return -1;
		} else if (!strcmp(key, "visible_env")) {
			if (copy_value(cfg->visible_env, sizeof(cfg->visible_env), value, key, err,
				       errlen))
				return -1;
		} else if (!strcmp(key, "on_error")) {
			if (!strcmp(value, "deny")) {
				cfg->on_error = VGPU_ON_ERROR_DENY;
			} else if (!strcmp(value, "allow")) {
				cfg->on_error = VGPU_ON_ERROR_ALLOW;
			} else {
				snprintf(err, errlen, "plugstack argument on_error=%s: use on_error=deny "
					 "or on_error=allow", value);
				return -1;
			}
		} else if (!strcmp(key, "lock_timeout_ms")) {
			if (parse_int(value, 1, 60000, &cfg->lock_timeout_ms)) {
				snprintf(err, errlen, "plugstack argument lock_timeout_ms=%s: use a "
					 "number of milliseconds from 1 to 60000", value);
				return -1;
			}
		} else if (!strcmp(key, "accounting")) {
			if (!strcmp(value, "admin_comment")) {
				cfg->admin_comment = 1;
			} else if (!strcmp(value, "none")) {
				cfg->admin_comment = 0;
			} else {
				snprintf(err, errlen, "plugstack argument accounting=%s: use "
					 "accounting=admin_comment or accounting=none", value);
				return -1;
			}
		} else {
			snprintf(err, errlen, "unknown plugstack argument '%s' (known: runtime_dir=, "
				 "inventory=, hook=, on_error=, gres=, visible_env=, lock_timeout_ms=, "
				 "accounting=)", arg);
			return -1;
		}
		continue;
not_absolute:
		snprintf(err, errlen, "plugstack argument %s=%s must be an absolute path", key, value);
		return -1;
	}
	return 0;
}

int vgpu_expand_path(const char *in, const char *node, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = in; *p; p++) {
		const char *add = NULL;
		char one[2] = { *p, '\0' };
		size_t alen;

		if (*p == '%') {
			p++;
			if (*p == 'n') {
				if (!node || !node[0] || strchr(node, '/'))
					return -1;
				add = node;
			} else if (*p == '%') {
				add = "%";
			} else {
				return -1;
			}
		} else {
			add = one;
		}
		alen = strlen(add);
		if (o + alen >= outlen)
			return -1;
		memcpy(out + o, add, alen);
		o += alen;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}
