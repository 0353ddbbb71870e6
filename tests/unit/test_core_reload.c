/*  Unit tests: the core after a reload rewrote its configuration between
    two turns (core_config_changed). An event staged before the reload
    gets exactly the tasks its journal record lists, whatever the new
    fan-out; a duplicate waiting for the index whose type was removed is
    refused, one whose type moved keeps it; a lower capacity holds
    registered workers to it; a new rate and attempt budget apply to the
    next deliveries; a shorter heartbeat is not left waiting behind the
    old one. The fake io records what the core asks for (as test_core.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "broker_fixture.h"
#include "core.h"
#include "herald_clock.h"
#include "record.h"

#define S_MAX   4096

typedef struct {
    char worker[32];
    char id[HP_MAX_ID + 1];
    uint64_t lease;
} s_task_t;

static struct {
    herald_config_t config;
    core_t *core;
    int64_t t0;
    hp_command_t replies[S_MAX];
    int codes[S_MAX];
    size_t reply_count;
    s_task_t tasks[S_MAX];
    size_t task_count;
    size_t heartbeats;
    int event_channels[S_MAX];      /* per event record: its fan-out count */
    size_t event_count;
    size_t dead;                    /* RECORD_DEAD outcomes */
    uint64_t end;
    index_msg_t *queries;
    int next_corr;
    int event_map[HERALD_MAX_EVENT_TYPES];
} s;

static void
s_reply (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    (void) ctx, (void) identity, (void) identity_len;
    cr_assert_lt (s.reply_count, S_MAX);
    s.codes[s.reply_count] = msg->code;
    s.replies[s.reply_count++] = msg->command;
}

static int
s_to_worker (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    (void) ctx;
    if (msg->command == HP_HEARTBEAT) {
        s.heartbeats++;
        return 0;
    }
    if (msg->command != HP_TASKS)
        return 0;
    hp_str_t cursor = msg->batch;
    hp_task_t entry;
    while (hp_next_task (&cursor, &entry)) {
        cr_assert_lt (s.task_count, S_MAX);
        s_task_t *t = &s.tasks[s.task_count++];
        snprintf (t->worker, sizeof t->worker, "%.*s", (int) identity_len, (const char *) identity);
        hp_str_copy (entry.task_id, t->id, sizeof t->id);
        t->lease = entry.lease;
    }
    return 0;
}

static uint64_t
s_append (void *ctx, const void *payload, uint32_t len)
{
    (void) ctx;
    record_t rec;
    char err[256];
    cr_assert_eq (record_decode (payload, len, &rec, err, sizeof err), 0, "%s", err);
    if (rec.type == RECORD_EVENT)
        s.event_channels[s.event_count++] = rec.u.event.fanout;
    if (rec.type == RECORD_OUTCOME && rec.u.outcome.kind == RECORD_DEAD)
        s.dead++;
    s.end += 32 + len;
    return s.end;
}

static journal_status_t
s_append_status (void *ctx)
{
    (void) ctx;
    return JOURNAL_OK;
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

static void
s_setup (void)
{
    memset (&s, 0, sizeof s);
    fixture_config (&s.config);
    s.config.broker.max_event_bytes = 65536;
    s.t0 = herald_clock_mono_ms ();
    s.end = 4096;
    for (int i = 0; i < HERALD_MAX_EVENT_TYPES; i++)
        s.event_map[i] = i;
    core_start_t start = { .next_seq = 1, .boots = 1 };
    s.core = core_new (&s.config, &s_io, &start);
    cr_assert_not_null (s.core);
    core_started (s.core, s.t0);
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

TestSuite (core_reload, .init = s_setup, .fini = s_teardown, .timeout = 30);

static void
s_publish_type (int order_id, const char *type)
{
    char body[512], corr[32];
    snprintf (body, sizeof body,
              "{\"specversion\":\"1.0\",\"id\":\"ev-%d\",\"source\":\"test\",\"type\":\"%s\","
              "\"data\":{\"order_id\":%d,\"customer\":{\"email\":\"a@example.com\"},\"items\":[1]}}",
              order_id, type, order_id);
    snprintf (corr, sizeof corr, "c%d", ++s.next_corr);
    hp_msg_t msg = { .command = HP_PUBLISH, .version = HP_VERSION, .corr = hp_str (corr), .body = hp_str (body) };
    core_publish (s.core, "producer", 8, &msg, s.t0);
}

static void
s_publish (int order_id)
{
    s_publish_type (order_id, "order.confirmed");
}

static void
s_ready (const char *worker, const char *channel, uint32_t capacity, int64_t now)
{
    hp_msg_t msg = { .command = HP_READY, .channel = hp_str (channel), .capacity = capacity,
                     .worker = hp_str (worker), .max_batch = capacity };
    core_worker (s.core, worker, strlen (worker), &msg, now);
}

static void
s_answer (const s_task_t *task, hp_outcome_t outcome, int64_t now)
{
    hp_result_t entry = { .task_id = hp_str (task->id), .lease = task->lease, .outcome = outcome,
                          .text = hp_str (outcome == HP_OUTCOME_DONE? "ok": "try later") };
    char frame[512];
    size_t len = hp_result_put (frame, &entry);
    hp_msg_t msg = { .command = HP_RESULTS, .batch = hp_strn (frame, len), .batch_count = 1 };
    core_worker (s.core, task->worker, strlen (task->worker), &msg, now);
}

static size_t
s_tasks_of (const char *channel)
{
    size_t n = 0;
    char suffix[HERALD_NAME_MAX + 1];
    snprintf (suffix, sizeof suffix, ".%s", channel);
    for (size_t i = 0; i < s.task_count; i++) {
        size_t len = strlen (s.tasks[i].id);
        n += len > strlen (suffix) && strcmp (s.tasks[i].id + len - strlen (suffix), suffix) == 0;
    }
    return n;
}

/*  What a reload does to the configuration the core borrowed: rewrite it
    in place between two turns, then tell the core. */
static void
s_reloaded (int64_t now)
{
    core_config_changed (s.core, s.event_map, now);
}

Test (core_reload, an_event_staged_before_a_new_fanout_gets_the_tasks_its_record_lists)
{
    for (int i = 0; i < 3; i++)
        s_ready (i == 0? "w-email": i == 1? "w-inventory": "w-courier", s.config.channels[i].name, 4, s.t0);
    s_publish (1);
    cr_assert_eq (s.event_count, 1u);
    cr_assert_eq (s.event_channels[0], 3, "the record lists email, inventory and courier");
    /*  Reload before the record is durable: order.confirmed now goes to
        email only. */
    s.config.events[0].fanout_count = 1;
    s_reloaded (s.t0);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.reply_count, 1u);
    cr_assert_eq (s.replies[0], HP_ACK);
    cr_assert_eq (s_tasks_of ("email"), 1u);
    cr_assert_eq (s_tasks_of ("inventory"), 1u, "the staged event keeps its inventory task");
    cr_assert_eq (s_tasks_of ("courier"), 1u, "and its courier task");
    /*  A new event takes the new fan-out. */
    s_publish (2);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s.event_channels[1], 1);
    cr_assert_eq (s_tasks_of ("email"), 2u);
    cr_assert_eq (s_tasks_of ("inventory"), 1u, "the new event goes to email only");
}

Test (core_reload, a_waiting_duplicate_follows_its_type_or_is_refused_when_it_is_gone)
{
    /*  Two types; order.paid moves to index 0, order.confirmed is removed. */
    s.config.events[1] = s.config.events[0];
    snprintf (s.config.events[1].name, sizeof s.config.events[1].name, "order.paid");
    s.config.events[1].fanout_count = 1;
    s.config.event_count = 2;
    s_publish_type (7, "order.confirmed");
    s_publish_type (8, "order.paid");
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.reply_count, 2u);
    s_publish_type (7, "order.confirmed");          /* duplicates, waiting for the index */
    s_publish_type (8, "order.paid");
    cr_assert_eq (s.event_count, 2u);
    s.config.events[0] = s.config.events[1];
    s.config.event_count = 1;
    s.event_map[0] = -1;
    s.event_map[1] = 0;
    s_reloaded (s.t0);
    /*  The index answers: both stored events were pruned meanwhile, so each
        would be stored as new. */
    while (s.queries) {
        index_msg_t *q = s.queries;
        s.queries = q->next;
        q->next = NULL;
        q->code = HP_CODE_NOT_FOUND;
        core_index (s.core, q, s.t0);
    }
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.event_count, 3u, "order.paid is stored, order.confirmed is not");
    cr_assert_eq (s.event_channels[2], 1);
    cr_assert_eq (s.reply_count, 4u);
    size_t acks = 0, unknown = 0;
    for (size_t i = 2; i < s.reply_count; i++) {
        acks += s.replies[i] == HP_ACK;
        unknown += s.replies[i] == HP_NACK && s.codes[i] == HP_CODE_UNKNOWN_TYPE;
    }
    cr_assert_eq (acks, 1u);
    cr_assert_eq (unknown, 1u, "the removed type's event is refused as unknown-type");
}

Test (core_reload, a_lower_capacity_holds_registered_workers_to_it)
{
    s_ready ("w1", "email", 4, s.t0);
    for (int i = 0; i < 10; i++)
        s_publish (100 + i);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s_tasks_of ("email"), 4u, "capacity 4");
    s.config.channels[0].capacity = 2;
    s_reloaded (s.t0);
    size_t answered = 0;
    for (size_t i = 0; i < 3; i++, answered++)
        s_answer (&s.tasks[i], HP_OUTCOME_DONE, s.t0 + 1);
    core_tick (s.core, s.t0 + 1);
    /*  One lease left out of 4; credit is now 2: one more task. */
    cr_assert_eq (s_tasks_of ("email"), 5u, "no more than the new capacity at the worker");
}

Test (core_reload, a_new_attempt_budget_applies_to_the_next_failure)
{
    s_ready ("w1", "email", 4, s.t0);
    s_publish (1);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s_tasks_of ("email"), 1u);
    s.config.channels[0].max_attempts = 1;
    s_reloaded (s.t0);
    for (size_t i = 0; i < s.task_count; i++)
        if (strstr (s.tasks[i].id, ".email"))
            s_answer (&s.tasks[i], HP_OUTCOME_RETRY, s.t0 + 1);
    cr_assert_eq (s.dead, 1u, "attempt 1 of at most 1: dead at once");
}

Test (core_reload, a_new_rate_limits_the_next_deliveries)
{
    s_ready ("w1", "email", 64, s.t0);
    s.config.channels[0].rate_per_sec = 2;
    s.config.channels[0].burst = 2;
    s_reloaded (s.t0);
    for (int i = 0; i < 20; i++)
        s_publish (200 + i);
    core_durable (s.core, s.end, s.t0);
    core_tick (s.core, s.t0);
    cr_assert_eq (s_tasks_of ("email"), 2u, "a burst of 2 at once");
    core_tick (s.core, s.t0 + 1000);
    cr_assert_eq (s_tasks_of ("email"), 4u, "then 2 a second");
}

Test (core_reload, a_shorter_heartbeat_is_not_left_behind_the_old_one)
{
    s.config.broker.heartbeat_ms = 60000;
    core_destroy (&s.core);
    core_start_t start = { .next_seq = 1, .boots = 1 };
    s.core = core_new (&s.config, &s_io, &start);
    core_started (s.core, s.t0);
    s_ready ("w1", "email", 4, s.t0);
    s.config.broker.heartbeat_ms = 100;
    s_reloaded (s.t0);
    int64_t next = core_tick (s.core, s.t0);
    cr_assert_leq (next, s.t0 + 100, "next deadline %lld ms away", (long long) (next - s.t0));
}
