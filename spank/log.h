/* slurm-vgpu SPANK plugin: logging seam. The plugin routes these to Slurm's log functions;
 * the unit-test driver routes them to stderr, so the pure modules build without Slurm. */
#ifndef VGPU_SPANK_LOG_H
#define VGPU_SPANK_LOG_H

/* Every message is prefixed "vgpu: " by the implementation. */
void vgpu_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vgpu_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vgpu_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
