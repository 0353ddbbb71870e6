/*  herald_json: dotted paths into an event. */
#include <stdlib.h>
#include <string.h>

#include "herald_json.h"

#define S_SEGMENT_MAX   256     /* longest path segment (one key) */

const json_t *
herald_json_lookup (const json_t *root, const char *path)
{
    const json_t *node = root;
    const char *cursor = path;
    while (node && *cursor) {
        const char *dot = strchr (cursor, '.');
        size_t len = dot ? (size_t) (dot - cursor) : strlen (cursor);
        char key [S_SEGMENT_MAX];
        if (len == 0 || len >= sizeof key)
            return NULL;
        memcpy (key, cursor, len);
        key [len] = '\0';
        if (json_is_object (node))
            node = json_object_get (node, key);
        else
        if (json_is_array (node)) {
            if (len > 9 || strspn (key, "0123456789") != len)
                return NULL;
            node = json_array_get (node, strtoul (key, NULL, 10));
        }
        else
            return NULL;
        cursor += len;
        if (*cursor == '.')
            cursor++;
    }
    return node;
}
