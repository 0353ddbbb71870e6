/*  test_wire: ZeroMQ I/O (proto/herald_wire.c) over ipc:// in a private
    temporary directory and tcp://127.0.0.1:*. Every blocking call has a
    receive/send timeout, so a broken build fails instead of hanging. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald_wire.h"

#define S_TIMEOUT_MS 5000

static void *s_ctx;
static char s_dir[64];
static char s_endpoint[128];

static void
s_setup (void)
{
    s_ctx = zmq_ctx_new ();
    cr_assert_not_null (s_ctx);
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-wire-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    snprintf (s_endpoint, sizeof s_endpoint, "ipc://%s/broker", s_dir);
}

static void
s_teardown (void)
{
    zmq_ctx_term (s_ctx);
    char path[128];
    snprintf (path, sizeof path, "%s/broker", s_dir);
    unlink (path);
    rmdir (s_dir);
}

TestSuite (wire, .init = s_setup, .fini = s_teardown);

static void
s_timeouts (void *socket)
{
    int timeout = S_TIMEOUT_MS;
    cr_assert_eq (zmq_setsockopt (socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    cr_assert_eq (zmq_setsockopt (socket, ZMQ_SNDTIMEO, &timeout, sizeof timeout), 0);
}

static void *
s_socket (hw_role_t role, const char *endpoint)
{
    hw_options_t options = { .hwm = 1000, .max_msg_size = 1 << 20, .linger_ms = 0 };
    char err[256];
    void *socket = hw_socket_new (s_ctx, role, endpoint, &options, err, sizeof err);
    cr_assert_not_null (socket, "%s", err);
    s_timeouts (socket);
    return socket;
}

Test (wire, router_dealer_round_trip)
{
    void *router = s_socket (HW_PRODUCER_ROUTER, s_endpoint);
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);

    hp_msg_t publish = { .command = HP_PUBLISH, .corr = hp_str ("c-1"),
                         .body = hp_str ("{\"type\":\"order.confirmed\"}") };
    cr_assert_eq (hw_send (dealer, hp_strn (NULL, 0), &publish, 0), 0, "%s", zmq_strerror (errno));

    hw_msg_t in;
    cr_assert_eq (hw_recv (router, true, &in, 0), 0, "%s", zmq_strerror (errno));
    cr_assert_gt (in.identity.len, 0u);
    cr_assert_eq (in.count, 4u);
    cr_assert (!in.too_many_frames);
    hp_msg_t msg;
    hp_error_t err;
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert_eq (msg.command, HP_PUBLISH);
    cr_assert (hp_str_eq (msg.corr, "c-1"));
    cr_assert (hp_str_eq (msg.body, "{\"type\":\"order.confirmed\"}"));

    hp_msg_t ack = { .command = HP_ACK, .corr = msg.corr, .event_id = hp_str ("e-1"),
                     .duplicate = false, .durability = hp_str ("fsync") };
    cr_assert_eq (hw_send (router, in.identity, &ack, ZMQ_DONTWAIT), 0, "%s", zmq_strerror (errno));
    hw_msg_close (&in);
    hw_msg_close (&in);             /* safe twice */

    cr_assert_eq (hw_recv (dealer, false, &in, 0), 0, "%s", zmq_strerror (errno));
    cr_assert_null (in.identity.ptr);
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert_eq (msg.command, HP_ACK);
    cr_assert (hp_str_eq (msg.corr, "c-1"));
    cr_assert (hp_str_eq (msg.event_id, "e-1"));
    cr_assert (!msg.duplicate);
    cr_assert (hp_str_eq (msg.durability, "fsync"));
    hw_msg_close (&in);

    zmq_close (dealer);
    zmq_close (router);
}

Test (wire, worker_round_trip_and_heartbeat)
{
    void *router = s_socket (HW_WORKER_ROUTER, s_endpoint);
    void *worker = s_socket (HW_WORKER_DEALER, s_endpoint);

    hp_msg_t ready = { .command = HP_READY, .channel = hp_str ("email"), .capacity = 4,
                       .worker = hp_str ("host:1"), .max_batch = 4 };
    cr_assert_eq (hw_send (worker, hp_strn (NULL, 0), &ready, 0), 0);
    hw_msg_t in;
    hp_msg_t msg;
    hp_error_t err;
    cr_assert_eq (hw_recv (router, true, &in, 0), 0);
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert_eq (msg.command, HP_READY);
    cr_assert_eq (msg.capacity, 4u);
    cr_assert_eq (msg.max_batch, 4u);

    /*  the identity is copied before the message is closed */
    char identity[256];
    size_t identity_len = in.identity.len;
    cr_assert_lt (identity_len, sizeof identity);
    memcpy (identity, in.identity.ptr, identity_len);
    hw_msg_close (&in);

    hp_task_t entry = { .task_id = hp_str ("t-1"), .attempt = 1, .lease = 5, .body = hp_str ("{}") };
    char entries[64];
    cr_assert_lt (hp_task_size (&entry), sizeof entries);
    size_t entries_len = hp_task_put (entries, &entry);
    hp_msg_t task = { .command = HP_TASKS, .channel = hp_str ("email"),
                      .batch = hp_strn (entries, entries_len), .batch_count = 1 };
    hp_msg_t heartbeat = { .command = HP_HEARTBEAT };
    cr_assert_eq (hw_send (router, hp_strn (identity, identity_len), &task, ZMQ_DONTWAIT), 0);
    cr_assert_eq (hw_send (router, hp_strn (identity, identity_len), &heartbeat, ZMQ_DONTWAIT), 0);

    cr_assert_eq (hw_recv (worker, false, &in, 0), 0);
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert_eq (msg.command, HP_TASKS);
    cr_assert_eq (msg.batch_count, 1u);
    hp_str_t cursor = msg.batch;
    hp_task_t got;
    cr_assert (hp_next_task (&cursor, &got));
    cr_assert (hp_str_eq (got.task_id, "t-1") && got.lease == 5 && got.attempt == 1);
    cr_assert (hp_str_eq (got.body, "{}"));
    cr_assert_not (hp_next_task (&cursor, &got));
    hw_msg_close (&in);
    cr_assert_eq (hw_recv (worker, false, &in, 0), 0);
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert_eq (msg.command, HP_HEARTBEAT);
    cr_assert_eq (in.count, 2u);
    hw_msg_close (&in);

    zmq_close (worker);
    zmq_close (router);
}

Test (wire, too_many_frames_are_drained)
{
    void *router = s_socket (HW_PRODUCER_ROUTER, s_endpoint);
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);

    /*  12 frames: a PUBLISH with 8 extra frames */
    const char *parts[12] = { "HERALD/1", "PUBLISH", "c-big", "{}", "x", "x", "x", "x",
                              "x", "x", "x", "last" };
    for (int i = 0; i < 12; i++)
        cr_assert_neq (zmq_send (dealer, parts[i], strlen (parts[i]), i < 11? ZMQ_SNDMORE: 0), -1);
    hp_msg_t publish = { .command = HP_PUBLISH, .corr = hp_str ("c-next"), .body = hp_str ("{}") };
    cr_assert_eq (hw_send (dealer, hp_strn (NULL, 0), &publish, 0), 0);

    hw_msg_t in;
    hp_msg_t msg;
    hp_error_t err;
    cr_assert_eq (hw_recv (router, true, &in, 0), 0, "%s", zmq_strerror (errno));
    cr_assert (in.too_many_frames);
    cr_assert_eq (in.count, (size_t) HP_MAX_FRAMES);
    cr_assert_gt (in.identity.len, 0u);
    cr_assert_eq (hw_decode (&in, &msg, &err), -1);
    cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
    cr_assert (strstr (err.text, "too many frames"), "%s", err.text);
    cr_assert_eq (msg.command, HP_PUBLISH, "the command is kept for a NACK");
    cr_assert (hp_str_eq (msg.corr, "c-big"), "the corr is kept for a NACK");
    hw_msg_close (&in);

    cr_assert_eq (hw_recv (router, true, &in, 0), 0, "%s", zmq_strerror (errno));
    cr_assert (!in.too_many_frames);
    cr_assert_eq (in.count, 4u);
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert (hp_str_eq (msg.corr, "c-next"));
    hw_msg_close (&in);

    zmq_close (dealer);
    zmq_close (router);
}

Test (wire, dealer_side_too_many_frames)
{
    void *router = s_socket (HW_WORKER_ROUTER, s_endpoint);
    void *worker = s_socket (HW_WORKER_DEALER, s_endpoint);
    hp_msg_t heartbeat = { .command = HP_HEARTBEAT };
    cr_assert_eq (hw_send (worker, hp_strn (NULL, 0), &heartbeat, 0), 0);
    hw_msg_t in;
    cr_assert_eq (hw_recv (router, true, &in, 0), 0);
    char identity[256];
    size_t identity_len = in.identity.len;
    memcpy (identity, in.identity.ptr, identity_len);
    hw_msg_close (&in);

    cr_assert_neq (zmq_send (router, identity, identity_len, ZMQ_SNDMORE), -1);
    for (int i = 0; i < 9; i++)
        cr_assert_neq (zmq_send (router, "f", 1, i < 8? ZMQ_SNDMORE: 0), -1);
    cr_assert_eq (hw_send (router, hp_strn (identity, identity_len), &heartbeat, 0), 0);

    cr_assert_eq (hw_recv (worker, false, &in, 0), 0);
    cr_assert (in.too_many_frames);
    cr_assert_eq (in.count, (size_t) HP_MAX_FRAMES);
    hp_msg_t msg;
    hp_error_t err;
    cr_assert_eq (hw_decode (&in, &msg, &err), -1);
    cr_assert_eq (err.code, HP_CODE_BAD_REQUEST);
    cr_assert_str_eq (err.text, "frame 0 (signature): not HERALD/2",
                      "signature errors come before the frame count");
    hw_msg_close (&in);
    cr_assert_eq (hw_recv (worker, false, &in, 0), 0);
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert_eq (msg.command, HP_HEARTBEAT);
    hw_msg_close (&in);

    zmq_close (worker);
    zmq_close (router);
}

Test (wire, send_to_unknown_peer_is_ehostunreach)
{
    void *router = s_socket (HW_PRODUCER_ROUTER, s_endpoint);
    hp_msg_t ack = { .command = HP_ACK, .corr = hp_str ("c"), .event_id = hp_str ("e"),
                     .durability = hp_str ("fsync") };
    errno = 0;
    cr_assert_eq (hw_send (router, hp_str ("no-such-peer"), &ack, ZMQ_DONTWAIT), -1);
    cr_assert_eq (errno, EHOSTUNREACH, "errno %d (%s)", errno, zmq_strerror (errno));
    errno = 0;
    cr_assert_eq (hw_send (router, hp_str ("no-such-peer"), &ack, 0), -1);
    cr_assert_eq (errno, EHOSTUNREACH);

    /*  nothing half-sent is left on the socket: a real peer still gets a whole message */
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);
    hp_msg_t heartbeat = { .command = HP_HEARTBEAT };
    cr_assert_eq (hw_send (dealer, hp_strn (NULL, 0), &heartbeat, 0), 0);
    hw_msg_t in;
    cr_assert_eq (hw_recv (router, true, &in, 0), 0);
    char identity[256];
    size_t identity_len = in.identity.len;
    memcpy (identity, in.identity.ptr, identity_len);
    hw_msg_close (&in);
    cr_assert_eq (hw_send (router, hp_strn (identity, identity_len), &ack, 0), 0);
    cr_assert_eq (hw_recv (dealer, false, &in, 0), 0);
    hp_msg_t msg;
    hp_error_t err;
    cr_assert_eq (hw_decode (&in, &msg, &err), 0, "%s", err.text);
    cr_assert_eq (msg.command, HP_ACK);
    hw_msg_close (&in);

    zmq_close (dealer);
    zmq_close (router);
}

Test (wire, client_without_broker_cannot_send)
{
    /*  ZMQ_IMMEDIATE: nothing is queued for a broker that is not there */
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);
    hp_msg_t heartbeat = { .command = HP_HEARTBEAT };
    errno = 0;
    cr_assert_eq (hw_send (dealer, hp_strn (NULL, 0), &heartbeat, ZMQ_DONTWAIT), -1);
    cr_assert_eq (errno, EAGAIN);
    zmq_close (dealer);
}

Test (wire, recv_dontwait_on_empty_socket)
{
    void *router = s_socket (HW_ADMIN_ROUTER, s_endpoint);
    hw_msg_t in;
    errno = 0;
    cr_assert_eq (hw_recv (router, true, &in, ZMQ_DONTWAIT), -1);
    cr_assert_eq (errno, EAGAIN);
    hw_msg_close (&in);
    hw_msg_close (&in);
    zmq_close (router);
}

Test (wire, invalid_message_is_not_sent)
{
    void *router = s_socket (HW_PRODUCER_ROUTER, s_endpoint);
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);
    /*  a READY whose capacity is out of range */
    hp_msg_t bad = { .command = HP_READY, .channel = hp_str ("email"), .capacity = 0,
                     .worker = hp_str ("host:1"), .max_batch = 1 };
    errno = 0;
    cr_assert_eq (hw_send (dealer, hp_strn (NULL, 0), &bad, 0), -1);
    cr_assert_eq (errno, EINVAL);
    hp_msg_t heartbeat = { .command = HP_HEARTBEAT };
    cr_assert_eq (hw_send (dealer, hp_strn (NULL, 0), &heartbeat, 0), 0);
    hw_msg_t in;
    hp_msg_t msg;
    cr_assert_eq (hw_recv (router, true, &in, 0), 0);
    cr_assert_eq (hw_decode (&in, &msg, NULL), 0);
    cr_assert_eq (msg.command, HP_HEARTBEAT, "the invalid message left nothing behind");
    hw_msg_close (&in);
    zmq_close (dealer);
    zmq_close (router);
}

Test (wire, socket_options_applied)
{
    hw_options_t options = { .hwm = 1234, .max_msg_size = 65536, .linger_ms = 250 };
    char err[256];
    void *router = hw_socket_new (s_ctx, HW_PRODUCER_ROUTER, s_endpoint, &options, err, sizeof err);
    cr_assert_not_null (router, "%s", err);
    void *dealer = hw_socket_new (s_ctx, HW_CLIENT_DEALER, s_endpoint, &options, err, sizeof err);
    cr_assert_not_null (dealer, "%s", err);
    void *worker = hw_socket_new (s_ctx, HW_WORKER_DEALER, s_endpoint, NULL, err, sizeof err);
    cr_assert_not_null (worker, "%s", err);

    int value;
    size_t size = sizeof value;
    cr_assert_eq (zmq_getsockopt (router, ZMQ_TYPE, &value, &size), 0);
    cr_assert_eq (value, ZMQ_ROUTER);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (router, ZMQ_SNDHWM, &value, &size), 0);
    cr_assert_eq (value, 1234);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (router, ZMQ_RCVHWM, &value, &size), 0);
    cr_assert_eq (value, 1234);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (router, ZMQ_LINGER, &value, &size), 0);
    cr_assert_eq (value, 250);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (router, ZMQ_HANDSHAKE_IVL, &value, &size), 0);
    cr_assert_eq (value, 5000);
    int64_t max_size;
    size = sizeof max_size;
    cr_assert_eq (zmq_getsockopt (router, ZMQ_MAXMSGSIZE, &max_size, &size), 0);
    cr_assert_eq (max_size, 65536);

    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (dealer, ZMQ_TYPE, &value, &size), 0);
    cr_assert_eq (value, ZMQ_DEALER);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (dealer, ZMQ_IMMEDIATE, &value, &size), 0);
    cr_assert_eq (value, 1);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (dealer, ZMQ_RECONNECT_IVL, &value, &size), 0);
    cr_assert_eq (value, 100);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (dealer, ZMQ_RECONNECT_IVL_MAX, &value, &size), 0);
    cr_assert_eq (value, 2000);

    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (worker, ZMQ_IMMEDIATE, &value, &size), 0);
    cr_assert_eq (value, 0, "a worker queues across reconnects");
    size = sizeof max_size;
    cr_assert_eq (zmq_getsockopt (worker, ZMQ_MAXMSGSIZE, &max_size, &size), 0);
    cr_assert_eq (max_size, -1);
    size = sizeof value;
    cr_assert_eq (zmq_getsockopt (worker, ZMQ_LINGER, &value, &size), 0);
    cr_assert_eq (value, 0);

    zmq_close (worker);
    zmq_close (dealer);
    zmq_close (router);
}

Test (wire, bind_in_use_names_the_endpoint)
{
    void *first = s_socket (HW_PRODUCER_ROUTER, "tcp://127.0.0.1:*");
    char endpoint[256];
    size_t size = sizeof endpoint;
    cr_assert_eq (zmq_getsockopt (first, ZMQ_LAST_ENDPOINT, endpoint, &size), 0);

    char err[256] = "unchanged";
    void *second = hw_socket_new (s_ctx, HW_WORKER_ROUTER, endpoint, NULL, err, sizeof err);
    cr_assert_null (second);
    char expected[320];
    snprintf (expected, sizeof expected, "bind %s: %s", endpoint, zmq_strerror (EADDRINUSE));
    cr_assert_str_eq (err, expected);
    cr_assert (strstr (err, "Address already in use"), "%s", err);
    zmq_close (first);
}

static bool
s_starts_with (const char *text, const char *prefix)
{
    return strncmp (text, prefix, strlen (prefix)) == 0;
}

Test (wire, bad_endpoints_are_reported)
{
    char err[256];
    cr_assert_null (hw_socket_new (s_ctx, HW_CLIENT_DEALER, "bogus://x", NULL, err, sizeof err));
    cr_assert (s_starts_with (err, "connect bogus://x: "), "%s", err);
    cr_assert_null (hw_socket_new (s_ctx, HW_ADMIN_ROUTER, "tcp://no-such-host.invalid:1",
                                   NULL, err, sizeof err));
    cr_assert (s_starts_with (err, "bind tcp://no-such-host.invalid:1: "), "%s", err);
    cr_assert_null (hw_socket_new (s_ctx, HW_CLIENT_DEALER, NULL, NULL, err, sizeof err));
    cr_assert_null (hw_socket_new (s_ctx, HW_CLIENT_DEALER, "bogus://x", NULL, NULL, 0));
}

/*  One round trip dealer -> router -> dealer; false if either side times out. */
static bool
s_round_trip (void *router, void *dealer)
{
    hp_msg_t publish = { .command = HP_PUBLISH, .corr = hp_str ("c"), .body = hp_str ("{}") };
    if (hw_send (dealer, hp_strn (NULL, 0), &publish, 0) != 0)
        return false;
    hw_msg_t in;
    if (hw_recv (router, true, &in, 0) != 0)
        return false;
    hp_msg_t ack = { .command = HP_ACK, .corr = hp_str ("c"), .event_id = hp_str ("e"),
                     .durability = hp_str ("fsync") };
    int rc = hw_send (router, in.identity, &ack, ZMQ_DONTWAIT);
    hw_msg_close (&in);
    if (rc != 0 || hw_recv (dealer, false, &in, 0) != 0)
        return false;
    hw_msg_close (&in);
    return true;
}

/*  A client or worker closes its watched socket when it reconnects: libzmq
    sends the socket's last events (a disconnection) from its I/O thread
    after zmq_close returns, and blocks that thread for good if the watch
    that reads them is gone, so every later connection of the process stops
    in its handshake (seen: a worker that never registered again with a
    restarted broker). hw_watch_close stops the monitor first. */
Test (wire, closing_a_watched_socket_never_stalls_the_io_thread, .timeout = 120)
{
    int short_timeout = 2000;
    for (int i = 0; i < 200; i++) {
        /*  The broker goes away (its end closes: the I/O thread has a
            disconnection to report) as the client closes its socket. */
        char endpoint[160];
        snprintf (endpoint, sizeof endpoint, "%s-%d", s_endpoint, i);
        void *router = s_socket (HW_WORKER_ROUTER, endpoint);
        hw_options_t options = { .hwm = 1000, .max_msg_size = 1 << 20, .linger_ms = 0 };
        hw_watch_t *watch = hw_watch_new (s_ctx, &options);
        cr_assert_not_null (watch);
        char err[256];
        void *dealer = hw_socket_new (s_ctx, HW_CLIENT_DEALER, endpoint, &options, err, sizeof err);
        cr_assert_not_null (dealer, "%s", err);
        zmq_setsockopt (dealer, ZMQ_RCVTIMEO, &short_timeout, sizeof short_timeout);
        zmq_setsockopt (dealer, ZMQ_SNDTIMEO, &short_timeout, sizeof short_timeout);
        bool ok = s_round_trip (router, dealer);
        zmq_close (router);
        hw_watch_close (&watch, dealer, 0);
        cr_assert_null (watch);
        char path[200];
        snprintf (path, sizeof path, "%s", endpoint + strlen ("ipc://"));
        unlink (path);
        cr_assert (ok, "connection %d made no round trip: the I/O thread is stuck", i);
    }
}

/*  Sends one monitor event (libzmq's two frames) to a watch. */
static void
s_monitor_event (void *monitor, uint16_t event, uint32_t value)
{
    unsigned char head[6];
    memcpy (head, &event, 2);
    memcpy (head + 2, &value, 4);
    cr_assert_eq (zmq_send (monitor, head, sizeof head, ZMQ_SNDMORE), (int) sizeof head);
    cr_assert_eq (zmq_send (monitor, "tcp://127.0.0.1:1", 17, 0), 17);
}

/*  A watch made with options, and a PAIR bound where it listens: what is
    sent there reaches the watch as libzmq's monitor events would. */
static hw_watch_t *
s_watch_fed (hw_options_t *options, void **monitor)
{
    hw_watch_t *watch = hw_watch_new (s_ctx, options);
    cr_assert_not_null (watch);
    *monitor = zmq_socket (s_ctx, ZMQ_PAIR);
    cr_assert_eq (zmq_bind (*monitor, options->monitor), 0);
    return watch;
}

static void
s_watch_fed_destroy (hw_watch_t **watch, void *monitor)
{
    int linger = 0;
    zmq_setsockopt (monitor, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (monitor);
    hw_watch_destroy (watch);
}

/*  A client reconnects after a refusal; libzmq may close the next attempt
    before the broker's ERROR is read (a bare close). The refusal's reason
    stands until a handshake succeeds (a CI run under ASan said "wrong
    broker key" for a key the broker had refused). */
Test (wire, a_bare_close_after_a_refusal_keeps_the_reason)
{
    hw_options_t options = { .curve_server = "a CURVE client (the watch only looks whether it is set)" };
    void *monitor;
    hw_watch_t *watch = s_watch_fed (&options, &monitor);
    char text[256];
    s_monitor_event (monitor, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400);
    s_monitor_event (monitor, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0);
    cr_assert (hw_watch_failed (watch, text, sizeof text));
    cr_expect (strstr (text, "refused this client's key (ZAP 400)"), "%s", text);
    /*  A success clears it; a bare close alone then says what it can. */
    s_monitor_event (monitor, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
    cr_assert_not (hw_watch_failed (watch, text, sizeof text));
    s_monitor_event (monitor, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0);
    cr_assert (hw_watch_failed (watch, text, sizeof text));
    cr_expect (strstr (text, "closed the connection during the CURVE handshake: wrong broker key"), "%s", text);
    cr_expect (strstr (text, "or the broker refused this client's key"), "%s", text);
    s_watch_fed_destroy (&watch, monitor);
}

/*  A client without a key that the broker closes on with no word: most
    likely a CURVE broker (its greeting, which would say so, can be lost
    with the connection), and the reason says so, not "wrong broker key",
    which means nothing to a client without keys. */
Test (wire, a_bare_close_on_a_client_without_keys_suggests_a_security_mismatch)
{
    hw_options_t options = { 0 };
    void *monitor;
    hw_watch_t *watch = s_watch_fed (&options, &monitor);
    char text[256];
    s_monitor_event (monitor, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32);
    cr_assert (hw_watch_failed (watch, text, sizeof text));
    cr_expect (strstr (text, "security mismatch"), "%s", text);
    cr_expect_null (strstr (text, "broker key"), "%s", text);
    /*  The broker's own word, when it comes, replaces the guess. */
    s_monitor_event (monitor, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH);
    cr_assert (hw_watch_failed (watch, text, sizeof text));
    cr_expect (strstr (text, "security mismatch: the broker uses CURVE"), "%s", text);
    s_watch_fed_destroy (&watch, monitor);
}

//  --------------------------------------------------------------------------
//  hw_poll

/*  test_wire links with -Wl,--wrap=poll (tests/CMakeLists.txt): the wire's
    own poll() comes here, so a test can make it fail with EINTR, as a
    signal arriving during the wait would. */
int __real_poll (struct pollfd *fds, nfds_t count, int timeout);
int __wrap_poll (struct pollfd *fds, nfds_t count, int timeout);
static int s_poll_interrupts;       /* polls left to fail with EINTR */

int
__wrap_poll (struct pollfd *fds, nfds_t count, int timeout)
{
    if (s_poll_interrupts > 0) {
        s_poll_interrupts--;
        errno = EINTR;
        return -1;
    }
    return __real_poll (fds, count, timeout);
}

static void
s_publish (void *dealer, const char *corr)
{
    hp_msg_t publish = { .command = HP_PUBLISH, .corr = hp_str (corr), .body = hp_str ("{}") };
    cr_assert_eq (hw_send (dealer, hp_strn (NULL, 0), &publish, 0), 0, "%s", zmq_strerror (errno));
}

static bool
s_receive (void *router)
{
    hw_msg_t in;
    int rc = hw_recv (router, true, &in, ZMQ_DONTWAIT);
    hw_msg_close (&in);
    return rc == 0;
}

Test (wire, hw_poll_wakes_for_a_message_and_reports_only_the_socket_it_came_to)
{
    void *router = s_socket (HW_PRODUCER_ROUTER, s_endpoint);
    char other_endpoint[160];
    snprintf (other_endpoint, sizeof other_endpoint, "%s-admin", s_endpoint);
    void *other = s_socket (HW_ADMIN_ROUTER, other_endpoint);
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);
    int pipe_fds[2];
    cr_assert_eq (pipe (pipe_fds), 0);

    hw_pollitem_t items[3];
    cr_assert_eq (hw_poll_socket (&items[0], router), 0);
    cr_assert_eq (hw_poll_socket (&items[1], other), 0);
    hw_poll_fd (&items[2], pipe_fds[0]);
    cr_assert_eq (hw_poll (items, 3, 0), 0, "nothing has arrived");

    s_publish (dealer, "c-1");
    cr_assert_eq (hw_poll (items, 3, S_TIMEOUT_MS), 1);
    cr_assert (items[0].ready && !items[1].ready && !items[2].ready);
    cr_assert (s_receive (router));
    cr_assert (!s_receive (router));
    items[0].check = true;          /* received from */
    cr_assert_eq (hw_poll (items, 3, 0), 0);

    cr_assert_eq (write (pipe_fds[1], "x", 1), 1);
    cr_assert_eq (hw_poll (items, 3, S_TIMEOUT_MS), 1);
    cr_assert (!items[0].ready && !items[1].ready && items[2].ready);

    zmq_close (dealer);
    zmq_close (other);
    zmq_close (router);
    close (pipe_fds[0]);
    close (pipe_fds[1]);
}

/*  A signal during the wait: the sockets already asked and found ready are
    reported (asking took their signal, which will not come again); with
    none ready, the caller gets EINTR. */
Test (wire, hw_poll_interrupted_returns_the_sockets_already_found_ready)
{
    void *router = s_socket (HW_PRODUCER_ROUTER, s_endpoint);
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);
    char other_endpoint[160];
    snprintf (other_endpoint, sizeof other_endpoint, "%s-admin", s_endpoint);
    void *other = s_socket (HW_ADMIN_ROUTER, other_endpoint);

    hw_pollitem_t items[2];
    cr_assert_eq (hw_poll_socket (&items[0], router), 0);
    cr_assert_eq (hw_poll_socket (&items[1], other), 0);
    s_poll_interrupts = 1;
    errno = 0;
    cr_assert_eq (hw_poll (items, 2, S_TIMEOUT_MS), -1, "nothing ready, interrupted");
    cr_assert_eq (errno, EINTR);

    s_publish (dealer, "c-1");
    zmq_pollitem_t arrived = { router, 0, ZMQ_POLLIN, 0 };
    cr_assert_eq (zmq_poll (&arrived, 1, S_TIMEOUT_MS), 1, "the message reached the router");
    items[0].check = true;          /* asked first, before the wait */
    s_poll_interrupts = 1;
    cr_assert_eq (hw_poll (items, 2, S_TIMEOUT_MS), 1, "interrupted, with the router found ready");
    cr_assert (items[0].ready && !items[1].ready);
    cr_assert_eq (s_poll_interrupts, 0, "the wait was interrupted");
    cr_assert (s_receive (router));

    zmq_close (other);
    zmq_close (dealer);
    zmq_close (router);
}

/*  What the helper is for: a socket nobody touches is not asked for its
    events at every wait (zmq_poll asks it twice per wait, two system
    calls each), yet a message for it is still seen. */
Test (wire, hw_poll_does_not_ask_an_idle_socket_at_every_wait)
{
    void *router = s_socket (HW_PRODUCER_ROUTER, s_endpoint);
    void *dealer = s_socket (HW_CLIENT_DEALER, s_endpoint);
    hw_pollitem_t item;
    cr_assert_eq (hw_poll_socket (&item, router), 0);
    for (int i = 0; i < 100; i++)
        cr_assert_eq (hw_poll (&item, 1, 0), 0);
    cr_assert_leq (item.asked, 1ul, "an idle socket was asked %lu times in 100 waits", item.asked);

    s_publish (dealer, "c-1");
    cr_assert_eq (hw_poll (&item, 1, S_TIMEOUT_MS), 1);
    cr_assert (item.ready);
    zmq_close (dealer);
    zmq_close (router);
}

/*  ZMQ_FD is edge-triggered: a drain stopped before EAGAIN leaves messages
    that no signal announces. With check set, the next wait sees them at
    once, without waiting. */
Test (wire, hw_poll_sees_messages_left_by_a_partial_drain_when_told_to_check)
{
    /*  inproc: a message sent is in the router's queue when zmq_send returns */
    void *router = s_socket (HW_PRODUCER_ROUTER, "inproc://hw-poll-drain");
    void *dealer = s_socket (HW_CLIENT_DEALER, "inproc://hw-poll-drain");
    hw_pollitem_t item;
    cr_assert_eq (hw_poll_socket (&item, router), 0);
    s_publish (dealer, "c-1");
    s_publish (dealer, "c-2");
    s_publish (dealer, "c-3");
    cr_assert_eq (hw_poll (&item, 1, S_TIMEOUT_MS), 1);
    cr_assert (s_receive (router));     /* the drain stops after one */
    cr_assert_eq (hw_poll (&item, 1, 0), 0, "not told to check, the wait relies on the signal, taken");
    item.check = true;
    cr_assert_eq (hw_poll (&item, 1, 0), 1, "two messages wait, but the wait did not see them");
    cr_assert (s_receive (router));
    cr_assert (s_receive (router));
    item.check = true;
    cr_assert_eq (hw_poll (&item, 1, 0), 0);
    zmq_close (dealer);
    zmq_close (router);
}
