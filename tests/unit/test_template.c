/*  test_template: {{ path }} rendering, escaping modes, errors, loading files. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"
#include "herald_json.h"
#include "template.h"

static json_t *
s_event (void)
{
    json_error_t jerr;
    json_t *event = json_loads (
        "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"/shop\","
        "\"type\":\"order.confirmed\",\"time\":\"2026-11-21T10:00:00Z\","
        "\"data\":{\"order_id\":1042,\"total\":19.99,\"paid\":true,\"coupon\":null,"
        "\"customer\":{\"name\":\"Ada <Lovelace> & \\\"Co\\\" 'x'\",\"email\":\"ada@example.com\"},"
        "\"items\":[{\"sku\":\"A-1\",\"qty\":2},{\"sku\":\"B-2\",\"qty\":1}],"
        "\"evil\":\"X\\r\\nBcc: evil@example.com\\u0001\\ttab\","
        "\"quote\":\"say \\\"hi\\\"\\n\\\\ bye\"}}", 0, &jerr);
    cr_assert_not_null (event, "%s", jerr.text);
    return event;
}

static char *
s_render (const char *tmpl, hd_escape_t mode)
{
    json_t *event = s_event ();
    char err [256] = "";
    char *text = hd_template_render (tmpl, event, mode, err, sizeof err);
    json_decref (event);
    cr_assert_not_null (text, "render of \"%s\" failed: %s", tmpl, err);
    return text;
}

static void
s_render_fails (const char *tmpl, const char *expected_err)
{
    json_t *event = s_event ();
    char err [256] = "";
    char *text = hd_template_render (tmpl, event, HD_ESCAPE_NONE, err, sizeof err);
    json_decref (event);
    cr_assert_null (text, "\"%s\" rendered as \"%s\"", tmpl, text);
    cr_assert_str_eq (err, expected_err);
}

Test (template, plain_substitution)
{
    char *text = s_render ("Order {{data.order_id}} for {{ data.customer.email }} ({{id}}, {{type}})",
                           HD_ESCAPE_NONE);
    cr_assert_str_eq (text, "Order 1042 for ada@example.com (evt-1, order.confirmed)");
    free (text);
}

Test (template, text_without_placeholders_and_lone_braces)
{
    char *text = s_render ("no fields } here { nor }} there", HD_ESCAPE_NONE);
    cr_assert_str_eq (text, "no fields } here { nor }} there");
    free (text);
    text = s_render ("", HD_ESCAPE_NONE);
    cr_assert_str_eq (text, "");
    free (text);
}

Test (template, nested_paths_array_index_and_scalars)
{
    char *text = s_render ("{{data.items.1.sku}} x{{data.items.0.qty}} {{data.total}} "
                           "{{data.paid}} [{{data.coupon}}]", HD_ESCAPE_NONE);
    cr_assert_str_eq (text, "B-2 x2 19.99 true []");
    free (text);
}

Test (template, objects_render_as_compact_json)
{
    char *text = s_render ("{{data.items.0}}", HD_ESCAPE_NONE);
    cr_assert_str_eq (text, "{\"sku\":\"A-1\",\"qty\":2}");
    free (text);
}

Test (template, missing_field_names_the_placeholder)
{
    s_render_fails ("Hi {{data.customer.nmae}}", "{{data.customer.nmae}}: no such field in the event");
    s_render_fails ("{{data.items.7.sku}}", "{{data.items.7.sku}}: no such field in the event");
    s_render_fails ("{{data.items.x}}", "{{data.items.x}}: no such field in the event");
    s_render_fails ("{{data.order_id.deeper}}", "{{data.order_id.deeper}}: no such field in the event");
}

Test (template, unclosed_braces_give_the_offset)
{
    s_render_fails ("Dear customer, {{data.customer.name", "unclosed {{ at offset 15");
    char err [128];
    cr_assert_eq (hd_template_check ("ok {{a}} then {{ b", err, sizeof err), -1);
    cr_assert_str_eq (err, "unclosed {{ at offset 14");
    cr_assert_eq (hd_template_check ("ok {{ a.b }} {{c}}", err, sizeof err), 0);
}

Test (template, malformed_paths_are_errors)
{
    s_render_fails ("{{}}", "{{}} at offset 0: not a field path");
    s_render_fails ("x {{ a..b }}", "{{ a..b }} at offset 2: not a field path");
    s_render_fails ("{{a b}}", "{{a b}} at offset 0: not a field path");
    s_render_fails ("{{.a}}", "{{.a}} at offset 0: not a field path");
}

Test (template, html_mode_escapes_values_not_the_template)
{
    char *text = s_render ("<p class=\"n\">{{data.customer.name}}</p>", HD_ESCAPE_HTML);
    cr_assert_str_eq (text, "<p class=\"n\">Ada &lt;Lovelace&gt; &amp; &quot;Co&quot; &#39;x&#39;</p>");
    free (text);
}

Test (template, header_mode_removes_line_breaks_and_controls)
{
    char *text = s_render ("Subject: {{data.evil}}", HD_ESCAPE_HEADER);
    cr_assert_str_eq (text, "Subject: X  Bcc: evil@example.com  tab");
    cr_assert_null (strpbrk (text, "\r\n"));
    free (text);
}

Test (template, nul_inside_a_value_never_ends_up_in_a_header)
{
    json_error_t jerr;
    json_t *event = json_loads ("{\"data\":{\"n\":\"a\\u0000b\\r\\nc\"}}", JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null (event, "%s", jerr.text);
    char err [128];
    char *text = hd_template_render ("[{{data.n}}]", event, HD_ESCAPE_HEADER, err, sizeof err);
    cr_assert_not_null (text, "%s", err);
    cr_assert_str_eq (text, "[a b  c]");
    free (text);
    text = hd_template_render ("[{{data.n}}]", event, HD_ESCAPE_JSON, err, sizeof err);
    cr_assert_str_eq (text, "[\"a\\u0000b\\r\\nc\"]");
    free (text);
    json_decref (event);
}

Test (template, json_mode_produces_valid_json)
{
    char *text = s_render ("{\"order\": {{data.order_id}}, \"name\": {{data.customer.name}}, "
                           "\"quote\": {{data.quote}}, \"evil\": {{data.evil}}, "
                           "\"items\": {{data.items}}, \"total\": {{data.total}}, "
                           "\"paid\": {{data.paid}}, \"coupon\": {{data.coupon}}}", HD_ESCAPE_JSON);
    json_error_t jerr;
    json_t *parsed = json_loads (text, 0, &jerr);
    cr_assert_not_null (parsed, "not JSON (%s): %s", jerr.text, text);
    json_t *event = s_event ();
    json_t *data = json_object_get (event, "data");
    cr_assert_eq (json_integer_value (json_object_get (parsed, "order")), 1042);
    cr_assert (json_equal (json_object_get (parsed, "name"),
                           json_object_get (json_object_get (data, "customer"), "name")));
    cr_assert (json_equal (json_object_get (parsed, "quote"), json_object_get (data, "quote")));
    cr_assert (json_equal (json_object_get (parsed, "evil"), json_object_get (data, "evil")));
    cr_assert (json_equal (json_object_get (parsed, "items"), json_object_get (data, "items")));
    cr_assert (json_equal (json_object_get (parsed, "total"), json_object_get (data, "total")));
    cr_assert (json_is_true (json_object_get (parsed, "paid")));
    cr_assert (json_is_null (json_object_get (parsed, "coupon")));
    json_decref (event);
    json_decref (parsed);
    free (text);
}

Test (template, json_quote_escapes)
{
    char *quoted = hd_json_quote ("a\"b\\c\n\x01", 7);
    cr_assert_str_eq (quoted, "\"a\\\"b\\\\c\\n\\u0001\"");
    free (quoted);
}

Test (template, lookup)
{
    json_t *event = s_event ();
    cr_assert_str_eq (json_string_value (herald_json_lookup (event, "data.items.0.sku")), "A-1");
    cr_assert_null (herald_json_lookup (event, "data.items.-1"));
    cr_assert_null (herald_json_lookup (event, "nothing"));
    json_decref (event);
}

Test (template, load_reads_files_and_names_the_path_on_error)
{
    char dir [64];
    cr_assert_eq (srv_make_dir (dir, sizeof dir), 0);
    char path [128], err [256];
    snprintf (path, sizeof path, "%s/ok.txt", dir);
    cr_assert_eq (srv_write_file (path, "Hello {{data.customer.name}}\n"), 0);
    char *text = hd_template_load (path, err, sizeof err);
    cr_assert_not_null (text, "%s", err);
    cr_assert_str_eq (text, "Hello {{data.customer.name}}\n");
    free (text);

    snprintf (path, sizeof path, "%s/missing.txt", dir);
    cr_assert_null (hd_template_load (path, err, sizeof err));
    cr_assert (strstr (err, path), "error does not name the path: %s", err);
    cr_assert (strstr (err, "No such file"), "%s", err);

    snprintf (path, sizeof path, "%s/broken.txt", dir);
    cr_assert_eq (srv_write_file (path, "Hello {{data.customer.name"), 0);
    cr_assert_null (hd_template_load (path, err, sizeof err));
    cr_assert (strstr (err, path) && strstr (err, "unclosed {{ at offset 6"), "%s", err);

    snprintf (path, sizeof path, "%s/big.txt", dir);
    FILE *file = fopen (path, "wb");
    cr_assert_not_null (file);
    for (int i = 0; i < HD_TEMPLATE_MAX_FILE / 1024 + 1; i++) {
        char block [1024];
        memset (block, 'x', sizeof block);
        fwrite (block, 1, sizeof block, file);
    }
    fclose (file);
    cr_assert_null (hd_template_load (path, err, sizeof err));
    cr_assert (strstr (err, path) && strstr (err, "larger than"), "%s", err);

    cr_assert_null (hd_template_load (dir, err, sizeof err));
    cr_assert (strstr (err, "not a regular file"), "%s", err);
    srv_remove_dir (dir);
}

Test (template, fallback_for_missing_or_null_fields)
{
    json_t *event = json_loads ("{\"data\": {\"name\": null, \"city\": \"Paris\"}}", 0, NULL);
    char err[256] = "";
    char *text = hd_template_render ("Hi {{data.name | \"there\"}} from {{ data.city | \"?\" }},"
                                     " {{data.zip | \"\"}}.", event, HD_ESCAPE_NONE, err, sizeof err);
    cr_assert_not_null (text, "%s", err);
    cr_assert_str_eq (text, "Hi there from Paris, .");
    free (text);
    text = hd_template_render ("<b>{{data.zip | \"<none>\"}}</b>", event, HD_ESCAPE_HTML, err, sizeof err);
    cr_assert_str_eq (text, "<b>&lt;none&gt;</b>", "a fallback is escaped like a value");
    free (text);
    text = hd_template_render ("{\"zip\": {{data.zip | \"n/a\"}}}", event, HD_ESCAPE_JSON, err, sizeof err);
    cr_assert_str_eq (text, "{\"zip\": \"n/a\"}");
    free (text);
    cr_assert_null (hd_template_render ("{{data.zip | n/a}}", event, HD_ESCAPE_NONE, err, sizeof err));
    cr_assert (strstr (err, "fallback"), "%s", err);
    json_decref (event);
}
