/*  template: {{ dotted.path }} substitution from a CloudEvents envelope, with
    escaping chosen by where the text goes (mail body, HTML, header, JSON body).
    Only inserted values are escaped, never the template's own text. */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include <stddef.h>
#include <jansson.h>

#define HD_TEMPLATE_MAX_FILE    (1024 * 1024)       /* template files larger than this are refused */
#define HD_TEMPLATE_MAX_OUTPUT  (8 * 1024 * 1024)   /* rendered text larger than this is an error */

typedef enum {
    HD_ESCAPE_NONE = 0,     /* values inserted as is (text/plain bodies) */
    HD_ESCAPE_HTML,         /* & < > " ' become entities */
    HD_ESCAPE_HEADER,       /* CR, LF, NUL and other control characters become a space */
    HD_ESCAPE_JSON          /* strings become JSON string literals, other values JSON text */
} hd_escape_t;

/*  Renders tmpl with values looked up in envelope ({{data.customer.email}},
    {{id}}, {{data.items.0.sku}}). Strings are inserted as their text, numbers
    and booleans as JSON text, null as "" (JSON mode: null), objects and arrays
    as compact JSON. {{path | "text"}} inserts text when the field is missing
    or null; without a fallback a missing field is an error. Returns the text
    (caller frees), or NULL with err naming the problem: "{{data.x}}: no such
    field in the event", "unclosed {{ at offset 17". */
char *
    hd_template_render (const char *tmpl, const json_t *envelope, hd_escape_t mode,
                        char *err, size_t errlen);

/*  Checks tmpl's syntax (balanced braces, well-formed paths) without an event.
    Returns 0, or -1 with err filled as hd_template_render does. */
int
    hd_template_check (const char *tmpl, char *err, size_t errlen);

/*  Reads a template file (at most HD_TEMPLATE_MAX_FILE bytes, no NUL bytes).
    Returns its text (caller frees), or NULL with err naming the path. */
char *
    hd_template_load (const char *path, char *err, size_t errlen);

/*  text (len bytes) as a JSON string literal with quotes. Caller frees; NULL
    if out of memory. */
char *
    hd_json_quote (const char *text, size_t len);

#endif
