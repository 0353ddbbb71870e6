/*  fuzz_util: what the libFuzzer targets share. Header-only, fuzz use.
    A failed property prints what was wrong and aborts, so libFuzzer keeps
    the input as a crash artifact. Inputs are copied into exact-size heap
    blocks so that ASan sees any read past their end. */
#ifndef HERALD_FUZZ_UTIL_H
#define HERALD_FUZZ_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int
LLVMFuzzerInitialize (int *argc, char ***argv);

/*  Aborts with a message unless cond holds: a property of the module's
    contract that the input broke. */
static inline void
    fuzz_check (bool cond, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static inline void
fuzz_check (bool cond, const char *fmt, ...)
{
    if (cond)
        return;
    va_list args;
    va_start (args, fmt);
    fputs ("\n== fuzz property broken: ", stderr);
    vfprintf (stderr, fmt, args);
    fputs ("\n", stderr);
    va_end (args);
    abort ();
}

/*  len bytes in a heap block of exactly len bytes (at least 1 allocated,
    so that a zero-length input still has a pointer). Caller frees. */
static inline void *
fuzz_copy (const void *data, size_t len)
{
    void *copy = malloc (len? len: 1);
    fuzz_check (copy != NULL, "out of memory");
    if (len)
        memcpy (copy, data, len);
    return copy;
}

/*  len bytes plus a NUL, in a block of exactly len + 1 bytes. Caller frees. */
static inline char *
fuzz_strndup (const void *data, size_t len)
{
    char *copy = malloc (len + 1);
    fuzz_check (copy != NULL, "out of memory");
    if (len)
        memcpy (copy, data, len);
    copy[len] = '\0';
    return copy;
}

/*  True if the NUL-terminated text is within size bytes. */
static inline bool
fuzz_terminated (const char *text, size_t size)
{
    return memchr (text, '\0', size) != NULL;
}

/*  Length of the valid UTF-8 sequence at p (left bytes), or 0: shortest
    forms only, no surrogates, nothing above U+10FFFF. Written apart from
    the code under test on purpose. */
static inline size_t
fuzz_utf8_length (const unsigned char *p, size_t left, uint32_t *code)
{
    uint32_t c = p[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        *code = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) { len = 2; c &= 0x1F; min = 0x80; }
    else
    if ((c & 0xF0) == 0xE0) { len = 3; c &= 0x0F; min = 0x800; }
    else
    if ((c & 0xF8) == 0xF0) { len = 4; c &= 0x07; min = 0x10000; }
    else
        return 0;
    if (left < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *code = c;
    return len;
}

/*  Splits data at the first occurrence of sep: *head_len is the length
    before it, *tail where the rest starts (size when there is none).
    Returns true when sep was found. */
static inline bool
fuzz_split (const uint8_t *data, size_t size, const char *sep, size_t *head_len, size_t *tail)
{
    size_t sep_len = strlen (sep);
    for (size_t i = 0; i + sep_len <= size; i++)
        if (memcmp (data + i, sep, sep_len) == 0) {
            *head_len = i;
            *tail = i + sep_len;
            return true;
        }
    *head_len = size;
    *tail = size;
    return false;
}

#endif
