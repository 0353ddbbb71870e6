/*  herald_proto: the Herald wire protocol codec (spec: proto/PROTOCOL.md).
    Pure: turns an array of frames into a typed message and back, no I/O.
    Decoded strings borrow from the frames; they are NOT NUL-terminated. */
#ifndef HERALD_PROTO_H
#define HERALD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_SIGNATURE        "HERALD/2"  /* frame 0 of every message this version sends */
#define HP_SIGNATURE_V1     "HERALD/1"  /* still accepted for the commands version 2 kept as they were */
#define HP_SIGNATURE_PREFIX "HERALD/"   /* a signature with another version gets NACK 505 */
#define HP_VERSION          2
#define HP_MAX_FRAMES       8           /* no message has more; more is malformed */
#define HP_MAX_CORR         64          /* correlation id, octets */
#define HP_MAX_ID           128         /* event ids, task ids, channel and worker names */
#define HP_MAX_TEXT         1024        /* NACK reasons, error texts */

typedef enum {
    HP_NONE = 0,
    /* producer <-> broker */
    HP_PUBLISH,         /* corr, event-json */
    HP_ACK,             /* corr, event-id, status ("new" | "duplicate"), durability ("fsync") */
    HP_NACK,            /* corr, code, reason */
    /* worker <-> broker */
    HP_READY,           /* channel, capacity, worker-name, max-batch */
    HP_TASKS,           /* channel, tasks: one frame of task entries (hp_task_t) */
    HP_RESULTS,         /* results: one frame of result entries (hp_result_t) */
    HP_HEARTBEAT,       /* (no body) */
    HP_DISCONNECT,      /* (no body): "I do not know you, send READY" / "I am leaving" */
    /* admin */
    HP_ADMIN,           /* corr, verb, args-json */
    HP_ADMIN_REPLY,     /* corr, code, body-json */
    HP_COMMAND_COUNT
} hp_command_t;

/*  NACK and ADMIN-REPLY codes (HTTP-like; PROTOCOL.md lists them). */
typedef enum {
    HP_CODE_OK            = 200,
    HP_CODE_BAD_REQUEST   = 400,  /* malformed frames, invalid JSON */
    HP_CODE_UNAUTHORIZED  = 401,
    HP_CODE_FORBIDDEN     = 403,  /* the client's key may not do this (admin verb, worker channel) */
    HP_CODE_NOT_FOUND     = 404,  /* admin: no such task / event */
    HP_CODE_TOO_LARGE     = 413,  /* event above broker.max_event_bytes */
    HP_CODE_INVALID_EVENT = 422,  /* not valid CloudEvents, missing required field */
    HP_CODE_UNKNOWN_TYPE  = 424,  /* event type not in the configuration */
    HP_CODE_INTERNAL      = 500,
    HP_CODE_BUSY          = 503,  /* overloaded: retry later */
    HP_CODE_VERSION       = 505,  /* protocol version not supported */
    HP_CODE_STORAGE       = 507   /* store cannot take more (disk full, I/O error): retry later */
} hp_code_t;

typedef struct {
    const void *data;
    size_t size;
} hp_frame_t;

typedef struct {
    const char *ptr;    /* borrowed, not NUL-terminated; NULL when absent */
    size_t len;
} hp_str_t;

/*  One message. Which fields are meaningful depends on command (see above). */
typedef struct {
    hp_command_t command;
    uint8_t version;        /* decoded: 1 or 2 (the signature's); encoding: 0 means HP_VERSION.
                               A reply carries its request's version. */
    hp_str_t corr;          /* PUBLISH ACK NACK ADMIN ADMIN_REPLY: client correlation id */
    hp_str_t body;          /* PUBLISH: event JSON; ADMIN: args JSON; ADMIN_REPLY: body JSON */
    hp_str_t event_id;      /* ACK */
    bool duplicate;         /* ACK: the idempotency key was already stored */
    hp_str_t durability;    /* ACK: "fsync" */
    int code;               /* NACK, ADMIN_REPLY: hp_code_t */
    hp_str_t text;          /* NACK: reason */
    hp_str_t channel;       /* READY TASKS */
    uint32_t capacity;      /* READY: credit, 1..65535 */
    hp_str_t worker;        /* READY: worker name (host:pid) */
    hp_str_t verb;          /* ADMIN: "status", "dead.list", ... */
    uint32_t max_batch;     /* READY: most tasks the worker takes in one TASKS message */
    hp_str_t batch;         /* TASKS, RESULTS: the entries frame, checked by hp_decode */
    uint32_t batch_count;   /* TASKS, RESULTS: entries in it (1..HP_MAX_BATCH) */
} hp_msg_t;

#define HP_MAX_BATCH        1024        /* entries in one TASKS or RESULTS message */
#define HP_BATCH_OVERHEAD   65536       /* a TASKS or RESULTS frame holds at most the broker's
                                           max_event_bytes + this many octets (one entry that does
                                           not fit is sent alone); workers accept frames that large */

/*  One task of a TASKS message. lease is the fencing token: it only ever
    grows (across broker restarts too), and a result counts only if it
    carries the task's current lease. attempt is the attempt's number, for
    the worker to show (X-Herald-Attempt, logs). */
typedef struct {
    hp_str_t task_id;       /* 1..HP_MAX_ID octets, no space or control character */
    uint32_t attempt;       /* 1..2147483647 */
    uint64_t lease;         /* 1..2^63-1 */
    hp_str_t body;          /* the event envelope (JSON) */
} hp_task_t;

typedef enum {
    HP_OUTCOME_DONE = 1,    /* delivered */
    HP_OUTCOME_RETRY,       /* transient failure; delay_ms: not before (0 = broker policy) */
    HP_OUTCOME_THROTTLED,   /* the downstream's rate limit; delay_ms: Retry-After */
    HP_OUTCOME_FAILED,      /* permanent failure */
    HP_OUTCOME_RELEASED     /* not started: the worker gives the task back, no attempt spent */
} hp_outcome_t;

/*  One result of a RESULTS message. */
typedef struct {
    hp_str_t task_id;
    uint64_t lease;
    hp_outcome_t outcome;
    int64_t delay_ms;       /* 0..2^53-1 */
    hp_str_t text;          /* detail (done) or error, 0..HP_MAX_TEXT octets */
} hp_result_t;

typedef struct {
    int code;               /* HP_CODE_BAD_REQUEST or HP_CODE_VERSION */
    char text[160];         /* what was wrong and where, e.g. "frame 3 (attempt): not a decimal number";
                               printable ASCII, no double quotes or backslashes: safe in JSON and logfmt */
} hp_error_t;

/*  An encoded message: frames borrow from the hp_msg_t and from scratch. */
typedef struct {
    hp_frame_t frames[HP_MAX_FRAMES];
    size_t count;
    char scratch[3][24];    /* integers rendered as decimal text */
} hp_encoded_t;

/*  Decodes frames (without any ROUTER identity frame) into msg. Checks the
    signature and version first, then the command, frame count and each
    field's size and syntax. Returns 0, or -1 with err filled (err may be NULL).
    On failure msg->command is still set if frame 1 named a known command, and
    msg->corr if the command carries a correlation id (PUBLISH, ADMIN, ...) and
    frame 2 is a valid one, so the broker can NACK the right request (this
    holds for a 505 version error too: frames 1 and 2 keep their meaning). */
int
    hp_decode (const hp_frame_t *frames, size_t count, hp_msg_t *msg, hp_error_t *err);

/*  Encodes msg into out. Returns 0, or -1 if a field is missing or too large
    (a programmer error, reported rather than asserted). */
int
    hp_encode (const hp_msg_t *msg, hp_encoded_t *out);

/*  "PUBLISH", "ACK", ... or "?" */
const char *
    hp_command_name (hp_command_t command);

/*  Short name of a code: "bad-request", "busy", ... */
const char *
    hp_code_name (int code);

/*  Entries of a decoded TASKS / RESULTS message (hp_decode checked them
    all): set *cursor to msg->batch, then each call gives the next entry,
    false after the last. Strings borrow from the frame. */
bool
    hp_next_task (hp_str_t *cursor, hp_task_t *task);
bool
    hp_next_result (hp_str_t *cursor, hp_result_t *result);

/*  Encoding entries into a batch frame: the exact size of one entry, and
    writing it at out (which has that much room). Text is cut at
    HP_MAX_TEXT octets on a UTF-8 boundary. */
size_t
    hp_task_size (const hp_task_t *task);
size_t
    hp_task_put (char *out, const hp_task_t *task);
size_t
    hp_result_size (const hp_result_t *result);
size_t
    hp_result_put (char *out, const hp_result_t *result);

/*  "done", "retry", "throttled", "failed". */
const char *
    hp_outcome_name (hp_outcome_t outcome);

/*  Builders for common messages (fields borrow from the arguments). */
hp_str_t
    hp_str (const char *nul_terminated);
hp_str_t
    hp_strn (const char *ptr, size_t len);

/*  Copies s into buf as a NUL-terminated string (truncating). Returns buf. */
char *
    hp_str_copy (hp_str_t s, char *buf, size_t size);

/*  Renders value in decimal into buf (at least 21 octets), NUL-terminated.
    Returns the length. */
size_t
    hp_render_uint (uint64_t value, char *buf);

/*  True if s equals the NUL-terminated text. */
bool
    hp_str_eq (hp_str_t s, const char *text);

#endif
