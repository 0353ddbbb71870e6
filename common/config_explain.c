/*  config_explain: herald_config_explain, the plain-text description of a
    loaded configuration that `herald check-config` prints: every value in
    effect, defaults included, in the words an operator would use. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/*  A growing string; on out of memory it stops growing and remembers it. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed;                    /* out of memory: the result is NULL */
} s_text_t;

static void
s_text_add (s_text_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_text_add (s_text_t *self, const char *fmt, ...)
{
    if (self->failed)
        return;
    va_list args;
    va_start (args, fmt);
    int n = vsnprintf (NULL, 0, fmt, args);
    va_end (args);
    if (n < 0) {
        self->failed = true;
        return;
    }
    if (self->len + (size_t) n + 1 > self->cap) {
        size_t cap = self->cap? self->cap: 1024;
        while (cap < self->len + (size_t) n + 1)
            cap *= 2;
        char *data = realloc (self->data, cap);
        if (!data) {
            self->failed = true;
            return;
        }
        self->data = data;
        self->cap = cap;
    }
    va_start (args, fmt);
    vsnprintf (self->data + self->len, self->cap - self->len, fmt, args);
    va_end (args);
    self->len += (size_t) n;
}

/*  Appends the description of channel index: driver, retry, limits, workers. */
static void
s_explain_channel (s_text_t *out, const herald_config_t *cfg, int index)
{
    const herald_channel_t *ch = &cfg->channels[index];
    char a[32], b[32];
    s_text_add (out, "  %s\n    driver     %s", ch->name, herald_driver_name (ch->driver));
    if (ch->driver == HERALD_DRIVER_FILE)
        s_text_add (out, ", writes to %s/\n", ch->dir);
    else
    if (ch->driver == HERALD_DRIVER_SMTP)
        s_text_add (out, ", relay %s (tls %s%s%s, verify peer %s)\n", ch->smtp.url,
                    config_tls_name (ch->smtp.tls), ch->smtp.username[0]? ", auth as ": "",
                    ch->smtp.username, ch->smtp.verify_peer? "yes": "NO");
    else
    if (ch->driver == HERALD_DRIVER_HTTP)
        s_text_add (out, ", %s %s (verify peer %s, redirects %s)\n", ch->http.method, ch->http.url,
                    ch->http.verify_peer? "yes": "NO", ch->http.follow_redirects? "followed": "refused");
    else
        s_text_add (out, ", accepts and drops every task\n");
    if (ch->driver == HERALD_DRIVER_SMTP || (ch->driver == HERALD_DRIVER_FILE && ch->smtp.to[0])) {
        s_text_add (out, "    email      from %s, to %s, subject \"%s\"\n",
                    ch->smtp.from[0]? ch->smtp.from: "(unset)", ch->smtp.to, ch->smtp.subject);
        if (ch->smtp.text_template[0] || ch->smtp.html_template[0])
            s_text_add (out, "    templates  %s, %s\n", ch->smtp.text_template, ch->smtp.html_template);
        if (ch->driver == HERALD_DRIVER_SMTP)
            s_text_add (out, "    timeout    %s\n", config_format_duration (ch->smtp.timeout_ms, a, sizeof a));
    }
    if (ch->driver == HERALD_DRIVER_HTTP) {
        for (int i = 0; i < ch->http.header_count; i++) {
            const herald_header_t *h = &ch->http.headers[i];
            if (h->value_env[0])
                s_text_add (out, "    header     %s: (from $%s)\n", h->name, h->value_env);
            else
                s_text_add (out, "    header     %s: %s\n", h->name, h->value);
        }
        s_text_add (out, "    body       %s\n",
                    ch->http.body_template[0]? ch->http.body_template: "(the event's data as is)");
        s_text_add (out, "    timeouts   connect %s, total %s\n",
                    config_format_duration (ch->http.connect_timeout_ms, a, sizeof a),
                    config_format_duration (ch->http.timeout_ms, b, sizeof b));
    }
    s_text_add (out, "    retry      up to %d attempts, backoff %s", ch->max_attempts,
                config_format_duration (ch->backoff_min_ms, a, sizeof a));
    s_text_add (out, "..%s (exponential, full jitter), then dead\n",
                config_format_duration (ch->backoff_max_ms, b, sizeof b));
    s_text_add (out, "    lease      %s\n", config_format_duration (ch->lease_ms, a, sizeof a));
    s_text_add (out, "    limits     capacity %d per worker, ", ch->capacity);
    if (ch->max_in_flight)
        s_text_add (out, "at most %d in flight, ", ch->max_in_flight);
    else
        s_text_add (out, "in flight bounded by worker credit, ");
    if (ch->rate_per_sec > 0)
        s_text_add (out, "rate %g/s (burst %d)\n", ch->rate_per_sec, ch->burst);
    else
        s_text_add (out, "rate unlimited\n");
    s_text_add (out, "    workers    %d process%s\n", cfg->workers[index], cfg->workers[index] == 1? "": "es");
}

char *
herald_config_explain (const herald_config_t *self)
{
    if (!self)
        return NULL;
    s_text_t out = { 0 };
    const herald_broker_config_t *b = &self->broker;
    char a[32], c[32], d[32];
    s_text_add (&out, "configuration %s\n", self->path[0]? self->path: "(compiled-in defaults)");
    s_text_add (&out, "broker\n");
    s_text_add (&out, "  producers  %s\n  workers    %s\n  admin      %s\n",
                b->producers, b->workers, b->admin);
    s_text_add (&out, "  store      %s\n", b->store);
    s_text_add (&out, "  limits     events up to %s, %d per commit, busy above %d undelivered tasks per channel, "
                "%d tasks per channel in memory, hwm %d\n",
                config_format_size (b->max_event_bytes, a, sizeof a), b->batch_max,
                b->max_pending_events, b->queue_window, b->hwm);
    s_text_add (&out, "  timing     heartbeat %s (dead after %d missed), duplicates remembered %s, "
                "shutdown within %s\n",
                config_format_duration (b->heartbeat_ms, a, sizeof a), b->heartbeat_liveness,
                config_format_duration (b->dedup_retention_ms, c, sizeof c),
                config_format_duration (b->shutdown_timeout_ms, d, sizeof d));
    s_text_add (&out, "events (%d)\n", self->event_count);
    for (int i = 0; i < self->event_count; i++) {
        const herald_event_type_t *ev = &self->events[i];
        s_text_add (&out, "  %s\n    key        %s\n    required   ", ev->name,
                    ev->key[0]? ev->key: "(CloudEvents source + id)");
        for (int j = 0; j < ev->required_count; j++)
            s_text_add (&out, "%s%s", j? ", ": "", ev->required[j]);
        s_text_add (&out, "%s\n    fanout     ", ev->required_count? "": "(nothing)");
        for (int j = 0; j < ev->fanout_count; j++)
            s_text_add (&out, "%s%s", j? ", ": "", self->channels[ev->fanout[j]].name);
        s_text_add (&out, "\n");
    }
    s_text_add (&out, "channels (%d)\n", self->channel_count);
    for (int i = 0; i < self->channel_count; i++)
        s_explain_channel (&out, self, i);
    if (out.failed) {
        free (out.data);
        return NULL;
    }
    if (!out.data)
        return strdup ("");
    return out.data;
}
