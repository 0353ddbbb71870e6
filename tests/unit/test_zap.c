/*  test_zap: the security thread with real sockets in one process. A CURVE
    ROUTER (made by hw_socket_new, as the broker makes it) lets in a listed
    key, with its key as the User-Id of each message and the connection's
    descriptor; refuses unknown keys, keys of another role and keys removed
    by a reload, counting each by reason; closes connections above the cap;
    and without the thread, nobody gets in (fail closed). The refusal log is
    rate-limited. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "broker_fixture.h"
#include "herald_clock.h"
#include "herald_wire.h"
#include "peers.h"
#include "refusals.h"
#include "zap.h"

#define S_MONITOR "inproc://test-zap-monitor"

typedef struct {
    char public_key[41];
    char secret_key[41];
} s_pair_t;

static herald_config_t s_config;
static s_pair_t s_broker, s_shop, s_mailer, s_stranger;
static void *s_ctx;
static refusals_t *s_refusals;
static peers_t *s_peers;
static zap_t *s_zap;
static void *s_router;
static char s_endpoint[64];

static void
s_make (s_pair_t *pair)
{
    cr_assert_eq (zmq_curve_keypair (pair->public_key, pair->secret_key), 0);
}

static void
s_list (const char *name, const s_pair_t *pair, unsigned roles)
{
    herald_security_config_t *sec = &s_config.security;
    herald_client_key_t *key = &sec->keys[sec->key_count++];
    memset (key, 0, sizeof *key);
    snprintf (key->name, sizeof key->name, "%s", name);
    memcpy (key->key, pair->public_key, sizeof key->key);
    key->roles = roles;
    key->channels = roles & HERALD_ROLE_WORKER? 1: 0;
}

/*  Starts the thread and a CURVE ROUTER on tcp://127.0.0.1:* (domain
    producers) with max_connections cap. */
static void
s_start (int cap)
{
    s_ctx = zmq_ctx_new ();
    s_refusals = refusals_new (5, 60000);
    s_peers = peers_new ();
    allowlist_t *list = allowlist_new (&s_config, &s_config, NULL);
    zap_options_t options = { .ctx = s_ctx, .curve = true, .max_connections = cap,
                              .refusals = s_refusals, .peers = s_peers };
    options.monitors[ENDPOINT_PRODUCERS] = S_MONITOR;
    char err[256];
    s_zap = zap_new (&options, &list, err, sizeof err);
    cr_assert_not_null (s_zap, "%s", err);
    hw_options_t socket_options = { .linger_ms = 0, .max_msg_size = -1, .handshake_ivl_ms = 2000,
                                    .monitor = S_MONITOR, .curve_secret = s_broker.secret_key,
                                    .zap_domain = ZAP_DOMAIN_PRODUCERS };
    s_router = hw_socket_new (s_ctx, HW_PRODUCER_ROUTER, "tcp://127.0.0.1:*", &socket_options, err, sizeof err);
    cr_assert_not_null (s_router, "%s", err);
    size_t size = sizeof s_endpoint;
    cr_assert_eq (zmq_getsockopt (s_router, ZMQ_LAST_ENDPOINT, s_endpoint, &size), 0);
}

static void
s_setup (void)
{
    fixture_config (&s_config);
    s_make (&s_broker), s_make (&s_shop), s_make (&s_mailer), s_make (&s_stranger);
    s_config.security.curve = true;
    s_list ("shop", &s_shop, HERALD_ROLE_PRODUCER);
    s_list ("mailer", &s_mailer, HERALD_ROLE_WORKER);
}

static void
s_teardown (void)
{
    if (s_router)
        zmq_close (s_router);
    s_router = NULL;
    zap_destroy (&s_zap);
    if (s_ctx)
        zmq_ctx_term (s_ctx);
    s_ctx = NULL;
    peers_destroy (&s_peers);
    refusals_destroy (&s_refusals);
}

TestSuite (zap, .init = s_setup, .fini = s_teardown, .timeout = 30);

/*  A CURVE client with pair (NULL = the NULL mechanism) talking to server_key. */
static void *
s_client (const s_pair_t *pair, const char *server_key)
{
    hw_options_t options = { .linger_ms = 0, .max_msg_size = -1 };
    if (pair) {
        options.curve_public = pair->public_key;
        options.curve_secret = pair->secret_key;
        options.curve_server = server_key;
    }
    char err[256];
    void *socket = hw_socket_new (s_ctx, HW_WORKER_DEALER, s_endpoint, &options, err, sizeof err);
    cr_assert_not_null (socket, "%s", err);
    int no_retry = -1;
    zmq_setsockopt (socket, ZMQ_RECONNECT_IVL, &no_retry, sizeof no_retry);
    zmq_send (socket, "hello", 5, ZMQ_DONTWAIT);
    return socket;
}

/*  Waits up to ms for a message at the router; 0 with in filled, or -1. */
static int
s_receive (hw_msg_t *in, int ms)
{
    memset (in, 0, sizeof *in);     /* safe to close when nothing came */
    zmq_pollitem_t item = { s_router, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, ms) <= 0)
        return -1;
    return hw_recv (s_router, true, in, ZMQ_DONTWAIT);
}

static bool
s_wait_count (refusal_reason_t reason, uint64_t want, int ms)
{
    int64_t deadline = herald_clock_mono_ms () + ms;
    while (herald_clock_mono_ms () < deadline) {
        if (refusals_count (s_refusals, ENDPOINT_PRODUCERS, reason) >= want)
            return true;
        zmq_poll (NULL, 0, 10);
    }
    return refusals_count (s_refusals, ENDPOINT_PRODUCERS, reason) >= want;
}

Test (zap, listed_key_gets_in_with_its_user_id)
{
    s_start (100);
    void *client = s_client (&s_shop, s_broker.public_key);
    hw_msg_t in;
    cr_assert_eq (s_receive (&in, 5000), 0, "the listed producer's message arrives");
    cr_assert_not_null (hw_msg_user_id (&in));
    cr_assert_str_eq (hw_msg_user_id (&in), s_shop.public_key, "User-Id is the client's key");
    cr_assert_geq (hw_msg_peer_fd (&in), 0, "the connection's descriptor is known");
    cr_assert_eq (in.count, 1);
    hw_msg_close (&in);
    cr_assert_eq (zap_connections (s_zap, ENDPOINT_PRODUCERS), 1);
    zmq_close (client);
}

Test (zap, refusals_by_reason)
{
    s_start (100);
    void *unknown = s_client (&s_stranger, s_broker.public_key);
    void *worker = s_client (&s_mailer, s_broker.public_key);
    void *wrong_server = s_client (&s_shop, s_stranger.public_key);
    cr_assert (s_wait_count (REFUSAL_UNKNOWN_KEY, 1, 5000), "unknown key counted");
    cr_assert (s_wait_count (REFUSAL_WRONG_ROLE, 1, 5000), "a worker key at the producer endpoint counted");
    cr_assert (s_wait_count (REFUSAL_WRONG_SERVER_KEY, 1, 5000), "a client with another broker key counted");
    hw_msg_t in;
    cr_assert_eq (s_receive (&in, 300), -1, "none of them got a message through");
    hw_msg_close (&in);
    zmq_close (unknown);
    zmq_close (worker);
    zmq_close (wrong_server);
}

Test (zap, a_reload_removes_a_key)
{
    s_start (100);
    void *client = s_client (&s_shop, s_broker.public_key);
    hw_msg_t in;
    cr_assert_eq (s_receive (&in, 5000), 0);
    int fd = hw_msg_peer_fd (&in);
    hw_msg_close (&in);
    peers_note (s_peers, fd, ENDPOINT_PRODUCERS, s_shop.public_key);
    zmq_close (client);

    herald_config_t *next = calloc (1, sizeof *next);
    fixture_config (next);
    next->security.curve = true;
    allowlist_t *old = allowlist_new (&s_config, &s_config, NULL);
    allowlist_t *list = allowlist_new (next, &s_config, old);
    allowlist_destroy (&old);
    free (next);
    cr_assert_eq (zap_reload (s_zap, &list), 0);
    cr_assert_null (list, "the thread took the list");

    client = s_client (&s_shop, s_broker.public_key);
    cr_assert (s_wait_count (REFUSAL_REMOVED_KEY, 1, 5000), "the removed key is refused as removed");
    cr_assert_eq (s_receive (&in, 300), -1);
    hw_msg_close (&in);
    zmq_close (client);
}

Test (zap, connections_above_the_cap_are_closed)
{
    s_start (3);
    int port = (int) strtol (strrchr (s_endpoint, ':') + 1, NULL, 10);
    int raw[6];
    for (int i = 0; i < 6; i++) {
        raw[i] = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
        inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
        cr_assert_eq (connect (raw[i], (struct sockaddr *) &addr, sizeof addr), 0);
    }
    cr_assert (s_wait_count (REFUSAL_CONNECTION_CAP, 3, 5000), "3 connections beyond 3 closed: %llu",
               (unsigned long long) refusals_count (s_refusals, ENDPOINT_PRODUCERS, REFUSAL_CONNECTION_CAP));
    int64_t deadline = herald_clock_mono_ms () + 5000;
    while (zap_connections (s_zap, ENDPOINT_PRODUCERS) != 3 && herald_clock_mono_ms () < deadline)
        zmq_poll (NULL, 0, 10);
    cr_assert_eq (zap_connections (s_zap, ENDPOINT_PRODUCERS), 3);
    /*  The stale three time out after the handshake interval (2 s). */
    cr_assert (s_wait_count (REFUSAL_HANDSHAKE, 3, 6000), "the stale ones are closed after the handshake");
    for (int i = 0; i < 6; i++)
        close (raw[i]);
}

Test (zap, without_the_handler_nobody_gets_in)
{
    /*  A CURVE endpoint whose ZAP handler is not there: with
        ZMQ_ZAP_ENFORCE_DOMAIN the handshake fails, it is not waved through. */
    s_ctx = zmq_ctx_new ();
    char err[256];
    hw_options_t socket_options = { .linger_ms = 0, .max_msg_size = -1, .curve_secret = s_broker.secret_key,
                                    .zap_domain = ZAP_DOMAIN_PRODUCERS };
    s_router = hw_socket_new (s_ctx, HW_PRODUCER_ROUTER, "tcp://127.0.0.1:*", &socket_options, err, sizeof err);
    cr_assert_not_null (s_router, "%s", err);
    size_t size = sizeof s_endpoint;
    zmq_getsockopt (s_router, ZMQ_LAST_ENDPOINT, s_endpoint, &size);
    void *client = s_client (&s_shop, s_broker.public_key);
    hw_msg_t in;
    cr_assert_eq (s_receive (&in, 1000), -1, "no ZAP handler: the listed key does not get in either");
    hw_msg_close (&in);
    zmq_close (client);
}

Test (zap, the_refusal_log_is_rate_limited)
{
    /*  Capture stderr (herald_log writes there). */
    char path[] = "/tmp/herald-zap-log-XXXXXX";
    int fd = mkstemp (path);
    cr_assert_geq (fd, 0);
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    refusals_t *limited = refusals_new (3, 200);
    for (int i = 0; i < 10; i++)
        refusals_add (limited, ENDPOINT_ADMIN, REFUSAL_UNKNOWN_KEY, "n=%d", i);
    refusals_add (limited, ENDPOINT_ADMIN, REFUSAL_NO_KEY, NULL);
    zmq_poll (NULL, 0, 250);
    refusals_tick (limited, herald_clock_mono_ms ());
    dup2 (saved, STDERR_FILENO);
    close (saved);
    cr_assert_eq (refusals_count (limited, ENDPOINT_ADMIN, REFUSAL_UNKNOWN_KEY), 10, "every refusal is counted");
    json_t *json = refusals_json (limited);
    cr_assert_eq (json_integer_value (json_object_get (json, "total")), 11);
    json_decref (json);
    refusals_destroy (&limited);

    char text[4096] = "";
    lseek (fd, 0, SEEK_SET);
    ssize_t n = read (fd, text, sizeof text - 1);
    close (fd);
    unlink (path);
    text[n > 0? n: 0] = '\0';
    int lines = 0;
    for (const char *p = text; (p = strstr (p, "msg=\"connection refused\"")); p++)
        lines++;
    cr_assert_eq (lines, 3, "3 lines a window: %s", text);
    cr_assert (strstr (text, "n=2") && !strstr (text, "n=3"), "the first ones: %s", text);
    cr_assert (strstr (text, "refusal log limit reached"), "%s", text);
    cr_assert (strstr (text, "suppressed=8") && strstr (text, "unknown_key=7") && strstr (text, "no_key=1"),
               "one summary at the end of the window: %s", text);
}
