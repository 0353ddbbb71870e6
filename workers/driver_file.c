/*  driver_file: writes each delivery as one file in the channel's directory,
    like a framework's file-based mail backend. Synchronous. The file is named
    by the task id, so a redelivery overwrites it (idempotent by name), and is
    written atomically: DIR/.tmp.<task>.<pid>, fsync, rename, fsync DIR.
    Email channels get an RFC 5322 message (<task>.eml), the others a JSON
    document holding the envelope (<task>.json). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "herald_clock.h"
#include "herald_text.h"
#include "template.h"

#define FILE_DEFAULT_FROM    "Herald <herald@localhost>"
#define FILE_DEFAULT_TO      "{{data.customer.email}}"
#define FILE_DEFAULT_SUBJECT "{{type}} {{id}}"
#define FILE_NAME_MAX        (HP_MAX_ID + 48)                   /* ".tmp.<task>.<pid>" */
#define FILE_FULL_PATH_MAX   (HERALD_PATH_MAX + FILE_NAME_MAX + 2)
#define FILE_WORD_BYTES      45      /* subject bytes per RFC 2047 encoded-word (60 base64 chars) */

typedef struct {
    const herald_channel_t *channel;    /* borrowed from the config */
    hd_complete_fn *complete;
    void *ctx;
    char dir[HERALD_PATH_MAX];          /* without trailing slash */
    bool email;                         /* .eml rather than .json */
    const char *from;                   /* header value (config or default) */
    const char *to;                     /* template */
    const char *subject;                /* template */
    char *text_template;                /* owned; NULL = data pretty-printed */
    int pid;
} file_driver_t;

/*  snprintf for messages, where cutting a long path short is intended. */
static void
s_format (char *buf, size_t size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_format (char *buf, size_t size, const char *format, ...)
{
    if (size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (buf, size, format, args);
    va_end (args);
}

//  Appends a header line "Name: value\r\n"; CR, LF and other control
//  characters in value become spaces so a value can never start a header.
static void
s_buf_header (herald_text_t *buf, const char *name, const char *value)
{
    herald_text_puts (buf, name);
    herald_text_append (buf, ": ", 2);
    for (const char *p = value; *p; p++) {
        unsigned char c = (unsigned char) *p;
        char out = (c < 0x20 && c != '\t') || c == 0x7f? ' ': (char) c;
        herald_text_append (buf, &out, 1);
    }
    herald_text_append (buf, "\r\n", 2);
}

//  Appends text with every line ending as CRLF, ending with one.
static void
s_buf_crlf_text (herald_text_t *buf, const char *text)
{
    size_t start = 0;
    size_t i = 0;
    for (; text[i]; i++) {
        if (text[i] == '\r' || text[i] == '\n') {
            herald_text_append (buf, text + start, i - start);
            herald_text_append (buf, "\r\n", 2);
            if (text[i] == '\r' && text[i + 1] == '\n')
                i++;
            start = i + 1;
        }
    }
    herald_text_append (buf, text + start, i - start);
    if (i > start || i == 0)
        herald_text_append (buf, "\r\n", 2);
}

static bool
s_is_ascii (const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if (*p >= 0x80)
            return false;
    return true;
}

//  Appends "Subject: value": as is when ASCII, else as RFC 2047 UTF-8
//  encoded-words of whole characters, one per folded line.
static void
s_buf_subject (herald_text_t *buf, const char *value)
{
    if (s_is_ascii (value)) {
        s_buf_header (buf, "Subject", value);
        return;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    herald_text_puts (buf, "Subject:");
    size_t len = strlen (value);
    size_t at = 0;
    while (at < len) {
        size_t take = len - at < FILE_WORD_BYTES? len - at: FILE_WORD_BYTES;
        while (at + take < len && take > 1
               && ((unsigned char) value[at + take] & 0xC0) == 0x80)
            take--;     //  do not split a UTF-8 sequence
        herald_text_puts (buf, at == 0? " =?UTF-8?B?": "\r\n =?UTF-8?B?");
        for (size_t i = 0; i < take; i += 3) {
            unsigned char in[3] = { 0, 0, 0 };
            size_t n = take - i < 3? take - i: 3;
            memcpy (in, value + at + i, n);
            char out[4] = {
                b64[in[0] >> 2],
                b64[((in[0] & 0x03) << 4) | (in[1] >> 4)],
                n > 1? b64[((in[1] & 0x0F) << 2) | (in[2] >> 6)]: '=',
                n > 2? b64[in[2] & 0x3F]: '='
            };
            herald_text_append (buf, out, 4);
        }
        herald_text_puts (buf, "?=");
        at += take;
    }
    herald_text_append (buf, "\r\n", 2);
}

//  RFC 5322 date-time in UTC, independent of the locale.
static void
s_rfc5322_date (int64_t wall_ms, char *out, size_t size)
{
    static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm tm;
    if (!gmtime_r (&seconds, &tm)) {
        snprintf (out, size, "Thu, 01 Jan 1970 00:00:00 +0000");
        return;
    }
    snprintf (out, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
              days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
              tm.tm_hour, tm.tm_min, tm.tm_sec);
}

//  Creates path and its missing parents (mkdir -p). 0 / -1 with errno.
static int
s_mkdir_p (const char *path)
{
    char partial[HERALD_PATH_MAX];
    size_t len = strlen (path);
    if (len == 0 || len >= sizeof partial) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy (partial, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (partial[i] != '/' && partial[i] != '\0')
            continue;
        char saved = partial[i];
        partial[i] = '\0';
        if (mkdir (partial, 0755) != 0 && errno != EEXIST)
            return -1;
        partial[i] = saved;
    }
    struct stat st;
    if (stat (path, &st) != 0)
        return -1;
    if (!S_ISDIR (st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

//  A task id names a file: no slash, no control character, no leading dot.
static bool
s_usable_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > HP_MAX_ID || name[0] == '.')
        return false;
    for (const unsigned char *p = (const unsigned char *) name; *p; p++)
        if (*p == '/' || *p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static int
s_fsync_dir (const char *dir)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

//  Writes data to DIR/name atomically. 0, or -1 with errno and *stage
//  naming the step that failed.
static int
s_write_atomic (file_driver_t *self, const char *task_id, const char *name,
                const char *data, size_t len, const char **stage)
{
    char tmp[FILE_FULL_PATH_MAX];
    char final[FILE_FULL_PATH_MAX];
    int n1 = snprintf (tmp, sizeof tmp, "%s/.tmp.%s.%d", self->dir, task_id, self->pid);
    int n2 = snprintf (final, sizeof final, "%s/%s", self->dir, name);
    if (n1 < 0 || n2 < 0 || (size_t) n1 >= sizeof tmp || (size_t) n2 >= sizeof final) {
        *stage = "path";
        errno = ENAMETOOLONG;
        return -1;
    }
    *stage = "open";
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && s_mkdir_p (self->dir) == 0)
        fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);  //  dir removed under us
    if (fd < 0)
        return -1;
    size_t done = 0;
    *stage = "write";
    while (done < len) {
        ssize_t wrote = write (fd, data + done, len - done);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            if (wrote == 0)
                errno = EIO;
            goto fail;
        }
        done += (size_t) wrote;
    }
    *stage = "fsync";
    if (fsync (fd) != 0)
        goto fail;
    *stage = "close";
    int rc = close (fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    *stage = "rename";
    if (rename (tmp, final) != 0)
        goto fail;
    *stage = "fsync directory";
    return s_fsync_dir (self->dir);

fail:;
    int saved = errno;
    if (fd >= 0)
        close (fd);
    unlink (tmp);
    errno = saved;
    return -1;
}

//  Renders the RFC 5322 message into out. 0, or -1 with the reason in err.
static int
s_render_eml (file_driver_t *self, const hd_task_t *task, const json_t *envelope,
              herald_text_t *out, char *err, size_t errlen)
{
    char why[HP_MAX_TEXT / 2];
    char *to = hd_template_render (self->to, envelope, HD_ESCAPE_HEADER, why, sizeof why);
    if (!to) {
        s_format (err, errlen, "no recipient: To %s: %s", self->to, why);
        return -1;
    }
    size_t skip = strspn (to, " \t");
    if (to[skip] == '\0') {
        s_format (err, errlen, "no recipient: To %s is empty for this event", self->to);
        free (to);
        return -1;
    }
    char *subject = hd_template_render (self->subject, envelope, HD_ESCAPE_HEADER,
                                        why, sizeof why);
    if (!subject) {
        s_format (err, errlen, "Subject %s: %s", self->subject, why);
        free (to);
        return -1;
    }
    char *body = NULL;
    if (self->text_template) {
        body = hd_template_render (self->text_template, envelope, HD_ESCAPE_NONE,
                                   why, sizeof why);
        if (!body)
            s_format (err, errlen, "text template %s: %s", self->channel->smtp.text_template, why);
    }
    else {
        const json_t *data = json_object_get (envelope, "data");
        if (json_is_string (data))
            body = strdup (json_string_value (data));
        else
        if (data)
            body = json_dumps (data, JSON_INDENT (2) | JSON_ENCODE_ANY);
        else
            body = strdup ("");
        if (!body)
            s_format (err, errlen, "out of memory rendering the body");
    }
    if (!body) {
        free (to);
        free (subject);
        return -1;
    }
    char date[64];
    s_rfc5322_date (herald_clock_wall_ms (), date, sizeof date);
    char message_id[HP_MAX_ID + 16];
    snprintf (message_id, sizeof message_id, "<%s@herald>", task->task_id);
    char attempt[16];
    snprintf (attempt, sizeof attempt, "%u", task->attempt);

    s_buf_header (out, "From", self->from);
    s_buf_header (out, "To", to + skip);
    s_buf_subject (out, subject);
    s_buf_header (out, "Date", date);
    s_buf_header (out, "Message-ID", message_id);
    s_buf_header (out, "MIME-Version", "1.0");
    s_buf_header (out, "Content-Type", "text/plain; charset=utf-8");
    s_buf_header (out, "Content-Transfer-Encoding", "8bit");
    s_buf_header (out, "X-Herald-Attempt", attempt);
    herald_text_append (out, "\r\n", 2);
    s_buf_crlf_text (out, body);
    free (to);
    free (subject);
    free (body);
    if (out->failed) {
        s_format (err, errlen, "out of memory rendering the message");
        return -1;
    }
    return 0;
}

//  Renders the JSON document into out. 0, or -1 with the reason in err.
static int
s_render_json (const hd_task_t *task, json_t *envelope, herald_text_t *out,
               char *err, size_t errlen)
{
    char delivered_at[32];
    herald_clock_format (herald_clock_wall_ms (), delivered_at, sizeof delivered_at);
    json_t *doc = json_pack ("{s:s, s:I, s:s, s:s, s:O}",
                             "task_id", task->task_id,
                             "attempt", (json_int_t) task->attempt,
                             "channel", task->channel,
                             "delivered_at", delivered_at,
                             "event", envelope);
    char *text = doc? json_dumps (doc, JSON_INDENT (2)): NULL;
    json_decref (doc);
    if (!text) {
        s_format (err, errlen, "out of memory rendering the document");
        return -1;
    }
    herald_text_puts (out, text);
    herald_text_append (out, "\n", 1);
    free (text);
    if (out->failed) {
        s_format (err, errlen, "out of memory rendering the document");
        return -1;
    }
    return 0;
}

static void *
s_open (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx,
        char *err, size_t errlen)
{
    if (!channel->dir[0]) {
        s_format (err, errlen, "channel %s: file driver: dir is not set", channel->name);
        return NULL;
    }
    file_driver_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_format (err, errlen, "channel %s: file driver: out of memory", channel->name);
        return NULL;
    }
    self->channel = channel;
    self->complete = complete;
    self->ctx = ctx;
    self->pid = (int) getpid ();
    snprintf (self->dir, sizeof self->dir, "%s", channel->dir);
    size_t len = strlen (self->dir);
    while (len > 1 && self->dir[len - 1] == '/')
        self->dir[--len] = '\0';

    if (s_mkdir_p (self->dir) != 0) {
        s_format (err, errlen, "channel %s: dir %s: cannot create it: %s",
                  channel->name, self->dir, strerror (errno));
        goto fail;
    }
    //  Root passes access(): only a real file proves the directory takes writes.
    char probe[FILE_FULL_PATH_MAX];
    int n = snprintf (probe, sizeof probe, "%s/.probe.%d", self->dir, self->pid);
    int fd = n > 0 && (size_t) n < sizeof probe
           ? open (probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600): -1;
    if (fd < 0) {
        s_format (err, errlen, "channel %s: dir %s is not writable: %s",
                  channel->name, self->dir, strerror (errno));
        goto fail;
    }
    close (fd);
    unlink (probe);

    self->email = channel->smtp.to[0] != '\0' || strcmp (channel->name, "email") == 0;
    self->from = channel->smtp.from[0]? channel->smtp.from: FILE_DEFAULT_FROM;
    self->to = channel->smtp.to[0]? channel->smtp.to: FILE_DEFAULT_TO;
    self->subject = channel->smtp.subject[0]? channel->smtp.subject: FILE_DEFAULT_SUBJECT;
    if (self->email) {
        char why[256];
        if (hd_template_check (self->to, why, sizeof why) != 0) {
            s_format (err, errlen, "channel %s: smtp.to: %s", channel->name, why);
            goto fail;
        }
        if (hd_template_check (self->subject, why, sizeof why) != 0) {
            s_format (err, errlen, "channel %s: smtp.subject: %s", channel->name, why);
            goto fail;
        }
        if (channel->smtp.text_template[0]) {
            char load_err[HERALD_ERR_MAX];
            self->text_template = hd_template_load (channel->smtp.text_template,
                                                    load_err, sizeof load_err);
            if (!self->text_template) {
                s_format (err, errlen, "channel %s: smtp.text_template: %s",
                          channel->name, load_err);
                goto fail;
            }
        }
    }
    return self;

fail:
    free (self->text_template);
    free (self);
    return NULL;
}

static int
s_start (void *self_, const hd_task_t *task)
{
    file_driver_t *self = (file_driver_t *) self_;
    hd_result_t result = { .outcome = HD_DONE };
    herald_text_t out = { 0 };
    json_t *envelope = NULL;

    if (!s_usable_name (task->task_id)) {
        result.outcome = HD_FAILED;
        s_format (result.text, sizeof result.text,
                  "task id cannot name a file (empty, '/', control character or leading '.')");
        goto done;
    }
    json_error_t jerr;
    envelope = json_loadb (task->event_json, task->event_len, 0, &jerr);
    if (!json_is_object (envelope)) {
        result.outcome = HD_FAILED;
        if (envelope)
            s_format (result.text, sizeof result.text, "invalid event: not a JSON object");
        else
            s_format (result.text, sizeof result.text, "invalid event JSON: %s (line %d column %d)",
                      jerr.text, jerr.line, jerr.column);
        goto done;
    }
    int rc = self->email
           ? s_render_eml (self, task, envelope, &out, result.text, sizeof result.text)
           : s_render_json (task, envelope, &out, result.text, sizeof result.text);
    if (rc != 0) {
        result.outcome = out.failed? HD_RETRY: HD_FAILED;
        goto done;
    }
    char name[FILE_NAME_MAX];
    snprintf (name, sizeof name, "%s.%s", task->task_id, self->email? "eml": "json");
    const char *stage = "";
    if (s_write_atomic (self, task->task_id, name, out.data, out.len, &stage) != 0) {
        result.outcome = HD_RETRY;
        if (strcmp (stage, "write") == 0 || strcmp (stage, "open") == 0)
            s_format (result.text, sizeof result.text, "write %s/%s: %s",
                      self->dir, name, strerror (errno));
        else
            s_format (result.text, sizeof result.text, "write %s/%s: %s: %s",
                      self->dir, name, stage, strerror (errno));
        goto done;
    }
    s_format (result.text, sizeof result.text, "%s/%s", self->dir, name);

done:
    json_decref (envelope);
    free (out.data);
    self->complete (self->ctx, task->task_id, task->attempt, &result);
    return 0;
}

static int
s_in_progress (void *self)
{
    return 0;
}

static void
s_close (void **self_p)
{
    if (!self_p || !*self_p)
        return;
    file_driver_t *self = (file_driver_t *) *self_p;
    free (self->text_template);
    free (self);
    *self_p = NULL;
}

const hd_driver_ops_t hd_file_ops = {
    .name = "file",
    .open = s_open,
    .start = s_start,
    .poll_items = NULL,
    .progress = NULL,
    .in_progress = s_in_progress,
    .close = s_close
};
