/* Writers of the per-job limits and state files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "jobfiles.h"

int vgpu_limits_build(struct vgpu_limits *lim, uint64_t job_id, uid_t uid, uint32_t share,
		      const struct vgpu_inventory *inv, const struct vgpu_place_entry *e,
		      uint32_t n, char *err, size_t errlen)
{
	memset(lim, 0, sizeof(*lim));
	lim->magic = VGPU_LIMITS_MAGIC;
	lim->version = VGPU_LIMITS_VERSION;
	lim->size = (uint32_t)sizeof(*lim);
	lim->generation = 0;
	lim->job_id = job_id;
	lim->uid = (uint32_t)uid;
	lim->share_policy = share;
	if (n == 0 || n > VGPU_MAX_GPUS) {
		snprintf(err, errlen, "placement spans %u GPUs (1..%u allowed)", n, VGPU_MAX_GPUS);
		return -1;
	}
	for (uint32_t k = 0; k < n; k++) {
		const struct vgpu_inv_gpu *g = NULL;
		struct vgpu_gpu_limit *gl = &lim->gpu[k];

		for (uint32_t i = 0; i < inv->ngpus; i++)
			if (inv->gpu[i].index == e[k].gpu_index)
				g = &inv->gpu[i];
		if (!g) {
			snprintf(err, errlen, "GPU %u is not in the node inventory", e[k].gpu_index);
			return -1;
		}
		snprintf(gl->uuid, sizeof(gl->uuid), "%s", g->uuid);
		gl->physical_index = g->index;
		gl->slices = e[k].slices;
		gl->memory_limit_bytes = (uint64_t)e[k].slices * g->slice_bytes;
		gl->compute_guaranteed_permille = e[k].slices * g->slice_permille;
		gl->compute_limit_permille = gl->compute_guaranteed_permille;
	}
	lim->ngpus = n;
	return 0;
}

int vgpu_limits_write(const char *path, const struct vgpu_limits *lim, char *err,
		      size_t errlen)
{
	return vgpu_write_atomic(path, lim, sizeof(*lim), 0644, err, errlen);
}

int vgpu_limits_read(const char *path, struct vgpu_limits *lim, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rv = -1;
	struct stat st;
	ssize_t n;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open limits %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) || st.st_size != (off_t)sizeof(*lim)) {
		snprintf(err, errlen, "limits %s is not a root-owned file of %zu bytes", path,
			 sizeof(*lim));
		goto fail;
	}
	n = pread(fd, lim, sizeof(*lim), 0);
	if (n != (ssize_t)sizeof(*lim) || lim->magic != VGPU_LIMITS_MAGIC ||
	    lim->version != VGPU_LIMITS_VERSION || lim->size != sizeof(*lim) || lim->ngpus == 0 ||
	    lim->ngpus > VGPU_MAX_GPUS) {
		snprintf(err, errlen, "limits %s has a bad header", path);
		goto fail;
	}
	rv = 0;
fail:
	close(fd);
	return rv;
}

int vgpu_limits_for_step(const struct vgpu_limits *job, uint32_t slices,
			 struct vgpu_limits *out)
{
	const struct vgpu_gpu_limit *g = &job->gpu[0];
	struct vgpu_gpu_limit *o;

	if (job->ngpus != 1 || slices == 0 || g->slices == 0 || slices >= g->slices)
		return 0;
	*out = *job;
	out->generation = 0;
	o = &out->gpu[0];
	o->slices = slices;
	/* the job's values are exact multiples of its slices (slices x slice_bytes/permille) */
	o->memory_limit_bytes = g->memory_limit_bytes / g->slices * slices;
	o->compute_guaranteed_permille = g->compute_guaranteed_permille / g->slices * slices;
	o->compute_limit_permille = o->compute_guaranteed_permille;
	return 1;
}

int vgpu_state_create(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	int fd;

	if (unlink(path) && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale %s: %s", path, strerror(errno));
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	if (fchown(fd, uid, gid) || fchmod(fd, 0600)) {
		snprintf(err, errlen, "cannot give %s to uid %u: %s", path, (unsigned)uid,
			 strerror(errno));
		close(fd);
		(void)unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

int vgpu_visible_devices(const struct vgpu_limits *lim, char *out, size_t outlen)
{
	size_t off = 0;

	out[0] = '\0';
	for (uint32_t k = 0; k < lim->ngpus && k < VGPU_MAX_GPUS; k++) {
		int w = snprintf(out + off, outlen - off, "%s%u", k ? "," : "",
				 lim->gpu[k].physical_index);

		if (w < 0 || (size_t)w >= outlen - off)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

int vgpu_placement_summary(const struct vgpu_limits *lim, char *out, size_t outlen)
{
	size_t off = 0;

	out[0] = '\0';
	for (uint32_t k = 0; k < lim->ngpus && k < VGPU_MAX_GPUS; k++) {
		int w = snprintf(out + off, outlen - off, "%sgpu%u:%u", k ? "+" : "",
				 lim->gpu[k].physical_index, lim->gpu[k].slices);

		if (w < 0 || (size_t)w >= outlen - off)
			return -1;
		off += (size_t)w;
	}
	return 0;
}
