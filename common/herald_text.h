/*  herald_text: a growing NUL-terminated string for building messages and
    reports. On out of memory (or past max, when set) it stops growing and
    remembers it in `failed`; callers check once at the end. Initialise with
    { 0 } (or { .max = N }); the caller frees data. */
#ifndef HERALD_TEXT_H
#define HERALD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;                 /* NUL-terminated, NULL until something is added */
    size_t len;                 /* bytes used, without the NUL */
    size_t cap;                 /* bytes allocated */
    size_t max;                 /* most bytes (with the NUL) it may hold, 0 = no limit */
    bool failed;                /* out of memory or over max: data is incomplete */
} herald_text_t;

/*  Appends len bytes. NULL-safe: a NULL text ignores the call. */
void
    herald_text_append (herald_text_t *self, const char *data, size_t len);

/*  Appends a NUL-terminated string. */
void
    herald_text_puts (herald_text_t *self, const char *data);

/*  Appends one character. */
void
    herald_text_putc (herald_text_t *self, char c);

/*  Appends formatted text, of any length. */
void
    herald_text_printf (herald_text_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
