/* The visibility variables of a vgpu task (see visible.h). */
#include <stdio.h>
#include <string.h>

#include "jobfiles.h"
#include "visible.h"

static int add_op(struct vgpu_env_ops *ops, const char *name, int unset, const char *value)
{
	struct vgpu_env_op *o = NULL;

	for (uint32_t i = 0; i < ops->n; i++)
		if (!strcmp(ops->op[i].name, name))
			o = &ops->op[i]; /* a later rule for the same name wins */
	if (!o) {
		if (ops->n >= VGPU_MAX_ENV_OPS || strlen(name) >= sizeof(o->name))
			return -1;
		o = &ops->op[ops->n++];
		snprintf(o->name, sizeof(o->name), "%s", name);
	}
	if (strlen(value) >= sizeof(o->value))
		return -1;
	o->unset = unset;
	snprintf(o->value, sizeof(o->value), "%s", value);
	return 0;
}

/* The limits' GPU UUIDs, comma-separated, in the limits' order. */
static int uuid_list(const struct vgpu_limits *lim, char *out, size_t outlen)
{
	size_t used = 0;

	out[0] = '\0';
	for (uint32_t k = 0; k < lim->ngpus && k < VGPU_MAX_GPUS; k++) {
		int n = snprintf(out + used, outlen - used, "%s%.*s", k ? "," : "",
				 (int)VGPU_UUID_LEN, lim->gpu[k].uuid);

		if (n < 0 || (size_t)n >= outlen - used)
			return -1;
		used += (size_t)n;
	}
	return 0;
}

/* Each visible_env= name: set to value, or removed (unset). */
static int each_configured(const struct vgpu_config *cfg, struct vgpu_env_ops *ops, int unset,
			   const char *value)
{
	char names[sizeof(cfg->visible_env)], *save = NULL;

	snprintf(names, sizeof(names), "%s", cfg->visible_env);
	for (char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save))
		if (add_op(ops, n, unset, value))
			return -1;
	return 0;
}

int vgpu_visible_env(const struct vgpu_config *cfg, const struct vgpu_inventory *inv,
		     const struct vgpu_limits *lim, struct vgpu_env_ops *ops, char *err,
		     size_t errlen)
{
	char indices[256], uuids[VGPU_MAX_GPUS * (VGPU_UUID_LEN + 1)];
	int node_has_amd = 0;

	memset(ops, 0, sizeof(*ops));
	for (uint32_t i = 0; i < inv->ngpus; i++)
		node_has_amd |= inv->gpu[i].vendor == VGPU_VENDOR_AMD;
	if (!lim) {
		if (each_configured(cfg, ops, 0, "") ||
		    (node_has_amd && add_op(ops, VGPU_AMD_VISIBLE_ENV, 0, "")))
			goto too_long;
		return 0;
	}
	for (uint32_t k = 0; k < lim->ngpus && k < VGPU_MAX_GPUS; k++) {
		char uuid[VGPU_UUID_LEN + 1];
		int i;

		memcpy(uuid, lim->gpu[k].uuid, VGPU_UUID_LEN);
		uuid[VGPU_UUID_LEN] = '\0';
		i = vgpu_inventory_find_uuid(inv, uuid);
		if (i < 0) {
			snprintf(err, errlen, "GPU %s of the job's limits is not in the node "
				 "inventory (was the inventory regenerated?)", uuid);
			return -1;
		}
		if (k == 0) {
			ops->vendor = inv->gpu[i].vendor;
		} else if (ops->vendor != inv->gpu[i].vendor) {
			snprintf(err, errlen, "the job's GPUs are of two vendors (%s and %s)",
				 vgpu_vendor_name(ops->vendor), vgpu_vendor_name(inv->gpu[i].vendor));
			return -1;
		}
	}
	if (ops->vendor == VGPU_VENDOR_AMD) {
		/* by UUID: ROCr numbers GPUs in its own order, which on some hosts is not ROCm
		 * SMI's (the inventory's), and a node with both vendors numbers its AMD GPUs after
		 * the NVIDIA ones in the inventory */
		if (uuid_list(lim, uuids, sizeof(uuids)) || each_configured(cfg, ops, 1, "") ||
		    add_op(ops, "CUDA_VISIBLE_DEVICES", 1, "") ||
		    add_op(ops, "HIP_VISIBLE_DEVICES", 1, "") ||
		    add_op(ops, VGPU_AMD_VISIBLE_ENV, 0, uuids))
			goto too_long;
		return 0;
	}
	if (vgpu_visible_devices(lim, indices, sizeof(indices)))
		goto too_long;
	if (each_configured(cfg, ops, 0, indices) ||
	    (node_has_amd && add_op(ops, VGPU_AMD_VISIBLE_ENV, 0, "")))
		goto too_long;
	return 0;
too_long:
	snprintf(err, errlen, "too many GPUs or variables for the visible devices");
	return -1;
}
