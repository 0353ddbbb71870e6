/*  test_config_reload: what a reload changes. Every schema row is classed
    live or restart; a live key takes the file's value, a restart key keeps
    the running one and is reported as needing a restart; channels are
    matched by name (their order and indexes stay the running ones), event
    types may come and go (the map of old indexes says where they went),
    key lists follow the file unless the broker key changes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "config_internal.h"
#include "herald_config_reload.h"
#include "herald_keys.h"

static herald_config_t *s_running, *s_fresh, *s_merged;
static herald_config_diff_t *s_diff;

#define S_BASE \
    "broker:\n" \
    "  listen: { producers: \"ipc:///tmp/p.sock\", workers: \"ipc:///tmp/w.sock\", admin: \"ipc:///tmp/a.sock\" }\n" \
    "  store: var/herald.db\n" \
    "  batch_max: 2048\n" \
    "channels:\n" \
    "  email: { driver: file, dir: out/email, retry: { max_attempts: 8 } }\n" \
    "  inventory: { driver: file, dir: out/inventory }\n" \
    "events:\n" \
    "  order.confirmed:\n" \
    "    key: order_id\n" \
    "    fanout: [email, inventory]\n" \
    "  order.paid:\n" \
    "    fanout: [inventory]\n" \
    "workers: { email: 1, inventory: 1 }\n"

static void
s_setup (void)
{
    s_running = calloc (1, sizeof *s_running);
    s_fresh = calloc (1, sizeof *s_fresh);
    s_merged = calloc (1, sizeof *s_merged);
    s_diff = calloc (1, sizeof *s_diff);
    cr_assert (s_running && s_fresh && s_merged && s_diff);
}

static void
s_teardown (void)
{
    free (s_running);
    free (s_fresh);
    free (s_merged);
    free (s_diff);
}

static void
s_load (herald_config_t *config, const char *text)
{
    char err[HERALD_ERR_MAX];
    int rc = herald_config_parse (config, text, strlen (text), "t.yaml", err, sizeof err);
    cr_assert_eq (rc, 0, "%s", err);
}

/*  Loads running from S_BASE and fresh from text, and merges. */
static void
s_reload (const char *text)
{
    s_load (s_running, S_BASE);
    s_load (s_fresh, text);
    herald_config_merge (s_running, s_fresh, s_merged, s_diff);
}

/*  S_BASE with the first `from` replaced by `to`. Caller frees. */
static char *
s_edit (const char *base, const char *from, const char *to)
{
    const char *at = strstr (base, from);
    cr_assert (at, "\"%s\" not in the base text", from);
    size_t len = strlen (base) - strlen (from) + strlen (to) + 1;
    char *out = malloc (len);
    snprintf (out, len, "%.*s%s%s", (int) (at - base), base, to, at + strlen (from));
    return out;
}

static const herald_config_change_t *
s_change (const char *key)
{
    const herald_config_change_t *change = herald_config_diff_find (s_diff, key);
    char text[4096];
    cr_assert (change, "no change for %s; changes: %s / restart: %s", key,
               herald_config_diff_text (s_diff, false, text, sizeof text),
               herald_config_diff_text (s_diff, true, text + 2048, 2048));
    return change;
}

TestSuite (config_reload, .init = s_setup, .fini = s_teardown);

Test (config_reload, every_schema_row_is_classed)
{
    config_key_t key;
    size_t rows = 0;
    for (size_t i = 0; config_schema_key (i, &key) == 0; i++, rows++)
        cr_expect (herald_config_reload_class (key.pattern) >= 0,
                   "schema row %s has no reload class in common/config_reload.c (live or restart?)", key.pattern);
    cr_assert_gt (rows, 60);
    cr_assert_eq (herald_config_reload_class ("broker.listen.producers"), HERALD_RELOAD_RESTART);
    cr_assert_eq (herald_config_reload_class ("channels.*.rate"), HERALD_RELOAD_LIVE);
    cr_assert_eq (herald_config_reload_class ("no.such.key"), -1);
}

Test (config_reload, same_file_changes_nothing)
{
    s_reload (S_BASE);
    cr_assert_eq (s_diff->count, 0);
    cr_assert_eq (s_diff->restart, 0);
    cr_assert (memcmp (s_merged, s_running, sizeof *s_merged) == 0, "the merged config is the running one");
    for (int i = 0; i < s_running->event_count; i++)
        cr_assert_eq (s_diff->event_map[i], i);
    char text[256];
    cr_assert_str_eq (herald_config_diff_text (s_diff, false, text, sizeof text), "-");
}

Test (config_reload, live_keys_take_the_new_value)
{
    char *a = s_edit (S_BASE, "retry: { max_attempts: 8 }", "retry: { max_attempts: 2, backoff: 10ms..20ms }, rate: 5/s");
    char *b = s_edit (a, "batch_max: 2048", "batch_max: 64\n  heartbeat: 250ms\n  max_event_bytes: 64KiB");
    s_reload (b);
    free (a);
    free (b);
    cr_assert_eq (s_diff->restart, 0);
    const herald_config_change_t *change = s_change ("channels.email.retry.max_attempts");
    cr_assert_not (change->restart);
    cr_assert_str_eq (change->was, "8");
    cr_assert_str_eq (change->now, "2");
    cr_assert_str_eq (s_change ("channels.email.rate")->now, "5/s");
    cr_assert_str_eq (s_change ("channels.email.retry.backoff")->now, "10ms..20ms");
    cr_assert_str_eq (s_change ("broker.max_event_bytes")->now, "64KiB");
    s_change ("broker.batch_max");
    s_change ("broker.heartbeat");
    s_change ("channels.email.burst");        /* follows the rate: max(1, rate) */
    cr_assert_eq (s_merged->channels[0].max_attempts, 2);
    cr_assert_eq (s_merged->channels[0].backoff_max_ms, 20);
    cr_assert_eq (s_merged->channels[0].rate_per_sec, 5.0);
    cr_assert_eq (s_merged->channels[0].burst, 5);
    cr_assert_eq (s_merged->broker.batch_max, 64);
    cr_assert_eq (s_merged->broker.heartbeat_ms, 250);
    cr_assert_eq (s_merged->broker.max_event_bytes, 64 * 1024);
    char text[1024];
    herald_config_diff_text (s_diff, false, text, sizeof text);
    cr_assert (strstr (text, "channels.email.retry.max_attempts 8->2"), "%s", text);
}

Test (config_reload, restart_keys_keep_the_running_value)
{
    char *a = s_edit (S_BASE, "producers: \"ipc:///tmp/p.sock\"", "producers: \"ipc:///tmp/p2.sock\"");
    char *b = s_edit (a, "store: var/herald.db", "store: var/other.db\n  hwm: 5\n  queue_window: 1000");
    s_reload (b);
    free (a);
    free (b);
    const herald_config_change_t *change = s_change ("broker.listen.producers");
    cr_assert (change->restart);
    cr_assert_str_eq (change->was, "ipc:///tmp/p.sock");
    cr_assert_str_eq (change->now, "ipc:///tmp/p2.sock");
    cr_assert (s_change ("broker.store")->restart);
    cr_assert (s_change ("broker.hwm")->restart);
    cr_assert_not (s_change ("broker.queue_window")->restart);
    cr_assert_eq (s_diff->restart, 3);
    cr_assert_str_eq (s_merged->broker.producers, "ipc:///tmp/p.sock");
    cr_assert_str_eq (s_merged->broker.store, "var/herald.db");
    cr_assert_eq (s_merged->broker.hwm, 10000);
    cr_assert_eq (s_merged->broker.queue_window, 1000, "the rest still applies");
    char text[1024];
    herald_config_diff_text (s_diff, true, text, sizeof text);
    cr_assert (strstr (text, "broker.listen.producers ipc:///tmp/p.sock->ipc:///tmp/p2.sock"), "%s", text);
    cr_assert_null (strstr (text, "queue_window"), "%s", text);
}

Test (config_reload, channel_set_needs_a_restart)
{
    /*  courier added, inventory renamed stock: neither applies; email's own
        change does. */
    char *a = s_edit (S_BASE, "  inventory: { driver: file, dir: out/inventory }\n",
                      "  stock: { driver: file, dir: out/stock }\n  courier: { driver: file, dir: out/courier }\n");
    char *b = s_edit (a, "fanout: [email, inventory]", "fanout: [email, stock]");
    char *c = s_edit (b, "fanout: [inventory]", "fanout: [email]");
    char *d = s_edit (c, "workers: { email: 1, inventory: 1 }", "workers: { email: 3 }");
    char *e = s_edit (d, "max_attempts: 8", "max_attempts: 3");
    s_reload (e);
    free (a), free (b), free (c), free (d), free (e);
    cr_assert (s_change ("channels.inventory")->restart);
    cr_assert_str_eq (s_change ("channels.inventory")->now, "removed");
    cr_assert (s_change ("channels.stock")->restart);
    cr_assert (s_change ("channels.courier")->restart);
    cr_assert_eq (s_merged->channel_count, 2);
    cr_assert_str_eq (s_merged->channels[0].name, "email");
    cr_assert_str_eq (s_merged->channels[1].name, "inventory");
    cr_assert_eq (s_merged->channels[0].max_attempts, 3);
    cr_assert_eq (s_merged->workers[0], 3, "workers.email applies");
    cr_assert_eq (s_merged->workers[1], 1, "a removed channel keeps its workers until the restart");
    /*  order.confirmed now fans out to stock, which does not run yet: it
        keeps its running definition. order.paid goes to email instead. */
    const herald_config_change_t *change = s_change ("events.order.confirmed.fanout");
    cr_assert (change->restart);
    cr_assert (strstr (change->now, "stock"), "%s", change->now);
    int t = herald_config_event_index (s_merged, "order.confirmed");
    cr_assert_geq (t, 0);
    cr_assert_eq (s_merged->events[t].fanout_count, 2);
    cr_assert_eq (s_merged->events[t].fanout[1], 1, "inventory, as running");
    cr_assert_not (s_change ("events.order.paid.fanout")->restart);
    int p = herald_config_event_index (s_merged, "order.paid");
    cr_assert_eq (s_merged->events[p].fanout_count, 1);
    cr_assert_eq (s_merged->events[p].fanout[0], 0, "email, in running's indexes");
}

Test (config_reload, channels_are_matched_by_name)
{
    /*  The same channels in another order, email's rate changed: nothing
        moves, email (index 0 running, 1 in the file) gets the rate. */
    char *a = s_edit (S_BASE,
                      "  email: { driver: file, dir: out/email, retry: { max_attempts: 8 } }\n"
                      "  inventory: { driver: file, dir: out/inventory }\n",
                      "  inventory: { driver: file, dir: out/inventory }\n"
                      "  email: { driver: file, dir: out/email, retry: { max_attempts: 8 }, rate: 2/s }\n");
    s_reload (a);
    free (a);
    cr_assert_eq (s_diff->restart, 0);
    cr_assert_eq (s_diff->count, 2, "rate and burst only");
    cr_assert_str_eq (s_merged->channels[0].name, "email");
    cr_assert_eq (s_merged->channels[0].rate_per_sec, 2.0);
    cr_assert_eq (s_merged->channels[1].rate_per_sec, 0.0);
    int t = herald_config_event_index (s_merged, "order.confirmed");
    cr_assert_eq (s_merged->events[t].fanout[0], 0);
    cr_assert_eq (s_merged->events[t].fanout[1], 1);
}

Test (config_reload, event_types_come_and_go)
{
    char *a = s_edit (S_BASE, "  order.paid:\n    fanout: [inventory]\n",
                      "  order.shipped:\n    required: [order_id]\n    fanout: [email]\n");
    char *b = s_edit (a, "    key: order_id\n", "    key: order_ref\n    required: [order_ref, items: array]\n");
    s_reload (b);
    free (a);
    free (b);
    cr_assert_eq (s_diff->restart, 0);
    cr_assert_str_eq (s_change ("events.order.shipped")->now, "added");
    cr_assert_str_eq (s_change ("events.order.paid")->now, "removed");
    cr_assert_str_eq (s_change ("events.order.confirmed.key")->now, "order_ref");
    s_change ("events.order.confirmed.required");
    cr_assert_eq (s_merged->event_count, 2);
    cr_assert_eq (s_diff->event_map[0], herald_config_event_index (s_merged, "order.confirmed"));
    cr_assert_eq (s_diff->event_map[1], -1, "order.paid is gone");
    int t = herald_config_event_index (s_merged, "order.confirmed");
    cr_assert_str_eq (s_merged->events[t].key, "order_ref");
    cr_assert_eq (s_merged->events[t].required_count, 2);
}

Test (config_reload, secrets_are_not_shown)
{
    char *a = s_edit (S_BASE, "  inventory: { driver: file, dir: out/inventory }\n",
                      "  inventory:\n    driver: http\n    http:\n"
                      "      url: \"https://api.example.com/stock?token=s3cr3tvalue\"\n"
                      "      headers: { Authorization: \"Bearer abcdef123456\" }\n");
    s_reload (a);
    free (a);
    char text[2048];
    herald_config_diff_text (s_diff, false, text, sizeof text);
    cr_assert (strstr (text, "channels.inventory.http.url"), "%s", text);
    cr_assert (strstr (text, "channels.inventory.http.headers"), "%s", text);
    cr_assert_null (strstr (text, "s3cr3tvalue"), "%s", text);
    cr_assert_null (strstr (text, "abcdef123456"), "%s", text);
    cr_assert_eq (s_merged->channels[1].driver, HERALD_DRIVER_HTTP);
    cr_assert_eq (s_merged->channels[1].http.header_count, 1);
}

/*  Key lists: the security section with keys made in a temp dir; "@"
    stands for it. */
static void
s_with_keys (char *out, size_t size, const char *text, const char *dir)
{
    size_t o = 0;
    for (const char *p = text; *p && o + 80 < size; p++) {
        if (*p == '@')
            o += (size_t) snprintf (out + o, size - o, "%s", dir);
        else
            out[o++] = *p;
    }
    out[o] = '\0';
}

Test (config_reload, key_lists_follow_the_file_unless_the_broker_key_changes)
{
    char dir[64];
    snprintf (dir, sizeof dir, "/tmp/herald-cfgreload-XXXXXX");
    cr_assert_not_null (mkdtemp (dir));
    char err[HERALD_ERR_MAX];
    const char *names[] = { "broker", "broker2", "shop", "shop2", "mailer", "stock" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[128];
        snprintf (path, sizeof path, "%s/%s", dir, names[i]);
        cr_assert_eq (herald_keys_generate (path, NULL, 0, NULL, 0, err, sizeof err), 0, "%s", err);
    }
    static const char *const security =
        "security:\n"
        "  broker_key: @/broker.secret\n"
        "  producers: [@/shop.public]\n"
        "  workers: { email: [@/mailer.public], inventory: [@/stock.public] }\n";
    char text[8192], base[8192];
    snprintf (base, sizeof base, "%s%s", S_BASE, security);
    s_with_keys (text, sizeof text, base, dir);
    s_load (s_running, text);

    /*  The file lists channels in the other order; shop2 is a new producer,
        the stock key now serves email too. */
    char *a = s_edit (base, "producers: [@/shop.public]", "producers: [@/shop.public, @/shop2.public]");
    char *b = s_edit (a, "email: [@/mailer.public]", "email: [@/mailer.public, @/stock.public]");
    char *c = s_edit (b,
                      "  email: { driver: file, dir: out/email, retry: { max_attempts: 8 } }\n"
                      "  inventory: { driver: file, dir: out/inventory }\n",
                      "  inventory: { driver: file, dir: out/inventory }\n"
                      "  email: { driver: file, dir: out/email, retry: { max_attempts: 8 } }\n");
    s_with_keys (text, sizeof text, c, dir);
    s_load (s_fresh, text);
    herald_config_merge (s_running, s_fresh, s_merged, s_diff);
    cr_assert_eq (s_diff->restart, 0);
    cr_assert_str_eq (s_change ("security.producers")->now, "2 keys");
    cr_assert_str_eq (s_change ("security.workers.email")->now, "2 keys");
    cr_assert_null (herald_config_diff_find (s_diff, "security.workers.inventory"));
    cr_assert_eq (s_merged->security.key_count, 4);
    char stock[HERALD_KEY_TEXT], path[128];
    snprintf (path, sizeof path, "%s/stock.public", dir);
    cr_assert_eq (herald_keys_load_public (path, stock, err, sizeof err), 0, "%s", err);
    const herald_client_key_t *key = herald_config_find_key (s_merged, stock);
    cr_assert_not_null (key);
    cr_assert_eq (key->channels, 3u, "email (0) and inventory (1) in the running indexes, got %u", key->channels);

    /*  The same edit with a new broker key: the lists wait for the restart. */
    char *d = s_edit (c, "@/broker.secret", "@/broker2.secret");
    s_with_keys (text, sizeof text, d, dir);
    s_load (s_fresh, text);
    herald_config_merge (s_running, s_fresh, s_merged, s_diff);
    cr_assert (s_change ("security.broker_key")->restart);
    cr_assert (s_change ("security.producers")->restart);
    cr_assert_eq (s_merged->security.key_count, 3);
    cr_assert_str_eq (s_merged->security.broker_key, s_running->security.broker_key);
    free (a), free (b), free (c), free (d);
    snprintf (text, sizeof text, "rm -rf '%s'", dir);
    cr_assert_eq (system (text), 0);
}
