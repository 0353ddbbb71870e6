/*  test_driver_file: the file driver on a temporary directory: exact file
    names, atomic writes (no leftovers), idempotent redelivery, .eml and
    .json content, header injection, unwritable directories. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "herald_log.h"

static const char *s_event =
    "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"shop\",\"type\":\"order.confirmed\","
    "\"data\":{\"order_id\":1042,\"customer\":{\"email\":\"ann@example.com\",\"name\":\"Ann\"},"
    "\"items\":[{\"sku\":\"A-1\",\"qty\":2}]}}";

static struct {
    char root[128];             /* mkdtemp */
    herald_channel_t channel;
    void *driver;
    int calls;                  /* complete() calls */
    char task_id[HP_MAX_ID + 1];
    uint64_t lease;
    uint32_t attempt;
    hd_result_t result;
} s_fx;

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static void
s_setup (void)
{
    herald_log_init ("test", HERALD_LOG_ERROR);
    memset (&s_fx, 0, sizeof s_fx);
    snprintf (s_fx.root, sizeof s_fx.root, "/tmp/herald-test-file-XXXXXX");
    cr_assert_not_null (mkdtemp (s_fx.root));
}

static void
s_teardown (void)
{
    hd_file_ops.close (&s_fx.driver);
    nftw (s_fx.root, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
s_complete (void *ctx, const char *task_id, uint32_t attempt, uint64_t lease, const hd_result_t *result)
{
    s_fx.calls++;
    s_fx.attempt = attempt;
    snprintf (s_fx.task_id, sizeof s_fx.task_id, "%s", task_id);
    s_fx.lease = lease;
    s_fx.result = *result;
}

static void
s_channel (const char *name, const char *subdir)
{
    snprintf (s_fx.channel.name, sizeof s_fx.channel.name, "%s", name);
    s_fx.channel.driver = HERALD_DRIVER_FILE;
    s_fx.channel.capacity = 1;
    snprintf (s_fx.channel.dir, sizeof s_fx.channel.dir, "%s/%s", s_fx.root, subdir);
}

static void
s_open (void)
{
    char err[512] = "";
    s_fx.driver = hd_file_ops.open (&s_fx.channel, s_complete, NULL, err, sizeof err);
    cr_assert_not_null (s_fx.driver, "open: %s", err);
}

static void
s_deliver (const char *task_id, uint32_t attempt, const char *event)
{
    hd_task_t task = { .task_id = task_id, .attempt = attempt, .lease = 1000 + attempt,
                       .channel = s_fx.channel.name, .event_json = event, .event_len = strlen (event) };
    int before = s_fx.calls;
    cr_assert_eq (hd_file_ops.start (s_fx.driver, &task), 0);
    /*  The round ends: the driver makes it durable and completes it. */
    hd_file_ops.flush (s_fx.driver);
    cr_assert_eq (s_fx.calls, before + 1, "complete() called once for the round");
    cr_assert_eq (hd_file_ops.in_progress (s_fx.driver), 0);
    cr_assert_str_eq (s_fx.task_id, task_id);
    cr_assert_eq (s_fx.lease, 1000 + attempt, "the lease is echoed");
    cr_assert_eq (s_fx.attempt, attempt, "the attempt is echoed");
}

/*  The whole file, NUL-terminated (caller frees), or NULL. */
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = calloc (1, 1 << 20);
    size_t len = fread (text, 1, (1 << 20) - 1, file);
    text[len] = '\0';
    fclose (file);
    return text;
}

/*  Names in dir, sorted, joined with spaces. */
static void
s_listing (const char *dir, char *out, size_t size)
{
    struct dirent **names;
    int count = scandir (dir, &names, NULL, alphasort);
    cr_assert_geq (count, 0, "scandir %s", dir);
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < count; i++) {
        const char *name = names[i]->d_name;
        if (strcmp (name, ".") && strcmp (name, ".."))
            len += (size_t) snprintf (out + len, size - len, "%s%s", len? " ": "", name);
        free (names[i]);
        cr_assert_lt (len, size);
    }
    free (names);
}

static char *
s_file (const char *name)
{
    char path[HERALD_PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s", s_fx.channel.dir, name);
    char *text = s_slurp (path);
    cr_assert_not_null (text, "%s missing", path);
    return text;
}

TestSuite (driver_file, .init = s_setup, .fini = s_teardown, .timeout = 30);

Test (driver_file, email_channel_writes_an_rfc5322_message)
{
    s_channel ("email", "out/email");      //  created with its parents
    s_open ();
    s_deliver ("t-1", 2, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char listing[512];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_str_eq (listing, "t-1.eml", "no temporary files may remain");
    char path[HERALD_PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/t-1.eml", s_fx.channel.dir);
    cr_assert_str_eq (s_fx.result.text, path);

    char *text = s_file ("t-1.eml");
    cr_assert (strstr (text, "From: Herald <herald@localhost>\r\n"), "%s", text);
    cr_assert (strstr (text, "\r\nTo: ann@example.com\r\n"), "%s", text);
    cr_assert (strstr (text, "\r\nSubject: order.confirmed e-1\r\n"), "%s", text);
    cr_assert (strstr (text, "\r\nMessage-ID: <t-1@herald>\r\n"), "%s", text);
    cr_assert (strstr (text, "\r\nMIME-Version: 1.0\r\n"), "%s", text);
    cr_assert (strstr (text, "\r\nContent-Type: text/plain; charset=utf-8\r\n"), "%s", text);
    cr_assert (strstr (text, "\r\nX-Herald-Attempt: 2\r\n"), "%s", text);
    cr_assert (strstr (text, "\r\nDate: "), "%s", text);
    const char *body = strstr (text, "\r\n\r\n");
    cr_assert_not_null (body);
    cr_assert (strstr (body, "\"order_id\": 1042"), "body is the data pretty-printed: %s", body);
    free (text);
}

Test (driver_file, redelivery_overwrites_the_same_file)
{
    s_channel ("email", "mail");
    s_open ();
    s_deliver ("t-1", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    s_deliver ("t-1", 2, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char listing[512];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_str_eq (listing, "t-1.eml");
    char *text = s_file ("t-1.eml");
    cr_assert (strstr (text, "X-Herald-Attempt: 2\r\n"), "the last delivery wins");
    free (text);
}

Test (driver_file, other_channels_write_json_holding_the_envelope)
{
    s_channel ("inventory", "inventory");
    s_open ();
    s_deliver ("t-2", 3, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char listing[512];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_str_eq (listing, "t-2.json");

    char path[HERALD_PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/t-2.json", s_fx.channel.dir);
    json_error_t jerr;
    json_t *doc = json_load_file (path, 0, &jerr);
    cr_assert_not_null (doc, "invalid JSON: %s", jerr.text);
    cr_assert_str_eq (json_string_value (json_object_get (doc, "task_id")), "t-2");
    cr_assert_eq (json_integer_value (json_object_get (doc, "attempt")), 3);
    cr_assert_str_eq (json_string_value (json_object_get (doc, "channel")), "inventory");
    const char *at = json_string_value (json_object_get (doc, "delivered_at"));
    cr_assert (at && strlen (at) >= 20 && at[4] == '-' && at[10] == 'T', "RFC 3339: %s", at);
    json_t *envelope = json_loads (s_event, 0, NULL);
    cr_assert (json_equal (json_object_get (doc, "event"), envelope));
    json_decref (envelope);
    json_decref (doc);
    char *text = s_file ("t-2.json");
    cr_assert (strstr (text, "\n  \"task_id\""), "pretty-printed: %s", text);
    free (text);
}

Test (driver_file, channel_with_smtp_to_is_email)
{
    s_channel ("notify", "notify");
    snprintf (s_fx.channel.smtp.to, sizeof s_fx.channel.smtp.to, "Ops <{{data.customer.email}}>");
    snprintf (s_fx.channel.smtp.from, sizeof s_fx.channel.smtp.from, "Shop <shop@example.com>");
    snprintf (s_fx.channel.smtp.subject, sizeof s_fx.channel.smtp.subject,
              "Order {{data.order_id}} confirmed");
    s_open ();
    s_deliver ("t-3", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char *text = s_file ("t-3.eml");
    cr_assert (strstr (text, "From: Shop <shop@example.com>\r\n"), "%s", text);
    cr_assert (strstr (text, "To: Ops <ann@example.com>\r\n"), "%s", text);
    cr_assert (strstr (text, "Subject: Order 1042 confirmed\r\n"), "%s", text);
    free (text);
}

Test (driver_file, text_template_renders_the_body)
{
    char template_path[256];
    snprintf (template_path, sizeof template_path, "%s/body.txt", s_fx.root);
    FILE *file = fopen (template_path, "w");
    cr_assert_not_null (file);
    fputs ("Hello {{data.customer.name}},\norder {{data.order_id}} is confirmed.\n", file);
    fclose (file);
    s_channel ("email", "out");
    snprintf (s_fx.channel.smtp.text_template, sizeof s_fx.channel.smtp.text_template,
              "%s", template_path);
    s_open ();
    s_deliver ("t-4", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char *text = s_file ("t-4.eml");
    const char *body = strstr (text, "\r\n\r\n");
    cr_assert_not_null (body);
    cr_assert_str_eq (body + 4, "Hello Ann,\r\norder 1042 is confirmed.\r\n");
    free (text);
}

Test (driver_file, missing_text_template_fails_open_naming_it)
{
    s_channel ("email", "out");
    snprintf (s_fx.channel.smtp.text_template, sizeof s_fx.channel.smtp.text_template,
              "%s/nope.txt", s_fx.root);
    char err[512] = "";
    s_fx.driver = hd_file_ops.open (&s_fx.channel, s_complete, NULL, err, sizeof err);
    cr_assert_null (s_fx.driver);
    cr_assert (strstr (err, "nope.txt"), "error should name the file: %s", err);
}

Test (driver_file, non_ascii_subject_is_encoded)
{
    s_channel ("email", "out");
    snprintf (s_fx.channel.smtp.subject, sizeof s_fx.channel.smtp.subject, "Bestätigung {{data.order_id}}");
    s_open ();
    s_deliver ("t-5", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char *text = s_file ("t-5.eml");
    //  "Bestätigung 1042" in UTF-8, base64.
    cr_assert (strstr (text, "\r\nSubject: =?UTF-8?B?QmVzdMOkdGlndW5nIDEwNDI=?=\r\n"), "%s", text);
    free (text);
}

Test (driver_file, header_injection_cannot_add_headers)
{
    s_channel ("email", "out");
    snprintf (s_fx.channel.smtp.to, sizeof s_fx.channel.smtp.to,
              "{{data.customer.name}} <{{data.customer.email}}>");
    snprintf (s_fx.channel.smtp.subject, sizeof s_fx.channel.smtp.subject,
              "Hi {{data.customer.name}}");
    s_open ();
    /*  A recipient with a line break is no recipient: nothing written. */
    const char *evil_email =
        "{\"specversion\":\"1.0\",\"id\":\"e-2\",\"source\":\"shop\",\"type\":\"order.confirmed\","
        "\"data\":{\"customer\":{\"email\":\"a@b.c\\r\\nBcc: evil@x.y\",\"name\":\"Eve\"}}}";
    s_deliver ("t-evil-email", 1, evil_email);
    cr_assert_eq (s_fx.result.outcome, HD_FAILED, "%s", s_fx.result.text);
    cr_assert (strstr (s_fx.result.text, "invalid recipient"), "%s", s_fx.result.text);
    const char *evil =
        "{\"specversion\":\"1.0\",\"id\":\"e-2\",\"source\":\"shop\",\"type\":\"order.confirmed\","
        "\"data\":{\"customer\":{\"email\":\"a@b.c\","
        "\"name\":\"Eve\\r\\nX-Evil: 1\\nReply-To: x@y\\rCc: z@z\\u0007Sender: n@n\"}}}";
    s_deliver ("t-evil", 1, evil);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char *text = s_file ("t-evil.eml");
    char *end = strstr (text, "\r\n\r\n");
    cr_assert_not_null (end);
    end[2] = '\0';     //  the header section, each line ending in CRLF
    static const char *allowed[] = {
        "From: ", "To: ", "Subject: ", "Date: ", "Message-ID: ", "MIME-Version: ",
        "X-Herald-Task-Id: ", "X-Herald-Attempt: ", "Content-Type: ", "Content-Transfer-Encoding: "
    };
    int lines = 0;
    for (char *line = text; *line; ) {
        char *eol = strstr (line, "\r\n");
        cr_assert_not_null (eol, "header line without CRLF");
        *eol = '\0';
        cr_assert_null (strchr (line, '\r'), "bare CR in header: %s", line);
        cr_assert_null (strchr (line, '\n'), "bare LF in header: %s", line);
        bool known = false;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            if (strncmp (line, allowed[i], strlen (allowed[i])) == 0)
                known = true;
        cr_assert (known, "unexpected header line: %s", line);
        lines++;
        line = eol + 2;
    }
    cr_assert_eq (lines, 10);
    free (text);
    char listing[512];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_str_eq (listing, "t-evil.eml", "the bad recipient's mail was not written");
}

Test (driver_file, event_without_recipient_fails)
{
    s_channel ("email", "out");
    s_open ();
    s_deliver ("t-6", 1, "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"data\":{}}");
    cr_assert_eq (s_fx.result.outcome, HD_FAILED);
    cr_assert (strstr (s_fx.result.text, "recipient"), "%s", s_fx.result.text);
    s_deliver ("t-7", 1, "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\","
                         "\"data\":{\"customer\":{\"email\":\"  \"}}}");
    cr_assert_eq (s_fx.result.outcome, HD_FAILED);
    char listing[512];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_str_eq (listing, "", "nothing written");
}

Test (driver_file, invalid_event_json_fails)
{
    s_channel ("inventory", "out");
    s_open ();
    s_deliver ("t-8", 1, "{\"id\": ");
    cr_assert_eq (s_fx.result.outcome, HD_FAILED);
    cr_assert (strstr (s_fx.result.text, "invalid event JSON"), "%s", s_fx.result.text);
    s_deliver ("t-9", 1, "[1, 2]");
    cr_assert_eq (s_fx.result.outcome, HD_FAILED);
}

Test (driver_file, task_id_that_is_not_a_file_name_fails)
{
    s_channel ("inventory", "out");
    s_open ();
    s_deliver ("../escape", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_FAILED);
    s_deliver (".hidden", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_FAILED);
    char listing[512];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_str_eq (listing, "");
}

Test (driver_file, directory_under_a_regular_file_fails_open)
{
    char file_path[256];
    snprintf (file_path, sizeof file_path, "%s/plain", s_fx.root);
    FILE *file = fopen (file_path, "w");
    cr_assert_not_null (file);
    fclose (file);
    s_channel ("inventory", "plain/out");
    char err[512] = "";
    s_fx.driver = hd_file_ops.open (&s_fx.channel, s_complete, NULL, err, sizeof err);
    cr_assert_null (s_fx.driver);
    cr_assert (strstr (err, s_fx.channel.dir), "error should name the path: %s", err);
}

Test (driver_file, directory_in_proc_fails_open)
{
    snprintf (s_fx.channel.name, sizeof s_fx.channel.name, "inventory");
    snprintf (s_fx.channel.dir, sizeof s_fx.channel.dir, "/proc/herald-no-such/out");
    char err[512] = "";
    s_fx.driver = hd_file_ops.open (&s_fx.channel, s_complete, NULL, err, sizeof err);
    cr_assert_null (s_fx.driver);
    cr_assert (strstr (err, "/proc/herald-no-such/out"), "error should name the path: %s", err);
}

Test (driver_file, write_error_is_a_retry_naming_the_file)
{
    s_channel ("inventory", "out");
    s_open ();
    //  The directory becomes a regular file under the open driver.
    cr_assert_eq (rmdir (s_fx.channel.dir), 0);
    FILE *file = fopen (s_fx.channel.dir, "w");
    cr_assert_not_null (file);
    fclose (file);
    s_deliver ("t-10", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_RETRY);
    char expected[HERALD_PATH_MAX + 64];
    snprintf (expected, sizeof expected, "write %s/t-10.json: ", s_fx.channel.dir);
    cr_assert (strncmp (s_fx.result.text, expected, strlen (expected)) == 0,
               "got: %s", s_fx.result.text);
}

Test (driver_file, removed_directory_is_recreated)
{
    s_channel ("inventory", "out");
    s_open ();
    cr_assert_eq (rmdir (s_fx.channel.dir), 0);
    s_deliver ("t-11", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char listing[512];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_str_eq (listing, "t-11.json");
}

Test (driver_file, missing_dir_setting_fails_open)
{
    snprintf (s_fx.channel.name, sizeof s_fx.channel.name, "inventory");
    char err[512] = "";
    s_fx.driver = hd_file_ops.open (&s_fx.channel, s_complete, NULL, err, sizeof err);
    cr_assert_null (s_fx.driver);
    cr_assert (strstr (err, "dir"), "%s", err);
}

Test (driver_file, both_templates_make_the_multipart_mail_smtp_sends)
{
    char text_path[256], html_path[256];
    snprintf (text_path, sizeof text_path, "%s/body.txt", s_fx.root);
    snprintf (html_path, sizeof html_path, "%s/body.html", s_fx.root);
    FILE *file = fopen (text_path, "w");
    cr_assert_not_null (file);
    fputs ("Hello {{data.customer.name}}\n", file);
    fclose (file);
    file = fopen (html_path, "w");
    cr_assert_not_null (file);
    fputs ("<p>Hello {{data.customer.name}}</p>\n", file);
    fclose (file);
    s_channel ("email", "out");
    snprintf (s_fx.channel.smtp.text_template, sizeof s_fx.channel.smtp.text_template, "%s", text_path);
    snprintf (s_fx.channel.smtp.html_template, sizeof s_fx.channel.smtp.html_template, "%s", html_path);
    s_open ();
    s_deliver ("t-12", 1, s_event);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    char *text = s_file ("t-12.eml");
    cr_assert (strstr (text, "\r\nContent-Type: multipart/alternative; boundary=\"=_herald_t-12_0\"\r\n"),
               "%s", text);
    const char *plain = strstr (text, "Content-Type: text/plain; charset=utf-8\r\n"
                                      "Content-Transfer-Encoding: quoted-printable\r\n\r\nHello Ann\r\n");
    const char *html = strstr (text, "Content-Type: text/html; charset=utf-8\r\n"
                                     "Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Hello Ann</p>\r\n");
    cr_assert (plain && html && plain < html, "text part then html part: %s", text);
    cr_assert (strstr (text, "\r\n--=_herald_t-12_0--\r\n"), "%s", text);
    free (text);
}

/*  A round of several deliveries is made durable together: nothing is
    complete (nor has its final name) before flush(), everything after. */
Test (driver_file, a_round_completes_at_flush)
{
    s_channel ("inventory", "out");
    s_open ();
    char id[64], event[256];
    for (int i = 0; i < 20; i++) {
        snprintf (id, sizeof id, "uid%02d.inventory", i);
        snprintf (event, sizeof event, "{\"specversion\":\"1.0\",\"id\":\"e%d\",\"source\":\"s\","
                  "\"type\":\"order.confirmed\",\"data\":{\"order_id\":%d}}", i, i);
        hd_task_t task = { .task_id = id, .attempt = 1, .lease = (uint64_t) i + 1,
                           .channel = "inventory", .event_json = event, .event_len = strlen (event) };
        cr_assert_eq (hd_file_ops.start (s_fx.driver, &task), 0);
    }
    cr_assert_eq (s_fx.calls, 0, "nothing complete before the round is durable");
    cr_assert_eq (hd_file_ops.in_progress (s_fx.driver), 20);
    char listing[4096];
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert_null (strstr (listing, "uid00.inventory.json"), "no final name before flush: %s", listing);
    hd_file_ops.flush (s_fx.driver);
    cr_assert_eq (s_fx.calls, 20);
    cr_assert_eq (s_fx.result.outcome, HD_DONE, "%s", s_fx.result.text);
    s_listing (s_fx.channel.dir, listing, sizeof listing);
    cr_assert (strstr (listing, "uid00.inventory.json") && strstr (listing, "uid19.inventory.json"), "%s",
               listing);
    cr_assert_null (strstr (listing, ".tmp."), "no temporary file left: %s", listing);
}
