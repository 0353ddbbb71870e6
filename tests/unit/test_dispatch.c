/*  Unit tests: broker/dispatch — credit, fencing, limits, delays, leases. */
#include <criterion/criterion.h>
#include <string.h>

#include "broker_fixture.h"
#include "dispatch.h"

static herald_config_t config;
static dispatch_t *d;
static blob_t *blob;

static void
setup (void)
{
    fixture_config (&config);
    d = dispatch_new (&config, 7ull << 32);
    blob = blob_new (0, "uid0", "{}", 2);
    blob->refs = 1;     /* the test's own reference */
}

static void
teardown (void)
{
    dispatch_destroy (&d);
    if (--blob->refs == 0)
        free (blob);
}

TestSuite (dispatch, .init = setup, .fini = teardown);

/*  A task's id (a buffer living to the end of the full expression). */
#define S_ID(task) task_id ((task), &config, (char [TASK_ID_MAX]) { 0 })

/*  A task of its own event (seq = id). */
static task_t *
queue_task (uint64_t id, int channel, int64_t due, int64_t now)
{
    char uid[33];
    snprintf (uid, sizeof uid, "uid%llu", (unsigned long long) id);
    blob_t *event = blob_new (id, uid, "{}", 2);
    task_t *task = task_new (event, 0, channel, 0);
    dispatch_enqueue (d, task, due, now, false);
    return task;
}

static worker_t *
add_worker (const char *id, int channel, uint32_t capacity)
{
    return dispatch_worker_add (d, id, strlen (id), channel, capacity, capacity, id, 0);
}

Test (dispatch, never_more_than_the_credit)
{
    worker_t *w = add_worker ("w1", 0, 2);
    for (int i = 1; i <= 5; i++)
        queue_task (i, 0, 0, 0);
    task_t *a = dispatch_next (d, 0);
    task_t *b = dispatch_next (d, 0);
    cr_assert (a && b);
    cr_assert_null (dispatch_next (d, 0), "third task beyond a credit of 2");
    cr_assert_eq (a->seq, 1);
    cr_assert_eq (b->seq, 2);
    cr_assert_eq (a->attempts, 1);
    task_t *done = dispatch_complete (d, w, S_ID (a), a->lease);
    cr_assert_eq (done, a);
    task_destroy (&done);
    task_t *c = dispatch_next (d, 0);
    cr_assert (c && c->seq == 3, "credit returned by DONE");
}

Test (dispatch, only_workers_of_the_channel)
{
    add_worker ("w-inv", 1, 5);
    queue_task (1, 0, 0, 0);
    cr_assert_null (dispatch_next (d, 0));
    add_worker ("w-email", 0, 5);
    task_t *task = dispatch_next (d, 0);
    cr_assert (task);
    cr_assert_str_eq (task->worker->identity, "w-email");
}

Test (dispatch, stale_lease_is_fenced)
{
    worker_t *w = add_worker ("w1", 0, 1);
    queue_task (1, 0, 0, 0);
    task_t *task = dispatch_next (d, 0);
    cr_assert_gt (task->lease, 7ull << 32, "lease ids start above the first one given");
    cr_assert_null (dispatch_complete (d, w, S_ID (task), task->lease + 1), "another lease");
    cr_assert_null (dispatch_complete (d, w, hp_str ("other.email"), task->lease), "another task's id");
    worker_t *other = add_worker ("w2", 0, 1);
    cr_assert_null (dispatch_complete (d, other, S_ID (task), task->lease), "answer from another worker");
    task_t *done = dispatch_complete (d, w, S_ID (task), task->lease);
    cr_assert_eq (done, task);
    task_destroy (&done);
}

Test (dispatch, requeued_task_gets_a_new_attempt_and_old_answer_is_ignored)
{
    worker_t *w1 = add_worker ("w1", 0, 1);
    queue_task (1, 0, 0, 0);
    task_t *task = dispatch_next (d, 0);
    uint64_t first_lease = task->lease;
    task_t *expired = dispatch_expired (d, 1000);
    cr_assert_eq (expired, task, "lease expired at its deadline");
    dispatch_enqueue (d, expired, 0, 1000, false);
    worker_t *w2 = add_worker ("w2", 0, 1);
    task_t *again = dispatch_next (d, 1000);
    cr_assert_eq (again->attempts, 2);
    cr_assert_gt (again->lease, first_lease, "a new lease, greater");
    cr_assert_null (dispatch_complete (d, w1, S_ID (again), first_lease), "late answer of lease 1");
    task_t *done = dispatch_complete (d, again->worker, S_ID (again), again->lease);
    cr_assert_eq (done, again);
    (void) w2;
    task_destroy (&done);
}

Test (dispatch, lease_not_expired_before_deadline)
{
    add_worker ("w1", 0, 1);
    queue_task (1, 0, 0, 0);
    dispatch_next (d, 0);
    cr_assert_null (dispatch_expired (d, 999));
    cr_assert_eq (dispatch_next_deadline (d, 0), 1000);
}

Test (dispatch, round_robin_between_workers)
{
    add_worker ("a", 0, 10);
    add_worker ("b", 0, 10);
    for (int i = 1; i <= 4; i++)
        queue_task (i, 0, 0, 0);
    const char *seen[4];
    for (int i = 0; i < 4; i++)
        seen[i] = dispatch_next (d, 0)->worker->identity;
    cr_assert_str_neq (seen[0], seen[1]);
    cr_assert_str_eq (seen[0], seen[2]);
    cr_assert_str_eq (seen[1], seen[3]);
}

Test (dispatch, max_in_flight_across_workers)
{
    config.channels[0].max_in_flight = 3;
    add_worker ("a", 0, 10);
    add_worker ("b", 0, 10);
    for (int i = 1; i <= 6; i++)
        queue_task (i, 0, 0, 0);
    int leased = 0;
    while (dispatch_next (d, 0))
        leased++;
    cr_assert_eq (leased, 3);
}

Test (dispatch, rate_limit_token_bucket)
{
    config.channels[0].rate_per_sec = 10;
    config.channels[0].burst = 1;
    dispatch_destroy (&d);
    d = dispatch_new (&config, 7ull << 32);
    add_worker ("a", 0, 100);
    add_worker ("b", 0, 100);
    for (int i = 1; i <= 30; i++)
        queue_task (i, 0, 0, 0);
    cr_assert_not_null (dispatch_next (d, 0));
    cr_assert_null (dispatch_next (d, 0), "burst of 1");
    cr_assert_null (dispatch_next (d, 50));
    int64_t next = dispatch_next_deadline (d, 50);
    cr_assert (next > 50 && next <= 101, "next token at ~100 ms, got %lld", (long long) next);
    cr_assert_not_null (dispatch_next (d, 100));
    /*  Over one simulated second at 10/s across two workers: 10 more. */
    int sent = 0;
    for (int64_t t = 101; t <= 1100; t++)
        while (dispatch_next (d, t))
            sent++;
    cr_assert (sent >= 9 && sent <= 10, "sent %d in one second at 10/s", sent);
}

Test (dispatch, delayed_tasks_wait_for_their_time)
{
    add_worker ("a", 0, 10);
    queue_task (1, 0, 500, 0);
    queue_task (2, 0, 200, 0);
    cr_assert_null (dispatch_next (d, 0));
    cr_assert_eq (dispatch_next_deadline (d, 0), 200);
    dispatch_promote (d, 199);
    cr_assert_null (dispatch_next (d, 199));
    dispatch_promote (d, 200);
    task_t *task = dispatch_next (d, 200);
    cr_assert (task && task->seq == 2);
    dispatch_promote (d, 600);
    task = dispatch_next (d, 600);
    cr_assert (task && task->seq == 1);
}

Test (dispatch, handed_back_work_goes_first)
{
    worker_t *w = add_worker ("a", 0, 1);
    queue_task (1, 0, 0, 0);
    queue_task (2, 0, 0, 0);
    task_t *first = dispatch_next (d, 0);
    task_t *back = dispatch_worker_pop_lease (d, w);
    cr_assert_eq (back, first);
    dispatch_enqueue (d, back, 0, 0, true);
    cr_assert_eq (dispatch_next (d, 0)->seq, 1);
}

Test (dispatch, removing_a_worker_never_loses_its_leases)
{
    worker_t *w = add_worker ("a", 0, 2);
    queue_task (1, 0, 0, 0);
    queue_task (2, 0, 0, 0);
    dispatch_next (d, 0);
    dispatch_next (d, 0);
    dispatch_counts_t counts;
    dispatch_counts (d, 0, &counts);
    cr_assert_eq (counts.in_flight, 2);
    dispatch_worker_remove (d, &w);
    cr_assert_null (w);
    dispatch_counts (d, 0, &counts);
    cr_assert_eq (counts.in_flight, 0);
    cr_assert_eq (counts.ready, 2);
    cr_assert_eq (counts.workers, 0);
}

Test (dispatch, backoff_full_jitter_bounds)
{
    herald_channel_t *ch = &config.channels[0];   /* 100 ms .. 1000 ms */
    cr_assert_eq (dispatch_backoff_ms (ch, 1, 0.0), 0);
    cr_assert_eq (dispatch_backoff_ms (ch, 1, 0.999999), 99);
    cr_assert_eq (dispatch_backoff_ms (ch, 3, 0.999999), 399);
    cr_assert_eq (dispatch_backoff_ms (ch, 4, 0.5), 400);
    cr_assert_eq (dispatch_backoff_ms (ch, 30, 0.999999), 999, "capped at backoff_max");
    cr_assert_eq (dispatch_backoff_ms (ch, 1000000, 0.5), 500);
}

Test (dispatch, shared_event_freed_with_last_task)
{
    blob_t *shared = blob_new (1, "k", "{\"x\":1}", 7);
    task_t *a = task_new (shared, 0, 0, 0);
    task_t *b = task_new (shared, 1, 1, 0);
    cr_assert_eq (shared->refs, 2);
    char id[TASK_ID_MAX];
    cr_assert (hp_str_eq (task_id (b, &config, id), "k.inventory"), "task id is uid.channel: %s", id);
    task_destroy (&a);
    cr_assert_null (a);
    cr_assert_eq (shared->refs, 1);
    cr_assert_str_eq (b->event->data, "{\"x\":1}");
    task_destroy (&b);
}

Test (dispatch, task_id_is_whole_at_the_longest_uid_and_name)
{
    herald_config_t long_config;
    fixture_config (&long_config);
    memset (long_config.channels[1].name, 'n', HERALD_NAME_MAX - 1);
    long_config.channels[1].name[HERALD_NAME_MAX - 1] = '\0';
    const char *uid = "0123456789abcdef0123456789abcdef";
    blob_t *event = blob_new (9, uid, "{}", 2);
    task_t *task = task_new (event, 1, 1, 0);
    char id[TASK_ID_MAX];
    hp_str_t got = task_id (task, &long_config, id);
    cr_assert_eq (got.len, 32 + 1 + HERALD_NAME_MAX - 1);
    cr_assert_eq (strlen (id), got.len, "NUL-terminated right after the name");
    cr_assert (memcmp (id, uid, 32) == 0 && id[32] == '.');
    cr_assert (memcmp (id + 33, long_config.channels[1].name, HERALD_NAME_MAX - 1) == 0);
    /*  A uid loaded from an older store may be shorter (16 hex digits). */
    blob_t *old = blob_new (10, "00000000000000ff", "{}", 2);
    task_t *old_task = task_new (old, 0, 0, 0);
    cr_assert (hp_str_eq (task_id (old_task, &config, id), "00000000000000ff.email"), "%s", id);
    /*  A longer one is cut to the field, NUL-terminated. */
    blob_t *longer = blob_new (11, "0123456789abcdef0123456789abcdefXYZ", "{}", 2);
    cr_assert_str_eq (longer->uid, uid);
    free (longer);
    task_destroy (&task);
    task_destroy (&old_task);
}

Test (dispatch, answer_with_a_cut_or_longer_id_is_not_ours)
{
    worker_t *w = add_worker ("w1", 0, 4);
    task_t *task = queue_task (1, 0, 0, 0);
    cr_assert_eq (dispatch_next (d, 0), task);
    char id[TASK_ID_MAX + 1];
    hp_str_t own = S_ID (task);
    memcpy (id, own.ptr, own.len);
    cr_assert_null (dispatch_complete (d, w, hp_strn (id, own.len - 1), task->lease), "one octet short");
    id[own.len] = 'x';
    cr_assert_null (dispatch_complete (d, w, hp_strn (id, own.len + 1), task->lease), "one octet more");
    id[own.len - 1] ^= 1;
    cr_assert_null (dispatch_complete (d, w, hp_strn (id, own.len), task->lease), "last octet differs");
    cr_assert_eq (dispatch_complete (d, w, own, task->lease), task);
    task_destroy (&task);
}

Test (dispatch, throttled_channel_pauses_until_retry_after)
{
    config.channels[1].lease_ms = 10000;
    add_worker ("a", 0, 10);
    add_worker ("b", 1, 10);
    queue_task (1, 0, 0, 0);
    queue_task (2, 1, 0, 0);
    dispatch_pause (d, 0, 2000);
    task_t *task = dispatch_next (d, 0);
    cr_assert (task && task->channel == 1, "other channels keep flowing");
    cr_assert_null (dispatch_next (d, 1999));
    cr_assert_eq (dispatch_next_deadline (d, 10), 2000);
    task = dispatch_next (d, 2000);
    cr_assert (task && task->seq == 1);
}

Test (dispatch, suspect_task_is_delivered_alone)
{
    worker_t *busy = add_worker ("busy", 0, 4);
    queue_task (1, 0, 0, 0);
    task_t *first = dispatch_next (d, 0);
    cr_assert_eq (first->worker, busy);
    task_t *suspect = queue_task (2, 0, 0, 0);
    suspect->suspect = true;
    queue_task (3, 0, 0, 0);
    cr_assert_null (dispatch_next (d, 0), "a suspect waits for an idle worker; nothing overtakes it");
    worker_t *idle = add_worker ("idle", 0, 4);
    task_t *solo = dispatch_next (d, 0);
    cr_assert_eq (solo, suspect);
    cr_assert_eq (solo->worker, idle);
    cr_assert (idle->solo);
    task_t *next = dispatch_next (d, 0);
    cr_assert (next && next->seq == 3);
    cr_assert_eq (next->worker, busy, "the solo worker gets nothing else meanwhile");
    task_t *done = dispatch_complete (d, idle, S_ID (solo), solo->lease);
    cr_assert_eq (done, solo);
    cr_assert_not (idle->solo, "free again after its answer");
    task_destroy (&done);
}

Test (dispatch, expired_lease_retries_on_another_worker)
{
    worker_t *hung = add_worker ("hung", 0, 4);
    queue_task (1, 0, 0, 0);
    task_t *task = dispatch_next (d, 0);
    cr_assert_eq (task->worker, hung);
    task_t *expired = dispatch_expired (d, 1000);
    dispatch_enqueue (d, expired, 0, 1000, false);
    worker_t *other = add_worker ("other", 0, 4);
    task_t *again = dispatch_next (d, 1000);
    cr_assert_eq (again->worker, other, "not back to the worker whose lease expired");
    /*  With no other worker, the same one is used rather than waiting forever. */
    task_t *back = dispatch_complete (d, other, S_ID (again), again->lease);
    dispatch_worker_remove (d, &other);
    dispatch_enqueue (d, back, 0, 1000, false);
    task_t *third = dispatch_next (d, 1000);
    cr_assert_eq (third->worker, hung);
}

/*  A handed-back task (its attempt never happened) does not spend an
    attempt, and its next lease is still a new one: a late answer to the
    handed-back lease is fenced off. */
Test (dispatch, hand_back_keeps_the_budget_and_fences_the_old_lease)
{
    worker_t *w = add_worker ("w1", 0, 1);
    queue_task (1, 0, 0, 0);
    task_t *task = dispatch_next (d, 0);
    uint64_t lease = task->lease;
    task_t *back = dispatch_worker_pop_lease (d, w);
    dispatch_hand_back (d, back, 0);
    task_t *again = dispatch_next (d, 0);
    cr_assert_eq (again, task);
    cr_assert_eq (again->attempts, 1, "the handed-back attempt is not counted");
    cr_assert_gt (again->lease, lease);
    cr_assert_null (dispatch_complete (d, w, S_ID (again), lease), "the old lease is fenced");
}
