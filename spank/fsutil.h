/* slurm-vgpu SPANK plugin: crash-safe file helpers (atomic replace, bounded flock). */
#ifndef VGPU_SPANK_FSUTIL_H
#define VGPU_SPANK_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Create `path` as a root-owned directory with `mode` (parents too, all root-owned 0755).
 * An existing path must be a real directory owned by root. Returns 0 or -1 with err set. */
int vgpu_mkdir_root(const char *path, mode_t mode, char *err, size_t errlen);

/* Replace `path` atomically with `len` bytes of `data`: temp file in the same directory,
 * fsync, rename, fsync of the directory. The file gets `mode`, owner root. */
int vgpu_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
		      size_t errlen);

/* Take an exclusive flock on `path` (created 0600), polling up to timeout_ms. Returns the fd
 * (keep it open while holding the lock) or -1 with err set. */
int vgpu_lock(const char *path, int timeout_ms, char *err, size_t errlen);
void vgpu_unlock(int fd);

/* Remove the directory `path` and the plain entries inside it (no recursion into
 * subdirectories, never follows links). Missing is success. */
int vgpu_remove_dir(const char *path, char *err, size_t errlen);

/* Read at most maxlen-1 bytes of a file into buf (NUL-terminated). Returns bytes or -1. */
ssize_t vgpu_read_small(const char *path, char *buf, size_t maxlen);

/* Read a whole file that decides limits or placements: it must be a regular file (no link
 * followed) owned by root and not writable by group or others, and shorter than maxlen.
 * NUL-terminates buf. Returns its length, or -1 with err set (errno ENOENT: it is absent). */
ssize_t vgpu_read_root_file(const char *path, char *buf, size_t maxlen, char *err,
			    size_t errlen);

/* snprintf that reports truncation: 0, or -1 when out was too small (out stays terminated).
 * Used for paths (a truncated path must never be used) and for messages (truncation is fine).*/
int vgpu_fmt(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
