/*  broker_internal: the broker's state, shared by broker.c (the loop and
    its actions) and admin.c (the admin verbs). Private to broker/. */
#ifndef HERALD_BROKER_INTERNAL_H
#define HERALD_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"
#include "dispatch.h"
#include "herald_proto.h"
#include "security.h"
#include "store.h"
#include "validate.h"

/*  An accepted event waiting for the commit. */
typedef struct {
    char identity[256];             /* producer routing id */
    size_t identity_len;
    char corr[HP_MAX_CORR];         /* its correlation id */
    size_t corr_len;
    blob_t *event;                  /* the envelope as received */
    validate_result_t check;        /* id, source, dedup key, type */
    store_event_t stored;           /* seq, duplicate, existing id after insert */
    int64_t task_rowids[HERALD_MAX_CHANNELS];
    char uid[33];                   /* broker-made unique id; task ids are uid.channel */
} pending_event_t;

typedef enum {
    OUTCOME_DONE,
    OUTCOME_RESCHEDULE,
    OUTCOME_DEAD
} outcome_kind_t;

/*  A task state change waiting for the commit. */
typedef struct {
    outcome_kind_t kind;
    int64_t rowid;
    uint32_t attempts;
    int64_t not_before;             /* wall ms (reschedule) */
    int64_t at;                     /* wall ms */
    bool log_attempt;               /* record the failed attempt in history */
    char outcome[16];               /* retry, throttled, failed, lease-expired, worker-lost */
    char error[HP_MAX_TEXT + 1];
} outcome_t;

/*  A reply that met a full pipe, retried on later turns. */
typedef struct reply {
    struct reply *next;
    size_t identity_len;
    char identity[256];
    hp_msg_t msg;                   /* strings point into text */
    char text[HP_MAX_ID + HP_MAX_CORR + 1100];
} reply_t;

typedef struct {
    int64_t open;                   /* tasks pending in the store (incl. held in memory) */
    int64_t done;
    int64_t dead;
    int64_t loaded_upto;            /* every pending task with rowid <= this is in memory */
    bool backlog;                   /* pending tasks exist in the store beyond loaded_upto */
} channel_stats_t;

struct broker {
    const herald_config_t *config;
    void *ctx;
    void *producers;                /* ROUTER */
    void *workers;                  /* ROUTER */
    void *admin;                    /* ROUTER */
    store_t *store;
    dispatch_t *dispatch;
    pending_event_t *batch;         /* batch_max slots */
    int batch_count;
    outcome_t *outcomes;            /* grows as needed, up to OUTCOME_FLUSH_MAX */
    size_t outcome_count, outcome_cap;
    int64_t outcomes_since;         /* monotonic ms: when the oldest unstored outcome came */
    reply_t *outbox_head, *outbox_tail;
    size_t outbox_count;
    channel_stats_t stats[HERALD_MAX_CHANNELS];
    uint64_t rng[2];                /* xorshift128+ for ids and jitter */
    int64_t started_mono;
    int64_t next_heartbeat;         /* monotonic ms */
    int64_t next_prune;
    int64_t store_retry_at;         /* after a full-disk failure, when to try again */
    bool store_full;                /* the last commit failed for lack of space */
    int64_t events_accepted;        /* since start */
    broker_status_t fatal;          /* set when the loop must end */
    security_t *security;           /* CURVE, ZAP, connection limits (security.c) */
    volatile sig_atomic_t *reload;  /* set by SIGHUP: reload the security section, or NULL */
};

#define STORE_RETRY_MS      1000    /* after a full disk, try committing again */

/*  Worker outcomes (done, retry, dead) ride along with the next commit of
    events; with no events coming they are committed on their own after
    OUTCOME_FLUSH_MS, or at once when OUTCOME_FLUSH_MAX are waiting, an
    admin request comes, or the broker stops. An outcome lost in a crash
    means one more delivery under the same task id (at-least-once), never a
    lost event; the delay saves an fsync per delivery round. */
#define OUTCOME_FLUSH_MS    20
#define OUTCOME_FLUSH_MAX   4096

/*  broker.c: sends one message without blocking. 0 / -1 (errno). */
int
    broker_send (void *socket, const char *identity, size_t identity_len, const hp_msg_t *msg);

/*  broker.c: the broker's random numbers (xorshift128+). */
uint64_t
    broker_random (broker_t *self);

/*  broker_ingest.c: the producer side of each turn. */
void
    broker_drain_producers (broker_t *self);
void
    broker_commit (broker_t *self, int64_t now, bool force);
void
    broker_flush_outbox (broker_t *self);
void
    broker_refill (broker_t *self, int64_t now);
void
    broker_make_uid (broker_t *self, char out[33]);

/*  Handles one admin request. Returns the reply code; *body is a JSON text
    the caller frees. admin.c */
int
    admin_handle (broker_t *self, hp_str_t verb, hp_str_t args, char **body);

/*  Moves a task back into memory (dead retry): broker.c */
void
    broker_requeue_from_store (broker_t *self, const store_task_t *task, int channel);

#endif
