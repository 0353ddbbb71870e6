/*  test_mail: the one email renderer (workers/mail.c), without transport:
    exact bytes for a fixed Date, the settings it refuses, and what event
    data cannot do to the headers or the envelope. Delivery through a real
    relay, and the file driver writing the same bytes, are in
    test_driver_smtp.c. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"
#include "server_helper.h"

#define S_DATE_MS 1796000000000LL       /* Mon, 30 Nov 2026 00:53:20 +0000 */

static char s_dir [64];
static char s_text [128];
static char s_html [128];

static void
s_setup (void)
{
    cr_assert_eq (srv_make_dir (s_dir, sizeof s_dir), 0);
    snprintf (s_text, sizeof s_text, "%s/text.txt", s_dir);
    snprintf (s_html, sizeof s_html, "%s/html.html", s_dir);
    cr_assert_eq (srv_write_file (s_text, "Hello {{data.customer.name}},\norder {{data.order_id}}.\n"), 0);
    cr_assert_eq (srv_write_file (s_html, "<p>Hello {{data.customer.name}}</p>\n"), 0);
}

static void
s_teardown (void)
{
    srv_remove_dir (s_dir);
}

TestSuite (mail, .init = s_setup, .fini = s_teardown, .timeout = 30);

static hd_mail_t *
s_new (const char *from, const char *to, const char *subject, const char *text, const char *html)
{
    hd_mail_config_t config = { from, to, subject, text, html };
    char err [HERALD_ERR_MAX] = "";
    hd_mail_t *mail = hd_mail_new (&config, err, sizeof err);
    cr_assert_not_null (mail, "hd_mail_new: %s", err);
    return mail;
}

/*  Renders event for task_id; returns the message (caller frees) or NULL
    with the error in err. */
static char *
s_render (hd_mail_t *mail, const char *task_id, const char *event, char *rcpt, char *err)
{
    hd_task_t task = { .task_id = task_id, .attempt = 3, .lease = 3, .channel = "email", .event_json = event, .event_len = strlen (event) };
    herald_text_t out = { 0 };
    char buf [HD_MAIL_ADDRESS_MAX + 1];
    if (hd_mail_render (mail, &task, S_DATE_MS, &out, rcpt ? rcpt : buf, sizeof buf,
                        err, HERALD_ERR_MAX) != 0) {
        free (out.data);
        return NULL;
    }
    return out.data;
}

static const char *s_event =
    "{\"id\":\"e-1\",\"type\":\"order.confirmed\",\"data\":{\"order_id\":1042,"
    "\"customer\":{\"name\":\"Ann\",\"email\":\"ann@example.com\"}}}";

Test (mail, renders_exact_bytes_for_a_fixed_date)
{
    hd_mail_t *mail = s_new ("Shop <shop@example.com>", "{{data.customer.email}}",
                             "Order {{data.order_id}}", s_text, s_html);
    cr_assert_str_eq (hd_mail_sender (mail), "shop@example.com");
    char rcpt [HD_MAIL_ADDRESS_MAX + 1];
    char err [HERALD_ERR_MAX];
    char *message = s_render (mail, "t-1.email", s_event, rcpt, err);
    cr_assert_not_null (message, "%s", err);
    cr_assert_str_eq (rcpt, "ann@example.com");
    cr_assert_str_eq (message,
        "From: Shop <shop@example.com>\r\n"
        "To: ann@example.com\r\n"
        "Subject: Order 1042\r\n"
        "Date: Mon, 30 Nov 2026 00:53:20 +0000\r\n"
        "Message-ID: <t-1.email@herald>\r\n"
        "MIME-Version: 1.0\r\n"
        "X-Herald-Task-Id: t-1.email\r\n"
        "X-Herald-Attempt: 3\r\n"
        "Content-Type: multipart/alternative; boundary=\"=_herald_t-1.email_0\"\r\n"
        "\r\n"
        "This is a multi-part message in MIME format.\r\n"
        "--=_herald_t-1.email_0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Hello Ann,\r\n"
        "order 1042.\r\n"
        "\r\n"
        "--=_herald_t-1.email_0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "<p>Hello Ann</p>\r\n"
        "\r\n"
        "--=_herald_t-1.email_0--\r\n");
    /*  Rendering is a function of the task, the settings and the date. */
    char *again = s_render (mail, "t-1.email", s_event, NULL, err);
    cr_assert_str_eq (again, message);
    free (again);
    free (message);
    hd_mail_destroy (&mail);
    cr_assert_null (mail);
}

Test (mail, without_templates_the_body_is_the_data)
{
    hd_mail_t *mail = s_new ("Herald <herald@localhost>", "{{data.customer.email}}",
                             "{{type}} {{id}}", NULL, "");
    char err [HERALD_ERR_MAX];
    char *message = s_render (mail, "t-2", s_event, NULL, err);
    cr_assert_not_null (message, "%s", err);
    cr_assert (strstr (message, "\r\nSubject: order.confirmed e-1\r\n"), "%s", message);
    cr_assert (strstr (message, "\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n{\r\n"
                                "  \"order_id\": 1042,\r\n"), "%s", message);
    size_t len = strlen (message);
    cr_assert_str_eq (message + len - 3, "}\r\n", "one final line break");
    free (message);
    hd_mail_destroy (&mail);
}

Test (mail, refuses_bad_settings_naming_them)
{
    hd_mail_config_t config = { "Shop <shop@example.com>\r\nBcc: x@y.z", "{{a}}", "s", s_text, NULL };
    char err [HERALD_ERR_MAX];
    cr_assert_null (hd_mail_new (&config, err, sizeof err));
    cr_assert (strstr (err, "smtp.from"), "%s", err);
    config.from = "shop@example.com";
    config.to = "{{data.customer.email";
    cr_assert_null (hd_mail_new (&config, err, sizeof err));
    cr_assert (strstr (err, "smtp.to: unclosed {{"), "%s", err);
    config.to = "{{data.x}} <{{data.customer.email>";
    cr_assert_null (hd_mail_new (&config, err, sizeof err));
    cr_assert (strstr (err, "smtp.to"), "%s", err);
    config.to = "{{data.customer.email}}";
    config.subject = "{{ }}";
    cr_assert_null (hd_mail_new (&config, err, sizeof err));
    cr_assert (strstr (err, "smtp.subject"), "%s", err);
    config.subject = "s";
    config.html_template = "/nonexistent/herald.html";
    cr_assert_null (hd_mail_new (&config, err, sizeof err));
    cr_assert (strstr (err, "smtp.html_template") && strstr (err, "/nonexistent/herald.html"),
               "%s", err);
}

Test (mail, event_data_cannot_add_a_recipient_or_a_header)
{
    hd_mail_t *mail = s_new ("shop@example.com", "{{data.customer.name}} <{{data.customer.email}}>",
                             "Hi {{data.customer.name}}", s_text, NULL);
    char err [HERALD_ERR_MAX];
    /*  Whatever the address holds beyond one plain mailbox: refused. */
    static const char *bad [] = {
        "a@example.com\\r\\nBcc: evil@example.com", "a@example.com, evil@example.com",
        "Evil <evil@example.com>", "a@example.com\\u0000evil@example.com", "\\\"a b\\\"@example.com"
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char event [512];
        snprintf (event, sizeof event, "{\"data\":{\"customer\":{\"name\":\"Eve\",\"email\":\"%s\"}}}",
                  bad [i]);
        cr_assert_null (s_render (mail, "t-3", event, NULL, err), "accepted %s", bad [i]);
        /*  (jansson refuses \u0000 before the address is looked at.) */
        cr_assert (strstr (err, "invalid recipient") || strstr (err, "invalid event JSON"),
                   "%s: %s", bad [i], err);
    }
    /*  A name with line breaks, quotes, commas and angle brackets stays one
        display name on the To line; the Subject stays one header. */
    const char *evil =
        "{\"data\":{\"order_id\":1,\"customer\":{\"email\":\"ann@example.com\","
        "\"name\":\"Eve\\r\\nBcc: b@x.y\\u2028, c@x.y \\\"\\\\\\\" <d@x.y>\"}}}";
    char rcpt [HD_MAIL_ADDRESS_MAX + 1];
    char *message = s_render (mail, "t-4", evil, rcpt, err);
    cr_assert_not_null (message, "%s", err);
    cr_assert_str_eq (rcpt, "ann@example.com");
    char *end = strstr (message, "\r\n\r\n");
    cr_assert_not_null (end);
    end [2] = '\0';
    int lines = 0;
    for (char *line = message; *line; lines++) {
        char *eol = strstr (line, "\r\n");
        cr_assert_not_null (eol);
        cr_assert (line [0] != ' ' || lines > 0, "continuation first");
        cr_assert_null (memchr (line, '\n', (size_t) (eol - line)), "bare LF in %s", line);
        cr_assert_null (memchr (line, '\r', (size_t) (eol - line)), "bare CR in %s", line);
        cr_assert (strncasecmp (line, "Bcc:", 4) != 0, "Bcc header added");
        line = eol + 2;
    }
    /*  The non-ASCII separator makes the name encoded words: none of the
        event's text is a header of its own. */
    cr_assert (strstr (message, "\r\nTo: =?UTF-8?B?"), "%s", message);
    cr_assert (strstr (message, "<ann@example.com>\r\nSubject: =?UTF-8?B?"), "%s", message);
    free (message);
    hd_mail_destroy (&mail);
}

Test (mail, header_lines_fold_at_76)
{
    hd_mail_t *mail = s_new ("Boutique Zo\xc3\xab <shop@example.com>",
                             "{{data.customer.name}} <{{data.customer.email}}>",
                             "Commande {{data.customer.name}}", s_text, NULL);
    char event [1024];
    char name [300];
    for (size_t i = 0; i + 2 < sizeof name; i += 2)
        memcpy (name + i, "\xc3\xa9", 2);       /* "ééé..." */
    name [sizeof name - 2] = '\0';
    snprintf (event, sizeof event, "{\"data\":{\"order_id\":1,\"customer\":{\"name\":\"%s\","
              "\"email\":\"ann@example.com\"}}}", name);
    char err [HERALD_ERR_MAX];
    char *message = s_render (mail, "t-5", event, NULL, err);
    cr_assert_not_null (message, "%s", err);
    cr_assert (strncmp (message, "From: =?UTF-8?B?Qm91dGlxdWUgWm/Dqw==?= <shop@example.com>\r\n", 58) == 0,
               "%s", message);
    for (const char *line = message; *line; ) {
        const char *eol = strstr (line, "\r\n");
        cr_assert_not_null (eol);
        cr_assert_leq (eol - line, 76, "line of %d bytes: %.90s", (int) (eol - line), line);
        line = eol + 2;
    }
    free (message);
    hd_mail_destroy (&mail);
}

/*  Every line of message at most 76 bytes; returns the unfolded value of
    header name (caller frees). */
static char *
s_unfolded_header (const char *message, const char *name)
{
    for (const char *line = message; *line; ) {
        const char *eol = strstr (line, "\r\n");
        cr_assert_not_null (eol);
        cr_assert_leq (eol - line, 76, "line of %d bytes: %.90s", (int) (eol - line), line);
        line = eol + 2;
    }
    size_t name_len = strlen (name);
    const char *start = strstr (message, name);
    cr_assert (start && start [name_len] == ':' && start [name_len + 1] == ' ', "no %s", name);
    start += name_len + 2;
    herald_text_t value = { 0 };
    herald_text_puts (&value, "");
    for (const char *p = start; *p; p++) {
        if (p [0] == '\r' && p [1] == '\n') {
            if (p [2] != ' ')
                break;
            p++;                /* CRLF SP: the space stays */
            continue;
        }
        herald_text_putc (&value, *p);
    }
    return value.data;
}

/*  Found by fuzz_mail (tests/fuzz/regressions/mail/): a plain ASCII
    Subject or display name up to 200 bytes was written on one line of up
    to 210 bytes, past mail.h's 76. They fold at their spaces now. */
Test (mail, long_ascii_headers_fold_at_76)
{
    hd_mail_t *mail = s_new ("shop@example.com", "{{data.customer.name}} <{{data.customer.email}}>",
                             "{{data.subject}}", s_text, NULL);
    const char *subject = "Your order 1042 from the Example Shop has shipped and will arrive"
                          " on Tuesday between 9 and 12, tracking number 1Z999AA10123456784";
    const char *name = "Ann-Marie Example-Customer, Head of Purchasing at Example Industries";
    char event [1024];
    snprintf (event, sizeof event, "{\"data\":{\"order_id\":1,\"subject\":\"%s\",\"customer\":{"
              "\"name\":\"%s\",\"email\":\"ann@example.com\"}}}", subject, name);
    char err [HERALD_ERR_MAX];
    char *message = s_render (mail, "t-7", event, NULL, err);
    cr_assert_not_null (message, "%s", err);
    char *value = s_unfolded_header (message, "Subject");
    cr_assert_str_eq (value, subject);
    free (value);
    value = s_unfolded_header (message, "To");
    char want [256];
    snprintf (want, sizeof want, "\"%s\" <ann@example.com>", name);
    cr_assert_str_eq (value, want);
    free (value);
    free (message);
    hd_mail_destroy (&mail);
}

/*  Found by fuzz_mail: plain text holding "=?...?=" was written as is,
    and a mail reader decodes it as an encoded word ("=?UTF-8?B?QQ==?="
    shows "A"). Such text is encoded itself. */
Test (mail, text_that_looks_encoded_is_encoded)
{
    hd_mail_t *mail = s_new ("shop@example.com", "{{data.customer.name}} <{{data.customer.email}}>",
                             "{{data.subject}}", s_text, NULL);
    const char *event = "{\"data\":{\"order_id\":1,\"subject\":\"=?UTF-8?B?QQ==?=\",\"customer\":{"
                        "\"name\":\"=?UTF-8?B?QQ==?=\",\"email\":\"ann@example.com\"}}}";
    char err [HERALD_ERR_MAX];
    char *message = s_render (mail, "t-8", event, NULL, err);
    cr_assert_not_null (message, "%s", err);
    cr_assert (strstr (message, "\r\nSubject: =?UTF-8?B?PT9VVEYtOD9CP1FRPT0/PQ==?=\r\n"), "%s", message);
    cr_assert (strstr (message, "\r\nTo: =?UTF-8?B?PT9VVEYtOD9CP1FRPT0/PQ==?= <ann@example.com>\r\n"),
               "%s", message);
    free (message);
    hd_mail_destroy (&mail);
}

Test (mail, task_and_event_problems_are_named)
{
    hd_mail_t *mail = s_new ("shop@example.com", "{{data.customer.email}}", "s", s_text, NULL);
    char err [HERALD_ERR_MAX];
    cr_assert_null (s_render (mail, "bad id/with slash", s_event, NULL, err));
    cr_assert (strstr (err, "task id"), "%s", err);
    cr_assert_null (s_render (mail, "t-6", "{not json", NULL, err));
    cr_assert (strstr (err, "invalid event JSON"), "%s", err);
    cr_assert_null (s_render (mail, "t-6", "[1]", NULL, err));
    cr_assert (strstr (err, "not a JSON object"), "%s", err);
    cr_assert_null (s_render (mail, "t-6", "{\"data\":{}}", NULL, err));
    cr_assert (strstr (err, "no recipient") && strstr (err, "{{data.customer.email}}"), "%s", err);
    cr_assert_null (s_render (mail, "t-6", "{\"data\":{\"customer\":{\"email\":\" \"}}}", NULL, err));
    cr_assert (strstr (err, "no recipient") && strstr (err, "empty"), "%s", err);
    cr_assert_null (s_render (mail, "t-6", "{\"data\":{\"customer\":{\"email\":\"a@b.c\"}}}", NULL, err));
    cr_assert (strstr (err, s_text) && strstr (err, "{{data.customer.name}}"), "%s", err);
    hd_mail_destroy (&mail);
}
