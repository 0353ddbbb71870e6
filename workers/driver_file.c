/*  driver_file: writes each delivery as one file in the channel's directory,
    like a framework's file-based mail backend. The file is named by the task
    id, so a redelivery overwrites it (idempotent by name), and is written
    atomically: DIR/.tmp.<task>.<pid>, synced, renamed, DIR synced. The
    deliveries of one round (a TASKS message) are made durable together:
    start() writes the temporary files, flush() syncs the filesystem once,
    renames them all, syncs the directory once, then completes every one
    (two syncs a round instead of two a delivery).
    Email channels get the RFC 5322 message the smtp driver would send with
    the same smtp settings, byte for byte but the Date header (mail.h), as
    <task>.eml; the others a JSON document holding the envelope
    (<task>.json). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "herald_clock.h"
#include "herald_text.h"
#include "mail.h"

#define FILE_DEFAULT_FROM    "Herald <herald@localhost>"
#define FILE_DEFAULT_TO      "{{data.customer.email}}"
#define FILE_DEFAULT_SUBJECT "{{type}} {{id}}"
#define FILE_NAME_MAX        (HP_MAX_ID + 48)                   /* ".tmp.<task>.<pid>" */
#define FILE_FULL_PATH_MAX   (HERALD_PATH_MAX + FILE_NAME_MAX + 2)

/*  A delivery written to its temporary file, not yet durable. */
typedef struct {
    char task_id[HP_MAX_ID + 1];
    uint32_t attempt;
    uint64_t lease;
    char tmp[FILE_FULL_PATH_MAX];
    char final[FILE_FULL_PATH_MAX];
} s_pending_t;

typedef struct {
    const herald_channel_t *channel;    /* borrowed from the config */
    hd_complete_fn *complete;
    void *ctx;
    char dir[HERALD_PATH_MAX];          /* without trailing slash */
    bool email;                         /* .eml rather than .json */
    hd_mail_t *mail;                    /* email: the message renderer */
    int pid;
    int dir_fd;                         /* the directory, for syncfs and its fsync */
    s_pending_t *pending;               /* written this round, waiting for flush() */
    size_t pending_count, pending_cap;
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

//  Writes data to DIR/.tmp.<task>.<pid> (tmp, not synced); final is the
//  name it will take. 0, or -1 with errno and *stage naming the step.
static int
s_write_tmp (file_driver_t *self, const char *task_id, const char *name,
             const char *data, size_t len, char *tmp, char *final, const char **stage)
{
    int n1 = snprintf (tmp, FILE_FULL_PATH_MAX, "%s/.tmp.%s.%d", self->dir, task_id, self->pid);
    int n2 = snprintf (final, FILE_FULL_PATH_MAX, "%s/%s", self->dir, name);
    if (n1 < 0 || n2 < 0 || n1 >= FILE_FULL_PATH_MAX || n2 >= FILE_FULL_PATH_MAX) {
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
    *stage = "close";
    int rc = close (fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    return 0;

fail:;
    int saved = errno;
    if (fd >= 0)
        close (fd);
    unlink (tmp);
    errno = saved;
    return -1;
}

//  Renders the JSON document into out. 0, or -1 with the reason in err.
static int
s_render_json (const hd_task_t *task, herald_text_t *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *envelope = json_loadb (task->event_json, task->event_len, 0, &jerr);
    if (!json_is_object (envelope)) {
        if (envelope)
            s_format (err, errlen, "invalid event: not a JSON object");
        else
            s_format (err, errlen, "invalid event JSON: %s (line %d column %d)",
                      jerr.text, jerr.line, jerr.column);
        json_decref (envelope);
        return -1;
    }
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
    json_decref (envelope);
    if (!text) {
        out->failed = true;
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
    self->dir_fd = -1;
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
    self->dir_fd = open (self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        s_format (err, errlen, "channel %s: dir %s: cannot open it: %s", channel->name, self->dir,
                  strerror (errno));
        goto fail;
    }

    self->email = channel->smtp.to[0] != '\0' || strcmp (channel->name, "email") == 0;
    if (self->email) {
        const herald_smtp_config_t *smtp = &channel->smtp;
        hd_mail_config_t mail = {
            .from = smtp->from[0]? smtp->from: FILE_DEFAULT_FROM,
            .to = smtp->to[0]? smtp->to: FILE_DEFAULT_TO,
            .subject = smtp->subject[0]? smtp->subject: FILE_DEFAULT_SUBJECT,
            .text_template = smtp->text_template,
            .html_template = smtp->html_template
        };
        char why[HERALD_ERR_MAX];
        if (!(self->mail = hd_mail_new (&mail, why, sizeof why))) {
            s_format (err, errlen, "channel %s: %s", channel->name, why);
            goto fail;
        }
    }
    return self;

fail:
    if (self->dir_fd >= 0)
        close (self->dir_fd);
    hd_mail_destroy (&self->mail);
    free (self);
    return NULL;
}

static int
s_start (void *self_, const hd_task_t *task)
{
    file_driver_t *self = (file_driver_t *) self_;
    hd_result_t result = { .outcome = HD_DONE };
    herald_text_t out = { 0 };

    if (!s_usable_name (task->task_id)) {
        result.outcome = HD_FAILED;
        s_format (result.text, sizeof result.text,
                  "task id cannot name a file (empty, '/', control character or leading '.')");
        goto failed;
    }
    char rcpt[HD_MAIL_ADDRESS_MAX + 1];
    int rc = self->email
           ? hd_mail_render (self->mail, task, herald_clock_wall_ms (), &out, rcpt, sizeof rcpt,
                             result.text, sizeof result.text)
           : s_render_json (task, &out, result.text, sizeof result.text);
    if (rc != 0) {
        result.outcome = out.failed? HD_RETRY: HD_FAILED;
        goto failed;
    }
    if (self->pending_count == self->pending_cap) {
        size_t cap = self->pending_cap? self->pending_cap * 2: 64;
        s_pending_t *grown = realloc (self->pending, cap * sizeof *grown);
        if (!grown) {
            result.outcome = HD_RETRY;
            s_format (result.text, sizeof result.text, "out of memory");
            goto failed;
        }
        self->pending = grown;
        self->pending_cap = cap;
    }
    s_pending_t *pending = &self->pending[self->pending_count];
    char name[FILE_NAME_MAX];
    snprintf (name, sizeof name, "%s.%s", task->task_id, self->email? "eml": "json");
    const char *stage = "";
    if (s_write_tmp (self, task->task_id, name, out.data, out.len, pending->tmp, pending->final, &stage) != 0) {
        result.outcome = HD_RETRY;
        s_format (result.text, sizeof result.text, "write %s/%s: %s: %s", self->dir, name, stage,
                  strerror (errno));
        goto failed;
    }
    snprintf (pending->task_id, sizeof pending->task_id, "%s", task->task_id);
    pending->lease = task->lease;
    pending->attempt = task->attempt;
    self->pending_count++;
    free (out.data);
    return 0;

failed:
    free (out.data);
    self->complete (self->ctx, task->task_id, task->attempt, task->lease, &result);
    return 0;
}

/*  Makes the round's files durable together and completes them. */
static void
s_flush (void *self_)
{
    file_driver_t *self = (file_driver_t *) self_;
    if (self->pending_count == 0)
        return;
    /*  One pass for the data of every file of the round (syncfs; a
        filesystem without it gets an fsync per file). */
    const char *failed = NULL;
    int error = 0;
    if (syncfs (self->dir_fd) != 0) {
        for (size_t i = 0; i < self->pending_count && !failed; i++) {
            int fd = open (self->pending[i].tmp, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || fsync (fd) != 0) {
                failed = "fsync";
                error = errno;
            }
            if (fd >= 0)
                close (fd);
        }
    }
    bool renamed[self->pending_count];
    for (size_t i = 0; i < self->pending_count; i++) {
        renamed[i] = !failed && rename (self->pending[i].tmp, self->pending[i].final) == 0;
        if (!renamed[i] && !failed)
            error = errno;
    }
    int dir_error = 0;
    if (!failed && fsync (self->dir_fd) != 0)
        dir_error = errno;
    for (size_t i = 0; i < self->pending_count; i++) {
        s_pending_t *p = &self->pending[i];
        hd_result_t result = { .outcome = HD_DONE };
        if (failed || !renamed[i] || dir_error) {
            result.outcome = HD_RETRY;
            s_format (result.text, sizeof result.text, "write %s: %s: %s", p->final,
                      failed? failed: !renamed[i]? "rename": "fsync directory",
                      strerror (dir_error && renamed[i]? dir_error: error));
            if (!renamed[i])
                unlink (p->tmp);
        }
        else
            s_format (result.text, sizeof result.text, "%s", p->final);
        self->complete (self->ctx, p->task_id, p->attempt, p->lease, &result);
    }
    self->pending_count = 0;
}

static int
s_in_progress (void *self)
{
    return (int) ((file_driver_t *) self)->pending_count;
}

static void
s_close (void **self_p)
{
    if (!self_p || !*self_p)
        return;
    file_driver_t *self = (file_driver_t *) *self_p;
    for (size_t i = 0; i < self->pending_count; i++)
        unlink (self->pending[i].tmp);
    free (self->pending);
    if (self->dir_fd >= 0)
        close (self->dir_fd);
    hd_mail_destroy (&self->mail);
    free (self);
    *self_p = NULL;
}

const hd_driver_ops_t hd_file_ops = {
    .name = "file",
    .open = s_open,
    .start = s_start,
    .poll_items = NULL,
    .progress = NULL,
    .flush = s_flush,
    .in_progress = s_in_progress,
    .close = s_close
};
