/*  fuzz_record: libFuzzer target for the journal record decoder
    (broker/record.c). The input is one record payload, as read back from
    a journal that may be damaged or foreign.
    Properties: record_decode never reads outside the payload (an
    exact-size copy, so ASan sees it) and never writes past its error
    buffer (sizes 1 to 64 are tried); a refusal says why; every string of
    a decoded record lies inside the payload; what decodes encodes back to
    the same length and decodes again to the same record. */
#include "fuzz_util.h"
#include "record.h"

static bool
s_inside (record_str_t s, const unsigned char *payload, size_t len)
{
    const unsigned char *p = (const unsigned char *) s.ptr;
    if (s.len == 0)
        return true;
    return p >= payload && s.len <= len && p - payload <= (ptrdiff_t) (len - s.len);
}

static bool
s_same_str (record_str_t a, record_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp (a.ptr, b.ptr, a.len) == 0);
}

/*  Every string of rec, and their count. */
static int
s_strings (const record_t *rec, record_str_t out[RECORD_MAX_FANOUT + 8])
{
    int n = 0;
    switch (rec->type) {
        case RECORD_EVENT:
            for (int i = 0; i < rec->u.event.fanout; i++)
                out[n++] = rec->u.event.channels[i];
            out[n++] = rec->u.event.type;
            out[n++] = rec->u.event.id;
            out[n++] = rec->u.event.source;
            out[n++] = rec->u.event.dedup_key;
            out[n++] = rec->u.event.body;
            break;
        case RECORD_OUTCOME:
            out[n++] = rec->u.outcome.outcome;
            out[n++] = rec->u.outcome.error;
            break;
        default:
            out[n++] = rec->u.admin.task_id;
            out[n++] = rec->u.admin.channel;
            break;
    }
    return n;
}

static void
s_check_same (const record_t *a, const record_t *b)
{
    fuzz_check (a->type == b->type, "type changed in a round trip");
    record_str_t sa[RECORD_MAX_FANOUT + 8], sb[RECORD_MAX_FANOUT + 8];
    int na = s_strings (a, sa), nb = s_strings (b, sb);
    fuzz_check (na == nb, "string count changed in a round trip");
    for (int i = 0; i < na; i++)
        fuzz_check (s_same_str (sa[i], sb[i]), "string %d changed in a round trip", i);
    switch (a->type) {
        case RECORD_EVENT: {
            const record_event_t *x = &a->u.event, *y = &b->u.event;
            fuzz_check (x->seq == y->seq && x->received_at == y->received_at
                        && memcmp (x->uid, y->uid, sizeof x->uid) == 0 && x->fanout == y->fanout,
                        "event fields changed in a round trip");
            break;
        }
        case RECORD_OUTCOME: {
            const record_outcome_t *x = &a->u.outcome, *y = &b->u.outcome;
            fuzz_check (x->seq == y->seq && x->ch == y->ch && x->kind == y->kind
                        && x->log_attempt == y->log_attempt && x->attempts == y->attempts
                        && x->throttled == y->throttled && x->at == y->at
                        && x->not_before == y->not_before && x->delay == y->delay,
                        "outcome fields changed in a round trip");
            break;
        }
        default: {
            const record_admin_t *x = &a->u.admin, *y = &b->u.admin;
            fuzz_check (x->all == y->all && x->at == y->at && x->request == y->request,
                        "admin fields changed in a round trip");
        }
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    unsigned char *payload = fuzz_copy (data, size);
    size_t errlen = 1 + (size? data[size - 1] % 64: 0);
    char *err = malloc (errlen);
    fuzz_check (err != NULL, "out of memory");
    err[0] = '\0';
    record_t rec;
    int rc = record_decode (payload, size, &rec, err, errlen);
    fuzz_check (rc == 0 || rc == -1, "record_decode returned %d", rc);
    if (rc != 0) {
        fuzz_check (fuzz_terminated (err, errlen), "error not terminated");
        fuzz_check (errlen == 1 || err[0] != '\0', "refused without saying why");
        char full[256];
        record_t again;
        int again_rc = record_decode (payload, size, &again, full, sizeof full);
        fuzz_check (again_rc == -1 && (strncmp (full, "record type", 11) == 0
                                       || strncmp (full, "unknown record type", 19) == 0),
                    "unexpected error text: %s", full);
    }
    else {
        fuzz_check (rec.type >= RECORD_EVENT && rec.type <= RECORD_ABANDON, "type %d decoded",
                    (int) rec.type);
        if (rec.type == RECORD_EVENT)
            fuzz_check (rec.u.event.fanout >= 0 && rec.u.event.fanout <= RECORD_MAX_FANOUT,
                        "fanout %d decoded", rec.u.event.fanout);
        if (rec.type == RECORD_OUTCOME)
            fuzz_check (rec.u.outcome.kind >= RECORD_DONE && rec.u.outcome.kind <= RECORD_DEAD,
                        "outcome kind %d decoded", (int) rec.u.outcome.kind);
        record_str_t strings[RECORD_MAX_FANOUT + 8];
        int n = s_strings (&rec, strings);
        for (int i = 0; i < n; i++)
            fuzz_check (s_inside (strings[i], payload, size), "string %d points outside the payload", i);

        size_t need = record_size (&rec);
        fuzz_check (need == size, "decoded %zu bytes, encodes to %zu", size, need);
        unsigned char *out = fuzz_copy (data, need);
        fuzz_check (record_encode (&rec, out, need) == need, "record_encode failed");
        fuzz_check (need == 0 || record_encode (&rec, out, need - 1) == 0,
                    "record_encode wrote past a short buffer");
        record_t again;
        char full[256];
        fuzz_check (record_decode (out, need, &again, full, sizeof full) == 0,
                    "the encoded record does not decode: %s", full);
        s_check_same (&rec, &again);
        free (out);
    }
    free (err);
    free (payload);
    return 0;
}
