/*  refusals: what the broker's security turned away, counted by endpoint and
    reason for `herald status`, and logged with a rate limit so a flood of
    hostile connections cannot flood the log: the first lines of each minute
    are written, then one line saying the limit was reached, then at the end
    of the minute one summary of what was not written. Thread-safe: the ZAP
    thread and the broker's loop both add to it. */
#ifndef HERALD_REFUSALS_H
#define HERALD_REFUSALS_H

#include <jansson.h>
#include <stdint.h>

/*  The broker's three endpoints. */
typedef enum {
    ENDPOINT_PRODUCERS,
    ENDPOINT_WORKERS,
    ENDPOINT_ADMIN,
    ENDPOINT_COUNT
} endpoint_t;

typedef enum {
    REFUSAL_NO_KEY,             /* a client without CURVE (NULL or PLAIN) at a CURVE endpoint */
    REFUSAL_WRONG_SERVER_KEY,   /* a CURVE HELLO the broker cannot open: the client has another broker key */
    REFUSAL_UNKNOWN_KEY,        /* ZAP: a key in no list */
    REFUSAL_REMOVED_KEY,        /* a key removed by a reload: at ZAP, or its open connection closed */
    REFUSAL_WRONG_ROLE,         /* ZAP: a listed key on an endpoint its roles do not use */
    REFUSAL_CHANNEL,            /* READY for a channel the worker key is not bound to */
    REFUSAL_ADMIN_VERB,         /* an admin verb the key's role does not allow */
    REFUSAL_HANDSHAKE,          /* handshake not finished within broker.handshake_timeout, or dropped */
    REFUSAL_PROTOCOL,           /* another ZMTP or CURVE protocol error */
    REFUSAL_CONNECTION_CAP,     /* above broker.max_connections on the endpoint */
    REFUSAL_COUNT
} refusal_reason_t;

typedef struct refusals refusals_t;

/*  per_window lines are logged per window_ms, then one summary per window. */
refusals_t *
    refusals_new (int per_window, int64_t window_ms);

void
    refusals_destroy (refusals_t **self_p);

/*  Counts one refusal and logs it ("connection refused" endpoint= reason=
    and the logfmt fields given, a printf format; may be NULL) unless this
    window's lines are spent. */
void
    refusals_add (refusals_t *self, endpoint_t endpoint, refusal_reason_t reason,
                  const char *fields, ...) __attribute__ ((format (printf, 4, 5)));

/*  Ends the window when now (monotonic ms) is past it, logging the summary of
    what was not logged. Returns the ms until the window ends. */
int64_t
    refusals_tick (refusals_t *self, int64_t now);

uint64_t
    refusals_count (refusals_t *self, endpoint_t endpoint, refusal_reason_t reason);

/*  "no_key", "unknown_key", ... (status JSON keys and log values). */
const char *
    refusal_reason_name (refusal_reason_t reason);

/*  "producers", "workers", "admin". */
const char *
    endpoint_name (endpoint_t endpoint);

/*  {"total": N, "no_key": n, ..., "by_endpoint": {"producers": n, ...}}. New reference. */
json_t *
    refusals_json (refusals_t *self);

#endif
