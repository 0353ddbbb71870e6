/*  fuzz_redact: libFuzzer target for the redaction of texts that get logged
    or reported (common/herald_redact.c). The first input byte picks the
    output buffer size (1 byte to a task's error text, HP_MAX_TEXT); the
    rest is the text, as bytes from a peer (herald_redact_bytes) and as a C
    string (herald_redact).
    Properties (herald_redact.h): the output fits the buffer and is one
    line of printable UTF-8: no C0 control, DEL, C1 control, bidirectional
    control, BOM or line/paragraph separator, and no trailing space; when
    not cut, redacting the output again does not hide the rest of a secret
    the first pass cut short (s_check_second_pass). */
#include "fuzz_util.h"
#include "herald_proto.h"
#include "herald_redact.h"

static const size_t s_sizes[] = { 1, 2, 3, 4, 5, 6, 8, 16, 40, 100, 256, HP_MAX_TEXT };
#define S_SIZES (sizeof s_sizes / sizeof s_sizes[0])

static void
s_check_line (const char *out, size_t size, const char *what)
{
    fuzz_check (fuzz_terminated (out, size), "%s: not terminated within %zu bytes", what, size);
    size_t len = strlen (out);
    fuzz_check (len < size, "%s: %zu bytes in a buffer of %zu", what, len, size);
    fuzz_check (len == 0 || out[len - 1] != ' ', "%s: trailing space", what);
    const unsigned char *p = (const unsigned char *) out;
    for (size_t i = 0; i < len; ) {
        uint32_t c;
        size_t n = fuzz_utf8_length (p + i, len - i, &c);
        fuzz_check (n > 0, "%s: not UTF-8 at byte %zu (0x%02x) of %s", what, i, p[i], out);
        fuzz_check (c >= 0x20 && c != 0x7f && !(c >= 0x80 && c <= 0x9f), "%s: control U+%04X at %zu",
                    what, (unsigned) c, i);
        fuzz_check (c != 0x061c && c != 0x200e && c != 0x200f && !(c >= 0x202a && c <= 0x202e)
                    && !(c >= 0x2066 && c <= 0x2069) && c != 0xfeff && c != 0x2028 && c != 0x2029,
                    "%s: U+%04X kept at %zu", what, (unsigned) c, i);
        i += n;
    }
}

/*  A second pass must not hide text that directly follows a whole mark of
    the first: that text was the rest of a secret the first pass cut short
    ("Bearer eyJ...!Uz..." showed "***!Uz..."). It may hide more elsewhere:
    the mark itself can make a short word long enough to look like
    credentials ("Basic x=***"), which shows no secret. */
static void
s_check_second_pass (const char *first, const char *second)
{
    size_t len1 = strlen (first), len2 = strlen (second);
    size_t prefix = 0;
    while (prefix < len1 && prefix < len2 && first[prefix] == second[prefix])
        prefix++;
    if (prefix == len1 && prefix == len2)
        return;
    bool after_mark = prefix >= 3 && memcmp (first + prefix - 3, HERALD_REDACT_MARK, 3) == 0
                   && prefix < len1 && first[prefix] != '*';
    fuzz_check (!after_mark, "a second pass hides what follows a mark (the first one showed the"
                " rest of a secret):\n  %s\ninto\n  %s", first, second);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t out_size = s_sizes[data[0] % S_SIZES];
    data++;
    size--;
    unsigned char *text = fuzz_copy (data, size);
    char *out = malloc (out_size);
    fuzz_check (out != NULL, "out of memory");
    fuzz_check (herald_redact_bytes (text, size, out, out_size) == out, "did not return out");
    s_check_line (out, out_size, "herald_redact_bytes");

    /*  When nothing was cut: a second pass on the output. */
    size_t len = strlen (out);
    bool cut = size > HERALD_REDACT_SCAN_MAX
            || (len >= 3 && memcmp (out + len - 3, "...", 3) == 0)
            || len + 1 >= out_size;
    if (!cut) {
        char *again = malloc (out_size);
        fuzz_check (again != NULL, "out of memory");
        herald_redact (out, again, out_size);
        s_check_second_pass (out, again);
        free (again);
    }

    /*  As a C string (read up to its NUL, or past the scan limit). */
    char *str = fuzz_strndup (data, size);
    herald_redact (str, out, out_size);
    s_check_line (out, out_size, "herald_redact");
    free (str);
    free (out);
    free (text);
    return 0;
}
