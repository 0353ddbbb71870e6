/*  herald_log: logfmt lines on stderr:
        ts=2026-11-21T10:00:00.123Z level=info proc=broker msg="worker registered" channel=email
    One call per line; `fields` is a printf format for extra key=value pairs (may be NULL).
    Use herald_log_quote() for values that may hold spaces or quotes. */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stddef.h>

typedef enum {
    HERALD_LOG_DEBUG = 0,
    HERALD_LOG_INFO,
    HERALD_LOG_WARN,
    HERALD_LOG_ERROR
} herald_log_level_t;

/*  Names the process in every line (proc=NAME) and sets the lowest level printed.
    The level also comes from the HERALD_LOG_LEVEL environment variable (debug|info|warn|error). */
void
    herald_log_init (const char *proc, herald_log_level_t level);

/*  Parses a level name (debug | info | warn | error, any case). 0 / -1. */
int
    herald_log_level_parse (const char *text, herald_log_level_t *level);

void
    herald_log (herald_log_level_t level, const char *msg, const char *fields, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  Writes text as a logfmt value into buf (quoted and escaped if needed,
    truncated to fit). Returns buf. */
const char *
    herald_log_quote (const char *text, char *buf, size_t size);

#define herald_debug(msg, ...) herald_log (HERALD_LOG_DEBUG, msg, __VA_ARGS__)
#define herald_info(msg, ...)  herald_log (HERALD_LOG_INFO, msg, __VA_ARGS__)
#define herald_warn(msg, ...)  herald_log (HERALD_LOG_WARN, msg, __VA_ARGS__)
#define herald_error(msg, ...) herald_log (HERALD_LOG_ERROR, msg, __VA_ARGS__)

#endif
