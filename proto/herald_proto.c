/*  herald_proto: the Herald wire protocol codec (spec: proto/PROTOCOL.md).
    One table describes every command's frames; the decoder and the encoder
    both walk it and both use the same field checks, so whatever we encode
    the peer can decode. Pure: no I/O, no allocation. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "herald_proto.h"

/*  The kinds of field a frame can carry: each has one syntax and one
    place in hp_msg_t. */
typedef enum {
    S_CORR,         /* 1..HP_MAX_CORR octets */
    S_BODY,         /* JSON, non-empty, not parsed here */
    S_EVENT_ID,     /* 1..HP_MAX_ID octets */
    S_STATUS,       /* "new" | "duplicate" */
    S_DURABILITY,   /* 1..16 octets */
    S_CODE,         /* decimal 100..999 */
    S_TEXT,         /* 0..HP_MAX_TEXT octets */
    S_CHANNEL,      /* 1..63 of [A-Za-z0-9_.-] */
    S_CAPACITY,     /* decimal 1..65535 */
    S_WORKER,       /* 1..HP_MAX_ID octets */
    S_VERB,         /* 1..64 of [a-z.-] */
    S_MAX_BATCH,    /* decimal 1..HP_MAX_BATCH */
    S_TASK_BATCH,   /* task entries (hp_task_t), checked */
    S_RESULT_BATCH  /* result entries (hp_result_t), checked */
} s_kind_t;

#define S_MAX_DURABILITY 16
#define S_MAX_CHANNEL    63
#define S_MAX_VERB       64
#define S_MAX_DELAY      9007199254740991LL     /* 2^53 - 1: exact in a JSON number */
#define S_FIRST_FIELD    2                      /* frames 0 and 1: signature, command */
#define S_MAX_FIELDS     4

typedef struct {
    s_kind_t kind;
    const char *name;           /* as in PROTOCOL.md, for error messages */
} s_field_t;

typedef struct {
    const char *name;           /* frame 1 */
    size_t field_count;
    s_field_t fields[S_MAX_FIELDS];
} s_spec_t;

static const s_spec_t s_specs[HP_COMMAND_COUNT] = {
    [HP_PUBLISH]     = { "PUBLISH", 2,
                         { { S_CORR, "corr" }, { S_BODY, "event-json" } } },
    [HP_ACK]         = { "ACK", 4,
                         { { S_CORR, "corr" }, { S_EVENT_ID, "event-id" },
                           { S_STATUS, "status" }, { S_DURABILITY, "durability" } } },
    [HP_NACK]        = { "NACK", 3,
                         { { S_CORR, "corr" }, { S_CODE, "code" }, { S_TEXT, "reason" } } },
    [HP_READY]       = { "READY", 4,
                         { { S_CHANNEL, "channel" }, { S_CAPACITY, "capacity" },
                           { S_WORKER, "worker-name" }, { S_MAX_BATCH, "max-batch" } } },
    [HP_TASKS]       = { "TASKS", 2,
                         { { S_CHANNEL, "channel" }, { S_TASK_BATCH, "tasks" } } },
    [HP_RESULTS]     = { "RESULTS", 1,
                         { { S_RESULT_BATCH, "results" } } },
    [HP_HEARTBEAT]   = { "HEARTBEAT", 0, { { S_BODY, NULL } } },
    [HP_DISCONNECT]  = { "DISCONNECT", 0, { { S_BODY, NULL } } },
    [HP_ADMIN]       = { "ADMIN", 3,
                         { { S_CORR, "corr" }, { S_VERB, "verb" }, { S_BODY, "args-json" } } },
    [HP_ADMIN_REPLY] = { "ADMIN-REPLY", 3,
                         { { S_CORR, "corr" }, { S_CODE, "code" }, { S_BODY, "body-json" } } },
};

static const char s_status_new[] = "new";
static const char s_status_duplicate[] = "duplicate";


/*  Copies at most 24 octets of untrusted data into buf for an error message,
    replacing anything but printable ASCII, and quotes and backslashes, with
    '?': error texts can be put in JSON strings and logfmt values as they are. */
static const char *
s_printable (const void *data, size_t size, char *buf, size_t buf_size)
{
    const unsigned char *p = data;
    size_t n = size < 24? size: 24;
    if (n > buf_size - 1)
        n = buf_size - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\''
                  && p[i] != '\\')? (char) p[i]: '?';
    buf[n] = '\0';
    return buf;
}

static void
s_fail (hp_error_t *err, int code, size_t index, const char *name, const char *what)
{
    err->code = code;
    if (name)
        snprintf (err->text, sizeof err->text, "frame %zu (%s): %s", index, name, what);
    else
        snprintf (err->text, sizeof err->text, "frame %zu: %s", index, what);
}

static void
s_int_bounds (s_kind_t kind, uint64_t *min, uint64_t *max)
{
    switch (kind) {
        case S_CODE:      *min = 100; *max = 999; break;
        case S_CAPACITY:  *min = 1;   *max = 65535; break;
        case S_MAX_BATCH: *min = 1;   *max = HP_MAX_BATCH; break;
        default:          *min = 0;   *max = 0; break;
    }
}

static bool
s_is_int (s_kind_t kind)
{
    return kind == S_CODE || kind == S_CAPACITY || kind == S_MAX_BATCH;
}

/*  Parses a decimal integer field: digits only, no sign, no leading zero,
    within the kind's bounds. Returns 0, or -1 with err filled. */
static int
s_parse_int (s_kind_t kind, const char *name, size_t index,
             const char *ptr, size_t len, uint64_t *value, hp_error_t *err)
{
    uint64_t min, max;
    s_int_bounds (kind, &min, &max);
    if (len == 0) {
        s_fail (err, HP_CODE_BAD_REQUEST, index, name, "empty");
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (ptr[i] < '0' || ptr[i] > '9') {
            s_fail (err, HP_CODE_BAD_REQUEST, index, name, "not a decimal number");
            return -1;
        }
    if (len > 1 && ptr[0] == '0') {
        s_fail (err, HP_CODE_BAD_REQUEST, index, name,
                "not a decimal number (leading zero)");
        return -1;
    }
    uint64_t v = 0;
    if (len <= 16)          /* 16 digits cannot overflow; the largest bound has 16 */
        for (size_t i = 0; i < len; i++)
            v = v * 10 + (uint64_t) (ptr[i] - '0');
    if (len > 16 || v < min || v > max) {
        char what[64];
        snprintf (what, sizeof what, "out of range (%llu..%llu)",
                  (unsigned long long) min, (unsigned long long) max);
        s_fail (err, HP_CODE_BAD_REQUEST, index, name, what);
        return -1;
    }
    *value = v;
    return 0;
}

static bool
s_is_channel_char (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || c == '_' || c == '.' || c == '-';
}

static bool
s_is_verb_char (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || c == '.' || c == '-';
}

/*  Checks a string field's size and syntax. Returns 0, or -1 with err filled. */
static int
s_check_string (s_kind_t kind, const char *name, size_t index,
                const char *ptr, size_t len, hp_error_t *err)
{
    size_t min = 1, max = 0;
    switch (kind) {
        case S_CORR:       max = HP_MAX_CORR; break;
        case S_BODY:       max = SIZE_MAX; break;
        case S_EVENT_ID:
        case S_WORKER:     max = HP_MAX_ID; break;
        case S_DURABILITY: max = S_MAX_DURABILITY; break;
        case S_TEXT:       min = 0; max = HP_MAX_TEXT; break;
        case S_CHANNEL:    max = S_MAX_CHANNEL; break;
        case S_VERB:       max = S_MAX_VERB; break;
        case S_STATUS:
            if ((len == 3 && memcmp (ptr, s_status_new, 3) == 0)
            ||  (len == 9 && memcmp (ptr, s_status_duplicate, 9) == 0))
                return 0;
            s_fail (err, HP_CODE_BAD_REQUEST, index, name,
                    "not 'new' or 'duplicate'");
            return -1;
        default:
            s_fail (err, HP_CODE_BAD_REQUEST, index, name, "not a string field");
            return -1;
    }
    if (len < min) {
        s_fail (err, HP_CODE_BAD_REQUEST, index, name, "empty");
        return -1;
    }
    if (len > max) {
        char what[96];
        snprintf (what, sizeof what, "too long (%zu octets, max %zu)", len, max);
        s_fail (err, HP_CODE_BAD_REQUEST, index, name, what);
        return -1;
    }
    if (kind == S_CHANNEL || kind == S_VERB) {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char) ptr[i];
            if (kind == S_CHANNEL? !s_is_channel_char (c): !s_is_verb_char (c)) {
                s_fail (err, HP_CODE_BAD_REQUEST, index, name,
                        kind == S_CHANNEL? "invalid character (allowed: A-Z a-z 0-9 _ . -)"
                                         : "invalid character (allowed: a-z . -)");
                return -1;
            }
        }
    }
    return 0;
}

/*  Where each string kind lives in hp_msg_t. */
static hp_str_t *
s_str_slot (hp_msg_t *msg, s_kind_t kind)
{
    switch (kind) {
        case S_CORR:       return &msg->corr;
        case S_BODY:       return &msg->body;
        case S_EVENT_ID:   return &msg->event_id;
        case S_DURABILITY: return &msg->durability;
        case S_TEXT:       return &msg->text;
        case S_CHANNEL:    return &msg->channel;
        case S_WORKER:     return &msg->worker;
        case S_VERB:       return &msg->verb;
        case S_TASK_BATCH:
        case S_RESULT_BATCH: return &msg->batch;
        default:           return NULL;
    }
}

static const s_spec_t *
s_lookup (const hp_frame_t *frame, hp_command_t *command)
{
    for (int c = HP_NONE + 1; c < HP_COMMAND_COUNT; c++) {
        const char *name = s_specs[c].name;
        size_t len = strlen (name);
        if (frame->size == len && memcmp (frame->data, name, len) == 0) {
            *command = (hp_command_t) c;
            return &s_specs[c];
        }
    }
    return NULL;
}

//  --------------------------------------------------------------------------
//  Batches: entries of text headers and raw bytes.
//    task-entry   = task-id SP attempt SP lease SP length LF event-json LF
//    result-entry = task-id SP lease SP outcome SP delay-ms SP length LF text LF

static const char *s_outcomes[] = { NULL, "done", "retry", "throttled", "failed", "released" };

/*  Reads a decimal (no sign, no leading zero) ending at `stop`. */
static int
s_batch_uint (const char **p, const char *end, char stop, uint64_t min, uint64_t max, uint64_t *value)
{
    const char *q = *p;
    uint64_t v = 0;
    size_t digits = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        if (digits == 19)
            return -1;
        v = v * 10 + (uint64_t) (*q - '0');
        q++;
        digits++;
    }
    if (digits == 0 || (digits > 1 && **p == '0') || q >= end || *q != stop || v < min || v > max)
        return -1;
    *value = v;
    *p = q + 1;
    return 0;
}

/*  The first byte at or after p (before end) that is not printable ASCII
    (a space, a control character, DEL or a byte from 0x80), or end:
    sixteen at a time with SSE2 (a byte at a time, reading the task ids of
    RESULTS twice each was 2,300 of the broker loop's 43,000 instructions
    per event end to end). */
static inline const char *
s_printable_end (const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i low = _mm_set1_epi8 (0x21), del = _mm_set1_epi8 (0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128 ((const __m128i *) p);
        /*  Signed: below 0x21, and 0x80..0xff (negative), in one compare. */
        int mask = _mm_movemask_epi8 (_mm_or_si128 (_mm_cmplt_epi8 (v, low), _mm_cmpeq_epi8 (v, del)));
        if (mask)
            return p + __builtin_ctz ((unsigned) mask);
        p += 16;
    }
#endif
    while (p < end && (unsigned char) *p >= 0x21 && (unsigned char) *p < 0x7f)
        p++;
    return p;
}

/*  A token up to SP: the task id (printable, no space). */
static int
s_batch_id (const char **p, const char *end, hp_str_t *id)
{
    const char *q = s_printable_end (*p, end);
    while (q < end && *q != ' ') {
        unsigned char c = (unsigned char) *q;
        if (c < 0x21 || c == 0x7f)
            return -1;
        q++;
    }
    size_t len = (size_t) (q - *p);
    if (q >= end || len == 0 || len > HP_MAX_ID)
        return -1;
    *id = hp_strn (*p, len);
    *p = q + 1;
    return 0;
}

/*  Reads `length` raw octets followed by LF. */
static int
s_batch_bytes (const char **p, const char *end, uint64_t length, hp_str_t *bytes)
{
    if ((uint64_t) (end - *p) < length + 1 || (*p)[length] != '\n')
        return -1;
    *bytes = hp_strn (*p, (size_t) length);
    *p += length + 1;
    return 0;
}

static int
s_read_task (const char **p, const char *end, hp_task_t *task)
{
    uint64_t attempt, lease, length;
    if (s_batch_id (p, end, &task->task_id)
    ||  s_batch_uint (p, end, ' ', 1, 2147483647, &attempt)
    ||  s_batch_uint (p, end, ' ', 1, INT64_MAX, &lease)
    ||  s_batch_uint (p, end, '\n', 1, UINT32_MAX, &length)
    ||  s_batch_bytes (p, end, length, &task->body))
        return -1;
    task->attempt = (uint32_t) attempt;
    task->lease = lease;
    return 0;
}

static int
s_read_result (const char **p, const char *end, hp_result_t *result)
{
    uint64_t lease, delay, length;
    if (s_batch_id (p, end, &result->task_id) || s_batch_uint (p, end, ' ', 1, INT64_MAX, &lease))
        return -1;
    const char *q = *p;
    while (q < end && *q != ' ')
        q++;
    if (q >= end)
        return -1;
    result->outcome = 0;
    for (int o = HP_OUTCOME_DONE; o <= HP_OUTCOME_RELEASED; o++)
        if ((size_t) (q - *p) == strlen (s_outcomes[o]) && memcmp (*p, s_outcomes[o], (size_t) (q - *p)) == 0)
            result->outcome = (hp_outcome_t) o;
    if (!result->outcome)
        return -1;
    *p = q + 1;
    if (s_batch_uint (p, end, ' ', 0, (uint64_t) S_MAX_DELAY, &delay)
    ||  s_batch_uint (p, end, '\n', 0, HP_MAX_TEXT, &length)
    ||  s_batch_bytes (p, end, length, &result->text))
        return -1;
    result->lease = lease;
    result->delay_ms = (int64_t) delay;
    return 0;
}

static int
s_check_batch (s_kind_t kind, const char *name, size_t index, const char *ptr, size_t len,
               uint32_t *count, hp_error_t *err)
{
    const char *p = ptr, *end = ptr + len;
    uint32_t n = 0;
    while (p < end) {
        if (n == HP_MAX_BATCH) {
            char what[64];
            snprintf (what, sizeof what, "more than %d entries", HP_MAX_BATCH);
            s_fail (err, HP_CODE_BAD_REQUEST, index, name, what);
            return -1;
        }
        hp_task_t task;
        hp_result_t result;
        int rc = kind == S_TASK_BATCH? s_read_task (&p, end, &task): s_read_result (&p, end, &result);
        if (rc != 0) {
            char what[96];
            snprintf (what, sizeof what, "entry %u malformed (at octet %zu)", n + 1, (size_t) (p - ptr));
            s_fail (err, HP_CODE_BAD_REQUEST, index, name, what);
            return -1;
        }
        n++;
    }
    if (n == 0) {
        s_fail (err, HP_CODE_BAD_REQUEST, index, name, "no entries");
        return -1;
    }
    *count = n;
    return 0;
}

bool
hp_next_task (hp_str_t *cursor, hp_task_t *task)
{
    if (!cursor->ptr || cursor->len == 0)
        return false;
    const char *p = cursor->ptr, *end = cursor->ptr + cursor->len;
    if (s_read_task (&p, end, task) != 0)
        return false;
    *cursor = hp_strn (p, (size_t) (end - p));
    return true;
}

bool
hp_next_result (hp_str_t *cursor, hp_result_t *result)
{
    if (!cursor->ptr || cursor->len == 0)
        return false;
    const char *p = cursor->ptr, *end = cursor->ptr + cursor->len;
    if (s_read_result (&p, end, result) != 0)
        return false;
    *cursor = hp_strn (p, (size_t) (end - p));
    return true;
}

static size_t
s_digits (uint64_t v)
{
    size_t n = 1;
    while (v >= 10)
        v /= 10, n++;
    return n;
}

static size_t s_truncated_text_len (const char *ptr, size_t len);

size_t
hp_task_size (const hp_task_t *task)
{
    return task->task_id.len + 1 + s_digits (task->attempt) + 1 + s_digits (task->lease) + 1
         + s_digits (task->body.len) + 1 + task->body.len + 1;
}

size_t
hp_task_put (char *out, const hp_task_t *task)
{
    char *p = out;
    memcpy (p, task->task_id.ptr, task->task_id.len);
    p += task->task_id.len;
    *p++ = ' ';
    p += hp_render_uint (task->attempt, p);
    *p++ = ' ';
    p += hp_render_uint (task->lease, p);
    *p++ = ' ';
    p += hp_render_uint (task->body.len, p);
    *p++ = '\n';
    if (task->body.len)
        memcpy (p, task->body.ptr, task->body.len);
    p += task->body.len;
    *p++ = '\n';
    return (size_t) (p - out);
}

size_t
hp_result_size (const hp_result_t *result)
{
    size_t text = result->text.ptr? s_truncated_text_len (result->text.ptr, result->text.len): 0;
    return result->task_id.len + 1 + s_digits (result->lease) + 1 + strlen (hp_outcome_name (result->outcome))
         + 1 + s_digits ((uint64_t) (result->delay_ms > 0? result->delay_ms: 0)) + 1 + s_digits (text) + 1
         + text + 1;
}

size_t
hp_result_put (char *out, const hp_result_t *result)
{
    size_t text = result->text.ptr? s_truncated_text_len (result->text.ptr, result->text.len): 0;
    int64_t delay = result->delay_ms < 0? 0: result->delay_ms > S_MAX_DELAY? S_MAX_DELAY: result->delay_ms;
    char *p = out;
    memcpy (p, result->task_id.ptr, result->task_id.len);
    p += result->task_id.len;
    *p++ = ' ';
    p += hp_render_uint (result->lease, p);
    *p++ = ' ';
    const char *name = hp_outcome_name (result->outcome);
    memcpy (p, name, strlen (name));
    p += strlen (name);
    *p++ = ' ';
    p += hp_render_uint ((uint64_t) delay, p);
    *p++ = ' ';
    p += hp_render_uint (text, p);
    *p++ = '\n';
    if (text)
        memcpy (p, result->text.ptr, text);
    p += text;
    *p++ = '\n';
    return (size_t) (p - out);
}

const char *
hp_outcome_name (hp_outcome_t outcome)
{
    if (outcome < HP_OUTCOME_DONE || outcome > HP_OUTCOME_RELEASED)
        return "failed";
    return s_outcomes[outcome];
}

/*  Decodes one field frame into msg. Returns 0, or -1 with err filled. */
static int
s_decode_field (const s_field_t *field, size_t index, const hp_frame_t *frame,
                hp_msg_t *msg, hp_error_t *err)
{
    /* An empty frame may come with a NULL pointer: give the message "" instead,
       since a NULL ptr means "absent". */
    const char *ptr = frame->size? (const char *) frame->data: "";
    size_t len = frame->size;

    if (s_is_int (field->kind)) {
        uint64_t value;
        if (s_parse_int (field->kind, field->name, index, ptr, len, &value, err))
            return -1;
        switch (field->kind) {
            case S_CODE:     msg->code = (int) value; break;
            case S_CAPACITY: msg->capacity = (uint32_t) value; break;
            default:         msg->max_batch = (uint32_t) value; break;
        }
        return 0;
    }
    if (field->kind == S_TASK_BATCH || field->kind == S_RESULT_BATCH) {
        uint32_t count;
        if (s_check_batch (field->kind, field->name, index, ptr, len, &count, err))
            return -1;
        msg->batch = hp_strn (ptr, len);
        msg->batch_count = count;
        return 0;
    }
    if (s_check_string (field->kind, field->name, index, ptr, len, err))
        return -1;
    if (field->kind == S_STATUS)
        msg->duplicate = (len == 9);
    else
        *s_str_slot (msg, field->kind) = hp_strn (ptr, len);
    return 0;
}

/*  Sets msg->command and, for commands whose first field is a corr, msg->corr
    when frame 2 is a valid one: enough to address a NACK to a broken request. */
static const s_spec_t *
s_peek_request (const hp_frame_t *frames, size_t count, hp_msg_t *msg)
{
    if (count < 2)
        return NULL;
    hp_command_t command = HP_NONE;
    const s_spec_t *spec = s_lookup (&frames[1], &command);
    if (!spec)
        return NULL;
    msg->command = command;
    if (spec->field_count > 0 && spec->fields[0].kind == S_CORR && count > S_FIRST_FIELD) {
        hp_error_t ignored;
        if (s_decode_field (&spec->fields[0], S_FIRST_FIELD, &frames[S_FIRST_FIELD],
                            msg, &ignored))
            msg->corr = hp_strn (NULL, 0);
    }
    return spec;
}

int
hp_decode (const hp_frame_t *frames, size_t count, hp_msg_t *msg, hp_error_t *err)
{
    hp_error_t scratch_err;
    if (!err)
        err = &scratch_err;
    memset (msg, 0, sizeof *msg);
    err->code = 0;
    err->text[0] = '\0';
    char shown[32];

    /*  Frame 0: signature and version */
    if (count == 0) {
        s_fail (err, HP_CODE_BAD_REQUEST, 0, "signature", "missing");
        return -1;
    }
    const size_t sig_len = sizeof HP_SIGNATURE - 1;
    const size_t prefix_len = sizeof HP_SIGNATURE_PREFIX - 1;
    if (frames[0].size == sig_len && memcmp (frames[0].data, HP_SIGNATURE, sig_len) == 0)
        msg->version = HP_VERSION;
    else
    if (frames[0].size == sig_len && memcmp (frames[0].data, HP_SIGNATURE_V1, sig_len) == 0)
        msg->version = 1;
    else {
        if (frames[0].size >= prefix_len
        &&  memcmp (frames[0].data, HP_SIGNATURE_PREFIX, prefix_len) == 0) {
            char what[96];
            snprintf (what, sizeof what, "unsupported protocol version '%s' (expected %s)",
                      s_printable (frames[0].data, frames[0].size, shown, sizeof shown),
                      HP_SIGNATURE);
            s_fail (err, HP_CODE_VERSION, 0, "signature", what);
            /*  Every version keeps frames 1 and 2 (command, corr), so a newer
                client can be told which request was refused. */
            s_peek_request (frames, count, msg);
        }
        else
            s_fail (err, HP_CODE_BAD_REQUEST, 0, "signature", "not " HP_SIGNATURE);
        return -1;
    }

    /*  Frame 1: command */
    if (count < 2) {
        s_fail (err, HP_CODE_BAD_REQUEST, 1, "command", "missing");
        return -1;
    }
    /*  The command, and the correlation id alone, so that a broken PUBLISH
        or ADMIN can still be NACKed to the right request. */
    const s_spec_t *spec = s_peek_request (frames, count, msg);
    if (!spec) {
        char what[64];
        snprintf (what, sizeof what, "unknown command '%s'",
                  s_printable (frames[1].data, frames[1].size, shown, sizeof shown));
        s_fail (err, HP_CODE_BAD_REQUEST, 1, "command", what);
        return -1;
    }

    /*  Version 2 changed the worker commands (READY has max-batch; TASKS
        and RESULTS carry batches): a version 1 worker is told so. */
    if (msg->version == 1
    &&  (msg->command == HP_READY || msg->command == HP_TASKS || msg->command == HP_RESULTS)) {
        char what[128];
        snprintf (what, sizeof what, "HERALD/1 %s: workers speak %s (READY with max-batch, "
                  "batched TASKS and RESULTS)", spec->name, HP_SIGNATURE);
        s_fail (err, HP_CODE_VERSION, 0, "signature", what);
        return -1;
    }

    /*  Frame count */
    size_t expected = S_FIRST_FIELD + spec->field_count;
    if (count < expected) {
        s_fail (err, HP_CODE_BAD_REQUEST, count, spec->fields[count - S_FIRST_FIELD].name,
                "missing");
        return -1;
    }
    if (count > expected) {
        char what[64];
        snprintf (what, sizeof what, "unexpected frame (%s has %zu frames)",
                  spec->name, expected);
        s_fail (err, HP_CODE_BAD_REQUEST, expected, NULL, what);
        return -1;
    }

    /*  Fields */
    for (size_t i = 0; i < spec->field_count; i++)
        if (s_decode_field (&spec->fields[i], S_FIRST_FIELD + i,
                            &frames[S_FIRST_FIELD + i], msg, err))
            return -1;
    return 0;
}

size_t
hp_render_uint (uint64_t value, char *buf)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/*  Cuts text to HP_MAX_TEXT octets, backing off so that a UTF-8 sequence
    is not split. */
static size_t
s_truncated_text_len (const char *ptr, size_t len)
{
    if (len <= HP_MAX_TEXT)
        return len;
    size_t cut = HP_MAX_TEXT;
    for (int back = 0; back < 3 && cut > 0
                       && ((unsigned char) ptr[cut] & 0xC0) == 0x80; back++)
        cut--;
    return cut;
}

int
hp_encode (const hp_msg_t *msg, hp_encoded_t *out)
{
    out->count = 0;
    if (msg->command <= HP_NONE || msg->command >= HP_COMMAND_COUNT)
        return -1;
    const s_spec_t *spec = &s_specs[msg->command];
    hp_error_t err;
    size_t scratch_used = 0;

    if (msg->version == 1)
        out->frames[0] = (hp_frame_t) { HP_SIGNATURE_V1, sizeof HP_SIGNATURE_V1 - 1 };
    else
    if (msg->version == 0 || msg->version == HP_VERSION)
        out->frames[0] = (hp_frame_t) { HP_SIGNATURE, sizeof HP_SIGNATURE - 1 };
    else
        return -1;
    out->frames[1] = (hp_frame_t) { spec->name, strlen (spec->name) };
    for (size_t i = 0; i < spec->field_count; i++) {
        const s_field_t *field = &spec->fields[i];
        size_t index = S_FIRST_FIELD + i;
        hp_frame_t *frame = &out->frames[index];

        if (s_is_int (field->kind)) {
            int64_t value;
            switch (field->kind) {
                case S_CODE:     value = msg->code; break;
                case S_CAPACITY: value = msg->capacity; break;
                default:         value = msg->max_batch; break;
            }
            uint64_t min, max;
            s_int_bounds (field->kind, &min, &max);
            if (value < 0 || (uint64_t) value < min || (uint64_t) value > max)
                return -1;
            assert (scratch_used < sizeof out->scratch / sizeof out->scratch[0]);
            char *text = out->scratch[scratch_used++];
            size_t len = hp_render_uint ((uint64_t) value, text);
            *frame = (hp_frame_t) { text, len };
        }
        else
        if (field->kind == S_STATUS) {
            if (msg->duplicate)
                *frame = (hp_frame_t) { s_status_duplicate, sizeof s_status_duplicate - 1 };
            else
                *frame = (hp_frame_t) { s_status_new, sizeof s_status_new - 1 };
        }
        else {
            hp_str_t value = *s_str_slot ((hp_msg_t *) msg, field->kind);
            if (!value.ptr) {
                if (field->kind != S_TEXT || value.len != 0)
                    return -1;              /* a required field is missing */
                value.ptr = "";
            }
            if (field->kind == S_TEXT)
                value.len = s_truncated_text_len (value.ptr, value.len);
            if (field->kind == S_TASK_BATCH || field->kind == S_RESULT_BATCH) {
                /*  Built with hp_task_put / hp_result_put: not checked again. */
                if (value.len == 0)
                    return -1;
            }
            else
            if (s_check_string (field->kind, field->name, index, value.ptr, value.len, &err))
                return -1;
            *frame = (hp_frame_t) { value.ptr, value.len };
        }
    }
    out->count = S_FIRST_FIELD + spec->field_count;
    return 0;
}

const char *
hp_command_name (hp_command_t command)
{
    if (command <= HP_NONE || command >= HP_COMMAND_COUNT)
        return "?";
    return s_specs[command].name;
}

const char *
hp_code_name (int code)
{
    switch (code) {
        case HP_CODE_OK:            return "ok";
        case HP_CODE_BAD_REQUEST:   return "bad-request";
        case HP_CODE_UNAUTHORIZED:  return "unauthorized";
        case HP_CODE_FORBIDDEN:     return "forbidden";
        case HP_CODE_NOT_FOUND:     return "not-found";
        case HP_CODE_TOO_LARGE:     return "too-large";
        case HP_CODE_INVALID_EVENT: return "invalid-event";
        case HP_CODE_UNKNOWN_TYPE:  return "unknown-type";
        case HP_CODE_INTERNAL:      return "internal";
        case HP_CODE_BUSY:          return "busy";
        case HP_CODE_VERSION:       return "version";
        case HP_CODE_STORAGE:       return "storage";
        default:                    return "unknown";
    }
}

hp_str_t
hp_str (const char *nul_terminated)
{
    if (!nul_terminated)
        return (hp_str_t) { NULL, 0 };
    return (hp_str_t) { nul_terminated, strlen (nul_terminated) };
}

hp_str_t
hp_strn (const char *ptr, size_t len)
{
    return (hp_str_t) { ptr, ptr? len: 0 };
}

char *
hp_str_copy (hp_str_t s, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    size_t n = s.ptr? s.len: 0;
    if (n > size - 1)
        n = size - 1;
    if (n)
        memcpy (buf, s.ptr, n);
    buf[n] = '\0';
    return buf;
}

bool
hp_str_eq (hp_str_t s, const char *text)
{
    if (!text)
        return s.ptr == NULL;
    size_t len = strlen (text);
    if (s.len != len)
        return false;
    return len == 0 || (s.ptr && memcmp (s.ptr, text, len) == 0);
}
