/*
 * slurm-vgpu: the per-job limits file, shared by the SPANK plugin (writer at job start),
 * the policy daemon (live writer, through the cffi binding) and the hook (reader).
 *
 * The file is <runtime_dir>/jobs/<jobid>/limits, owned by root, mode 0644, in a root-owned
 * directory. The hook maps it PROT_READ and re-reads a GPU's values whenever `generation`
 * changes, so a live change costs the hook one atomic load on its hot paths. The hook refuses
 * the file unless it is owned by uid 0, not writable by group or others, has this magic,
 * version and size, and names the calling process's uid.
 *
 * Writers follow a seqlock: generation += 1 (odd: write in progress), store fields,
 * generation += 1 (even). Readers retry (bounded) while generation is odd or changed.
 * Every field is little-endian, naturally aligned, fixed size: the layout is the ABI.
 */
#ifndef VGPU_ABI_H
#define VGPU_ABI_H

#include <stdint.h>

#define VGPU_LIMITS_MAGIC 0x314d494c55504756ULL /* "VGPULIM1" as little-endian bytes */
#define VGPU_LIMITS_VERSION 1u
#define VGPU_MAX_GPUS 16u
#define VGPU_UUID_LEN 48u
/*
 * Step anchors: for every vgpu job step the SPANK plugin, in slurmstepd as root, writes
 * VGPU_STEP_DIR/<pid of that slurmstepd> (root-owned, 0644, in a root-owned 0755 directory):
 * text lines "job=", "step=", "start=" (the slurmstepd's /proc start time, field 22),
 * "limits=" and "state=" (absolute paths; "-" for a step that holds no slices). The hook finds
 * its step by walking its parents to the nearest root-owned slurmstepd, so inside a vgpu step
 * no variable the user sets decides which limits apply (docs/security.md).
 */
#ifndef VGPU_STEP_DIR
#define VGPU_STEP_DIR "/run/slurm-vgpu-steps"
#endif /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" plus NUL, padded */

/* May this job borrow compute that co-tenants leave idle? (--vgpu-share=) */
enum vgpu_share_policy {
	VGPU_SHARE_GUARANTEED = 0, /* capped at its guaranteed share when the device is contended */
	VGPU_SHARE_BURST = 1,      /* may be given more than its guarantee by the daemon */
};

struct vgpu_gpu_limit {
	char uuid[VGPU_UUID_LEN];          /* device UUID as NVML/CUDA print it */
	uint32_t physical_index;           /* NVML index on the node, for humans and CUDA_VISIBLE_DEVICES */
	uint32_t slices;                   /* slices of this GPU held by the job */
	uint64_t memory_limit_bytes;       /* hard cap; may be lowered or raised live */
	uint32_t compute_guaranteed_permille; /* slices x permille per slice; fixed for the job */
	uint32_t compute_limit_permille;   /* current target share; the daemon moves it live */
};

struct vgpu_limits {
	uint64_t magic;        /* VGPU_LIMITS_MAGIC */
	uint32_t version;      /* VGPU_LIMITS_VERSION */
	uint32_t size;         /* sizeof(struct vgpu_limits): detects truncation and layout drift */
	uint64_t generation;   /* seqlock counter (accessed atomically); even when stable */
	uint64_t job_id;
	uint32_t uid;          /* the job's user; the hook refuses a file naming another uid */
	uint32_t share_policy; /* enum vgpu_share_policy */
	uint32_t ngpus;        /* valid entries in gpu[] */
	uint32_t flags;        /* reserved, 0 */
	struct vgpu_gpu_limit gpu[VGPU_MAX_GPUS];
};

#endif /* VGPU_ABI_H */
