/*
 * fakegpu librocm_smi64: identity, PCI, memory and busy percent of a device.
 *
 * Memory: VRAM total is the device's memory, VRAM used what every process holds on it (the
 * state's ground truth; exited processes are reaped first, as the kernel driver frees their
 * memory at exit); visible VRAM is all of it (a large-BAR device). Busy percent: the real
 * library reads the amdgpu driver's gpu_busy_percent file, the firmware's average of GFX
 * activity over a short recent period that is not documented; here it is the share of the
 * last sample_ms (200 ms by default, the NVML fake's sample period; util_window_ms with
 * FAKEGPU_SENSORS=ideal) in which the device ran kernels, from the shared timeline.
 */
#include "rsmi_internal.h"

#include <stdio.h>
#include <string.h>

rsmi_status_t rsmi_dev_name_get(uint32_t dv_ind, char *name, size_t len)
{
	struct fg_state *s;
	char buf[FG_NAME_LEN];
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	snprintf(buf, sizeof(buf), "%.*s", (int)FG_NAME_LEN - 1, s->config[dv_ind].name);
	return fg_rsmi_put(name, len, buf);
}

/* The marketing name without the vendor ("AMD Instinct MI210" -> "MI210"), as the SKU
 * brand the real library reads; the whole name when it has no such prefix. */
rsmi_status_t rsmi_dev_brand_get(uint32_t dv_ind, char *brand, uint32_t len)
{
	struct fg_state *s;
	char buf[FG_NAME_LEN];
	const char *p;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	snprintf(buf, sizeof(buf), "%.*s", (int)FG_NAME_LEN - 1, s->config[dv_ind].name);
	p = buf;
	if (!strncmp(p, "AMD ", 4))
		p += 4;
	if (!strncmp(p, "Instinct ", 9))
		p += 9;
	if (!strncmp(p, "Radeon ", 7))
		p += 7;
	return fg_rsmi_put(brand, len, *p ? p : buf);
}

rsmi_status_t rsmi_dev_vendor_name_get(uint32_t dv_ind, char *name, size_t len)
{
	struct fg_state *s;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	return r ? r : fg_rsmi_put(name, len, "Advanced Micro Devices, Inc. [AMD/ATI]");
}

rsmi_status_t rsmi_dev_id_get(uint32_t dv_ind, uint16_t *id)
{
	struct fg_state *s;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	if (!id)
		return RSMI_STATUS_INVALID_ARGS;
	*id = (uint16_t)(s->config[dv_ind].pci_device_id >> 16);
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_vendor_id_get(uint32_t dv_ind, uint16_t *id)
{
	struct fg_state *s;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	if (!id)
		return RSMI_STATUS_INVALID_ARGS;
	*id = (uint16_t)(s->config[dv_ind].pci_device_id & 0xffff);
	return RSMI_STATUS_SUCCESS;
}

/* The last eight bytes of the device's UUID. */
rsmi_status_t rsmi_dev_unique_id_get(uint32_t dv_ind, uint64_t *id)
{
	struct fg_state *s;
	uint64_t v = 0;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	if (!id)
		return RSMI_STATUS_INVALID_ARGS;
	for (int i = 8; i < 16; i++)
		v = (v << 8) | s->config[dv_ind].uuid[i];
	*id = v;
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_serial_number_get(uint32_t dv_ind, char *serial_num, uint32_t len)
{
	uint64_t id;
	char buf[32];
	rsmi_status_t r = rsmi_dev_unique_id_get(dv_ind, &id);

	if (r)
		return r;
	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)id);
	return fg_rsmi_put(serial_num, len, buf);
}

rsmi_status_t rsmi_dev_pci_id_get(uint32_t dv_ind, uint64_t *bdfid)
{
	const struct fg_device_config *c;
	struct fg_state *s;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	if (!bdfid)
		return RSMI_STATUS_INVALID_ARGS;
	c = &s->config[dv_ind];
	*bdfid = ((uint64_t)c->pci_domain << 32) | ((uint64_t)(c->pci_bus & 0xff) << 8) |
		 ((uint64_t)(c->pci_device & 0x1f) << 3);
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_memory_total_get(uint32_t dv_ind, rsmi_memory_type_t mem_type,
					uint64_t *total)
{
	struct fg_state *s;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	if (!total)
		return RSMI_STATUS_INVALID_ARGS;
	if (mem_type != RSMI_MEM_TYPE_VRAM && mem_type != RSMI_MEM_TYPE_VIS_VRAM)
		return RSMI_STATUS_NOT_SUPPORTED; /* GTT (system memory) is not simulated */
	*total = s->config[dv_ind].memory_bytes;
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_memory_usage_get(uint32_t dv_ind, rsmi_memory_type_t mem_type,
					uint64_t *used)
{
	struct fg_state *s;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	if (!used)
		return RSMI_STATUS_INVALID_ARGS;
	if (mem_type != RSMI_MEM_TYPE_VRAM && mem_type != RSMI_MEM_TYPE_VIS_VRAM)
		return RSMI_STATUS_NOT_SUPPORTED;
	if (fg_lock(s))
		return RSMI_STATUS_BUSY;
	fg_reap_dead(s);
	*used = s->dev[dv_ind].used_bytes;
	fg_unlock(s);
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_busy_percent_get(uint32_t dv_ind, uint32_t *busy_percent)
{
	struct fg_state *s;
	uint64_t now, win, busy;
	rsmi_status_t r = fg_rsmi_dev(dv_ind, &s);

	if (r)
		return r;
	if (!busy_percent)
		return RSMI_STATUS_INVALID_ARGS;
	win = (uint64_t)(s->ideal ? s->util_window_ms : s->sample_ms) * 1000000ULL;
	if (!win)
		win = 200000000ULL;
	if (fg_lock(s))
		return RSMI_STATUS_BUSY;
	now = fg_now_ns();
	fg_sched_advance(s, dv_ind, now);
	busy = fg_busy_ns(s, dv_ind, now > win ? now - win : 0, now, 0, NULL);
	fg_unlock(s);
	busy = (busy * 100 + win / 2) / win;
	*busy_percent = (uint32_t)(busy > 100 ? 100 : busy);
	return RSMI_STATUS_SUCCESS;
}
