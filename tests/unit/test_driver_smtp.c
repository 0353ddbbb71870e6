/*  test_driver_smtp: the smtp driver (libcurl multi in a zmq_poll loop)
    against a real SMTP server (tests/servers/smtp_server.py, aiosmtpd) that
    stores what it receives; the stored mails are parsed and checked here,
    and compared with what the file driver writes for the same task. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "driver.h"
#include "server_helper.h"

#define S_MAX_RESULTS 16

static char s_dir [64];             /* per-test scratch directory */
static char s_out [128];            /* where the server stores mails */
static pid_t s_server = -1;

typedef struct {
    int calls;
    char task_id [HP_MAX_ID + 1];
    uint32_t attempt;
    uint64_t lease;
    hd_result_t result;
    hd_result_t all [S_MAX_RESULTS];    /* every result, in completion order */
    char all_ids [S_MAX_RESULTS][HP_MAX_ID + 1];
} s_outcome_t;

static void
s_complete (void *ctx, const char *task_id, uint32_t attempt, uint64_t lease, const hd_result_t *result)
{
    s_outcome_t *outcome = ctx;
    cr_assert_lt (outcome->calls, S_MAX_RESULTS);
    snprintf (outcome->all_ids [outcome->calls], sizeof outcome->all_ids [0], "%s", task_id);
    outcome->all [outcome->calls] = *result;
    outcome->calls++;
    snprintf (outcome->task_id, sizeof outcome->task_id, "%s", task_id);
    outcome->attempt = attempt;
    outcome->lease = lease;
    outcome->result = *result;
}

static void
s_setup (void)
{
    cr_assert_eq (srv_make_dir (s_dir, sizeof s_dir), 0);
    snprintf (s_out, sizeof s_out, "%s/out", s_dir);
    char path [160];
    snprintf (path, sizeof path, "%s/text.txt", s_dir);
    cr_assert_eq (srv_write_file (path,
        "Hello {{data.customer.name}},\n\nyour order {{data.order_id}} is confirmed.\n"
        "Note: {{data.note}}\n"), 0);
    snprintf (path, sizeof path, "%s/html.html", s_dir);
    cr_assert_eq (srv_write_file (path,
        "<html><body><p>Hello {{ data.customer.name }},</p>\n"
        "<p>Order <b>{{data.order_id}}</b></p><p>{{data.note}}</p></body></html>\n"), 0);
    unsetenv ("HERALD_SMTP_PASSWORD");
}

static void
s_teardown (void)
{
    srv_stop (s_server);
    s_server = -1;
    srv_remove_dir (s_dir);
}

TestSuite (driver_smtp, .init = s_setup, .fini = s_teardown, .timeout = 60);

/*  Starts the SMTP server with extra arguments; returns its port. */
static int
s_start_server (const char *const extra [])
{
    char port_file [160];
    snprintf (port_file, sizeof port_file, "%s/smtp.port", s_dir);
    const char *args [16] = { "--out-dir", s_out, "--quiet" };
    int argc = 3;
    for (int i = 0; extra && extra [i]; i++)
        args [argc++] = extra [i];
    args [argc] = NULL;
    int port = 0;
    s_server = srv_start ("smtp_server.py", port_file, args, &port);
    cr_assert_gt (s_server, 0, "smtp_server.py did not start");
    return port;
}

static void
s_channel (herald_channel_t *channel, int port, herald_tls_mode_t tls)
{
    memset (channel, 0, sizeof *channel);
    snprintf (channel->name, sizeof channel->name, "email");
    channel->driver = HERALD_DRIVER_SMTP;
    channel->capacity = 1;
    herald_smtp_config_t *smtp = &channel->smtp;
    snprintf (smtp->url, sizeof smtp->url, "%s://127.0.0.1:%d",
              tls == HERALD_TLS_IMPLICIT ? "smtps" : "smtp", port);
    smtp->tls = tls;
    snprintf (smtp->from, sizeof smtp->from, "Shop <shop@example.com>");
    snprintf (smtp->to, sizeof smtp->to, "{{data.customer.email}}");
    snprintf (smtp->subject, sizeof smtp->subject, "Order {{data.order_id}} for {{data.customer.name}}");
    snprintf (smtp->text_template, sizeof smtp->text_template, "%s/text.txt", s_dir);
    snprintf (smtp->html_template, sizeof smtp->html_template, "%s/html.html", s_dir);
    smtp->verify_peer = true;
    smtp->timeout_ms = 10000;
}

/*  A CloudEvents envelope (caller frees). */
static char *
s_event (const char *name, const char *email, const char *note)
{
    json_t *event = json_pack ("{s:s, s:s, s:s, s:s, s:{s:i, s:{s:s, s:s}, s:s}}",
        "specversion", "1.0", "id", "evt-1", "source", "/shop", "type", "order.confirmed",
        "data", "order_id", 1042, "customer", "name", name, "email", email, "note", note);
    cr_assert_not_null (event);
    char *text = json_dumps (event, JSON_COMPACT);
    json_decref (event);
    return text;
}

static void *
s_open (const herald_channel_t *channel, s_outcome_t *outcome)
{
    char err [HERALD_ERR_MAX] = "";
    void *driver = hd_smtp_ops.open (channel, s_complete, outcome, err, sizeof err);
    cr_assert_not_null (driver, "open failed: %s", err);
    return driver;
}

/*  Runs the poll loop the worker runs until outcome has want results, or
    timeout_ms passes. */
static void
s_run (void *driver, s_outcome_t *outcome, int want, int timeout_ms)
{
    int64_t deadline = srv_now_ms () + timeout_ms;
    while (outcome->calls < want) {
        int64_t left = deadline - srv_now_ms ();
        cr_assert_gt (left, 0, "only %d of %d mails completed in time", outcome->calls, want);
        zmq_pollitem_t items [64];
        long timeout = 1000;
        int count = hd_smtp_ops.poll_items (driver, items, 64, &timeout);
        if (timeout < 0 || timeout > left)
            timeout = (long) left;
        int rc = zmq_poll (items, count, timeout);
        cr_assert_geq (rc, 0, "zmq_poll: %s", zmq_strerror (zmq_errno ()));
        hd_smtp_ops.progress (driver, items, count);
    }
}

/*  Starts one task; does not wait. */
static void
s_start_task (void *driver, const char *task_id, uint32_t attempt, const char *event)
{
    hd_task_t task = { .task_id = task_id, .attempt = attempt, .lease = 7000 + attempt, .channel = "email", .event_json = event, .event_len = strlen (event) };
    cr_assert_eq (hd_smtp_ops.start (driver, &task), 0);
}

/*  Delivers one task through the poll loop; returns the outcome. */
static s_outcome_t
s_deliver (void *driver, s_outcome_t *outcome, const char *task_id, uint32_t attempt,
           const char *event)
{
    memset (outcome, 0, sizeof *outcome);
    s_start_task (driver, task_id, attempt, event);
    s_run (driver, outcome, 1, 20000);
    cr_assert_eq (outcome->calls, 1, "complete() was not called exactly once");
    cr_assert_str_eq (outcome->task_id, task_id);
    cr_assert_eq (outcome->attempt, attempt);
    cr_assert_eq (outcome->lease, 7000 + attempt, "the lease is echoed");
    cr_assert_eq (hd_smtp_ops.in_progress (driver), 0);
    return *outcome;
}

/*  The stored mail number seq, waited for (the server writes it before it
    answers 250, so it is there when the driver returns DONE). */
static char *
s_mail (int seq)
{
    char path [192];
    snprintf (path, sizeof path, "%s/%06d.eml", s_out, seq);
    cr_assert_eq (srv_wait_file (path, 5000), 0, "mail %d was not stored", seq);
    char *mail = srv_read_file (path, NULL);
    cr_assert_not_null (mail);
    return mail;
}

static json_t *
s_sidecar (int seq)
{
    char path [192];
    snprintf (path, sizeof path, "%s/%06d.json", s_out, seq);
    json_error_t jerr;
    json_t *side = json_load_file (path, 0, &jerr);
    cr_assert_not_null (side, "%s: %s", path, jerr.text);
    return side;
}

static bool
s_mail_exists (int seq)
{
    char path [192];
    snprintf (path, sizeof path, "%s/%06d.eml", s_out, seq);
    return access (path, F_OK) == 0;
}

/*  The value of header name in the header block of mail, unfolded (RFC
    5322: CRLF before a space or tab goes), or NULL. Caller frees. */
static char *
s_header (const char *mail, const char *name)
{
    const char *end = strstr (mail, "\r\n\r\n");
    cr_assert_not_null (end, "no header/body separator");
    size_t name_len = strlen (name);
    const char *line = mail;
    while (line && line < end) {
        if (strncasecmp (line, name, name_len) == 0 && line [name_len] == ':') {
            const char *value = line + name_len + 1;
            while (*value == ' ')
                value++;
            const char *eol = strstr (value, "\r\n");
            while (eol [2] == ' ' || eol [2] == '\t')
                eol = strstr (eol + 2, "\r\n");
            char *unfolded = strndup (value, (size_t) (eol - value));
            char *o = unfolded;
            for (const char *p = unfolded; *p; p++)
                if (*p != '\r' && *p != '\n')
                    *o++ = *p;
            *o = '\0';
            return unfolded;
        }
        line = strstr (line, "\r\n");
        if (line)
            line += 2;
    }
    return NULL;
}

/*  True if a line of the top-level header block starts with prefix. */
static bool
s_header_line_starts (const char *mail, const char *prefix)
{
    const char *end = strstr (mail, "\r\n\r\n");
    size_t len = strlen (prefix);
    for (const char *line = mail; line && line < end; ) {
        if (strncasecmp (line, prefix, len) == 0)
            return true;
        line = strstr (line, "\r\n");
        if (line)
            line += 2;
    }
    return false;
}

/*  Decodes quoted-printable text (soft breaks removed). Caller frees. */
static char *
s_qp_decode (const char *text, size_t len)
{
    char *out = malloc (len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text [i] == '=' && i + 2 < len + 1 && text [i + 1] == '\r' && text [i + 2] == '\n')
            i += 2;
        else
        if (text [i] == '=' && i + 2 < len) {
            char hex [3] = { text [i + 1], text [i + 2], 0 };
            out [o++] = (char) strtol (hex, NULL, 16);
            i += 2;
        }
        else
            out [o++] = text [i];
    }
    out [o] = '\0';
    return out;
}

typedef struct {
    char *type;         /* Content-Type of the part */
    char *encoding;     /* Content-Transfer-Encoding */
    char *body;         /* decoded */
    size_t longest;     /* longest encoded line */
} s_part_t;

/*  Splits a multipart mail into its parts (at most max). Returns the count. */
static int
s_parts (const char *mail, s_part_t *parts, int max)
{
    char *type = s_header (mail, "Content-Type");
    cr_assert_not_null (type);
    cr_assert (strncmp (type, "multipart/alternative;", 22) == 0, "Content-Type: %s", type);
    char *b = strstr (type, "boundary=\"");
    cr_assert_not_null (b, "no boundary in %s", type);
    b += 10;
    char delimiter [200];
    snprintf (delimiter, sizeof delimiter, "\r\n--%.*s", (int) strcspn (b, "\""), b);
    free (type);
    char closing [210];
    snprintf (closing, sizeof closing, "%s--\r\n", delimiter);
    cr_assert_not_null (strstr (mail, closing), "no closing delimiter %s", closing + 2);

    int count = 0;
    const char *cursor = strstr (mail, delimiter);
    while (cursor && count < max) {
        cursor += strlen (delimiter);
        if (strncmp (cursor, "--", 2) == 0)
            break;
        cursor += 2;                /* CRLF after the delimiter */
        const char *next = strstr (cursor, delimiter);
        cr_assert_not_null (next);
        const char *body = strstr (cursor, "\r\n\r\n");
        cr_assert (body && body < next);
        char *headers = strndup (cursor, (size_t) (body - cursor + 4));
        parts [count].type = s_header (headers, "Content-Type");
        parts [count].encoding = s_header (headers, "Content-Transfer-Encoding");
        free (headers);
        body += 4;
        parts [count].body = s_qp_decode (body, (size_t) (next - body));
        parts [count].longest = 0;
        for (const char *line = body; line < next; ) {
            const char *eol = strstr (line, "\r\n");
            size_t line_len = (size_t) ((eol && eol < next ? eol : next) - line);
            if (line_len > parts [count].longest)
                parts [count].longest = line_len;
            line = eol ? eol + 2 : next;
        }
        count++;
        cursor = next;
    }
    return count;
}

static void
s_parts_free (s_part_t *parts, int count)
{
    for (int i = 0; i < count; i++) {
        free (parts [i].type);
        free (parts [i].encoding);
        free (parts [i].body);
    }
}

//  --------------------------------------------------------------------------

Test (driver_smtp, delivers_a_multipart_alternative_mail)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);

    char note [400];
    snprintf (note, sizeof note, "<script>alert('x')</script> & %s", "caf\xc3\xa9 "
              "and a long line that goes on and on and on and on and on and on and on and on "
              "and on and on and on and on and on and on and on and on and on and on and on");
    char *event = s_event ("Ada", "ada@example.com", note);
    s_outcome_t result = s_deliver (driver, &outcome, "task-1", 1, event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    cr_assert (strstr (result.result.text, "250"), "%s", result.result.text);
    free (event);

    char *mail = s_mail (1);
    char *value;
    cr_assert_str_eq ((value = s_header (mail, "From")), "Shop <shop@example.com>"); free (value);
    cr_assert_str_eq ((value = s_header (mail, "To")), "ada@example.com"); free (value);
    cr_assert_str_eq ((value = s_header (mail, "Subject")), "Order 1042 for Ada"); free (value);
    cr_assert_str_eq ((value = s_header (mail, "Message-ID")), "<task-1@herald>"); free (value);
    cr_assert_str_eq ((value = s_header (mail, "MIME-Version")), "1.0"); free (value);
    cr_assert_str_eq ((value = s_header (mail, "X-Herald-Task-Id")), "task-1"); free (value);
    cr_assert_str_eq ((value = s_header (mail, "X-Herald-Attempt")), "1"); free (value);
    value = s_header (mail, "Date");
    cr_assert (value && strstr (value, "+0000"), "Date: %s", value);
    free (value);

    s_part_t parts [4];
    int count = s_parts (mail, parts, 4);
    cr_assert_eq (count, 2);
    cr_assert_str_eq (parts [0].type, "text/plain; charset=utf-8");
    cr_assert_str_eq (parts [1].type, "text/html; charset=utf-8");
    cr_assert_str_eq (parts [0].encoding, "quoted-printable");
    cr_assert_str_eq (parts [1].encoding, "quoted-printable");
    cr_assert (strstr (parts [0].body, "Hello Ada,\r\n\r\nyour order 1042 is confirmed.\r\n"),
               "%s", parts [0].body);
    cr_assert (strstr (parts [0].body, "Note: <script>alert('x')</script> & caf\xc3\xa9 and"),
               "text part is not as is: %s", parts [0].body);
    cr_assert (strstr (parts [1].body, "<p>Hello Ada,</p>"), "%s", parts [1].body);
    cr_assert (strstr (parts [1].body,
               "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; caf\xc3\xa9 and"),
               "html part is not escaped: %s", parts [1].body);
    cr_assert_null (strstr (parts [1].body, "<script>"));
    cr_assert_leq (parts [0].longest, 76);
    cr_assert_leq (parts [1].longest, 76);
    s_parts_free (parts, count);
    free (mail);

    json_t *side = s_sidecar (1);
    cr_assert_str_eq (json_string_value (json_object_get (side, "mail_from")), "shop@example.com");
    json_t *rcpts = json_object_get (side, "rcpt_tos");
    cr_assert_eq (json_array_size (rcpts), 1);
    cr_assert_str_eq (json_string_value (json_array_get (rcpts, 0)), "ada@example.com");
    json_decref (side);
    hd_smtp_ops.close (&driver);
    cr_assert_null (driver);
}

Test (driver_smtp, message_id_is_stable_across_redeliveries)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    cr_assert_eq (s_deliver (driver, &outcome, "0193-abc.7_x", 1, event).result.outcome, HD_DONE);
    cr_assert_eq (s_deliver (driver, &outcome, "0193-abc.7_x", 2, event).result.outcome, HD_DONE);
    free (event);
    char *first = s_mail (1), *second = s_mail (2);
    char *id1 = s_header (first, "Message-ID"), *id2 = s_header (second, "Message-ID");
    cr_assert_str_eq (id1, "<0193-abc.7_x@herald>");
    cr_assert_str_eq (id1, id2);
    char *a1 = s_header (first, "X-Herald-Attempt"), *a2 = s_header (second, "X-Herald-Attempt");
    cr_assert_str_eq (a1, "1");
    cr_assert_str_eq (a2, "2");
    free (id1); free (id2); free (a1); free (a2); free (first); free (second);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, line_breaks_in_event_data_cannot_add_a_header)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("X\r\nBcc: evil@example.com", "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-inj", 1, event);
    free (event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    char *mail = s_mail (1);
    cr_assert_not (s_header_line_starts (mail, "Bcc:"), "a Bcc header was injected:\n%s", mail);
    char *subject = s_header (mail, "Subject");
    cr_assert_str_eq (subject, "Order 1042 for X  Bcc: evil@example.com");
    free (subject);
    free (mail);
    json_t *side = s_sidecar (1);
    json_t *rcpts = json_object_get (side, "rcpt_tos");
    cr_assert_eq (json_array_size (rcpts), 1);
    cr_assert_str_eq (json_string_value (json_array_get (rcpts, 0)), "ada@example.com");
    json_decref (side);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, a_lone_dot_in_event_data_cannot_end_the_message)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com",
                           "one\n.\nRCPT TO:<evil@example.com>\r\n.\r\nbare\rcr end");
    s_outcome_t result = s_deliver (driver, &outcome, "task-dot", 1, event);
    free (event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    char *mail = s_mail (1);
    s_part_t parts [4];
    int count = s_parts (mail, parts, 4);
    cr_assert_eq (count, 2);
    cr_assert (strstr (parts [0].body,
               "Note: one\r\n.\r\nRCPT TO:<evil@example.com>\r\n.\r\nbare\rcr end\r\n"),
               "text part: %s", parts [0].body);
    s_parts_free (parts, count);
    free (mail);
    json_t *side = s_sidecar (1);
    cr_assert_eq (json_array_size (json_object_get (side, "rcpt_tos")), 1);
    json_decref (side);
    cr_assert_not (s_mail_exists (2));
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, line_breaks_in_the_recipient_fail_the_task)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    const char *bad [] = {
        "a@example.com\r\nRCPT TO:<evil@example.com>", "a@example.com, evil@example.com",
        "Evil <evil@example.com>", "no-at-sign", "a@b@example.com", ""
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char *event = s_event ("Ada", bad [i], "n");
        s_outcome_t result = s_deliver (driver, &outcome, "task-rcpt", 1, event);
        free (event);
        cr_assert_eq (result.result.outcome, HD_FAILED, "\"%s\" was accepted", bad [i]);
        cr_assert (strstr (result.result.text, *bad [i] ? "invalid recipient" : "no recipient"),
                   "%s", result.result.text);
    }
    /*  The next good mail is number 1: nothing above reached the server. */
    char *event = s_event ("Ada", "ada@example.com", "n");
    cr_assert_eq (s_deliver (driver, &outcome, "task-ok", 1, event).result.outcome, HD_DONE);
    free (event);
    json_t *side = s_sidecar (1);
    json_t *rcpts = json_object_get (side, "rcpt_tos");
    cr_assert_eq (json_array_size (rcpts), 1);
    cr_assert_str_eq (json_string_value (json_array_get (rcpts, 0)), "ada@example.com");
    json_decref (side);
    cr_assert_not (s_mail_exists (2));
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, invalid_event_and_missing_field_fail_the_task)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    s_outcome_t result = s_deliver (driver, &outcome, "task-x", 1, "{not json");
    cr_assert_eq (result.result.outcome, HD_FAILED);
    cr_assert (strstr (result.result.text, "invalid event JSON"), "%s", result.result.text);
    result = s_deliver (driver, &outcome, "task-y", 1, "{\"data\":{\"order_id\":1}}");
    cr_assert_eq (result.result.outcome, HD_FAILED);
    cr_assert (strstr (result.result.text, "{{data.customer.email}}: no such field"),
               "%s", result.result.text);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, temporary_rejection_is_retried)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "tempfail@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-t", 1, event);
    free (event);
    cr_log_info ("result: %s", result.result.text);
    cr_assert_eq (result.result.outcome, HD_RETRY, "%s", result.result.text);
    cr_assert (strstr (result.result.text, "451"), "%s", result.result.text);
    cr_assert (strstr (result.result.text, "RCPT TO"), "%s", result.result.text);
    cr_assert (strstr (result.result.text, "smtp://127.0.0.1:"), "%s", result.result.text);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, permanent_rejection_fails)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "permfail@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-p", 1, event);
    free (event);
    cr_log_info ("result: %s", result.result.text);
    cr_assert_eq (result.result.outcome, HD_FAILED, "%s", result.result.text);
    cr_assert (strstr (result.result.text, "550"), "%s", result.result.text);
    /*  The connection stays usable for the next mail. */
    event = s_event ("Ada", "ada@example.com", "n");
    cr_assert_eq (s_deliver (driver, &outcome, "task-q", 1, event).result.outcome, HD_DONE);
    free (event);
    cr_assert_not (s_mail_exists (2));
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, starttls_with_an_untrusted_certificate_is_not_sent)
{
    char cert [160], key [160];
    cr_assert_eq (srv_make_cert (s_dir, cert, key, sizeof cert), 0, "openssl failed");
    const char *args [] = { "--tls-cert", cert, "--tls-key", key, NULL };
    int port = s_start_server (args);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_STARTTLS);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-tls", 1, event);
    cr_log_info ("result: %s", result.result.text);
    cr_assert_eq (result.result.outcome, HD_RETRY, "%s", result.result.text);
    cr_assert (strcasestr (result.result.text, "certificate"), "%s", result.result.text);
    hd_smtp_ops.close (&driver);

    /*  Trusting the certificate: delivered over TLS, and it is mail number 1. */
    snprintf (channel.smtp.ca_file, sizeof channel.smtp.ca_file, "%s", cert);
    driver = s_open (&channel, &outcome);
    result = s_deliver (driver, &outcome, "task-tls", 2, event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    free (event);
    json_t *side = s_sidecar (1);
    cr_assert (json_is_true (json_object_get (side, "tls")));
    json_decref (side);
    char *mail = s_mail (1);
    char *attempt = s_header (mail, "X-Herald-Attempt");
    cr_assert_str_eq (attempt, "2");
    free (attempt);
    free (mail);
    cr_assert_not (s_mail_exists (2));
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, starttls_never_falls_back_to_plaintext)
{
    int port = s_start_server (NULL);      /* offers no STARTTLS */
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_STARTTLS);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-plain", 1, event);
    cr_log_info ("result: %s", result.result.text);
    cr_assert_eq (result.result.outcome, HD_RETRY, "%s", result.result.text);
    cr_assert (strcasestr (result.result.text, "SSL"), "%s", result.result.text);
    hd_smtp_ops.close (&driver);
    /*  Plaintext only when the config says so; that one is mail number 1. */
    s_channel (&channel, port, HERALD_TLS_NONE);
    driver = s_open (&channel, &outcome);
    cr_assert_eq (s_deliver (driver, &outcome, "task-plain", 2, event).result.outcome, HD_DONE);
    free (event);
    char *mail = s_mail (1);
    char *attempt = s_header (mail, "X-Herald-Attempt");
    cr_assert_str_eq (attempt, "2");
    free (attempt);
    free (mail);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, implicit_tls)
{
    char cert [160], key [160];
    cr_assert_eq (srv_make_cert (s_dir, cert, key, sizeof cert), 0, "openssl failed");
    const char *args [] = { "--tls-cert", cert, "--tls-key", key, "--implicit-tls", NULL };
    int port = s_start_server (args);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_IMPLICIT);
    snprintf (channel.smtp.ca_file, sizeof channel.smtp.ca_file, "%s", cert);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-smtps", 1, event);
    free (event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    json_t *side = s_sidecar (1);
    cr_assert (json_is_true (json_object_get (side, "tls")));
    json_decref (side);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, auth_with_the_password_from_the_environment)
{
    const char *args [] = { "--auth", "herald:s3cret pass", NULL };
    int port = s_start_server (args);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    snprintf (channel.smtp.username, sizeof channel.smtp.username, "herald");
    snprintf (channel.smtp.password_env, sizeof channel.smtp.password_env, "HERALD_SMTP_PASSWORD");
    setenv ("HERALD_SMTP_PASSWORD", "s3cret pass", 1);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-auth", 1, event);
    free (event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    json_t *side = s_sidecar (1);
    cr_assert_str_eq (json_string_value (json_object_get (side, "auth_login")), "herald");
    json_decref (side);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, wrong_password_fails_and_sends_nothing)
{
    const char *args [] = { "--auth", "herald:s3cret", NULL };
    int port = s_start_server (args);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    snprintf (channel.smtp.username, sizeof channel.smtp.username, "herald");
    snprintf (channel.smtp.password_env, sizeof channel.smtp.password_env, "HERALD_SMTP_PASSWORD");
    setenv ("HERALD_SMTP_PASSWORD", "wrong", 1);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-auth", 1, event);
    free (event);
    cr_log_info ("result: %s", result.result.text);
    cr_assert_eq (result.result.outcome, HD_FAILED, "%s", result.result.text);
    cr_assert (strstr (result.result.text, "535"), "%s", result.result.text);
    cr_assert_null (strstr (result.result.text, "wrong"), "the password leaked: %s",
                    result.result.text);
    cr_assert_not (s_mail_exists (1));
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, missing_password_variable_fails_open)
{
    herald_channel_t channel;
    s_channel (&channel, 2525, HERALD_TLS_NONE);
    snprintf (channel.smtp.username, sizeof channel.smtp.username, "herald");
    snprintf (channel.smtp.password_env, sizeof channel.smtp.password_env, "HERALD_SMTP_PASSWORD");
    char err [HERALD_ERR_MAX] = "";
    s_outcome_t outcome;
    cr_assert_null (hd_smtp_ops.open (&channel, s_complete, &outcome, err, sizeof err));
    cr_assert_str_eq (err, "channel email: environment variable HERALD_SMTP_PASSWORD is not set");
}

Test (driver_smtp, open_names_what_is_wrong)
{
    herald_channel_t channel;
    char err [HERALD_ERR_MAX];
    s_outcome_t outcome;

    s_channel (&channel, 2525, HERALD_TLS_NONE);
    snprintf (channel.smtp.html_template, sizeof channel.smtp.html_template, "%s/nope.html", s_dir);
    cr_assert_null (hd_smtp_ops.open (&channel, s_complete, &outcome, err, sizeof err));
    cr_assert (strstr (err, channel.smtp.html_template), "%s", err);

    s_channel (&channel, 2525, HERALD_TLS_NONE);
    snprintf (channel.smtp.url, sizeof channel.smtp.url, "http://127.0.0.1:2525");
    cr_assert_null (hd_smtp_ops.open (&channel, s_complete, &outcome, err, sizeof err));
    cr_assert (strstr (err, "smtp.url"), "%s", err);

    s_channel (&channel, 2525, HERALD_TLS_IMPLICIT);
    snprintf (channel.smtp.url, sizeof channel.smtp.url, "smtp://127.0.0.1:2525");
    cr_assert_null (hd_smtp_ops.open (&channel, s_complete, &outcome, err, sizeof err));
    cr_assert (strstr (err, "implicit"), "%s", err);

    s_channel (&channel, 2525, HERALD_TLS_NONE);
    snprintf (channel.smtp.from, sizeof channel.smtp.from, "shop@example.com\r\nBcc: x@y.z");
    cr_assert_null (hd_smtp_ops.open (&channel, s_complete, &outcome, err, sizeof err));
    cr_assert (strstr (err, "smtp.from"), "%s", err);

    s_channel (&channel, 2525, HERALD_TLS_NONE);
    snprintf (channel.smtp.subject, sizeof channel.smtp.subject, "Order {{data.order_id");
    cr_assert_null (hd_smtp_ops.open (&channel, s_complete, &outcome, err, sizeof err));
    cr_assert (strstr (err, "smtp.subject: unclosed {{"), "%s", err);
}

Test (driver_smtp, non_ascii_subject_is_encoded)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Zo\xc3\xab", "zoe@example.com", "n");
    cr_assert_eq (s_deliver (driver, &outcome, "task-utf8", 1, event).result.outcome, HD_DONE);
    free (event);
    char *mail = s_mail (1);
    char *subject = s_header (mail, "Subject");
    /*  base64 of "Order 1042 for Zoë" */
    cr_assert_str_eq (subject, "=?UTF-8?B?T3JkZXIgMTA0MiBmb3IgWm/Dqw==?=");
    free (subject);
    free (mail);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, connection_refused_is_retried)
{
    int port = srv_free_port ();
    cr_assert_gt (port, 0);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-refused", 1, event);
    free (event);
    cr_log_info ("result: %s", result.result.text);
    cr_assert_eq (result.result.outcome, HD_RETRY, "%s", result.result.text);
    cr_assert (strstr (result.result.text, "connect"), "%s", result.result.text);
    hd_smtp_ops.close (&driver);
}

//  --------------------------------------------------------------------------
//  A slow or stuck relay never holds the worker's loop

Test (driver_smtp, mails_go_in_parallel_up_to_the_capacity)
{
    const char *args [] = { "--data-delay", "1", NULL };
    int port = s_start_server (args);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    channel.capacity = 4;
    s_outcome_t outcome = { 0 };
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    int64_t started = srv_now_ms ();
    const char *ids [] = { "par-1", "par-2", "par-3", "par-4" };
    for (int i = 0; i < 4; i++)
        s_start_task (driver, ids [i], 1, event);
    /*  start() returned at once: nothing has been sent yet. */
    cr_assert_lt (srv_now_ms () - started, 500);
    cr_assert_eq (outcome.calls, 0);
    cr_assert_eq (hd_smtp_ops.in_progress (driver), 4);
    s_run (driver, &outcome, 4, 15000);
    int64_t took = srv_now_ms () - started;
    free (event);
    cr_log_info ("4 mails through a 1 s relay: %lld ms", (long long) took);
    cr_assert_lt (took, 2500, "4 mails through a 1 s relay took %lld ms: not in parallel",
                  (long long) took);
    cr_assert_eq (hd_smtp_ops.in_progress (driver), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq (outcome.all [i].outcome, HD_DONE, "%s", outcome.all [i].text);
    /*  Four mails, each Message-ID once. */
    bool seen [4] = { false };
    for (int seq = 1; seq <= 4; seq++) {
        char *mail = s_mail (seq);
        char *id = s_header (mail, "Message-ID");
        for (int i = 0; i < 4; i++) {
            char want [64];
            snprintf (want, sizeof want, "<%s@herald>", ids [i]);
            if (strcmp (id, want) == 0) {
                cr_assert_not (seen [i], "%s twice", id);
                seen [i] = true;
            }
        }
        free (id);
        free (mail);
    }
    cr_assert (seen [0] && seen [1] && seen [2] && seen [3]);
    cr_assert_not (s_mail_exists (5));
    hd_smtp_ops.close (&driver);
}

/*  The client port the relay saw for mail seq. */
static int
s_peer_port (int seq)
{
    json_t *side = s_sidecar (seq);
    int port = (int) json_integer_value (json_array_get (json_object_get (side, "peer"), 1));
    json_decref (side);
    return port;
}

Test (driver_smtp, the_relay_connection_is_reused)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    for (int i = 0; i < 3; i++)
        cr_assert_eq (s_deliver (driver, &outcome, "reuse", (uint32_t) i + 1, event).result.outcome,
                      HD_DONE, "%s", outcome.result.text);
    free (event);
    int first = s_peer_port (1);
    cr_assert_gt (first, 0);
    cr_assert_eq (s_peer_port (2), first, "mail 2 came on a new connection");
    cr_assert_eq (s_peer_port (3), first, "mail 3 came on a new connection");
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, a_relay_slower_than_the_timeout_is_a_retry_naming_it)
{
    const char *args [] = { "--data-delay", "30", NULL };
    int port = s_start_server (args);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    channel.smtp.timeout_ms = 1000;
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    int64_t started = srv_now_ms ();
    s_outcome_t result = s_deliver (driver, &outcome, "task-slow", 1, event);
    int64_t took = srv_now_ms () - started;
    free (event);
    cr_log_info ("result after %lld ms: %s", (long long) took, result.result.text);
    cr_assert_eq (result.result.outcome, HD_RETRY, "%s", result.result.text);
    cr_assert (strstr (result.result.text, "timed out after 1000 ms (smtp.timeout) waiting for "
                       "the reply to DATA"), "%s", result.result.text);
    cr_assert_lt (took, 4000);
    /*  The timed-out connection is not reused: the next mail times out
        waiting for DATA again, not for a MAIL FROM the relay never reads. */
    event = s_event ("Ada", "ada@example.com", "n");
    result = s_deliver (driver, &outcome, "task-slow-2", 1, event);
    free (event);
    cr_log_info ("second: %s", result.result.text);
    cr_assert (strstr (result.result.text, "waiting for the reply to DATA"), "%s", result.result.text);
    hd_smtp_ops.close (&driver);
    cr_assert_not (s_mail_exists (1));
}

Test (driver_smtp, close_does_not_wait_for_a_stuck_relay)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    channel.smtp.timeout_ms = 10000;
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Ada", "ada@example.com", "n");
    cr_assert_eq (s_deliver (driver, &outcome, "task-kept", 1, event).result.outcome, HD_DONE);
    free (event);
    /*  The kept connection's relay stops answering: libcurl's QUIT on
        close would wait for it up to the response timeout. */
    cr_assert_eq (kill (s_server, SIGSTOP), 0);
    int64_t started = srv_now_ms ();
    hd_smtp_ops.close (&driver);
    int64_t took = srv_now_ms () - started;
    kill (s_server, SIGCONT);
    cr_assert_lt (took, 1000, "close waited %lld ms for a stuck relay", (long long) took);
}

//  --------------------------------------------------------------------------
//  The renderer's guarantees, through the relay

Test (driver_smtp, a_display_name_from_event_data_adds_no_recipient_and_no_header)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    snprintf (channel.smtp.to, sizeof channel.smtp.to,
              "{{data.customer.name}} <{{data.customer.email}}>");
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char *event = s_event ("Eve, evil@example.com\r\nBcc: evil2@example.com\n\"q\\\" <evil3@example.com>",
                           "ada@example.com", "n");
    s_outcome_t result = s_deliver (driver, &outcome, "task-name", 1, event);
    free (event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    char *mail = s_mail (1);
    cr_assert_not (s_header_line_starts (mail, "Bcc:"), "a Bcc header was injected:\n%s", mail);
    char *to = s_header (mail, "To");
    /*  One quoted display name (its quote and backslash escaped), one address. */
    cr_assert_str_eq (to, "\"Eve, evil@example.com  Bcc: evil2@example.com \\\"q\\\\\\\" "
                          "<evil3@example.com>\" <ada@example.com>");
    free (to);
    free (mail);
    json_t *side = s_sidecar (1);
    json_t *rcpts = json_object_get (side, "rcpt_tos");
    cr_assert_eq (json_array_size (rcpts), 1);
    cr_assert_str_eq (json_string_value (json_array_get (rcpts, 0)), "ada@example.com");
    json_decref (side);

    /*  A plain name stays plain, a non-ASCII one is encoded. */
    event = s_event ("Ada Lovelace", "ada@example.com", "n");
    cr_assert_eq (s_deliver (driver, &outcome, "task-plain-name", 1, event).result.outcome, HD_DONE);
    free (event);
    event = s_event ("Zo\xc3\xab", "zoe@example.com", "n");
    cr_assert_eq (s_deliver (driver, &outcome, "task-utf8-name", 1, event).result.outcome, HD_DONE);
    free (event);
    mail = s_mail (2);
    to = s_header (mail, "To");
    cr_assert_str_eq (to, "Ada Lovelace <ada@example.com>");
    free (to);
    free (mail);
    mail = s_mail (3);
    to = s_header (mail, "To");
    cr_assert_str_eq (to, "=?UTF-8?B?Wm/Dqw==?= <zoe@example.com>");
    free (to);
    free (mail);
    hd_smtp_ops.close (&driver);
}

Test (driver_smtp, no_line_of_the_message_is_longer_than_76_bytes)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    snprintf (channel.smtp.to, sizeof channel.smtp.to,
              "{{data.customer.name}} <{{data.customer.email}}>");
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    char name [400];
    memset (name, 'N', sizeof name - 1);
    name [sizeof name - 1] = '\0';
    char *event = s_event (name, "ada@example.com", name);
    s_outcome_t result = s_deliver (driver, &outcome, "task-long", 1, event);
    free (event);
    cr_assert_eq (result.result.outcome, HD_DONE, "%s", result.result.text);
    char *mail = s_mail (1);
    for (const char *line = mail; *line; ) {
        const char *eol = strstr (line, "\r\n");
        cr_assert_not_null (eol, "the message does not end in CRLF");
        cr_assert_leq (eol - line, 76, "line of %d bytes: %.80s", (int) (eol - line), line);
        cr_assert_null (memchr (line, '\n', (size_t) (eol - line)), "bare LF");
        cr_assert_null (memchr (line, '\r', (size_t) (eol - line)), "bare CR");
        line = eol + 2;
    }
    free (mail);
    hd_smtp_ops.close (&driver);
}

/*  mail without its Date header line. Caller frees. */
static char *
s_without_date (const char *mail)
{
    char *copy = strdup (mail);
    char *date = strstr (copy, "\r\nDate: ");
    cr_assert_not_null (date, "no Date header");
    char *eol = strstr (date + 2, "\r\n");
    memmove (date, eol, strlen (eol) + 1);
    return copy;
}

static void
s_file_complete (void *ctx, const char *task_id, uint32_t attempt, uint64_t lease, const hd_result_t *result)
{
    (void) task_id, (void) attempt, (void) lease;
    *(hd_result_t *) ctx = *result;
}

Test (driver_smtp, the_file_driver_writes_the_bytes_the_relay_receives)
{
    int port = s_start_server (NULL);
    herald_channel_t channel;
    s_channel (&channel, port, HERALD_TLS_NONE);
    s_outcome_t outcome;
    void *driver = s_open (&channel, &outcome);
    const char *notes [] = {
        "plain",
        "one\n.\nRCPT TO:<evil@example.com>\r\n.\r\nbare\rcr end",
        "caf\xc3\xa9 <b>&</b> = and a long line that goes on and on and on and on and on and "
        "on and on and on and on and on and on and on and on and on and on"
    };
    herald_channel_t file_channel = channel;
    file_channel.driver = HERALD_DRIVER_FILE;
    snprintf (file_channel.dir, sizeof file_channel.dir, "%s/outbox", s_dir);
    hd_result_t file_result;
    char err [HERALD_ERR_MAX] = "";
    void *file = hd_file_ops.open (&file_channel, s_file_complete, &file_result, err, sizeof err);
    cr_assert_not_null (file, "%s", err);
    for (int i = 0; i < 3; i++) {
        char *event = s_event ("Zo\xc3\xab \"Z\" <b>", "zoe@example.com", notes [i]);
        char task_id [32];
        snprintf (task_id, sizeof task_id, "same-%d", i);
        cr_assert_eq (s_deliver (driver, &outcome, task_id, 2, event).result.outcome, HD_DONE);
        hd_task_t task = { .task_id = task_id, .attempt = 2, .lease = 2, .channel = "email", .event_json = event, .event_len = strlen (event) };
        file_result.outcome = HD_FAILED;
        cr_assert_eq (hd_file_ops.start (file, &task), 0);
        hd_file_ops.flush (file);
        cr_assert_eq (file_result.outcome, HD_DONE, "%s", file_result.text);
        free (event);

        char path [256];
        snprintf (path, sizeof path, "%s/outbox/%s.eml", s_dir, task_id);
        size_t file_len = 0;
        char *written = srv_read_file (path, &file_len);
        cr_assert_not_null (written, "%s", path);
        char *sent = s_mail (i + 1);
        char *a = s_without_date (sent), *b = s_without_date (written);
        cr_assert_str_eq (a, b, "relay received:\n%s\nfile driver wrote:\n%s", a, b);
        cr_assert_eq (strlen (written), file_len, "NUL byte in the file");
        free (a);
        free (b);
        free (sent);
        free (written);
    }
    hd_file_ops.close (&file);
    hd_smtp_ops.close (&driver);
}
