/*  Unit tests: broker/record - journal payloads survive the round trip, and
    a damaged payload is an error, never a read past its end. */
#include <criterion/criterion.h>
#include <string.h>

#include "record.h"

static int
s_eq (record_str_t s, const char *text)
{
    return s.len == strlen (text) && memcmp (s.ptr, text, s.len) == 0;
}

Test (record, event_round_trip_and_truncation)
{
    record_t rec = { .type = RECORD_EVENT };
    record_event_t *e = &rec.u.event;
    e->seq = 42;
    e->received_at = 1700000000123;
    memcpy (e->uid, "0123456789abcdef0123456789abcdef", 33);
    e->fanout = 2;
    e->channels[0] = record_str ("email");
    e->channels[1] = record_str ("courier");
    e->type = record_str ("order.confirmed");
    e->id = record_str ("ev-1");
    e->source = record_str ("shop");
    e->dedup_key = record_str ("key\x1forder.confirmed\x1fn\x1f" "42");
    e->body = record_str ("{\"data\":{}}");
    unsigned char buf[512];
    size_t len = record_encode (&rec, buf, sizeof buf);
    cr_assert_gt (len, 0);
    cr_assert_eq (len, record_size (&rec));
    record_t back;
    char err[128];
    cr_assert_eq (record_decode (buf, len, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back.type, RECORD_EVENT);
    cr_assert_eq (back.u.event.seq, 42);
    cr_assert_eq (back.u.event.received_at, 1700000000123);
    cr_assert_str_eq (back.u.event.uid, "0123456789abcdef0123456789abcdef");
    cr_assert_eq (back.u.event.fanout, 2);
    cr_assert (s_eq (back.u.event.channels[1], "courier"));
    cr_assert (s_eq (back.u.event.body, "{\"data\":{}}"));
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq (record_decode (buf, cut, &back, err, sizeof err), -1, "cut at %zu decoded", cut);
    cr_assert_eq (record_encode (&rec, buf, len - 1), 0, "does not fit");
}

Test (record, outcome_and_admin_round_trip)
{
    record_t rec = { .type = RECORD_OUTCOME };
    rec.u.outcome = (record_outcome_t) { .seq = 7, .ch = 2, .kind = RECORD_RESCHEDULE,
                                         .log_attempt = true, .attempts = 3, .throttled = 5,
                                         .at = 10, .not_before = 20, .delay = 10,
                                         .outcome = record_str ("throttled"),
                                         .error = record_str ("HTTP 429") };
    unsigned char buf[256];
    size_t len = record_encode (&rec, buf, sizeof buf);
    record_t back;
    char err[128];
    cr_assert_eq (record_decode (buf, len, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back.u.outcome.ch, 2);
    cr_assert_eq (back.u.outcome.throttled, 5);
    cr_assert (s_eq (back.u.outcome.error, "HTTP 429"));
    buf[10] = 9;                            /* kind byte out of range */
    buf[1 + 8 + 1] = 9;
    cr_assert_eq (record_decode (buf, len, &back, err, sizeof err), -1);
    rec = (record_t) { .type = RECORD_DEAD_PURGE };
    rec.u.admin = (record_admin_t) { .channel = record_str ("email"), .at = 5, .request = 77 };
    len = record_encode (&rec, buf, sizeof buf);
    cr_assert_eq (record_decode (buf, len, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back.u.admin.request, 77);
    cr_assert (s_eq (back.u.admin.channel, "email"));
    buf[0] = 99;
    cr_assert_eq (record_decode (buf, len, &back, err, sizeof err), -1);
    cr_assert (strstr (err, "unknown record type 99"), "%s", err);
}

Test (record, a_uid_gives_back_its_number)
{
    char uid[33];
    uint64_t seq = 0;
    record_uid (uid, 0x0123456789abcdefULL, 0xfedcba9876543210ULL);
    cr_assert_str_eq (uid, "0123456789abcdeffedcba9876543210");
    cr_assert (record_uid_seq (uid, &seq));
    cr_assert_eq (seq, 0x0123456789abcdefULL);
    record_uid (uid, 42, 7);
    cr_assert (record_uid_seq (uid, &seq));
    cr_assert_eq (seq, 42);
    cr_assert_not (record_uid_seq ("0123456789ABCDEFfedcba9876543210", &seq), "upper case is another form");
    cr_assert_not (record_uid_seq ("0123456789abcdef", &seq), "16 digits are another form");
    cr_assert_not (record_uid_seq ("ev-7001-000000000000000000000000", &seq), "a uid of another form, 32 long");
}
