/*  reload: what SIGHUP does in the broker. Between two turns of its loop,
    the broker reads its configuration file again, checks it as
    --check-config does, and rewrites the loop's configuration in place
    with what can change live (herald_config_merge: channel limits and
    retry policy, broker tunables, event types, key lists); what needs a
    restart (endpoints, the store, the journal's sizes, the set of
    channels) keeps its running value and is logged as needing one. A file
    that does not load or does not pass the checks changes nothing.

    Who reads the configuration, and why a rewrite in place is safe: the
    loop's configuration (a copy broker.c makes at start) is read by the
    loop's thread alone: the core, dispatch, validation, security's checks,
    the outboxes. The other threads got what they read at start, from the
    configuration as loaded (main's, never written again): the HTTP thread
    its address, TLS, token file and limits; the ZAP thread its connection
    cap and its own copy of the key lists (replaced by a message,
    security_apply); the journal and index threads their store options.
    All of those are restart keys but two, which the reload hands over
    through atomics: the HTTP thread's event size cap
    (http_set_event_max) and the index's retention (store_set_retention).
    So the rewrite needs no lock, no atomic pointer swap and no grace
    period: it happens on the only thread that reads what it rewrites, at a
    point where no action of the core is half done. */
#ifndef HERALD_RELOAD_H
#define HERALD_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "herald_config.h"
#include "http.h"
#include "outbox.h"
#include "security.h"
#include "store.h"

#define RELOAD_SOCKETS_MAX  4

/*  What a reload tells about the new configuration. */
typedef struct {
    core_t *core;
    security_t *security;
    store_t *store;
    outbox_t *outbox;                   /* the producers' replies */
    outbox_t *internal_outbox;          /* the HTTP thread's replies */
    http_t *http;                       /* NULL without the HTTP endpoint */
    void *sockets[RELOAD_SOCKETS_MAX];  /* ROUTERs whose ZMQ_MAXMSGSIZE follows max_event_bytes; NULL ends */
} reload_targets_t;

/*  The transport cap of the broker's ROUTERs for a max_event_bytes:
    above the event cap, so that an oversized event still gets its NACK 413;
    only absurd messages are cut off by libzmq itself. */
static inline long long
reload_transport_max (size_t max_event_bytes)
{
    return (long long) max_event_bytes * 4 + 65536;
}

/*  Replies parked in all for a per-producer cap (broker.max_unread_replies). */
static inline size_t
reload_outbox_total (size_t peer_cap)
{
    return 4 * peer_cap + 100000;
}

/*  Reads live->path again and applies it to *live and the targets (logged:
    one line per key that needs a restart, then a summary). 0 when applied
    (perhaps without the keys that need a restart), -1 when refused (the
    file does not load or fails the checks; logged with the file, line and
    key): the running configuration stays whole. Call between two turns of
    the loop, on its thread. */
int
    reload_apply (herald_config_t *live, const reload_targets_t *targets);

#endif
