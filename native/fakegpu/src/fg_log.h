/* fakegpu: messages ("fakegpu: ..." on stderr) and the optional call trace (FAKEGPU_TRACE). */
#ifndef FG_LOG_H
#define FG_LOG_H

#include <stdio.h>

/* Always printed: something the user must fix (bad state file, bad variable). */
void fg_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* FAKEGPU_TRACE=1 traces to stderr, FAKEGPU_TRACE=<path> appends to that file. */
extern int fg_trace_on;
void fg_trace_init(void);
void fg_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define FG_TRACE(...) do { if (fg_trace_on) fg_trace(__VA_ARGS__); } while (0)

#endif /* FG_LOG_H */
