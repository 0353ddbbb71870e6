/*  template: {{ dotted.path }} substitution with per-destination escaping. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_json.h"
#include "herald_text.h"
#include "template.h"

#define S_PATH_MAX      512     /* longest {{ path }} */

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t';
}

/*  Trims the placeholder body [start, end) and checks it is a well-formed
    path: non-empty segments separated by dots, no spaces or braces.
    Copies it into path. Returns 0 or -1. */
static int
s_parse_path (const char *start, const char *end, char *path, size_t size)
{
    while (start < end && s_is_space (*start))
        start++;
    while (end > start && s_is_space (end [-1]))
        end--;
    size_t len = (size_t) (end - start);
    if (len == 0 || len >= size)
        return -1;
    memcpy (path, start, len);
    path [len] = '\0';
    if (path [0] == '.' || path [len - 1] == '.' || strstr (path, ".."))
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) path [i];
        if (c < 0x20 || c == ' ' || c == '{' || c == '}' || c == 0x7f)
            return -1;
    }
    return 0;
}

char *
hd_json_quote (const char *text, size_t len)
{
    herald_text_t buf = { .max = HD_TEMPLATE_MAX_OUTPUT };
    herald_text_putc (&buf, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text [i];
        char esc [8];
        if (c == '"' || c == '\\') {
            esc [0] = '\\';
            esc [1] = (char) c;
            herald_text_append (&buf, esc, 2);
        }
        else
        if (c == '\n')
            herald_text_append (&buf, "\\n", 2);
        else
        if (c == '\r')
            herald_text_append (&buf, "\\r", 2);
        else
        if (c == '\t')
            herald_text_append (&buf, "\\t", 2);
        else
        if (c < 0x20 || c == 0x7f) {
            snprintf (esc, sizeof esc, "\\u%04x", c);
            herald_text_append (&buf, esc, 6);
        }
        else
            herald_text_putc (&buf, (char) c);
    }
    herald_text_putc (&buf, '"');
    if (buf.failed) {
        free (buf.data);
        return NULL;
    }
    return buf.data;
}

/*  Appends text (len bytes) escaped for mode (NONE, HTML, HEADER). */
static void
s_append_escaped (herald_text_t *buf, const char *text, size_t len, hd_escape_t mode)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text [i];
        if (mode == HD_ESCAPE_HTML) {
            switch (c) {
                case '&':  herald_text_append (buf, "&amp;", 5); continue;
                case '<':  herald_text_append (buf, "&lt;", 4); continue;
                case '>':  herald_text_append (buf, "&gt;", 4); continue;
                case '"':  herald_text_append (buf, "&quot;", 6); continue;
                case '\'': herald_text_append (buf, "&#39;", 5); continue;
                default: break;
            }
        }
        else
        if (mode == HD_ESCAPE_HEADER && (c < 0x20 || c == 0x7f)) {
            herald_text_putc (buf, ' ');
            continue;
        }
        if (c == '\0')
            continue;           /* never inside a C string */
        herald_text_putc (buf, (char) c);
    }
}

/*  Appends value rendered for mode. Returns 0 or -1 (out of memory). */
static int
s_append_value (herald_text_t *buf, const json_t *value, hd_escape_t mode)
{
    if (json_is_string (value)) {
        const char *text = json_string_value (value);
        size_t len = json_string_length (value);
        if (mode == HD_ESCAPE_JSON) {
            char *quoted = hd_json_quote (text, len);
            if (!quoted)
                return -1;
            herald_text_append (buf, quoted, strlen (quoted));
            free (quoted);
        }
        else
            s_append_escaped (buf, text, len, mode);
        return 0;
    }
    if (json_is_null (value)) {
        if (mode == HD_ESCAPE_JSON)
            herald_text_append (buf, "null", 4);
        return 0;
    }
    if (json_is_integer (value)) {
        char number [32];
        int len = snprintf (number, sizeof number, "%" JSON_INTEGER_FORMAT,
                            json_integer_value (value));
        herald_text_append (buf, number, (size_t) len);
        return 0;
    }
    /*  Reals, booleans, objects, arrays: their JSON text. For people, reals
        get 15 significant digits (19.99, not 19.989999999999998); JSON
        bodies keep the exact round-trip form. */
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY
                 | (mode == HD_ESCAPE_JSON ? 0 : JSON_REAL_PRECISION (15));
    char *text = json_dumps (value, flags);
    if (!text)
        return -1;
    if (mode == HD_ESCAPE_JSON)
        herald_text_append (buf, text, strlen (text));
    else
        s_append_escaped (buf, text, strlen (text), mode);
    free (text);
    return 0;
}

/*  The one parser: renders into buf, or only checks the syntax when
    envelope and buf are NULL. */
static int
s_render (const char *tmpl, const json_t *envelope, hd_escape_t mode, herald_text_t *buf,
          char *err, size_t errlen)
{
    const char *cursor = tmpl;
    while (*cursor) {
        const char *open = strstr (cursor, "{{");
        if (!open) {
            herald_text_append (buf, cursor, strlen (cursor));
            break;
        }
        herald_text_append (buf, cursor, (size_t) (open - cursor));
        const char *close = strstr (open + 2, "}}");
        if (!close) {
            snprintf (err, errlen, "unclosed {{ at offset %zu", (size_t) (open - tmpl));
            return -1;
        }
        /*  {{ path | "fallback" }}: the fallback text stands in for a
            missing or null field; without one a missing field is an error. */
        const char *bar = memchr (open + 2, '|', (size_t) (close - open - 2));
        const char *fallback = NULL;
        size_t fallback_len = 0;
        if (bar) {
            const char *quote = bar + 1;
            while (quote < close && *quote == ' ')
                quote++;
            const char *end = close;
            while (end > quote && end[-1] == ' ')
                end--;
            if (end - quote < 2 || *quote != '"' || end[-1] != '"'
            ||  memchr (quote + 1, '"', (size_t) (end - quote - 2))) {
                snprintf (err, errlen, "{{ at offset %zu: a fallback is a \"quoted text\" after |",
                          (size_t) (open - tmpl));
                return -1;
            }
            fallback = quote + 1;
            fallback_len = (size_t) (end - quote - 2);
        }
        char path [S_PATH_MAX];
        if (s_parse_path (open + 2, bar ? bar : close, path, sizeof path)) {
            int shown = (int) (close - open - 2);
            snprintf (err, errlen, "{{%.*s}} at offset %zu: not a field path",
                      shown > 100 ? 100 : shown, open + 2, (size_t) (open - tmpl));
            return -1;
        }
        if (envelope) {
            const json_t *value = herald_json_lookup (envelope, path);
            if (fallback && (!value || json_is_null (value))) {
                json_t *text = json_stringn (fallback, fallback_len);
                int rc = text ? s_append_value (buf, text, mode) : -1;
                json_decref (text);
                if (rc) {
                    snprintf (err, errlen, "out of memory");
                    return -1;
                }
                cursor = close + 2;
                continue;
            }
            if (!value) {
                snprintf (err, errlen, "{{%.200s}}: no such field in the event", path);
                return -1;
            }
            if (s_append_value (buf, value, mode)) {
                snprintf (err, errlen, "out of memory");
                return -1;
            }
        }
        cursor = close + 2;
    }
    if (buf && buf->failed) {
        snprintf (err, errlen, "rendered text is larger than %d bytes or out of memory",
                  HD_TEMPLATE_MAX_OUTPUT);
        return -1;
    }
    return 0;
}

char *
hd_template_render (const char *tmpl, const json_t *envelope, hd_escape_t mode,
                    char *err, size_t errlen)
{
    herald_text_t buf = { .max = HD_TEMPLATE_MAX_OUTPUT };
    if (!tmpl || !envelope) {
        snprintf (err, errlen, "no template or no event");
        return NULL;
    }
    if (s_render (tmpl, envelope, mode, &buf, err, errlen)) {
        free (buf.data);
        return NULL;
    }
    if (!buf.data)
        buf.data = strdup ("");
    if (!buf.data)
        snprintf (err, errlen, "out of memory");
    return buf.data;
}

int
hd_template_check (const char *tmpl, char *err, size_t errlen)
{
    return s_render (tmpl ? tmpl : "", NULL, HD_ESCAPE_NONE, NULL, err, errlen);
}

char *
hd_template_load (const char *path, char *err, size_t errlen)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf (err, errlen, "template %s: %s", path, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        snprintf (err, errlen, "template %s: not a regular file", path);
        close (fd);
        return NULL;
    }
    if (st.st_size > HD_TEMPLATE_MAX_FILE) {
        snprintf (err, errlen, "template %s: larger than %d bytes", path, HD_TEMPLATE_MAX_FILE);
        close (fd);
        return NULL;
    }
    size_t cap = (size_t) st.st_size + 1;
    char *text = malloc (cap);
    if (!text) {
        snprintf (err, errlen, "template %s: out of memory", path);
        close (fd);
        return NULL;
    }
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t got = read (fd, text + len, cap - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf (err, errlen, "template %s: %s", path, strerror (errno));
            free (text);
            close (fd);
            return NULL;
        }
        if (got == 0)
            break;
        len += (size_t) got;
    }
    close (fd);
    text [len] = '\0';
    if (memchr (text, '\0', len)) {
        snprintf (err, errlen, "template %s: contains a NUL byte", path);
        free (text);
        return NULL;
    }
    char syntax [256];
    if (hd_template_check (text, syntax, sizeof syntax)) {
        snprintf (err, errlen, "template %s: %s", path, syntax);
        free (text);
        return NULL;
    }
    return text;
}
