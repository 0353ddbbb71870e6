/*  fuzz_template: libFuzzer target for the template renderer
    (workers/template.c). The input is a template, then "\n--\n", then a
    CloudEvents envelope as JSON (when it does not parse, or there is none,
    a fixed event stands in).
    Properties:
    - hd_template_check and hd_template_render agree on the syntax: a
      template that renders passes the check, one the check refuses does
      not render; a refusal names the problem;
    - only inserted values are escaped, never the template's own text, and
      the escaping holds whatever the event holds: in HEADER mode nothing
      inserted brings a control character, in HTML mode nothing inserted
      brings one of & < > " ' unescaped;
    - for each field of the event's data, "{{data.FIELD}}" renders in JSON
      mode to JSON text equal to the value, in NONE mode to the string
      itself (less NUL bytes) or the value's JSON text. */
#include <jansson.h>

#include "fuzz_util.h"
#include "template.h"

static const char *s_default_event =
    "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"shop\",\"type\":\"order.confirmed\","
    "\"data\":{\"order_id\":1042,\"total\":19.99,\"paid\":true,\"note\":null,"
    "\"customer\":{\"name\":\"Ann <ann@x>\\r\\nBcc: e@x\",\"email\":\"ann@example.com\"},"
    "\"items\":[{\"sku\":\"A-1\",\"qty\":2}]}}";

static bool
s_has_control (const char *text)
{
    for (const char *p = text; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static void
s_check_render (const char *tmpl, const json_t *event)
{
    char check_err[256] = "";
    int checked = hd_template_check (tmpl, check_err, sizeof check_err);
    fuzz_check (checked == 0 || check_err[0], "check refused without saying why");
    static const hd_escape_t modes[] = { HD_ESCAPE_NONE, HD_ESCAPE_HTML, HD_ESCAPE_HEADER,
                                         HD_ESCAPE_JSON };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char err[256] = "";
        char *out = hd_template_render (tmpl, event, modes[m], err, sizeof err);
        if (!out) {
            fuzz_check (err[0] != '\0', "render refused without saying why");
            continue;
        }
        fuzz_check (checked == 0, "rendered a template the check refuses (%s)", check_err);
        if (modes[m] == HD_ESCAPE_HEADER && !s_has_control (tmpl))
            fuzz_check (!s_has_control (out), "HEADER mode let a control character in: %s", out);
        if (modes[m] == HD_ESCAPE_HTML && !strpbrk (tmpl, "<>\"'"))
            fuzz_check (!strpbrk (out, "<>\"'"), "HTML mode let a special character in: %s", out);
        free (out);
    }
}

/*  "{{data.KEY}}" for each member of data whose key is a path segment. */
static void
s_check_fields (const json_t *event)
{
    const json_t *data = json_object_get (event, "data");
    const char *key;
    const json_t *value;
    json_object_foreach ((json_t *) data, key, value) {
        if (!*key || strpbrk (key, ".{}| \t") || s_has_control (key) || strlen (key) > 200)
            continue;
        char tmpl[256];
        snprintf (tmpl, sizeof tmpl, "{{data.%s}}", key);
        char err[256];
        char *out = hd_template_render (tmpl, event, HD_ESCAPE_JSON, err, sizeof err);
        fuzz_check (out != NULL, "%s: %s", tmpl, err);
        json_error_t jerr;
        json_t *back = json_loads (out, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        fuzz_check (back != NULL, "%s in JSON mode is not JSON (%s): %s", tmpl, jerr.text, out);
        fuzz_check (json_equal (back, value), "%s in JSON mode is not the value: %s", tmpl, out);
        json_decref (back);
        free (out);

        out = hd_template_render (tmpl, event, HD_ESCAPE_NONE, err, sizeof err);
        fuzz_check (out != NULL, "%s: %s", tmpl, err);
        if (json_is_string (value)) {
            /*  The string less its NUL bytes. */
            const char *s = json_string_value (value);
            size_t len = json_string_length (value), o = 0;
            for (size_t i = 0; i < len; i++)
                if (s[i]) {
                    fuzz_check (out[o] == s[i], "%s in NONE mode differs at %zu", tmpl, o);
                    o++;
                }
            fuzz_check (out[o] == '\0', "%s in NONE mode is longer than the value", tmpl);
        }
        else
        if (json_is_null (value))
            fuzz_check (out[0] == '\0', "%s: null renders as %s", tmpl, out);
        free (out);

        out = hd_template_render (tmpl, event, HD_ESCAPE_HEADER, err, sizeof err);
        fuzz_check (out != NULL && !s_has_control (out), "%s in HEADER mode: control character",
                    tmpl);
        free (out);
        out = hd_template_render (tmpl, event, HD_ESCAPE_HTML, err, sizeof err);
        fuzz_check (out != NULL && !strpbrk (out, "<>\"'"), "%s in HTML mode: special character",
                    tmpl);
        free (out);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    size_t tmpl_len, rest;
    fuzz_split (data, size, "\n--\n", &tmpl_len, &rest);
    /*  Templates are C strings (hd_template_load refuses NUL bytes). */
    if (memchr (data, '\0', tmpl_len))
        return 0;
    char *tmpl = fuzz_strndup (data, tmpl_len);
    json_t *event = NULL;
    if (rest < size)
        event = json_loadb ((const char *) data + rest, size - rest,
                            JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (!json_is_object (event)) {
        json_decref (event);
        event = json_loads (s_default_event, 0, NULL);
    }
    s_check_render (tmpl, event);
    s_check_fields (event);
    json_decref (event);
    free (tmpl);
    return 0;
}
