/*  record: the payloads of the journal's records (journal.h), encoded and
    decoded with every length checked (a damaged or foreign payload gives an
    error, never a read out of bounds). Pure: no I/O.

    Little-endian integers; strings are a u16 (u32 for bodies) length and
    the bytes. The first byte is the type. A task is named by its event's
    sequence number and its place in the event's fan-out (`ch`). */
#ifndef HERALD_RECORD_H
#define HERALD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_MAX_FANOUT 16

typedef enum {
    RECORD_EVENT = 1,           /* an event accepted with its fan-out */
    RECORD_OUTCOME = 2,         /* a task's delivery ended: done, rescheduled or dead */
    RECORD_DEAD_RETRY = 3,      /* an operator retries dead tasks */
    RECORD_DEAD_PURGE = 4,      /* an operator purges dead tasks */
    RECORD_ABANDON = 5          /* pending tasks of a channel no longer configured are made dead */
} record_type_t;

typedef struct {
    const char *ptr;            /* borrowed, not NUL-terminated */
    size_t len;
} record_str_t;

typedef struct {
    uint64_t seq;               /* the event's number, never reused */
    int64_t received_at;        /* wall ms */
    char uid[33];               /* 32 hex: task ids are uid.channel */
    int fanout;                 /* channels, in order */
    record_str_t channels[RECORD_MAX_FANOUT];
    record_str_t type, id, source, dedup_key, body;
} record_event_t;

typedef enum {
    RECORD_DONE = 1,
    RECORD_RESCHEDULE = 2,      /* failed attempt, retried not before not_before */
    RECORD_DEAD = 3
} record_outcome_kind_t;

typedef struct {
    uint64_t seq;
    int ch;
    record_outcome_kind_t kind;
    bool log_attempt;           /* a failed attempt: goes to the attempt history */
    uint32_t attempts;          /* attempts charged to the budget so far */
    uint32_t throttled;         /* THROTTLED answers so far (not charged) */
    int64_t at;                 /* wall ms */
    int64_t not_before;         /* wall ms (reschedule) */
    int64_t delay;              /* the wait asked for (reschedule) */
    record_str_t outcome;       /* retry, throttled, failed, lease-expired, worker-lost */
    record_str_t error;
} record_outcome_t;

/*  Which dead tasks an operator's command is about. */
typedef struct {
    record_str_t task_id;       /* one task ("uid.channel"), or */
    record_str_t channel;       /* every dead task of a channel, or */
    bool all;                   /* every dead task */
    int64_t at;                 /* wall ms */
    uint64_t request;           /* the admin request it answers (echoed by the index) */
} record_admin_t;

typedef struct {
    record_type_t type;
    union {
        record_event_t event;
        record_outcome_t outcome;
        record_admin_t admin;   /* DEAD_RETRY, DEAD_PURGE, ABANDON (channel) */
    } u;
} record_t;

/*  Encodes rec into out (at most size bytes). Returns the length, or 0 if
    it does not fit or a field is too long. */
size_t
    record_encode (const record_t *rec, unsigned char *out, size_t size);

/*  Bytes record_encode needs for rec. */
size_t
    record_size (const record_t *rec);

/*  Decodes a payload; strings borrow from it. 0, or -1 with what was wrong
    in err. */
int
    record_decode (const unsigned char *payload, size_t len, record_t *rec, char *err, size_t errlen);

/*  record_str_t from a NUL-terminated string (NULL gives an empty one). */
record_str_t
    record_str (const char *text);

/*  An event's uid: its number, then 64 random bits, in 32 lower-case hex
    digits (as "%016" PRIx64 twice, without a formatted print on every
    publish). */
void
    record_uid (char uid[33], uint64_t seq, uint64_t random);

/*  The number a uid made by record_uid begins with: true and *seq, or
    false for a uid of another form (stores from before herald/2). */
bool
    record_uid_seq (const char *uid, uint64_t *seq);

#endif
