/*  outbox: replies to the peers of one ROUTER socket, sent without ever
    blocking the broker. A reply that meets a full pipe (a peer that does
    not read fast enough) is parked and sent on a later turn; each peer may
    have at most `peer_cap` replies parked. A peer over its cap does not read
    its replies at all: it is dropped, meaning its parked replies are
    discarded and from then on a reply that meets its full pipe is lost to
    it alone (the protocol lets a producer publish again with the same key).
    Replies to a peer that has gone are discarded. Every other peer is
    served as if the bad one were not there: memory is bounded by
    `total_cap` parked replies, and above it the peer with the most parked
    replies is dropped. No reading is ever paused for everyone. */
#ifndef HERALD_OUTBOX_H
#define HERALD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "herald_proto.h"

typedef struct outbox outbox_t;

typedef enum {
    OUTBOX_SENT = 0,        /* handed to libzmq */
    OUTBOX_PARKED,          /* waits for its peer's pipe */
    OUTBOX_LOST             /* the peer is gone or dropped: discarded */
} outbox_result_t;

typedef struct {
    size_t parked;          /* replies parked now */
    size_t peers_waiting;   /* peers with parked replies now */
    uint64_t dropped;       /* peers dropped since start (did not read their replies) */
    uint64_t lost;          /* replies discarded since start (dropped or gone peers) */
} outbox_stats_t;

/*  An outbox for socket (a ROUTER with ROUTER_MANDATORY). what names the
    peers in log lines ("producer"). NULL on OOM. */
outbox_t *
    outbox_new (void *socket, const char *what, size_t peer_cap, size_t total_cap);

/*  New caps (broker.max_unread_replies changed by a reload): a peer over
    the new one is dropped at its next parked reply. */
void
    outbox_set_caps (outbox_t *self, size_t peer_cap, size_t total_cap);

/*  Frees every parked reply; NULL-safe, nulls the pointer. */
void
    outbox_destroy (outbox_t **self_p);

/*  Sends msg to the peer with that routing id without blocking, or parks it
    behind the peer's earlier parked replies. Copies what it keeps. */
outbox_result_t
    outbox_send (outbox_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg);

/*  Sends what the peers' pipes take now. Costs one try per waiting peer. */
void
    outbox_flush (outbox_t *self);

/*  Replies parked now. */
size_t
    outbox_parked (outbox_t *self);

void
    outbox_stats (outbox_t *self, outbox_stats_t *stats);

#endif
