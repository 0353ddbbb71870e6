/*  test_worker: the worker runtime against a fake broker (a ROUTER in the
    test) on ipc:// in a temporary directory. The worker runs in a thread;
    every wait is a zmq_poll with a deadline, never a sleep. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_clock.h"
#include "herald_config.h"
#include "herald_log.h"
#include "herald_wire.h"
#include "worker.h"

#define WAIT_MS 3000    /* generous deadline for anything that should happen */

static const char *s_event =
    "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"shop\",\"type\":\"order.confirmed\","
    "\"data\":{\"order_id\":1042,\"customer\":{\"email\":\"ann@example.com\",\"name\":\"Ann\"}}}";

static int s_fake_pipe[2] = { -1, -1 };    /* the fake async driver's pipe (below) */

static struct {
    char dir[128];
    char endpoint[200];
    herald_config_t config;
    void *ctx;
    void *router;
    herald_worker_t *worker;
    pthread_t thread;
    bool running;
    volatile sig_atomic_t stop;
    int rc;
    char identity[256];     /* routing id of the worker's last READY */
    size_t identity_len;
    /*  Results received and not yet looked at, in order. */
    struct { char task_id[HP_MAX_ID + 1]; uint64_t lease; hp_outcome_t outcome;
             char text[HP_MAX_TEXT + 1]; } results[4096];
    size_t result_head, result_count;
} s_fx;

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static void
s_setup (void)
{
    herald_log_init ("test", HERALD_LOG_ERROR);
    memset (&s_fx, 0, sizeof s_fx);
    snprintf (s_fx.dir, sizeof s_fx.dir, "/tmp/herald-test-worker-XXXXXX");
    cr_assert_not_null (mkdtemp (s_fx.dir));
    snprintf (s_fx.endpoint, sizeof s_fx.endpoint, "ipc://%s/w.sock", s_fx.dir);

    herald_config_defaults (&s_fx.config);
    s_fx.config.broker.heartbeat_ms = 50;
    s_fx.config.broker.heartbeat_liveness = 3;
    s_fx.config.broker.shutdown_timeout_ms = 2000;
    snprintf (s_fx.config.broker.workers, sizeof s_fx.config.broker.workers, "%s", s_fx.endpoint);
    s_fx.config.channel_count = 2;
    herald_channel_t *bench = &s_fx.config.channels[0];
    snprintf (bench->name, sizeof bench->name, "bench");
    bench->driver = HERALD_DRIVER_NOOP;
    bench->capacity = 4;
    herald_channel_t *email = &s_fx.config.channels[1];
    snprintf (email->name, sizeof email->name, "email");
    email->driver = HERALD_DRIVER_FILE;
    email->capacity = 2;
    snprintf (email->dir, sizeof email->dir, "%s/out/email", s_fx.dir);

    s_fx.ctx = zmq_ctx_new ();
    cr_assert_not_null (s_fx.ctx);
    char err[256];
    s_fx.router = hw_socket_new (s_fx.ctx, HW_WORKER_ROUTER, s_fx.endpoint, NULL, err, sizeof err);
    cr_assert_not_null (s_fx.router, "fake broker: %s", err);
}

static void
s_stop_worker (void)
{
    if (s_fx.running) {
        s_fx.stop = 1;
        pthread_join (s_fx.thread, NULL);
        s_fx.running = false;
    }
    herald_worker_destroy (&s_fx.worker);
}

static void
s_teardown (void)
{
    s_stop_worker ();
    if (s_fx.router) {
        int linger = 0;
        zmq_setsockopt (s_fx.router, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (s_fx.router);
    }
    if (s_fx.ctx)
        zmq_ctx_term (s_fx.ctx);
    for (int i = 0; i < 2; i++)
        if (s_fake_pipe[i] >= 0) {
            close (s_fake_pipe[i]);
            s_fake_pipe[i] = -1;
        }
    nftw (s_fx.dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void *
s_run (void *arg)
{
    s_fx.rc = herald_worker_run (s_fx.worker, &s_fx.stop);
    return NULL;
}

static void
s_start_worker_with (int channel_index, const hd_driver_ops_t *ops)
{
    char err[512];
    s_fx.worker = ops
        ? herald_worker_new_with_driver (&s_fx.config, channel_index, NULL, ops, err, sizeof err)
        : herald_worker_new (&s_fx.config, channel_index, NULL, err, sizeof err);
    cr_assert_not_null (s_fx.worker, "herald_worker_new: %s", err);
    s_fx.rc = -2;
    cr_assert_eq (pthread_create (&s_fx.thread, NULL, s_run, NULL), 0);
    s_fx.running = true;
}

static void
s_start_worker (int channel_index)
{
    s_start_worker_with (channel_index, NULL);
}

/*  Receives until a message with command arrives (HEARTBEATs are skipped
    unless that is what we wait for; anything else fails the test) or timeout_ms pass. Returns 0 with in
    open and msg decoded (call hw_msg_close), or -1 on timeout. */
static int
s_expect (hp_command_t command, int timeout_ms, hw_msg_t *in, hp_msg_t *msg)
{
    int64_t deadline = herald_clock_mono_ms () + timeout_ms;
    while (true) {
        int64_t left = deadline - herald_clock_mono_ms ();
        if (left <= 0)
            return -1;
        zmq_pollitem_t item = { s_fx.router, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, (long) left);
        if (rc < 0 && errno == EINTR)
            continue;
        cr_assert_geq (rc, 0);
        if (rc == 0)
            continue;
        cr_assert_eq (hw_recv (s_fx.router, true, in, ZMQ_DONTWAIT), 0);
        hp_error_t err;
        cr_assert_eq (hw_decode (in, msg, &err), 0, "worker sent a malformed message: %s", err.text);
        if (msg->command == command)
            return 0;
        cr_assert (msg->command == HP_HEARTBEAT, "unexpected %s while waiting for %s",
                   hp_command_name (msg->command), hp_command_name (command));
        hw_msg_close (in);
    }
}

/*  Checks a READY received (in, msg) for channel and capacity and takes its
    connection as the worker's (s_fx.identity); closes in. */
static void
s_take_ready (hw_msg_t *in, const hp_msg_t *msg, const char *channel, uint32_t capacity)
{
    cr_assert (hp_str_eq (msg->channel, channel));
    cr_assert_eq (msg->capacity, capacity);
    cr_assert_eq (msg->max_batch, capacity, "takes up to its credit in one TASKS message");
    cr_assert (msg->worker.len > 2 && memchr (msg->worker.ptr, ':', msg->worker.len),
               "worker name should be host:pid");
    cr_assert_lt (in->identity.len, sizeof s_fx.identity);
    memcpy (s_fx.identity, in->identity.ptr, in->identity.len);
    s_fx.identity_len = in->identity.len;
    hw_msg_close (in);
}

static void
s_expect_ready (const char *channel, uint32_t capacity)
{
    hw_msg_t in;
    hp_msg_t msg;
    cr_assert_eq (s_expect (HP_READY, WAIT_MS, &in, &msg), 0, "no READY");
    s_take_ready (&in, &msg, channel, capacity);
}

static hp_str_t
s_identity (void)
{
    return hp_strn (s_fx.identity, s_fx.identity_len);
}

/*  A TASKS message with one task; its lease is its attempt, here. */
static void
s_send_task (const char *task_id, uint32_t attempt, const char *channel, const char *event)
{
    hp_task_t entry = { hp_str (task_id), attempt, attempt, hp_str (event) };
    char frame[8192];
    cr_assert_lt (hp_task_size (&entry), sizeof frame);
    size_t len = hp_task_put (frame, &entry);
    hp_msg_t msg = {
        .command = HP_TASKS,
        .channel = hp_str (channel),
        .batch = hp_strn (frame, len)
    };
    cr_assert_eq (hw_send (s_fx.router, s_identity (), &msg, 0), 0);
}

/*  n tasks PREFIX-0 .. PREFIX-(n-1), one TASKS message each, attempt 1. */
static void
s_send_tasks (const char *prefix, int n, const char *channel)
{
    char id[32];
    for (int i = 0; i < n; i++) {
        snprintf (id, sizeof id, "%s-%d", prefix, i);
        s_send_task (id, 1, channel, s_event);
    }
}

static void
s_send_command (hp_command_t command)
{
    hp_msg_t msg = { .command = command };
    cr_assert_eq (hw_send (s_fx.router, s_identity (), &msg, 0), 0);
}

/*  The next result (RESULTS messages may carry several): its task, lease
    and outcome must be these; its text is copied to text. */
static void
s_expect_result (hp_outcome_t outcome, const char *task_id, uint64_t lease, char *text, size_t size)
{
    if (s_fx.result_count == 0) {
        hw_msg_t in;
        hp_msg_t msg;
        cr_assert_eq (s_expect (HP_RESULTS, WAIT_MS, &in, &msg), 0, "no RESULTS for %s", task_id);
        hp_str_t cursor = msg.batch;
        hp_result_t r;
        size_t n = sizeof s_fx.results / sizeof s_fx.results[0];
        while (hp_next_result (&cursor, &r)) {
            cr_assert_lt (s_fx.result_count, n);
            size_t slot = (s_fx.result_head + s_fx.result_count++) % n;
            hp_str_copy (r.task_id, s_fx.results[slot].task_id, sizeof s_fx.results[slot].task_id);
            hp_str_copy (r.text, s_fx.results[slot].text, sizeof s_fx.results[slot].text);
            s_fx.results[slot].lease = r.lease;
            s_fx.results[slot].outcome = r.outcome;
        }
        hw_msg_close (&in);
    }
    size_t n = sizeof s_fx.results / sizeof s_fx.results[0];
    size_t slot = s_fx.result_head;
    s_fx.result_head = (s_fx.result_head + 1) % n;
    s_fx.result_count--;
    cr_assert_str_eq (s_fx.results[slot].task_id, task_id);
    cr_assert_eq (s_fx.results[slot].outcome, outcome, "%s: %s, expected %s", task_id,
                  hp_outcome_name (s_fx.results[slot].outcome), hp_outcome_name (outcome));
    cr_assert_eq (s_fx.results[slot].lease, lease);
    if (text)
        snprintf (text, size, "%s", s_fx.results[slot].text);
}

TestSuite (worker, .init = s_setup, .fini = s_teardown, .timeout = 30);

Test (worker, ready_then_task_done)
{
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    s_send_task ("t-1", 7, "bench", s_event);
    s_expect_result (HP_OUTCOME_DONE, "t-1", 7, NULL, 0);
}

Test (worker, many_tasks_each_answered_once_in_order)
{
    s_fx.config.channels[0].prefetch = 996;       //  a credit of 1000, run 4 to a round
    s_start_worker (0);
    s_expect_ready ("bench", 1000);
    s_send_tasks ("t", 1000, "bench");
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf (id, sizeof id, "t-%d", i);
        s_expect_result (HP_OUTCOME_DONE, id, 1, NULL, 0);
    }
}

Test (worker, a_synchronous_driver_runs_rounds_of_at_most_capacity)
{
    s_fx.config.channels[1].capacity = 2;
    s_fx.config.channels[1].prefetch = 6;
    s_start_worker (1);
    s_expect_ready ("email", 8);
    s_send_tasks ("r", 8, "email");
    char id[32];
    /*  Each round of the file driver (its files, one sync pass) ends with
        its RESULTS message: 8 tasks held, 2 to a round, in order. */
    int seen = 0, messages = 0;
    while (seen < 8) {
        hw_msg_t in;
        hp_msg_t msg;
        cr_assert_eq (s_expect (HP_RESULTS, WAIT_MS, &in, &msg), 0, "no RESULTS after %d", seen);
        hp_str_t cursor = msg.batch;
        hp_result_t r;
        int in_message = 0;
        while (hp_next_result (&cursor, &r)) {
            snprintf (id, sizeof id, "r-%d", seen++);
            cr_assert (hp_str_eq (r.task_id, id), "results in order: expected %s", id);
            cr_assert_eq (r.outcome, HP_OUTCOME_DONE);
            in_message++;
        }
        hw_msg_close (&in);
        cr_assert_leq (in_message, 2, "a round runs at most capacity (2) deliveries: %d", in_message);
        messages++;
    }
    cr_assert_geq (messages, 4, "8 tasks in rounds of 2: %d RESULTS messages", messages);
}

Test (worker, file_driver_writes_the_delivery)
{
    s_start_worker (1);
    s_expect_ready ("email", 2);
    s_send_task ("t-mail", 1, "email", s_event);
    char detail[HP_MAX_TEXT];
    s_expect_result (HP_OUTCOME_DONE, "t-mail", 1, detail, sizeof detail);
    char path[512];
    snprintf (path, sizeof path, "%s/out/email/t-mail.eml", s_fx.dir);
    cr_assert_str_eq (detail, path);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0, "%s missing", path);
}

Test (worker, file_driver_failure_is_reported_failed)
{
    s_start_worker (1);
    s_expect_ready ("email", 2);
    s_send_task ("t-bad", 3, "email", "{not json");
    char error[HP_MAX_TEXT];
    s_expect_result (HP_OUTCOME_FAILED, "t-bad", 3, error, sizeof error);
    cr_assert (strstr (error, "invalid event JSON"), "error was: %s", error);
}

Test (worker, heartbeats_when_idle)
{
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    for (int i = 0; i < 2; i++) {
        hw_msg_t in;
        hp_msg_t msg;
        cr_assert_eq (s_expect (HP_HEARTBEAT, 1000, &in, &msg), 0, "no HEARTBEAT");
        cr_assert_eq (in.identity.len, s_fx.identity_len);
        cr_assert_eq (memcmp (in.identity.ptr, s_fx.identity, s_fx.identity_len), 0);
        hw_msg_close (&in);
        s_send_command (HP_HEARTBEAT);
    }
}

Test (worker, stays_registered_while_broker_heartbeats)
{
    s_fx.config.broker.heartbeat_liveness = 10;     //  a loaded test machine may stall us a bit
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    //  Three liveness periods with broker heartbeats: no new READY may appear.
    int64_t until = herald_clock_mono_ms () + 3 * 500;
    while (herald_clock_mono_ms () < until) {
        hw_msg_t in;
        hp_msg_t msg;
        zmq_pollitem_t item = { s_fx.router, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, 40);
        if (rc > 0) {
            cr_assert_eq (hw_recv (s_fx.router, true, &in, 0), 0);
            cr_assert_eq (hw_decode (&in, &msg, NULL), 0);
            cr_assert_eq (msg.command, HP_HEARTBEAT, "got %s", hp_command_name (msg.command));
            hw_msg_close (&in);
        }
        s_send_command (HP_HEARTBEAT);
    }
}

Test (worker, disconnect_from_broker_means_ready_again)
{
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    char first[256];
    size_t first_len = s_fx.identity_len;
    memcpy (first, s_fx.identity, first_len);
    s_send_command (HP_HEARTBEAT);      //  the session is live
    s_send_command (HP_DISCONNECT);     //  as a restarted broker answers a heartbeat
    s_expect_ready ("bench", 4);
    cr_assert_eq (s_fx.identity_len, first_len);
    cr_assert_eq (memcmp (s_fx.identity, first, first_len), 0, "same socket, same identity");
    s_send_task ("t-2", 1, "bench", s_event);
    s_expect_result (HP_OUTCOME_DONE, "t-2", 1, NULL, 0);
}

Test (worker, disconnects_before_the_session_starts_are_answered_once)
{
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    //  A restarted broker answers each message sent before our READY with
    //  its own DISCONNECT: they arrive after READY and must not cause more.
    s_send_command (HP_HEARTBEAT);
    s_send_command (HP_DISCONNECT);
    s_expect_ready ("bench", 4);
    s_send_command (HP_DISCONNECT);
    s_send_command (HP_DISCONNECT);
    s_send_task ("t-4", 1, "bench", s_event);
    s_expect_result (HP_OUTCOME_DONE, "t-4", 1, NULL, 0);     //  fails on any READY before it
    s_send_command (HP_DISCONNECT);                   //  the session is live now
    s_expect_ready ("bench", 4);
}

Test (worker, silent_broker_means_new_socket_and_ready)
{
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    char first[256];
    size_t first_len = s_fx.identity_len;
    memcpy (first, s_fx.identity, first_len);
    //  Say nothing: after 3 x 50 ms the worker must reconnect.
    s_expect_ready ("bench", 4);
    cr_assert (s_fx.identity_len != first_len || memcmp (s_fx.identity, first, first_len) != 0,
               "a reconnect must come from a new socket (new identity)");
    s_send_task ("t-3", 2, "bench", s_event);
    s_expect_result (HP_OUTCOME_DONE, "t-3", 2, NULL, 0);
}

Test (worker, task_for_another_channel_and_garbage_are_dropped)
{
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    s_send_task ("t-other", 1, "email", s_event);
    //  Garbage: wrong signature, and a TASK with a missing frame.
    cr_assert_eq (zmq_send (s_fx.router, s_fx.identity, s_fx.identity_len, ZMQ_SNDMORE), (int) s_fx.identity_len);
    cr_assert_eq (zmq_send (s_fx.router, "NOPE/9", 6, 0), 6);
    cr_assert_eq (zmq_send (s_fx.router, s_fx.identity, s_fx.identity_len, ZMQ_SNDMORE), (int) s_fx.identity_len);
    cr_assert_eq (zmq_send (s_fx.router, HP_SIGNATURE, strlen (HP_SIGNATURE), ZMQ_SNDMORE), (int) strlen (HP_SIGNATURE));
    cr_assert_eq (zmq_send (s_fx.router, "TASK", 4, 0), 4);
    s_send_task ("t-mine", 1, "bench", s_event);
    //  The first answer is for t-mine: nothing was sent for the others.
    s_expect_result (HP_OUTCOME_DONE, "t-mine", 1, NULL, 0);
}

Test (worker, stop_sends_disconnect_and_returns_zero)
{
    s_start_worker (0);
    s_expect_ready ("bench", 4);
    s_fx.stop = 1;
    hw_msg_t in;
    hp_msg_t msg;
    cr_assert_eq (s_expect (HP_DISCONNECT, WAIT_MS, &in, &msg), 0, "no DISCONNECT");
    hw_msg_close (&in);
    pthread_join (s_fx.thread, NULL);
    s_fx.running = false;
    cr_assert_eq (s_fx.rc, 0);
}

Test (worker, bad_endpoint_fails_at_new)
{
    char err[512];
    herald_worker_t *worker = herald_worker_new (&s_fx.config, 0, "bogus://x", err, sizeof err);
    cr_assert_null (worker);
    cr_assert (strstr (err, "bogus://x"), "error should name the endpoint: %s", err);
    worker = herald_worker_new (&s_fx.config, 9, NULL, err, sizeof err);
    cr_assert_null (worker);
}

/*  A fake asynchronous driver: deliveries stay in progress until the test
    writes one byte per completion into a pipe (the driver's poll item). */

typedef struct {
    hd_complete_fn *complete;
    void *ctx;
    char ids[8][HP_MAX_ID + 1];
    uint64_t leases[8];         /* echoed */
    int count;
} fake_driver_t;

static int s_fake_opened, s_fake_closed;     /* instances, for the reload tests */
static int s_fake_started;                  /* deliveries started, by any instance */
static hd_outcome_t s_fake_outcome;         /* how the next completions end (HD_DONE = 0 by default) */
static int s_fake_credit;                   /* completions asked for (through the pipe, which every
                                               instance polls) and not yet done */

static void *
s_fake_open (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx, char *err, size_t errlen)
{
    s_fake_opened++;
    fake_driver_t *self = calloc (1, sizeof *self);
    self->complete = complete;
    self->ctx = ctx;
    return self;
}

static int
s_fake_start (void *self_, const hd_task_t *task)
{
    fake_driver_t *self = self_;
    if (self->count >= 8)
        return -1;
    s_fake_started++;
    snprintf (self->ids[self->count], sizeof self->ids[0], "%s", task->task_id);
    self->leases[self->count++] = task->lease;
    return 0;
}

static int
s_fake_poll_items (void *self, zmq_pollitem_t *items, int max, long *timeout_ms)
{
    if (max < 1)
        return 0;
    items[0] = (zmq_pollitem_t) { NULL, s_fake_pipe[0], ZMQ_POLLIN, 0 };
    return 1;
}

static void
s_fake_progress (void *self_, const zmq_pollitem_t *items, int count)
{
    fake_driver_t *self = self_;
    if (count == 1 && items[0].revents & ZMQ_POLLIN) {
        char bytes[16];
        ssize_t got = read (s_fake_pipe[0], bytes, sizeof bytes);
        if (got > 0)
            s_fake_credit += (int) got;
    }
    while (s_fake_credit > 0 && self->count > 0) {
        hd_result_t result = { .outcome = s_fake_outcome };
        if (s_fake_outcome == HD_THROTTLED)
            result.delay_ms = 1000;
        self->complete (self->ctx, self->ids[0], 1, self->leases[0], &result);
        memmove (self->ids[0], self->ids[1], sizeof self->ids[0] * (size_t) (self->count - 1));
        memmove (&self->leases[0], &self->leases[1], sizeof self->leases[0] * (size_t) (self->count - 1));
        self->count--;
        s_fake_credit--;
    }
}

static int
s_fake_in_progress (void *self)
{
    return ((fake_driver_t *) self)->count;
}

static void
s_fake_close (void **self_p)
{
    s_fake_closed++;
    free (*self_p);
    *self_p = NULL;
}

static const hd_driver_ops_t s_fake_ops = {
    .name = "fake", .open = s_fake_open, .start = s_fake_start, .poll_items = s_fake_poll_items,
    .progress = s_fake_progress, .in_progress = s_fake_in_progress, .close = s_fake_close
};

static void
s_fake_finish (int count)
{
    char bytes[8] = { 0 };
    cr_assert_eq (write (s_fake_pipe[1], bytes, (size_t) count), count);
}

static void
s_start_fake_worker (void)
{
    cr_assert_eq (pipe (s_fake_pipe), 0);
    s_fake_started = 0;
    s_fake_outcome = HD_DONE;
    s_fx.config.channels[0].capacity = 2;
    s_start_worker_with (0, &s_fake_ops);
    s_expect_ready ("bench", 2);
}

/*  Same with prefetch: capacity deliveries at once, capacity + prefetch
    announced as the credit. */
static void
s_start_prefetching_fake_worker (int capacity, int prefetch, int64_t lease_ms)
{
    cr_assert_eq (pipe (s_fake_pipe), 0);
    s_fake_started = 0;
    s_fake_outcome = HD_DONE;
    s_fx.config.channels[0].capacity = capacity;
    s_fx.config.channels[0].prefetch = prefetch;
    s_fx.config.channels[0].lease_ms = lease_ms;
    /*  This fake broker does not heartbeat: 1 s x 3 of silence keeps the
        worker from registering again while a lease runs out. */
    s_fx.config.broker.heartbeat_ms = 1000;
    s_start_worker_with (0, &s_fake_ops);
    s_expect_ready ("bench", (uint32_t) (capacity + prefetch));
}

/*  s_fake_started reaches count, then stays there for ms (nothing else
    starts). */
static void
s_expect_started_stays (int count, int ms)
{
    int64_t deadline = herald_clock_mono_ms () + WAIT_MS;
    while (s_fake_started < count && herald_clock_mono_ms () < deadline)
        zmq_poll (NULL, 0, 5);
    deadline = herald_clock_mono_ms () + ms;
    while (herald_clock_mono_ms () < deadline) {
        cr_assert_eq (s_fake_started, count, "deliveries started: %d, expected %d", s_fake_started, count);
        zmq_poll (NULL, 0, 5);
    }
}

Test (worker, prefetch_holds_tasks_beyond_capacity_and_runs_capacity_at_once)
{
    s_start_prefetching_fake_worker (2, 3, 60000);
    for (int i = 1; i <= 5; i++) {
        char id[16];
        snprintf (id, sizeof id, "p-%d", i);
        s_send_task (id, 1, "bench", s_event);
    }
    s_expect_started_stays (2, 200);              //  the capacity, whatever the credit
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_DONE, "p-1", 1, NULL, 0);
    s_expect_started_stays (3, 100);              //  one done, one more started
    s_fake_finish (4);
    for (int i = 2; i <= 5; i++) {
        char id[16];
        snprintf (id, sizeof id, "p-%d", i);
        s_expect_result (HP_OUTCOME_DONE, id, 1, NULL, 0);
    }
    cr_assert_eq (s_fake_started, 5);
}

Test (worker, a_task_that_waited_half_its_lease_is_released_unstarted)
{
    s_start_prefetching_fake_worker (1, 2, 600);
    int64_t sent = herald_clock_mono_ms ();
    s_send_task ("w-1", 1, "bench", s_event);     //  runs, and does not finish
    s_send_task ("w-2", 2, "bench", s_event);     //  waits behind it
    s_send_task ("w-3", 3, "bench", s_event);
    char text[HP_MAX_TEXT];
    s_expect_result (HP_OUTCOME_RELEASED, "w-2", 2, text, sizeof text);
    int64_t waited = herald_clock_mono_ms () - sent;
    cr_assert_geq (waited, 300, "released after %lld ms: before half the lease (300 ms)", (long long) waited);
    cr_assert (strstr (text, "half its lease"), "text was: %s", text);
    s_expect_result (HP_OUTCOME_RELEASED, "w-3", 3, NULL, 0);
    cr_assert_eq (s_fake_started, 1, "the released tasks never started");
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_DONE, "w-1", 1, NULL, 0);
    s_expect_started_stays (1, 100);
}

Test (worker, a_throttled_delivery_releases_what_waits_behind_it)
{
    s_start_prefetching_fake_worker (1, 2, 60000);
    s_send_task ("h-1", 1, "bench", s_event);
    s_send_task ("h-2", 2, "bench", s_event);
    s_send_task ("h-3", 3, "bench", s_event);
    s_expect_started_stays (1, 100);
    s_fake_outcome = HD_THROTTLED;
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_THROTTLED, "h-1", 1, NULL, 0);
    s_expect_result (HP_OUTCOME_RELEASED, "h-2", 2, NULL, 0);
    s_expect_result (HP_OUTCOME_RELEASED, "h-3", 3, NULL, 0);
    s_expect_started_stays (1, 100);              //  none ran into the downstream's pause
}

Test (worker, async_driver_queues_beyond_capacity_in_order)
{
    s_start_fake_worker ();
    s_send_task ("a-1", 1, "bench", s_event);
    s_send_task ("a-2", 1, "bench", s_event);
    s_send_task ("a-3", 1, "bench", s_event);     //  over the credit: held locally
    s_send_task ("a-4", 1, "bench", s_event);
    s_send_task ("a-5", 1, "bench", s_event);     //  queue full too: refused at once
    char error[HP_MAX_TEXT];
    s_expect_result (HP_OUTCOME_RETRY, "a-5", 1, error, sizeof error);
    cr_assert (strstr (error, "credit"), "error was: %s", error);
    s_fake_finish (4);
    s_expect_result (HP_OUTCOME_DONE, "a-1", 1, NULL, 0);
    s_expect_result (HP_OUTCOME_DONE, "a-2", 1, NULL, 0);
    s_expect_result (HP_OUTCOME_DONE, "a-3", 1, NULL, 0);
    s_expect_result (HP_OUTCOME_DONE, "a-4", 1, NULL, 0);
}

Test (worker, stop_waits_for_in_progress_deliveries)
{
    s_start_fake_worker ();
    s_send_task ("s-1", 4, "bench", s_event);
    s_send_task ("s-2", 4, "bench", s_event);
    s_send_task ("s-3", 4, "bench", s_event);     //  queued: dropped at stop
    s_send_task ("s-4", 4, "bench", s_event);
    s_send_task ("s-5", 4, "bench", s_event);     //  refused: proves the others arrived
    s_expect_result (HP_OUTCOME_RETRY, "s-5", 4, NULL, 0);
    hw_msg_t in;
    hp_msg_t msg;
    s_fx.stop = 1;
    //  Nothing but heartbeats until the deliveries finish.
    zmq_pollitem_t item = { s_fx.router, 0, ZMQ_POLLIN, 0 };
    int64_t until = herald_clock_mono_ms () + 300;
    while (herald_clock_mono_ms () < until) {
        if (zmq_poll (&item, 1, 50) > 0) {
            cr_assert_eq (hw_recv (s_fx.router, true, &in, 0), 0);
            cr_assert_eq (hw_decode (&in, &msg, NULL), 0);
            cr_assert_eq (msg.command, HP_HEARTBEAT, "got %s before the deliveries finished",
                          hp_command_name (msg.command));
            hw_msg_close (&in);
        }
    }
    s_fake_finish (2);
    s_expect_result (HP_OUTCOME_DONE, "s-1", 4, NULL, 0);
    s_expect_result (HP_OUTCOME_DONE, "s-2", 4, NULL, 0);
    cr_assert_eq (s_expect (HP_DISCONNECT, WAIT_MS, &in, &msg), 0, "no DISCONNECT");
    hw_msg_close (&in);
    pthread_join (s_fx.thread, NULL);
    s_fx.running = false;
    cr_assert_eq (s_fx.rc, 0);
}

Test (worker, stop_gives_up_after_the_shutdown_budget)
{
    s_fx.config.broker.shutdown_timeout_ms = 200;
    s_start_fake_worker ();
    s_send_task ("g-1", 1, "bench", s_event);
    s_send_task ("g-2", 1, "bench", s_event);
    s_send_task ("g-3", 1, "bench", s_event);
    s_send_task ("g-4", 1, "bench", s_event);
    s_send_task ("g-5", 1, "bench", s_event);
    s_expect_result (HP_OUTCOME_RETRY, "g-5", 1, NULL, 0);
    hw_msg_t in;
    hp_msg_t msg;
    int64_t start = herald_clock_mono_ms ();
    s_fx.stop = 1;
    cr_assert_eq (s_expect (HP_DISCONNECT, WAIT_MS, &in, &msg), 0, "no DISCONNECT");
    hw_msg_close (&in);
    cr_assert_geq (herald_clock_mono_ms () - start, 150);
    pthread_join (s_fx.thread, NULL);
    s_fx.running = false;
    cr_assert_eq (s_fx.rc, 0);
}

/*  A synchronous driver whose result quotes a URL with credentials and a
    webhook token, and a server's answer with a token and a line break. */
static int
s_leaky_start (void *self_, const hd_task_t *task)
{
    fake_driver_t *self = self_;
    hd_result_t result = { .outcome = HD_RETRY };
    snprintf (result.text, sizeof result.text,
              "POST https://user:pa55@hooks.slack.com/services/T000/B000/XXXXXXXX: HTTP 500: "
              "{\"token\":\"s3cr3t\"}\r\nX-Evil: 1");
    self->complete (self->ctx, task->task_id, task->attempt, task->lease, &result);
    return 0;
}

static const hd_driver_ops_t s_leaky_ops = {
    .name = "leaky", .open = s_fake_open, .start = s_leaky_start, .in_progress = s_fake_in_progress,
    .close = s_fake_close
};

Test (worker, reported_errors_carry_no_secret_and_one_line)
{
    s_start_worker_with (0, &s_leaky_ops);
    s_expect_ready ("bench", 4);
    s_send_task ("k-1", 1, "bench", s_event);
    char error[HP_MAX_TEXT];
    s_expect_result (HP_OUTCOME_RETRY, "k-1", 1, error, sizeof error);
    cr_assert_str_eq (error, "POST https://***@hooks.slack.com/services/T000/B000/***: HTTP 500: "
                             "{\"token\":\"***\"}  X-Evil: 1");
}

/*  ---------------------------------------------------------------- reload */

static volatile sig_atomic_t s_reload;

/*  Writes the worker's configuration file (bench: capacity, email: the
    file driver) and loads it into s_fx.config, so that a reload reads
    the file again. */
static void
s_write_config (int capacity, const char *heartbeat)
{
    char path[256], text[2048];
    snprintf (path, sizeof path, "%s/herald.yaml", s_fx.dir);
    snprintf (text, sizeof text,
              "broker:\n"
              "  listen: { workers: \"%s\", producers: \"ipc://%s/p.sock\", admin: \"ipc://%s/a.sock\" }\n"
              "  store: %s/herald.db\n"
              "  heartbeat: %s\n"
              "  shutdown_timeout: 2s\n"
              "channels:\n"
              "  bench: { driver: noop, capacity: %d, prefetch: 0 }\n"
              "  email: { driver: file, dir: %s/out/email, capacity: 2 }\n"
              "events:\n"
              "  order.confirmed: { fanout: [bench, email] }\n",
              s_fx.endpoint, s_fx.dir, s_fx.dir, s_fx.dir, heartbeat, capacity, s_fx.dir);
    FILE *f = fopen (path, "w");
    cr_assert_not_null (f);
    fputs (text, f);
    fclose (f);
    if (!s_fx.worker) {
        char err[HERALD_ERR_MAX];
        cr_assert_eq (herald_config_load (&s_fx.config, path, err, sizeof err), 0, "%s", err);
    }
}

static void
s_start_reloadable_fake_worker (int capacity)
{
    cr_assert_eq (pipe (s_fake_pipe), 0);
    /*  Every instance polls the pipe: the one that reads a byte may not be
        the one that finishes a delivery, and the other must not block. */
    cr_assert_eq (fcntl (s_fake_pipe[0], F_SETFL, O_NONBLOCK), 0);
    s_fake_opened = s_fake_closed = s_fake_started = s_fake_credit = 0;
    s_write_config (capacity, "1s");
    char err[512];
    s_fx.worker = herald_worker_new_with_driver (&s_fx.config, 0, NULL, &s_fake_ops, err, sizeof err);
    cr_assert_not_null (s_fx.worker, "%s", err);
    s_reload = 0;
    herald_worker_watch_reload (s_fx.worker, &s_reload);
    cr_assert_eq (pthread_create (&s_fx.thread, NULL, s_run, NULL), 0);
    s_fx.running = true;
    s_expect_ready ("bench", (uint32_t) capacity);
}

/*  Waits until the fake driver has started count deliveries. */
static void
s_wait_started (int count)
{
    int64_t deadline = herald_clock_mono_ms () + WAIT_MS;
    while (s_fake_started < count && herald_clock_mono_ms () < deadline)
        zmq_poll (NULL, 0, 5);
    cr_assert_geq (s_fake_started, count, "deliveries started: %d", s_fake_started);
}

/*  Waits until the fake driver counters are these. */
static bool
s_wait_opened (int opened, int closed)
{
    int64_t deadline = herald_clock_mono_ms () + WAIT_MS;
    while (herald_clock_mono_ms () < deadline) {
        if (s_fake_opened == opened && s_fake_closed == closed)
            return true;
        zmq_poll (NULL, 0, 5);
    }
    return false;
}

Test (worker, reload_opens_a_new_driver_and_the_old_one_finishes_its_deliveries)
{
    s_start_reloadable_fake_worker (2);
    s_send_task ("r-1", 1, "bench", s_event);
    s_send_task ("r-2", 1, "bench", s_event);
    s_wait_started (2);
    s_write_config (2, "2s");           /* a change that needs no new session */
    s_reload = 1;
    cr_assert (s_wait_opened (2, 0), "a reload opens the driver again and keeps the busy one: opened %d closed %d",
               s_fake_opened, s_fake_closed);
    /*  The old instance holds r-1 and r-2: the credit is full, r-3 waits. */
    s_send_task ("r-3", 1, "bench", s_event);
    s_fake_finish (2);
    s_expect_result (HP_OUTCOME_DONE, "r-1", 1, NULL, 0);
    s_expect_result (HP_OUTCOME_DONE, "r-2", 1, NULL, 0);
    cr_assert (s_wait_opened (2, 1), "the old instance is closed once its deliveries are done: closed %d",
               s_fake_closed);
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_DONE, "r-3", 1, NULL, 0);
    s_send_task ("r-4", 1, "bench", s_event);
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_DONE, "r-4", 1, NULL, 0);
    cr_assert_eq (s_fake_opened, 2);
}

Test (worker, reload_with_a_new_capacity_registers_again_once_idle)
{
    s_start_reloadable_fake_worker (2);
    char first[256];
    size_t first_len = s_fx.identity_len;
    memcpy (first, s_fx.identity, first_len);
    s_send_task ("c-1", 1, "bench", s_event);
    s_wait_started (1);
    s_write_config (3, "1s");
    s_reload = 1;
    cr_assert (s_wait_opened (2, 0), "opened %d closed %d", s_fake_opened, s_fake_closed);
    /*  Sent after the reload, before the new session: not started (the
        broker gives it back at the DISCONNECT). */
    s_send_task ("c-2", 1, "bench", s_event);
    hw_msg_t in;
    hp_msg_t msg;
    zmq_pollitem_t item = { s_fx.router, 0, ZMQ_POLLIN, 0 };
    int64_t until = herald_clock_mono_ms () + 200;
    while (herald_clock_mono_ms () < until) {
        if (zmq_poll (&item, 1, 20) > 0) {
            cr_assert_eq (hw_recv (s_fx.router, true, &in, 0), 0);
            cr_assert_eq (hw_decode (&in, &msg, NULL), 0);
            cr_assert_eq (msg.command, HP_HEARTBEAT, "got %s while c-1 is in progress", hp_command_name (msg.command));
            hw_msg_close (&in);
        }
    }
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_DONE, "c-1", 1, NULL, 0);
    /*  The old session's DISCONNECT and the new one's READY come over two
        connections: a ROUTER keeps no order between them. */
    bool disconnected = false, ready = false;
    int64_t deadline = herald_clock_mono_ms () + WAIT_MS;
    while (!(disconnected && ready) && herald_clock_mono_ms () < deadline) {
        if (zmq_poll (&item, 1, 20) <= 0)
            continue;
        cr_assert_eq (hw_recv (s_fx.router, true, &in, 0), 0);
        cr_assert_eq (hw_decode (&in, &msg, NULL), 0);
        bool old = in.identity.len == first_len && memcmp (in.identity.ptr, first, first_len) == 0;
        if (msg.command == HP_READY) {
            cr_assert (!old, "the new READY comes on a new connection");
            s_take_ready (&in, &msg, "bench", 3);
            ready = true;
            continue;
        }
        if (msg.command == HP_DISCONNECT) {
            cr_assert (old, "the DISCONNECT ends the old session");
            disconnected = true;
        }
        else
            cr_assert_eq (msg.command, HP_HEARTBEAT, "unexpected %s", hp_command_name (msg.command));
        hw_msg_close (&in);
    }
    cr_assert (disconnected, "no DISCONNECT once idle");
    cr_assert (ready, "no READY with the new capacity");
    s_send_task ("c-3", 1, "bench", s_event);
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_DONE, "c-3", 1, NULL, 0);
}

Test (worker, reload_of_an_invalid_file_changes_nothing)
{
    s_start_reloadable_fake_worker (2);
    char path[256];
    snprintf (path, sizeof path, "%s/herald.yaml", s_fx.dir);
    FILE *f = fopen (path, "a");
    cr_assert_not_null (f);
    fputs ("broker: [\n", f);
    fclose (f);
    s_reload = 1;
    int64_t deadline = herald_clock_mono_ms () + WAIT_MS;
    while (s_reload && herald_clock_mono_ms () < deadline)
        zmq_poll (NULL, 0, 5);
    cr_assert_eq (s_reload, 0, "the worker looked at the reload request");
    cr_assert_eq (s_fake_opened, 1, "no driver opened for an invalid file");
    s_send_task ("i-1", 1, "bench", s_event);
    s_fake_finish (1);
    s_expect_result (HP_OUTCOME_DONE, "i-1", 1, NULL, 0);
}
