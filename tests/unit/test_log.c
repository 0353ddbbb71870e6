/*  Unit tests: common/herald_log — logfmt and JSON lines: same keys, proper
    escaping, cut lines that stay one valid JSON object, the format chosen
    by HERALD_LOG_FORMAT or by the program (--log-format). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald_log.h"

//  2026-11-21T10:00:00.123Z
#define S_WALL_MS   INT64_C (1795255200123)

static herald_log_line_t
s_line (const char *msg, const char *fields)
{
    return (herald_log_line_t) {
        .wall_ms = S_WALL_MS, .level = HERALD_LOG_INFO, .proc = "broker", .pid = 42,
        .msg = msg, .fields = fields
    };
}

//  Renders as JSON and parses it back: one object, one line.
static json_t *
s_json (const herald_log_line_t *line, char *buf, size_t size)
{
    size_t len = herald_log_render (HERALD_LOG_JSON, line, buf, size);
    cr_assert_gt (len, 0);
    cr_assert_eq (len, strlen (buf));
    cr_assert_lt (len, size);
    cr_assert_eq (buf[len - 1], '\n', "ends with a newline: %s", buf);
    cr_assert_null (memchr (buf, '\n', len - 1), "one line: %s", buf);
    json_error_t err;
    json_t *root = json_loads (buf, 0, &err);
    cr_assert_not_null (root, "not JSON (%s): %s", err.text, buf);
    cr_assert (json_is_object (root));
    return root;
}

static const char *
s_str (json_t *root, const char *key)
{
    return json_string_value (json_object_get (root, key));
}

Test (log, logfmt_line_keeps_its_shape)
{
    char buf[512];
    char quoted[64];
    char fields[128];
    snprintf (fields, sizeof fields, "channel=email error=%s",
              herald_log_quote ("no \"route\" to host", quoted, sizeof quoted));
    herald_log_line_t line = s_line ("worker registered", fields);
    size_t len = herald_log_render (HERALD_LOG_LOGFMT, &line, buf, sizeof buf);
    cr_assert_str_eq (buf, "ts=2026-11-21T10:00:00.123Z level=info proc=broker pid=42 "
                           "msg=\"worker registered\" channel=email error=\"no \\\"route\\\" to host\"\n");
    cr_assert_eq (len, strlen (buf));
}

Test (log, json_line_has_the_same_keys_in_the_same_order)
{
    char buf[1024];
    char quoted[64];
    char fields[256];
    snprintf (fields, sizeof fields, "channel=email attempt=3 error=%s empty=\"\"",
              herald_log_quote ("no \"route\" to\\ host\nat all", quoted, sizeof quoted));
    herald_log_line_t line = s_line ("worker registered", fields);
    json_t *root = s_json (&line, buf, sizeof buf);
    const char *keys[] = { "ts", "level", "proc", "pid", "msg", "channel", "attempt", "error", "empty" };
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach (root, key, value) {
        cr_assert_lt (i, sizeof keys / sizeof keys[0], "extra key %s", key);
        cr_expect_str_eq (key, keys[i], "key %zu", i);
        i++;
    }
    cr_expect_eq (i, sizeof keys / sizeof keys[0]);
    cr_expect_str_eq (s_str (root, "ts"), "2026-11-21T10:00:00.123Z");
    cr_expect_str_eq (s_str (root, "level"), "info");
    cr_expect_str_eq (s_str (root, "proc"), "broker");
    cr_expect_eq (json_integer_value (json_object_get (root, "pid")), 42);
    cr_expect_str_eq (s_str (root, "msg"), "worker registered");
    cr_expect_str_eq (s_str (root, "channel"), "email");
    cr_expect_str_eq (s_str (root, "attempt"), "3", "values stay strings, as in logfmt");
    cr_expect_str_eq (s_str (root, "error"), "no \"route\" to\\ host\nat all", "logfmt quoting undone");
    cr_expect_str_eq (s_str (root, "empty"), "");
    cr_expect_null (json_object_get (root, "truncated"));
    json_decref (root);
}

Test (log, json_escapes_controls_quotes_and_bad_utf8)
{
    char buf[1024];
    //  msg is raw text: quotes, backslash, tab, CR, a control byte, DEL,
    //  valid UTF-8 (é, €, 😀), and invalid bytes (a lone 0xff, a cut sequence)
    const char *msg = "say \"hi\"\\ \t\r\x01\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xff bad\xe2\x82";
    herald_log_line_t line = s_line (msg, "weird=\xc3\x28 k\"ey=v");
    json_t *root = s_json (&line, buf, sizeof buf);
    cr_expect_str_eq (s_str (root, "msg"),
                      "say \"hi\"\\ \t\r\x01\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd bad"
                      "\xef\xbf\xbd\xef\xbf\xbd");
    cr_expect_str_eq (s_str (root, "weird"), "\xef\xbf\xbd(");
    cr_expect_str_eq (s_str (root, "k\"ey"), "v", "a key is escaped too");
    cr_expect_not_null (strstr (buf, "\\u0001"), "%s", buf);
    json_decref (root);
}

Test (log, json_renames_fields_that_clash_with_the_line_keys)
{
    char buf[512];
    herald_log_line_t line = s_line ("started", "msg=other pid=7 bare child=broker");
    json_t *root = s_json (&line, buf, sizeof buf);
    cr_expect_str_eq (s_str (root, "msg"), "started");
    cr_expect_eq (json_integer_value (json_object_get (root, "pid")), 42);
    cr_expect_str_eq (s_str (root, "_msg"), "other");
    cr_expect_str_eq (s_str (root, "_pid"), "7");
    cr_expect_str_eq (s_str (root, "bare"), "", "a key without a value");
    cr_expect_str_eq (s_str (root, "child"), "broker");
    json_decref (root);
}

Test (log, a_cut_json_line_is_still_one_object)
{
    static char fields[6000];
    static char big[3000];
    memset (big, 'x', sizeof big - 1);
    size_t used = 0;
    for (int i = 0; i < 3; i++)
        used += (size_t) snprintf (fields + used, sizeof fields - used, "f%d=%.1500s ", i, big);
    char buf[2048];
    for (size_t size = 256; size <= sizeof buf; size += 61) {
        herald_log_line_t line = s_line (big, fields);
        json_t *root = s_json (&line, buf, size);
        cr_expect (json_is_true (json_object_get (root, "truncated")), "size %zu: %s", size, buf);
        json_decref (root);
    }
    //  a quote or escape at the cut never breaks the string
    memset (big, '"', sizeof big - 1);
    for (size_t size = 256; size <= 400; size++) {
        herald_log_line_t line = s_line (big, NULL);
        json_t *root = s_json (&line, buf, size);
        json_decref (root);
    }
    //  the logfmt form is cut too, and still ends with its newline
    herald_log_line_t line = s_line ("m", fields);
    size_t len = herald_log_render (HERALD_LOG_LOGFMT, &line, buf, 300);
    cr_expect_eq (len, 299);
    cr_expect_eq (buf[298], '\n');
    cr_expect_eq (herald_log_render (HERALD_LOG_JSON, &line, buf, 255), 0, "too small a buffer");
}

Test (log, format_names)
{
    herald_log_format_t format = HERALD_LOG_LOGFMT;
    cr_expect_eq (herald_log_format_parse ("JSON", &format), 0);
    cr_expect_eq (format, HERALD_LOG_JSON);
    cr_expect_eq (herald_log_format_parse ("logfmt", &format), 0);
    cr_expect_eq (format, HERALD_LOG_LOGFMT);
    cr_expect_eq (herald_log_format_parse ("xml", &format), -1);
    cr_expect_eq (herald_log_format_parse (NULL, &format), -1);
    cr_expect_str_eq (herald_log_format_name (HERALD_LOG_JSON), "json");
}

//  Runs fn with stderr going to a file; returns what it wrote (static).
static const char *
s_capture_stderr (void (*fn) (void))
{
    static char out[8192];
    char path[] = "/tmp/herald-test-log-XXXXXX";
    int fd = mkstemp (path);
    cr_assert_geq (fd, 0);
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    fn ();
    dup2 (saved, STDERR_FILENO);
    close (saved);
    ssize_t n = pread (fd, out, sizeof out - 1, 0);
    out[n > 0? n: 0] = '\0';
    close (fd);
    unlink (path);
    return out;
}

static void
s_log_from_env (void)
{
    setenv ("HERALD_LOG_FORMAT", "json", 1);
    unsetenv ("HERALD_LOG_LEVEL");
    herald_log_init ("test", HERALD_LOG_INFO);
    herald_debug ("not shown", NULL);
    herald_info ("hello", "who=%s n=%d", "world", 5);
    herald_log_set_format (HERALD_LOG_LOGFMT);          //  --log-format wins
    herald_info ("again", NULL);
    setenv ("HERALD_LOG_FORMAT", "yaml", 1);
    herald_log_init ("test", HERALD_LOG_INFO);
    unsetenv ("HERALD_LOG_FORMAT");
}

Test (log, format_from_the_environment_and_the_program)
{
    const char *out = s_capture_stderr (s_log_from_env);
    const char *second = strchr (out, '\n');
    cr_assert_not_null (second, "%s", out);
    json_error_t err;
    json_t *root = json_loadb (out, (size_t) (second - out), 0, &err);
    cr_assert_not_null (root, "first line is JSON: %s", out);
    cr_expect_str_eq (s_str (root, "msg"), "hello");
    cr_expect_str_eq (s_str (root, "who"), "world");
    cr_expect_str_eq (s_str (root, "n"), "5");
    json_decref (root);
    cr_expect (strncmp (second + 1, "ts=", 3) == 0, "then logfmt: %s", out);
    cr_expect_not_null (strstr (second + 1, "msg=again"), "%s", out);
    cr_expect_not_null (strstr (out, "level=warn proc=test"), "a bad HERALD_LOG_FORMAT is reported: %s", out);
    cr_expect_not_null (strstr (out, "value=yaml"), "%s", out);
    cr_expect_eq (herald_log_format (), HERALD_LOG_LOGFMT);
}
