/*  herald_log: logfmt or JSON lines to stderr, one write per line so lines
    from many processes sharing a terminal or a pipe never interleave.
    The JSON form is made from the logfmt fields, so the callers write one
    format string and the two forms always carry the same keys. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "herald_clock.h"
#include "herald_log.h"

#define S_FIELDS_MAX    2048        /* formatted fields of one line */
#define S_LINE_MAX      8192        /* one rendered line */
#define S_JSON_RESERVE  24          /* room kept for ,"truncated":true}\n */

static char s_proc[32] = "herald";
static herald_log_level_t s_level = HERALD_LOG_INFO;
static herald_log_format_t s_format = HERALD_LOG_LOGFMT;

static const char *s_level_names[] = { "debug", "info", "warn", "error" };
static const char *s_format_names[] = { "logfmt", "json" };

int
herald_log_level_parse (const char *text, herald_log_level_t *level)
{
    for (int i = 0; text && i < 4; i++)
        if (strcasecmp (text, s_level_names[i]) == 0) {
            *level = (herald_log_level_t) i;
            return 0;
        }
    return -1;
}

int
herald_log_format_parse (const char *text, herald_log_format_t *format)
{
    for (int i = 0; text && i < 2; i++)
        if (strcasecmp (text, s_format_names[i]) == 0) {
            *format = (herald_log_format_t) i;
            return 0;
        }
    return -1;
}

const char *
herald_log_format_name (herald_log_format_t format)
{
    return format == HERALD_LOG_JSON? "json": "logfmt";
}

void
herald_log_set_format (herald_log_format_t format)
{
    s_format = format == HERALD_LOG_JSON? HERALD_LOG_JSON: HERALD_LOG_LOGFMT;
}

herald_log_format_t
herald_log_format (void)
{
    return s_format;
}

void
herald_log_init (const char *proc, herald_log_level_t level)
{
    snprintf (s_proc, sizeof s_proc, "%s", proc);
    s_level = level;
    const char *format = getenv ("HERALD_LOG_FORMAT");
    bool bad_format = format && *format && herald_log_format_parse (format, &s_format) != 0;
    const char *env = getenv ("HERALD_LOG_LEVEL");
    bool bad_level = env && *env && herald_log_level_parse (env, &s_level) != 0;
    char quoted[128];
    if (bad_format)
        herald_warn ("unknown log format, using logfmt", "variable=HERALD_LOG_FORMAT value=%s expected=logfmt|json",
                     herald_log_quote (format, quoted, sizeof quoted));
    if (bad_level)
        herald_warn ("unknown log level, ignored", "variable=HERALD_LOG_LEVEL value=%s expected=debug|info|warn|error",
                     herald_log_quote (env, quoted, sizeof quoted));
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

//  ---------------------------------------------------------------------
//  logfmt

static size_t
s_render_logfmt (const herald_log_line_t *line, char *buf, size_t size)
{
    char ts[32];
    char qmsg[512];
    herald_clock_format (line->wall_ms, ts, sizeof ts);
    int n = snprintf (buf, size, "ts=%s level=%s proc=%s pid=%d msg=%s",
                      ts, s_level_names[line->level], line->proc, line->pid,
                      herald_log_quote (line->msg, qmsg, sizeof qmsg));
    size_t len = n < 0? 0: (size_t) n;
    if (line->fields && *line->fields && len < size - 2)
        len += (size_t) snprintf (buf + len, size - len, " %s", line->fields);
    if (len > size - 2)
        len = size - 2;
    buf[len++] = '\n';
    buf[len] = '\0';
    return len;
}

//  ---------------------------------------------------------------------
//  JSON: written into a fixed buffer; what does not fit is left out between
//  values (or a long value is cut), and the object says "truncated":true.

typedef struct {
    char *buf;
    size_t len;
    size_t limit;               /* content stays below: the rest is the reserve */
    bool truncated;
} s_writer_t;

static bool
s_put (s_writer_t *self, const char *text, size_t len)
{
    if (self->truncated || self->len + len > self->limit)
        return false;
    memcpy (self->buf + self->len, text, len);
    self->len += len;
    return true;
}

//  Length of the valid UTF-8 sequence at p (len bytes left), 0 if invalid.
static size_t
s_utf8_length (const unsigned char *p, size_t len)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;     //  bounds of the second byte
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else
    if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;          //  no UTF-16 surrogates
    }
    else
    if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;          //  nothing above U+10FFFF
    }
    else
        return 0;
    if (len < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return need;
}

//  Writes text[0..len) as a JSON string. logfmt: text is the inside of a
//  logfmt quoted value (\" \\ \n are unescaped). cut: a value too long is
//  cut (and the line marked truncated); otherwise nothing is written.
//  Invalid UTF-8 becomes U+FFFD. Returns false if nothing was written.
static bool
s_put_string (s_writer_t *self, const char *text, size_t len, bool logfmt, bool cut)
{
    size_t start = self->len;
    if (!s_put (self, "\"", 1))
        return false;
    const unsigned char *p = (const unsigned char *) text;
    const unsigned char *end = p + len;
    while (p < end) {
        char piece[8];
        size_t piece_len = 0;
        const unsigned char *from = p;
        unsigned char c = *p;
        if (logfmt && c == '\\' && p + 1 < end) {
            c = p[1] == 'n'? '\n': p[1];
            p += 2;
        }
        else
            p++;
        if (c == '"' || c == '\\') {
            piece[0] = '\\';
            piece[1] = (char) c;
            piece_len = 2;
        }
        else
        if (c == '\n' || c == '\r' || c == '\t') {
            piece[0] = '\\';
            piece[1] = c == '\n'? 'n': c == '\r'? 'r': 't';
            piece_len = 2;
        }
        else
        if (c < 0x20 || c == 0x7f)
            piece_len = (size_t) snprintf (piece, sizeof piece, "\\u%04x", c);
        else
        if (c < 0x80) {
            piece[0] = (char) c;
            piece_len = 1;
        }
        else {
            size_t n = s_utf8_length (from, (size_t) (end - from));
            if (n == 0) {
                memcpy (piece, "\\ufffd", 6);
                piece_len = 6;
            }
            else {
                memcpy (piece, from, n);
                piece_len = n;
                p = from + n;
            }
        }
        //  Keep room for the closing quote
        if (self->len + piece_len + 1 > self->limit) {
            if (!cut) {
                self->len = start;
                self->truncated = true;
                return false;
            }
            self->buf[self->len++] = '"';
            self->truncated = true;
            return true;
        }
        memcpy (self->buf + self->len, piece, piece_len);
        self->len += piece_len;
    }
    self->buf[self->len++] = '"';   //  room was kept for it
    return true;
}

static bool
s_reserved_key (const char *key, size_t len)
{
    static const char *reserved[] = { "ts", "level", "proc", "pid", "msg", "truncated" };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen (reserved[i]) == len && memcmp (reserved[i], key, len) == 0)
            return true;
    return false;
}

//  Writes ,"key":"value" pairs read from logfmt text. A key clashing with
//  the line's own keys gets a '_' in front; a key without '=' gets "".
static void
s_put_fields (s_writer_t *self, const char *p)
{
    while (*p && !self->truncated) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *key = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t key_len = (size_t) (p - key);
        const char *value = p;
        size_t value_len = 0;
        bool quoted = false;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                quoted = true;
                value = ++p;
                while (*p && *p != '"')
                    p += p[0] == '\\' && p[1]? 2: 1;
                value_len = (size_t) (p - value);
                if (*p == '"')
                    p++;
            }
            else {
                value = p;
                while (*p && *p != ' ')
                    p++;
                value_len = (size_t) (p - value);
            }
        }
        if (key_len == 0)
            continue;           //  "=value" with no key: nothing to name it by
        size_t mark = self->len;
        char name[128];
        int name_len = snprintf (name, sizeof name, "%s%.*s",
                                 s_reserved_key (key, key_len)? "_": "", (int) key_len, key);
        if (name_len < 0)
            continue;
        if ((size_t) name_len >= sizeof name)
            name_len = (int) sizeof name - 1;
        bool ok = s_put (self, ",", 1)
               && s_put_string (self, name, (size_t) name_len, false, false)
               && s_put (self, ":", 1);
        //  a key is never cut; a value may be, once its key is written
        if (!ok || !s_put_string (self, value, value_len, quoted, true)) {
            self->len = mark;
            self->truncated = true;
        }
    }
}

static size_t
s_render_json (const herald_log_line_t *line, char *buf, size_t size)
{
    s_writer_t writer = { .buf = buf, .limit = size - S_JSON_RESERVE };
    char head[128];
    char ts[32];
    herald_clock_format (line->wall_ms, ts, sizeof ts);
    int n = snprintf (head, sizeof head, "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":",
                      ts, s_level_names[line->level]);
    s_put (&writer, head, n > 0? (size_t) n: 0);
    s_put_string (&writer, line->proc, strlen (line->proc), false, true);
    n = snprintf (head, sizeof head, ",\"pid\":%d,\"msg\":", line->pid);
    s_put (&writer, head, n > 0? (size_t) n: 0);
    s_put_string (&writer, line->msg, strlen (line->msg), false, true);
    if (line->fields)
        s_put_fields (&writer, line->fields);
    const char *tail = writer.truncated? ",\"truncated\":true}\n": "}\n";
    size_t tail_len = strlen (tail);
    memcpy (buf + writer.len, tail, tail_len + 1);     //  the reserve holds it
    return writer.len + tail_len;
}

size_t
herald_log_render (herald_log_format_t format, const herald_log_line_t *line,
                   char *buf, size_t size)
{
    if (size < 256) {
        if (size > 0)
            buf[0] = '\0';
        return 0;
    }
    herald_log_line_t safe = *line;
    if ((int) safe.level < HERALD_LOG_DEBUG || safe.level > HERALD_LOG_ERROR)
        safe.level = HERALD_LOG_ERROR;
    if (!safe.proc)
        safe.proc = "";
    if (!safe.msg)
        safe.msg = "";
    return format == HERALD_LOG_JSON? s_render_json (&safe, buf, size)
                                    : s_render_logfmt (&safe, buf, size);
}

void
herald_log (herald_log_level_t level, const char *msg, const char *fields, ...)
{
    if (level < s_level)
        return;
    char formatted[S_FIELDS_MAX];
    formatted[0] = '\0';
    if (fields && *fields) {
        va_list args;
        va_start (args, fields);
        vsnprintf (formatted, sizeof formatted, fields, args);
        va_end (args);
    }
    herald_log_line_t line = {
        .wall_ms = herald_clock_wall_ms (),
        .level = level,
        .proc = s_proc,
        .pid = (int) getpid (),
        .msg = msg,
        .fields = formatted
    };
    char out[S_LINE_MAX];
    size_t len = herald_log_render (s_format, &line, out, sizeof out);
    ssize_t rc = write (STDERR_FILENO, out, len);
    (void) rc;
}
