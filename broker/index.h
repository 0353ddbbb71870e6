/*  index: the queryable picture of the store, in SQLite, kept off the ACK
    path. A thread of its own applies the journal's durable records to it
    (events, tasks and their states, attempt history) and answers queries
    (track, dead letters, tasks to load into memory); the broker loop never
    runs SQL. Each transaction records the journal position it reached, so
    after a crash the index is brought up to date from there (index_open
    replays the journal); once a transaction is committed (fsync), the
    journal's segments below it can be reused.

    Tables (inspect with the sqlite3 shell; times are Unix ms):
      events(seq, uid, id, source, type, dedup_key, received_at, channels, done_at, body)
      tasks(seq, ch, channel, state, attempts, throttled, not_before, retry_delay,
            last_error, updated_at, requeued)   -- state 0 pending, 1 done, 2 dead
      attempts(seq, ch, attempt, at, outcome, error)   -- failed attempts
      counts(channel, pending, done, dead)
      meta(key, value)                                 -- schema, applied_lsn, next_seq, boots
    A task that was done at its first attempt has no row in tasks (most
    tasks): the event row's fan-out lists it, and done_at says when.

    Threads: index_open and index_destroy on the owner; requests are posted
    from the owner and answered on the index thread; replies and notices
    come back through a queue whose eventfd the owner polls. */
#ifndef HERALD_INDEX_H
#define HERALD_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"

typedef struct index index_t;

#define INDEX_SCHEMA "herald/4"

/*  What the owner learns at open. */
typedef struct {
    uint64_t applied_lsn;           /* the journal position the index reached */
    uint64_t next_seq;              /* the next event number */
    uint64_t boots;                 /* times the store was opened, this one included */
} index_info_t;

/*  Per channel counts kept by the index. */
typedef void (index_count_fn) (void *ctx, const char *channel, int64_t pending, int64_t done,
                               int64_t dead);

/*  Called once per retained event at open (to rebuild the dedup table). */
typedef void (index_key_fn) (void *ctx, uint64_t seq, const char *dedup_key, size_t len);

/*  A task read back to be delivered. */
typedef struct {
    uint64_t seq;
    int ch;
    char uid[33];
    char channel[64];
    uint32_t attempts, throttled;
    int64_t not_before;             /* wall ms, 0 = now */
    int64_t delay;                  /* the wait asked for when it was rescheduled */
    uint64_t requeued;              /* dead-retry serial, 0 = never */
    char *body;                     /* the event envelope, owned by the reply */
    size_t body_len;
} index_task_t;

typedef enum {
    INDEX_TRACK,                    /* text: event id -> json */
    INDEX_DEAD_LIST,                /* text: channel or "", number: limit -> json */
    INDEX_DEAD_SHOW,                /* text: task id -> json */
    INDEX_EVENT_ID,                 /* number: seq -> event_id, dedup_key */
    INDEX_LOAD,                     /* text: channel, after: cursor, number: limit, requeued -> tasks */
    INDEX_APPLIED,                  /* notice: applied (committed) up to lsn */
    INDEX_RETRIED,                  /* notice: a DEAD_RETRY record applied: counts per channel */
    INDEX_PURGED,                   /* notice: a DEAD_PURGE record applied: counts per channel */
    INDEX_PRUNED,                   /* notice: events deleted: their keys */
    INDEX_FAILED,                   /* notice: the index cannot go on: error */
    INDEX_BACKLOG,                  /* shared store, notice: free tasks of channel `text` wait in the store */
    INDEX_SERVING,                  /* shared store, to it: the channels with a worker here (text, space separated) */
    INDEX_SHARE,                    /* shared store, notice: living brokers serving each channel (channels, channel_counts) */
    INDEX_RELEASE                   /* shared store, to it: tasks (seq, ch) of channel `text` this broker gives back */
} index_kind_t;

#define INDEX_MAX_CHANNELS 16

/*  A request from the owner, answered in place and handed back. */
typedef struct index_msg {
    struct index_msg *next;
    index_kind_t kind;
    uint64_t tag;                   /* the owner's correlation */
    uint64_t min_lsn;               /* apply the journal up to here before answering */
    /* arguments */
    char text[256];
    uint64_t number;
    uint64_t after;
    bool requeued;
    uint64_t tried;                 /* INDEX_LOAD, the index thread's: 1 + applied at its last early read */
    /* answers */
    int code;                       /* 200, 404, 400, 500 (hp_code_t) */
    char *json;                     /* admin answers: a JSON text, owned */
    index_task_t *tasks;            /* INDEX_LOAD */
    size_t task_count;
    uint64_t lsn;                   /* INDEX_APPLIED */
    char event_id[129];             /* INDEX_EVENT_ID */
    char *dedup_key;                /* INDEX_EVENT_ID: owned */
    int channel_count;              /* RETRIED, PURGED */
    char channels[INDEX_MAX_CHANNELS][64];
    int64_t channel_counts[INDEX_MAX_CHANNELS];
    uint64_t *pruned_seqs;          /* INDEX_PRUNED: owned */
    char **pruned_keys;
    size_t pruned_count;
    char error[2048];               /* INDEX_FAILED, or a failed query */
} index_msg_t;

/*  Opens (creating if needed) the index at path: checks the file (a foreign
    or damaged file is refused, with a message naming it), migrates an older
    store, increments the boot count, and applies the journal's records from
    the index's position to the journal's end (the journal is opened from
    the position this returns in info: call index_open_file first, then
    journal_open, then index_catch_up). */
index_t *
    index_open_file (const char *path, index_info_t *info, char *err, size_t errlen);

/*  Applies every journal record from info.applied_lsn to the journal's end
    and commits; reports counts and keys. 0 / -1. */
int
    index_catch_up (index_t *self, journal_t *journal, index_count_fn *counts,
                    index_key_fn *keys, void *ctx, char *err, size_t errlen);

/*  Starts the index thread (it follows the journal's durable position).
    retention_ms: events older than this whose tasks are all done are
    deleted. 0 / -1. */
int
    index_start (index_t *self, int64_t retention_ms, char *err, size_t errlen);

/*  A new retention (broker.dedup_retention changed by a reload), used
    from the next pruning pass on. Any thread. */
void
    index_set_retention (index_t *self, int64_t retention_ms);

/*  Stops the thread (after applying what is durable and committing). */
void
    index_destroy (index_t **self_p);

/*  Owner: posts a request (ownership passes to the index until it comes
    back from index_take). */
void
    index_post (index_t *self, index_msg_t *msg);

/*  Owner: the next answered request or notice, or NULL. */
index_msg_t *
    index_take (index_t *self);

/*  Readable when index_take has something. */
int
    index_fd (index_t *self);

/*  A new message; frees one (with what it owns). */
index_msg_t *
    index_msg_new (index_kind_t kind);
void
    index_msg_destroy (index_msg_t **msg_p);

/*  The journal position applied so far (committed or not), and the size
    of the database file. Any thread. */
uint64_t
    index_applied (index_t *self);
int64_t
    index_file_bytes (index_t *self);

#endif
