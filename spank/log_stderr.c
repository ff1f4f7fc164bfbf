/* Logging to stderr for the unit-test driver. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

#define LOG_TO_STDERR(prefix)                        \
	do {                                         \
		va_list ap;                          \
		va_start(ap, fmt);                   \
		fputs(prefix "vgpu: ", stderr);      \
		vfprintf(stderr, fmt, ap);           \
		fputc('\n', stderr);                 \
		va_end(ap);                          \
	} while (0)

void vgpu_log_error(const char *fmt, ...)
{
	LOG_TO_STDERR("error: ");
}

void vgpu_log_info(const char *fmt, ...)
{
	LOG_TO_STDERR("");
}

void vgpu_log_debug(const char *fmt, ...)
{
	LOG_TO_STDERR("debug: ");
}
