/*  Unit tests: broker/core with a store shared by several brokers
    (core_start_t.shared, the PostgreSQL store), driven message by message
    through a recording core_io_t: event numbers come from the store's
    blocks (none at hand: 503), the fan-out places a broker keeps are those
    of channels with a worker here, a duplicate found at commit is ACKed
    with the stored event's id and makes no task, a commit the store could
    not back is a NACK 503 with its reason, tasks are claimed only for
    channels with a worker here, and the store hears which channels those
    are. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "broker_fixture.h"
#include "core.h"
#include "herald_clock.h"
#include "record.h"

#define S_MAX 512

typedef struct {
    hp_command_t command;
    int code;
    bool duplicate;
    char text[HP_MAX_TEXT + 1];
    char event_id[HP_MAX_ID + 1];
    char durability[17];
} s_reply_t;

typedef struct {
    uint64_t lsn;
    uint64_t seq;
    uint32_t held;
    char dedup_key[600];
} s_event_t;

static struct {
    herald_config_t config;
    core_t *core;
    int64_t t0;
    s_reply_t replies[S_MAX];
    size_t reply_count;
    char tasks[S_MAX][HP_MAX_ID + 1];   /* task ids sent to workers */
    size_t task_count;
    s_event_t events[S_MAX];
    size_t event_count;
    uint64_t end;
    uint64_t next_seq;                  /* 0: none at hand */
    index_msg_t *queries;
    store_commit_t commits[S_MAX];      /* by event index: what the store decided */
    int next_corr;
} s;

static void
s_reply (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    (void) ctx, (void) identity, (void) identity_len;
    cr_assert_lt (s.reply_count, S_MAX);
    s_reply_t *r = &s.replies[s.reply_count++];
    r->command = msg->command;
    r->code = msg->code;
    r->duplicate = msg->duplicate;
    hp_str_copy (msg->text, r->text, sizeof r->text);
    hp_str_copy (msg->event_id, r->event_id, sizeof r->event_id);
    hp_str_copy (msg->durability, r->durability, sizeof r->durability);
}

static int
s_to_worker (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    (void) ctx, (void) identity, (void) identity_len;
    if (msg->command != HP_TASKS)
        return 0;
    hp_str_t cursor = msg->batch;
    hp_task_t entry;
    while (hp_next_task (&cursor, &entry)) {
        cr_assert_lt (s.task_count, S_MAX);
        hp_str_copy (entry.task_id, s.tasks[s.task_count++], sizeof s.tasks[0]);
    }
    return 0;
}

static uint64_t
s_record (const void *payload, uint32_t len, uint32_t held, bool event)
{
    record_t rec;
    char err[256];
    cr_assert_eq (record_decode (payload, len, &rec, err, sizeof err), 0, "%s", err);
    s.end += 32 + len;
    cr_assert_eq (rec.type == RECORD_EVENT, event, "events go through append_event, the rest through append");
    if (event) {
        cr_assert_lt (s.event_count, S_MAX);
        s_event_t *e = &s.events[s.event_count++];
        e->lsn = s.end;
        e->seq = rec.u.event.seq;
        e->held = held;
        snprintf (e->dedup_key, sizeof e->dedup_key, "%.*s", (int) rec.u.event.dedup_key.len,
                  rec.u.event.dedup_key.ptr);
    }
    return s.end;
}

static uint64_t
s_append (void *ctx, const void *payload, uint32_t len)
{
    (void) ctx;
    return s_record (payload, len, 0, false);
}

static uint64_t
s_append_event (void *ctx, const void *payload, uint32_t len, uint32_t held)
{
    (void) ctx;
    return s_record (payload, len, held, true);
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
s_status (void *ctx, json_t *reply)
{
    (void) ctx, (void) reply;
}

static uint64_t
s_next_seq (void *ctx)
{
    (void) ctx;
    return s.next_seq? s.next_seq++: 0;
}

static int
s_commit_result (void *ctx, uint64_t lsn, store_commit_t *out)
{
    (void) ctx;
    for (size_t i = 0; i < s.event_count; i++)
        if (s.events[i].lsn == lsn) {
            *out = s.commits[i];
            out->key = s.events[i].dedup_key;
            out->key_len = strlen (s.events[i].dedup_key);
            return 0;
        }
    cr_assert_fail ("commit_result asked for a position that is no event record: %llu", (unsigned long long) lsn);
    return -1;
}

static const char *
s_durability (void *ctx)
{
    (void) ctx;
    return "commit-standby";
}

static const core_io_t s_io = {
    .reply = s_reply, .to_worker = s_to_worker, .admin_reply = s_reply, .append = s_append,
    .append_status = s_append_status, .query = s_query, .status = s_status,
    .next_seq = s_next_seq, .append_event = s_append_event, .commit_result = s_commit_result,
    .durability = s_durability,
};

static void
s_setup (void)
{
    memset (&s, 0, sizeof s);
    fixture_config (&s.config);
    s.t0 = herald_clock_mono_ms ();
    s.end = 0;
    s.next_seq = 7001;                  /* a block another broker did not take */
    core_start_t start = { .next_seq = 1, .boots = 42, .shared = true };
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

TestSuite (core_shared, .init = s_setup, .fini = s_teardown, .timeout = 30);

static void
s_publish (int order_id)
{
    char body[400];
    snprintf (body, sizeof body,
              "{\"specversion\":\"1.0\",\"id\":\"ev-%d\",\"source\":\"test\",\"type\":\"order.confirmed\","
              "\"data\":{\"order_id\":%d,\"customer\":{\"email\":\"a@example.com\"},\"items\":[1]}}",
              order_id, order_id);
    char corr[32];
    snprintf (corr, sizeof corr, "c%d", ++s.next_corr);
    hp_msg_t msg = { .command = HP_PUBLISH, .version = HP_VERSION, .corr = hp_str (corr), .body = hp_str (body) };
    core_publish (s.core, "producer", 8, &msg, s.t0);
}

static void
s_ready (const char *worker, const char *channel)
{
    hp_msg_t msg = { .command = HP_READY, .channel = hp_str (channel), .capacity = 4, .worker = hp_str (worker),
                     .max_batch = 4 };
    core_worker (s.core, worker, strlen (worker), &msg, s.t0);
}

/*  The posted queries of a kind (taken out of the list); NULL if none. */
static index_msg_t *
s_take (index_kind_t kind)
{
    for (index_msg_t **link = &s.queries; *link; link = &(*link)->next)
        if ((*link)->kind == kind) {
            index_msg_t *q = *link;
            *link = q->next;
            q->next = NULL;
            return q;
        }
    return NULL;
}

Test (core_shared, numbers_come_from_the_store_and_none_at_hand_is_busy)
{
    s_publish (1);
    s_publish (2);
    cr_assert_eq (s.event_count, 2u);
    cr_assert_eq (s.events[0].seq, 7001u, "the store's block, not the core's count");
    cr_assert_eq (s.events[1].seq, 7002u);
    s.next_seq = 0;
    s_publish (3);
    cr_assert_eq (s.event_count, 2u, "no number: nothing appended");
    cr_assert_eq (s.reply_count, 1u);
    cr_assert_eq (s.replies[0].command, HP_NACK);
    cr_assert_eq (s.replies[0].code, HP_CODE_BUSY);
    cr_assert (strstr (s.replies[0].text, "event number"), "%s", s.replies[0].text);
}

Test (core_shared, only_channels_with_a_worker_here_are_kept)
{
    s_ready ("w-email", "email");
    s_publish (1);
    cr_assert_eq (s.event_count, 1u);
    cr_assert_eq (s.events[0].held, 1u, "email (place 0) kept, inventory and courier left free");
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.replies[0].command, HP_ACK);
    cr_assert_str_eq (s.replies[0].durability, "commit-standby", "the ACK names what the store reached");
    core_tick (s.core, s.t0 + 1);
    cr_assert_eq (s.task_count, 1u, "only the kept task is delivered here");
    cr_assert (strstr (s.tasks[0], ".email"), "%s", s.tasks[0]);
    index_msg_t *load;
    while ((load = s_take (INDEX_LOAD))) {
        cr_assert_str_eq (load->text, "email", "claims only for a channel with a worker here");
        index_msg_destroy (&load);
    }
}

Test (core_shared, duplicate_found_at_commit_is_acked_with_the_stored_id)
{
    s_ready ("w-email", "email");
    s_publish (5);
    s.commits[0] = (store_commit_t) { .kind = STORE_COMMIT_DUPLICATE, .seq = 3001 };
    snprintf (s.commits[0].event_id, sizeof s.commits[0].event_id, "ev-stored-by-another-broker");
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.reply_count, 1u);
    cr_assert_eq (s.replies[0].command, HP_ACK);
    cr_assert (s.replies[0].duplicate, "a duplicate ACK");
    cr_assert_str_eq (s.replies[0].event_id, "ev-stored-by-another-broker");
    core_tick (s.core, s.t0 + 1);
    cr_assert_eq (s.task_count, 0u, "a duplicate makes no task");
    /*  The key now names the stored event: asking again, the index is asked
        about that event, nothing is appended. */
    s_publish (5);
    cr_assert_eq (s.event_count, 1u);
    index_msg_t *q = s_take (INDEX_EVENT_ID);
    cr_assert_not_null (q, "the known key is looked up");
    cr_assert_eq (q->number, 3001u, "under the stored event's number");
    index_msg_destroy (&q);
}

Test (core_shared, a_commit_not_backed_is_a_nack_and_the_key_is_free)
{
    s_publish (9);
    s.commits[0] = (store_commit_t) { .kind = STORE_COMMIT_REFUSED, .code = HP_CODE_BUSY };
    snprintf (s.commits[0].reason, sizeof s.commits[0].reason, "durability unknown: publish it again");
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.reply_count, 1u);
    cr_assert_eq (s.replies[0].command, HP_NACK, "never an ACK the store cannot back");
    cr_assert_eq (s.replies[0].code, HP_CODE_BUSY);
    cr_assert_str_eq (s.replies[0].text, "durability unknown: publish it again");
    s_publish (9);
    cr_assert_eq (s.event_count, 2u, "published again: staged anew (the key was released)");
    core_durable (s.core, s.end, s.t0);
    cr_assert_eq (s.replies[1].command, HP_ACK);
    cr_assert_not (s.replies[1].duplicate);
}

Test (core_shared, free_tasks_announced_are_claimed_only_with_a_worker)
{
    index_msg_t *note = index_msg_new (INDEX_BACKLOG);
    snprintf (note->text, sizeof note->text, "courier");
    core_index (s.core, note, s.t0);
    core_tick (s.core, s.t0 + 1);
    cr_assert_null (s_take (INDEX_LOAD), "no worker for courier here: nothing claimed");
    s_ready ("w-courier", "courier");
    core_tick (s.core, s.t0 + 2);
    index_msg_t *load = s_take (INDEX_LOAD);
    cr_assert_not_null (load, "a worker came: the free tasks are claimed");
    cr_assert_str_eq (load->text, "courier");
    index_msg_destroy (&load);
}

Test (core_shared, the_store_hears_which_channels_have_a_worker)
{
    core_tick (s.core, s.t0);
    index_msg_t *serving = s_take (INDEX_SERVING);
    cr_assert_not_null (serving);
    cr_assert_str_eq (serving->text, "");
    index_msg_destroy (&serving);
    s_ready ("w-email", "email");
    s_ready ("w-courier", "courier");
    core_tick (s.core, s.t0 + 1);
    serving = s_take (INDEX_SERVING);
    cr_assert_not_null (serving, "told again when workers come");
    cr_assert_str_eq (serving->text, "email courier");
    index_msg_destroy (&serving);
    core_tick (s.core, s.t0 + 2);
    cr_assert_null (s_take (INDEX_SERVING), "not told again while nothing changes");
}
