/*  test_proto: the codec (proto/herald_proto.c). Round trips of every command,
    every truncation, bad integers and fields, and a deterministic fuzz loop
    over mutated valid messages (frames are malloc'd exact-size copies, so an
    ASan build catches any read past a frame). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_proto.h"

#define S_MAX_TEST_FRAMES 12

/*  A message as owned, exact-size heap frames. */
typedef struct {
    hp_frame_t frames[S_MAX_TEST_FRAMES];
    size_t count;
} s_owned_t;

static void
s_owned_add (s_owned_t *self, const void *data, size_t size)
{
    cr_assert (self->count < S_MAX_TEST_FRAMES);
    void *copy = NULL;
    if (size) {
        copy = malloc (size);
        cr_assert_not_null (copy);
        memcpy (copy, data, size);
    }
    self->frames[self->count++] = (hp_frame_t) { copy, size };
}

static void
s_owned_free (s_owned_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free ((void *) self->frames[i].data);
    self->count = 0;
}

/*  Builds owned frames from NUL-terminated strings. */
static s_owned_t
s_owned_from (const char *const *parts, size_t count)
{
    s_owned_t self = { .count = 0 };
    for (size_t i = 0; i < count; i++)
        s_owned_add (&self, parts[i], strlen (parts[i]));
    return self;
}

static s_owned_t
s_owned_encode (const hp_msg_t *msg)
{
    hp_encoded_t enc;
    cr_assert_eq (hp_encode (msg, &enc), 0, "encode %s", hp_command_name (msg->command));
    s_owned_t self = { .count = 0 };
    for (size_t i = 0; i < enc.count; i++)
        s_owned_add (&self, enc.frames[i].data, enc.frames[i].size);
    return self;
}

#define S_DECODE_PARTS(msg, err, ...) \
    s_decode_parts ((const char *const []) { __VA_ARGS__ }, \
                    sizeof ((const char *const []) { __VA_ARGS__ }) / sizeof (char *), msg, err)

/*  The frames of the last S_DECODE_PARTS stay alive until the next one (or
    the end of the test): the decoded message borrows from them. */
static s_owned_t s_last;

static void
s_teardown (void)
{
    s_owned_free (&s_last);
}

TestSuite (proto, .fini = s_teardown);

static int
s_decode_parts (const char *const *parts, size_t count, hp_msg_t *msg, hp_error_t *err)
{
    s_owned_free (&s_last);
    s_last = s_owned_from (parts, count);
    return hp_decode (s_last.frames, s_last.count, msg, err);
}

static bool
s_str_same (hp_str_t a, hp_str_t b)
{
    if (!a.ptr || !b.ptr)
        return a.ptr == b.ptr && a.len == b.len;
    return a.len == b.len && (a.len == 0 || memcmp (a.ptr, b.ptr, a.len) == 0);
}

static void
s_assert_same (const hp_msg_t *a, const hp_msg_t *b)
{
    const char *name = hp_command_name (a->command);
    cr_assert_eq (a->command, b->command, "%s: command", name);
    cr_assert (s_str_same (a->corr, b->corr), "%s: corr", name);
    cr_assert (s_str_same (a->body, b->body), "%s: body", name);
    cr_assert (s_str_same (a->event_id, b->event_id), "%s: event_id", name);
    cr_assert_eq (a->duplicate, b->duplicate, "%s: duplicate", name);
    cr_assert (s_str_same (a->durability, b->durability), "%s: durability", name);
    cr_assert_eq (a->code, b->code, "%s: code", name);
    cr_assert (s_str_same (a->text, b->text), "%s: text", name);
    cr_assert (s_str_same (a->channel, b->channel), "%s: channel", name);
    cr_assert_eq (a->capacity, b->capacity, "%s: capacity", name);
    cr_assert (s_str_same (a->worker, b->worker), "%s: worker", name);
    cr_assert_eq (a->max_batch, b->max_batch, "%s: max_batch", name);
    cr_assert (s_str_same (a->batch, b->batch), "%s: batch", name);
    cr_assert (s_str_same (a->verb, b->verb), "%s: verb", name);
}

/*  Batch frames of the samples: two tasks; one result of each outcome. */
static char s_tasks_frame[512], s_results_frame[512];
static size_t s_tasks_len, s_results_len;

static void
s_make_batches (const char *event)
{
    hp_task_t tasks[] = {
        { hp_str ("t-1.email"), 3, 4294967296ull + 7, hp_str (event) },
        { hp_str ("t-2.email"), 1, 9223372036854775807ull, hp_str ("{}") },
    };
    s_tasks_len = 0;
    for (size_t i = 0; i < 2; i++)
        s_tasks_len += hp_task_put (s_tasks_frame + s_tasks_len, &tasks[i]);
    hp_result_t results[] = {
        { hp_str ("t-1.email"), 1, HP_OUTCOME_DONE, 0, hp_str ("250 2.0.0 queued") },
        { hp_str ("t-1.email"), 2, HP_OUTCOME_RETRY, 0, hp_str ("connect: refused") },
        { hp_str ("t-1.email"), 3, HP_OUTCOME_THROTTLED, 9007199254740991LL, hp_str ("HTTP 429") },
        { hp_str ("t-1.email"), 4, HP_OUTCOME_FAILED, 0, hp_str ("550 5.1.1 no such user\nsecond line") },
        { hp_str ("t-2.email"), 5, HP_OUTCOME_RELEASED, 0, hp_str ("not started: waited half its lease") },
    };
    s_results_len = 0;
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        s_results_len += hp_result_put (s_results_frame + s_results_len, &results[i]);
}

/*  One valid message of every command, with only its own fields set. */
static size_t
s_samples (hp_msg_t *out)
{
    const char *event = "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"type\":\"order.confirmed\"}";
    s_make_batches (event);
    size_t n = 0;
    out[n++] = (hp_msg_t) { .command = HP_PUBLISH, .corr = hp_str ("c-1"), .body = hp_str (event) };
    out[n++] = (hp_msg_t) { .command = HP_ACK, .corr = hp_str ("c-1"),
                            .event_id = hp_str ("e-1"), .duplicate = true,
                            .durability = hp_str ("fsync") };
    out[n++] = (hp_msg_t) { .command = HP_ACK, .corr = hp_str ("c-2"),
                            .event_id = hp_str ("e-2"), .duplicate = false,
                            .durability = hp_str ("fsync") };
    out[n++] = (hp_msg_t) { .command = HP_NACK, .corr = hp_str ("c-3"),
                            .code = HP_CODE_INVALID_EVENT,
                            .text = hp_str ("data.order_id: required field missing") };
    out[n++] = (hp_msg_t) { .command = HP_NACK, .corr = hp_str ("c-4"),
                            .code = HP_CODE_BUSY, .text = hp_str ("") };
    out[n++] = (hp_msg_t) { .command = HP_READY, .channel = hp_str ("email"),
                            .capacity = 65535, .worker = hp_str ("host-1:4242"), .max_batch = 1024 };
    out[n++] = (hp_msg_t) { .command = HP_TASKS, .channel = hp_str ("inventory.v2_x-y"),
                            .batch = hp_strn (s_tasks_frame, s_tasks_len), .batch_count = 2 };
    out[n++] = (hp_msg_t) { .command = HP_RESULTS, .batch = hp_strn (s_results_frame, s_results_len),
                            .batch_count = 5 };
    out[n++] = (hp_msg_t) { .command = HP_HEARTBEAT };
    out[n++] = (hp_msg_t) { .command = HP_DISCONNECT };
    out[n++] = (hp_msg_t) { .command = HP_ADMIN, .corr = hp_str ("a-1"),
                            .verb = hp_str ("dead.list"), .body = hp_str ("{}") };
    out[n++] = (hp_msg_t) { .command = HP_ADMIN_REPLY, .corr = hp_str ("a-1"),
                            .code = HP_CODE_OK, .body = hp_str ("{\"tasks\":[]}") };
    return n;
}

#define S_SAMPLE_MAX 32

Test (proto, round_trip_every_command)
{
    hp_msg_t samples[S_SAMPLE_MAX];
    size_t n = s_samples (samples);
    bool seen[HP_COMMAND_COUNT] = { false };
    for (size_t i = 0; i < n; i++) {
        s_owned_t owned = s_owned_encode (&samples[i]);
        hp_msg_t decoded;
        hp_error_t err;
        int rc = hp_decode (owned.frames, owned.count, &decoded, &err);
        cr_assert_eq (rc, 0, "%s: %s", hp_command_name (samples[i].command), err.text);
        s_assert_same (&samples[i], &decoded);
        seen[samples[i].command] = true;
        s_owned_free (&owned);
    }
    for (int c = HP_NONE + 1; c < HP_COMMAND_COUNT; c++)
        cr_assert (seen[c], "no sample for %s", hp_command_name ((hp_command_t) c));
}

Test (proto, exact_wire_layout)
{
    hp_msg_t msg = { .command = HP_READY, .channel = hp_str ("email"), .capacity = 32,
                     .worker = hp_str ("h:1"), .max_batch = 16 };
    hp_encoded_t enc;
    cr_assert_eq (hp_encode (&msg, &enc), 0);
    const char *expected[] = { "HERALD/2", "READY", "email", "32", "h:1", "16" };
    cr_assert_eq (enc.count, 6);
    for (size_t i = 0; i < enc.count; i++) {
        cr_assert_eq (enc.frames[i].size, strlen (expected[i]), "frame %zu", i);
        cr_assert (memcmp (enc.frames[i].data, expected[i], enc.frames[i].size) == 0,
                   "frame %zu", i);
    }
    hp_msg_t ack = { .command = HP_ACK, .corr = hp_str ("c"), .event_id = hp_str ("e"),
                     .duplicate = false, .durability = hp_str ("fsync") };
    cr_assert_eq (hp_encode (&ack, &enc), 0);
    cr_assert_eq (enc.count, 6);
    cr_assert (enc.frames[4].size == 3 && memcmp (enc.frames[4].data, "new", 3) == 0);
    ack.duplicate = true;
    cr_assert_eq (hp_encode (&ack, &enc), 0);
    cr_assert (enc.frames[4].size == 9 && memcmp (enc.frames[4].data, "duplicate", 9) == 0);

    hp_msg_t heartbeat = { .command = HP_HEARTBEAT };
    cr_assert_eq (hp_encode (&heartbeat, &enc), 0);
    cr_assert_eq (enc.count, 2);
}

Test (proto, every_proper_prefix_fails_with_400)
{
    hp_msg_t samples[S_SAMPLE_MAX];
    size_t n = s_samples (samples);
    for (size_t i = 0; i < n; i++) {
        s_owned_t owned = s_owned_encode (&samples[i]);
        for (size_t k = 0; k < owned.count; k++) {
            hp_msg_t decoded;
            hp_error_t err;
            cr_assert_eq (hp_decode (owned.frames, k, &decoded, &err), -1,
                          "%s with %zu frames", hp_command_name (samples[i].command), k);
            cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
            cr_assert (strstr (err.text, "missing"), "%s", err.text);
        }
        s_owned_free (&owned);
    }
}

Test (proto, version_mismatch_is_505)
{
    hp_msg_t msg;
    hp_error_t err;
    const char *versions[] = { "HERALD/3", "HERALD/", "HERALD/10", "HERALD/2.1", "HERALD/2 ", "HERALD/0" };
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, versions[i], "HEARTBEAT"), -1);
        cr_assert_eq (err.code, HP_CODE_VERSION, "%s", versions[i]);
        cr_assert (strstr (err.text, "frame 0 (signature)"), "%s", err.text);
    }
    /*  the version is checked before anything else */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/3", "NOSUCH", "x", "y", "z"), -1);
    cr_assert_eq (err.code, HP_CODE_VERSION);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/3"), -1);
    cr_assert_eq (err.code, HP_CODE_VERSION);
    cr_assert_eq (msg.command, HP_NONE);
    /*  a newer client's request can still be answered: frames 1 and 2 keep their meaning */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/3", "PUBLISH", "c-9", "{}", "new-frame"), -1);
    cr_assert_eq (err.code, HP_CODE_VERSION);
    cr_assert_eq (msg.command, HP_PUBLISH);
    cr_assert (hp_str_eq (msg.corr, "c-9"));
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/3", "PUBLISH", ""), -1);
    cr_assert_eq (err.code, HP_CODE_VERSION);
    cr_assert_null (msg.corr.ptr);
}

/*  Version 2 changed only the worker commands: a HERALD/1 producer or admin
    tool is still served (and answered in HERALD/1), a HERALD/1 worker is told
    it speaks the wrong version. */
Test (proto, version_1_producers_kept_workers_refused)
{
    hp_msg_t msg;
    hp_error_t err;
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/1", "PUBLISH", "c-1", "{}"), 0, "%s", err.text);
    cr_assert_eq (msg.version, 1);
    cr_assert (hp_str_eq (msg.corr, "c-1"));
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/1", "ADMIN", "a-1", "status", "{}"), 0, "%s", err.text);
    cr_assert_eq (msg.version, 1);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/1", "HEARTBEAT"), 0, "%s", err.text);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "c-1", "{}"), 0, "%s", err.text);
    cr_assert_eq (msg.version, 2);
    /*  the READY of version 1 had 3 fields; either way it is refused for its version */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/1", "READY", "email", "4", "host:1"), -1);
    cr_assert_eq (err.code, HP_CODE_VERSION);
    cr_assert_eq (msg.command, HP_READY);
    cr_assert_eq (msg.version, 1);
    cr_assert (strstr (err.text, "HERALD/1 READY: workers speak HERALD/2"), "%s", err.text);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/1", "RESULTS", "a 1 done 0 0\n\n"), -1);
    cr_assert_eq (err.code, HP_CODE_VERSION);
    /*  the removed commands are unknown */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/1", "DONE", "t", "1", ""), -1);
    cr_assert_str_eq (err.text, "frame 1 (command): unknown command 'DONE'");

    /*  a reply is encoded in its request's version */
    hp_msg_t ack = { .command = HP_ACK, .version = 1, .corr = hp_str ("c-1"), .event_id = hp_str ("e"),
                     .durability = hp_str ("fsync") };
    hp_encoded_t out;
    cr_assert_eq (hp_encode (&ack, &out), 0);
    cr_assert_eq (out.frames[0].size, 8u);
    cr_assert (memcmp (out.frames[0].data, "HERALD/1", 8) == 0);
    ack.version = 0;
    cr_assert_eq (hp_encode (&ack, &out), 0);
    cr_assert (memcmp (out.frames[0].data, "HERALD/2", 8) == 0);
    ack.version = 3;
    cr_assert_eq (hp_encode (&ack, &out), -1, "no version 3 to speak");
}

Test (proto, bad_signature_is_400)
{
    hp_msg_t msg;
    hp_error_t err;
    const char *signatures[] = { "", "HERALD", "herald/1", " HERALD/1", "MDPC01", "HERALC/1" };
    for (size_t i = 0; i < sizeof signatures / sizeof signatures[0]; i++) {
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, signatures[i], "HEARTBEAT"), -1);
        cr_assert_eq (err.code, HP_CODE_BAD_REQUEST, "\"%s\"", signatures[i]);
        cr_assert_str_eq (err.text, "frame 0 (signature): not HERALD/2");
        cr_assert_eq (msg.command, HP_NONE);
    }
    cr_assert_eq (hp_decode (NULL, 0, &msg, &err), -1);
    cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
    cr_assert_str_eq (err.text, "frame 0 (signature): missing");
}

Test (proto, unknown_command_is_400)
{
    hp_msg_t msg;
    hp_error_t err;
    const char *commands[] = { "", "publish", "PUBLISHX", "PUBLIS", "ADMIN_REPLY", "NONE" };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", commands[i], "c", "{}"), -1);
        cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
        cr_assert (strstr (err.text, "frame 1 (command): unknown command"), "%s", err.text);
        cr_assert_eq (msg.command, HP_NONE);
    }
    /*  control bytes are not echoed into the message */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "\x01\n\"'\\x"), -1);
    cr_assert_str_eq (err.text, "frame 1 (command): unknown command '?????x'");
}

Test (proto, bad_integers)
{
    hp_msg_t msg;
    hp_error_t err;
    /*  max-batch 1..HP_MAX_BATCH */
    const char *bad[] = { "", "0", "01", "-1", "+1", " 1", "1 ", "12a", "0x10", "1e3", "1025",
                          "99999999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "8", "w", bad[i]),
                      -1, "max-batch \"%s\"", bad[i]);
        cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
        cr_assert (strncmp (err.text, "frame 5 (max-batch): ", 21) == 0, "%s", err.text);
    }
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "8", "w", "12a"), -1);
    cr_assert_str_eq (err.text, "frame 5 (max-batch): not a decimal number");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "8", "w", "007"), -1);
    cr_assert_str_eq (err.text, "frame 5 (max-batch): not a decimal number (leading zero)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "8", "w", "1025"), -1);
    cr_assert_str_eq (err.text, "frame 5 (max-batch): out of range (1..1024)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "8", "w", "1024"), 0);
    cr_assert_eq (msg.max_batch, 1024u);
    /*  an older worker's READY (no max-batch) is refused */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "8", "w"), -1);
    cr_assert_str_eq (err.text, "frame 5 (max-batch): missing");

    /*  capacity 1..65535 */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "0", "w", "1"), -1);
    cr_assert_str_eq (err.text, "frame 3 (capacity): out of range (1..65535)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "65536", "w", "1"), -1);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "1", "w", "1"), 0);
    cr_assert_eq (msg.capacity, 1u);

    /*  code 100..999 */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "NACK", "c", "99", "r"), -1);
    cr_assert_str_eq (err.text, "frame 3 (code): out of range (100..999)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "NACK", "c", "1000", "r"), -1);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN-REPLY", "c", "-200", "{}"), -1);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "NACK", "c", "100", "r"), 0);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "NACK", "c", "999", "r"), 0);
    cr_assert_eq (msg.code, 999);
}

/*  A string of n copies of c (static buffer, for one call). */
static const char *
s_repeat (char c, size_t n)
{
    static char buf[4096];
    cr_assert (n < sizeof buf);
    memset (buf, c, n);
    buf[n] = '\0';
    return buf;
}

Test (proto, field_sizes)
{
    hp_msg_t msg;
    hp_error_t err;
    /*  corr 1..64 */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", s_repeat ('c', 64), "{}"), 0);
    cr_assert_eq (msg.corr.len, 64u);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", s_repeat ('c', 65), "{}"), -1);
    cr_assert_str_eq (err.text, "frame 2 (corr): too long (65 octets, max 64)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "", "{}"), -1);
    cr_assert_str_eq (err.text, "frame 2 (corr): empty");
    /*  event JSON non-empty, no cap in the codec */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "c", ""), -1);
    cr_assert_str_eq (err.text, "frame 3 (event-json): empty");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "c", s_repeat ('x', 4000)), 0);
    /*  ids 1..128 */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ACK", "c", s_repeat ('e', 129),
                                  "new", "fsync"), -1);
    cr_assert_str_eq (err.text, "frame 3 (event-id): too long (129 octets, max 128)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", "email", "4",
                                  s_repeat ('w', 129), "1"), -1);
    cr_assert_str_eq (err.text, "frame 4 (worker-name): too long (129 octets, max 128)");
    /*  text 0..1024 */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "NACK", "c", "400", ""), 0);
    cr_assert_not_null (msg.text.ptr, "an empty text is present, not absent");
    cr_assert_eq (msg.text.len, 0u);
    /*  durability 1..16, status */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ACK", "c", "e", "new", s_repeat ('d', 17)), -1);
    cr_assert_str_eq (err.text, "frame 5 (durability): too long (17 octets, max 16)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ACK", "c", "e", "new", ""), -1);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ACK", "c", "e", "maybe", "fsync"), -1);
    cr_assert_str_eq (err.text, "frame 4 (status): not 'new' or 'duplicate'");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ACK", "c", "e", "NEW", "fsync"), -1);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ACK", "c", "e", "duplicate", "fsync"), 0);
    cr_assert (msg.duplicate);
    /*  admin */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN", "c", "status", ""), -1);
    cr_assert_str_eq (err.text, "frame 4 (args-json): empty");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN-REPLY", "c", "200", ""), -1);
    cr_assert_str_eq (err.text, "frame 4 (body-json): empty");
}

Test (proto, channel_and_verb_syntax)
{
    hp_msg_t msg;
    hp_error_t err;
    const char *good[] = { "email", "E", "a.b-c_d9", s_repeat ('x', 63) };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", good[i], "8", "w", "1"), 0,
                      "%s: %s", good[i], err.text);
    const char *bad[] = { "", "e mail", "email/", "\xc3\xa9mail", "a:b", "email\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "READY", bad[i], "8", "w", "1"), -1,
                      "\"%s\"", bad[i]);
        cr_assert (strncmp (err.text, "frame 2 (channel): ", 19) == 0, "%s", err.text);
    }
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "TASKS", s_repeat ('x', 64), "t 1 1 2\n{}\n"), -1);
    cr_assert_str_eq (err.text, "frame 2 (channel): too long (64 octets, max 63)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "TASKS", "e mail", "t 1 1 2\n{}\n"), -1);
    cr_assert_str_eq (err.text, "frame 2 (channel): invalid character (allowed: A-Z a-z 0-9 _ . -)");

    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN", "c", "dead.retry", "{}"), 0);
    cr_assert (hp_str_eq (msg.verb, "dead.retry"));
    const char *bad_verbs[] = { "", "Status", "dead_list", "dead list", "v2" };
    for (size_t i = 0; i < sizeof bad_verbs / sizeof bad_verbs[0]; i++) {
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN", "c", bad_verbs[i], "{}"), -1);
        cr_assert (strncmp (err.text, "frame 3 (verb): ", 16) == 0, "%s", err.text);
    }
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN", "c", s_repeat ('a', 65), "{}"), -1);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN", "c", s_repeat ('a', 64), "{}"), 0);
}

Test (proto, too_many_frames)
{
    hp_msg_t msg;
    hp_error_t err;
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "c", "{}", "{}"), -1);
    cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
    cr_assert_str_eq (err.text, "frame 4: unexpected frame (PUBLISH has 4 frames)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "HEARTBEAT", ""), -1);
    cr_assert_str_eq (err.text, "frame 2: unexpected frame (HEARTBEAT has 2 frames)");
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "DISCONNECT", "x", "y", "z", "w", "v", "u"), -1);
    cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
}

Test (proto, corr_survives_a_broken_request)
{
    hp_msg_t msg;
    hp_error_t err;
    /*  the event frame is missing */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "req-42"), -1);
    cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
    cr_assert_str_eq (err.text, "frame 3 (event-json): missing");
    cr_assert_eq (msg.command, HP_PUBLISH);
    cr_assert (hp_str_eq (msg.corr, "req-42"));
    /*  the event frame is empty, or there is one frame too many */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "req-43", ""), -1);
    cr_assert (hp_str_eq (msg.corr, "req-43"));
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", "req-44", "{}", "extra"), -1);
    cr_assert (hp_str_eq (msg.corr, "req-44"));
    /*  an ADMIN with a bad verb */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "ADMIN", "adm-1", "BAD VERB", "{}"), -1);
    cr_assert_eq (msg.command, HP_ADMIN);
    cr_assert (hp_str_eq (msg.corr, "adm-1"));
    /*  an invalid corr is not reported */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH", s_repeat ('c', 65), "{}"), -1);
    cr_assert_eq (msg.command, HP_PUBLISH);
    cr_assert_null (msg.corr.ptr);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "PUBLISH"), -1);
    cr_assert_eq (msg.command, HP_PUBLISH);
    cr_assert_null (msg.corr.ptr);
    /*  commands without a corr never report one */
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "TASKS", "email"), -1);
    cr_assert_eq (msg.command, HP_TASKS);
    cr_assert_null (msg.corr.ptr);
}

Test (proto, decode_without_error_buffer)
{
    hp_msg_t msg;
    cr_assert_eq (S_DECODE_PARTS (&msg, NULL, "HERALD/2", "PUBLISH"), -1);
    cr_assert_eq (S_DECODE_PARTS (&msg, NULL, "HERALD/2", "HEARTBEAT"), 0);
    cr_assert_eq (msg.command, HP_HEARTBEAT);
}

Test (proto, encoder_refuses_bad_messages)
{
    hp_encoded_t enc;
    hp_msg_t none = { .command = HP_NONE };
    cr_assert_eq (hp_encode (&none, &enc), -1);
    hp_msg_t past = { .command = HP_COMMAND_COUNT };
    cr_assert_eq (hp_encode (&past, &enc), -1);

    hp_msg_t publish = { .command = HP_PUBLISH, .corr = hp_str ("c") };
    cr_assert_eq (hp_encode (&publish, &enc), -1, "missing body");
    publish.body = hp_str ("");
    cr_assert_eq (hp_encode (&publish, &enc), -1, "empty body");
    publish.body = hp_str ("{}");
    cr_assert_eq (hp_encode (&publish, &enc), 0);
    publish.corr = hp_str (s_repeat ('c', 65));
    cr_assert_eq (hp_encode (&publish, &enc), -1, "corr too long");

    hp_msg_t tasks = { .command = HP_TASKS, .channel = hp_str ("email"), .batch = hp_str ("") };
    cr_assert_eq (hp_encode (&tasks, &enc), -1, "an empty batch");
    tasks.batch = hp_str ("t 1 1 2\n{}\n");
    tasks.channel = hp_str ("e mail");
    cr_assert_eq (hp_encode (&tasks, &enc), -1, "bad channel");
    hp_msg_t results = { .command = HP_RESULTS };
    cr_assert_eq (hp_encode (&results, &enc), -1, "no batch");

    hp_msg_t nack = { .command = HP_NACK, .corr = hp_str ("c"), .code = 42, .text = hp_str ("x") };
    cr_assert_eq (hp_encode (&nack, &enc), -1, "code out of range");
    hp_msg_t ready = { .command = HP_READY, .channel = hp_str ("email"), .capacity = 65536,
                       .worker = hp_str ("w") };
    cr_assert_eq (hp_encode (&ready, &enc), -1, "capacity out of range");
}

Test (proto, encoder_truncates_long_text)
{
    hp_encoded_t enc;
    hp_msg_t failed = { .command = HP_NACK, .corr = hp_str ("c"), .code = 503,
                        .text = hp_str (s_repeat ('e', 3000)) };
    cr_assert_eq (hp_encode (&failed, &enc), 0);
    cr_assert_eq (enc.frames[4].size, (size_t) HP_MAX_TEXT);

    /*  a two-octet UTF-8 character straddling the limit is not split */
    char text[HP_MAX_TEXT + 8];
    memset (text, 'a', sizeof text);
    text[HP_MAX_TEXT - 1] = (char) 0xc3;
    text[HP_MAX_TEXT] = (char) 0xa9;
    text[sizeof text - 1] = '\0';
    failed.text = hp_str (text);
    cr_assert_eq (hp_encode (&failed, &enc), 0);
    cr_assert_eq (enc.frames[4].size, (size_t) HP_MAX_TEXT - 1);

    /*  and the result decodes */
    s_owned_t owned = { .count = 0 };
    for (size_t i = 0; i < enc.count; i++)
        s_owned_add (&owned, enc.frames[i].data, enc.frames[i].size);
    hp_msg_t decoded;
    cr_assert_eq (hp_decode (owned.frames, owned.count, &decoded, NULL), 0);
    cr_assert_eq (decoded.text.len, (size_t) HP_MAX_TEXT - 1);
    s_owned_free (&owned);
}

Test (proto, names_and_strings)
{
    cr_assert_str_eq (hp_command_name (HP_PUBLISH), "PUBLISH");
    cr_assert_str_eq (hp_command_name (HP_ADMIN_REPLY), "ADMIN-REPLY");
    cr_assert_str_eq (hp_command_name (HP_RESULTS), "RESULTS");
    cr_assert_str_eq (hp_command_name (HP_NONE), "?");
    cr_assert_str_eq (hp_command_name (HP_COMMAND_COUNT), "?");

    cr_assert_str_eq (hp_code_name (200), "ok");
    cr_assert_str_eq (hp_code_name (400), "bad-request");
    cr_assert_str_eq (hp_code_name (401), "unauthorized");
    cr_assert_str_eq (hp_code_name (404), "not-found");
    cr_assert_str_eq (hp_code_name (413), "too-large");
    cr_assert_str_eq (hp_code_name (422), "invalid-event");
    cr_assert_str_eq (hp_code_name (424), "unknown-type");
    cr_assert_str_eq (hp_code_name (500), "internal");
    cr_assert_str_eq (hp_code_name (503), "busy");
    cr_assert_str_eq (hp_code_name (505), "version");
    cr_assert_str_eq (hp_code_name (507), "storage");
    cr_assert_str_eq (hp_code_name (299), "unknown");

    char buf[8];
    cr_assert_str_eq (hp_str_copy (hp_str ("email"), buf, sizeof buf), "email");
    cr_assert_str_eq (hp_str_copy (hp_str ("courier-long"), buf, sizeof buf), "courier");
    cr_assert_str_eq (hp_str_copy (hp_strn (NULL, 0), buf, sizeof buf), "");
    cr_assert_str_eq (hp_str_copy (hp_strn ("abcdef", 3), buf, sizeof buf), "abc");
    cr_assert_eq (hp_str_copy (hp_str ("x"), buf, 0), buf);

    cr_assert (hp_str_eq (hp_strn ("email-x", 5), "email"));
    cr_assert (!hp_str_eq (hp_strn ("email", 5), "emai"));
    cr_assert (!hp_str_eq (hp_strn ("email", 5), "emails"));
    cr_assert (hp_str_eq (hp_strn (NULL, 0), NULL));
    cr_assert (!hp_str_eq (hp_str ("x"), NULL));
    cr_assert_null (hp_str (NULL).ptr);
    cr_assert_eq (hp_strn (NULL, 5).len, 0u);
}

/*  xorshift64*: a fixed seed makes every run feed the same inputs. */
static uint64_t
s_rand (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#define S_FUZZ_ROUNDS 100000
#define S_FUZZ_MAX_FRAME 2048

typedef struct {
    unsigned char data[S_MAX_TEST_FRAMES][S_FUZZ_MAX_FRAME];
    size_t size[S_MAX_TEST_FRAMES];
    size_t count;
} s_mutable_t;

static void
s_mutate (s_mutable_t *m, uint64_t *rng)
{
    static const char *const tokens[] = {
        "0", "1", "00", "-1", "65535", "65536", "2147483647", "2147483648",
        "9007199254740991", "9007199254740992", "99999999999999999999", "HERALD/2",
        "HERALD/2", "PUBLISH", "ACK", "TASK", "ADMIN-REPLY", "new", "duplicate", "", "{}"
    };
    size_t what = s_rand (rng) % 7;
    size_t f = m->count? s_rand (rng) % m->count: 0;
    switch (what) {
        case 0:     /* flip a byte */
            if (m->count && m->size[f])
                m->data[f][s_rand (rng) % m->size[f]] = (unsigned char) s_rand (rng);
            break;
        case 1:     /* truncate a frame */
            if (m->count)
                m->size[f] = m->size[f]? s_rand (rng) % m->size[f]: 0;
            break;
        case 2:     /* drop a frame */
            if (m->count) {
                for (size_t i = f; i + 1 < m->count; i++) {
                    memcpy (m->data[i], m->data[i + 1], m->size[i + 1]);
                    m->size[i] = m->size[i + 1];
                }
                m->count--;
            }
            break;
        case 3:     /* duplicate a frame */
            if (m->count && m->count < S_MAX_TEST_FRAMES) {
                for (size_t i = m->count; i > f; i--) {
                    memcpy (m->data[i], m->data[i - 1], m->size[i - 1]);
                    m->size[i] = m->size[i - 1];
                }
                m->count++;
            }
            break;
        case 4: {   /* replace a frame with a token */
            const char *token = tokens[s_rand (rng) % (sizeof tokens / sizeof tokens[0])];
            if (m->count) {
                m->size[f] = strlen (token);
                memcpy (m->data[f], token, m->size[f]);
            }
            break;
        }
        case 5: {   /* random bytes, sometimes long */
            if (m->count) {
                size_t len = s_rand (rng) % (s_rand (rng) % 2? 16: S_FUZZ_MAX_FRAME);
                for (size_t i = 0; i < len; i++)
                    m->data[f][i] = (unsigned char) s_rand (rng);
                m->size[f] = len;
            }
            break;
        }
        default:    /* extend a frame with a digit or letter */
            if (m->count && m->size[f] < S_FUZZ_MAX_FRAME)
                m->data[f][m->size[f]++] = "0123456789aZ.-_ "[s_rand (rng) % 16];
            break;
    }
}

Test (proto, fuzz_mutations_never_crash)
{
    hp_msg_t samples[S_SAMPLE_MAX];
    size_t n = s_samples (samples);
    static s_mutable_t m;
    uint64_t rng = 0x4845524Cu;     /* "HERL" */
    size_t accepted = 0, rejected = 0;

    for (size_t round = 0; round < S_FUZZ_ROUNDS; round++) {
        hp_encoded_t enc;
        cr_assert_eq (hp_encode (&samples[s_rand (&rng) % n], &enc), 0);
        m.count = enc.count;
        for (size_t i = 0; i < enc.count; i++) {
            memcpy (m.data[i], enc.frames[i].data, enc.frames[i].size);
            m.size[i] = enc.frames[i].size;
        }
        size_t mutations = 1 + s_rand (&rng) % 3;
        for (size_t k = 0; k < mutations; k++)
            s_mutate (&m, &rng);

        s_owned_t owned = { .count = 0 };
        for (size_t i = 0; i < m.count; i++)
            s_owned_add (&owned, m.data[i], m.size[i]);
        hp_msg_t msg;
        hp_error_t err;
        int rc = hp_decode (owned.frames, owned.count, &msg, &err);
        if (rc == 0) {
            accepted++;
            /*  anything accepted re-encodes to the same frames */
            hp_encoded_t again;
            cr_assert_eq (hp_encode (&msg, &again), 0, "round %zu", round);
            cr_assert_eq (again.count, owned.count, "round %zu", round);
            for (size_t i = 0; i < again.count; i++) {
                cr_assert_eq (again.frames[i].size, owned.frames[i].size, "round %zu", round);
                cr_assert (again.frames[i].size == 0
                           || memcmp (again.frames[i].data, owned.frames[i].data,
                                      again.frames[i].size) == 0, "round %zu", round);
            }
        }
        else {
            rejected++;
            cr_assert_eq (rc, -1);
            cr_assert (err.code == HP_CODE_BAD_REQUEST || err.code == HP_CODE_VERSION,
                       "round %zu: code %d", round, err.code);
            cr_assert (strncmp (err.text, "frame ", 6) == 0, "round %zu: %s", round, err.text);
            cr_assert (memchr (err.text, '\0', sizeof err.text) != NULL);
            for (const char *c = err.text; *c; c++)
                cr_assert (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\',
                           "round %zu: %s", round, err.text);
        }
        s_owned_free (&owned);
    }
    cr_assert_gt (accepted, 100u, "the mutations should leave some messages valid");
    cr_assert_gt (rejected, S_FUZZ_ROUNDS / 2, "most mutations should be rejected");
}

/*  TASKS and RESULTS entries: every field checked, the whole frame refused
    at its first bad entry, and the entries come back as they were put. */
Test (proto, batch_entries)
{
    hp_msg_t msg;
    hp_error_t err;
    /*  task-id SP attempt SP lease SP length LF bytes LF */
    const char *good_tasks = "a.email 1 1 2\n{}\nb.email 2147483647 9223372036854775807 1\nx\n";
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "TASKS", "email", good_tasks), 0, "%s", err.text);
    cr_assert_eq (msg.batch_count, 2u);
    hp_str_t cursor = msg.batch;
    hp_task_t task;
    cr_assert (hp_next_task (&cursor, &task));
    cr_assert (hp_str_eq (task.task_id, "a.email") && task.attempt == 1 && task.lease == 1);
    cr_assert (hp_str_eq (task.body, "{}"));
    cr_assert (hp_next_task (&cursor, &task));
    cr_assert_eq (task.lease, 9223372036854775807ull);
    cr_assert (hp_str_eq (task.body, "x"));
    cr_assert_not (hp_next_task (&cursor, &task));
    const char *bad_tasks[] = {
        "a 1 1 2\n{}",                  /* no final LF */
        "a 1 1 3\n{}\n",               /* length past the end */
        "a 0 1 2\n{}\n",               /* attempt 0 */
        "a 1 0 2\n{}\n",               /* lease 0 */
        "a 1 9223372036854775808 2\n{}\n",
        "a 01 1 2\n{}\n",
        " 1 1 2\n{}\n",                /* empty task id */
        "a\tb 1 1 2\n{}\n",           /* control character in the id */
        "a 1 1 2\n{}\nb 1 1",          /* a cut second entry */
        "a 1 1 2 \n{}\n",
        "a 1 1 0\n\n",                /* an empty event */
    };
    for (size_t i = 0; i < sizeof bad_tasks / sizeof bad_tasks[0]; i++) {
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "TASKS", "email", bad_tasks[i]), -1,
                      "entry %zu accepted", i);
        cr_assert (strncmp (err.text, "frame 3 (tasks): entry ", 23) == 0, "%s", err.text);
    }
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "TASKS", "email", ""), -1);
    cr_assert_str_eq (err.text, "frame 3 (tasks): no entries");
    const char *id = s_repeat ('t', 129);
    char long_id[256];
    snprintf (long_id, sizeof long_id, "%s 1 1 2\n{}\n", id);
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "TASKS", "email", long_id), -1, "id of 129 octets");
    /*  task-id SP lease SP outcome SP delay-ms SP length LF text LF */
    const char *good_results = "a.email 7 done 0 2\nok\nb.email 8 throttled 9007199254740991 0\n\n";
    cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "RESULTS", good_results), 0, "%s", err.text);
    cr_assert_eq (msg.batch_count, 2u);
    cursor = msg.batch;
    hp_result_t result;
    cr_assert (hp_next_result (&cursor, &result));
    cr_assert (result.outcome == HP_OUTCOME_DONE && result.lease == 7 && hp_str_eq (result.text, "ok"));
    cr_assert (hp_next_result (&cursor, &result));
    cr_assert (result.outcome == HP_OUTCOME_THROTTLED && result.delay_ms == 9007199254740991LL);
    const char *bad_results[] = {
        "a 7 DONE 0 0\n\n", "a 7 fine 0 0\n\n", "a 7 done 9007199254740992 0\n\n",
        "a 7 done 0 1025\n", "a 0 done 0 0\n\n", "a 7 done -1 0\n\n",
    };
    for (size_t i = 0; i < sizeof bad_results / sizeof bad_results[0]; i++)
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "RESULTS", bad_results[i]), -1,
                      "result %zu accepted", i);
    /*  Long task ids (a uid and a channel, 40-odd octets) are scanned
        sixteen octets at a time: a control character or DEL anywhere in
        one is refused, a byte from 0x80 is taken as before. */
    const char *long_ids[][2] = {
        { "0123456789abcdef0123456789abcdef.email 7 done 0 0\n\n", "ok" },
        { "0123456789abcdef0123456789abcdef.\xc3\xa9mail 7 done 0 0\n\n", "ok" },
        { "0123456789abcdef0123456789abcdef\x01email 7 done 0 0\n\n", "bad" },
        { "0123456789abcdef0123456789abcdef\x7f" "email 7 done 0 0\n\n", "bad" },
        { "0123456789abcdef0\tdef0123456789abcdef.email 7 done 0 0\n\n", "bad" },
    };
    for (size_t i = 0; i < sizeof long_ids / sizeof long_ids[0]; i++) {
        bool ok = strcmp (long_ids[i][1], "ok") == 0;
        cr_assert_eq (S_DECODE_PARTS (&msg, &err, "HERALD/2", "RESULTS", long_ids[i][0]), ok? 0: -1,
                      "long id %zu: %s", i, err.text);
        if (ok) {
            cursor = msg.batch;
            cr_assert (hp_next_result (&cursor, &result));
            cr_assert_eq (result.task_id.len, (size_t) (strchr (long_ids[i][0], ' ') - long_ids[i][0]));
        }
    }
    /*  a text up to HP_MAX_TEXT octets; hp_result_put cuts a longer one */
    static char frame[4096];
    hp_result_t big = { hp_str ("a"), 1, HP_OUTCOME_FAILED, 0, hp_str (s_repeat ('e', 3000)) };
    cr_assert_lt (hp_result_size (&big), sizeof frame);
    size_t len = hp_result_put (frame, &big);
    cr_assert_eq (len, hp_result_size (&big));
    hp_frame_t frames[3] = { { "HERALD/2", 8 }, { "RESULTS", 7 }, { frame, len } };
    cr_assert_eq (hp_decode (frames, 3, &msg, &err), 0, "%s", err.text);
    cursor = msg.batch;
    cr_assert (hp_next_result (&cursor, &result));
    cr_assert_eq (result.text.len, (size_t) HP_MAX_TEXT);
    /*  at most HP_MAX_BATCH entries */
    static char many[(HP_MAX_BATCH + 1) * 16];
    size_t n = 0;
    for (int i = 0; i <= HP_MAX_BATCH; i++)
        n += (size_t) snprintf (many + n, sizeof many - n, "t 1 done 0 0\n\n");
    hp_frame_t too_many[3] = { { "HERALD/2", 8 }, { "RESULTS", 7 }, { many, n } };
    cr_assert_eq (hp_decode (too_many, 3, &msg, &err), -1);
    cr_assert (strstr (err.text, "more than 1024 entries"), "%s", err.text);
}
