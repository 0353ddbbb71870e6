/*  test_client_curve: libherald over CURVE. herald_client_new_curve reads a
    key pair and the broker's public key from files (refusing a secret key
    others may read); a listed key publishes and gets its ACK; a refused key,
    a wrong broker key and a client without a key get HERALD_E_DENIED with
    the reason in herald_client_error, not "unavailable". The broker side is
    the broker's own ZAP thread and a CURVE ROUTER; the test answers the
    PUBLISH itself. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "broker_fixture.h"
#include "herald.h"
#include "herald_keys.h"
#include "herald_wire.h"
#include "peers.h"
#include "refusals.h"
#include "zap.h"

static char s_dir[64];
static herald_config_t s_config;
static herald_keypair_t s_broker, s_shop;
static void *s_ctx, *s_router;
static zap_t *s_zap;
static refusals_t *s_refusals;
static peers_t *s_peers;
static char s_endpoint[64];

static const char *
s_path (const char *name)
{
    static char path[4][128];
    static int next;
    char *out = path[next++ % 4];
    snprintf (out, 128, "%s/%s", s_dir, name);
    return out;
}

static void
s_load (const char *name, herald_keypair_t *pair)
{
    char err[256];
    cr_assert_eq (herald_keys_generate (s_path (name), NULL, 0, NULL, 0, err, sizeof err), 0, "%s", err);
    char file[160];
    snprintf (file, sizeof file, "%s.secret", s_path (name));
    cr_assert_eq (herald_keys_load_secret (file, pair, err, sizeof err), 0, "%s", err);
}

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-client-curve-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    s_load ("broker", &s_broker);
    s_load ("shop", &s_shop);
    fixture_config (&s_config);
    herald_security_config_t *sec = &s_config.security;
    sec->curve = true;
    herald_client_key_t *key = &sec->keys[sec->key_count++];
    snprintf (key->name, sizeof key->name, "shop");
    memcpy (key->key, s_shop.public_key, sizeof key->key);
    key->roles = HERALD_ROLE_PRODUCER;

    s_ctx = zmq_ctx_new ();
    s_refusals = refusals_new (20, 60000);
    s_peers = peers_new ();
    allowlist_t *list = allowlist_new (&s_config, &s_config, NULL);
    zap_options_t options = { .ctx = s_ctx, .curve = true, .max_connections = 100,
                              .refusals = s_refusals, .peers = s_peers };
    char err[256];
    s_zap = zap_new (&options, &list, err, sizeof err);
    cr_assert_not_null (s_zap, "%s", err);
    hw_options_t router = { .linger_ms = 0, .max_msg_size = -1, .curve_secret = s_broker.secret_key,
                            .zap_domain = ZAP_DOMAIN_PRODUCERS };
    s_router = hw_socket_new (s_ctx, HW_PRODUCER_ROUTER, "tcp://127.0.0.1:*", &router, err, sizeof err);
    cr_assert_not_null (s_router, "%s", err);
    size_t size = sizeof s_endpoint;
    zmq_getsockopt (s_router, ZMQ_LAST_ENDPOINT, s_endpoint, &size);
}

static void
s_teardown (void)
{
    zmq_close (s_router);
    zap_destroy (&s_zap);
    zmq_ctx_term (s_ctx);
    peers_destroy (&s_peers);
    refusals_destroy (&s_refusals);
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (client_curve, .init = s_setup, .fini = s_teardown, .timeout = 30);

static const char *s_event =
    "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"t\",\"type\":\"order.confirmed\",\"data\":{}}";

Test (client_curve, a_listed_key_publishes)
{
    char err[256];
    char secret[160], server[160];
    snprintf (secret, sizeof secret, "%s", s_path ("shop.secret"));
    snprintf (server, sizeof server, "%s", s_path ("broker.public"));
    herald_client_t *client = herald_client_new_curve (s_endpoint, secret, server, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    uint64_t corr = 0;
    cr_assert_eq (herald_send (client, s_event, 5000, &corr), HERALD_OK);

    hw_msg_t in;
    zmq_pollitem_t item = { s_router, 0, ZMQ_POLLIN, 0 };
    cr_assert_eq (zmq_poll (&item, 1, 5000), 1);
    cr_assert_eq (hw_recv (s_router, true, &in, 0), 0);
    cr_assert_str_eq (hw_msg_user_id (&in), s_shop.public_key, "the broker sees the client's key");
    hp_msg_t msg;
    cr_assert_eq (hw_decode (&in, &msg, NULL), 0);
    hp_msg_t ack = { .command = HP_ACK, .corr = msg.corr, .event_id = hp_str ("e-1"),
                     .durability = hp_str ("fsync") };
    cr_assert_eq (hw_send (s_router, in.identity, &ack, 0), 0);
    hw_msg_close (&in);

    herald_reply_t reply;
    cr_assert_eq (herald_recv (client, 5000, &reply), HERALD_OK);
    cr_assert (reply.acked);
    cr_assert_eq (reply.corr, corr);
    cr_assert_str_eq (herald_client_error (client), "");
    herald_client_destroy (&client);
}

/*  Publishes with client and expects a refusal by the broker's security. */
static void
s_expect_denied (herald_client_t *client, const char *reason)
{
    cr_assert_not_null (client);
    herald_reply_t reply;
    herald_status_t status = herald_publish (client, s_event, 1500, &reply);
    cr_assert_eq (status, HERALD_E_DENIED, "status %s", herald_strerror (status));
    cr_assert (strstr (herald_client_error (client), reason), "error: %s", herald_client_error (client));
    herald_client_destroy (&client);
}

Test (client_curve, refusals_say_why)
{
    char err[256];
    herald_keypair_t stranger;
    s_load ("stranger", &stranger);
    s_expect_denied (herald_client_new_curve_keys (s_endpoint, stranger.public_key, stranger.secret_key,
                                                   s_broker.public_key, err, sizeof err),
                     "refused this client's key");
    s_expect_denied (herald_client_new_curve_keys (s_endpoint, s_shop.public_key, s_shop.secret_key,
                                                   stranger.public_key, err, sizeof err),
                     "wrong broker key");
    s_expect_denied (herald_client_new (s_endpoint), "security mismatch");
}

Test (client_curve, bad_keys_are_refused_up_front)
{
    char err[256];
    char secret[160], server[160];
    snprintf (secret, sizeof secret, "%s", s_path ("shop.secret"));
    snprintf (server, sizeof server, "%s", s_path ("broker.public"));
    cr_assert_eq (chmod (secret, 0644), 0);
    cr_assert_null (herald_client_new_curve (s_endpoint, secret, server, err, sizeof err));
    cr_assert (strstr (err, "shop.secret: mode 0644 is readable by group and others"), "%s", err);
    cr_assert_eq (chmod (secret, 0600), 0);
    cr_assert_eq (chmod (server, 0600), 0);
    cr_assert_null (herald_client_new_curve (s_endpoint, server, server, err, sizeof err),
                    "a public key file is no secret key file");
    cr_assert (strstr (err, "broker.public:1: expected \"public-key = KEY\""), "%s", err);
    cr_assert_null (herald_client_new_curve_keys (s_endpoint, "short", s_shop.secret_key, s_broker.public_key,
                                                  err, sizeof err));
    cr_assert (strstr (err, "the public key is not a CURVE key"), "%s", err);
}
