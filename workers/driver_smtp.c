/*  driver_smtp: email through an SMTP relay with libcurl (easy interface).
    Synchronous: one mail at a time per worker process; run more worker
    processes for concurrency. Each mail is multipart/alternative (text and
    HTML, quoted-printable, UTF-8) rendered from the channel's templates.
    Event data can never add a header, a recipient or an SMTP command: header
    values are rendered with CR/LF/NUL replaced, the recipient must be one
    plain address, and the envelope addresses hold no control characters. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "driver.h"
#include "herald_text.h"
#include "template.h"

#define S_QP_LINE_MAX     76        /* RFC 2045: encoded lines, soft break included */
#define S_WORD_INPUT_MAX  45        /* RFC 2047: 45 bytes -> 60 base64 chars, word <= 75 */
#define S_ADDRESS_MAX     254       /* RFC 5321 path limit */
#define S_DEFAULT_TIMEOUT 60000

typedef struct {
    char channel [HERALD_NAME_MAX];     /* for error texts */
    herald_smtp_config_t cfg;           /* copy of the channel's smtp settings */
    char sender [S_ADDRESS_MAX + 1];    /* envelope sender: the address inside cfg.from */
    char *text_tmpl;                    /* text/plain template, NULL if not configured */
    char *html_tmpl;                    /* text/html template, NULL if not configured */
    char *password;                     /* from getenv(cfg.password_env), NULL without AUTH */
    CURL *curl;                         /* reused: keeps the relay connection warm */
    hd_complete_fn *complete;
    void *ctx;
    char last_reply [256];              /* last server reply line before QUIT */
    char last_command [16];             /* verb of the last command sent ("RCPT TO") */
    char error_reply [256];             /* first 4xx/5xx reply of the transfer, "" if none */
    char error_command [16];            /* the command error_reply answered */
    char errbuf [CURL_ERROR_SIZE];
} hd_smtp_t;

typedef struct {
    const char *data;
    size_t len;
    size_t pos;
} s_upload_t;

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
        if (line_len + token_len > S_QP_LINE_MAX - 1) {
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

/*  Appends a header value: as is when short plain ASCII, else as RFC 2047
    encoded words (UTF-8, base64) folded on continuation lines. value holds
    no control characters (rendered in HD_ESCAPE_HEADER mode). */
static void
s_encode_header_value (herald_text_t *out, const char *value)
{
    size_t len = strlen (value);
    bool plain = len <= 200;
    for (size_t i = 0; plain && i < len; i++)
        if ((unsigned char) value [i] >= 0x80)
            plain = false;
    if (plain) {
        herald_text_append (out, value, len);
        return;
    }
    size_t pos = 0;
    while (pos < len) {
        size_t chunk = len - pos < S_WORD_INPUT_MAX ? len - pos : S_WORD_INPUT_MAX;
        /*  Never split a UTF-8 sequence across two encoded words. */
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

//  --------------------------------------------------------------------------
//  Addresses

/*  True if address is one plain mailbox: local@domain, printable ASCII, no
    spaces, commas, angle brackets, quotes or other specials. */
static bool
s_valid_address (const char *address)
{
    size_t len = strlen (address);
    if (len < 3 || len > S_ADDRESS_MAX)
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

//  --------------------------------------------------------------------------
//  libcurl callbacks

static size_t
s_read (char *buffer, size_t size, size_t nitems, void *userp)
{
    s_upload_t *upload = userp;
    size_t room = size * nitems;
    size_t left = upload->len - upload->pos;
    size_t count = left < room ? left : room;
    memcpy (buffer, upload->data + upload->pos, count);
    upload->pos += count;
    return count;
}

/*  Keeps the last server reply, the first error reply and the verb of the
    command it answered, so errors read "451 4.3.0 try later (RCPT TO)".
    Replies to QUIT are ignored. Credentials are never kept: only known
    verbs are recorded, never command arguments. */
static int
s_debug (CURL *curl, curl_infotype type, char *data, size_t size, void *userp)
{
    hd_smtp_t *self = userp;
    if (type == CURLINFO_HEADER_IN && strcmp (self->last_command, "QUIT") != 0) {
        size_t len = 0;
        while (len < size && data [len] != '\r' && data [len] != '\n')
            len++;
        if (len >= sizeof self->last_reply)
            len = sizeof self->last_reply - 1;
        if (len == 0)
            return 0;
        memcpy (self->last_reply, data, len);
        self->last_reply [len] = '\0';
        hd_text_one_line (self->last_reply);
        if ((data [0] == '4' || data [0] == '5') && !self->error_reply [0]) {
            memcpy (self->error_reply, self->last_reply, len + 1);
            memcpy (self->error_command, self->last_command, sizeof self->error_command);
        }
    }
    else
    if (type == CURLINFO_HEADER_OUT) {
        static const char *verbs [][2] = {
            { "EHLO", "EHLO" }, { "HELO", "HELO" }, { "STARTTLS", "STARTTLS" },
            { "AUTH", "AUTH" }, { "MAIL", "MAIL FROM" }, { "RCPT", "RCPT TO" },
            { "DATA", "DATA" }, { "QUIT", "QUIT" }, { "RSET", "RSET" }
        };
        for (size_t i = 0; i < sizeof verbs / sizeof verbs [0]; i++) {
            size_t len = strlen (verbs [i][0]);
            if (size >= len && strncasecmp (data, verbs [i][0], len) == 0
            &&  (size == len || !isalpha ((unsigned char) data [len]))) {
                snprintf (self->last_command, sizeof self->last_command, "%s", verbs [i][1]);
                break;
            }
        }
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Building the message

static void
s_format_date (char *buf, size_t size)
{
    static const char *days [] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *months [] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    snprintf (buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
              days [tm.tm_wday % 7], tm.tm_mday, months [tm.tm_mon % 12], tm.tm_year + 1900,
              tm.tm_hour, tm.tm_min, tm.tm_sec);
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

static void
s_append_part (herald_text_t *mail, const char *boundary, const char *type, const herald_text_t *body)
{
    herald_text_printf (mail, "--%s\r\n", boundary);
    herald_text_printf (mail, "Content-Type: %s; charset=utf-8\r\n", type);
    herald_text_puts (mail, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    herald_text_append (mail, body->data ? body->data : "", body->len);
    herald_text_puts (mail, "\r\n");
}

/*  Renders and assembles the whole message for task. Returns 0, or -1 with
    a permanent error in err (bad event, bad recipient, template field). */
static int
s_build (hd_smtp_t *self, const hd_task_t *task, herald_text_t *mail, char *to, size_t to_size,
         char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *event = json_loadb (task->event_json, task->event_len, 0, &jerr);
    if (!event) {
        snprintf (err, errlen, "invalid event JSON: %s (offset %d)", jerr.text, jerr.position);
        return -1;
    }
    char why [256];
    char *rcpt = NULL, *subject = NULL, *text = NULL, *html = NULL;
    herald_text_t text_qp = { 0 }, html_qp = { 0 };
    int rc = -1;

    if (!(rcpt = hd_template_render (self->cfg.to, event, HD_ESCAPE_HEADER, why, sizeof why))) {
        snprintf (err, errlen, "smtp.to: %s", why);
        goto done;
    }
    if (!s_valid_address (rcpt) || strlen (rcpt) >= to_size) {
        snprintf (err, errlen, "invalid recipient \"%.200s\": not one plain address", rcpt);
        goto done;
    }
    snprintf (to, to_size, "%s", rcpt);
    if (!(subject = hd_template_render (self->cfg.subject, event, HD_ESCAPE_HEADER,
                                        why, sizeof why))) {
        snprintf (err, errlen, "smtp.subject: %s", why);
        goto done;
    }
    if (self->text_tmpl
    && !(text = hd_template_render (self->text_tmpl, event, HD_ESCAPE_NONE, why, sizeof why))) {
        snprintf (err, errlen, "%.300s: %s", self->cfg.text_template, why);
        goto done;
    }
    if (self->html_tmpl
    && !(html = hd_template_render (self->html_tmpl, event, HD_ESCAPE_HTML, why, sizeof why))) {
        snprintf (err, errlen, "%.300s: %s", self->cfg.html_template, why);
        goto done;
    }
    if (text)
        s_encode_qp (&text_qp, text);
    if (html)
        s_encode_qp (&html_qp, html);

    char date [64];
    s_format_date (date, sizeof date);
    herald_text_printf (mail, "From: %s\r\n", self->cfg.from);
    herald_text_printf (mail, "To: %s\r\n", rcpt);
    herald_text_puts (mail, "Subject: ");
    s_encode_header_value (mail, subject);
    herald_text_puts (mail, "\r\n");
    herald_text_printf (mail, "Date: %s\r\n", date);
    herald_text_printf (mail, "Message-ID: <%s@herald>\r\n", task->task_id);
    herald_text_puts (mail, "MIME-Version: 1.0\r\n");
    herald_text_printf (mail, "X-Herald-Task-Id: %s\r\n", task->task_id);
    herald_text_printf (mail, "X-Herald-Attempt: %u\r\n", task->attempt);
    if (text && html) {
        /*  "=_" never occurs in quoted-printable text; check anyway. */
        char boundary [96];
        unsigned salt = 0;
        do
            snprintf (boundary, sizeof boundary, "=_herald_%.40s_%u", task->task_id, salt++);
        while ((text_qp.data && strstr (text_qp.data, boundary))
        ||     (html_qp.data && strstr (html_qp.data, boundary)));
        herald_text_printf (mail, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n",
                       boundary);
        herald_text_puts (mail, "This is a multi-part message in MIME format.\r\n");
        s_append_part (mail, boundary, "text/plain", &text_qp);
        s_append_part (mail, boundary, "text/html", &html_qp);
        herald_text_printf (mail, "--%s--\r\n", boundary);
    }
    else {
        herald_text_printf (mail, "Content-Type: %s; charset=utf-8\r\n", text ? "text/plain" : "text/html");
        herald_text_puts (mail, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        const herald_text_t *body = text ? &text_qp : &html_qp;
        herald_text_append (mail, body->data ? body->data : "", body->len);
        herald_text_puts (mail, "\r\n");
    }
    if (mail->failed || text_qp.failed || html_qp.failed)
        snprintf (err, errlen, "out of memory building the message");
    else
        rc = 0;
done:
    free (rcpt);
    free (subject);
    free (text);
    free (html);
    free (text_qp.data);
    free (html_qp.data);
    json_decref (event);
    return rc;
}

//  --------------------------------------------------------------------------
//  Sending

/*  Sets up the transfer for one message. Returns the first failing CURLcode. */
static CURLcode
s_setup (hd_smtp_t *self, struct curl_slist *rcpt, s_upload_t *upload, const char *mail_from)
{
    CURL *curl = self->curl;
    CURLcode rc = CURLE_OK;
    long use_ssl = self->cfg.tls == HERALD_TLS_NONE ? (long) CURLUSESSL_NONE : (long) CURLUSESSL_ALL;
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_URL, self->cfg.url);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_USE_SSL, use_ssl);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_SSL_VERIFYPEER, self->cfg.verify_peer ? 1L : 0L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_SSL_VERIFYHOST, self->cfg.verify_peer ? 2L : 0L);
    if (!rc && self->cfg.ca_file [0])
        rc = curl_easy_setopt (curl, CURLOPT_CAINFO, self->cfg.ca_file);
    if (!rc && self->password) {
        rc = curl_easy_setopt (curl, CURLOPT_USERNAME, self->cfg.username);
        if (!rc) rc = curl_easy_setopt (curl, CURLOPT_PASSWORD, self->password);
    }
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_MAIL_FROM, mail_from);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, rcpt);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_READFUNCTION, s_read);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_READDATA, upload);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) upload->len);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long) self->cfg.timeout_ms);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, self->errbuf);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_DEBUGFUNCTION, s_debug);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_DEBUGDATA, self);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_VERBOSE, 1L);
    return rc;
}

/*  Sends one message and classifies the outcome into result. */
static void
s_send (hd_smtp_t *self, const char *to, const herald_text_t *mail, hd_result_t *result)
{
    char mail_from [S_ADDRESS_MAX + 3];
    char rcpt_to [S_ADDRESS_MAX + 3];
    snprintf (mail_from, sizeof mail_from, "<%s>", self->sender);
    snprintf (rcpt_to, sizeof rcpt_to, "<%s>", to);
    struct curl_slist *rcpt = curl_slist_append (NULL, rcpt_to);
    s_upload_t upload = { mail->data, mail->len, 0 };
    self->last_reply [0] = '\0';
    self->last_command [0] = '\0';
    self->error_reply [0] = '\0';
    self->error_command [0] = '\0';
    self->errbuf [0] = '\0';
    curl_easy_reset (self->curl);

    CURLcode rc = rcpt ? s_setup (self, rcpt, &upload, mail_from) : CURLE_OUT_OF_MEMORY;
    if (!rc)
        rc = curl_easy_perform (self->curl);
    long code = 0;
    curl_easy_getinfo (self->curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all (rcpt);
    if (self->error_reply [0])
        code = strtol (self->error_reply, NULL, 10);    /* not the reply to a later QUIT */

    result->delay_ms = 0;
    if (rc == CURLE_OK) {
        result->outcome = HD_DONE;
        snprintf (result->text, sizeof result->text, "%s: %s", self->cfg.url,
                  self->last_reply [0] ? self->last_reply : "accepted");
        return;
    }
    if (code >= 400 && code <= 599) {
        /*  The server said no: 4xx is worth another try, 5xx is final. */
        result->outcome = code < 500 ? HD_RETRY : HD_FAILED;
        snprintf (result->text, sizeof result->text, "%s: %s (%s)", self->cfg.url,
                  self->error_reply [0] ? self->error_reply : curl_easy_strerror (rc),
                  self->error_command [0] ? self->error_command : "reply");
        return;
    }
    /*  Transport: refused, DNS, timeout, TLS handshake or verification,
        STARTTLS not offered (never a silent fallback to plaintext). */
    result->outcome = HD_RETRY;
    hd_text_one_line (self->errbuf);
    if (self->errbuf [0] && strcmp (self->errbuf, curl_easy_strerror (rc)) != 0)
        snprintf (result->text, sizeof result->text, "%s: %s (%s)", self->cfg.url,
                  curl_easy_strerror (rc), self->errbuf);
    else
        snprintf (result->text, sizeof result->text, "%s: %s", self->cfg.url,
                  curl_easy_strerror (rc));
}

//  --------------------------------------------------------------------------
//  Driver operations

static void s_close (void **self_p);

static void *
s_open (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx,
        char *err, size_t errlen)
{
    const herald_smtp_config_t *cfg = &channel->smtp;
    const char *name = channel->name;
    bool smtps = strncasecmp (cfg->url, "smtps://", 8) == 0;
    bool smtp = strncasecmp (cfg->url, "smtp://", 7) == 0;
    if (!smtp && !smtps) {
        snprintf (err, errlen, "channel %s: smtp.url \"%.200s\" must start with smtp:// or smtps://",
                  name, cfg->url);
        return NULL;
    }
    const char *authority = cfg->url + (smtps ? 8 : 7);
    size_t authority_len = strcspn (authority, "/?#");
    if (memchr (authority, '@', authority_len)) {
        snprintf (err, errlen, "channel %s: smtp.url must not hold credentials "
                  "(use smtp.username and smtp.password_env)", name);
        return NULL;
    }
    if (cfg->tls == HERALD_TLS_IMPLICIT && !smtps) {
        snprintf (err, errlen, "channel %s: smtp.tls implicit needs an smtps:// url", name);
        return NULL;
    }
    if (cfg->tls != HERALD_TLS_IMPLICIT && smtps) {
        snprintf (err, errlen, "channel %s: an smtps:// url needs smtp.tls implicit", name);
        return NULL;
    }
    if (!cfg->text_template [0] && !cfg->html_template [0]) {
        snprintf (err, errlen, "channel %s: smtp needs text_template, html_template or both", name);
        return NULL;
    }
    if (!cfg->to [0]) {
        snprintf (err, errlen, "channel %s: smtp.to is not set", name);
        return NULL;
    }
    if (cfg->ca_file [0] && access (cfg->ca_file, R_OK) != 0) {
        snprintf (err, errlen, "channel %s: smtp.ca_file %s cannot be read", name, cfg->ca_file);
        return NULL;
    }

    hd_smtp_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "channel %s: out of memory", name);
        return NULL;
    }
    snprintf (self->channel, sizeof self->channel, "%s", name);
    self->cfg = *cfg;
    if (self->cfg.timeout_ms <= 0)
        self->cfg.timeout_ms = S_DEFAULT_TIMEOUT;
    self->complete = complete;
    self->ctx = ctx;
    curl_global_init (CURL_GLOBAL_DEFAULT);

    char why [HERALD_ERR_MAX];
    if (s_parse_from (cfg->from, self->sender, sizeof self->sender)) {
        snprintf (err, errlen, "channel %s: smtp.from \"%.200s\" is not an address "
                  "(\"shop@example.com\" or \"Shop <shop@example.com>\")", name, cfg->from);
        goto fail;
    }
    if (hd_template_check (cfg->to, why, sizeof why)) {
        snprintf (err, errlen, "channel %s: smtp.to: %s", name, why);
        goto fail;
    }
    if (hd_template_check (cfg->subject, why, sizeof why)) {
        snprintf (err, errlen, "channel %s: smtp.subject: %s", name, why);
        goto fail;
    }
    if (cfg->text_template [0]
    && !(self->text_tmpl = hd_template_load (cfg->text_template, why, sizeof why))) {
        snprintf (err, errlen, "channel %s: smtp.text_template: %s", name, why);
        goto fail;
    }
    if (cfg->html_template [0]
    && !(self->html_tmpl = hd_template_load (cfg->html_template, why, sizeof why))) {
        snprintf (err, errlen, "channel %s: smtp.html_template: %s", name, why);
        goto fail;
    }
    if (cfg->username [0]) {
        if (!cfg->password_env [0]) {
            snprintf (err, errlen, "channel %s: smtp.username is set but smtp.password_env is not",
                      name);
            goto fail;
        }
        const char *password = getenv (cfg->password_env);
        if (!password) {
            snprintf (err, errlen, "channel %s: environment variable %s is not set",
                      name, cfg->password_env);
            goto fail;
        }
        if (!(self->password = strdup (password))) {
            snprintf (err, errlen, "channel %s: out of memory", name);
            goto fail;
        }
    }
    if (!(self->curl = curl_easy_init ())) {
        snprintf (err, errlen, "channel %s: cannot initialise libcurl", name);
        goto fail;
    }
    return self;
fail:
    s_close ((void **) &self);
    return NULL;
}

static int
s_start (void *self_, const hd_task_t *task)
{
    hd_smtp_t *self = self_;
    hd_result_t result = { .outcome = HD_FAILED };
    herald_text_t mail = { 0 };
    char to [S_ADDRESS_MAX + 1];

    if (!s_valid_task_id (task->task_id))
        snprintf (result.text, sizeof result.text, "invalid task id for a Message-ID");
    else
    if (s_build (self, task, &mail, to, sizeof to, result.text, sizeof result.text) == 0)
        s_send (self, to, &mail, &result);
    free (mail.data);
    hd_text_one_line (result.text);
    self->complete (self->ctx, task->task_id, task->attempt, &result);
    return 0;
}

static int
s_in_progress (void *self)
{
    return 0;                   /* synchronous: done when start() returns */
}

static void
s_close (void **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_smtp_t *self = *self_p;
    if (self->curl)
        curl_easy_cleanup (self->curl);
    if (self->password) {
        explicit_bzero (self->password, strlen (self->password));
        free (self->password);
    }
    free (self->text_tmpl);
    free (self->html_tmpl);
    free (self);
    curl_global_cleanup ();
    *self_p = NULL;
}

const hd_driver_ops_t hd_smtp_ops = {
    "smtp", s_open, s_start, NULL, NULL, s_in_progress, s_close
};
