/* slurm-vgpu SPANK plugin: plugstack.conf arguments. */
#ifndef VGPU_SPANK_CONFIG_H
#define VGPU_SPANK_CONFIG_H

#include <limits.h>
#include <stddef.h>

#ifndef VGPU_HOOK_DEFAULT
#define VGPU_HOOK_DEFAULT "/usr/local/lib/slurm-vgpu/libvgpu.so"
#endif
#define VGPU_RUNTIME_DIR_DEFAULT "/run/slurm-vgpu"
#define VGPU_INVENTORY_DEFAULT "/etc/slurm-vgpu/inventory.conf"
#define VGPU_VISIBLE_ENV_DEFAULT "CUDA_VISIBLE_DEVICES"

enum vgpu_on_error {
	VGPU_ON_ERROR_DENY = 0,  /* fail the step with a message to the user */
	VGPU_ON_ERROR_ALLOW = 1, /* run it without slices: no preload, no GPU limits */
};

struct vgpu_config {
	char runtime_dir[PATH_MAX]; /* may hold %n (slurmd node name) until expanded */
	char inventory[PATH_MAX];   /* likewise */
	char hook[PATH_MAX];
	char gres_name[64];
	char visible_env[256];      /* comma-separated variable names */
	enum vgpu_on_error on_error;
	int lock_timeout_ms;
	int admin_comment;          /* record placement in the job's AdminComment */
};

/* Defaults, then each "key=value" of argv. On error, writes a message naming the argument
 * into err and returns -1. */
int vgpu_config_parse(struct vgpu_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Expand %n (node name) and %% in `in` into out. Returns 0, or -1 (too long, unknown %x, or %n
 * with no node name). */
int vgpu_expand_path(const char *in, const char *node, char *out, size_t outlen);

#endif
