/* slurm-vgpu SPANK plugin: state shared by the per-context files. */
#ifndef VGPU_SPANK_PLUGIN_H
#define VGPU_SPANK_PLUGIN_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <slurm/spank.h>

#include "config.h"

/* --vgpu-share value (enum vgpu_share_policy), set by the option callback. */
uint32_t vgpu_args_share(void);
int vgpu_args_register(spank_t sp);
/* In job_prolog: the --vgpu-share the job was submitted with (default guaranteed). */
uint32_t vgpu_args_share_in_prolog(spank_t sp);

/* This slurmd's node name (SLURMD_NODENAME), or -1. */
int vgpu_node_name(spank_t sp, char *buf, size_t len);

/* runtime_dir and inventory with %n expanded for this node. */
int vgpu_node_paths(spank_t sp, const struct vgpu_config *cfg, char *node, size_t nodelen,
		    char *runtime_dir, char *inventory, char *err, size_t errlen);

/* Place the job's slices on this node and write its files. from_step: called by a step of a
 * job whose prolog did not run here (slurmd runs it once per job id: a requeued job's next
 * run gets none); places only if nobody has yet. */
int vgpu_job_prolog(spank_t sp, const struct vgpu_config *cfg, int from_step);
int vgpu_job_epilog(spank_t sp, const struct vgpu_config *cfg);
void vgpu_mark_reconcile(spank_t sp, const struct vgpu_config *cfg);
int vgpu_step_setup(spank_t sp, const struct vgpu_config *cfg);
int vgpu_task_setup(spank_t sp, const struct vgpu_config *cfg);
void vgpu_step_exit(void);
/* Write this slurmstepd's step anchor (VGPU_STEP_DIR/<pid>) for a vgpu step. A failure
 * denies the step: without its anchor the hook could not tell it from a plain process. */
int vgpu_step_anchor_write(uint32_t job_id, uint32_t step_id);
void vgpu_step_tell_user(void);
/* Did the step setup find the job's slices (or deny/hide them)? For logging. */
int vgpu_step_has_slices(void);

#endif
