/*  test_config_http: broker.listen.http and the security keys of the HTTP
    endpoint. HOST:PORT is checked at load; loopback needs nothing; another
    address needs TLS and tokens, or plaintext: true; tls_cert and tls_key
    come together; a security section with only HTTP keys leaves the
    ZeroMQ endpoints loopback-only; the HTTP port may not be a ZeroMQ one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "herald_config.h"

static herald_config_t s_cfg;
static char s_err[HERALD_ERR_MAX];

#define S_REST \
    "channels:\n" \
    "  email: { driver: file, dir: out/email }\n" \
    "events:\n" \
    "  order.confirmed:\n" \
    "    fanout: [email]\n"

static int
s_parse (const char *head)
{
    char text[4096];
    snprintf (text, sizeof text, "%s%s", head, S_REST);
    s_err[0] = '\0';
    return herald_config_parse (&s_cfg, text, strlen (text), "t.yaml", s_err, sizeof s_err);
}

Test (config_http, defaults_and_loopback)
{
    cr_assert_eq (s_parse (""), 0, "%s", s_err);
    cr_assert_str_eq (s_cfg.broker.http, "");
    cr_assert_eq (s_cfg.broker.http_max_connections, 256);
    cr_assert_eq (s_cfg.broker.http_timeout_ms, 10000);
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"127.0.0.1:8470\"\n  http_timeout: 3s\n"), 0, "%s", s_err);
    cr_assert_str_eq (s_cfg.broker.http, "127.0.0.1:8470");
    cr_assert_eq (s_cfg.broker.http_timeout_ms, 3000);
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"[::1]:8470\"\n"), 0, "%s", s_err);
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"localhost:8470\"\n"), 0, "%s", s_err);
}

Test (config_http, malformed_addresses_named)
{
    const char *bad[] = { "8470", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "example.com:80", "[::1:80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char head[200];
        snprintf (head, sizeof head, "broker:\n  listen:\n    http: \"%s\"\n", bad[i]);
        cr_assert_eq (s_parse (head), -1, "%s loaded", bad[i]);
        cr_assert_not_null (strstr (s_err, "t.yaml:3: broker.listen.http:"), "%s: %s", bad[i], s_err);
    }
}

Test (config_http, network_address_needs_tls_and_tokens_or_plaintext)
{
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"*:8470\"\n"), -1);
    cr_assert_not_null (strstr (s_err, "broker.listen.http: *:8470 is reachable from the network"), "%s", s_err);
    cr_assert_not_null (strstr (s_err, "security.tls_cert"));
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"0.0.0.0:8470\"\n"
                           "security:\n  tls_cert: c.pem\n  tls_key: k.pem\n"), -1);
    cr_assert_not_null (strstr (s_err, "security.tokens_file"), "%s", s_err);
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"0.0.0.0:8470\"\n"
                           "security:\n  tls_cert: c.pem\n  tls_key: k.pem\n  tokens_file: t.tokens\n"), 0, "%s", s_err);
    cr_assert_str_eq (s_cfg.security.tokens_file, "t.tokens");
    cr_assert (!s_cfg.security.curve && !s_cfg.security.plaintext);
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"0.0.0.0:8470\"\nsecurity:\n  plaintext: true\n"), 0, "%s", s_err);
}

Test (config_http, tls_files_come_together)
{
    cr_assert_eq (s_parse ("security:\n  tls_cert: c.pem\n"), -1);
    cr_assert_not_null (strstr (s_err, "t.yaml:2: security.tls_key: is required with security.tls_cert"), "%s", s_err);
    cr_assert_eq (s_parse ("security:\n  tokens_file: t\n  tls_key: k.pem\n"), -1);
    cr_assert_not_null (strstr (s_err, "security.tls_cert: is required with security.tls_key"), "%s", s_err);
}

Test (config_http, http_only_security_keeps_zeromq_local)
{
    cr_assert_eq (s_parse ("broker:\n  listen:\n    producers: \"tcp://0.0.0.0:5570\"\n"
                           "security:\n  tokens_file: t.tokens\n"), -1);
    cr_assert_not_null (strstr (s_err, "broker.listen.producers"), "%s", s_err);
    cr_assert_eq (s_parse ("security:\n  tokens_file: t.tokens\n"), 0, "%s", s_err);
    cr_assert (s_cfg.security.present && !s_cfg.security.curve);
    /*  Key lists still need a broker key. */
    cr_assert_eq (s_parse ("security:\n  tokens_file: t.tokens\n  producers: []\n"), -1);
    cr_assert_not_null (strstr (s_err, "security.broker_key"), "%s", s_err);
}

Test (config_http, port_shared_with_zeromq_refused)
{
    cr_assert_eq (s_parse ("broker:\n  listen:\n    http: \"127.0.0.1:5570\"\n"), -1);
    cr_assert_not_null (strstr (s_err, "broker.listen"), "%s", s_err);
    cr_assert_not_null (strstr (s_err, "each endpoint needs its own"), "%s", s_err);
}
