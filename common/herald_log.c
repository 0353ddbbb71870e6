/*  herald_log: logfmt to stderr, one write per line so lines from many
    processes sharing a terminal never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "herald_clock.h"
#include "herald_log.h"

static char s_proc[32] = "herald";
static herald_log_level_t s_level = HERALD_LOG_INFO;

static const char *s_level_names[] = { "debug", "info", "warn", "error" };

int
herald_log_level_parse (const char *text, herald_log_level_t *level)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp (text, s_level_names[i]) == 0) {
            *level = (herald_log_level_t) i;
            return 0;
        }
    return -1;
}

void
herald_log_init (const char *proc, herald_log_level_t level)
{
    snprintf (s_proc, sizeof s_proc, "%s", proc);
    s_level = level;
    const char *env = getenv ("HERALD_LOG_LEVEL");
    if (env)
        herald_log_level_parse (env, &s_level);
}

const char *
herald_log_quote (const char *text, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    int needs = text[0] == '\0';
    for (const char *p = text; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char) *p < 0x20)
            needs = 1;
    if (!needs) {
        snprintf (buf, size, "%s", text);
        return buf;
    }
    if (size < 3) {             /* no room for a quoted value: write nothing */
        buf[0] = '\0';
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const char *p = text; *p && o + 3 < size; p++) {
        unsigned char c = (unsigned char) *p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char) c;
        }
        else
        if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        }
        else
        if (c < 0x20)
            buf[o++] = '?';
        else
            buf[o++] = (char) c;
    }
    buf[o++] = '"';
    buf[o < size? o: size - 1] = '\0';
    return buf;
}

void
herald_log (herald_log_level_t level, const char *msg, const char *fields, ...)
{
    if (level < s_level)
        return;
    char line[2048];
    char ts[32];
    char qmsg[512];
    herald_clock_format (herald_clock_wall_ms (), ts, sizeof ts);
    int n = snprintf (line, sizeof line, "ts=%s level=%s proc=%s pid=%d msg=%s",
                      ts, s_level_names[level], s_proc, (int) getpid (),
                      herald_log_quote (msg, qmsg, sizeof qmsg));
    if (n < 0)
        return;
    if (fields && *fields && (size_t) n < sizeof line - 2) {
        line[n++] = ' ';
        va_list args;
        va_start (args, fields);
        int m = vsnprintf (line + n, sizeof line - (size_t) n, fields, args);
        va_end (args);
        if (m > 0)
            n += m;
    }
    if ((size_t) n > sizeof line - 2)
        n = (int) sizeof line - 2;
    line[n++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, (size_t) n);
    (void) rc;
}
