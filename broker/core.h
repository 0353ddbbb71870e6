/*  core: the broker's rules, with no sockets, files or clocks of its own.
    It takes decoded messages and the time, and asks for effects through a
    table of functions (core_io_t): replies to send, journal records to
    append, index requests to post. The loop (broker.c) owns the sockets,
    the store (store.h) every byte of storage; unit tests give the core a
    table that records what it asked for, and drive it message by message.

    Rules it keeps:
      - no ACK before the event's journal record is durable (core_durable);
        an event's tasks exist, and are dispatched, only from then on;
      - a duplicate key is ACKed with the stored event's id once that event
        is durable, and creates nothing;
      - a task's answer counts only if it matches the task's current lease
        (the fencing token); a worker's numbers (capacity, delays) are held
        to the configuration;
      - a worker lost while holding several tasks charges none of them (they
        are delivered alone from then on: poison isolation);
      - THROTTLED answers pause the channel and do not spend the attempt
        budget (they have a cap of their own);
      - memory holds at most broker.queue_window tasks per channel; the
        rest is loaded from the index as room frees up;
      - on stop: no new events, in-flight deliveries get shutdown_timeout. */
#ifndef HERALD_CORE_H
#define HERALD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "herald_config.h"
#include "herald_metrics.h"
#include "herald_proto.h"
#include "index.h"
#include "journal.h"
#include "store_ops.h"

typedef struct core core_t;

/*  The socket a request came in on: its reply goes back to that socket,
    never chosen by the routing id (a producer picks its own routing id). */
typedef enum {
    CORE_ORIGIN_PEER = 0,           /* the producer or admin endpoint, as the request's command says */
    CORE_ORIGIN_INTERNAL            /* the broker's own inproc socket (the HTTP endpoint's thread) */
} core_origin_t;

/*  What the core asks of the world. */
typedef struct {
    void *ctx;
    /*  A reply to a producer (ACK or NACK). */
    void (*reply) (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg);
    /*  A message to a worker: 0, or -1 with errno when it cannot be sent
        now (EAGAIN: its pipe is full; EHOSTUNREACH: it is gone). */
    int (*to_worker) (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg);
    /*  An admin reply. */
    void (*admin_reply) (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg);
    /*  Appends a journal record: the LSN past it, or 0 (then status says why). */
    uint64_t (*append) (void *ctx, const void *payload, uint32_t len);
    journal_status_t (*append_status) (void *ctx);
    /*  Posts an index request (the answer comes back through core_index). */
    void (*query) (void *ctx, index_msg_t *msg);
    /*  Adds loop-level facts to the status answer (producers, store size). */
    void (*status) (void *ctx, json_t *broker);
    /*  Counters for GET /metrics (borrowed; NULL: none kept). */
    herald_metrics_t *metrics;
    /*  Any reply (ACK, NACK, ADMIN-REPLY) to a request that came in with
        CORE_ORIGIN_INTERNAL (NULL: none does). */
    void (*internal_reply) (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg);
    /*  A shared store (core_start_t.shared) only, else NULL: the next event
        number (0: none at hand now); an event record whose fan-out places
        in `held` (bit f) this broker keeps in memory, the others left free
        for any broker; what became of a durable event record (store_ops.h:
        new, a duplicate of another broker's event, or refused); the ACK's
        durability word (NULL: "fsync"). */
    uint64_t (*next_seq) (void *ctx);
    uint64_t (*append_event) (void *ctx, const void *payload, uint32_t len, uint32_t held);
    int (*commit_result) (void *ctx, uint64_t lsn, store_commit_t *out);
    const char *(*durability) (void *ctx);
} core_io_t;

/*  What the store knew at open. */
typedef struct {
    uint64_t next_seq;
    uint64_t boots;                 /* unique per broker start: the high half of its lease ids */
    bool shared;                    /* several brokers share the store: numbers from io.next_seq,
                                       duplicates decided at commit, tasks held only with workers here */
} core_start_t;

/*  A core for config (borrowed). NULL on OOM. */
core_t *
    core_new (const herald_config_t *config, const core_io_t *io, const core_start_t *start);

void
    core_destroy (core_t **self_p);

/*  Recovery, before the first message: the index's counts of a channel,
    and the key of every event the store holds. */
void
    core_recover_counts (core_t *self, const char *channel, int64_t pending, int64_t done, int64_t dead);
void
    core_recover_key (core_t *self, uint64_t seq, const char *key, size_t len);
/*  After recovery: tasks of channels no longer configured become dead
    (journal records), loading starts. */
void
    core_started (core_t *self, int64_t now);

/*  Messages. identity is the peer's routing id. */
void
    core_publish (core_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg,
                  int64_t now);
void
    core_worker (core_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg,
                 int64_t now);
void
    core_admin (core_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg,
                int64_t now);

/*  The same, from the socket origin: its replies go to io.internal_reply
    for CORE_ORIGIN_INTERNAL (core_publish and core_admin are these with
    CORE_ORIGIN_PEER). */
void
    core_publish_from (core_t *self, core_origin_t origin, const void *identity, size_t identity_len,
                       const hp_msg_t *msg, int64_t now);
void
    core_admin_from (core_t *self, core_origin_t origin, const void *identity, size_t identity_len,
                     const hp_msg_t *msg, int64_t now);

/*  The journal is durable up to lsn: ACKs and new tasks follow. */
void
    core_durable (core_t *self, uint64_t lsn, int64_t now);

/*  The journal failed for good: every unanswered publish gets a NACK. */
void
    core_journal_failed (core_t *self, const char *why);

/*  An answer or a notice from the index (ownership passes to the core). */
void
    core_index (core_t *self, index_msg_t *msg, int64_t now);

/*  Timers and dispatch: heartbeats, leases, retries, deliveries, loads.
    Returns the monotonic time of the next deadline. */
int64_t
    core_tick (core_t *self, int64_t now);

/*  True when records are staged that should go to disk now (events wait
    for their ACK; outcomes alone wait a little for company). */
bool
    core_flush_due (core_t *self, int64_t now, bool journal_pending);

/*  Stop: no new events; in-flight deliveries are awaited until the
    deadline. core_stopped says when the loop may end. */
void
    core_stop (core_t *self, int64_t now);
bool
    core_stopped (core_t *self, int64_t now);

/*  Whether producers may be read now: not stopping, and fewer than two
    batches (broker.batch_max each) of publishes waiting for the disk. */
bool
    core_accepting (core_t *self);

/*  A fatal condition (the index failed): the loop ends and the broker
    exits with an error. */
bool
    core_failed (core_t *self);

/*  A reload rewrote the configuration (borrowed at core_new) between two
    turns: the same channels in the same order, other limits and event
    types. event_map gives each old event type index its new one (-1: the
    type was removed). Registered workers are held to a lower capacity,
    rate buckets to the new burst, the next heartbeat to the new interval;
    events staged before keep the fan-out their journal record lists. */
void
    core_config_changed (core_t *self, const int *event_map, int64_t now);

/*  Counts for tests and status. */
typedef struct {
    int64_t open, done, dead;
    size_t in_flight, delayed, ready;
    int workers;
} core_channel_counts_t;

void
    core_counts (core_t *self, int channel, core_channel_counts_t *counts);

/*  Events accepted since start. */
int64_t
    core_events_accepted (core_t *self);

#endif
