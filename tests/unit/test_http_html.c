/*  test_http_html: the admin page's escaping and encoding (http_html).
    Markup characters and quotes become references, so a value is inert
    between tags and inside a quoted attribute; NUL bytes become U+FFFD;
    UTF-8 passes untouched. URL encoding keeps only unreserved bytes. Form
    fields decode '+' and %XX, refuse %00 and bad escapes, and say when a
    value does not fit. Durations, sizes and times read as documented. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "http_html.h"

static char *
s_escaped (const char *text)
{
    herald_text_t out = { 0 };
    http_html_escape (&out, text);
    cr_assert_not (out.failed);
    return out.data? out.data: strdup ("");
}

Test (http_html, escape_makes_markup_and_quotes_inert)
{
    char *out = s_escaped ("<script>alert(\"x\")</script> & 'single' > done");
    cr_assert_str_eq (out, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;single&#39; &gt; done");
    free (out);
    /*  An attribute breakout attempt stays inside the value. */
    out = s_escaped ("\" onmouseover=\"alert(1)");
    cr_assert_str_eq (out, "&quot; onmouseover=&quot;alert(1)");
    cr_assert_null (strchr (out, '"'));
    free (out);
    out = s_escaped ("'><img src=x onerror=alert(2)>");
    cr_assert_null (strchr (out, '<'));
    cr_assert_null (strchr (out, '>'));
    cr_assert_null (strchr (out, '\''));
    free (out);
}

Test (http_html, escape_keeps_plain_text_and_utf8)
{
    char *out = s_escaped ("Ada Lovelace, caf\xC3\xA9 \xE2\x82\xAC 19.90");
    cr_assert_str_eq (out, "Ada Lovelace, caf\xC3\xA9 \xE2\x82\xAC 19.90");
    free (out);
    out = s_escaped ("");
    cr_assert_str_eq (out, "");
    free (out);
    herald_text_t nothing = { 0 };
    http_html_escape (&nothing, NULL);
    cr_assert_null (nothing.data);
}

Test (http_html, escape_n_replaces_nul_bytes)
{
    herald_text_t out = { 0 };
    http_html_escape_n (&out, "a\0<b", 4);
    cr_assert_str_eq (out.data, "a\xEF\xBF\xBD&lt;b");
    free (out.data);
}

Test (http_html, escape_is_escaped_once_not_twice)
{
    /*  An already escaped text is escaped again: what the data holds is what shows. */
    char *out = s_escaped ("&lt;");
    cr_assert_str_eq (out, "&amp;lt;");
    free (out);
}

Test (http_html, url_encode_keeps_only_unreserved)
{
    herald_text_t out = { 0 };
    http_url_encode (&out, "a.b-c_d~e/f?g=h&i j\"<\xC3\xA9");
    cr_assert_str_eq (out.data, "a.b-c_d~e%2Ff%3Fg%3Dh%26i%20j%22%3C%C3%A9");
    free (out.data);
}

Test (http_html, form_value_decodes_fields)
{
    const char *body = "csrf=abc123&task_id=1a2b.email&note=hello+world%21&empty=&flag";
    size_t len = strlen (body);
    char out[64];
    cr_assert_eq (http_form_value (body, len, "csrf", out, sizeof out), 6);
    cr_assert_str_eq (out, "abc123");
    cr_assert_eq (http_form_value (body, len, "task_id", out, sizeof out), 10);
    cr_assert_str_eq (out, "1a2b.email");
    cr_assert_eq (http_form_value (body, len, "note", out, sizeof out), 12);
    cr_assert_str_eq (out, "hello world!");
    cr_assert_eq (http_form_value (body, len, "empty", out, sizeof out), 0);
    cr_assert_str_eq (out, "");
    cr_assert_eq (http_form_value (body, len, "flag", out, sizeof out), 0);
    cr_assert_eq (http_form_value (body, len, "missing", out, sizeof out), -1);
    /*  A name that is a prefix of another is not it. */
    cr_assert_eq (http_form_value ("csrf2=x", 7, "csrf", out, sizeof out), -1);
    /*  The first occurrence wins. */
    cr_assert_eq (http_form_value ("a=1&a=2", 7, "a", out, sizeof out), 1);
    cr_assert_str_eq (out, "1");
    /*  Only len bytes count. */
    cr_assert_eq (http_form_value ("a=12345", 4, "a", out, sizeof out), 2);
    cr_assert_str_eq (out, "12");
}

Test (http_html, form_value_refuses_bad_escapes_nul_and_overflow)
{
    char out[8];
    cr_assert_eq (http_form_value ("a=%zz", 5, "a", out, sizeof out), -1);
    cr_assert_eq (http_form_value ("a=%4", 4, "a", out, sizeof out), -1);
    cr_assert_eq (http_form_value ("a=%", 3, "a", out, sizeof out), -1);
    cr_assert_eq (http_form_value ("a=x%00y", 7, "a", out, sizeof out), -1);
    cr_assert_eq (http_form_value ("a=1234567", 9, "a", out, sizeof out), 7);
    cr_assert_eq (http_form_value ("a=12345678", 10, "a", out, sizeof out), -1);
    cr_assert_eq (http_form_value (NULL, 0, "a", out, sizeof out), -1);
    /*  Names are decoded too. */
    cr_assert_eq (http_form_value ("t%61sk=1", 8, "task", out, sizeof out), 1);
}

Test (http_html, figures_read_as_documented)
{
    char buf[64];
    cr_assert_str_eq (http_html_duration (850, buf, sizeof buf), "850 ms");
    cr_assert_str_eq (http_html_duration (12345, buf, sizeof buf), "12.3 s");
    cr_assert_str_eq (http_html_duration (245000, buf, sizeof buf), "4 min 05 s");
    cr_assert_str_eq (http_html_duration ((3 * 3600 + 7 * 60) * 1000LL, buf, sizeof buf), "3 h 07 min");
    cr_assert_str_eq (http_html_duration ((2 * 86400 + 4 * 3600) * 1000LL, buf, sizeof buf), "2 d 04 h");
    cr_assert_str_eq (http_html_duration (-5, buf, sizeof buf), "0 ms");
    cr_assert_str_eq (http_html_bytes (512, buf, sizeof buf), "512 B");
    cr_assert_str_eq (http_html_bytes (12 * 1024 + 100, buf, sizeof buf), "12.1 KiB");
    cr_assert_str_eq (http_html_bytes (64LL << 20, buf, sizeof buf), "64.0 MiB");
    cr_assert_str_eq (http_html_bytes (3LL << 30, buf, sizeof buf), "3.0 GiB");
    cr_assert_str_eq (http_html_time (1764511387000LL, buf, sizeof buf), "2025-11-30 14:03:07Z");
    cr_assert_str_eq (http_html_time (0, buf, sizeof buf), "-");
}
