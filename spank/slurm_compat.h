/* slurm-vgpu SPANK plugin: the libslurm API differences between the releases we build against
 * (22.05 to 26.05), in one place. Everything else calls the vgpu_ names below. */
#ifndef VGPU_SPANK_SLURM_COMPAT_H
#define VGPU_SPANK_SLURM_COMPAT_H

#include <errno.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurm_version.h>

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 2, 0)
/* 23.02 made hostlist_t the struct itself (handles are hostlist_t *) and dropped
 * slurm_get_errno(): libslurm leaves its error code in errno. */
typedef hostlist_t *vgpu_hostlist_t;
static inline int vgpu_slurm_errno(void)
{
	return errno;
}
#else
typedef hostlist_t vgpu_hostlist_t;
static inline int vgpu_slurm_errno(void)
{
	return slurm_get_errno();
}
#endif

#endif
