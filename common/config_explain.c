/*  config_explain: herald_config_explain, the plain-text description of a
    loaded configuration that `herald check-config` prints: every value in
    effect, defaults included, in the words an operator would use. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "herald_redact.h"
#include "herald_store_url.h"
#include "herald_text.h"

/*  Appends the description of channel index: driver, retry, limits, workers. */
static void
s_explain_channel (herald_text_t *out, const herald_config_t *cfg, int index)
{
    const herald_channel_t *ch = &cfg->channels[index];
    char a[32], b[32];
    /*  URLs may hold credentials (user:password@, a webhook's token in its
        path): shown redacted, as in logs. */
    char smtp_url[sizeof ch->smtp.url], http_url[sizeof ch->http.url];
    herald_redact (ch->smtp.url, smtp_url, sizeof smtp_url);
    herald_redact (ch->http.url, http_url, sizeof http_url);
    herald_text_printf (out, "  %s\n    driver     %s", ch->name, herald_driver_name (ch->driver));
    if (ch->driver == HERALD_DRIVER_FILE)
        herald_text_printf (out, ", writes to %s/\n", ch->dir);
    else
    if (ch->driver == HERALD_DRIVER_SMTP)
        herald_text_printf (out, ", relay %s (tls %s%s%s, verify peer %s)\n", smtp_url,
                    config_tls_name (ch->smtp.tls), ch->smtp.username[0]? ", auth as ": "",
                    ch->smtp.username, ch->smtp.verify_peer? "yes": "NO");
    else
    if (ch->driver == HERALD_DRIVER_HTTP)
        herald_text_printf (out, ", %s %s (verify peer %s, redirects %s)\n", ch->http.method, http_url,
                    ch->http.verify_peer? "yes": "NO", ch->http.follow_redirects? "followed": "refused");
    else
        herald_text_printf (out, ", accepts and drops every task\n");
    if (ch->driver == HERALD_DRIVER_SMTP || (ch->driver == HERALD_DRIVER_FILE && ch->smtp.to[0])) {
        herald_text_printf (out, "    email      from %s, to %s, subject \"%s\"\n",
                    ch->smtp.from[0]? ch->smtp.from: "(unset)", ch->smtp.to, ch->smtp.subject);
        if (ch->smtp.text_template[0] || ch->smtp.html_template[0])
            herald_text_printf (out, "    templates  %s, %s\n", ch->smtp.text_template, ch->smtp.html_template);
        if (ch->driver == HERALD_DRIVER_SMTP)
            herald_text_printf (out, "    timeout    %s\n", config_format_duration (ch->smtp.timeout_ms, a, sizeof a));
    }
    if (ch->driver == HERALD_DRIVER_HTTP) {
        for (int i = 0; i < ch->http.header_count; i++) {
            const herald_header_t *h = &ch->http.headers[i];
            if (h->value_env[0])
                herald_text_printf (out, "    header     %s: (from $%s)\n", h->name, h->value_env);
            else
                herald_text_printf (out, "    header     %s: %s\n", h->name, h->value);
        }
        herald_text_printf (out, "    body       %s\n",
                    ch->http.body_template[0]? ch->http.body_template: "(the event's data as is)");
        herald_text_printf (out, "    timeouts   connect %s, total %s\n",
                    config_format_duration (ch->http.connect_timeout_ms, a, sizeof a),
                    config_format_duration (ch->http.timeout_ms, b, sizeof b));
    }
    herald_text_printf (out, "    retry      up to %d attempts, backoff %s", ch->max_attempts,
                config_format_duration (ch->backoff_min_ms, a, sizeof a));
    herald_text_printf (out, "..%s (exponential, full jitter), then dead\n",
                config_format_duration (ch->backoff_max_ms, b, sizeof b));
    herald_text_printf (out, "    lease      %s\n", config_format_duration (ch->lease_ms, a, sizeof a));
    herald_text_printf (out, "    limits     capacity %d per worker", ch->capacity);
    if (ch->prefetch > 0)
        herald_text_printf (out, " (credit %u: %d more may wait in it)", herald_channel_credit (ch), ch->prefetch);
    herald_text_printf (out, ", ");
    if (ch->max_in_flight)
        herald_text_printf (out, "at most %d in flight, ", ch->max_in_flight);
    else
        herald_text_printf (out, "in flight bounded by worker credit, ");
    if (ch->rate_per_sec > 0)
        herald_text_printf (out, "rate %g/s (burst %d)\n", ch->rate_per_sec, ch->burst);
    else
        herald_text_printf (out, "rate unlimited\n");
    herald_text_printf (out, "    workers    %d process%s\n", cfg->workers[index], cfg->workers[index] == 1? "": "es");
}

/*  Appends the keys holding role (and, for workers, channel c) to out. */
static void
s_explain_keys (herald_text_t *out, const herald_config_t *cfg, unsigned role, int channel)
{
    int shown = 0;
    for (int i = 0; i < cfg->security.key_count; i++) {
        const herald_client_key_t *key = &cfg->security.keys[i];
        if (!(key->roles & role) || (channel >= 0 && !(key->channels & (UINT32_C (1) << channel))))
            continue;
        herald_text_printf (out, "%s%s", shown++? ", ": "", key->name);
    }
    herald_text_printf (out, "%s\n", shown? "": "(nobody)");
}

/*  Appends the security section: mode, keys by role, limits. */
static void
s_explain_security (herald_text_t *out, const herald_config_t *cfg)
{
    const herald_security_config_t *sec = &cfg->security;
    char a[32];
    herald_text_printf (out, "security\n");
    if (sec->curve) {
        herald_text_printf (out, "  mode       CURVE on every endpoint, clients checked against the key lists "
                    "(ZAP); broker key %s, clients use %s\n", sec->broker_key, sec->broker_public);
        herald_text_printf (out, "  publish    ");
        s_explain_keys (out, cfg, HERALD_ROLE_PRODUCER, -1);
        for (int c = 0; c < cfg->channel_count; c++) {
            herald_text_printf (out, "  serve      %s: ", cfg->channels[c].name);
            s_explain_keys (out, cfg, HERALD_ROLE_WORKER, c);
        }
        herald_text_printf (out, "  read       (status, track, dead list) ");
        s_explain_keys (out, cfg, HERALD_ROLE_ADMIN_READ | HERALD_ROLE_ADMIN_OPERATE, -1);
        herald_text_printf (out, "  operate    (also dead show, retry, purge) ");
        s_explain_keys (out, cfg, HERALD_ROLE_ADMIN_OPERATE, -1);
    }
    else
    if (sec->plaintext)
        herald_text_printf (out, "  mode       PLAINTEXT (security.plaintext): no CURVE; anyone who can reach an "
                    "endpoint may publish, serve channels and administer\n");
    else
        herald_text_printf (out, "  mode       no security section: loopback and ipc endpoints only, no CURVE\n");
    herald_text_printf (out, "  limits     %d connections per endpoint, handshake within %s\n",
                cfg->broker.max_connections, config_format_duration (cfg->broker.handshake_timeout_ms, a, sizeof a));
}

char *
herald_config_explain (const herald_config_t *self)
{
    if (!self)
        return NULL;
    herald_text_t out = { 0 };
    const herald_broker_config_t *b = &self->broker;
    char a[32], c[32], d[32];
    herald_text_printf (&out, "configuration %s\n", self->path[0]? self->path: "(compiled-in defaults)");
    herald_text_printf (&out, "broker\n");
    herald_text_printf (&out, "  producers  %s\n  workers    %s\n  admin      %s\n",
                b->producers, b->workers, b->admin);
    if (b->http[0]) {
        const herald_security_config_t *sec = &self->security;
        herald_text_printf (&out, "  http       %s://%s (POST /events, GET /metrics, /healthz, /readyz), %s; "
                            "at most %d connections, idle ones closed after %s\n",
                            sec->tls_cert[0]? "https": "http", b->http,
                            sec->tokens_file[0]? "bearer tokens from security.tokens_file"
                                               : "no tokens: every request allowed",
                            b->http_max_connections, config_format_duration (b->http_timeout_ms, a, sizeof a));
    }
    if (herald_store_is_url (b->store))
        herald_text_printf (&out, "  store      %s: PostgreSQL, shared by every broker naming it (the password"
                            " comes from the environment: PGPASSWORD, or a PGPASSFILE / ~/.pgpass entry, never"
                            " this file); a broker silent %s has its tasks taken over\n", b->store,
                            config_format_duration (b->takeover_timeout_ms, a, sizeof a));
    else
        herald_text_printf (&out, "  store      %s\n", b->store);
    herald_text_printf (&out, "  limits     events up to %s, %d per commit, busy above %d undelivered tasks per channel, "
                "%d tasks per channel in memory, hwm %d\n",
                config_format_size (b->max_event_bytes, a, sizeof a), b->batch_max,
                b->max_pending_events, b->queue_window, b->hwm);
    herald_text_printf (&out, "  timing     heartbeat %s (dead after %d missed), duplicates remembered %s, "
                "shutdown within %s\n",
                config_format_duration (b->heartbeat_ms, a, sizeof a), b->heartbeat_liveness,
                config_format_duration (b->dedup_retention_ms, c, sizeof c),
                config_format_duration (b->shutdown_timeout_ms, d, sizeof d));
    herald_text_printf (&out, "events (%d)\n", self->event_count);
    for (int i = 0; i < self->event_count; i++) {
        const herald_event_type_t *ev = &self->events[i];
        herald_text_printf (&out, "  %s\n    key        %s\n    required   ", ev->name,
                    ev->key[0]? ev->key: "(CloudEvents source + id)");
        for (int j = 0; j < ev->required_count; j++)
            herald_text_printf (&out, "%s%s", j? ", ": "", ev->required[j]);
        herald_text_printf (&out, "%s\n    fanout     ", ev->required_count? "": "(nothing)");
        for (int j = 0; j < ev->fanout_count; j++)
            herald_text_printf (&out, "%s%s", j? ", ": "", self->channels[ev->fanout[j]].name);
        herald_text_printf (&out, "\n");
    }
    herald_text_printf (&out, "channels (%d)\n", self->channel_count);
    for (int i = 0; i < self->channel_count; i++)
        s_explain_channel (&out, self, i);
    s_explain_security (&out, self);
    if (out.failed) {
        free (out.data);
        return NULL;
    }
    if (!out.data)
        return strdup ("");
    return out.data;
}
