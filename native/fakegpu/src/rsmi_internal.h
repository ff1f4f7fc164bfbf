/*
 * fakegpu librocm_smi64: what the ROCm SMI files share. Debian 12's librocm-smi64-1 (ROCm 5.2)
 * has soname librocm_smi64.so.1 and unversioned symbols. Device indices are the state file's
 * physical indices (like the real library, it ignores HIP_VISIBLE_DEVICES); figures come from
 * the same state file and timeline as the fake HIP runtime, libcuda and NVML.
 */
#ifndef FG_RSMI_INTERNAL_H
#define FG_RSMI_INTERNAL_H

#define _GNU_SOURCE
/* built -fvisibility=hidden: only the API the header declares is public */
#pragma GCC visibility push(default)
#include <rocm_smi/rocm_smi.h>
#pragma GCC visibility pop
#include <stddef.h>
#include <stdint.h>

#include "fg_log.h"
#include "fg_state.h"

/* The attached machine, or NULL before rsmi_init / after the last rsmi_shut_down. */
struct fg_state *fg_rsmi_state(void);
/* RSMI_STATUS_SUCCESS with *s set when initialized and dv_ind names a device. */
rsmi_status_t fg_rsmi_dev(uint32_t dv_ind, struct fg_state **s);
rsmi_status_t fg_rsmi_put(char *out, size_t len, const char *s);

#endif /* FG_RSMI_INTERNAL_H */
