/*  store: the broker's durable state behind a small interface. The embedded
    engine is SQLite in WAL mode with synchronous=FULL: store_commit returns
    only after the write-ahead log is fsynced. One writer (the broker loop).

    Tables (inspect with the sqlite3 shell):
      events(seq, id, source, type, dedup_key UNIQUE, received_at, body, first_task, fanout)
      tasks(id, key, event_seq, channel, state, attempts, not_before, last_error, updated_at, retry_delay)
      attempts(task_id, attempt, at, outcome, error)       -- failed attempts only
    Times are Unix milliseconds. */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

typedef enum {
    STORE_TASK_PENDING = 0,     /* waiting for delivery (maybe not before not_before) */
    STORE_TASK_DONE = 1,
    STORE_TASK_DEAD = 2
} store_task_state_t;

typedef enum {
    STORE_OK = 0,
    STORE_ERR_FULL,             /* disk or quota full: refuse new work, retry later */
    STORE_ERR_IO,               /* I/O error, fsync failure: the broker must stop */
    STORE_ERR_CORRUPT,          /* the file is not a sound Herald store */
    STORE_ERR_OTHER
} store_error_t;

/*  An event to insert. On return, seq is set; duplicate tells whether the
    dedup_key was already stored, and then existing_id holds the stored id. */
typedef struct {
    const char *id;
    const char *source;
    const char *type;
    const char *dedup_key;
    const char *body;
    size_t body_len;
    int64_t received_at;
    int fanout;                 /* tasks the caller inserts right after (store_insert_task) */
    int64_t seq;                /* out */
    bool duplicate;             /* out */
    char existing_id[129];      /* out, when duplicate */
} store_event_t;

/*  A task read back from the store (recovery, refill, dead retry). */
typedef struct {
    int64_t rowid;
    const char *key;            /* borrowed for the callback */
    const char *channel;
    int attempts;
    int64_t not_before;         /* wall ms, 0 = now */
    int64_t delay;              /* the wait asked for when it was rescheduled (ms) */
    const char *body;           /* event envelope, borrowed for the callback */
    size_t body_len;
} store_task_t;

typedef int (store_task_fn) (void *ctx, const store_task_t *task);

/*  Opens (creating if needed) the store at path; checks the file's
    integrity and schema. Returns NULL with err filled on failure. */
store_t *
    store_open (const char *path, char *err, size_t errlen);

/*  Closes; NULL-safe, nulls the pointer. */
void
    store_destroy (store_t **self_p);

/*  Last error: a class and a message naming the operation. */
store_error_t
    store_error (store_t *self);
const char *
    store_errstr (store_t *self);

/*  Transactions. store_commit returns only after fsync. 0 / -1. */
int
    store_begin (store_t *self);
int
    store_commit (store_t *self);
void
    store_rollback (store_t *self);

/*  Inside a transaction: inserts an event (or detects its dedup_key). */
int
    store_insert_event (store_t *self, store_event_t *event);

/*  Inside a transaction: inserts a pending task, returns its rowid. The
    store numbers tasks itself: after a new (not duplicate) event, insert
    exactly its `fanout` tasks, so they are rowids first_task.. of the event. */
int
    store_insert_task (store_t *self, int64_t event_seq, const char *channel,
                       const char *key, int64_t now, int64_t *rowid);

/*  Inside a transaction: records a task's outcome. */
int
    store_task_done (store_t *self, int64_t rowid, int attempts, int64_t now);
int
    store_task_reschedule (store_t *self, int64_t rowid, int attempts, int64_t not_before,
                           int64_t delay, const char *error, int64_t now);
int
    store_task_dead (store_t *self, int64_t rowid, int attempts, const char *error, int64_t now);
int
    store_attempt_log (store_t *self, int64_t rowid, int attempt, int64_t at,
                       const char *outcome, const char *error);

/*  Calls fn for up to limit pending tasks of channel with rowid > after, in
    rowid order. Returns the number of tasks, or -1. fn returning -1 stops. */
int
    store_load_pending (store_t *self, const char *channel, int64_t after, int limit,
                        store_task_fn *fn, void *ctx);

/*  Task counts of one channel. */
typedef struct {
    int64_t pending;            /* not done nor dead, retrying included */
    int64_t retrying;           /* pending with not_before > now_wall */
    int64_t done;
    int64_t dead;
} store_counts_t;

typedef void (store_count_fn) (void *ctx, const char *channel, const store_counts_t *counts);

/*  Counts the tasks of every channel in one pass over the table: calls fn
    once per channel that has tasks. 0 / -1. */
int
    store_count (store_t *self, int64_t now_wall, store_count_fn *fn, void *ctx);

/*  Events stored. */
int64_t
    store_event_count (store_t *self);

/*  The SQLite handle, for the admin queries that read (broker/admin.c). */
void *
    store_db (store_t *self);

/*  The write-ahead log's length in pages after the last commit. A thread of
    the store copies the log into the database once it reaches
    STORE_CHECKPOINT_PAGES and, when it has caught up with the commits,
    starts the log over (the length falls back to a few pages); under
    traffic too heavy to catch up with, it starts it over anyway once it
    reaches STORE_WAL_LIMIT_PAGES (64 MiB), holding commits off meanwhile;
    and should even that fall behind, store_begin does it itself at twice
    that length before it lets another transaction add to the WAL. */
int
    store_wal_pages (store_t *self);
#define STORE_CHECKPOINT_PAGES  2000
#define STORE_WAL_LIMIT_PAGES   16384

/*  Deletes events older than cutoff whose tasks are all done (and those
    tasks), at most limit events. Returns the number deleted, or -1. */
int
    store_prune (store_t *self, int64_t cutoff, int limit);

#endif
