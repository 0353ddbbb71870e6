/*  http_html: escaping, encoding and figures for the admin page (see http_html.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http_html.h"

void
http_html_escape_n (herald_text_t *out, const char *text, size_t len)
{
    if (!text)
        return;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *entity = NULL;
        switch (text[i]) {
            case '&':  entity = "&amp;"; break;
            case '<':  entity = "&lt;"; break;
            case '>':  entity = "&gt;"; break;
            case '"':  entity = "&quot;"; break;
            case '\'': entity = "&#39;"; break;
            case '\0': entity = "\xEF\xBF\xBD"; break;     /* U+FFFD: a NUL has no place in a page */
            default:   continue;
        }
        herald_text_append (out, text + start, i - start);
        herald_text_puts (out, entity);
        start = i + 1;
    }
    herald_text_append (out, text + start, len - start);
}

void
http_html_escape (herald_text_t *out, const char *text)
{
    if (text)
        http_html_escape_n (out, text, strlen (text));
}

void
http_url_encode (herald_text_t *out, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *) (text? text: ""); *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
        ||  *p == '-' || *p == '.' || *p == '_' || *p == '~')
            herald_text_putc (out, (char) *p);
        else {
            char escaped[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            herald_text_append (out, escaped, 3);
        }
    }
}

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*  Decodes len bytes of a form component into out. Length or -1. */
static int
s_form_decode (const char *text, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '+')
            c = ' ';
        else
        if (c == '%') {
            /*  Two hex digits must follow, within len; %00 is refused. */
            int hi = i + 2 < len? s_hex (text[i + 1]): -1;
            int lo = hi >= 0? s_hex (text[i + 2]): -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char) (hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return (int) o;
}

int
http_form_value (const char *body, size_t len, const char *name, char *out, size_t outlen)
{
    size_t name_len = strlen (name);
    size_t pos = 0;
    while (body && pos < len) {
        const char *amp = memchr (body + pos, '&', len - pos);
        size_t end = amp? (size_t) (amp - body): len;
        const char *field = body + pos;
        size_t field_len = end - pos;
        const char *eq = memchr (field, '=', field_len);
        size_t key_len = eq? (size_t) (eq - field): field_len;
        char key[64];
        if (key_len > 0 && s_form_decode (field, key_len, key, sizeof key) == (int) name_len
        &&  memcmp (key, name, name_len) == 0) {
            if (!eq)
                return s_form_decode ("", 0, out, outlen);
            return s_form_decode (eq + 1, field_len - key_len - 1, out, outlen);
        }
        pos = end + 1;
    }
    return -1;
}

const char *
http_html_duration (int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (ms < 1000)
        snprintf (buf, size, "%lld ms", (long long) ms);
    else
    if (s < 60)
        snprintf (buf, size, "%.1f s", (double) ms / 1000.0);
    else
    if (s < 3600)
        snprintf (buf, size, "%lld min %02lld s", (long long) (s / 60), (long long) (s % 60));
    else
    if (s < 86400)
        snprintf (buf, size, "%lld h %02lld min", (long long) (s / 3600), (long long) (s % 3600 / 60));
    else
        snprintf (buf, size, "%lld d %02lld h", (long long) (s / 86400), (long long) (s % 86400 / 3600));
    return buf;
}

const char *
http_html_bytes (int64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
    if (bytes < 1024) {
        snprintf (buf, size, "%lld B", (long long) (bytes > 0? bytes: 0));
        return buf;
    }
    double value = (double) bytes / 1024.0;
    size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < sizeof units / sizeof units[0]) {
        value /= 1024.0;
        unit++;
    }
    snprintf (buf, size, "%.1f %s", value, units[unit]);
    return buf;
}

const char *
http_html_time (int64_t wall_ms, char *buf, size_t size)
{
    if (wall_ms <= 0) {
        snprintf (buf, size, "-");
        return buf;
    }
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm tm;
    if (!gmtime_r (&seconds, &tm) || strftime (buf, size, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
        snprintf (buf, size, "%lld", (long long) wall_ms);
    return buf;
}
