/*  herald_log: one line per call on stderr, logfmt by default:
        ts=2026-11-21T10:00:00.123Z level=info proc=broker pid=42 msg="worker registered" channel=email
    or, for log shippers, one JSON object per line with the same keys:
        {"ts":"2026-11-21T10:00:00.123Z","level":"info","proc":"broker","pid":42,"msg":"worker registered","channel":"email"}
    `fields` is a printf format for extra key=value pairs in logfmt (may be NULL);
    the JSON form is made from those pairs. Use herald_log_quote() for values
    that may hold spaces or quotes. */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HERALD_LOG_DEBUG = 0,
    HERALD_LOG_INFO,
    HERALD_LOG_WARN,
    HERALD_LOG_ERROR
} herald_log_level_t;

typedef enum {
    HERALD_LOG_LOGFMT = 0,      /* key=value pairs, the default */
    HERALD_LOG_JSON             /* one JSON object per line */
} herald_log_format_t;

/*  One log line, before rendering. */
typedef struct {
    int64_t wall_ms;                /* time of the line, ms since the epoch */
    herald_log_level_t level;
    const char *proc;               /* process name: broker, worker, up */
    int pid;
    const char *msg;                /* what happened, free text */
    const char *fields;             /* logfmt key=value pairs, "" or NULL for none */
} herald_log_line_t;

/*  Names the process in every line (proc=NAME) and sets the lowest level printed.
    The environment may override: HERALD_LOG_LEVEL (debug|info|warn|error) and
    HERALD_LOG_FORMAT (logfmt|json); an unknown value there is reported in a
    warn line and ignored. */
void
    herald_log_init (const char *proc, herald_log_level_t level);

/*  Parses a level name (debug | info | warn | error, any case). 0 / -1. */
int
    herald_log_level_parse (const char *text, herald_log_level_t *level);

/*  Parses a format name (logfmt | json, any case). 0 / -1. */
int
    herald_log_format_parse (const char *text, herald_log_format_t *format);

/*  Sets the format of the lines that follow (a --log-format option wins over
    HERALD_LOG_FORMAT, so call this after herald_log_init). */
void
    herald_log_set_format (herald_log_format_t format);

/*  The format in use, and its name ("logfmt", "json"; static). */
herald_log_format_t
    herald_log_format (void);
const char *
    herald_log_format_name (herald_log_format_t format);

void
    herald_log (herald_log_level_t level, const char *msg, const char *fields, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  Renders line in format into buf, ending with '\n' and NUL-terminated; size
    must be >= 256 (else 0 is returned). A line too long for buf is cut:
    logfmt at the end, JSON within or between values, keeping one valid
    object with "truncated":true. Returns the length written, '\n' included.
    Pure: no I/O, no clock. */
size_t
    herald_log_render (herald_log_format_t format, const herald_log_line_t *line,
                       char *buf, size_t size);

/*  Writes text as a logfmt value into buf (quoted and escaped if needed,
    truncated to fit). Returns buf. */
const char *
    herald_log_quote (const char *text, char *buf, size_t size);

#define herald_debug(msg, ...) herald_log (HERALD_LOG_DEBUG, msg, __VA_ARGS__)
#define herald_info(msg, ...)  herald_log (HERALD_LOG_INFO, msg, __VA_ARGS__)
#define herald_warn(msg, ...)  herald_log (HERALD_LOG_WARN, msg, __VA_ARGS__)
#define herald_error(msg, ...) herald_log (HERALD_LOG_ERROR, msg, __VA_ARGS__)

#endif
