/* Logging through Slurm's exported log functions (plugin build). */
#include <stdarg.h>
#include <stdio.h>

#include <slurm/spank.h>

#include "log.h"

#define VGPU_LOG_MAX 1024

static void format_message(char *buf, size_t len, const char *fmt, va_list ap)
{
	if (vsnprintf(buf, len, fmt, ap) < 0)
		buf[0] = '\0';
}

void vgpu_log_error(const char *fmt, ...)
{
	char buf[VGPU_LOG_MAX];
	va_list ap;

	va_start(ap, fmt);
	format_message(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	slurm_error("vgpu: %s", buf);
}

void vgpu_log_info(const char *fmt, ...)
{
	char buf[VGPU_LOG_MAX];
	va_list ap;

	va_start(ap, fmt);
	format_message(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	slurm_info("vgpu: %s", buf);
}

void vgpu_log_debug(const char *fmt, ...)
{
	char buf[VGPU_LOG_MAX];
	va_list ap;

	va_start(ap, fmt);
	format_message(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	slurm_debug("vgpu: %s", buf);
}
