/*  cli_relay: a child's stderr, relayed line by line; see cli_relay.h. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_relay.h"

#define S_LINE_MAX      8192        /* as herald_log's longest line */
#define S_KEPT_MAX      2048        /* the last error line kept */

struct _cli_relay_t {
    int fd;                         /* read end of the child's stderr, -1 at its end */
    int out_fd;                     /* where lines go */
    char line[S_LINE_MAX];          /* the line being read */
    size_t len;
    char last_error[S_KEPT_MAX];    /* last line at level error */
    char last_line[S_KEPT_MAX];     /* last line of any kind */
};

cli_relay_t *
cli_relay_new (int fd, int out_fd)
{
    cli_relay_t *self = calloc (1, sizeof *self);
    int flags = fcntl (fd, F_GETFL);
    if (!self || flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        free (self);
        close (fd);
        return NULL;
    }
    self->fd = fd;
    self->out_fd = out_fd;
    return self;
}

void
cli_relay_destroy (cli_relay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_relay_t *self = *self_p;
    if (self->fd >= 0)
        close (self->fd);
    free (self);
    *self_p = NULL;
}

int
cli_relay_fd (const cli_relay_t *self)
{
    return self? self->fd: -1;
}

static void
s_keep (char *dst, const char *line, size_t len)
{
    if (len >= S_KEPT_MAX)
        len = S_KEPT_MAX - 1;
    memcpy (dst, line, len);
    dst[len] = '\0';
}

static bool
s_is_error (const char *line, size_t len)
{
    static const char *const marks[] = { " level=error ", "\"level\":\"error\"" };
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (memmem (line, len, marks[i], strlen (marks[i])))
            return true;
    return len >= 12 && memcmp (line, "level=error ", 12) == 0;
}

//  Writes line[0..len) and a newline in one write (retried if cut short).
static void
s_emit (cli_relay_t *self, size_t len)
{
    if (len > 0) {
        size_t end = len;
        while (end > 0 && (self->line[end - 1] == '\n' || self->line[end - 1] == '\r'))
            end--;
        if (end > 0) {
            s_keep (self->last_line, self->line, end);
            if (s_is_error (self->line, end))
                s_keep (self->last_error, self->line, end);
        }
    }
    if (len == 0 || self->line[len - 1] != '\n')
        self->line[len++] = '\n';       //  room is kept for it
    size_t done = 0;
    while (done < len) {
        ssize_t n = write (self->out_fd, self->line + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;              //  our stderr is gone: nothing more to do with it
        done += (size_t) n;
    }
}

bool
cli_relay_read (cli_relay_t *self)
{
    if (!self || self->fd < 0)
        return false;
    for (;;) {
        ssize_t n = read (self->fd, self->line + self->len, sizeof self->line - 1 - self->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            if (self->len > 0)
                s_emit (self, self->len);
            self->len = 0;
            close (self->fd);
            self->fd = -1;
            return false;
        }
        self->len += (size_t) n;
        //  Emit every complete line; keep the start of the next one
        char *newline;
        while ((newline = memchr (self->line, '\n', self->len))) {
            size_t end = (size_t) (newline - self->line) + 1;
            s_emit (self, end);
            memmove (self->line, self->line + end, self->len - end);
            self->len -= end;
        }
        if (self->len == sizeof self->line - 1) {
            s_emit (self, self->len);       //  too long: out in pieces
            self->len = 0;
        }
    }
}

const char *
cli_relay_last_error (const cli_relay_t *self)
{
    if (!self)
        return "";
    return self->last_error[0]? self->last_error: self->last_line;
}

//  The value of key in a logfmt line, unquoted, into buf; *end (if not
//  NULL) is set past it. 0 / -1.
static int
s_logfmt_value (const char *line, const char *key, char *buf, size_t size, const char **end)
{
    size_t key_len = strlen (key);
    const char *p = line;
    for (;;) {
        p = strstr (p, key);
        if (!p)
            return -1;
        if ((p == line || p[-1] == ' ') && p[key_len] == '=')
            break;
        p += key_len;
    }
    p += key_len + 1;
    size_t o = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1]) {
                p++;
                if (o + 1 < size)
                    buf[o++] = *p == 'n'? ' ': *p;
            }
            else
            if (o + 1 < size)
                buf[o++] = *p;
        }
        if (*p == '"')
            p++;
    }
    else
        for (; *p && *p != ' '; p++)
            if (o + 1 < size)
                buf[o++] = *p;
    buf[o] = '\0';
    if (end)
        *end = p;
    return 0;
}

//  The keys of a JSON log line beyond the standard ones, as "k=v k=v".
static void
s_json_details (json_t *root, char *buf, size_t size)
{
    static const char *const standard[] = { "ts", "level", "proc", "pid", "msg", NULL };
    size_t o = 0;
    buf[0] = '\0';
    const char *key;
    json_t *value;
    json_object_foreach (root, key, value) {
        bool skip = false;
        for (int i = 0; standard[i]; i++)
            skip |= strcmp (key, standard[i]) == 0;
        const char *text = json_string_value (value);
        if (skip || !text || o + 1 >= size)
            continue;
        int n = snprintf (buf + o, size - o, "%s%s=%s", o? " ": "", key, text);
        if (n > 0)
            o += (size_t) n;
    }
}

const char *
cli_relay_describe (const char *line, char *buf, size_t size)
{
    char msg[512] = "";
    char error[1536] = "";
    bool found = false;
    char details[1536] = "";
    const char *rest = NULL;
    if (line[0] == '{') {
        json_t *root = json_loads (line, 0, NULL);
        const char *m = json_string_value (json_object_get (root, "msg"));
        const char *e = json_string_value (json_object_get (root, "error"));
        if (m) {
            snprintf (msg, sizeof msg, "%s", m);
            snprintf (error, sizeof error, "%s", e? e: "");
            if (!e)
                s_json_details (root, details, sizeof details);
            found = true;
        }
        json_decref (root);
    }
    else
    if (s_logfmt_value (line, "msg", msg, sizeof msg, &rest) == 0) {
        found = true;
        if (s_logfmt_value (line, "error", error, sizeof error, NULL) != 0) {
            while (*rest == ' ')
                rest++;
            snprintf (details, sizeof details, "%s", rest);
        }
    }
    if (!found)
        snprintf (buf, size, "%s", line);
    else
    if (error[0])
        snprintf (buf, size, "%s: %s", msg, error);
    else
    if (details[0])
        snprintf (buf, size, "%s (%s)", msg, details);
    else
        snprintf (buf, size, "%s", msg);
    return buf;
}
