/*  http_html: the text transformations the admin page needs between
    outside data and HTML: escaping, URL encoding, form decoding, and
    human-readable figures. Pure functions, no I/O.

    Every value that comes from an event, a worker or a request (customer
    data, error texts, task ids, query arguments) goes through
    http_html_escape before it reaches a page, in text and in attribute
    values alike, and through http_url_encode before it becomes part of a
    URL. */
#ifndef HERALD_HTTP_HTML_H
#define HERALD_HTTP_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_text.h"

/*  Appends text with & < > " ' replaced by their character references, so
    it is inert both between tags and inside a quoted attribute value.
    NULL appends nothing. */
void
    http_html_escape (herald_text_t *out, const char *text);

/*  The same for len bytes (which may hold NUL bytes: each becomes U+FFFD). */
void
    http_html_escape_n (herald_text_t *out, const char *text, size_t len);

/*  Appends text percent-encoded for a path segment or a query value: every
    byte but A-Z a-z 0-9 - . _ ~ becomes %XX. */
void
    http_url_encode (herald_text_t *out, const char *text);

/*  The value of field name in an application/x-www-form-urlencoded body
    (len bytes), decoded ('+' is a space, %XX a byte), into out (outlen
    bytes with the NUL). Returns its length, or -1 when the field is absent,
    malformed (a bad %XX, a %00) or does not fit. The first occurrence wins. */
int
    http_form_value (const char *body, size_t len, const char *name, char *out, size_t outlen);

/*  Formats a duration in ms as "850 ms", "12.3 s", "4 min 05 s",
    "3 h 07 min" or "2 d 04 h" into buf. Returns buf. */
const char *
    http_html_duration (int64_t ms, char *buf, size_t size);

/*  Formats a byte count as "512 B", "12.0 KiB", "3.4 MiB", "1.2 GiB". */
const char *
    http_html_bytes (int64_t bytes, char *buf, size_t size);

/*  Formats a wall-clock time (Unix ms) as "2026-11-30 14:03:07Z", "-" for
    0 or less. */
const char *
    http_html_time (int64_t wall_ms, char *buf, size_t size);

#endif
