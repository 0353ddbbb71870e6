/*  config_fields: the types a required event field may be given in the
    configuration (events.*.required: [order_id: string|number, items: array]). */
#include <stdio.h>
#include <string.h>

#include "herald_config.h"

static const struct {
    const char *word;               /* in the config */
    const char *words;              /* in messages: "a string" */
    unsigned flag;
} s_types[] = {
    { "string", "a string", HERALD_FIELD_STRING },
    { "number", "a number", HERALD_FIELD_NUMBER },
    { "integer", "an integer", HERALD_FIELD_INTEGER },
    { "boolean", "a boolean", HERALD_FIELD_BOOLEAN },
    { "object", "an object", HERALD_FIELD_OBJECT },
    { "array", "an array", HERALD_FIELD_ARRAY },
    { "email", "an email address", HERALD_FIELD_EMAIL },
};
#define S_TYPE_COUNT (sizeof s_types / sizeof s_types[0])

int
herald_field_types_parse (const char *text, unsigned *types, char *err, size_t errlen)
{
    *types = 0;
    const char *p = text;
    while (true) {
        while (*p == ' ')
            p++;
        const char *end = p;
        while (*end && *end != '|' && *end != ' ')
            end++;
        size_t len = (size_t) (end - p);
        bool known = false;
        for (size_t i = 0; i < S_TYPE_COUNT && !known; i++)
            if (strlen (s_types[i].word) == len && memcmp (s_types[i].word, p, len) == 0) {
                *types |= s_types[i].flag;
                known = true;
            }
        if (!known) {
            snprintf (err, errlen, "unknown field type '%.*s' (expected string, number, integer,"
                      " boolean, object, array or email, joined with |)", (int) (len > 40? 40: len), p);
            return -1;
        }
        while (*end == ' ')
            end++;
        if (*end == '\0')
            return 0;
        if (*end != '|') {
            snprintf (err, errlen, "bad field type list '%.60s' (join types with |)", text);
            return -1;
        }
        p = end + 1;
    }
}

const char *
herald_field_types_describe (unsigned types, char *buf, size_t size)
{
    size_t n = 0;
    int listed = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < S_TYPE_COUNT; i++) {
        if (!(types & s_types[i].flag))
            continue;
        int w = snprintf (buf + n, size - n, "%s%s", listed? " or ": "", s_types[i].words);
        if (w < 0 || (size_t) w >= size - n)
            break;
        n += (size_t) w;
        listed++;
    }
    return buf;
}
