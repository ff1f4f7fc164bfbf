/* fakegpu: messages and call trace. */
#define _GNU_SOURCE
#include "fg_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fg_trace_on;
static FILE *trace_file;
static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_setup(void)
{
	const char *t = getenv("FAKEGPU_TRACE");

	if (!t || !*t || !strcmp(t, "0"))
		return;
	trace_file = strcmp(t, "1") ? fopen(t, "ae") : NULL;
	if (!trace_file)
		trace_file = stderr;
	setvbuf(trace_file, NULL, _IOLBF, 0);
	fg_trace_on = 1;
}

void fg_trace_init(void)
{
	pthread_once(&trace_once, trace_setup);
}

void fg_trace(const char *fmt, ...)
{
	va_list ap;

	if (!trace_file)
		return;
	va_start(ap, fmt);
	flockfile(trace_file);
	fprintf(trace_file, "[fakegpu %d] ", (int)getpid());
	vfprintf(trace_file, fmt, ap);
	fputc('\n', trace_file);
	funlockfile(trace_file);
	va_end(ap);
}

void fg_msg(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fakegpu: %s\n", buf);
}
