/*  Unit tests: broker/core — the broker's rules, driven message by message
    through a table of functions that records what the core asks for (no
    sockets, no files, no threads): no ACK before the journal is durable,
    tasks only from durability, fencing by lease, poison isolation, outcome
    flushing, batch limits, back-pressure, shutdown, journal failure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "broker_fixture.h"
#include "core.h"
#include "herald_clock.h"
#include "record.h"

#define S_MAX_REPLIES   4096
#define S_MAX_TASKS     8192
#define S_MAX_RECORDS   8192

typedef struct {
    hp_command_t command;
    char corr[HP_MAX_CORR + 1];
    int code;
    bool duplicate;
    char text[HP_MAX_TEXT + 1];
    char event_id[HP_MAX_ID + 1];
    uint64_t accepted;              /* core_events_accepted as it was sent */
} s_reply_t;

typedef struct {
    char worker[32];
    char id[HP_MAX_ID + 1];
    uint32_t attempt;
    uint64_t lease;
    size_t message;                 /* which TASKS message carried it */
} s_task_t;

typedef struct {
    record_type_t type;
    record_outcome_kind_t kind;     /* outcomes */
    uint64_t seq;
    int ch;
    uint32_t attempts;
    char outcome[32];
    char dedup_key[600];            /* events */
} s_record_t;

static struct {
    herald_config_t config;
    core_t *core;
    int64_t t0;
    /* what the core asked for */
    s_reply_t replies[S_MAX_REPLIES];
    size_t reply_count;
    s_task_t tasks[S_MAX_TASKS];
    size_t task_count;
    size_t tasks_messages;
    size_t largest_frame;
    size_t heartbeats, disconnects;
    s_record_t records[S_MAX_RECORDS];
    size_t record_count;
    uint64_t end;                   /* journal end */
    journal_status_t refuse;        /* JOURNAL_OK: appends succeed */
    index_msg_t *queries;           /* posted, not answered yet */
    int next_corr;
} s;

/*  ---------------------------------------------------------------- fake io */

static void
s_reply (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    (void) ctx, (void) identity, (void) identity_len;
    cr_assert_lt (s.reply_count, S_MAX_REPLIES);
    s_reply_t *r = &s.replies[s.reply_count++];
    r->command = msg->command;
    hp_str_copy (msg->corr, r->corr, sizeof r->corr);
    r->code = msg->code;
    r->duplicate = msg->duplicate;
    hp_str_copy (msg->text, r->text, sizeof r->text);
    hp_str_copy (msg->event_id, r->event_id, sizeof r->event_id);
    r->accepted = s.core? core_events_accepted (s.core): 0;
}

static int
s_to_worker (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    (void) ctx;
    char worker[32];
    snprintf (worker, sizeof worker, "%.*s", (int) identity_len, (const char *) identity);
    if (msg->command == HP_HEARTBEAT) {
        s.heartbeats++;
        return 0;
    }
    if (msg->command == HP_DISCONNECT) {
        s.disconnects++;
        return 0;
    }
    cr_assert_eq (msg->command, HP_TASKS, "the core sends a worker TASKS, HEARTBEAT or DISCONNECT");
    /*  What the core sends must decode as the worker will decode it. */
    hp_encoded_t encoded;
    cr_assert_eq (hp_encode (msg, &encoded), 0);
    hp_msg_t decoded;
    hp_error_t err;
    cr_assert_eq (hp_decode (encoded.frames, encoded.count, &decoded, &err), 0, "%s", err.text);
    if (msg->batch.len > s.largest_frame)
        s.largest_frame = msg->batch.len;
    s.tasks_messages++;
    hp_str_t cursor = decoded.batch;
    hp_task_t entry;
    while (hp_next_task (&cursor, &entry)) {
        cr_assert_lt (s.task_count, S_MAX_TASKS);
        s_task_t *t = &s.tasks[s.task_count++];
        snprintf (t->worker, sizeof t->worker, "%s", worker);
        hp_str_copy (entry.task_id, t->id, sizeof t->id);
        t->attempt = entry.attempt;
        t->lease = entry.lease;
        t->message = s.tasks_messages;
    }
    return 0;
}

static uint64_t
s_append (void *ctx, const void *payload, uint32_t len)
{
    (void) ctx;
    if (s.refuse != JOURNAL_OK)
        return 0;
    record_t rec;
    char err[256];
    cr_assert_eq (record_decode (payload, len, &rec, err, sizeof err), 0, "%s", err);
    cr_assert_lt (s.record_count, S_MAX_RECORDS);
    s_record_t *r = &s.records[s.record_count++];
    r->type = rec.type;
    if (rec.type == RECORD_OUTCOME) {
        r->kind = rec.u.outcome.kind;
        r->seq = rec.u.outcome.seq;
        r->ch = rec.u.outcome.ch;
        r->attempts = rec.u.outcome.attempts;
        snprintf (r->outcome, sizeof r->outcome, "%.*s", (int) rec.u.outcome.outcome.len,
                  rec.u.outcome.outcome.ptr);
    }
    if (rec.type == RECORD_EVENT) {
        r->seq = rec.u.event.seq;
        snprintf (r->dedup_key, sizeof r->dedup_key, "%.*s", (int) rec.u.event.dedup_key.len,
                  rec.u.event.dedup_key.ptr);
    }
    s.end += 32 + len;
    return s.end;
}

static journal_status_t
s_append_status (void *ctx)
{
    (void) ctx;
    return s.refuse;
}

static void
s_query (void *ctx, index_msg_t *msg)
{
    (void) ctx;
    msg->next = s.queries;
    s.queries = msg;
}

static void
s_status (void *ctx, json_t *broker)
{
    (void) ctx, (void) broker;
}

static const core_io_t s_io = {
    .reply = s_reply, .to_worker = s_to_worker, .admin_reply = s_reply, .append = s_append,
    .append_status = s_append_status, .query = s_query, .status = s_status,
};

/*  ---------------------------------------------------------------- helpers */

static void
s_start (uint64_t boots)
{
    core_start_t start = { .next_seq = 1, .boots = boots };
    s.core = core_new (&s.config, &s_io, &start);
    cr_assert_not_null (s.core);
    core_started (s.core, s.t0);
}

static void
s_setup (void)
{
    memset (&s, 0, sizeof s);
    fixture_config (&s.config);
    s.config.broker.max_event_bytes = 65536;
    s.t0 = herald_clock_mono_ms ();
    s.end = 4096;
}

static void
s_teardown (void)
{
    while (s.queries) {
        index_msg_t *next = s.queries->next;
        index_msg_destroy (&s.queries);
        s.queries = next;
    }
    core_destroy (&s.core);
}

TestSuite (core, .init = s_setup, .fini = s_teardown, .timeout = 30);

/*  A valid order; pad makes the envelope bigger. */
static void
s_publish_sized (int order_id, size_t pad)
{
    static char body[70000];
    static char padding[66000];
    cr_assert_lt (pad, sizeof padding);
    memset (padding, 'x', pad);
    padding[pad] = '\0';
    snprintf (body, sizeof body,
              "{\"specversion\":\"1.0\",\"id\":\"ev-%d\",\"source\":\"test\",\"type\":\"order.confirmed\","
              "\"data\":{\"order_id\":%d,\"customer\":{\"email\":\"a@example.com\"},\"items\":[1],"
              "\"note\":\"%s\"}}", order_id, order_id, padding);
    char corr[32];
    snprintf (corr, sizeof corr, "c%d", ++s.next_corr);
    hp_msg_t msg = { .command = HP_PUBLISH, .version = HP_VERSION, .corr = hp_str (corr),
                     .body = hp_str (body) };
    core_publish (s.core, "producer", 8, &msg, s.t0);
}

static void
s_publish (int order_id)
{
    s_publish_sized (order_id, 0);
}

/*  Publishes orders 1..n and makes them durable. */
static void
s_publish_durable (int n)
{
    for (int i = 0; i < n; i++)
        s_publish (i + 1);
    core_durable (s.core, s.end, s.t0);
}

static void
s_ready (const char *worker, const char *channel, uint32_t capacity, uint32_t max_batch, int64_t now)
{
    hp_msg_t msg = { .command = HP_READY, .channel = hp_str (channel), .capacity = capacity,
                     .worker = hp_str (worker), .max_batch = max_batch };
    core_worker (s.core, worker, strlen (worker), &msg, now);
}

static void
s_result (const char *worker, const s_task_t *task, uint64_t lease, hp_outcome_t outcome, int64_t now)
{
    hp_result_t entry = { .task_id = hp_str (task->id), .lease = lease, .outcome = outcome,
                          .text = hp_str (outcome == HP_OUTCOME_DONE? "ok": "try later") };
    char frame[512];
    cr_assert_lt (hp_result_size (&entry), sizeof frame);
    size_t len = hp_result_put (frame, &entry);
    hp_msg_t msg = { .command = HP_RESULTS, .batch = hp_strn (frame, len), .batch_count = 1 };
    core_worker (s.core, worker, strlen (worker), &msg, now);
}

static size_t
s_records (record_type_t type, record_outcome_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < s.record_count; i++)
        if (s.records[i].type == type && (type != RECORD_OUTCOME || s.records[i].kind == kind))
            n++;
    return n;
}

static size_t
s_replies (hp_command_t command)
{
    size_t n = 0;
    for (size_t i = 0; i < s.reply_count; i++)
        n += s.replies[i].command == command;
    return n;
}

/*  ---------------------------------------------------------------- tests */

Test (core, no_ack_and_no_task_before_the_record_is_durable)
{
    s_start (1);
    s_ready ("w-email", "email", 4, 4, s.t0);
    s_publish (1);
    cr_assert_eq (s_records (RECORD_EVENT, 0), 1u, "the event's record is appended at once");
    cr_assert (core_flush_due (s.core, s.t0, false), "an event asks for the disk at once");
    uint64_t lsn = s.end;
    core_tick (s.core, s.t0 + 1);
    cr_assert_eq (s.reply_count, 0u, "no answer before durability");
    cr_assert_eq (s.task_count, 0u, "no task before durability");
    core_durable (s.core, lsn - 1, s.t0 + 2);
    cr_assert_eq (s.reply_count, 0u, "durable up to just before the record: still no answer");
    core_durable (s.core, lsn, s.t0 + 3);
    cr_assert_eq (s.reply_count, 1u);
    cr_assert_eq (s.replies[0].command, HP_ACK);
    cr_assert_str_eq (s.replies[0].corr, "c1");
    cr_assert_str_eq (s.replies[0].event_id, "ev-1");
    cr_assert_not (s.replies[0].duplicate);
    core_tick (s.core, s.t0 + 4);
    cr_assert_eq (s.task_count, 1u, "the email task goes out once the event is durable");
    cr_assert_str_eq (s.tasks[0].worker, "w-email");
    cr_assert_eq (s.tasks[0].attempt, 1u);
}

/*  Records are encoded straight into the core's buffer, which grows when
    one does not fit: a small event, one of 60 KB, a small one again; each
    appended record decodes (s_append checks), and each is acknowledged. */
Test (core, records_of_any_size_are_appended_whole)
{
    s_start (1);
    s_publish (1);
    s_publish_sized (2, 60000);
    s_publish (3);
    s_publish_sized (4, 30000);
    cr_assert_eq (s_records (RECORD_EVENT, 0), 4u);
    core_durable (s.core, s.end, s.t0 + 1);
    cr_assert_eq (s_replies (HP_ACK), 4u);
}

Test (core, acks_leave_in_journal_order_as_durability_advances)
{
    s_start (1);
    uint64_t lsns[5];
    for (int i = 0; i < 5; i++) {
        s_publish (10 + i);
        lsns[i] = s.end;
    }
    core_durable (s.core, lsns[2], s.t0);
    cr_assert_eq (s.reply_count, 3u, "the three durable events are ACKed, not the others");
    for (int i = 0; i < 3; i++)
        cr_assert_eq (s.replies[i].command, HP_ACK);
    cr_assert_str_eq (s.replies[2].corr, "c3");
    core_durable (s.core, lsns[4], s.t0);
    cr_assert_eq (s.reply_count, 5u);
}

/*  A batch made durable at once: every ACK leaves before the tasks of the
    events they answer are made (each event counts as accepted once its
    tasks are), so the last ACK of a big batch does not wait for them. */
Test (core, a_batch_is_acked_whole_before_its_tasks_are_made)
{
    s_start (1);
    for (int i = 0; i < 5; i++)
        s_publish (20 + i);
    uint64_t before = core_events_accepted (s.core);
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s_replies (HP_ACK), 5u);
    for (int i = 0; i < 5; i++)
        cr_assert_eq (s.replies[i].accepted, before, "ACK %d left after %llu events' tasks were made", i,
                      (unsigned long long) (s.replies[i].accepted - before));
    cr_assert_eq (core_events_accepted (s.core), before + 5, "then every event's tasks are made");
    core_channel_counts_t counts;
    core_counts (s.core, 0, &counts);
    cr_assert_eq (counts.ready, 5u, "five tasks wait for the first channel's workers");
}

static index_msg_t *
s_take_query (index_kind_t kind)
{
    index_msg_t *q = s.queries;
    cr_assert_not_null (q, "the core asked the index");
    s.queries = q->next;
    q->next = NULL;
    cr_assert_eq (q->kind, kind);
    return q;
}

Test (core, duplicate_is_acked_with_the_stored_event_and_creates_nothing)
{
    s_start (1);
    s_publish (7);
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s_records (RECORD_EVENT, 0), 1u);
    s_publish (7);                          /* the same order_id: the same key */
    cr_assert_eq (s_records (RECORD_EVENT, 0), 1u, "a duplicate appends no event");
    cr_assert_eq (s.reply_count, 1u, "and is not answered before the index names the event");
    index_msg_t *q = s_take_query (INDEX_EVENT_ID);
    cr_assert_eq (q->number, s.records[0].seq, "the index is asked for the event holding the key");
    q->code = HP_CODE_OK;
    snprintf (q->event_id, sizeof q->event_id, "ev-7");
    q->dedup_key = strdup (s.records[0].dedup_key);
    core_index (s.core, q, s.t0);
    cr_assert_eq (s.reply_count, 2u);
    cr_assert_eq (s.replies[1].command, HP_ACK);
    cr_assert (s.replies[1].duplicate);
    cr_assert_str_eq (s.replies[1].event_id, "ev-7");
    cr_assert_str_eq (s.replies[1].corr, "c2");
    core_tick (s.core, s.t0);
    cr_assert_eq (s_records (RECORD_EVENT, 0), 1u, "still one event");
}

Test (core, a_key_whose_event_was_pruned_meanwhile_is_new_again)
{
    s_start (1);
    s_publish (8);
    core_durable (s.core, s.end, s.t0);
    s_publish (8);
    index_msg_t *q = s_take_query (INDEX_EVENT_ID);
    q->code = HP_CODE_NOT_FOUND;
    core_index (s.core, q, s.t0);
    cr_assert_eq (s_records (RECORD_EVENT, 0), 2u, "stored as a new event");
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.reply_count, 2u);
    cr_assert_eq (s.replies[1].command, HP_ACK);
    cr_assert_not (s.replies[1].duplicate);
}

Test (core, results_count_only_with_the_current_lease)
{
    s_start (5);
    s_ready ("w1", "email", 4, 4, s.t0);
    s_publish (1);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.task_count, 1u);
    s_task_t task = s.tasks[0];
    cr_assert_gt (task.lease, 5ull << 32, "lease ids start above every id of earlier runs");
    size_t before = s.record_count;
    s_result ("w1", &task, task.lease + 1, HP_OUTCOME_DONE, s.t0 + 1);
    s_result ("w1", &task, task.lease - 1, HP_OUTCOME_FAILED, s.t0 + 1);
    s_result ("w2", &task, task.lease, HP_OUTCOME_DONE, s.t0 + 1);     /* not its worker */
    s_task_t other = task;
    snprintf (other.id, sizeof other.id, "0000000000000000ffffffffffffffff.email");
    s_result ("w1", &other, task.lease, HP_OUTCOME_DONE, s.t0 + 1);    /* its lease, another id */
    cr_assert_eq (s.record_count, before, "answers with another lease, worker or id record nothing");
    core_channel_counts_t counts;
    core_counts (s.core, 0, &counts);
    cr_assert_eq (counts.in_flight, 1u, "the task is still leased");
    s_result ("w1", &task, task.lease, HP_OUTCOME_DONE, s.t0 + 2);
    cr_assert_eq (s_records (RECORD_OUTCOME, RECORD_DONE), 1u, "its own lease completes it");
    s_result ("w1", &task, task.lease, HP_OUTCOME_FAILED, s.t0 + 3);
    cr_assert_eq (s.record_count, before + 1, "a second answer under the same lease is ignored");
    core_counts (s.core, 0, &counts);
    cr_assert_eq (counts.done, 1);
    cr_assert_eq (counts.in_flight, 0u);
}

Test (core, a_retry_gets_a_new_larger_lease_and_the_old_one_is_fenced)
{
    s.config.channels[0].backoff_min_ms = 10;
    s.config.channels[0].backoff_max_ms = 10;
    s_start (1);
    s_ready ("w1", "email", 4, 4, s.t0);
    s_publish (1);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    s_task_t first = s.tasks[0];
    s_result ("w1", &first, first.lease, HP_OUTCOME_RETRY, s.t0 + 1);
    cr_assert_eq (s_records (RECORD_OUTCOME, RECORD_RESCHEDULE), 1u, "the retry is recorded");
    core_tick (s.core, s.t0 + 50);
    cr_assert_eq (s.task_count, 2u, "delivered again after the backoff");
    s_task_t second = s.tasks[1];
    cr_assert_str_eq (second.id, first.id, "the same task id (the idempotency key)");
    cr_assert_eq (second.attempt, 2u);
    cr_assert_gt (second.lease, first.lease);
    s_result ("w1", &first, first.lease, HP_OUTCOME_DONE, s.t0 + 51);
    cr_assert_eq (s_records (RECORD_OUTCOME, RECORD_DONE), 0u, "the first lease's late answer is fenced");
    s_result ("w1", &second, second.lease, HP_OUTCOME_DONE, s.t0 + 52);
    cr_assert_eq (s_records (RECORD_OUTCOME, RECORD_DONE), 1u);
}

Test (core, throttled_answers_do_not_spend_the_attempt_budget)
{
    s.config.channels[0].max_attempts = 2;
    s.config.channels[0].max_throttled = 100;
    s.config.channels[0].backoff_min_ms = 1;
    s.config.channels[0].backoff_max_ms = 1;
    s_start (1);
    s_ready ("w1", "email", 1, 1, s.t0);
    s_publish (1);
    core_durable (s.core, s.end, s.t0);
    int64_t now = s.t0;
    for (int i = 0; i < 10; i++) {
        core_tick (s.core, now += 5);
        cr_assert_eq (s.task_count, (size_t) i + 1, "throttle %d: delivered again", i);
        s_task_t t = s.tasks[i];
        s_result ("w1", &t, t.lease, HP_OUTCOME_THROTTLED, now);
    }
    cr_assert_eq (s_records (RECORD_OUTCOME, RECORD_DEAD), 0u, "10 throttles with max_attempts 2: not dead");
    core_tick (s.core, now += 5);
    s_task_t t = s.tasks[s.task_count - 1];
    s_result ("w1", &t, t.lease, HP_OUTCOME_RETRY, now);
    core_tick (s.core, now += 5);
    t = s.tasks[s.task_count - 1];
    s_result ("w1", &t, t.lease, HP_OUTCOME_RETRY, now);
    cr_assert_eq (s_records (RECORD_OUTCOME, RECORD_DEAD), 1u, "two real failures: dead");
}

Test (core, a_lost_worker_charges_nothing_and_its_tasks_go_out_alone)
{
    s.config.channels[0].lease_ms = 60000;
    s_start (1);
    s_ready ("w1", "email", 4, 4, s.t0);
    for (int i = 0; i < 3; i++)
        s_publish (i + 1);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.task_count, 3u);
    cr_assert_eq (s.tasks_messages, 1u, "three tasks in one TASKS message");
    /*  w1 goes silent; w2 keeps beating. */
    int64_t now = s.t0;
    int64_t silence = s.config.broker.heartbeat_ms * s.config.broker.heartbeat_liveness;
    s_ready ("w2", "email", 4, 4, now);
    size_t sent_before = s.task_count;
    while (now < s.t0 + silence + 2 * s.config.broker.heartbeat_ms) {
        now += 100;
        hp_msg_t beat = { .command = HP_HEARTBEAT };
        core_worker (s.core, "w2", 2, &beat, now);
        core_tick (s.core, now);
    }
    cr_assert_gt (s.task_count, sent_before, "w1's tasks go to w2");
    /*  Each suspect task goes alone: w2 holds at most one of them at once. */
    cr_assert_eq (s.task_count, sent_before + 1, "one suspect task at a time (got %zu)",
                  s.task_count - sent_before);
    s_task_t t = s.tasks[s.task_count - 1];
    cr_assert_eq (t.attempt, 1u, "a lost worker's task is not charged an attempt");
    for (int round = 0; round < 2; round++) {
        s_result ("w2", &t, t.lease, HP_OUTCOME_DONE, now);
        core_tick (s.core, now += 1);
        cr_assert_eq (s.task_count, sent_before + 2 + (size_t) round, "the next suspect task, alone");
        t = s.tasks[s.task_count - 1];
        cr_assert_eq (t.attempt, 1u);
    }
}

Test (core, outcomes_alone_wait_a_little_for_company)
{
    s_start (1);
    s_ready ("w1", "email", 4, 4, s.t0);
    s_publish (1);
    cr_assert (core_flush_due (s.core, s.t0, false));
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    s_task_t t = s.tasks[0];
    int64_t now = herald_clock_mono_ms ();
    s_result ("w1", &t, t.lease, HP_OUTCOME_DONE, now);
    cr_assert_not (core_flush_due (s.core, now, false), "an outcome alone does not sync at once");
    cr_assert (core_flush_due (s.core, now + 25, false), "but within 20 ms");
    cr_assert_not (core_flush_due (s.core, now + 26, false), "once");
}

Test (core, tasks_frames_stay_within_what_a_worker_accepts)
{
    s.config.broker.max_event_bytes = 16384;
    s.config.channels[0].capacity = 200;
    s_start (1);
    for (int i = 0; i < 100; i++)
        s_publish_sized (i + 1, 12000);
    core_durable (s.core, s.end, s.t0);
    s_ready ("w1", "email", 200, 200, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.task_count, 100u);
    cr_assert_gt (s.tasks_messages, 1u, "100 tasks of 12 KB do not go in one frame");
    cr_assert_leq (s.largest_frame, (size_t) s.config.broker.max_event_bytes + HP_BATCH_OVERHEAD,
                   "largest TASKS frame %zu", s.largest_frame);
}

Test (core, max_batch_and_capacity_bound_each_message)
{
    s.config.channels[0].capacity = 8;
    s_start (1);
    s_publish_durable (20);
    s_ready ("w1", "email", 65535, 3, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.task_count, 8u, "capacity 65535 announced, 8 configured: 8 leased");
    for (size_t m = 1; m <= s.tasks_messages; m++) {
        size_t n = 0;
        for (size_t i = 0; i < s.task_count; i++)
            n += s.tasks[i].message == m;
        cr_assert_leq (n, 3u, "max_batch 3: message %zu had %zu", m, n);
    }
}

Test (core, prefetch_raises_the_credit_and_a_released_task_spends_no_attempt)
{
    s.config.channels[0].capacity = 2;
    s.config.channels[0].prefetch = 3;
    s_start (1);
    s_publish_durable (5);
    s_ready ("w1", "email", 65535, 1024, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.task_count, 5u, "capacity 2 + prefetch 3 leased to one worker");
    s_ready ("w2", "email", 5, 5, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.task_count, 5u, "nothing left for w2");
    s_task_t released = s.tasks[4];
    size_t records = s.record_count;
    s_result ("w1", &released, released.lease, HP_OUTCOME_RELEASED, s.t0 + 1);
    cr_assert_eq (s.record_count, records, "a release records nothing: the task was never tried");
    {
        core_channel_counts_t counts;
        core_counts (s.core, 0, &counts);
        cr_assert_eq (counts.in_flight, 4u, "back in the queue");
    }
    core_tick (s.core, s.t0 + 2);
    cr_assert_eq (s.task_count, 6u, "delivered again at once");
    s_task_t again = s.tasks[5];
    cr_assert_str_eq (again.id, released.id);
    cr_assert_str_eq (again.worker, "w2", "to another worker with room, not the one that gave it back");
    cr_assert_eq (again.attempt, released.attempt, "no attempt spent");
    cr_assert_gt (again.lease, released.lease, "under a new lease");
    s_result ("w1", &released, released.lease, HP_OUTCOME_DONE, s.t0 + 3);
    cr_assert_eq (s.record_count, records, "the old lease is fenced");
}

Test (core, producers_feel_backpressure_beyond_two_batches)
{
    s.config.broker.batch_max = 4;
    s_start (1);
    for (int i = 0; i < 7; i++) {
        cr_assert (core_accepting (s.core), "publish %d accepted", i);
        s_publish (i + 1);
    }
    s_publish (8);
    cr_assert_not (core_accepting (s.core), "8 publishes wait for the disk: stop reading");
    core_durable (s.core, s.end, s.t0);
    cr_assert (core_accepting (s.core), "durable: reading again");
    cr_assert_eq (s_replies (HP_ACK), 8u);
}

Test (core, a_full_journal_nacks_without_losing_anything_acked)
{
    s_start (1);
    s_publish (1);
    core_durable (s.core, s.end, s.t0);
    s.refuse = JOURNAL_FULL;
    s_publish (2);
    cr_assert_eq (s.reply_count, 2u);
    cr_assert_eq (s.replies[1].command, HP_NACK);
    cr_assert_eq (s.replies[1].code, HP_CODE_STORAGE, "disk full: 507");
    s.refuse = JOURNAL_BUSY;
    s_publish (3);
    cr_assert_eq (s.replies[2].code, HP_CODE_BUSY, "journal busy: 503");
    s.refuse = JOURNAL_OK;
    s_publish (2);
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.replies[3].command, HP_ACK, "room again: the refused event is taken (not a duplicate)");
    cr_assert_not (s.replies[3].duplicate);
}

Test (core, a_failed_journal_answers_every_waiting_publish)
{
    s_start (1);
    for (int i = 0; i < 3; i++)
        s_publish (i + 1);
    core_journal_failed (s.core, "fdatasync failed: Input/output error");
    cr_assert_eq (s.reply_count, 3u);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq (s.replies[i].command, HP_NACK);
        cr_assert_eq (s.replies[i].code, HP_CODE_STORAGE);
    }
}

Test (core, stop_refuses_new_events_and_waits_for_deliveries_in_flight)
{
    s.config.broker.shutdown_timeout_ms = 5000;
    s_start (1);
    s_ready ("w1", "email", 4, 4, s.t0);
    s_publish (1);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.task_count, 1u);
    core_stop (s.core, s.t0 + 10);
    s_publish (2);
    cr_assert_eq (s.replies[s.reply_count - 1].command, HP_NACK);
    cr_assert_eq (s.replies[s.reply_count - 1].code, HP_CODE_BUSY, "stopping: 503");
    cr_assert_not (core_accepting (s.core));
    cr_assert_not (core_stopped (s.core, s.t0 + 20), "a delivery is in flight");
    s_task_t t = s.tasks[0];
    s_result ("w1", &t, t.lease, HP_OUTCOME_DONE, s.t0 + 30);
    cr_assert (core_stopped (s.core, s.t0 + 31), "drained: the loop may end");
    cr_assert_eq (s_records (RECORD_OUTCOME, RECORD_DONE), 1u, "the last outcome is recorded");
}

Test (core, stop_gives_up_at_its_deadline)
{
    s.config.broker.shutdown_timeout_ms = 1000;
    s_start (1);
    s_ready ("w1", "email", 4, 4, s.t0);
    s_publish (1);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    core_stop (s.core, s.t0);
    cr_assert_not (core_stopped (s.core, s.t0 + 999));
    cr_assert (core_stopped (s.core, s.t0 + 1000), "shutdown_timeout: the rest is redelivered after");
}

Test (core, workers_of_unknown_channels_and_past_max_workers_get_nothing)
{
    s.config.channels[0].max_workers = 2;
    s_start (1);
    s_ready ("w1", "email", 4, 4, s.t0);
    s_ready ("w2", "email", 4, 4, s.t0);
    s_ready ("w3", "email", 4, 4, s.t0);
    s_ready ("wx", "no-such-channel", 4, 4, s.t0);
    core_channel_counts_t counts;
    core_counts (s.core, 0, &counts);
    cr_assert_eq (counts.workers, 2, "max_workers 2");
    for (int i = 0; i < 12; i++)
        s_publish (i + 1);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    for (size_t i = 0; i < s.task_count; i++)
        cr_assert (strcmp (s.tasks[i].worker, "w1") == 0 || strcmp (s.tasks[i].worker, "w2") == 0,
                   "task %zu went to %s", i, s.tasks[i].worker);
    cr_assert_eq (s.task_count, 8u, "2 workers x capacity 4");
}
