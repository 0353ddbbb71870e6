/*  dispatch: the broker's in-memory view of work: per channel a ready queue,
    a heap of delayed retries, the connected workers with their credit, the
    leases they hold, and the channel limits (max in flight, token-bucket
    rate). No I/O and no store: the broker loop turns its decisions into
    messages and transactions. All times are monotonic. */
#ifndef HERALD_DISPATCH_H
#define HERALD_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_config.h"
#include "herald_proto.h"

#define DISPATCH_MAX_WORKERS 1024

/*  An event body shared by the tasks of its fan-out. */
typedef struct {
    int refs;
    uint64_t seq;                   /* the event's number */
    int64_t received_at;            /* wall ms it arrived, 0 = not known (loaded from the store) */
    char uid[33];                   /* task ids are uid.channel */
    size_t len;
    char data[];                    /* NUL-terminated JSON envelope */
} blob_t;

typedef struct worker worker_t;

/*  A task in memory: about 100 bytes (its id is not stored: it is the
    event's uid, a dot and the channel's name, see task_id). */
typedef struct task {
    uint64_t seq;                   /* its event */
    uint8_t ch;                     /* its place in the event's fan-out */
    bool suspect;                   /* was at a worker that died: delivered alone from now on */
    uint16_t channel;               /* index into config->channels */
    uint32_t attempts;              /* attempts made, handed-back ones not counted */
    uint32_t throttled;             /* of them, answered THROTTLED: not charged to the budget */
    uint32_t heap_index;            /* position in the delayed heap */
    uint64_t lease;                 /* the current lease (the fencing token): 0 when not leased */
    int64_t due_ms;                 /* delayed: monotonic time it becomes ready */
    int64_t lease_deadline;         /* leased: monotonic time the lease expires */
    worker_t *worker;               /* lease holder, NULL when not leased */
    blob_t *event;                  /* shared, refcounted */
    struct task *next;              /* ready queue link */
    uint64_t avoid;                 /* serial of the worker whose lease on it expired: try another */
} task_t;

#define TASK_ID_MAX     (32 + 1 + HERALD_NAME_MAX)     /* uid, dot, channel name: < HP_MAX_ID */
_Static_assert (TASK_ID_MAX <= HP_MAX_ID + 1, "a task id fits the protocol's id");

/*  The task's stable id, its idempotency key: "uid.channel", written into
    buf (TASK_ID_MAX bytes). Returns it as a string of buf. */
hp_str_t
    task_id (const task_t *task, const herald_config_t *config, char *buf);

struct worker {
    char identity[256];             /* ROUTER routing id */
    size_t identity_len;
    char name[HP_MAX_ID + 1];       /* host:pid from READY */
    int channel;
    uint32_t capacity;              /* credit */
    uint32_t max_batch;             /* most tasks in one TASKS message to it */
    task_t **leases;                /* capacity slots, lease_count used */
    uint32_t lease_count;
    bool solo;                      /* holds one suspect task and gets nothing else meanwhile */
    bool blocked;                   /* a send to it failed: gets nothing until the loop decides */
    int blocked_errno;              /* why (EAGAIN: pipe full, EHOSTUNREACH: gone) */
    uint64_t serial;                /* unique per registration, never reused */
    int64_t last_recv;              /* monotonic ms of the last message from it */
    int64_t last_send;              /* monotonic ms of the last message to it */
};

typedef struct dispatch dispatch_t;

typedef struct {
    size_t ready;                   /* queued in memory, deliverable now */
    size_t delayed;                 /* waiting for a retry time */
    size_t in_flight;               /* leased to workers */
    int workers;
} dispatch_counts_t;

/*  A dispatcher for config. Leases are numbered from first_lease + 1 on:
    pass a number no earlier run of the broker can have reached (the store's
    boot count << 32), so a late answer to an old lease never matches. */
dispatch_t *
    dispatch_new (const herald_config_t *config, uint64_t first_lease);
void
    dispatch_destroy (dispatch_t **self_p);

/*  Blobs: new with refs = 0 (each task takes a reference). NULL on OOM. */
blob_t *
    blob_new (uint64_t seq, const char *uid, const char *data, size_t len);

/*  A task not yet queued, for the event's ch-th channel (config index
    channel). Takes a reference on event; its key is uid.channel-name.
    NULL on OOM. */
task_t *
    task_new (blob_t *event, int ch, int channel, uint32_t attempts);

/*  Frees a task that is in no queue, dropping its event reference. */
void
    task_destroy (task_t **task_p);

/*  Queues a task: ready now if due_ms <= now, else delayed until due_ms.
    front = true puts a ready task at the head (handed-back work). */
void
    dispatch_enqueue (dispatch_t *self, task_t *task, int64_t due_ms, int64_t now, bool front);

/*  Moves delayed tasks whose time has come to the ready queues. */
void
    dispatch_promote (dispatch_t *self, int64_t now);

/*  The configuration changed (a reload, between two turns): each rate
    bucket holds at most the new burst (a bucket never used starts full),
    and registered workers keep no more credit than their channel's
    capacity (their leases beyond it stay until answered; a higher capacity
    comes with the worker's next READY). */
void
    dispatch_reconfigure (dispatch_t *self);

/*  Registers a worker (READY). NULL if the table is full or on OOM. */
worker_t *
    dispatch_worker_add (dispatch_t *self, const char *identity, size_t identity_len,
                         int channel, uint32_t capacity, uint32_t max_batch, const char *name,
                         int64_t now);

/*  The worker with that routing id, or NULL. */
worker_t *
    dispatch_worker_find (dispatch_t *self, const char *identity, size_t identity_len);

/*  Takes back one lease of worker (NULL when it holds none). */
task_t *
    dispatch_worker_pop_lease (dispatch_t *self, worker_t *worker);

/*  Unregisters a worker that holds no more leases; nulls the pointer. */
void
    dispatch_worker_remove (dispatch_t *self, worker_t **worker_p);

/*  Workers, for heartbeats: index 0..count-1, NULL past the end. */
worker_t *
    dispatch_worker_at (dispatch_t *self, int index);

/*  Picks the next delivery allowed now: a ready task of some channel and a
    worker of that channel with free credit, within the channel's
    max_in_flight and rate. A suspect task goes only to an idle worker, which
    then gets nothing else until it answers, so a payload that kills its
    worker is found out alone. Leases it (attempts + 1, deadline = now +
    lease, a new lease id). Returns the task (task->worker is the worker) or
    NULL. */
task_t *
    dispatch_next (dispatch_t *self, int64_t now);

/*  Ends the lease of task_id at worker if lease matches its current one
    (the fencing token). Returns the task, no longer leased, or NULL for a
    stale or unknown answer. */
task_t *
    dispatch_complete (dispatch_t *self, worker_t *worker, hp_str_t task_id, uint64_t lease);

/*  A task whose attempt did not take place (its worker left in good order,
    or could not be sent to, or was lost holding several tasks): the attempt
    is not counted, and the task goes back at the head of its queue. */
void
    dispatch_hand_back (dispatch_t *self, task_t *task, int64_t now);

/*  Takes back one lease whose deadline has passed, or NULL. */
task_t *
    dispatch_expired (dispatch_t *self, int64_t now);

/*  The channel's rate, burst and max_in_flight are shared by `brokers`
    brokers (a store shared by several: each takes its part); 1 alone. */
void
    dispatch_set_share (dispatch_t *self, int channel, int brokers);

/*  Holds back a channel's deliveries until the monotonic time until (the
    downstream said 429 / Retry-After: it speaks for the API, not one task). */
void
    dispatch_pause (dispatch_t *self, int channel, int64_t until);

/*  Earliest monotonic time something becomes possible without input
    (a delayed task due, a lease expiring, rate tokens refilled), or
    INT64_MAX. */
int64_t
    dispatch_next_deadline (dispatch_t *self, int64_t now);

/*  True if the task (event seq, place ch) is leased to a worker now. */
bool
    dispatch_leased (dispatch_t *self, uint64_t seq, int ch);

/*  Per channel counts. */
void
    dispatch_counts (dispatch_t *self, int channel, dispatch_counts_t *counts);

/*  The earliest received_at of a channel's tasks held in memory (0 when
    one of them has none), INT64_MAX when it holds none. Walks them all:
    for a metrics scrape, not for the hot path. */
int64_t
    dispatch_oldest (dispatch_t *self, int channel);

/*  One task of a channel held in memory and not leased (ready, then
    delayed), taken out of the dispatcher (the caller owns it), or NULL:
    a broker sharing its store gives back the tasks of a channel it has no
    worker for any more. */
task_t *
    dispatch_take_back (dispatch_t *self, int channel);

/*  Tasks of a channel held in memory (ready + delayed + in flight). */
size_t
    dispatch_held (dispatch_t *self, int channel);

/*  The retry delay after a failed attempt number `attempts` of channel:
    full jitter, uniform in [0, min(backoff_max, backoff_min * 2^(attempts-1))].
    random01 is a uniform number in [0, 1). */
int64_t
    dispatch_backoff_ms (const herald_channel_t *channel, uint32_t attempts, double random01);

#endif
