/*  validate: CloudEvents envelope and configured event rules, without a
    DOM. One pass checks that the body is JSON as strict as jansson's (the
    workers parse it with jansson: what passes here must pass there): the
    grammar, UTF-8, escapes, no NUL, no duplicate key in any object, integers
    within 64 bits, a depth limit. It notes where each top-level attribute's
    value lies; the required fields and the idempotency key are then found
    by short walks inside `data`, skipping what they do not need. Nothing is
    allocated per event. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_proto.h"
#include "validate.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define S_DEPTH_MAX     128             /* nesting of arrays and objects */
#define S_KEYS_MAX      4096            /* keys of the objects open at once */
#define S_KEY_MAX       1024            /* a key compared decoded (longer: compared raw) */

static int
s_refuse (validate_result_t *result, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_refuse (validate_result_t *result, int code, const char *fmt, ...)
{
    result->code = code;
    va_list args;
    va_start (args, fmt);
    vsnprintf (result->reason, sizeof result->reason, fmt, args);
    va_end (args);
    return -1;
}

//  --------------------------------------------------------------------------
//  The checking pass

typedef struct {
    const char *ptr;                /* raw, between the quotes for strings */
    size_t len;
    bool escaped;                   /* a string holding escapes */
} s_span_t;

typedef struct {
    uint32_t hash;                  /* of the decoded key */
    s_span_t key;
} s_key_t;

/*  A member of the top-level `data` object as the checking pass met it. */
typedef struct {
    s_span_t key;
    const char *value;              /* its first byte */
    size_t len;                     /* the value's bytes */
} s_member_t;

#define S_MEMBERS_MAX   64          /* members of data noted (more: the lookups walk data) */

typedef struct {
    const char *start, *p, *end;
    const char *error_at;
    char error[160];
    int depth;
    s_key_t *keys;                  /* scratch for duplicate detection */
    size_t key_count;
    /*  Top-level members seen (values' spans); the object itself. */
    s_span_t attrs[8];
    bool has_attr[8];
    char attr_kind[8];              /* first byte of the value: " { [ t f n - or a digit */
    /*  The members of the top-level `data` object: the lookups of the
        required fields and of the key start from them instead of walking
        `data` again (those walks were a fifth of the validation's time). */
    s_member_t *members;            /* S_MEMBERS_MAX of them */
    size_t member_count;
    bool members_all;               /* every member of data is in members */
} s_scan_t;

#define S_ATTR(name) { name, sizeof name - 1 }
static const struct { const char *name; size_t len; } s_attrs[8] = {
    S_ATTR ("specversion"), S_ATTR ("id"), S_ATTR ("source"), S_ATTR ("type"), S_ATTR ("subject"),
    S_ATTR ("time"), S_ATTR ("datacontenttype"), S_ATTR ("data")
};
enum { A_SPECVERSION, A_ID, A_SOURCE, A_TYPE, A_SUBJECT, A_TIME, A_DATACONTENTTYPE, A_DATA };

static s_key_t s_keys[S_KEYS_MAX];   /* the broker validates on its loop thread alone */
static s_member_t s_members[S_MEMBERS_MAX];
static bool s_has_base64;

static int
s_fail (s_scan_t *s, const char *at, const char *what)
{
    if (!s->error_at) {
        s->error_at = at;
        snprintf (s->error, sizeof s->error, "%s", what);
    }
    return -1;
}

static void
s_ws (s_scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/*  s_ws, called only when the next byte may be white space. */
static inline void
s_ws_maybe (s_scan_t *s)
{
    if (s->p < s->end && (unsigned char) *s->p <= ' ')
        s_ws (s);
}

/*  True if the next byte after any white space is c (s->p left at it, or at
    what is there instead): compact JSON has none, and is checked first. */
static inline bool
s_at (s_scan_t *s, char c)
{
    if (s->p < s->end && *s->p == c)
        return true;
    s_ws (s);
    return s->p < s->end && *s->p == c;
}

static int
s_hex4 (const char *p, const char *end, unsigned *out)
{
    if (end - p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned) (c - '0');
        else
        if (c >= 'a' && c <= 'f')
            v |= (unsigned) (c - 'a' + 10);
        else
        if (c >= 'A' && c <= 'F')
            v |= (unsigned) (c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/*  Length of a valid UTF-8 sequence at p (1..4), or 0. */
static int
s_utf8 (const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    int n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else
    if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else
    if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (end - p < n)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
    ||  (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/*  Scanning 16 bytes at a time (SSE2, in every x86-64): the byte loops
    over strings and skipped values were a quarter of the broker loop's
    time at 1,000 outstanding. Each returns the first byte at or after p
    (and before end) that the caller must look at, or end. */

/*  A quote, a backslash, a control character or a byte of a multi-byte
    UTF-8 sequence: what ends a run of plain ASCII inside a string. */
static inline const char *
s_plain_end (const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8 ('"'), backslash = _mm_set1_epi8 ('\\'), space = _mm_set1_epi8 (0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128 ((const __m128i *) p);
        /*  Signed: below 0x20, and 0x80..0xff (negative), in one compare. */
        __m128i hit = _mm_or_si128 (_mm_cmplt_epi8 (v, space),
                                    _mm_or_si128 (_mm_cmpeq_epi8 (v, quote), _mm_cmpeq_epi8 (v, backslash)));
        int mask = _mm_movemask_epi8 (hit);
        if (mask)
            return p + __builtin_ctz ((unsigned) mask);
        p += 16;
    }
#endif
    while (p < end) {
        unsigned char c = (unsigned char) *p;
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            return p;
        p++;
    }
    return end;
}

/*  A quote or a backslash (inside a checked string). */
static inline const char *
s_quote_end (const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8 ('"'), backslash = _mm_set1_epi8 ('\\');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128 ((const __m128i *) p);
        int mask = _mm_movemask_epi8 (_mm_or_si128 (_mm_cmpeq_epi8 (v, quote), _mm_cmpeq_epi8 (v, backslash)));
        if (mask)
            return p + __builtin_ctz ((unsigned) mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

/*  A quote or a bracket (inside a checked object or array). */
static inline const char *
s_mark_end (const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8 ('"'), open = _mm_set1_epi8 ('{'), close = _mm_set1_epi8 ('}'),
                  open_sq = _mm_set1_epi8 ('['), close_sq = _mm_set1_epi8 (']');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128 ((const __m128i *) p);
        __m128i hit = _mm_or_si128 (_mm_or_si128 (_mm_cmpeq_epi8 (v, quote), _mm_cmpeq_epi8 (v, open)),
                                    _mm_or_si128 (_mm_or_si128 (_mm_cmpeq_epi8 (v, close),
                                                                _mm_cmpeq_epi8 (v, open_sq)),
                                                  _mm_cmpeq_epi8 (v, close_sq)));
        int mask = _mm_movemask_epi8 (hit);
        if (mask)
            return p + __builtin_ctz ((unsigned) mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '{' && *p != '}' && *p != '[' && *p != ']')
        p++;
    return p;
}

/*  A string at s->p (the opening quote): checked, span set. */
static __attribute__ ((noinline)) int
s_string_slow (s_scan_t *s, s_span_t *span)
{
    const char *open = s->p++;
    span->ptr = s->p;
    span->escaped = false;
    while (s->p < s->end) {
        /*  Most bytes are plain ASCII: stepped over 16 at a time. */
        s->p = s_plain_end (s->p, s->end);
        if (s->p >= s->end)
            break;
        unsigned char c = (unsigned char) *s->p;
        if (c == '"') {
            span->len = (size_t) (s->p - span->ptr);
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return s_fail (s, s->p, "control character in a string");
        if (c == '\\') {
            span->escaped = true;
            if (s->end - s->p < 2)
                break;
            char e = s->p[1];
            if (e == 'u') {
                unsigned u;
                if (s_hex4 (s->p + 2, s->end, &u) != 0)
                    return s_fail (s, s->p, "invalid \\u escape");
                if (u == 0)
                    return s_fail (s, s->p, "\\u0000 is not allowed in strings");
                s->p += 6;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return s_fail (s, s->p - 6, "invalid Unicode: a lone low surrogate");
                if (u >= 0xd800 && u <= 0xdbff) {
                    unsigned low;
                    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u'
                    ||  s_hex4 (s->p + 2, s->end, &low) != 0 || low < 0xdc00 || low > 0xdfff)
                        return s_fail (s, s->p - 6, "invalid Unicode: a high surrogate without its low one");
                    s->p += 6;
                }
                continue;
            }
            if (!strchr ("\"\\/bfnrt", e) || e == '\0')
                return s_fail (s, s->p, "invalid escape");
            s->p += 2;
            continue;
        }
        int n = s_utf8 ((const unsigned char *) s->p, (const unsigned char *) s->end);
        if (n == 0)
            return s_fail (s, s->p, "invalid UTF-8 in a string");
        s->p += n;
    }
    return s_fail (s, open, "unterminated string");
}

/*  The same, inlined for the common case: plain ASCII up to the closing
    quote (keys and most values); anything else takes the checking loop. */
static inline int
s_string (s_scan_t *s, s_span_t *span)
{
    const char *start = s->p + 1;
    const char *stop = s_plain_end (start, s->end);
    if (stop < s->end && *stop == '"') {
        span->ptr = start;
        span->len = (size_t) (stop - start);
        span->escaped = false;
        s->p = stop + 1;
        return 0;
    }
    return s_string_slow (s, span);
}

/*  A failed decoding leaves out empty (never half a string). */
static size_t
s_decode_failed (char *out)
{
    out[0] = '\0';
    return (size_t) -1;
}

/*  Decodes a checked string span into out (NUL-terminated, at most size-1
    bytes). Returns the decoded length, or (size_t) -1, out empty, if it
    does not fit. */
static size_t
s_decode (const s_span_t *span, char *out, size_t size)
{
    if (!span->escaped) {
        if (span->len >= size)
            return s_decode_failed (out);
        memcpy (out, span->ptr, span->len);
        out[span->len] = '\0';
        return span->len;
    }
    size_t n = 0;
    const char *p = span->ptr, *end = span->ptr + span->len;
    while (p < end) {
        char c = *p++;
        uint32_t cp;
        if (c != '\\') {
            if (n + 1 >= size)
                return s_decode_failed (out);
            out[n++] = c;
            continue;
        }
        char e = *p++;
        switch (e) {
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                unsigned u, low;
                s_hex4 (p, end, &u);
                p += 4;
                cp = u;
                if (u >= 0xd800 && u <= 0xdbff) {
                    s_hex4 (p + 2, end, &low);
                    p += 6;
                    cp = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
                }
                break;
            }
            default:  cp = (unsigned char) e; break;
        }
        char buf[4];
        size_t k;
        if (cp < 0x80)
            buf[0] = (char) cp, k = 1;
        else
        if (cp < 0x800)
            buf[0] = (char) (0xc0 | cp >> 6), buf[1] = (char) (0x80 | (cp & 0x3f)), k = 2;
        else
        if (cp < 0x10000)
            buf[0] = (char) (0xe0 | cp >> 12), buf[1] = (char) (0x80 | ((cp >> 6) & 0x3f)),
            buf[2] = (char) (0x80 | (cp & 0x3f)), k = 3;
        else
            buf[0] = (char) (0xf0 | cp >> 18), buf[1] = (char) (0x80 | ((cp >> 12) & 0x3f)),
            buf[2] = (char) (0x80 | ((cp >> 6) & 0x3f)), buf[3] = (char) (0x80 | (cp & 0x3f)), k = 4;
        if (n + k >= size)
            return s_decode_failed (out);
        memcpy (out + n, buf, k);
        n += k;
    }
    out[n] = '\0';
    return n;
}

/*  A key's hash, eight bytes at a time (a byte at a time, it was a tenth
    of the validation's time): every byte counts, so keys made to share
    one need more than a common beginning and end. */
static uint32_t
s_hash (const char *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    uint64_t word;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy (&word, p, 8);
        h = (h ^ word) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    if (len > 0) {
        /*  The last 1 to 7 bytes, in loads of fixed size (a memcpy of a
            variable length is a call). */
        if (len >= 4) {
            uint32_t lo, hi;
            memcpy (&lo, p, 4);
            memcpy (&hi, p + len - 4, 4);
            word = lo | (uint64_t) hi << 32;
        }
        else
            word = (uint64_t) (unsigned char) p[0] | (uint64_t) (unsigned char) p[len / 2] << 8
                 | (uint64_t) (unsigned char) p[len - 1] << 16;
        h = (h ^ word) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    h *= 0xc4ceb9fe1a85ec53ull;
    return (uint32_t) (h ^ (h >> 32));
}

/*  True if two checked key spans are the same key once decoded. */
static bool
s_same_key (const s_span_t *a, const s_span_t *b)
{
    if (!a->escaped && !b->escaped)
        return a->len == b->len && memcmp (a->ptr, b->ptr, a->len) == 0;
    static char da[S_KEY_MAX], db[S_KEY_MAX];
    size_t la = s_decode (a, da, sizeof da), lb = s_decode (b, db, sizeof db);
    if (la == (size_t) -1 || lb == (size_t) -1)
        return a->len == b->len && memcmp (a->ptr, b->ptr, a->len) == 0;
    return la == lb && memcmp (da, db, la) == 0;
}

static uint32_t
s_key_hash (const s_span_t *key)
{
    if (!key->escaped)
        return s_hash (key->ptr, key->len);
    static char decoded[S_KEY_MAX];
    size_t len = s_decode (key, decoded, sizeof decoded);
    return len == (size_t) -1? s_hash (key->ptr, key->len): s_hash (decoded, len);
}

static int
s_number (s_scan_t *s)
{
    const char *start = s->p;
    bool real = false;
    if (*s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return s_fail (s, start, "invalid number");
    if (*s->p == '0')
        s->p++;
    else
    if (*s->p >= '1' && *s->p <= '9')
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    else
        return s_fail (s, start, "invalid number");
    if (s->p < s->end && *s->p == '.') {
        real = true;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return s_fail (s, start, "invalid number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        real = true;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return s_fail (s, start, "invalid number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    char text[64];
    size_t len = (size_t) (s->p - start);
    if (!real) {
        /*  jansson refuses integers beyond 64 bits. */
        if (len > 20 || (len >= 19 && (snprintf (text, sizeof text, "%.*s", (int) len, start),
                                       errno = 0, strtoll (text, NULL, 10), errno == ERANGE)))
            return s_fail (s, start, "too big integer");
    }
    else {
        /*  jansson refuses reals beyond a double's range, however they are
            written (a long text is copied to the heap to be read). */
        char *copy = len < sizeof text? text: malloc (len + 1);
        if (!copy)
            return s_fail (s, start, "out of memory");
        memcpy (copy, start, len);
        copy[len] = '\0';
        errno = 0;
        double v = strtod (copy, NULL);
        bool overflow = errno == ERANGE && isinf (v);
        if (copy != text)
            free (copy);
        if (overflow)
            return s_fail (s, start, "real number overflow");
    }
    return 0;
}

static int s_value (s_scan_t *s, char *kind, bool data);

/*  A checked value's span: a string's inside of its quotes (escapes noted
    for decoding), anything else as it stands. */
static s_span_t
s_value_span (const char *value, size_t len)
{
    if (*value == '"')
        return (s_span_t) { value + 1, len - 2, memchr (value + 1, '\\', len - 2) != NULL };
    return (s_span_t) { value, len, false };
}

/*  Which CloudEvents attribute (A_*) an unescaped top-level key names, or
    -1: by its length first (a loop of compares over the eight names was a
    twentieth of the validation's time). */
static int
s_attr_index (const s_span_t *key)
{
    int a = -1;
    switch (key->len) {
        case 2:  a = A_ID; break;
        case 4:  a = key->ptr[0] == 't'? (key->ptr[1] == 'y'? A_TYPE: A_TIME): A_DATA; break;
        case 6:  a = A_SOURCE; break;
        case 7:  a = A_SUBJECT; break;
        case 11: a = A_SPECVERSION; break;
        case 15: a = A_DATACONTENTTYPE; break;
        default: return -1;
    }
    return memcmp (key->ptr, s_attrs[a].name, key->len) == 0? a: -1;
}

/*  An object; with data, the top-level data, whose members are noted. */
static int
s_object (s_scan_t *s, bool data)
{
    const char *open = s->p++;
    size_t base = s->key_count;
    bool top = s->depth == 1;
    if (data) {
        s->member_count = 0;
        s->members_all = true;
    }
    s_ws (s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    while (true) {
        if (!s_at (s, '"'))
            return s_fail (s, s->p, "string or '}' expected");
        s_span_t key;
        if (s_string (s, &key) != 0)
            return -1;
        uint32_t hash = s_key_hash (&key);
        for (size_t i = base; i < s->key_count; i++)
            if (s->keys[i].hash == hash && s_same_key (&s->keys[i].key, &key))
                return s_fail (s, key.ptr - 1, "duplicate object key");
        if (s->key_count == S_KEYS_MAX)
            return s_fail (s, key.ptr - 1, "too many object keys open at once");
        s->keys[s->key_count++] = (s_key_t) { hash, key };
        if (!s_at (s, ':'))
            return s_fail (s, s->p, "':' expected");
        s->p++;
        s_ws_maybe (s);
        const char *value_start = s->p;
        char kind;
        int attr = top && !key.escaped? s_attr_index (&key): -1;
        if (s_value (s, &kind, attr == A_DATA) != 0)
            return -1;
        if (data) {
            if (s->member_count < S_MEMBERS_MAX)
                s->members[s->member_count++] = (s_member_t) { key, value_start, (size_t) (s->p - value_start) };
            else
                s->members_all = false;
        }
        if (attr >= 0) {
            s->has_attr[attr] = true;
            s->attr_kind[attr] = kind;
            s->attrs[attr] = s_value_span (value_start, (size_t) (s->p - value_start));
        }
        else
        if (top && !key.escaped && key.len == 11 && memcmp (key.ptr, "data_base64", 11) == 0)
            s_has_base64 = true;
        if (s_at (s, ',')) {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            s->key_count = base;
            return 0;
        }
        return s_fail (s, s->p < s->end? s->p: open, "',' or '}' expected");
    }
}

static int
s_array (s_scan_t *s)
{
    const char *open = s->p++;
    s_ws (s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    while (true) {
        s_ws_maybe (s);
        char kind;
        if (s_value (s, &kind, false) != 0)
            return -1;
        if (s_at (s, ',')) {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        return s_fail (s, s->p < s->end? s->p: open, "',' or ']' expected");
    }
}

static int
s_literal (s_scan_t *s, const char *word)
{
    size_t len = strlen (word);
    if ((size_t) (s->end - s->p) < len || memcmp (s->p, word, len) != 0)
        return s_fail (s, s->p, "invalid token");
    s->p += len;
    return 0;
}

/*  A value; data says it is the top-level data's (s_object). */
static int
s_value (s_scan_t *s, char *kind, bool data)
{
    if (s->p >= s->end)
        return s_fail (s, s->p, "unexpected end of input");
    char c = *s->p;
    *kind = c;
    switch (c) {
        case '{': {
            if (++s->depth > S_DEPTH_MAX)
                return s_fail (s, s->p, "too deeply nested");
            int rc = s_object (s, data);
            s->depth--;
            return rc;
        }
        case '[': {
            if (++s->depth > S_DEPTH_MAX)
                return s_fail (s, s->p, "too deeply nested");
            int rc = s_array (s);
            s->depth--;
            return rc;
        }
        case '"': {
            s_span_t span;
            return s_string (s, &span);
        }
        case 't': return s_literal (s, "true");
        case 'f': return s_literal (s, "false");
        case 'n': return s_literal (s, "null");
        default:
            if (c == '-' || (c >= '0' && c <= '9'))
                return s_number (s);
            return s_fail (s, s->p, "invalid token");
    }
}

//  --------------------------------------------------------------------------
//  Walking inside a checked value

/*  Skips the checked value at p; returns the position after it. */
static const char *
s_skip (const char *p, const char *end)
{
    char c = *p;
    if (c == '"') {
        p++;
        while ((p = s_quote_end (p, end)) < end && *p == '\\')
            p += 2;
        return p + 1;
    }
    if (c == '{' || c == '[') {
        /*  Only quotes and brackets matter in a checked value: the rest is
            stepped over in a tight loop (a lookup walks whole members). */
        int depth = 0;
        while ((p = s_mark_end (p, end)) < end) {
            switch (*p) {
                case '"':
                    p = s_skip (p, end);
                    continue;
                case '{':
                case '[':
                    depth++;
                    break;
                default:
                    if (--depth == 0)
                        return p + 1;
            }
            p++;
        }
        return end;
    }
    /*  A number or a literal: up to what may follow a value. */
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r'
           && *p != '\n')
        p++;
    return p;
}

static const char *
s_skip_ws (const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/*  The value at a dotted path below a checked value (object members by
    key, array elements by a decimal index), as a span over the raw value
    with its first byte in *kind; false if a step does not exist. */
static bool
s_lookup (const char *value, const char *end, const char *path, s_span_t *out, char *kind)
{
    const char *p = value;
    const char *cursor = path;
    while (*cursor) {
        const char *dot = strchr (cursor, '.');
        size_t seg_len = dot? (size_t) (dot - cursor): strlen (cursor);
        if (seg_len == 0)
            return false;
        if (*p == '{') {
            p = s_skip_ws (p + 1, end);
            bool found = false;
            while (p < end && *p == '"') {
                const char *key_start = p + 1;
                const char *after = s_skip (p, end);
                s_span_t key = { key_start, (size_t) (after - key_start - 1), false };
                key.escaped = memchr (key.ptr, '\\', key.len) != NULL;
                s_span_t want = { cursor, seg_len, false };
                p = s_skip_ws (after, end);
                p = s_skip_ws (p + 1, end);      /* ':' */
                if (s_same_key (&key, &want)) {
                    found = true;
                    break;
                }
                p = s_skip_ws (s_skip (p, end), end);
                if (p < end && *p == ',')
                    p = s_skip_ws (p + 1, end);
            }
            if (!found)
                return false;
        }
        else
        if (*p == '[') {
            if (seg_len > 9 || strspn (cursor, "0123456789") < seg_len)
                return false;
            unsigned long index = strtoul (cursor, NULL, 10);
            p = s_skip_ws (p + 1, end);
            if (p < end && *p == ']')
                return false;
            for (unsigned long i = 0; i < index; i++) {
                p = s_skip_ws (s_skip (p, end), end);
                if (p >= end || *p != ',')
                    return false;
                p = s_skip_ws (p + 1, end);
            }
        }
        else
            return false;
        cursor += seg_len;
        if (*cursor == '.')
            cursor++;
    }
    *kind = *p;
    *out = s_value_span (p, (size_t) (s_skip (p, end) - p));
    return true;
}

/*  As s_lookup below the top-level data, starting from the members the
    checking pass noted: the first step of the path is found among them,
    the rest (if any) is walked inside that member's value. */
static bool
s_lookup_data (const s_scan_t *s, const char *path, s_span_t *out, char *kind)
{
    const char *dot = strchr (path, '.');
    size_t seg_len = dot? (size_t) (dot - path): strlen (path);
    if (seg_len == 0)
        return false;
    if (!s->members_all)
        return s_lookup (s->attrs[A_DATA].ptr, s->attrs[A_DATA].ptr + s->attrs[A_DATA].len, path, out, kind);
    s_span_t want = { path, seg_len, false };
    for (size_t i = 0; i < s->member_count; i++) {
        const s_member_t *m = &s->members[i];
        if (!s_same_key (&m->key, &want))
            continue;
        if (dot && dot[1])
            return s_lookup (m->value, m->value + m->len, dot + 1, out, kind);
        *kind = *m->value;
        *out = s_value_span (m->value, m->len);
        return true;
    }
    return false;
}

/*  True for an object or array holding nothing but white space. */
static bool
s_empty_container (const s_span_t *span)
{
    const char *p = s_skip_ws (span->ptr + 1, span->ptr + span->len);
    return p < span->ptr + span->len && (*p == '}' || *p == ']');
}

//  --------------------------------------------------------------------------
//  The rules

/*  The first C0 control character or DEL in text, or NULL. Identifiers and
    idempotency keys hold none, so the separator of the encoded key cannot
    appear inside its parts and a NUL cannot end a part early. */
static const char *
s_control_char (const char *text, size_t len)
{
    /*  Eight bytes at a time while none is one (a byte below 0x20 or 0x7f
        sets its top bit in the sum; bytes from 0x80 on are left out). */
    const uint64_t ones = 0x0101010101010101ull, tops = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy (&w, text + i, 8);
        uint64_t del = w ^ (0x7f * ones);
        if ((((w - 0x20 * ones) | (del - ones)) & ~w & tops) != 0)
            break;
    }
    for (; i < len; i++)
        if ((unsigned char) text[i] < 0x20 || text[i] == 0x7f)
            return text + i;
    return NULL;
}

/*  One plain address: local@domain, printable ASCII without spaces or the
    specials that would make it more than one mailbox. */
static bool
s_is_email (const char *text, size_t len)
{
    const char *at = memchr (text, '@', len);
    if (len < 3 || len > 254 || !at || at == text || at == text + len - 1
    ||  memchr (at + 1, '@', (size_t) (text + len - at - 1)) || at - text > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c <= 0x20 || c >= 0x7f || strchr ("<>,;:\"()[]\\", c))
            return false;
    }
    return true;
}

static const char *
s_kind_name (char kind, const s_span_t *span)
{
    switch (kind) {
        case '{': return "an object";
        case '[': return "an array";
        case '"': return "a string";
        case 't':
        case 'f': return "a boolean";
        case 'n': return "null";
        default:
            return memchr (span->ptr, '.', span->len) || memchr (span->ptr, 'e', span->len)
                || memchr (span->ptr, 'E', span->len)? "a number": "an integer";
    }
}

static bool
s_is_integer (char kind, const s_span_t *span)
{
    return (kind == '-' || (kind >= '0' && kind <= '9'))
        && !memchr (span->ptr, '.', span->len) && !memchr (span->ptr, 'e', span->len)
        && !memchr (span->ptr, 'E', span->len);
}

static int
s_required_field (bool found, char kind, const s_span_t *span, const char *path, unsigned types,
                  validate_result_t *result)
{
    if (!found || kind == 'n')
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: required field missing", path);
    if ((kind == '"' && span->len == 0) || ((kind == '[' || kind == '{') && s_empty_container (span)))
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: required field is empty", path);
    if (types == 0)
        return 0;
    bool number = kind == '-' || (kind >= '0' && kind <= '9');
    bool ok = ((types & HERALD_FIELD_STRING) && kind == '"')
           || ((types & HERALD_FIELD_NUMBER) && number)
           || ((types & HERALD_FIELD_INTEGER) && s_is_integer (kind, span))
           || ((types & HERALD_FIELD_BOOLEAN) && (kind == 't' || kind == 'f'))
           || ((types & HERALD_FIELD_OBJECT) && kind == '{')
           || ((types & HERALD_FIELD_ARRAY) && kind == '[');
    if (!ok && (types & HERALD_FIELD_EMAIL) && kind == '"') {
        char text[300];
        size_t len = s_decode (span, text, sizeof text);
        ok = len != (size_t) -1 && s_is_email (text, len);
    }
    if (ok)
        return 0;
    if (types == HERALD_FIELD_EMAIL && kind == '"')
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: must be an email address", path);
    char words[160];
    herald_field_types_describe (types, words, sizeof words);
    return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: must be %s, got %s", path, words,
                     s_kind_name (kind, span));
}

/*  A top-level string attribute into out. */
static int
s_attribute (s_scan_t *s, int a, char *out, size_t size, bool required, validate_result_t *result)
{
    const char *name = s_attrs[a].name;
    out[0] = '\0';
    if (!s->has_attr[a]) {
        if (required)
            return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: required CloudEvents attribute missing", name);
        return 0;
    }
    if (s->attr_kind[a] != '"')
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: must be a string", name);
    size_t len = s_decode (&s->attrs[a], out, size);
    if (len == (size_t) -1)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: longer than %zu characters", name, size - 1);
    if (required && len == 0)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: must not be empty", name);
    const char *control = s_control_char (out, len);
    if (control)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: contains a control character (U+%04X)",
                         name, (unsigned) (unsigned char) *control);
    return 0;
}

/*  Appends len bytes of part at out[at], cut to what size leaves room for,
    and terminates: the idempotency key is built on every publish, without
    the cost of a formatted print. The next position. */
static size_t
s_put (char *out, size_t size, size_t at, const char *part, size_t len)
{
    if (at + 1 >= size)
        return at;
    if (len > size - 1 - at)
        len = size - 1 - at;
    memcpy (out + at, part, len);
    out[at + len] = '\0';
    return at + len;
}

/*  value in decimal, as "%lld" prints it (out holds at least 22 bytes). */
static size_t
s_decimal (char *out, long long value)
{
    if (value >= 0)
        return hp_render_uint ((uint64_t) value, out);
    out[0] = '-';
    return 1 + hp_render_uint (0ULL - (unsigned long long) value, out + 1);
}

int
validate_event (const herald_config_t *config, const char *body, size_t len, validate_result_t *result)
{
    memset (result, 0, offsetof (validate_result_t, reason));
    result->reason[0] = '\0';
    result->id[0] = result->source[0] = result->dedup_key[0] = '\0';
    result->type_index = -1;
    if (len > config->broker.max_event_bytes) {
        char size[32], limit[32];
        snprintf (size, sizeof size, "%zu", len);
        snprintf (limit, sizeof limit, "%zu", config->broker.max_event_bytes);
        return s_refuse (result, HP_CODE_TOO_LARGE,
                         "event is %s bytes, larger than broker.max_event_bytes (%s)", size, limit);
    }
    s_scan_t s = { .start = body, .p = body, .end = body + len, .keys = s_keys, .members = s_members };
    s_has_base64 = false;
    s_ws (&s);
    char kind = 0;
    int rc = s.p < s.end && (*s.p == '{' || *s.p == '[')? s_value (&s, &kind, false)
           : s_fail (&s, s.p, "'[' or '{' expected");
    if (rc == 0) {
        s_ws (&s);
        if (s.p < s.end)
            rc = s_fail (&s, s.p, "end of file expected");
    }
    if (rc != 0) {
        int line = 1, column = 1;
        for (const char *p = body; p < s.error_at && p < s.end; p++) {
            if (*p == '\n')
                line++, column = 1;
            else
                column++;
        }
        return s_refuse (result, HP_CODE_BAD_REQUEST, "invalid JSON at line %d column %d: %s", line, column,
                         s.error);
    }
    if (kind != '{')
        return s_refuse (result, HP_CODE_INVALID_EVENT, "event must be a JSON object (CloudEvents envelope)");
    char specversion[16], type[HERALD_NAME_MAX], scratch[512];
    if (s_attribute (&s, A_SPECVERSION, specversion, sizeof specversion, true, result) != 0)
        return -1;
    if (strcmp (specversion, "1.0") != 0)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "specversion: '%s' is not supported (expected 1.0)",
                         specversion);
    if (s_attribute (&s, A_ID, result->id, sizeof result->id, true, result) != 0
    ||  s_attribute (&s, A_SOURCE, result->source, sizeof result->source, true, result) != 0
    ||  s_attribute (&s, A_TYPE, type, sizeof type, true, result) != 0
    ||  s_attribute (&s, A_SUBJECT, scratch, sizeof scratch, false, result) != 0
    ||  s_attribute (&s, A_TIME, scratch, sizeof scratch, false, result) != 0
    ||  s_attribute (&s, A_DATACONTENTTYPE, scratch, sizeof scratch, false, result) != 0)
        return -1;
    if (scratch[0] && !strstr (scratch, "json"))
        return s_refuse (result, HP_CODE_INVALID_EVENT,
                         "datacontenttype: '%s' is not supported (data must be JSON)", scratch);
    result->type_index = herald_config_event_index (config, type);
    if (result->type_index < 0)
        return s_refuse (result, HP_CODE_UNKNOWN_TYPE, "type: unknown event type '%s'", type);
    const herald_event_type_t *rules = &config->events[result->type_index];
    if (s_has_base64)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data_base64: binary data is not supported");
    if (!s.has_attr[A_DATA])
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data: required for type '%s'", type);
    if (s.attr_kind[A_DATA] != '{')
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data: must be a JSON object");
    for (int i = 0; i < rules->required_count; i++) {
        s_span_t field;
        char field_kind = 0;
        bool found = s_lookup_data (&s, rules->required[i], &field, &field_kind);
        if (s_required_field (found, field_kind, &field, rules->required[i], rules->required_types[i],
                              result) != 0)
            return -1;
    }
    /*  The idempotency key, encoded so that two different events never make
        the same key: "key" US type US (s|n) US value for a key field (the
        string "1042" and the number 1042 differ), "ce" US source US id for
        the CloudEvents pair. US (0x1f) cannot appear in a part: type names
        are identifiers and the parts hold no control character. */
    if (!rules->key[0]) {
        char *k = result->dedup_key;
        size_t n = s_put (k, sizeof result->dedup_key, 0, "ce\x1f", 3);
        n = s_put (k, sizeof result->dedup_key, n, result->source, strlen (result->source));
        n = s_put (k, sizeof result->dedup_key, n, "\x1f", 1);
        s_put (k, sizeof result->dedup_key, n, result->id, strlen (result->id));
        return 0;
    }
    s_span_t key;
    char key_kind = 0;
    if (!s_lookup_data (&s, rules->key, &key, &key_kind))
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key field missing", rules->key);
    char value[VALIDATE_KEY_VALUE_MAX + 8];
    size_t value_len;
    char form;
    if (key_kind == '"') {
        value_len = s_decode (&key, value, sizeof value);
        if (value_len == (size_t) -1 || value_len > VALIDATE_KEY_VALUE_MAX) {
            /*  Too long to decode here: its length decoded, for the message. */
            static char whole[1 << 16];
            size_t whole_len = s_decode (&key, whole, sizeof whole);
            return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key longer than %d bytes"
                             " (%zu)", rules->key, VALIDATE_KEY_VALUE_MAX,
                             whole_len == (size_t) -1? key.len: whole_len);
        }
        form = 's';
    }
    else
    if (s_is_integer (key_kind, &key)) {
        char text[32];                  /* an integer's text is 20 bytes at most (s_number) */
        memcpy (text, key.ptr, key.len);
        text[key.len] = '\0';
        value_len = s_decimal (value, strtoll (text, NULL, 10));
        form = 'n';
    }
    else
        return s_refuse (result, HP_CODE_INVALID_EVENT,
                         "data.%s: idempotency key must be a string or an integer", rules->key);
    if (value_len == 0)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key is empty", rules->key);
    const char *control = s_control_char (value, value_len);
    if (control)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key contains a control"
                         " character (U+%04X)", rules->key, (unsigned) (unsigned char) *control);
    char *k = result->dedup_key;
    char middle[3] = { '\x1f', form, '\x1f' };
    size_t n = s_put (k, sizeof result->dedup_key, 0, "key\x1f", 4);
    n = s_put (k, sizeof result->dedup_key, n, rules->name, strlen (rules->name));
    n = s_put (k, sizeof result->dedup_key, n, middle, sizeof middle);
    s_put (k, sizeof result->dedup_key, n, value, value_len);
    return 0;
}
