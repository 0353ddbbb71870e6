/*  test_config: the configuration module. The samples in etc/ load with the
    expected values; each kind of error names the file, the line and the key. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_config.h"

static herald_config_t s_cfg;
static char s_err[HERALD_ERR_MAX];

/*  A minimal valid configuration; error cases append to or replace parts of it. */
#define S_CHANNELS \
    "channels:\n" \
    "  email: { driver: file, dir: out/email }\n" \
    "  inventory: { driver: file, dir: out/inventory }\n"
#define S_EVENTS \
    "events:\n" \
    "  order.confirmed:\n" \
    "    fanout: [email, inventory]\n"

static int
s_parse (const char *text)
{
    s_err[0] = '\0';
    return herald_config_parse (&s_cfg, text, strlen (text), "t.yaml", s_err, sizeof s_err);
}

/*  Parses text, which must fail with a message containing `expected`. */
static void
s_expect_error (const char *text, const char *expected)
{
    int rc = s_parse (text);
    cr_assert_eq (rc, -1, "parsed, expected an error containing \"%s\"", expected);
    cr_assert (strstr (s_err, expected), "error \"%s\" does not contain \"%s\"", s_err, expected);
}

Test (config, sample_loads)
{
    int rc = herald_config_load (&s_cfg, HERALD_SOURCE_DIR "/etc/herald.yaml", s_err, sizeof s_err);
    cr_assert_eq (rc, 0, "%s", s_err);
    herald_config_t *c = &s_cfg;
    cr_assert_str_eq (c->broker.producers, "tcp://127.0.0.1:5570");
    cr_assert_str_eq (c->broker.workers, "tcp://127.0.0.1:5571");
    cr_assert_str_eq (c->broker.admin, "tcp://127.0.0.1:5572");
    cr_assert_str_eq (c->broker.store, "var/herald.db");
    cr_assert_eq (c->broker.max_event_bytes, 256 * 1024);

    cr_assert_eq (c->channel_count, 3);
    cr_assert_str_eq (c->channels[0].name, "email");
    cr_assert_str_eq (c->channels[1].name, "inventory");
    cr_assert_str_eq (c->channels[2].name, "courier");
    for (int i = 0; i < 3; i++)
        cr_assert_eq (c->channels[i].driver, HERALD_DRIVER_FILE);
    cr_assert_str_eq (c->channels[0].dir, "var/outbox/email");
    cr_assert_str_eq (c->channels[2].dir, "var/outbox/courier");
    cr_assert_eq (c->channels[0].max_attempts, 8);
    cr_assert_eq (c->channels[0].backoff_min_ms, 500);
    cr_assert_eq (c->channels[0].backoff_max_ms, 600000);
    cr_assert_str_eq (c->channels[0].smtp.to, "{{data.customer.email}}");
    cr_assert_str_eq (c->channels[0].smtp.subject, "Order {{data.order_id}} confirmed");
    cr_assert_eq (c->channels[1].capacity, 32);
    cr_assert_eq (c->channels[1].lease_ms, 60000);

    cr_assert_eq (c->event_count, 1);
    const herald_event_type_t *ev = &c->events[0];
    cr_assert_str_eq (ev->name, "order.confirmed");
    cr_assert_str_eq (ev->key, "order_id");
    cr_assert_eq (ev->required_count, 3);
    cr_assert_str_eq (ev->required[0], "order_id");
    cr_assert_str_eq (ev->required[1], "customer.email");
    cr_assert_str_eq (ev->required[2], "items");
    cr_assert_eq (ev->fanout_count, 3);
    cr_assert_eq (ev->fanout[0], herald_config_channel_index (c, "email"));
    cr_assert_eq (ev->fanout[1], herald_config_channel_index (c, "inventory"));
    cr_assert_eq (ev->fanout[2], herald_config_channel_index (c, "courier"));
    cr_assert_eq (herald_config_event_index (c, "order.confirmed"), 0);
    cr_assert_eq (herald_config_event_index (c, "order.cancelled"), -1);

    cr_assert_eq (c->workers[0], 2);
    cr_assert_eq (c->workers[1], 1);
    cr_assert_eq (c->workers[2], 1);
    cr_assert (strstr (c->path, "etc/herald.yaml"));
}

Test (config, production_example_loads)
{
    int rc = herald_config_load (&s_cfg, HERALD_SOURCE_DIR "/etc/herald.production.yaml",
                                 s_err, sizeof s_err);
    cr_assert_eq (rc, 0, "%s", s_err);
    herald_config_t *c = &s_cfg;
    int email = herald_config_channel_index (c, "email");
    int inventory = herald_config_channel_index (c, "inventory");
    int courier = herald_config_channel_index (c, "courier");
    cr_assert (email >= 0 && inventory >= 0 && courier >= 0);

    const herald_channel_t *e = &c->channels[email];
    cr_assert_eq (e->driver, HERALD_DRIVER_SMTP);
    cr_assert_str_eq (e->smtp.url, "smtp://smtp.example.com:587");
    cr_assert_eq (e->smtp.tls, HERALD_TLS_STARTTLS);
    cr_assert_str_eq (e->smtp.password_env, "HERALD_SMTP_PASSWORD");
    cr_assert_str_eq (e->smtp.text_template, "etc/templates/order_confirmed.txt");
    cr_assert (e->smtp.verify_peer);
    cr_assert_float_eq (e->rate_per_sec, 10.0, 1e-9);
    cr_assert_eq (e->burst, 10);

    const herald_channel_t *inv = &c->channels[inventory];
    cr_assert_eq (inv->driver, HERALD_DRIVER_HTTP);
    cr_assert_str_eq (inv->http.method, "POST");
    cr_assert_str_eq (inv->http.url, "https://inventory.example.com/v1/reservations");
    cr_assert_eq (inv->http.header_count, 2);
    cr_assert_str_eq (inv->http.headers[0].name, "Authorization");
    cr_assert_str_eq (inv->http.headers[0].value, "");
    cr_assert_str_eq (inv->http.headers[0].value_env, "INVENTORY_TOKEN");
    cr_assert_str_eq (inv->http.headers[1].value, "application/json");
    cr_assert_str_eq (inv->http.body_template, "etc/templates/inventory.json");
    cr_assert_eq (inv->http.timeout_ms, 15000);
    cr_assert_not (inv->http.follow_redirects);

    const herald_channel_t *co = &c->channels[courier];
    cr_assert_str_eq (co->http.url, "https://api.courier.example.com/v2/bookings");
    cr_assert_float_eq (co->rate_per_sec, 10.0, 1e-9);   /* 600/m */
    cr_assert_eq (co->burst, 5);
    cr_assert_eq (co->max_in_flight, 8);
    cr_assert_eq (co->backoff_max_ms, 3600000);
}

Test (config, templates_exist)
{
    const char *files[] = {
        HERALD_SOURCE_DIR "/etc/templates/order_confirmed.txt",
        HERALD_SOURCE_DIR "/etc/templates/order_confirmed.html",
        HERALD_SOURCE_DIR "/etc/templates/inventory.json",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen (files[i], "r");
        cr_assert (f, "missing %s", files[i]);
        char buf[4096];
        size_t n = fread (buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose (f);
        cr_assert (strstr (buf, "{{data.order_id}}"), "%s has no {{data.order_id}}", files[i]);
    }
}

Test (config, defaults)
{
    herald_config_defaults (&s_cfg);
    cr_assert_str_eq (s_cfg.broker.producers, "tcp://127.0.0.1:5570");
    cr_assert_str_eq (s_cfg.broker.workers, "tcp://127.0.0.1:5571");
    cr_assert_str_eq (s_cfg.broker.admin, "tcp://127.0.0.1:5572");
    cr_assert_str_eq (s_cfg.broker.store, "var/herald.db");
    cr_assert_eq (s_cfg.broker.max_event_bytes, 256 * 1024);
    cr_assert_eq (s_cfg.broker.batch_max, 2048);
    cr_assert_eq (s_cfg.broker.dedup_retention_ms, INT64_C (7) * 24 * 3600 * 1000);
    cr_assert_eq (s_cfg.broker.heartbeat_ms, 1000);
    cr_assert_eq (s_cfg.broker.heartbeat_liveness, 3);
    cr_assert_eq (s_cfg.broker.shutdown_timeout_ms, 10000);
    cr_assert_eq (s_cfg.broker.queue_window, 100000);
    cr_assert_eq (s_cfg.broker.max_pending_events, 1000000);
    cr_assert_eq (s_cfg.broker.hwm, 10000);
    cr_assert_eq (s_cfg.channel_count, 0);
    cr_assert_eq (s_cfg.event_count, 0);
    cr_assert_eq (s_cfg.path[0], '\0');
    char *text = herald_config_explain (&s_cfg);
    cr_assert_not_null (text);
    free (text);
}

Test (config, channel_defaults_and_derived_values)
{
    int rc = s_parse ("channels:\n"
                      "  email: { driver: file, dir: out }\n"
                      "  fast: { driver: noop, rate: 2.5 }\n"
                      "  relay:\n"
                      "    driver: smtp\n"
                      "    smtp: { url: \"smtps://mail:465\", from: a@b, to: x, subject: s,\n"
                      "            text_template: t.txt, html_template: t.html }\n"
                      "events:\n"
                      "  a: { fanout: [email] }\n"
                      "workers: { fast: 0 }\n");
    cr_assert_eq (rc, 0, "%s", s_err);
    const herald_channel_t *email = &s_cfg.channels[0];
    cr_assert_eq (email->capacity, 32);
    cr_assert_eq (email->max_attempts, 8);
    cr_assert_eq (email->backoff_min_ms, 500);
    cr_assert_eq (email->backoff_max_ms, 600000);
    cr_assert_eq (email->lease_ms, 60000);
    cr_assert_eq (email->max_in_flight, 0);
    cr_assert_float_eq (email->rate_per_sec, 0.0, 1e-12);
    cr_assert_eq (email->burst, 1);
    cr_assert (email->smtp.verify_peer);
    cr_assert (email->http.verify_peer);
    cr_assert_str_eq (email->http.method, "POST");
    cr_assert_eq (email->http.connect_timeout_ms, 5000);
    cr_assert_eq (email->http.timeout_ms, 30000);
    cr_assert_eq (email->smtp.timeout_ms, 30000);
    cr_assert_eq (s_cfg.channels[1].burst, 3);              /* ceil (2.5) */
    cr_assert_eq (s_cfg.channels[2].smtp.tls, HERALD_TLS_IMPLICIT);  /* from smtps:// */
    cr_assert_eq (s_cfg.workers[0], 1);                     /* not listed */
    cr_assert_eq (s_cfg.workers[1], 0);
    cr_assert_eq (s_cfg.workers[2], 1);
    cr_assert_eq (s_cfg.events[0].key[0], '\0');
    cr_assert_eq (s_cfg.events[0].required_count, 0);
}

Test (config, failed_parse_leaves_config_untouched)
{
    cr_assert_eq (s_parse (S_CHANNELS S_EVENTS), 0, "%s", s_err);
    cr_assert_eq (s_parse (S_CHANNELS S_EVENTS "workers: { email: 65 }\n"), -1);
    cr_assert_eq (s_cfg.channel_count, 2);
    cr_assert_eq (s_cfg.workers[0], 1);
}

Test (config, rates)
{
    cr_assert_eq (s_parse (S_EVENTS "channels:\n"
                           "  email: { driver: noop, rate: 600/m }\n"
                           "  inventory: { driver: noop, rate: 36000/h, burst: 7 }\n"), 0, "%s", s_err);
    cr_assert_float_eq (s_cfg.channels[0].rate_per_sec, 10.0, 1e-9);
    cr_assert_float_eq (s_cfg.channels[1].rate_per_sec, 10.0, 1e-9);
    cr_assert_eq (s_cfg.channels[1].burst, 7);
    s_expect_error (S_EVENTS "channels:\n  email: { driver: noop, rate: 10/x }\n  inventory: { driver: noop }\n",
                    "t.yaml:5: channels.email.rate: must be a rate like 10/s");
    s_expect_error (S_EVENTS "channels:\n  email: { driver: noop, rate: -1 }\n  inventory: { driver: noop }\n",
                    "t.yaml:5: channels.email.rate: must be a rate");
    s_expect_error (S_EVENTS "channels:\n  email: { driver: noop, rate: 1e3 }\n  inventory: { driver: noop }\n",
                    "t.yaml:5: channels.email.rate:");
}

Test (config, prefetch_defaults_by_driver_and_the_credit)
{
    cr_assert_eq (s_parse (S_EVENTS "channels:\n"
                           "  email: { driver: file, dir: out, capacity: 10 }\n"
                           "  inventory: { driver: noop }\n"
                           "  hook: { driver: http, http: { url: \"http://127.0.0.1:9/h\" }, capacity: 16 }\n"
                           "  told: { driver: http, http: { url: \"http://127.0.0.1:9/h\" }, capacity: 4,"
                           " prefetch: 12 }\n"
                           "  none: { driver: noop, prefetch: 0 }\n"), 0, "%s", s_err);
    cr_assert_eq (s_cfg.channels[0].prefetch, 256, "file finishes deliveries as they arrive: 256");
    cr_assert_eq (herald_channel_credit (&s_cfg.channels[0]), 266u);
    cr_assert_eq (s_cfg.channels[1].prefetch, 256, "noop too");
    cr_assert_eq (herald_channel_credit (&s_cfg.channels[1]), 288u, "with the default capacity 32");
    cr_assert_eq (s_cfg.channels[2].prefetch, 0, "http runs capacity deliveries at once: nothing extra");
    cr_assert_eq (herald_channel_credit (&s_cfg.channels[2]), 16u);
    cr_assert_eq (s_cfg.channels[3].prefetch, 12);
    cr_assert_eq (herald_channel_credit (&s_cfg.channels[3]), 16u);
    cr_assert_eq (s_cfg.channels[4].prefetch, 0, "an explicit 0 is kept");
    cr_assert_eq (herald_channel_credit (&s_cfg.channels[4]), 32u);
    s_cfg.channels[4].capacity = 10000;
    s_cfg.channels[4].prefetch = 60000;
    cr_assert_eq (herald_channel_credit (&s_cfg.channels[4]), 65535u, "READY's bound");
    s_expect_error (S_EVENTS "channels:\n  email: { driver: noop, prefetch: 10001 }\n  inventory: { driver: noop }\n",
                    "t.yaml:5: channels.email.prefetch:");
    s_expect_error (S_EVENTS "channels:\n  email: { driver: noop, prefetch: -1 }\n  inventory: { driver: noop }\n",
                    "t.yaml:5: channels.email.prefetch:");
}

/* ---- one test per kind of error ---------------------------------------- */

Test (config_errors, missing_file)
{
    int rc = herald_config_load (&s_cfg, "/nonexistent/herald.yaml", s_err, sizeof s_err);
    cr_assert_eq (rc, -1);
    cr_assert_str_eq (s_err, "/nonexistent/herald.yaml: cannot open: No such file or directory");
}

Test (config_errors, yaml_syntax)
{
    s_expect_error ("broker:\n  store: var/x.db\n  listen: [a, b\nchannels: {}\n",
                    "t.yaml:4:");
    cr_assert (strstr (s_err, "YAML syntax error"), "%s", s_err);
    s_expect_error ("broker:\n  store: \"unterminated\n", "t.yaml:");
    cr_assert (strstr (s_err, "YAML syntax error: found unexpected end of stream"), "%s", s_err);
    s_expect_error ("channels:\n  email: { driver: file, dir: \"\xff\" }\n", "t.yaml:2: YAML syntax error: invalid");
    s_expect_error ("a: b\n c: d\n", "t.yaml:2:");
    cr_assert (strstr (s_err, "mapping values are not allowed"), "%s", s_err);
}

Test (config_errors, unknown_key)
{
    s_expect_error (S_CHANNELS S_EVENTS "broker:\n  store: x.db\n  stroe: y.db\n",
                    "t.yaml:9: broker.stroe: unknown key (known keys: listen, store,");
    s_expect_error ("channels:\n  email:\n    driver: file\n    dir: out\n    retry: { max_attempt: 3 }\n"
                    S_EVENTS,
                    "t.yaml:5: channels.email.retry.max_attempt: unknown key (known keys: max_attempts, max_throttled, backoff)");
    s_expect_error (S_CHANNELS S_EVENTS "logging: debug\n", "t.yaml:7: logging: unknown key");
}

Test (config_errors, duplicate_key)
{
    s_expect_error (S_CHANNELS S_EVENTS "broker:\n  store: a.db\n  store: b.db\n",
                    "t.yaml:9: broker.store: duplicate key (first at line 8)");
    s_expect_error ("channels:\n  email: { driver: file, dir: a }\n  email: { driver: file, dir: b }\n"
                    S_EVENTS,
                    "t.yaml:3: channels.email: duplicate key (first at line 2)");
}

Test (config_errors, wrong_type)
{
    s_expect_error (S_CHANNELS S_EVENTS "broker:\n  store: { path: x }\n",
                    "t.yaml:8: broker.store: must be a string, got a mapping");
    s_expect_error (S_CHANNELS S_EVENTS "broker:\n  batch_max: [1, 2]\n",
                    "t.yaml:8: broker.batch_max: must be an integer, got a list");
    s_expect_error (S_CHANNELS S_EVENTS "broker: tcp://x\n",
                    "t.yaml:7: broker: must be a mapping, got a scalar");
    s_expect_error (S_CHANNELS "events:\n  order.confirmed:\n    fanout: email\n",
                    "t.yaml:6: events.order.confirmed.fanout: must be a list, got a scalar");
    s_expect_error (S_CHANNELS S_EVENTS "broker:\n  batch_max: lots\n",
                    "t.yaml:8: broker.batch_max: must be an integer, got 'lots'");
    s_expect_error ("- a\n- b\n", "t.yaml:1: (top level): must be a mapping");
}

Test (config_errors, out_of_range)
{
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: file\n"
                    "    dir: out\n"
                    "    retry:\n"
                    "      max_attempts: 0\n" S_EVENTS,
                    "t.yaml:6: channels.email.retry.max_attempts: must be between 1 and 1000, got 0");
    s_expect_error (S_CHANNELS S_EVENTS "broker: { batch_max: 99999999999999999999 }\n",
                    "t.yaml:7: broker.batch_max: must be an integer");
    s_expect_error (S_CHANNELS S_EVENTS "broker: { max_event_bytes: 128MiB }\n",
                    "t.yaml:7: broker.max_event_bytes: must be between 1KiB and 16MiB, got 128MiB");
    s_expect_error (S_CHANNELS S_EVENTS "broker: { heartbeat: 5ms }\n",
                    "t.yaml:7: broker.heartbeat: must be between 10ms and 1m, got 5ms");
    s_expect_error (S_CHANNELS S_EVENTS "broker: { max_pending_events: -5 }\n",
                    "t.yaml:7: broker.max_pending_events: must be between 0 and 1000000000, got -5");
    s_expect_error ("channels:\n  email: { driver: file, dir: o, max_in_flight: -1 }\n" S_EVENTS,
                    "t.yaml:2: channels.email.max_in_flight: must be at least 0, got -1");
}

Test (config_errors, bad_duration)
{
    s_expect_error (S_CHANNELS S_EVENTS "broker: { dedup_retention: 3 weeks }\n",
                    "t.yaml:7: broker.dedup_retention: must be a duration like 250ms, 2s, 10m, 1h or 7d, got '3 weeks'");
    s_expect_error ("channels:\n  email: { driver: file, dir: o, lease: -5s }\n" S_EVENTS,
                    "t.yaml:2: channels.email.lease: must be a duration");
    s_expect_error (S_CHANNELS S_EVENTS "broker: { dedup_retention: 30s }\n",
                    "t.yaml:7: broker.dedup_retention: must be between 1m and");
}

Test (config_errors, backoff_min_greater_than_max)
{
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: file\n"
                    "    dir: out\n"
                    "    retry: { backoff: 10m..500ms }\n" S_EVENTS,
                    "t.yaml:5: channels.email.retry.backoff: minimum 10m is greater than maximum 500ms");
    s_expect_error ("channels:\n  email: { driver: file, dir: o, retry: { backoff: 5s } }\n" S_EVENTS,
                    "t.yaml:2: channels.email.retry.backoff: must be MIN..MAX durations like 500ms..10m, got '5s'");
}

Test (config_errors, fanout_unknown_channel)
{
    s_expect_error (S_CHANNELS "events:\n  order.confirmed:\n    fanout: [email, sms]\n",
                    "t.yaml:6: events.order.confirmed.fanout: unknown channel 'sms'");
    s_expect_error (S_CHANNELS "events:\n  order.confirmed:\n    fanout:\n      - email\n      - email\n",
                    "t.yaml:8: events.order.confirmed.fanout: lists channel 'email' twice");
    s_expect_error (S_CHANNELS "events:\n  order.confirmed:\n    fanout: []\n",
                    "t.yaml:6: events.order.confirmed.fanout: must list at least one channel");
    s_expect_error (S_CHANNELS "events:\n  order.confirmed:\n    key: order_id\n",
                    "t.yaml:5: events.order.confirmed.fanout: is required");
}

Test (config_errors, missing_driver)
{
    s_expect_error ("channels:\n  email: { dir: out }\n" S_EVENTS,
                    "t.yaml:2: channels.email.driver: is required");
}

Test (config_errors, unknown_driver)
{
    s_expect_error ("channels:\n  email: { driver: carrier-pigeon }\n" S_EVENTS,
                    "t.yaml:2: channels.email.driver: must be one of file, noop, smtp, http, got 'carrier-pigeon'");
}

Test (config_errors, file_driver_needs_dir)
{
    s_expect_error ("channels:\n  email:\n    driver: file\n" S_EVENTS,
                    "t.yaml:2: channels.email.dir: is required for driver file");
}

Test (config_errors, smtp_missing_url)
{
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: smtp\n"
                    "    smtp:\n"
                    "      from: a@b\n"
                    "      to: x\n" S_EVENTS,
                    "t.yaml:4: channels.email.smtp.url: is required for driver smtp");
}

Test (config_errors, smtp_implicit_tls_needs_smtps)
{
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: smtp\n"
                    "    smtp:\n"
                    "      url: smtp://mail:25\n"
                    "      tls: implicit\n"
                    "      from: a@b\n      to: x\n      subject: s\n"
                    "      text_template: t\n      html_template: h\n" S_EVENTS,
                    "t.yaml:6: channels.email.smtp.tls: implicit TLS requires an smtps:// url");
}

Test (config_errors, smtp_inline_password)
{
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: smtp\n"
                    "    smtp:\n"
                    "      url: smtp://mail:25\n"
                    "      username: shop\n"
                    "      password: hunter2\n" S_EVENTS,
                    "t.yaml:7: channels.email.smtp.password: passwords are never accepted");
    cr_assert (strstr (s_err, "password_env"), "%s", s_err);
    cr_assert_null (strstr (s_err, "hunter2"), "%s", s_err);
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: file\n    dir: o\n"
                    "    smtp: { username: shop }\n" S_EVENTS,
                    "t.yaml:5: channels.email.smtp.password_env: is required with username");
}

Test (config_errors, http_url_scheme)
{
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: http\n"
                    "    http:\n"
                    "      url: ftp://files.example.com/in\n" S_EVENTS,
                    "t.yaml:5: channels.email.http.url: must start with http:// or https://, got 'ftp://files.example.com/in'");
    s_expect_error ("channels:\n  email:\n    driver: http\n" S_EVENTS,
                    "t.yaml:2: channels.email.http.url: is required for driver http");
    s_expect_error ("channels:\n  email:\n    driver: http\n    http: { url: \"http://x\", method: FETCH }\n" S_EVENTS,
                    "t.yaml:4: channels.email.http.method: must be one of GET, POST");
}

Test (config_errors, http_headers)
{
    s_expect_error ("channels:\n  email:\n    driver: http\n    http:\n      url: \"https://x\"\n"
                    "      headers:\n        X-Evil: \"a\\r\\nHost: other\"\n" S_EVENTS,
                    "t.yaml:7: channels.email.http.headers.X-Evil: must not contain control characters");
    s_expect_error ("channels:\n  email:\n    driver: http\n    http:\n      url: \"https://x\"\n"
                    "      headers:\n        Authorization: { env: \"bad name\" }\n" S_EVENTS,
                    "t.yaml:7: channels.email.http.headers.Authorization: must be {env: NAME}");
    s_expect_error ("channels:\n  email:\n    driver: http\n    http:\n      url: \"https://x\"\n"
                    "      headers:\n        \"Bad Header\": x\n" S_EVENTS,
                    "t.yaml:7: channels.email.http.headers.Bad Header: bad HTTP header name");
    s_expect_error ("channels:\n  email:\n    driver: http\n    http:\n      url: \"https://x\"\n"
                    "      headers:\n        X-A: x\n        x-a: y\n" S_EVENTS,
                    "t.yaml:8: channels.email.http.headers.x-a: duplicate header");
}

Test (config_errors, bad_endpoint)
{
    s_expect_error (S_CHANNELS S_EVENTS "broker:\n  listen:\n    producers: \"udp://1.2.3.4:5\"\n",
                    "t.yaml:9: broker.listen.producers: must start with tcp://, ipc:// or inproc://, got 'udp://1.2.3.4:5'");
    s_expect_error (S_CHANNELS S_EVENTS "broker:\n  listen:\n    admin: \"tcp://\"\n",
                    "t.yaml:9: broker.listen.admin: must start with tcp://");
}

Test (config_errors, workers_unknown_channel)
{
    s_expect_error (S_CHANNELS S_EVENTS "workers:\n  email: 2\n  sms: 1\n",
                    "t.yaml:9: workers.sms: unknown channel 'sms'");
    s_expect_error (S_CHANNELS S_EVENTS "workers:\n  email: 65\n",
                    "t.yaml:8: workers.email: must be between 0 and 64, got 65");
}

Test (config_errors, bad_channel_name)
{
    s_expect_error ("channels:\n  \"e mail\": { driver: noop }\n" S_EVENTS,
                    "t.yaml:2: channels.e mail: bad channel name 'e mail'");
    s_expect_error ("channels:\n  a234567890123456789012345678901234567890123456789012345678901234: { driver: noop }\n"
                    S_EVENTS,
                    "t.yaml:2: channels.a234567890123456789012345678901234567890123456789012345678901234: bad channel name");
}

Test (config_errors, required_sections)
{
    s_expect_error (S_EVENTS, "t.yaml:1: channels: at least one channel is required");
    s_expect_error (S_CHANNELS, "t.yaml:1: events: at least one event type is required");
    s_expect_error (S_CHANNELS "events: {}\n", "t.yaml:4: events: at least one event type is required");
    s_expect_error ("", "t.yaml:1: channels: at least one channel is required");
}

Test (config_errors, yaml_features_refused)
{
    s_expect_error ("channels:\n  email: &e { driver: noop }\n  inventory: *e\n" S_EVENTS,
                    "t.yaml:3: channels.inventory: YAML aliases (*name) are not supported");
    s_expect_error (S_CHANNELS S_EVENTS "---\nbroker: {}\n",
                    "t.yaml:7: (top level): only one YAML document is allowed");
    s_expect_error ("channels:\n  ? [a, b]\n  : x\n" S_EVENTS,
                    "t.yaml:2: channels: mapping keys must be plain strings");
}

Test (config_errors, string_limits)
{
    char text[4096];
    char longdir[1200];
    memset (longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    snprintf (text, sizeof text, "channels:\n  email: { driver: file, dir: %s }\n" S_EVENTS, longdir);
    s_expect_error (text, "t.yaml:2: channels.email.dir: too long (at most 1023 characters)");
    s_expect_error ("channels:\n  email:\n    driver: file\n    dir: o\n"
                    "    smtp: { subject: \"Hi\\nBcc: everyone@example.com\" }\n" S_EVENTS,
                    "t.yaml:5: channels.email.smtp.subject: must not contain control characters");
    s_expect_error (S_CHANNELS "events:\n  order.confirmed:\n    required: [order_id, customer..email]\n"
                    "    fanout: [email]\n",
                    "t.yaml:6: events.order.confirmed.required: must list dotted paths");
    s_expect_error ("channels:\n  email: { driver: file, dir: o, smtp: { password_env: \"1BAD\" } }\n" S_EVENTS,
                    "t.yaml:2: channels.email.smtp.password_env: must be an environment variable name");
}

Test (config_errors, too_deep)
{
    char text[128];
    snprintf (text, sizeof text, "broker: %.40s%.40s\n",
              "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
              "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    s_expect_error (text, "t.yaml:1: broker: nested too deeply");
}

/* ---- durations and sizes ------------------------------------------------ */

Test (config_parse, durations)
{
    int64_t ms = -1;
    cr_assert_eq (herald_parse_duration ("250ms", &ms), 0);
    cr_assert_eq (ms, 250);
    cr_assert_eq (herald_parse_duration ("2s", &ms), 0);
    cr_assert_eq (ms, 2000);
    cr_assert_eq (herald_parse_duration ("10m", &ms), 0);
    cr_assert_eq (ms, 600000);
    cr_assert_eq (herald_parse_duration ("1h", &ms), 0);
    cr_assert_eq (ms, 3600000);
    cr_assert_eq (herald_parse_duration ("7d", &ms), 0);
    cr_assert_eq (ms, INT64_C (604800000));
    cr_assert_eq (herald_parse_duration ("1500", &ms), 0);
    cr_assert_eq (ms, 1500);
    cr_assert_eq (herald_parse_duration ("0", &ms), 0);
    cr_assert_eq (ms, 0);
    const char *bad[] = {
        "", "-1s", "+1s", " 1s", "1s ", "1.5s", "s", "10x", "10 s", "1ss", "1S", "ms",
        "9223372036854775808", "9223372036854775807s", "106751991167301d", "0x10", NULL
    };
    for (int i = 0; bad[i]; i++) {
        ms = 42;
        cr_assert_eq (herald_parse_duration (bad[i], &ms), -1, "accepted '%s'", bad[i]);
        cr_assert_eq (ms, 42, "'%s' wrote the output", bad[i]);
    }
    cr_assert_eq (herald_parse_duration ("9223372036854775807", &ms), 0);
    cr_assert_eq (ms, INT64_MAX);
    cr_assert_eq (herald_parse_duration (NULL, &ms), -1);
}

Test (config_parse, sizes)
{
    size_t bytes = 0;
    cr_assert_eq (herald_parse_size ("512", &bytes), 0);
    cr_assert_eq (bytes, 512);
    cr_assert_eq (herald_parse_size ("64KiB", &bytes), 0);
    cr_assert_eq (bytes, 65536);
    cr_assert_eq (herald_parse_size ("1MiB", &bytes), 0);
    cr_assert_eq (bytes, 1048576);
    cr_assert_eq (herald_parse_size ("1GiB", &bytes), 0);
    cr_assert_eq (bytes, 1073741824);
    cr_assert_eq (herald_parse_size ("0", &bytes), 0);
    cr_assert_eq (bytes, 0);
    const char *bad[] = {
        "", "-1", "1KB", "1kib", "1 KiB", "1.5MiB", "KiB", "1TiB", "1K", "1MB",
        "99999999999999999999", "18014398509481984GiB", NULL
    };
    for (int i = 0; bad[i]; i++) {
        bytes = 42;
        cr_assert_eq (herald_parse_size (bad[i], &bytes), -1, "accepted '%s'", bad[i]);
        cr_assert_eq (bytes, 42);
    }
}

Test (config_parse, driver_names)
{
    cr_assert_str_eq (herald_driver_name (HERALD_DRIVER_FILE), "file");
    cr_assert_str_eq (herald_driver_name (HERALD_DRIVER_NOOP), "noop");
    cr_assert_str_eq (herald_driver_name (HERALD_DRIVER_SMTP), "smtp");
    cr_assert_str_eq (herald_driver_name (HERALD_DRIVER_HTTP), "http");
    cr_assert_str_eq (herald_driver_name ((herald_driver_kind_t) 99), "unknown");
}

/* ---- explanation -------------------------------------------------------- */

Test (config_explain, mentions_everything)
{
    int rc = herald_config_load (&s_cfg, HERALD_SOURCE_DIR "/etc/herald.production.yaml",
                                 s_err, sizeof s_err);
    cr_assert_eq (rc, 0, "%s", s_err);
    char *text = herald_config_explain (&s_cfg);
    cr_assert_not_null (text);
    const char *expected[] = {
        "tcp://127.0.0.1:5570", "var/herald.db", "order.confirmed", "email, inventory, courier",
        "smtp://smtp.example.com:587", "https://inventory.example.com/v1/reservations",
        "https://api.courier.example.com/v2/bookings", "INVENTORY_TOKEN", "backoff 1s..30m",
        "rate 10/s", NULL
    };
    for (int i = 0; expected[i]; i++)
        cr_assert (strstr (text, expected[i]), "explanation lacks '%s':\n%s", expected[i], text);
    for (int i = 0; i < s_cfg.channel_count; i++)
        cr_assert (strstr (text, s_cfg.channels[i].name));
    free (text);

    rc = herald_config_load (&s_cfg, HERALD_SOURCE_DIR "/etc/herald.yaml", s_err, sizeof s_err);
    cr_assert_eq (rc, 0, "%s", s_err);
    text = herald_config_explain (&s_cfg);
    cr_assert_not_null (text);
    const char *sample[] = {
        "email", "inventory", "courier", "var/outbox/email", "var/outbox/courier",
        "up to 8 attempts, backoff 500ms..10m", "2 processes", NULL
    };
    for (int i = 0; sample[i]; i++)
        cr_assert (strstr (text, sample[i]), "explanation lacks '%s':\n%s", sample[i], text);
    free (text);
}

Test (config_errors, nul_bytes_and_tls_mismatch)
{
    static const char text[] = "channels:\n  email: { driver: file, dir: \"out\\0/etc\" }\n" S_EVENTS;
    s_expect_error (text, "t.yaml:2: channels.email.dir: must not contain NUL bytes");
    s_expect_error ("channels:\n"
                    "  email:\n"
                    "    driver: smtp\n"
                    "    smtp:\n"
                    "      url: smtps://mail:465\n"
                    "      tls: starttls\n"
                    "      from: a@b\n      to: x\n      subject: s\n"
                    "      text_template: t\n      html_template: h\n" S_EVENTS,
                    "t.yaml:6: channels.email.smtp.tls: an smtps:// url means tls: implicit, got starttls");
    /* a NULL error buffer is allowed */
    cr_assert_eq (herald_config_parse (&s_cfg, "x: [", 4, NULL, NULL, 0), -1);
    cr_assert_eq (herald_config_load (&s_cfg, "/nonexistent", NULL, 0), -1);
}

/*  events.*.required: a path, or `path: type` with types joined by |. */
Test (config, required_field_types)
{
    int rc = s_parse (S_CHANNELS
                      "events:\n"
                      "  order.confirmed:\n"
                      "    key: order_id\n"
                      "    required: [order_id: string|number, customer.email: email, items: array, total]\n"
                      "    fanout: [email]\n");
    cr_assert_eq (rc, 0, "%s", s_err);
    const herald_event_type_t *type = &s_cfg.events[0];
    cr_assert_eq (type->required_count, 4);
    cr_assert_str_eq (type->required[0], "order_id");
    cr_assert_eq (type->required_types[0], HERALD_FIELD_STRING | HERALD_FIELD_NUMBER);
    cr_assert_str_eq (type->required[1], "customer.email");
    cr_assert_eq (type->required_types[1], HERALD_FIELD_EMAIL);
    cr_assert_eq (type->required_types[2], HERALD_FIELD_ARRAY);
    cr_assert_str_eq (type->required[3], "total");
    cr_assert_eq (type->required_types[3], 0);
}

Test (config_errors, required_field_unknown_type)
{
    s_expect_error (S_CHANNELS
                    "events:\n"
                    "  order.confirmed:\n"
                    "    required:\n"
                    "      - order_id: text\n"
                    "    fanout: [email]\n",
                    "t.yaml:7: events.order.confirmed.required: order_id: unknown field type 'text'");
}

/*  check-config prints the explanation: a URL's credentials (user:password@,
    a webhook's token in its path) are shown redacted, as in the logs. */
Test (config_explain, urls_are_redacted)
{
    static const char text[] =
        "channels:\n"
        "  email: { driver: smtp, smtp: { url: \"smtp://mailer:s3cretpw@smtp.example.com:587\","
        " tls: none, from: \"a@example.com\", to: \"{{data.customer.email}}\", subject: \"x\","
        " text_template: t.txt, html_template: t.html } }\n"
        "  inventory: { driver: http, http: { url: \"https://hooks.slack.com/services/T0000/B0000/XYZs3cretTOKEN\" } }\n"
        S_EVENTS;
    cr_assert_eq (s_parse (text), 0, "%s", s_err);
    char *out = herald_config_explain (&s_cfg);
    cr_assert_not_null (out);
    cr_assert_null (strstr (out, "s3cretpw"), "the SMTP password is shown:\n%s", out);
    cr_assert_null (strstr (out, "XYZs3cretTOKEN"), "the webhook token is shown:\n%s", out);
    cr_assert (strstr (out, "smtp.example.com"), "the host is still shown:\n%s", out);
    cr_assert (strstr (out, "hooks.slack.com"), "the host is still shown:\n%s", out);
    free (out);
}
