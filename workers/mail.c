/*  mail: renders an email task into one RFC 5322 / MIME message (contract
    in mail.h). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mail.h"
#include "template.h"

#define S_LINE_MAX        76        /* RFC 2045 / 2047: encoded lines, folding included */
#define S_WORD_INPUT_MAX  45        /* RFC 2047: 45 bytes -> 60 base64 chars, word <= 75 */
#define S_WORD_OVERHEAD   12        /* "=?UTF-8?B?" and "?=" */
#define S_BOUNDARY_MAX    96

struct _hd_mail_t {
    char *from;                     /* From header value, as configured */
    char *from_display;             /* its display name when it must be encoded, else NULL */
    char sender [HD_MAIL_ADDRESS_MAX + 1];  /* envelope sender: the address inside from */
    char *to_address;               /* template of the recipient address */
    char *to_display;               /* template of the display name, NULL without */
    char *to_shown;                 /* the To setting, for error texts */
    char *subject;                  /* template */
    char *text_tmpl;                /* text/plain template, NULL if not configured */
    char *html_tmpl;                /* text/html template, NULL if not configured */
    char *text_path;                /* for error texts */
    char *html_path;
};

//  --------------------------------------------------------------------------
//  Encodings

/*  Appends body as quoted-printable (RFC 2045) with CRLF line ends: LF and
    CRLF are hard line breaks, encoded lines are at most 76 characters. */
static void
s_encode_qp (herald_text_t *out, const char *body)
{
    static const char hex [] = "0123456789ABCDEF";
    size_t line_len = 0;
    for (const char *p = body; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c == '\n' || (c == '\r' && p [1] == '\n')) {
            if (c == '\r')
                p++;
            herald_text_append (out, "\r\n", 2);
            line_len = 0;
            continue;
        }
        bool at_line_end = p [1] == '\0' || p [1] == '\n' || (p [1] == '\r' && p [2] == '\n');
        char token [3];
        size_t token_len = 1;
        if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_line_end))
            token [0] = (char) c;
        else {
            token [0] = '=';
            token [1] = hex [c >> 4];
            token [2] = hex [c & 15];
            token_len = 3;
        }
        if (line_len + token_len > S_LINE_MAX - 1) {
            herald_text_append (out, "=\r\n", 3);
            line_len = 0;
        }
        herald_text_append (out, token, token_len);
        line_len += token_len;
    }
}

static void
s_encode_base64 (herald_text_t *out, const unsigned char *data, size_t len)
{
    static const char alphabet [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        unsigned long group = (unsigned long) data [i] << 16;
        if (i + 1 < len)
            group |= (unsigned long) data [i + 1] << 8;
        if (i + 2 < len)
            group |= data [i + 2];
        char quad [4] = {
            alphabet [(group >> 18) & 63], alphabet [(group >> 12) & 63],
            i + 1 < len ? alphabet [(group >> 6) & 63] : '=',
            i + 2 < len ? alphabet [group & 63] : '='
        };
        herald_text_append (out, quad, 4);
    }
}

static bool
s_is_ascii (const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if (*p >= 0x80)
            return false;
    return true;
}

/*  Bytes on the last line of out. */
static size_t
s_line_length (const herald_text_t *out)
{
    size_t len = out->len;
    while (len > 0 && out->data [len - 1] != '\n')
        len--;
    return out->len - len;
}

/*  Appends value as RFC 2047 encoded words (UTF-8, base64), folded on
    continuation lines of at most 76 bytes, never splitting a UTF-8
    sequence. */
static void
s_encode_words (herald_text_t *out, const char *value)
{
    size_t len = strlen (value);
    size_t pos = 0;
    while (pos < len) {
        /*  The first word fits after the header's name, the others after
            the folding space. */
        size_t used = pos > 0 ? 1 : s_line_length (out);
        size_t room = used + S_WORD_OVERHEAD + 4 < S_LINE_MAX
                    ? (S_LINE_MAX - used - S_WORD_OVERHEAD) / 4 * 3 : 3;
        size_t most = room < S_WORD_INPUT_MAX ? room : S_WORD_INPUT_MAX;
        size_t chunk = len - pos < most ? len - pos : most;
        while (chunk > 1 && pos + chunk < len
        &&     ((unsigned char) value [pos + chunk] & 0xC0) == 0x80)
            chunk--;
        if (pos > 0)
            herald_text_append (out, "\r\n ", 3);
        herald_text_puts (out, "=?UTF-8?B?");
        s_encode_base64 (out, (const unsigned char *) value + pos, chunk);
        herald_text_puts (out, "?=");
        pos += chunk;
    }
}

/*  True when text can go out as is: ASCII, and nothing a reader would
    decode as an encoded word ("=?UTF-8?B?QQ==?=" shows as "A"). */
static bool
s_plain_ok (const char *text)
{
    return s_is_ascii (text) && !strstr (text, "=?");
}

/*  Appends text folded before its spaces so that no line passes 76 bytes
    (RFC 5322 folding: unfolding gives text back). Returns false, having
    appended nothing, when a word is too long to fit any line. */
static bool
s_put_folded (herald_text_t *out, const char *text)
{
    /*  Pieces start at a space that follows a non-space and precedes
        more text, so that no line is only white space. */
    size_t len = strlen (text);
    for (int pass = 0; pass < 2; pass++) {
        size_t used = s_line_length (out);
        size_t start = 0;
        while (start < len) {
            size_t end = start + 1;
            while (end < len && !(text [end] == ' ' && text [end - 1] != ' '
                                  && text [end + strspn (text + end, " ")] != '\0'))
                end++;
            size_t piece = end - start;
            bool fold = start > 0 && used + piece > S_LINE_MAX;
            if (pass == 0 && (fold? piece: used + piece) > S_LINE_MAX)
                return false;
            if (pass == 1) {
                if (fold)
                    herald_text_append (out, "\r\n", 2);
                herald_text_append (out, text + start, piece);
            }
            used = fold? piece: used + piece;
            start = end;
        }
    }
    return true;
}

/*  Appends an unstructured header value (Subject): plain ASCII folded at
    its spaces, else (other text, or a word too long for a line) encoded
    words. value holds no control characters (rendered in HD_ESCAPE_HEADER
    mode). */
static void
s_put_unstructured (herald_text_t *out, const char *value)
{
    if (!s_plain_ok (value) || !s_put_folded (out, value))
        s_encode_words (out, value);
}

/*  True for RFC 5322 atext, the characters of an atom. */
static bool
s_atext (char c)
{
    return isalnum ((unsigned char) c) || (c && strchr ("!#$%&'*+-/=?^_`{|}~", c));
}

/*  Appends a display name (a phrase): as is when it is atoms and spaces, a
    quoted string when other ASCII (so "Eve, evil@example.com" stays one
    name), either folded at its spaces; encoded words when not ASCII or
    when a word is too long for a line. */
static void
s_put_phrase (herald_text_t *out, const char *name)
{
    if (!s_plain_ok (name)) {
        s_encode_words (out, name);
        return;
    }
    bool atoms = true;
    for (const char *p = name; *p; p++)
        if (!s_atext (*p) && *p != ' ')
            atoms = false;
    herald_text_t phrase = { 0 };
    if (atoms)
        herald_text_puts (&phrase, name);
    else {
        herald_text_putc (&phrase, '"');
        for (const char *p = name; *p; p++) {
            if (*p == '"' || *p == '\\')
                herald_text_putc (&phrase, '\\');
            herald_text_putc (&phrase, *p);
        }
        herald_text_putc (&phrase, '"');
    }
    if (phrase.failed)
        out->failed = true;
    else
    if (!s_put_folded (out, phrase.data? phrase.data: ""))
        s_encode_words (out, name);
    free (phrase.data);
}

static void
s_format_date (int64_t wall_ms, char *buf, size_t size)
{
    static const char *days [] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *months [] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm tm;
    if (!gmtime_r (&seconds, &tm)) {
        snprintf (buf, size, "Thu, 01 Jan 1970 00:00:00 +0000");
        return;
    }
    snprintf (buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
              days [tm.tm_wday % 7], tm.tm_mday, months [tm.tm_mon % 12], tm.tm_year + 1900,
              tm.tm_hour, tm.tm_min, tm.tm_sec);
}

//  --------------------------------------------------------------------------
//  Addresses

/*  True if address is one plain mailbox: local@domain, printable ASCII, no
    spaces, commas, angle brackets, quotes or other specials. */
static bool
s_valid_address (const char *address)
{
    size_t len = strlen (address);
    if (len < 3 || len > HD_MAIL_ADDRESS_MAX)
        return false;
    const char *at = strchr (address, '@');
    if (!at || at == address || at [1] == '\0' || strchr (at + 1, '@') || at - address > 64)
        return false;
    for (const char *p = address; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c <= 0x20 || c >= 0x7f || strchr ("<>,;:\"()[]\\", c))
            return false;
    }
    return true;
}

/*  Takes the envelope sender out of a From value: "Shop <shop@example.com>"
    or "shop@example.com". Returns 0 or -1. */
static int
s_parse_from (const char *from, char *address, size_t size)
{
    for (const char *p = from; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return -1;
    const char *open = strrchr (from, '<');
    const char *start = open ? open + 1 : from;
    const char *end = open ? strchr (start, '>') : from + strlen (from);
    if (!end || (open && end [1] != '\0') || (size_t) (end - start) >= size)
        return -1;
    memcpy (address, start, (size_t) (end - start));
    address [end - start] = '\0';
    return s_valid_address (address) ? 0 : -1;
}

/*  text without its leading and trailing spaces, as a new string. */
static char *
s_trimmed (const char *text, size_t len)
{
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text [len - 1] == ' ' || text [len - 1] == '\t'))
        len--;
    return strndup (text, len);
}

/*  True if task_id is usable in a Message-ID and a header: [A-Za-z0-9._-]. */
static bool
s_valid_task_id (const char *task_id)
{
    size_t len = strlen (task_id);
    return len > 0 && len <= HP_MAX_ID
        && strspn (task_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            "0123456789._-") == len;
}

//  --------------------------------------------------------------------------
//  Renderer

hd_mail_t *
hd_mail_new (const hd_mail_config_t *config, char *err, size_t errlen)
{
    hd_mail_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    char why [HERALD_ERR_MAX];
    const char *from = config->from ? config->from : "";
    if (s_parse_from (from, self->sender, sizeof self->sender)) {
        snprintf (err, errlen, "smtp.from \"%.200s\" is not an address "
                  "(\"shop@example.com\" or \"Shop <shop@example.com>\")", from);
        goto fail;
    }
    if (!(self->from = strdup (from)))
        goto no_memory;
    if (!s_is_ascii (from)) {
        /*  "Boutique Zoë <x@y>": the display name is encoded, unquoted first. */
        const char *open = strrchr (from, '<');
        char *display = s_trimmed (from, (size_t) (open - from));
        if (!display)
            goto no_memory;
        size_t len = strlen (display);
        if (len >= 2 && display [0] == '"' && display [len - 1] == '"') {
            memmove (display, display + 1, len - 2);
            display [len - 2] = '\0';
        }
        self->from_display = display;
    }

    /*  To: "{{addr}}", or "Display <{{addr}}>" where only the template
        itself makes the angle brackets. */
    const char *to = config->to ? config->to : "";
    if (!(self->to_shown = strdup (to)))
        goto no_memory;
    char *to_trimmed = s_trimmed (to, strlen (to));
    if (!to_trimmed)
        goto no_memory;
    size_t to_len = strlen (to_trimmed);
    char *open = strrchr (to_trimmed, '<');
    if (to_len > 0 && to_trimmed [to_len - 1] == '>' && open) {
        self->to_address = s_trimmed (open + 1, (size_t) (to_trimmed + to_len - 1 - open - 1));
        self->to_display = s_trimmed (to_trimmed, (size_t) (open - to_trimmed));
        free (to_trimmed);
        if (!self->to_address || !self->to_display)
            goto no_memory;
        if (!*self->to_display) {
            free (self->to_display);
            self->to_display = NULL;
        }
    }
    else
        self->to_address = to_trimmed;
    if (!*self->to_address) {
        snprintf (err, errlen, "smtp.to is not set");
        goto fail;
    }
    if (hd_template_check (self->to_address, why, sizeof why)
    || (self->to_display && hd_template_check (self->to_display, why, sizeof why))) {
        snprintf (err, errlen, "smtp.to: %s", why);
        goto fail;
    }
    if (!(self->subject = strdup (config->subject ? config->subject : "")))
        goto no_memory;
    if (hd_template_check (self->subject, why, sizeof why)) {
        snprintf (err, errlen, "smtp.subject: %s", why);
        goto fail;
    }
    if (config->text_template && config->text_template [0]) {
        if (!(self->text_path = strdup (config->text_template)))
            goto no_memory;
        if (!(self->text_tmpl = hd_template_load (config->text_template, why, sizeof why))) {
            snprintf (err, errlen, "smtp.text_template: %s", why);
            goto fail;
        }
    }
    if (config->html_template && config->html_template [0]) {
        if (!(self->html_path = strdup (config->html_template)))
            goto no_memory;
        if (!(self->html_tmpl = hd_template_load (config->html_template, why, sizeof why))) {
            snprintf (err, errlen, "smtp.html_template: %s", why);
            goto fail;
        }
    }
    return self;

no_memory:
    snprintf (err, errlen, "out of memory");
fail:
    hd_mail_destroy (&self);
    return NULL;
}

void
hd_mail_destroy (hd_mail_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_mail_t *self = *self_p;
    free (self->from);
    free (self->from_display);
    free (self->to_address);
    free (self->to_display);
    free (self->to_shown);
    free (self->subject);
    free (self->text_tmpl);
    free (self->html_tmpl);
    free (self->text_path);
    free (self->html_path);
    free (self);
    *self_p = NULL;
}

const char *
hd_mail_sender (const hd_mail_t *self)
{
    return self->sender;
}

/*  The body without templates: the event's data (a string as is, other
    values as indented JSON). Caller frees; NULL if out of memory. */
static char *
s_data_text (const json_t *event)
{
    const json_t *data = json_object_get (event, "data");
    if (json_is_string (data))
        return strdup (json_string_value (data));
    if (data)
        return json_dumps (data, JSON_INDENT (2) | JSON_ENCODE_ANY);
    return strdup ("");
}

static void
s_put_part_headers (herald_text_t *mail, const char *type)
{
    herald_text_printf (mail, "Content-Type: %s; charset=utf-8\r\n", type);
    herald_text_puts (mail, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
}

static void
s_put_part (herald_text_t *mail, const char *boundary, const char *type, const herald_text_t *body)
{
    herald_text_printf (mail, "--%s\r\n", boundary);
    s_put_part_headers (mail, type);
    herald_text_append (mail, body->data ? body->data : "", body->len);
    herald_text_puts (mail, "\r\n");
}

/*  The headers from From to X-Herald-Attempt, values rendered for event. */
static int
s_put_headers (const hd_mail_t *self, const hd_task_t *task, const json_t *event, int64_t date_ms,
               herald_text_t *mail, char *rcpt, size_t rcpt_size, char *err, size_t errlen)
{
    char why [256];
    char *address = NULL, *display = NULL, *subject = NULL;
    int rc = -1;
    char *rendered = hd_template_render (self->to_address, event, HD_ESCAPE_HEADER, why, sizeof why);
    if (!rendered) {
        snprintf (err, errlen, "no recipient: smtp.to: %s", why);
        goto done;
    }
    address = s_trimmed (rendered, strlen (rendered));
    free (rendered);
    if (!address)
        goto no_memory;
    if (!*address) {
        snprintf (err, errlen, "no recipient: smtp.to %.200s is empty for this event",
                  self->to_shown);
        goto done;
    }
    if (!s_valid_address (address) || strlen (address) >= rcpt_size) {
        snprintf (err, errlen, "invalid recipient \"%.200s\": not one plain address", address);
        goto done;
    }
    if (self->to_display) {
        rendered = hd_template_render (self->to_display, event, HD_ESCAPE_HEADER, why, sizeof why);
        if (!rendered) {
            snprintf (err, errlen, "smtp.to: %s", why);
            goto done;
        }
        display = s_trimmed (rendered, strlen (rendered));
        free (rendered);
        if (!display)
            goto no_memory;
    }
    if (!(subject = hd_template_render (self->subject, event, HD_ESCAPE_HEADER, why, sizeof why))) {
        snprintf (err, errlen, "smtp.subject: %s", why);
        goto done;
    }
    snprintf (rcpt, rcpt_size, "%s", address);

    char date [64];
    s_format_date (date_ms, date, sizeof date);
    herald_text_puts (mail, "From: ");
    if (self->from_display) {
        if (*self->from_display) {
            s_put_phrase (mail, self->from_display);
            herald_text_putc (mail, ' ');
        }
        herald_text_printf (mail, "<%s>", self->sender);
    }
    else
        herald_text_puts (mail, self->from);
    herald_text_puts (mail, "\r\nTo: ");
    if (display && *display) {
        s_put_phrase (mail, display);
        bool fold = s_line_length (mail) + strlen (address) + 3 > S_LINE_MAX;
        herald_text_printf (mail, "%s<%s>", fold ? "\r\n " : " ", address);
    }
    else
        herald_text_puts (mail, address);
    herald_text_puts (mail, "\r\nSubject: ");
    s_put_unstructured (mail, subject);
    herald_text_printf (mail, "\r\nDate: %s\r\n", date);
    herald_text_printf (mail, "Message-ID: <%s@herald>\r\n", task->task_id);
    herald_text_puts (mail, "MIME-Version: 1.0\r\n");
    herald_text_printf (mail, "X-Herald-Task-Id: %s\r\n", task->task_id);
    herald_text_printf (mail, "X-Herald-Attempt: %u\r\n", task->attempt);
    rc = 0;
    goto done;
no_memory:
    mail->failed = true;
    snprintf (err, errlen, "out of memory building the message");
done:
    free (address);
    free (display);
    free (subject);
    return rc;
}

int
hd_mail_render (const hd_mail_t *self, const hd_task_t *task, int64_t date_ms,
                herald_text_t *mail, char *rcpt, size_t rcpt_size, char *err, size_t errlen)
{
    if (!s_valid_task_id (task->task_id)) {
        snprintf (err, errlen, "invalid task id for a Message-ID");
        return -1;
    }
    json_error_t jerr;
    json_t *event = json_loadb (task->event_json, task->event_len, 0, &jerr);
    if (!event) {
        snprintf (err, errlen, "invalid event JSON: %s (line %d column %d)",
                  jerr.text, jerr.line, jerr.column);
        return -1;
    }
    char why [256];
    char *text = NULL, *html = NULL;
    herald_text_t text_qp = { 0 }, html_qp = { 0 };
    int rc = -1;
    if (!json_is_object (event)) {
        snprintf (err, errlen, "invalid event: not a JSON object");
        goto done;
    }
    /*  Headers first: a missing or bad recipient is the error to report. */
    if (s_put_headers (self, task, event, date_ms, mail, rcpt, rcpt_size, err, errlen))
        goto done;
    if (self->text_tmpl
    && !(text = hd_template_render (self->text_tmpl, event, HD_ESCAPE_NONE, why, sizeof why))) {
        snprintf (err, errlen, "%.300s: %s", self->text_path, why);
        goto done;
    }
    if (self->html_tmpl
    && !(html = hd_template_render (self->html_tmpl, event, HD_ESCAPE_HTML, why, sizeof why))) {
        snprintf (err, errlen, "%.300s: %s", self->html_path, why);
        goto done;
    }
    if (!self->text_tmpl && !self->html_tmpl && !(text = s_data_text (event))) {
        mail->failed = true;
        snprintf (err, errlen, "out of memory building the message");
        goto done;
    }
    if (text)
        s_encode_qp (&text_qp, text);
    if (html)
        s_encode_qp (&html_qp, html);
    if (text && html) {
        /*  "=_" never occurs in quoted-printable text; check anyway. */
        char boundary [S_BOUNDARY_MAX];
        unsigned salt = 0;
        do
            snprintf (boundary, sizeof boundary, "=_herald_%.40s_%u", task->task_id, salt++);
        while ((text_qp.data && strstr (text_qp.data, boundary))
        ||     (html_qp.data && strstr (html_qp.data, boundary)));
        bool fold = strlen ("Content-Type: multipart/alternative; boundary=\"\"") + strlen (boundary)
                  > S_LINE_MAX;
        herald_text_printf (mail, "Content-Type: multipart/alternative;%sboundary=\"%s\"\r\n\r\n",
                            fold ? "\r\n " : " ", boundary);
        herald_text_puts (mail, "This is a multi-part message in MIME format.\r\n");
        s_put_part (mail, boundary, "text/plain", &text_qp);
        s_put_part (mail, boundary, "text/html", &html_qp);
        herald_text_printf (mail, "--%s--\r\n", boundary);
    }
    else {
        const herald_text_t *body = text ? &text_qp : &html_qp;
        s_put_part_headers (mail, text ? "text/plain" : "text/html");
        herald_text_append (mail, body->data ? body->data : "", body->len);
        if (body->len < 2 || strcmp (body->data + body->len - 2, "\r\n") != 0)
            herald_text_puts (mail, "\r\n");      /* a message ends with a line break */
    }
    if (mail->failed || text_qp.failed || html_qp.failed) {
        mail->failed = true;
        snprintf (err, errlen, "out of memory building the message");
    }
    else
        rc = 0;
done:
    free (text);
    free (html);
    free (text_qp.data);
    free (html_qp.data);
    json_decref (event);
    return rc;
}
