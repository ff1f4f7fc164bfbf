/* Crash-safe file helpers used by the placement state and the per-job files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"

static int check_root_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st)) {
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "%s must be a directory owned by root and not writable by "
			 "group or others", path);
		return -1;
	}
	return 0;
}

int vgpu_mkdir_root(const char *path, mode_t mode, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf) || path[0] != '/') {
		snprintf(err, errlen, "bad directory path '%s'", path);
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			int last = (*p == '\0');

			*p = '\0';
			if (mkdir(buf, last ? mode : 0755) == 0) {
				/* mkdir honours the umask; set the exact mode we promise */
				if (chmod(buf, last ? mode : 0755)) {
					snprintf(err, errlen, "cannot chmod %s: %s", buf,
						 strerror(errno));
					return -1;
				}
			} else if (errno != EEXIST) {
				snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
				return -1;
			}
			*p = saved;
			if (last)
				break;
		}
	}
	return check_root_dir(path, err, errlen);
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vgpu_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
		      size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	char *slash;
	int fd = -1, dfd = -1, rv = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		snprintf(err, errlen, "path too long: %s", path);
		return -1;
	}
	(void)unlink(tmp); /* a leftover of a crashed writer with our pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, mode) || write_all(fd, data, len) || fsync(fd)) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd)) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path)) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd); /* make the rename durable; failure here loses nothing */
	rv = 0;
fail:
	if (fd >= 0)
		close(fd);
	if (rv)
		(void)unlink(tmp);
	if (dfd >= 0)
		close(dfd);
	return rv;
}

int vgpu_lock(const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct timespec start, now, pause = { 0, 2 * 1000 * 1000 };
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open lock %s: %s", path, strerror(errno));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long elapsed_ms;

		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (elapsed_ms >= timeout_ms) {
			snprintf(err, errlen, "timed out after %d ms waiting for lock %s",
				 timeout_ms, path);
			break;
		}
		nanosleep(&pause, NULL);
	}
	close(fd);
	return -1;
}

void vgpu_unlock(int fd)
{
	if (fd >= 0) {
		(void)flock(fd, LOCK_UN);
		close(fd);
	}
}

int vgpu_remove_dir(const char *path, char *err, size_t errlen)
{
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int rv = 0;

	if (dfd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dfd, de->d_name, 0) && errno != ENOENT) {
			snprintf(err, errlen, "cannot remove %s/%s: %s", path, de->d_name,
				 strerror(errno));
			rv = -1;
		}
	}
	closedir(d);
	if (rmdir(path) && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
		rv = -1;
	}
	return rv;
}

/* Read fd to its end or maxlen-1 bytes into buf (NUL-terminated; maxlen > 0). Bytes or -1. */
static ssize_t read_fd_small(int fd, char *buf, size_t maxlen)
{
	ssize_t total = 0;

	while ((size_t)total < maxlen - 1) {
		ssize_t n = read(fd, buf + total, maxlen - 1 - (size_t)total);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		total += n;
	}
	buf[total] = '\0';
	return total;
}

ssize_t vgpu_read_small(const char *path, char *buf, size_t maxlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t rv;

	if (fd < 0)
		return -1;
	rv = maxlen ? read_fd_small(fd, buf, maxlen) : -1;
	close(fd);
	return rv;
}

ssize_t vgpu_read_root_file(const char *path, char *buf, size_t maxlen, char *err,
			    size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), saved;
	ssize_t rv = -1;
	struct stat st;

	if (fd < 0) {
		saved = errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		errno = saved;
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "%s must be a regular file owned by root and not writable by "
			 "group or others", path);
		goto fail;
	}
	if (maxlen == 0 || (uint64_t)st.st_size >= maxlen) {
		snprintf(err, errlen, "%s is larger than %zu bytes", path, maxlen ? maxlen - 1 : 0);
		goto fail;
	}
	rv = read_fd_small(fd, buf, maxlen);
	if (rv < 0)
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
fail:
	close(fd);
	if (rv < 0)
		errno = EINVAL;
	return rv;
}

int vgpu_fmt(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (len == 0)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		out[0] = '\0';
		return -1;
	}
	return (size_t)n >= len ? -1 : 0;
}
