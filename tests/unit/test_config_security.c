/*  test_config_security: the configuration's security section and the
    fail-closed rule. Without a security section only loopback and ipc
    endpoints load; key files are read at load and errors name the config
    file, its line and key, and the key file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_config.h"
#include "herald_keys.h"

static herald_config_t s_cfg;
static char s_err[HERALD_ERR_MAX];
static char s_dir[64];

#define S_REST \
    "channels:\n" \
    "  email: { driver: file, dir: out/email }\n" \
    "  courier: { driver: file, dir: out/courier }\n" \
    "events:\n" \
    "  order.confirmed:\n" \
    "    fanout: [email, courier]\n"

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-cfgsec-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    const char *names[] = { "broker", "shop", "mailer", "courier", "dash", "oncall" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[128];
        snprintf (path, sizeof path, "%s/%s", s_dir, names[i]);
        cr_assert_eq (herald_keys_generate (path, NULL, 0, NULL, 0, s_err, sizeof s_err), 0, "%s", s_err);
    }
}

static void
s_teardown (void)
{
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (config_security, .init = s_setup, .fini = s_teardown);

/*  Parses a config made of head (with "@" standing for the key directory)
    followed by the channels and events. */
static int
s_parse (const char *head)
{
    char text[4096];
    size_t o = 0;
    for (const char *p = head; *p && o + 80 < sizeof text; p++) {
        if (*p == '@')
            o += (size_t) snprintf (text + o, sizeof text - o, "%s", s_dir);
        else
            text[o++] = *p;
    }
    o += (size_t) snprintf (text + o, sizeof text - o, "%s", S_REST);
    s_err[0] = '\0';
    return herald_config_parse (&s_cfg, text, o, "t.yaml", s_err, sizeof s_err);
}

static void
s_expect_error (const char *head, const char *expected)
{
    int rc = s_parse (head);
    cr_assert_eq (rc, -1, "parsed, expected an error containing \"%s\"", expected);
    cr_assert (strstr (s_err, expected), "error \"%s\" does not contain \"%s\"", s_err, expected);
}

Test (config_security, endpoint_locality)
{
    const char *local[] = { "ipc:///tmp/x.sock", "inproc://x", "tcp://127.0.0.1:5570", "tcp://127.9.8.7:1",
                            "tcp://localhost:5570", "tcp://[::1]:5570", "tcp://[::ffff:127.0.0.1]:5570",
                            "tcp://127.0.0.1:*", NULL };
    const char *remote[] = { "tcp://*:5570", "tcp://0.0.0.0:5570", "tcp://eth0:5570", "tcp://10.0.0.5:5570",
                             "tcp://[::]:5570", "tcp://[2001:db8::1]:5570", "tcp://shop.example:5570",
                             "tcp://128.0.0.1:5570", "tcp://127.0.0.1", "tcp://10.0.0.1;127.0.0.1:5570",
                             "tcp://lo:5570", "pgm://x", "", NULL };
    for (int i = 0; local[i]; i++)
        cr_assert (herald_endpoint_is_local (local[i]), "%s should be local", local[i]);
    for (int i = 0; remote[i]; i++)
        cr_assert (!herald_endpoint_is_local (remote[i]), "%s should not be local", remote[i]);
    cr_assert (!herald_endpoint_is_local (NULL));
}

Test (config_security, no_section_refuses_network_endpoints)
{
    s_expect_error ("broker:\n  listen:\n    producers: \"tcp://0.0.0.0:5570\"\n",
                    "t.yaml:3: broker.listen.producers: tcp://0.0.0.0:5570 is reachable from the network");
    s_expect_error ("broker:\n  listen:\n    producers: \"tcp://127.0.0.1:5570\"\n    workers: \"tcp://*:5571\"\n",
                    "t.yaml:4: broker.listen.workers: tcp://*:5571 is reachable from the network");
    s_expect_error ("broker:\n  listen: { admin: \"tcp://eth0:5572\" }\n",
                    "t.yaml:2: broker.listen.admin: tcp://eth0:5572 is reachable");
    s_expect_error ("broker:\n  listen: { admin: \"tcp://10.1.2.3:5572\" }\n", "security: { plaintext: true }");

    cr_assert_eq (s_parse ("broker:\n  listen: { producers: \"ipc:///tmp/p.sock\", workers: \"tcp://[::1]:5571\" }\n"),
                  0, "%s", s_err);
    cr_assert (!s_cfg.security.present);
    cr_assert (!s_cfg.security.curve);
    cr_assert_eq (s_cfg.broker.max_connections, 1024);
    cr_assert_eq (s_cfg.broker.handshake_timeout_ms, 5000);
}

Test (config_security, sample_configs_load)
{
    cr_assert_eq (herald_config_load (&s_cfg, HERALD_SOURCE_DIR "/etc/herald.yaml", s_err, sizeof s_err), 0,
                  "%s", s_err);
    cr_assert (!s_cfg.security.present);
}

Test (config_security, plaintext_allows_network_endpoints)
{
    int rc = s_parse ("broker:\n  listen: { producers: \"tcp://0.0.0.0:5570\" }\nsecurity: { plaintext: true }\n");
    cr_assert_eq (rc, 0, "%s", s_err);
    cr_assert (s_cfg.security.present);
    cr_assert (s_cfg.security.plaintext);
    cr_assert (!s_cfg.security.curve);
    s_expect_error ("security: { plaintext: false }\n", "t.yaml:1: security.broker_key: is required");
    s_expect_error ("security:\n  plaintext: true\n  producers: [@/shop.public]\n",
                    "t.yaml:3: security.producers: needs broker_key");
}

Test (config_security, keys_and_roles_load)
{
    int rc = s_parse (
        "broker:\n  listen: { producers: \"tcp://0.0.0.0:5570\", workers: \"tcp://*:5571\" }\n"
        "security:\n"
        "  broker_key: @/broker.secret\n"
        "  producers: [@/shop.public]\n"
        "  workers: { email: [@/mailer.public], courier: [@/courier.public, @/mailer.public] }\n"
        "  admin_read: [@/dash.public]\n"
        "  admin_operate: [@/oncall.public, @/shop.public]\n");
    cr_assert_eq (rc, 0, "%s", s_err);
    const herald_security_config_t *sec = &s_cfg.security;
    cr_assert (sec->curve);
    cr_assert (!sec->plaintext);
    char expected[128];
    snprintf (expected, sizeof expected, "%s/broker.public", s_dir);
    cr_assert_str_eq (sec->broker_public, expected);
    char key[HERALD_KEY_LEN + 1];
    cr_assert_eq (herald_keys_load_public (expected, key, s_err, sizeof s_err), 0);
    cr_assert_str_eq (sec->broker_public_key, key);
    cr_assert_eq (sec->key_count, 5, "shop and mailer are listed twice but counted once");

    snprintf (expected, sizeof expected, "%s/shop.public", s_dir);
    cr_assert_eq (herald_keys_load_public (expected, key, s_err, sizeof s_err), 0);
    const herald_client_key_t *shop = herald_config_find_key (&s_cfg, key);
    cr_assert_not_null (shop);
    cr_assert_str_eq (shop->name, "shop");
    cr_assert_eq (shop->roles, HERALD_ROLE_PRODUCER | HERALD_ROLE_ADMIN_OPERATE);
    cr_assert_eq (shop->line, 5);
    cr_assert_str_eq (sec->producer_file, expected);

    snprintf (expected, sizeof expected, "%s/mailer.public", s_dir);
    cr_assert_eq (herald_keys_load_public (expected, key, s_err, sizeof s_err), 0);
    const herald_client_key_t *mailer = herald_config_find_key (&s_cfg, key);
    cr_assert_not_null (mailer);
    cr_assert_eq (mailer->roles, HERALD_ROLE_WORKER);
    int email = herald_config_channel_index (&s_cfg, "email");
    int courier = herald_config_channel_index (&s_cfg, "courier");
    cr_assert_eq (mailer->channels, (1u << email) | (1u << courier));
    cr_assert_str_eq (sec->worker_file[email], expected);
    snprintf (expected, sizeof expected, "%s/courier.public", s_dir);
    cr_assert_str_eq (sec->worker_file[courier], expected, "the first key listed for the channel");

    snprintf (expected, sizeof expected, "%s/dash.public", s_dir);
    cr_assert_str_eq (sec->admin_read_file, expected);
    cr_assert_null (herald_config_find_key (&s_cfg, "0000000000000000000000000000000000000000"));
}

Test (config_security, section_errors_name_line_and_key)
{
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  plaintext: true\n",
                    "t.yaml:3: security.plaintext: true turns CURVE off");
    s_expect_error ("security:\n  producers: [@/shop.public]\n",
                    "t.yaml:1: security.broker_key: is required");
    s_expect_error ("security:\n  broker_key: @/broker.public\n",
                    "t.yaml:2: security.broker_key: must name a .secret file");
    s_expect_error ("security:\n  broker_key: @/nobroker.secret\n",
                    "t.yaml:2: security.broker_key: the broker's public key beside it: ");
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  producers: [@/shop.secret]\n",
                    "t.yaml:3: security.producers: must list .public key files");
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  producers: [@/gone.public]\n",
                    "gone.public: cannot open: No such file or directory");
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  workers: { sms: [@/mailer.public] }\n",
                    "t.yaml:3: security.workers.sms: unknown channel 'sms'");
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  admin_read: @/dash.public\n",
                    "t.yaml:3: security.admin_read: must be a list");
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  admin_read: [@/dash.public,\n    @/dash.public]\n",
                    "t.yaml:4: security.admin_read: lists ");
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  admin: [@/dash.public]\n",
                    "t.yaml:3: security.admin: unknown key (known keys: broker_key, plaintext, producers, workers, "
                    "admin_read, admin_operate, tokens_file, tls_cert, tls_key)");

    /*  A malformed key file: the config line and the key file's line. */
    char path[128];
    snprintf (path, sizeof path, "%s/bad.public", s_dir);
    FILE *f = fopen (path, "w");
    fputs ("not-a-key\n# a comment\n", f);
    fclose (f);
    char expected[256];
    snprintf (expected, sizeof expected, "t.yaml:3: security.producers: %s:1: not a CURVE public key", path);
    s_expect_error ("security:\n  broker_key: @/broker.secret\n  producers: [@/bad.public]\n", expected);
}

Test (config_security, client_processes_never_read_the_broker_secret)
{
    /*  A client host has broker.public but cannot read broker.secret: the
        configuration still loads (only the broker reads its secret key). */
    char path[128];
    snprintf (path, sizeof path, "%s/broker.secret", s_dir);
    cr_assert_eq (chmod (path, 0000), 0);
    cr_assert_eq (s_parse ("security:\n  broker_key: @/broker.secret\n"), 0, "%s", s_err);
    cr_assert (s_cfg.security.curve);
    cr_assert_eq (unlink (path), 0);
    cr_assert_eq (s_parse ("security:\n  broker_key: @/broker.secret\n"), 0, "%s", s_err);
}
