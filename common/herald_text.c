/*  herald_text: a growing string. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_text.h"

/*  Makes room for `more` bytes and the NUL; false (and failed) if it can't. */
static bool
s_reserve (herald_text_t *self, size_t more)
{
    if (self->failed)
        return false;
    size_t need = self->len + more + 1;
    if (self->max && need > self->max) {
        self->failed = true;
        return false;
    }
    if (need > self->cap) {
        size_t cap = self->cap? self->cap: 256;
        while (cap < need)
            cap *= 2;
        char *data = realloc (self->data, cap);
        if (!data) {
            self->failed = true;
            return false;
        }
        self->data = data;
        self->cap = cap;
    }
    return true;
}

void
herald_text_append (herald_text_t *self, const char *data, size_t len)
{
    if (!self || !s_reserve (self, len))
        return;
    memcpy (self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = '\0';
}

void
herald_text_puts (herald_text_t *self, const char *data)
{
    herald_text_append (self, data, strlen (data));
}

void
herald_text_putc (herald_text_t *self, char c)
{
    herald_text_append (self, &c, 1);
}

void
herald_text_printf (herald_text_t *self, const char *format, ...)
{
    if (!self || self->failed)
        return;
    va_list args;
    va_start (args, format);
    int n = vsnprintf (NULL, 0, format, args);
    va_end (args);
    if (n < 0) {
        self->failed = true;
        return;
    }
    if (!s_reserve (self, (size_t) n))
        return;
    va_start (args, format);
    vsnprintf (self->data + self->len, self->cap - self->len, format, args);
    va_end (args);
    self->len += (size_t) n;
}
