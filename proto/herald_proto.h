/*  herald_proto: the Herald wire protocol codec (spec: proto/PROTOCOL.md).
    Pure: turns an array of frames into a typed message and back, no I/O.
    Decoded strings borrow from the frames; they are NOT NUL-terminated. */
#ifndef HERALD_PROTO_H
#define HERALD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_SIGNATURE        "HERALD/1"  /* frame 0 of every message */
#define HP_SIGNATURE_PREFIX "HERALD/"   /* a signature with another version gets NACK 505 */
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
    HP_READY,           /* channel, capacity, worker-name */
    HP_TASK,            /* task-id, attempt, channel, event-json */
    HP_DONE,            /* task-id, attempt, detail */
    HP_RETRY,           /* task-id, attempt, delay-ms (0 = broker policy), error */
    HP_THROTTLED,       /* task-id, attempt, delay-ms (Retry-After), error */
    HP_FAILED,          /* task-id, attempt, error */
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
    hp_str_t corr;          /* PUBLISH ACK NACK ADMIN ADMIN_REPLY: client correlation id */
    hp_str_t body;          /* PUBLISH TASK: event JSON; ADMIN: args JSON; ADMIN_REPLY: body JSON */
    hp_str_t event_id;      /* ACK */
    bool duplicate;         /* ACK: the idempotency key was already stored */
    hp_str_t durability;    /* ACK: "fsync" */
    int code;               /* NACK, ADMIN_REPLY: hp_code_t */
    hp_str_t text;          /* NACK: reason; DONE: detail; RETRY THROTTLED FAILED: error */
    hp_str_t channel;       /* READY TASK */
    uint32_t capacity;      /* READY: credit, 1..65535 */
    hp_str_t worker;        /* READY: worker name (host:pid) */
    hp_str_t task_id;       /* TASK DONE RETRY THROTTLED FAILED */
    uint32_t attempt;       /* TASK DONE RETRY THROTTLED FAILED: fencing token, >= 1 */
    int64_t delay_ms;       /* RETRY: not-before delay (0 = policy); THROTTLED: Retry-After */
    hp_str_t verb;          /* ADMIN: "status", "dead.list", ... */
} hp_msg_t;

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

/*  Builders for common messages (fields borrow from the arguments). */
hp_str_t
    hp_str (const char *nul_terminated);
hp_str_t
    hp_strn (const char *ptr, size_t len);

/*  Copies s into buf as a NUL-terminated string (truncating). Returns buf. */
char *
    hp_str_copy (hp_str_t s, char *buf, size_t size);

/*  True if s equals the NUL-terminated text. */
bool
    hp_str_eq (hp_str_t s, const char *text);

#endif
