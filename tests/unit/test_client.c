/*  test_client.c: libherald: envelope building, and publish / pipelining /
    admin against a fake broker (a ROUTER on ipc:// served by a thread). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "herald.h"
#include "herald_clock.h"
#include "herald_event.h"
#include "herald_proto.h"
#include "herald_wire.h"

//  ---------------------------------------------------------------------
//  herald_event_build

static json_t *
s_parse (const char *text)
{
    json_error_t error;
    json_t *root = json_loads (text, 0, &error);
    cr_assert_not_null (root, "not JSON: %s (%s)", text, error.text);
    return root;
}

static const char *
s_get (json_t *root, const char *key)
{
    return json_string_value (json_object_get (root, key));
}

//  A UUID in its text form, of the given version and variant 10.
static bool
s_is_uuid (const char *id, char version)
{
    if (!id || strlen (id) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-')
                return false;
        }
        else
        if (!strchr ("0123456789abcdef", id[i]))
            return false;
    }
    return id[14] == version && strchr ("89ab", id[19]) != NULL;
}

static bool
s_is_rfc3339_ms (const char *time)
{
    //  2026-11-21T10:00:00.123Z
    if (!time || strlen (time) != 24)
        return false;
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (int i = 0; i < 24; i++)
        if (shape[i] == 'd'? (time[i] < '0' || time[i] > '9'): time[i] != shape[i])
            return false;
    return true;
}

Test (event_build, data_becomes_envelope)
{
    char err[256] = "";
    char *text = herald_event_build ("order.confirmed", NULL,
                                     "{\"order_id\": \"1042\", \"total\": 19.99}", err, sizeof err);
    cr_assert_not_null (text, "%s", err);
    json_t *root = s_parse (text);
    cr_expect_str_eq (s_get (root, "specversion"), "1.0");
    cr_expect_str_eq (s_get (root, "type"), "order.confirmed");
    cr_expect_str_eq (s_get (root, "source"), "herald-client");
    cr_expect (s_is_uuid (s_get (root, "id"), '7'), "id %s", s_get (root, "id"));
    cr_expect (s_is_rfc3339_ms (s_get (root, "time")), "time %s", s_get (root, "time"));
    json_t *data = json_object_get (root, "data");
    cr_assert (json_is_object (data));
    cr_expect_str_eq (s_get (data, "order_id"), "1042");
    //  the data is passed through as written: 19.99 stays 19.99
    cr_expect_not_null (strstr (text, "\"total\": 19.99"), "%s", text);
    json_decref (root);
    free (text);
}

Test (event_build, ids_are_unique_and_source_is_used)
{
    char err[256];
    char *one = herald_event_build ("t", "shop/checkout", "{}", err, sizeof err);
    char *two = herald_event_build ("t", "shop/checkout", "{}", err, sizeof err);
    cr_assert (one && two);
    json_t *a = s_parse (one);
    json_t *b = s_parse (two);
    cr_expect_str_eq (s_get (a, "source"), "shop/checkout");
    cr_expect_str_neq (s_get (a, "id"), s_get (b, "id"));
    json_decref (a);
    json_decref (b);
    free (one);
    free (two);
}

/*  The ids the client makes are UUID v7: the time they were made, to the
    millisecond, in their first 48 bits, so later ids sort after earlier
    ones and the broker's index on event ids grows at its end (random v4
    ids put each new one on a random page: twice the index's CPU for
    300,000 events, BENCHMARKS.md). The event's time is the id's. */
Test (event_build, ids_are_uuid7_in_the_order_they_were_made)
{
    char id[40];
    cr_assert_eq (herald_uuid7 (id, sizeof id, 0x0123456789abLL), 0);
    cr_expect (s_is_uuid (id, '7'), "%s", id);
    cr_expect (strncmp (id, "01234567-89ab-7", 15) == 0, "the milliseconds lead: %s", id);
    cr_expect_eq (herald_uuid7 (id, 36, 0), -1, "no room for the terminator");

    char before[40], after[40];
    cr_assert_eq (herald_uuid7 (before, sizeof before, 1764583200000LL), 0);
    cr_assert_eq (herald_uuid7 (after, sizeof after, 1764583200001LL), 0);
    cr_expect_lt (strcmp (before, after), 0, "%s then %s", before, after);

    char err[256];
    char *one = herald_event_build ("t", NULL, "{}", err, sizeof err);
    cr_assert_not_null (one, "%s", err);
    json_t *a = s_parse (one);
    const char *made = s_get (a, "id"), *time = s_get (a, "time");
    cr_assert (made && time);
    /*  2026-11-21T10:00:00.123Z from the id's 48 bits */
    char hex[13] = { 0 };
    memcpy (hex, made, 8);
    memcpy (hex + 8, made + 9, 4);
    long long ms = strtoll (hex, NULL, 16);
    char want[40];
    herald_clock_format (ms, want, sizeof want);
    cr_expect_str_eq (time, want, "the event's time is the id's (%s)", made);
    json_decref (a);
    free (one);
}

Test (event_build, envelope_keeps_its_fields)
{
    const char *envelope =
        "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"shop\",\"type\":\"order.confirmed\","
        "\"time\":\"2026-01-02T03:04:05.006Z\",\"data\":{\"order_id\":\"7\"}}";
    char err[256] = "";
    char *text = herald_event_build (NULL, NULL, envelope, err, sizeof err);
    cr_assert_not_null (text, "%s", err);
    json_t *root = s_parse (text);
    cr_expect_str_eq (s_get (root, "id"), "evt-1");
    cr_expect_str_eq (s_get (root, "time"), "2026-01-02T03:04:05.006Z");
    cr_expect_str_eq (s_get (root, "source"), "shop");
    cr_expect_str_eq (s_get (root, "type"), "order.confirmed");
    json_decref (root);
    free (text);
}

Test (event_build, envelope_missing_fields_are_filled_and_type_overridden)
{
    char err[256] = "";
    char *text = herald_event_build ("order.shipped", "src",
                                     "{\"specversion\":\"1.0\",\"data\":{\"a\":1}}", err, sizeof err);
    cr_assert_not_null (text, "%s", err);
    json_t *root = s_parse (text);
    cr_expect (s_is_uuid (s_get (root, "id"), '7'), "id %s", s_get (root, "id"));
    cr_expect (s_is_rfc3339_ms (s_get (root, "time")));
    cr_expect_str_eq (s_get (root, "source"), "src");
    cr_expect_str_eq (s_get (root, "type"), "order.shipped");
    cr_expect_null (json_object_get (root, "datacontenttype"));
    json_decref (root);
    free (text);

    text = herald_event_build ("order.shipped", NULL,
                               "{\"specversion\":\"1.0\",\"id\":\"x\",\"type\":\"order.confirmed\"}",
                               err, sizeof err);
    cr_assert_not_null (text, "%s", err);
    root = s_parse (text);
    cr_expect_str_eq (s_get (root, "type"), "order.shipped");
    cr_expect_str_eq (s_get (root, "id"), "x");
    json_decref (root);
    free (text);
}

Test (event_build, invalid_json_names_line_and_column)
{
    char err[256] = "";
    char *text = herald_event_build ("t", NULL, "{\n  \"a\": 1,\n  \"b\": }", err, sizeof err);
    cr_assert_null (text);
    cr_expect_not_null (strstr (err, "invalid JSON at line 3 column"), "%s", err);

    text = herald_event_build ("t", NULL, "{\"a\": 1, \"a\": 2}", err, sizeof err);
    cr_assert_null (text, "duplicate keys are refused");
    cr_expect_not_null (strstr (err, "line 1"), "%s", err);
}

Test (event_build, non_object_is_rejected)
{
    char err[256] = "";
    cr_expect_null (herald_event_build ("t", NULL, "[1, 2]", err, sizeof err));
    cr_expect_not_null (strstr (err, "JSON object"), "%s", err);
    cr_expect_null (herald_event_build ("t", NULL, "42", err, sizeof err));
    cr_expect_not_null (strstr (err, "not a number"), "%s", err);
    cr_expect_null (herald_event_build ("t", NULL, "", err, sizeof err));
    cr_expect_null (herald_event_build (NULL, NULL, "{\"a\":1}", err, sizeof err),
                    "data without a type");
    cr_expect_not_null (strstr (err, "type"), "%s", err);
}

//  ---------------------------------------------------------------------
//  A fake broker: a ROUTER on ipc:// answering as told, in a thread,
//  stopped through an inproc pipe.

typedef enum {
    FB_ACK,             /* ACK everything ("dup" in the event: duplicate) */
    FB_NACK_422,
    FB_NACK_503,
    FB_SILENT,          /* never answers */
    FB_LATE,            /* first publish unanswered; answers it late, before the second */
    FB_REVERSE,         /* collects 100 publishes, answers them last to first */
    FB_ADMIN            /* ADMIN: 200 echo, verb "missing": 404 */
} fb_mode_t;

typedef struct {
    fb_mode_t mode;
    void *ctx;
    void *router;
    void *pipe;             /* test side */
    void *server_pipe;      /* thread side */
    pthread_t thread;
    char dir[64];
    char endpoint[128];
    int received;           /* requests seen (read after the thread ended) */
    char last_body[1024];   /* the last publish's envelope */
    bool stopped;           /* the thread has ended (s_fake_broker_stop) */
    int errors;             /* failed sends (Criterion asserts only in the test thread) */
} fake_broker_t;

static void
s_reply_publish (fake_broker_t *self, hp_str_t identity, hp_str_t corr, bool duplicate)
{
    char corr_text[HP_MAX_CORR + 1];
    hp_str_copy (corr, corr_text, sizeof corr_text);
    char event_id[HP_MAX_ID];
    snprintf (event_id, sizeof event_id, "ev-%s", corr_text);
    hp_msg_t out;
    memset (&out, 0, sizeof out);
    out.corr = corr;
    switch (self->mode) {
        case FB_NACK_422:
            out.command = HP_NACK;
            out.code = 422;
            out.text = hp_str ("data.customer.email: required field missing");
            break;
        case FB_NACK_503:
            out.command = HP_NACK;
            out.code = 503;
            out.text = hp_str ("busy: too many pending events");
            break;
        default:
            out.command = HP_ACK;
            out.event_id = hp_str (event_id);
            out.duplicate = duplicate;
            out.durability = hp_str ("fsync");
            break;
    }
    if (hw_send (self->router, identity, &out, 0) != 0)
        self->errors++;
}

//  Copies what a reply needs (frames borrow from the received message).
typedef struct {
    char identity[256];
    size_t identity_len;
    char corr[HP_MAX_CORR + 1];
} fb_pending_t;

static void *
s_fake_broker_run (void *arg)
{
    fake_broker_t *self = arg;
    fb_pending_t *pending = calloc (100, sizeof *pending);
    size_t pending_count = 0;
    for (;;) {
        zmq_pollitem_t items[] = {
            { self->router, 0, ZMQ_POLLIN, 0 },
            { self->server_pipe, 0, ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 2, -1) < 0)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            break;
        hw_msg_t in;
        hp_msg_t msg;
        hp_error_t err;
        if (hw_recv (self->router, true, &in, 0) != 0) {
            hw_msg_close (&in);
            break;
        }
        if (hw_decode (&in, &msg, &err) != 0) {
            hw_msg_close (&in);
            continue;
        }
        self->received++;
        if (msg.command == HP_PUBLISH)
            hp_str_copy (msg.body, self->last_body, sizeof self->last_body);
        if (msg.command == HP_ADMIN) {
            char verb[64];
            hp_str_copy (msg.verb, verb, sizeof verb);
            char args[256];
            hp_str_copy (msg.body, args, sizeof args);
            char body[512];
            snprintf (body, sizeof body, "{\"verb\":\"%s\",\"args\":%s}", verb, args);
            hp_msg_t out;
            memset (&out, 0, sizeof out);
            out.command = HP_ADMIN_REPLY;
            out.corr = msg.corr;
            out.code = strcmp (verb, "missing") == 0? 404: 200;
            out.body = hp_str (out.code == 404? "{\"error\":\"not found\"}": body);
            if (hw_send (self->router, in.identity, &out, 0) != 0)
                self->errors++;
        }
        else
        if (msg.command == HP_PUBLISH) {
            bool duplicate = msg.body.ptr && memmem (msg.body.ptr, msg.body.len, "dup", 3);
            if (self->mode == FB_LATE || self->mode == FB_REVERSE) {
                fb_pending_t *p = &pending[pending_count++];
                p->identity_len = in.identity.len;
                memcpy (p->identity, in.identity.ptr, in.identity.len);
                hp_str_copy (msg.corr, p->corr, sizeof p->corr);
                bool flush = self->mode == FB_LATE? pending_count == 2: pending_count == 100;
                if (flush) {
                    //  LATE: first (stale) then second; REVERSE: last to first
                    for (size_t i = 0; i < pending_count; i++) {
                        fb_pending_t *q = self->mode == FB_LATE? &pending[i]
                                                               : &pending[pending_count - 1 - i];
                        s_reply_publish (self, hp_strn (q->identity, q->identity_len),
                                         hp_str (q->corr), false);
                    }
                    pending_count = 0;
                }
            }
            else
            if (self->mode != FB_SILENT)
                s_reply_publish (self, in.identity, msg.corr, duplicate);
        }
        hw_msg_close (&in);
    }
    free (pending);
    return NULL;
}

static fake_broker_t *
s_fake_broker_new (fb_mode_t mode)
{
    fake_broker_t *self = calloc (1, sizeof *self);
    cr_assert_not_null (self);
    self->mode = mode;
    snprintf (self->dir, sizeof self->dir, "/tmp/herald-test-client-XXXXXX");
    cr_assert_not_null (mkdtemp (self->dir));
    snprintf (self->endpoint, sizeof self->endpoint, "ipc://%s/p.sock", self->dir);
    self->ctx = zmq_ctx_new ();
    char err[256];
    self->router = hw_socket_new (self->ctx, HW_PRODUCER_ROUTER, self->endpoint, NULL, err, sizeof err);
    cr_assert_not_null (self->router, "%s", err);
    self->pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    self->server_pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    char pipe_endpoint[128];
    snprintf (pipe_endpoint, sizeof pipe_endpoint, "inproc://%s", self->dir);
    cr_assert_eq (zmq_bind (self->server_pipe, pipe_endpoint), 0);
    cr_assert_eq (zmq_connect (self->pipe, pipe_endpoint), 0);
    cr_assert_eq (pthread_create (&self->thread, NULL, s_fake_broker_run, self), 0);
    return self;
}

/*  Ends the thread: what it saw may be read. */
static void
s_fake_broker_stop (fake_broker_t *self)
{
    if (self->stopped)
        return;
    zmq_send (self->pipe, "stop", 4, 0);
    pthread_join (self->thread, NULL);
    self->stopped = true;
}

static void
s_fake_broker_destroy (fake_broker_t **self_p)
{
    fake_broker_t *self = *self_p;
    if (!self)
        return;
    s_fake_broker_stop (self);
    cr_expect_eq (self->errors, 0, "the fake broker could not send some replies");
    int linger = 0;
    zmq_setsockopt (self->pipe, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->server_pipe, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (self->router);
    zmq_close (self->pipe);
    zmq_close (self->server_pipe);
    zmq_ctx_term (self->ctx);
    char path[160];
    snprintf (path, sizeof path, "%s/p.sock", self->dir);
    unlink (path);
    rmdir (self->dir);
    free (self);
    *self_p = NULL;
}

static char *
s_event (void)
{
    char err[256];
    char *event = herald_event_build ("order.confirmed", NULL, "{\"order_id\":\"1\"}", err, sizeof err);
    cr_assert_not_null (event, "%s", err);
    return event;
}

Test (client, ack_fills_the_reply)
{
    fake_broker_t *broker = s_fake_broker_new (FB_ACK);
    herald_client_t *client = herald_client_new (broker->endpoint);
    cr_assert_not_null (client);
    char *event = s_event ();
    herald_reply_t reply;
    herald_status_t status = herald_publish (client, event, 5000, &reply);
    cr_assert_eq (status, HERALD_OK, "%s", herald_strerror (status));
    cr_expect (reply.acked);
    cr_expect_not (reply.duplicate);
    cr_expect_str_eq (reply.durability, "fsync");
    char expected[64];
    snprintf (expected, sizeof expected, "ev-%llu", (unsigned long long) reply.corr);
    cr_expect_str_eq (reply.event_id, expected);
    cr_expect_eq (herald_outstanding (client), 0);

    status = herald_publish (client, "{\"dup\":true}", 5000, &reply);
    cr_assert_eq (status, HERALD_OK);
    cr_expect (reply.duplicate);
    free (event);
    herald_client_destroy (&client);
    cr_expect_null (client);
    herald_client_destroy (&client);     //  NULL-safe
    s_fake_broker_destroy (&broker);
}

Test (client, nack_422_is_a_nack_with_reason)
{
    fake_broker_t *broker = s_fake_broker_new (FB_NACK_422);
    herald_client_t *client = herald_client_new (broker->endpoint);
    char *event = s_event ();
    herald_reply_t reply;
    cr_assert_eq (herald_publish (client, event, 5000, &reply), HERALD_E_NACK);
    cr_expect_not (reply.acked);
    cr_expect_eq (reply.code, 422);
    cr_expect_str_eq (reply.reason, "data.customer.email: required field missing");
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&broker);
}

Test (client, nack_503_is_busy)
{
    fake_broker_t *broker = s_fake_broker_new (FB_NACK_503);
    herald_client_t *client = herald_client_new (broker->endpoint);
    char *event = s_event ();
    herald_reply_t reply;
    cr_assert_eq (herald_publish (client, event, 5000, &reply), HERALD_E_BUSY);
    cr_expect_eq (reply.code, 503);
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&broker);
}

Test (client, no_reply_times_out_in_time)
{
    fake_broker_t *broker = s_fake_broker_new (FB_SILENT);
    herald_client_t *client = herald_client_new (broker->endpoint);
    char *event = s_event ();
    herald_reply_t reply;
    int64_t start = herald_clock_mono_ms ();
    cr_assert_eq (herald_publish (client, event, 300, &reply), HERALD_E_TIMEOUT);
    int64_t elapsed = herald_clock_mono_ms () - start;
    cr_expect (elapsed >= 290 && elapsed < 2000, "elapsed %lld ms", (long long) elapsed);
    cr_expect_eq (herald_outstanding (client), 1, "the abandoned publish is still outstanding");
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&broker);
}

Test (client, nothing_bound_is_unavailable)
{
    char dir[] = "/tmp/herald-test-client-XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    char endpoint[128];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/nobody.sock", dir);
    herald_client_t *client = herald_client_new (endpoint);
    cr_assert_not_null (client);
    char *event = s_event ();
    herald_reply_t reply;
    int64_t start = herald_clock_mono_ms ();
    cr_expect_eq (herald_publish (client, event, 200, &reply), HERALD_E_UNAVAILABLE);
    cr_expect (herald_clock_mono_ms () - start < 2000);
    int code = 0;
    char *body = NULL;
    cr_expect_eq (herald_admin (client, "status", NULL, 100, &code, &body), HERALD_E_UNAVAILABLE);
    cr_expect_null (body);
    free (event);
    herald_client_destroy (&client);
    rmdir (dir);
}

Test (client, late_ack_is_ignored_by_the_next_publish)
{
    fake_broker_t *broker = s_fake_broker_new (FB_LATE);
    herald_client_t *client = herald_client_new (broker->endpoint);
    char *event = s_event ();
    herald_reply_t first;
    cr_assert_eq (herald_publish (client, event, 200, &first), HERALD_E_TIMEOUT);
    herald_reply_t second;
    cr_assert_eq (herald_publish (client, event, 5000, &second), HERALD_OK);
    cr_expect_neq (second.corr, first.corr);
    char expected[64];
    snprintf (expected, sizeof expected, "ev-%llu", (unsigned long long) second.corr);
    cr_expect_str_eq (second.event_id, expected, "the stale ACK was not taken for ours");
    cr_expect_eq (herald_outstanding (client), 0);
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&broker);
}

Test (client, pipelined_replies_in_reverse_order_are_matched)
{
    fake_broker_t *broker = s_fake_broker_new (FB_REVERSE);
    herald_client_t *client = herald_client_new (broker->endpoint);
    char *event = s_event ();
    uint64_t corrs[100];
    for (int i = 0; i < 100; i++)
        cr_assert_eq (herald_send (client, event, 5000, &corrs[i]), HERALD_OK);
    cr_expect_eq (herald_outstanding (client), 100);
    bool seen[100] = { false };
    for (int i = 0; i < 100; i++) {
        herald_reply_t reply;
        cr_assert_eq (herald_recv (client, 5000, &reply), HERALD_OK, "reply %d", i);
        cr_expect_eq (reply.corr, corrs[99 - i], "reverse order");
        int index = -1;
        for (int k = 0; k < 100; k++)
            if (corrs[k] == reply.corr)
                index = k;
        cr_assert (index >= 0 && !seen[index]);
        seen[index] = true;
        char expected[64];
        snprintf (expected, sizeof expected, "ev-%llu", (unsigned long long) reply.corr);
        cr_expect_str_eq (reply.event_id, expected);
    }
    cr_expect_eq (herald_outstanding (client), 0);
    herald_reply_t none;
    cr_expect_eq (herald_recv (client, 50, &none), HERALD_E_TIMEOUT);
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&broker);
}

Test (client, admin_round_trip)
{
    fake_broker_t *broker = s_fake_broker_new (FB_ADMIN);
    herald_client_t *client = herald_client_new (broker->endpoint);
    int code = 0;
    char *body = NULL;
    cr_assert_eq (herald_admin (client, "dead.list", "{\"channel\":\"email\"}", 5000, &code, &body),
                  HERALD_OK);
    cr_expect_eq (code, 200);
    cr_expect_str_eq (body, "{\"verb\":\"dead.list\",\"args\":{\"channel\":\"email\"}}");
    free (body);
    cr_assert_eq (herald_admin (client, "missing", NULL, 5000, &code, &body), HERALD_OK);
    cr_expect_eq (code, 404);
    cr_expect_str_eq (body, "{\"error\":\"not found\"}");
    free (body);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&broker);
}

Test (client, bad_arguments)
{
    cr_expect_null (herald_client_new (NULL));
    cr_expect_null (herald_client_new ("nonsense://x"));
    cr_expect_eq (herald_publish (NULL, "{}", 10, NULL), HERALD_E_INVALID);
    cr_expect_eq (herald_outstanding (NULL), 0);
    cr_expect_str_eq (herald_strerror (HERALD_E_TIMEOUT), "no answer in time");
}

//  ---------------------------------------------------------------------
//  Several brokers (sharing a store): herald_publish moves on

static herald_client_t *
s_pair_client (fake_broker_t *first, const char *second_endpoint)
{
    char list[300];
    snprintf (list, sizeof list, "%s,%s", first->endpoint, second_endpoint);
    herald_client_t *client = herald_client_new (list);
    cr_assert_not_null (client);
    cr_assert_str_eq (herald_client_endpoint (client), first->endpoint, "the first endpoint first");
    return client;
}

Test (client, a_silent_broker_passes_the_same_envelope_to_the_next)
{
    fake_broker_t *silent = s_fake_broker_new (FB_SILENT);
    fake_broker_t *good = s_fake_broker_new (FB_ACK);
    herald_client_t *client = s_pair_client (silent, good->endpoint);
    char *event = s_event ();
    herald_reply_t reply;
    int64_t start = herald_clock_mono_ms ();
    herald_status_t status = herald_publish (client, event, 1000, &reply);
    int64_t elapsed = herald_clock_mono_ms () - start;
    cr_assert_eq (status, HERALD_OK, "%s", herald_strerror (status));
    cr_expect (elapsed >= 450 && elapsed < 1000, "the first broker had half the time: %lld ms", (long long) elapsed);
    cr_expect_str_eq (herald_client_endpoint (client), good->endpoint);
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&silent);
    s_fake_broker_destroy (&good);
}

Test (client, the_envelope_is_the_same_on_both_brokers)
{
    fake_broker_t *silent = s_fake_broker_new (FB_SILENT);
    fake_broker_t *good = s_fake_broker_new (FB_ACK);
    herald_client_t *client = s_pair_client (silent, good->endpoint);
    char *event = s_event ();
    herald_reply_t reply;
    cr_assert_eq (herald_publish (client, event, 600, &reply), HERALD_OK);
    herald_client_destroy (&client);
    s_fake_broker_stop (silent);
    s_fake_broker_stop (good);
    cr_expect_eq (silent->received, 1);
    cr_expect_eq (good->received, 1);
    cr_expect_str_eq (silent->last_body, event, "the first broker got the envelope");
    cr_expect_str_eq (good->last_body, event, "the second got the very same one (same id: same key)");
    free (event);
    s_fake_broker_destroy (&silent);
    s_fake_broker_destroy (&good);
}

Test (client, an_unreachable_broker_passes_to_the_next)
{
    char dir[] = "/tmp/herald-test-client-XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    fake_broker_t *good = s_fake_broker_new (FB_ACK);
    char list[400];
    snprintf (list, sizeof list, "ipc://%s/nobody.sock;%s", dir, good->endpoint);
    herald_client_t *client = herald_client_new (list);
    cr_assert_not_null (client);
    char *event = s_event ();
    herald_reply_t reply;
    cr_assert_eq (herald_publish (client, event, 1000, &reply), HERALD_OK, "a ';' list works too");
    cr_expect (reply.acked);
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&good);
    rmdir (dir);
}

Test (client, a_busy_broker_passes_to_the_next_but_a_refusal_does_not)
{
    fake_broker_t *busy = s_fake_broker_new (FB_NACK_503);
    fake_broker_t *good = s_fake_broker_new (FB_ACK);
    herald_client_t *client = s_pair_client (busy, good->endpoint);
    char *event = s_event ();
    herald_reply_t reply;
    cr_assert_eq (herald_publish (client, event, 2000, &reply), HERALD_OK, "503: the next broker takes it");
    herald_client_destroy (&client);
    fake_broker_t *refusing = s_fake_broker_new (FB_NACK_422);
    client = s_pair_client (refusing, good->endpoint);
    cr_assert_eq (herald_publish (client, event, 2000, &reply), HERALD_E_NACK,
                  "422 would be refused by any broker: no failover");
    cr_expect_str_eq (herald_client_endpoint (client), refusing->endpoint);
    free (event);
    herald_client_destroy (&client);
    s_fake_broker_destroy (&busy);
    s_fake_broker_destroy (&good);
    s_fake_broker_destroy (&refusing);
}

Test (client, one_endpoint_with_a_comma_stays_one)
{
    herald_client_t *client = herald_client_new ("ipc:///tmp/herald-test-a,b.sock");
    cr_assert_not_null (client);
    cr_expect_str_eq (herald_client_endpoint (client), "ipc:///tmp/herald-test-a,b.sock",
                      "a piece that is not scheme://... keeps the text one endpoint");
    cr_expect_eq (herald_client_failover (client), HERALD_E_INVALID, "no other broker to go to");
    herald_client_destroy (&client);
}
