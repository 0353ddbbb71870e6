/*  record: journal payloads (see record.h). */
#include <stdio.h>
#include <string.h>

#include "record.h"

record_str_t
record_str (const char *text)
{
    return (record_str_t) { text? text: "", text? strlen (text): 0 };
}

//  --------------------------------------------------------------------------
//  Writing (every field's writer is inlined: a call and a memcpy call per
//  field, for an event and its three outcomes, were a tenth of the broker
//  loop's instructions per event end to end)

typedef struct {
    unsigned char *p;
    size_t size, len;
    bool overflow;
} s_out_t;

static inline __attribute__ ((always_inline)) void
s_bytes (s_out_t *out, const void *data, size_t len)
{
    if (out->overflow || len > out->size - out->len) {
        out->overflow = true;
        return;
    }
    if (len && out->p)
        memcpy (out->p + out->len, data, len);
    out->len += len;
}

static inline __attribute__ ((always_inline)) void
s_u8 (s_out_t *out, unsigned v)
{
    unsigned char b = (unsigned char) v;
    s_bytes (out, &b, 1);
}

static inline __attribute__ ((always_inline)) void
s_u32 (s_out_t *out, uint32_t v)
{
    unsigned char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char) (v >> (8 * i));
    s_bytes (out, b, 4);
}

static inline __attribute__ ((always_inline)) void
s_u64 (s_out_t *out, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char) (v >> (8 * i));
    s_bytes (out, b, 8);
}

static inline __attribute__ ((always_inline)) void
s_str16 (s_out_t *out, record_str_t s)
{
    if (s.len > 0xffff) {
        out->overflow = true;
        return;
    }
    unsigned char b[2] = { (unsigned char) s.len, (unsigned char) (s.len >> 8) };
    s_bytes (out, b, 2);
    s_bytes (out, s.ptr, s.len);
}

static inline __attribute__ ((always_inline)) void
s_str32 (s_out_t *out, record_str_t s)
{
    if (s.len > 0xffffffffu) {
        out->overflow = true;
        return;
    }
    s_u32 (out, (uint32_t) s.len);
    s_bytes (out, s.ptr, s.len);
}

static void
s_admin (s_out_t *out, const record_admin_t *a)
{
    s_u8 (out, a->all? 1: 0);
    s_str16 (out, a->task_id);
    s_str16 (out, a->channel);
    s_u64 (out, (uint64_t) a->at);
    s_u64 (out, a->request);
}

static void
s_write (const record_t *rec, s_out_t *out)
{
    s_u8 (out, rec->type);
    switch (rec->type) {
        case RECORD_EVENT: {
            const record_event_t *e = &rec->u.event;
            if (e->fanout < 0 || e->fanout > RECORD_MAX_FANOUT) {
                out->overflow = true;
                return;
            }
            s_u64 (out, e->seq);
            s_u64 (out, (uint64_t) e->received_at);
            s_bytes (out, e->uid, 32);
            s_u8 (out, (unsigned) e->fanout);
            for (int i = 0; i < e->fanout; i++)
                s_str16 (out, e->channels[i]);
            s_str16 (out, e->type);
            s_str16 (out, e->id);
            s_str16 (out, e->source);
            s_str16 (out, e->dedup_key);
            s_str32 (out, e->body);
            break;
        }
        case RECORD_OUTCOME: {
            const record_outcome_t *o = &rec->u.outcome;
            s_u64 (out, o->seq);
            s_u8 (out, (unsigned) o->ch);
            s_u8 (out, o->kind);
            s_u8 (out, o->log_attempt? 1: 0);
            s_u32 (out, o->attempts);
            s_u32 (out, o->throttled);
            s_u64 (out, (uint64_t) o->at);
            s_u64 (out, (uint64_t) o->not_before);
            s_u64 (out, (uint64_t) o->delay);
            s_str16 (out, o->outcome);
            s_str16 (out, o->error);
            break;
        }
        case RECORD_DEAD_RETRY:
        case RECORD_DEAD_PURGE:
        case RECORD_ABANDON:
            s_admin (out, &rec->u.admin);
            break;
        default:
            out->overflow = true;
    }
}

size_t
record_encode (const record_t *rec, unsigned char *out, size_t size)
{
    s_out_t w = { out, size, 0, false };
    s_write (rec, &w);
    return w.overflow? 0: w.len;
}

size_t
record_size (const record_t *rec)
{
    s_out_t w = { NULL, SIZE_MAX, 0, false };
    s_write (rec, &w);
    return w.overflow? 0: w.len;
}

//  --------------------------------------------------------------------------
//  Reading

typedef struct {
    const unsigned char *p;
    size_t len, pos;
    const char *failed;         /* the field that did not fit */
} s_in_t;

static bool
s_take (s_in_t *in, size_t n, const char *field)
{
    if (in->failed)
        return false;
    if (n > in->len - in->pos) {
        in->failed = field;
        return false;
    }
    return true;
}

static unsigned
s_get8 (s_in_t *in, const char *field)
{
    if (!s_take (in, 1, field))
        return 0;
    return in->p[in->pos++];
}

static uint32_t
s_get32 (s_in_t *in, const char *field)
{
    if (!s_take (in, 4, field))
        return 0;
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | in->p[in->pos + (size_t) i];
    in->pos += 4;
    return v;
}

static uint64_t
s_get64 (s_in_t *in, const char *field)
{
    if (!s_take (in, 8, field))
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | in->p[in->pos + (size_t) i];
    in->pos += 8;
    return v;
}

static record_str_t
s_getstr (s_in_t *in, bool wide, const char *field)
{
    record_str_t s = { "", 0 };
    size_t len;
    if (wide)
        len = s_get32 (in, field);
    else {
        if (!s_take (in, 2, field))
            return s;
        len = (size_t) in->p[in->pos] | (size_t) in->p[in->pos + 1] << 8;
        in->pos += 2;
    }
    if (!s_take (in, len, field))
        return s;
    s.ptr = (const char *) in->p + in->pos;
    s.len = len;
    in->pos += len;
    return s;
}

static void
s_read_admin (s_in_t *in, record_admin_t *a)
{
    a->all = s_get8 (in, "all") != 0;
    a->task_id = s_getstr (in, false, "task_id");
    a->channel = s_getstr (in, false, "channel");
    a->at = (int64_t) s_get64 (in, "at");
    a->request = s_get64 (in, "request");
}

int
record_decode (const unsigned char *payload, size_t len, record_t *rec, char *err, size_t errlen)
{
    memset (rec, 0, sizeof *rec);
    s_in_t in = { payload, len, 0, NULL };
    rec->type = (record_type_t) s_get8 (&in, "type");
    switch (rec->type) {
        case RECORD_EVENT: {
            record_event_t *e = &rec->u.event;
            e->seq = s_get64 (&in, "seq");
            e->received_at = (int64_t) s_get64 (&in, "received_at");
            if (s_take (&in, 32, "uid")) {
                memcpy (e->uid, in.p + in.pos, 32);
                e->uid[32] = '\0';
                in.pos += 32;
            }
            e->fanout = (int) s_get8 (&in, "fanout");
            if (!in.failed && e->fanout > RECORD_MAX_FANOUT)
                in.failed = "fanout";
            for (int i = 0; i < e->fanout && !in.failed; i++)
                e->channels[i] = s_getstr (&in, false, "channel");
            e->type = s_getstr (&in, false, "event type");
            e->id = s_getstr (&in, false, "id");
            e->source = s_getstr (&in, false, "source");
            e->dedup_key = s_getstr (&in, false, "dedup_key");
            e->body = s_getstr (&in, true, "body");
            break;
        }
        case RECORD_OUTCOME: {
            record_outcome_t *o = &rec->u.outcome;
            o->seq = s_get64 (&in, "seq");
            o->ch = (int) s_get8 (&in, "ch");
            o->kind = (record_outcome_kind_t) s_get8 (&in, "kind");
            o->log_attempt = s_get8 (&in, "log_attempt") != 0;
            o->attempts = s_get32 (&in, "attempts");
            o->throttled = s_get32 (&in, "throttled");
            o->at = (int64_t) s_get64 (&in, "at");
            o->not_before = (int64_t) s_get64 (&in, "not_before");
            o->delay = (int64_t) s_get64 (&in, "delay");
            o->outcome = s_getstr (&in, false, "outcome");
            o->error = s_getstr (&in, false, "error");
            if (!in.failed && (o->kind < RECORD_DONE || o->kind > RECORD_DEAD))
                in.failed = "kind";
            break;
        }
        case RECORD_DEAD_RETRY:
        case RECORD_DEAD_PURGE:
        case RECORD_ABANDON:
            s_read_admin (&in, &rec->u.admin);
            break;
        default:
            snprintf (err, errlen, "unknown record type %d", (int) rec->type);
            return -1;
    }
    if (in.failed) {
        snprintf (err, errlen, "record type %d: %s runs past the end (%zu bytes)", (int) rec->type,
                  in.failed, len);
        return -1;
    }
    if (in.pos != len) {
        snprintf (err, errlen, "record type %d: %zu bytes left over", (int) rec->type, len - in.pos);
        return -1;
    }
    return 0;
}

void
record_uid (char uid[33], uint64_t seq, uint64_t random)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        uid[15 - i] = hex[(seq >> (4 * i)) & 15];
        uid[31 - i] = hex[(random >> (4 * i)) & 15];
    }
    uid[32] = '\0';
}

bool
record_uid_seq (const char *uid, uint64_t *seq)
{
    if (strlen (uid) != 32)
        return false;
    uint64_t n = 0;
    for (int i = 0; i < 16; i++) {
        char c = uid[i];
        int digit = c >= '0' && c <= '9'? c - '0': c >= 'a' && c <= 'f'? c - 'a' + 10: -1;
        if (digit < 0)
            return false;
        n = n << 4 | (uint64_t) digit;
    }
    *seq = n;
    return true;
}
