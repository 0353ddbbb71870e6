/*  refusals: counters (atomics, read by status at any time) and the log's
    rate limit (a mutex around the window's state; refusals are not the
    broker's hot path). */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_clock.h"
#include "herald_log.h"
#include "refusals.h"

struct refusals {
    _Atomic uint64_t counts[ENDPOINT_COUNT][REFUSAL_COUNT];
    pthread_mutex_t lock;               /* guards the window below */
    int per_window;                     /* lines logged per window */
    int64_t window_ms;
    int64_t window_end;                 /* monotonic ms, 0 = no window open */
    int logged;                         /* lines logged in this window */
    uint64_t suppressed[REFUSAL_COUNT]; /* refusals not logged in this window */
};

static const char *const s_reason_names[REFUSAL_COUNT] = {
    [REFUSAL_NO_KEY] = "no_key",
    [REFUSAL_WRONG_SERVER_KEY] = "wrong_server_key",
    [REFUSAL_UNKNOWN_KEY] = "unknown_key",
    [REFUSAL_REMOVED_KEY] = "removed_key",
    [REFUSAL_WRONG_ROLE] = "wrong_role",
    [REFUSAL_CHANNEL] = "channel",
    [REFUSAL_ADMIN_VERB] = "admin_verb",
    [REFUSAL_HANDSHAKE] = "handshake",
    [REFUSAL_PROTOCOL] = "protocol",
    [REFUSAL_CONNECTION_CAP] = "connection_cap",
};

static const char *const s_endpoint_names[ENDPOINT_COUNT] = { "producers", "workers", "admin" };

const char *
refusal_reason_name (refusal_reason_t reason)
{
    return (int) reason >= 0 && reason < REFUSAL_COUNT? s_reason_names[reason]: "unknown";
}

const char *
endpoint_name (endpoint_t endpoint)
{
    return (int) endpoint >= 0 && endpoint < ENDPOINT_COUNT? s_endpoint_names[endpoint]: "unknown";
}

refusals_t *
refusals_new (int per_window, int64_t window_ms)
{
    refusals_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init (&self->lock, NULL);
    self->per_window = per_window > 0? per_window: 1;
    self->window_ms = window_ms > 0? window_ms: 60000;
    return self;
}

void
refusals_destroy (refusals_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_mutex_destroy (&(*self_p)->lock);
    free (*self_p);
    *self_p = NULL;
}

/*  The log message for a reason. */
static const char *
s_message (refusal_reason_t reason)
{
    switch (reason) {
        case REFUSAL_CHANNEL:           return "worker registration refused";
        case REFUSAL_ADMIN_VERB:        return "admin request refused";
        case REFUSAL_CONNECTION_CAP:    return "connection refused: too many connections";
        default:                        return "connection refused";
    }
}

/*  Writes the non-zero suppressed counts as logfmt pairs into buf. */
static void
s_format_suppressed (const refusals_t *self, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int r = 0; r < REFUSAL_COUNT; r++)
        if (self->suppressed[r] && used < size)
            used += (size_t) snprintf (buf + used, size - used, " %s=%llu", s_reason_names[r],
                                       (unsigned long long) self->suppressed[r]);
}

/*  With the lock held: closes the window if over, logging its summary. */
static void
s_roll (refusals_t *self, int64_t now)
{
    if (self->window_end == 0 || now < self->window_end)
        return;
    uint64_t total = 0;
    for (int r = 0; r < REFUSAL_COUNT; r++)
        total += self->suppressed[r];
    if (total > 0) {
        char counts[400];
        s_format_suppressed (self, counts, sizeof counts);
        herald_warn ("refusals not logged in the last window (rate limit)",
                     "suppressed=%llu window_ms=%lld%s", (unsigned long long) total,
                     (long long) self->window_ms, counts);
    }
    memset (self->suppressed, 0, sizeof self->suppressed);
    self->logged = 0;
    self->window_end = 0;
}

void
refusals_add (refusals_t *self, endpoint_t endpoint, refusal_reason_t reason, const char *fields, ...)
{
    if (!self || (int) endpoint < 0 || endpoint >= ENDPOINT_COUNT || (int) reason < 0 || reason >= REFUSAL_COUNT)
        return;
    atomic_fetch_add (&self->counts[endpoint][reason], 1);

    int64_t now = herald_clock_mono_ms ();
    pthread_mutex_lock (&self->lock);
    s_roll (self, now);
    if (self->window_end == 0)
        self->window_end = now + self->window_ms;
    bool log_it = self->logged < self->per_window;
    bool limit_reached = self->logged == self->per_window;
    if (log_it || limit_reached)
        self->logged++;
    if (!log_it)
        self->suppressed[reason]++;
    pthread_mutex_unlock (&self->lock);

    if (log_it) {
        char extra[600] = "";
        if (fields) {
            extra[0] = ' ';
            va_list args;
            va_start (args, fields);
            vsnprintf (extra + 1, sizeof extra - 1, fields, args);
            va_end (args);
        }
        herald_warn (s_message (reason), "endpoint=%s reason=%s%s", s_endpoint_names[endpoint],
                     s_reason_names[reason], extra);
    }
    else
    if (limit_reached)
        herald_warn ("refusal log limit reached: the rest of this window is only counted (herald status)",
                     "lines=%d window_ms=%lld", self->per_window, (long long) self->window_ms);
}

int64_t
refusals_tick (refusals_t *self, int64_t now)
{
    pthread_mutex_lock (&self->lock);
    s_roll (self, now);
    int64_t left = self->window_end? self->window_end - now: self->window_ms;
    pthread_mutex_unlock (&self->lock);
    return left > 0? left: 0;
}

uint64_t
refusals_count (refusals_t *self, endpoint_t endpoint, refusal_reason_t reason)
{
    if (!self || (int) endpoint < 0 || endpoint >= ENDPOINT_COUNT || (int) reason < 0 || reason >= REFUSAL_COUNT)
        return 0;
    return atomic_load (&self->counts[endpoint][reason]);
}

json_t *
refusals_json (refusals_t *self)
{
    json_t *out = json_object ();
    json_t *by_endpoint = json_object ();
    uint64_t total = 0;
    uint64_t per_endpoint[ENDPOINT_COUNT] = { 0 };
    for (int r = 0; r < REFUSAL_COUNT; r++) {
        uint64_t sum = 0;
        for (int e = 0; e < ENDPOINT_COUNT; e++) {
            uint64_t n = refusals_count (self, (endpoint_t) e, (refusal_reason_t) r);
            sum += n;
            per_endpoint[e] += n;
        }
        total += sum;
        json_object_set_new (out, s_reason_names[r], json_integer ((json_int_t) sum));
    }
    for (int e = 0; e < ENDPOINT_COUNT; e++)
        json_object_set_new (by_endpoint, s_endpoint_names[e], json_integer ((json_int_t) per_endpoint[e]));
    json_object_set_new (out, "total", json_integer ((json_int_t) total));
    json_object_set_new (out, "by_endpoint", by_endpoint);
    return out;
}
