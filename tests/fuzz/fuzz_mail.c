/*  fuzz_mail: libFuzzer target for the email builder (workers/mail.c),
    about header injection. Input: byte 0 picks one of four trusted
    settings (From, To and Subject templates, text/html templates), byte 1
    is the attempt, then a task id up to the first "\n" (the input has
    none: a fixed one), then the event JSON: what a producer controls.
    The built message is parsed back and must keep mail.h's contract:
    - every line ends in CRLF, no bare CR or LF, no NUL;
    - the headers are exactly From, To, Subject, Date, Message-ID,
      MIME-Version, X-Herald-Task-Id, X-Herald-Attempt, Content-Type (and
      Content-Transfer-Encoding for a single part), in that order: event
      data adds none;
    - the envelope recipient is one plain address, the one the To template
      renders, and the To header holds that address once, after a display
      name that decodes (atoms, one quoted string or encoded words) to the
      rendered name and nothing else;
    - the Subject decodes to the rendered subject; no plain text holds
      "=?" (a reader would decode it as an encoded word);
    - no line is longer than 76 bytes unless it holds the address or the
      task id;
    - the body is one part, or exactly two (text/plain, text/html) between
      the boundary lines; each is valid quoted-printable that decodes to
      the rendered template. */
#include <jansson.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "mail.h"
#include "template.h"

#define S_SETTINGS 4
#define S_MAX_LINES 20000

typedef struct {
    const char *from;
    const char *from_header;        /* the From header's value */
    const char *to_address;         /* the address part of the To template */
    const char *to_display;         /* its display part, or NULL */
    const char *subject;
    bool text, html;                /* templates set */
} s_setting_t;

static const char *s_text_tmpl =
    "Hello {{data.customer.name}},\n{{data.note | \"\"}}\nOrder {{data.order_id}}: {{data.items}}\n";
static const char *s_html_tmpl =
    "<p>Hello {{data.customer.name}}</p>\n<p>{{ data.note | \"no note\" }}</p>\n";

static const s_setting_t s_settings[S_SETTINGS] = {
    { "Shop <shop@example.com>", "Shop <shop@example.com>", "{{data.customer.email}}", NULL,
      "Order {{data.order_id}} for {{data.customer.name}}", true, true },
    { "Boutique Zo\xc3\xab <shop@example.com>", "=?UTF-8?B?Qm91dGlxdWUgWm/Dqw==?= <shop@example.com>",
      "{{data.customer.email}}", "{{data.customer.name}}", "{{data.subject}}", true, false },
    { "shop@example.com", "shop@example.com", "{{data.customer.email}}",
      "{{data.customer.name | \"Client\"}}", "{{data.customer.name}}", false, true },
    { "\"Shop, Inc.\" <shop@example.com>", "\"Shop, Inc.\" <shop@example.com>", "{{data.email}}",
      NULL, "{{type}}: {{data.note}}", false, false },
};

static hd_mail_t *s_mail[S_SETTINGS];

static void
s_write (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    fuzz_check (file && fputs (text, file) >= 0 && fclose (file) == 0, "cannot write %s", path);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    char dir[] = "/tmp/herald-fuzz-mail-XXXXXX";
    fuzz_check (mkdtemp (dir) != NULL, "mkdtemp failed");
    char text[64], html[64];
    snprintf (text, sizeof text, "%s/text.txt", dir);
    snprintf (html, sizeof html, "%s/html.html", dir);
    s_write (text, s_text_tmpl);
    s_write (html, s_html_tmpl);
    for (int i = 0; i < S_SETTINGS; i++) {
        const s_setting_t *s = &s_settings[i];
        char to[128];
        if (s->to_display)
            snprintf (to, sizeof to, "%s <%s>", s->to_display, s->to_address);
        else
            snprintf (to, sizeof to, "%s", s->to_address);
        hd_mail_config_t config = { s->from, to, s->subject, s->text? text: NULL, s->html? html: NULL };
        char err[HERALD_ERR_MAX];
        s_mail[i] = hd_mail_new (&config, err, sizeof err);
        fuzz_check (s_mail[i] != NULL, "hd_mail_new: %s", err);
    }
    unlink (text);
    unlink (html);
    rmdir (dir);
    return 0;
}

//  --------------------------------------------------------------------------
//  Decoding what the message says

static int
s_base64_value (char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/*  Appends the base64 text (len bytes, padded) decoded to out. */
static bool
s_base64_decode (const char *text, size_t len, char *out, size_t *out_len, size_t out_size)
{
    if (len % 4)
        return false;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (text[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            }
            else
            if (pad || (v[k] = s_base64_value (text[i + k])) < 0)
                return false;
        }
        unsigned long group = (unsigned long) v[0] << 18 | (unsigned long) v[1] << 12
                            | (unsigned long) v[2] << 6 | (unsigned long) v[3];
        unsigned char bytes[3] = { (unsigned char) (group >> 16), (unsigned char) (group >> 8),
                                   (unsigned char) group };
        for (int k = 0; k < 3 - pad; k++) {
            if (*out_len + 1 >= out_size)
                return false;
            out[(*out_len)++] = (char) bytes[k];
        }
    }
    out[*out_len] = '\0';
    return true;
}

/*  Decodes a header value made of RFC 2047 words ("=?UTF-8?B?...?=")
    separated by single spaces (what folding leaves). */
static bool
s_decode_words (const char *value, char *out, size_t out_size)
{
    size_t out_len = 0;
    out[0] = '\0';
    const char *p = value;
    while (*p) {
        if (strncmp (p, "=?UTF-8?B?", 10) != 0)
            return false;
        const char *start = p + 10;
        const char *end = strstr (start, "?=");
        if (!end || (size_t) (end + 2 - p) > 75)
            return false;
        if (!s_base64_decode (start, (size_t) (end - start), out, &out_len, out_size))
            return false;
        p = end + 2;
        if (*p == ' ')
            p++;
        else
        if (*p)
            return false;
    }
    return true;
}

static bool
s_atext (char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c && strchr ("!#$%&'*+-/=?^_`{|}~", c));
}

/*  A display name (phrase) decoded: atoms and spaces, one quoted string,
    or encoded words. False if it is none of these. */
static bool
s_decode_phrase (const char *phrase, char *out, size_t out_size)
{
    size_t len = strlen (phrase);
    if (strncmp (phrase, "=?UTF-8?B?", 10) == 0)
        return s_decode_words (phrase, out, out_size);
    if (len >= 2 && phrase[0] == '"' && phrase[len - 1] == '"' && !strstr (phrase, "=?")) {
        size_t o = 0;
        for (size_t i = 1; i + 1 < len; i++) {
            char c = phrase[i];
            if (c == '"')
                return false;           /* an unescaped quote ends the string early */
            if (c == '\\') {
                if (i + 2 >= len)
                    return false;
                c = phrase[++i];
            }
            if ((unsigned char) c < 0x20 || c == 0x7f || o + 1 >= out_size)
                return false;
            out[o++] = c;
        }
        out[o] = '\0';
        return true;
    }
    if (strstr (phrase, "=?"))
        return false;           /* a reader would decode it as an encoded word */
    for (const char *p = phrase; *p; p++)
        if (!s_atext (*p) && *p != ' ')
            return false;
    if (len >= out_size)
        return false;
    memcpy (out, phrase, len + 1);
    return true;
}

/*  The one-address check of mail.h, written again. */
static bool
s_plain_address (const char *address)
{
    size_t len = strlen (address), ats = 0;
    for (const char *p = address; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c <= 0x20 || c >= 0x7f || strchr ("<>,;:\"()[]\\", c))
            return false;
        ats += c == '@';
    }
    return len >= 3 && len <= HD_MAIL_ADDRESS_MAX && ats == 1 && address[0] != '@'
        && address[len - 1] != '@';
}

/*  Quoted-printable lines [first, end) decoded into out (LF line ends). */
static void
s_decode_qp (char **lines, size_t first, size_t end, herald_text_t *out, const char *what)
{
    for (size_t i = first; i < end; i++) {
        const char *line = lines[i];
        size_t len = strlen (line);
        fuzz_check (len <= 76, "%s: quoted-printable line of %zu bytes", what, len);
        bool soft = len > 0 && line[len - 1] == '=';
        size_t text_len = soft? len - 1: len;
        fuzz_check (soft || len == 0 || (line[len - 1] != ' ' && line[len - 1] != '\t'),
                    "%s: trailing white space on a line", what);
        for (size_t k = 0; k < text_len; k++) {
            unsigned char c = (unsigned char) line[k];
            if (c == '=') {
                fuzz_check (k + 2 < text_len && strchr ("0123456789ABCDEF", line[k + 1])
                            && strchr ("0123456789ABCDEF", line[k + 2]),
                            "%s: bad escape in %s", what, line);
                char hex[3] = { line[k + 1], line[k + 2], 0 };
                herald_text_putc (out, (char) strtol (hex, NULL, 16));
                k += 2;
                continue;
            }
            fuzz_check ((c >= 33 && c <= 126) || c == ' ' || c == '\t',
                        "%s: byte 0x%02x not encoded", what, c);
            herald_text_putc (out, (char) c);
        }
        if (!soft)
            herald_text_putc (out, '\n');
    }
}

/*  text with each CRLF made LF: what a quoted-printable body decodes to. */
static char *
s_expected_body (const char *text, bool add_final_newline)
{
    herald_text_t out = { 0 };
    for (const char *p = text; *p; p++) {
        if (p[0] == '\r' && p[1] == '\n')
            continue;
        herald_text_putc (&out, *p);
    }
    size_t len = out.len;
    if (add_final_newline && (len == 0 || out.data[len - 1] != '\n'))
        herald_text_putc (&out, '\n');
    if (!out.data)
        herald_text_puts (&out, "");
    fuzz_check (!out.failed, "out of memory");
    return out.data;
}

static void
s_check_part (char **lines, size_t first, size_t end, const char *expected, bool single,
              const char *what)
{
    herald_text_t decoded = { 0 };
    herald_text_puts (&decoded, "");
    s_decode_qp (lines, first, end, &decoded, what);
    if (!single) {
        /*  The CRLF before a boundary line belongs to the boundary. */
        fuzz_check (decoded.len > 0 && decoded.data[decoded.len - 1] == '\n',
                    "%s: no line break before the boundary", what);
        decoded.data[--decoded.len] = '\0';
    }
    char *want = s_expected_body (expected, single);
    fuzz_check (strcmp (decoded.data, want) == 0, "%s: decodes to\n%s\ninstead of\n%s", what,
                decoded.data, want);
    free (want);
    free (decoded.data);
}

//  --------------------------------------------------------------------------
//  The message

typedef struct {
    char *name;
    char *value;                    /* unfolded: CRLF + space becomes a space */
} s_header_t;

static char *
s_render (const char *tmpl, const json_t *event, hd_escape_t mode)
{
    char err[256];
    char *out = hd_template_render (tmpl, event, mode, err, sizeof err);
    fuzz_check (out != NULL, "mail rendered but %s does not: %s", tmpl, err);
    return out;
}

static char *
s_trim (char *text)
{
    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen (text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        text[--len] = '\0';
    return text;
}

static void
s_check_message (const s_setting_t *setting, const char *message, size_t len, const char *rcpt,
                 const char *task_id, unsigned attempt, const json_t *event)
{
    fuzz_check (strlen (message) == len, "NUL byte in the message");
    for (size_t i = 0; i < len; i++) {
        if (message[i] == '\r')
            fuzz_check (message[i + 1] == '\n', "bare CR at byte %zu", i);
        if (message[i] == '\n')
            fuzz_check (i > 0 && message[i - 1] == '\r', "bare LF at byte %zu", i);
    }
    fuzz_check (len >= 2 && strcmp (message + len - 2, "\r\n") == 0, "no CRLF at the end");

    /*  Lines, without their CRLF. */
    char *copy = fuzz_strndup (message, len);
    char **lines = calloc (S_MAX_LINES, sizeof *lines);
    fuzz_check (lines != NULL, "out of memory");
    size_t count = 0;
    for (char *p = copy; *p; ) {
        char *eol = strstr (p, "\r\n");
        *eol = '\0';
        fuzz_check (count < S_MAX_LINES, "too many lines");
        lines[count++] = p;
        p = eol + 2;
    }
    /*  A longer line is one an address or the task id makes long: the
        rest of it is a header name and brackets. */
    for (size_t i = 0; i < count; i++) {
        size_t line_len = strlen (lines[i]);
        bool long_token = (strstr (lines[i], rcpt) && line_len - strlen (rcpt) <= 24)
                       || (strstr (lines[i], task_id) && line_len - strlen (task_id) <= 24);
        fuzz_check (line_len <= 76 || long_token, "line %zu of %zu bytes: %s", i, line_len, lines[i]);
    }

    /*  Headers, unfolded. */
    s_header_t headers[16];
    size_t header_count = 0, i = 0;
    herald_text_t unfolded[16];
    memset (unfolded, 0, sizeof unfolded);
    for (; i < count && lines[i][0]; i++) {
        if (lines[i][0] == ' ' || lines[i][0] == '\t') {
            fuzz_check (header_count > 0, "continuation line first");
            herald_text_puts (&unfolded[header_count - 1], lines[i]);
            continue;
        }
        fuzz_check (header_count < 16, "more than 16 headers");
        char *colon = strchr (lines[i], ':');
        fuzz_check (colon && colon[1] == ' ', "header line without a name: %s", lines[i]);
        *colon = '\0';
        headers[header_count].name = lines[i];
        herald_text_puts (&unfolded[header_count], colon + 2);
        header_count++;
    }
    fuzz_check (i < count, "no end of headers");
    size_t body_start = i + 1;
    for (size_t h = 0; h < header_count; h++)
        headers[h].value = unfolded[h].data? unfolded[h].data: (char *) "";
    bool multipart = setting->text && setting->html;
    const char *names[] = { "From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
                            "X-Herald-Task-Id", "X-Herald-Attempt", "Content-Type",
                            "Content-Transfer-Encoding" };
    size_t expected_headers = multipart? 9: 10;
    fuzz_check (header_count == expected_headers, "%zu headers instead of %zu", header_count,
                expected_headers);
    for (size_t h = 0; h < header_count; h++)
        fuzz_check (strcmp (headers[h].name, names[h]) == 0, "header %zu is %s, not %s", h,
                    headers[h].name, names[h]);

    fuzz_check (strcmp (headers[0].value, setting->from_header) == 0, "From: %s", headers[0].value);

    /*  The recipient: the rendered address, plain, and the To header's. */
    char *address = s_render (setting->to_address, event, HD_ESCAPE_HEADER);
    fuzz_check (strcmp (rcpt, s_trim (address)) == 0, "recipient %s is not the rendered %s", rcpt,
                address);
    fuzz_check (s_plain_address (rcpt), "recipient is not one plain address: %s", rcpt);
    const char *to = headers[1].value;
    char *display = setting->to_display? s_render (setting->to_display, event, HD_ESCAPE_HEADER): NULL;
    const char *name = display? s_trim (display): "";
    if (*name) {
        size_t to_len = strlen (to), rcpt_len = strlen (rcpt);
        fuzz_check (to_len > rcpt_len + 3 && to[to_len - 1] == '>'
                    && to[to_len - rcpt_len - 2] == '<'
                    && memcmp (to + to_len - rcpt_len - 1, rcpt, rcpt_len) == 0
                    && to[to_len - rcpt_len - 3] == ' ',
                    "To does not end with ' <%s>': %s", rcpt, to);
        char *phrase = fuzz_strndup (to, to_len - rcpt_len - 3);
        char decoded[4096];
        fuzz_check (s_decode_phrase (phrase, decoded, sizeof decoded), "To: not a display name: %s",
                    phrase);
        fuzz_check (strcmp (decoded, name) == 0, "To: display name decodes to %s, not %s", decoded,
                    name);
        free (phrase);
    }
    else
        fuzz_check (strcmp (to, rcpt) == 0, "To: %s for the recipient %s", to, rcpt);

    char *subject = s_render (setting->subject, event, HD_ESCAPE_HEADER);
    const char *shown = headers[2].value;
    if (strncmp (shown, "=?UTF-8?B?", 10) == 0) {
        char decoded[8192];
        fuzz_check (s_decode_words (shown, decoded, sizeof decoded), "Subject: bad encoded words: %s",
                    shown);
        fuzz_check (strcmp (decoded, subject) == 0, "Subject decodes to %s, not %s", decoded, subject);
    }
    else {
        fuzz_check (strcmp (shown, subject) == 0, "Subject: %s, not %s", shown, subject);
        fuzz_check (!strstr (shown, "=?"), "Subject: a reader would decode %s", shown);
        for (const char *p = shown; *p; p++)
            fuzz_check ((unsigned char) *p >= 0x20 && (unsigned char) *p < 0x7f,
                        "Subject: byte 0x%02x not encoded", (unsigned) (unsigned char) *p);
    }
    char want[512];
    snprintf (want, sizeof want, "<%s@herald>", task_id);
    fuzz_check (strcmp (headers[4].value, want) == 0, "Message-ID: %s", headers[4].value);
    fuzz_check (strcmp (headers[5].value, "1.0") == 0, "MIME-Version: %s", headers[5].value);
    fuzz_check (strcmp (headers[6].value, task_id) == 0, "X-Herald-Task-Id: %s", headers[6].value);
    snprintf (want, sizeof want, "%u", attempt);
    fuzz_check (strcmp (headers[7].value, want) == 0, "X-Herald-Attempt: %s", headers[7].value);

    /*  The body. */
    char *text = NULL, *html = NULL;
    if (setting->text)
        text = s_render (s_text_tmpl, event, HD_ESCAPE_NONE);
    if (setting->html)
        html = s_render (s_html_tmpl, event, HD_ESCAPE_HTML);
    if (!text && !html) {
        const json_t *data = json_object_get (event, "data");
        text = json_is_string (data)? strdup (json_string_value (data))
             : data? json_dumps (data, JSON_INDENT (2) | JSON_ENCODE_ANY): strdup ("");
        fuzz_check (text != NULL, "out of memory");
    }
    if (multipart) {
        const char *ct = headers[8].value;
        const char *prefix = "multipart/alternative; boundary=\"";
        fuzz_check (strncmp (ct, prefix, strlen (prefix)) == 0 && ct[strlen (ct) - 1] == '"',
                    "Content-Type: %s", ct);
        char *boundary = fuzz_strndup (ct + strlen (prefix), strlen (ct) - strlen (prefix) - 1);
        char delimiter[256], close[256];
        snprintf (delimiter, sizeof delimiter, "--%s", boundary);
        snprintf (close, sizeof close, "--%s--", boundary);
        size_t at[3], found = 0;
        for (size_t k = body_start; k < count; k++) {
            if (strncmp (lines[k], delimiter, strlen (delimiter)) != 0)
                continue;
            fuzz_check (found < 3, "more than two parts");
            at[found++] = k;
            fuzz_check (strcmp (lines[k], found < 3? delimiter: close) == 0,
                        "line %zu starts like the boundary: %s", k, lines[k]);
        }
        fuzz_check (found == 3 && at[2] == count - 1, "%zu boundary lines, the last at %zu", found,
                    found? at[found - 1]: 0);
        const char *types[] = { "text/plain", "text/html" };
        const char *bodies[] = { text, html };
        for (int part = 0; part < 2; part++) {
            size_t k = at[part] + 1;
            char ct_want[80];
            snprintf (ct_want, sizeof ct_want, "Content-Type: %s; charset=utf-8", types[part]);
            fuzz_check (k + 2 < at[part + 1] && strcmp (lines[k], ct_want) == 0
                        && strcmp (lines[k + 1], "Content-Transfer-Encoding: quoted-printable") == 0
                        && lines[k + 2][0] == '\0', "part %d: headers", part);
            s_check_part (lines, k + 3, at[part + 1], bodies[part], false, types[part]);
        }
        free (boundary);
    }
    else {
        const char *type = text? "text/plain; charset=utf-8": "text/html; charset=utf-8";
        fuzz_check (strcmp (headers[8].value, type) == 0, "Content-Type: %s", headers[8].value);
        fuzz_check (strcmp (headers[9].value, "quoted-printable") == 0, "Content-Transfer-Encoding");
        s_check_part (lines, body_start, count, text? text: html, true, "body");
    }
    free (text);
    free (html);
    free (subject);
    free (display);
    free (address);
    for (size_t h = 0; h < 16; h++)
        free (unfolded[h].data);
    free (lines);
    free (copy);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int which = data[0] % S_SETTINGS;
    unsigned attempt = data[1];
    data += 2;
    size -= 2;
    size_t id_len, rest;
    char *task_id;
    if (fuzz_split (data, size, "\n", &id_len, &rest))
        task_id = fuzz_strndup (data, id_len);
    else {
        task_id = fuzz_strndup ("0123456789abcdef0123456789abcdef.email", 38);
        rest = 0;
    }
    /*  The event as the worker gets it: NUL-terminated, event_len bytes. */
    char *event_json = fuzz_strndup (data + rest, size - rest);
    hd_task_t task = { .task_id = task_id, .attempt = attempt, .lease = 1, .channel = "email",
                       .event_json = event_json, .event_len = size - rest };
    herald_text_t message = { 0 };
    char rcpt[HD_MAIL_ADDRESS_MAX + 1];
    char err[HERALD_ERR_MAX];
    err[0] = '\0';
    int rc = hd_mail_render (s_mail[which], &task, 1796000000000LL, &message, rcpt, sizeof rcpt,
                             err, sizeof err);
    if (rc == 0) {
        fuzz_check (!message.failed && message.data, "rendered, but the message failed");
        json_t *event = json_loadb (event_json, size - rest, 0, NULL);
        fuzz_check (json_is_object (event), "rendered an event that is not a JSON object");
        s_check_message (&s_settings[which], message.data, message.len, rcpt, task_id, attempt, event);
        json_decref (event);
    }
    else
        fuzz_check (rc == -1 && err[0] != '\0', "refused (%d) without saying why", rc);
    free (message.data);
    free (event_json);
    free (task_id);
    return 0;
}
