/*  fuzz_config: libFuzzer target for the configuration loader
    (common/herald_config.c, config_yaml.c, config_check.c,
    config_explain.c). The input is the text of a herald.yaml.
    Properties: herald_config_parse never crashes, leaks or writes past its
    error buffer (an exact-size one of 1 to 64 bytes is tried as well); a
    refusal is one line "NAME:LINE: ..." naming the file; an accepted
    configuration keeps every invariant the processes rely on (counts and
    indexes in range, names valid, strings terminated, ranges ordered), can
    be explained, and herald_config_check reports each problem as one line
    naming the file. herald_config_check only looks at the file system
    (stat, access, a read-only open of regular files): it is run too.
    A reload (herald_config_merge) of an accepted configuration over a
    fixed running one, and the other way round, keeps the running channels
    in their order and its restart keys, keeps every index in range, and
    maps every old event type to a new one or to -1; one over itself
    changes nothing. */
#include "fuzz_util.h"
#include "herald_config.h"
#include "herald_config_reload.h"

#define S_NAME "fuzz-herald.yaml"       /* no such file: check-config finds no lines */

static herald_config_t s_config;

static bool
s_name_ok (const char *name, size_t size, const char *extra)
{
    size_t len = strnlen (name, size);
    if (len == 0 || len >= size)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || strchr (extra, c)))
            return false;
    }
    return true;
}

static bool
s_printable (const char *text, size_t size)
{
    if (!fuzz_terminated (text, size))
        return false;
    for (const char *p = text; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static void
s_check_channel (const herald_channel_t *ch)
{
    fuzz_check (s_name_ok (ch->name, sizeof ch->name, "_-"), "bad channel name accepted");
    fuzz_check ((int) ch->driver >= HERALD_DRIVER_FILE && ch->driver <= HERALD_DRIVER_HTTP,
                "%s: driver %d", ch->name, (int) ch->driver);
    fuzz_check (ch->capacity >= 1 && ch->max_workers >= 1 && ch->max_attempts >= 1,
                "%s: capacity, max_workers or max_attempts below 1", ch->name);
    fuzz_check (ch->backoff_min_ms >= 1 && ch->backoff_min_ms <= ch->backoff_max_ms,
                "%s: backoff %lld..%lld", ch->name, (long long) ch->backoff_min_ms,
                (long long) ch->backoff_max_ms);
    fuzz_check (ch->lease_ms >= 1000, "%s: lease %lld", ch->name, (long long) ch->lease_ms);
    fuzz_check (ch->rate_per_sec >= 0 && ch->rate_per_sec <= 1e6 && ch->max_in_flight >= 0,
                "%s: rate or max_in_flight out of range", ch->name);
    fuzz_check (s_printable (ch->dir, sizeof ch->dir)
                && s_printable (ch->smtp.url, sizeof ch->smtp.url)
                && s_printable (ch->smtp.from, sizeof ch->smtp.from)
                && s_printable (ch->smtp.to, sizeof ch->smtp.to)
                && s_printable (ch->smtp.subject, sizeof ch->smtp.subject)
                && s_printable (ch->smtp.text_template, sizeof ch->smtp.text_template)
                && s_printable (ch->smtp.html_template, sizeof ch->smtp.html_template)
                && s_printable (ch->smtp.username, sizeof ch->smtp.username)
                && s_printable (ch->smtp.password_env, sizeof ch->smtp.password_env)
                && s_printable (ch->http.url, sizeof ch->http.url)
                && s_printable (ch->http.method, sizeof ch->http.method)
                && s_printable (ch->http.body_template, sizeof ch->http.body_template),
                "%s: a string setting holds a control character or is not terminated", ch->name);
    fuzz_check (ch->http.header_count >= 0 && ch->http.header_count <= HERALD_MAX_HEADERS,
                "%s: %d headers", ch->name, ch->http.header_count);
    for (int i = 0; i < ch->http.header_count; i++) {
        const herald_header_t *h = &ch->http.headers[i];
        fuzz_check (s_name_ok (h->name, sizeof h->name, "!#$%&'*+-.^_`|~"), "%s: bad header name",
                    ch->name);
        fuzz_check (s_printable (h->value, sizeof h->value)
                    && s_printable (h->value_env, sizeof h->value_env),
                    "%s: header %s: value with a control character", ch->name, h->name);
    }
}

static void
s_check_event (const herald_config_t *cfg, const herald_event_type_t *ev)
{
    fuzz_check (s_name_ok (ev->name, sizeof ev->name, "._-:/"), "bad event name accepted");
    fuzz_check (s_printable (ev->key, sizeof ev->key), "%s: key not terminated", ev->name);
    fuzz_check (ev->required_count >= 0 && ev->required_count <= HERALD_MAX_REQUIRED,
                "%s: %d required", ev->name, ev->required_count);
    for (int i = 0; i < ev->required_count; i++) {
        const char *path = ev->required[i];
        fuzz_check (s_printable (path, sizeof ev->required[i]) && path[0] && path[0] != '.'
                    && path[strlen (path) - 1] != '.' && !strstr (path, ".."),
                    "%s: bad required path accepted", ev->name);
        fuzz_check (ev->required_types[i] < (1u << 7), "%s: required type flags %x", ev->name,
                    ev->required_types[i]);
    }
    fuzz_check (ev->fanout_count >= 1 && ev->fanout_count <= cfg->channel_count,
                "%s: fan-out of %d", ev->name, ev->fanout_count);
    for (int i = 0; i < ev->fanout_count; i++) {
        fuzz_check (ev->fanout[i] >= 0 && ev->fanout[i] < cfg->channel_count,
                    "%s: fan-out index %d", ev->name, ev->fanout[i]);
        for (int j = 0; j < i; j++)
            fuzz_check (ev->fanout[i] != ev->fanout[j], "%s: a channel twice in the fan-out", ev->name);
    }
}

static void
s_check_accepted (const herald_config_t *cfg)
{
    fuzz_check (cfg->channel_count >= 1 && cfg->channel_count <= HERALD_MAX_CHANNELS,
                "%d channels", cfg->channel_count);
    fuzz_check (cfg->event_count >= 1 && cfg->event_count <= HERALD_MAX_EVENT_TYPES,
                "%d event types", cfg->event_count);
    for (int i = 0; i < cfg->channel_count; i++) {
        s_check_channel (&cfg->channels[i]);
        fuzz_check (herald_config_channel_index (cfg, cfg->channels[i].name) == i,
                    "channel %s named twice", cfg->channels[i].name);
        fuzz_check (cfg->workers[i] >= 0 && cfg->workers[i] <= 64, "workers %d", cfg->workers[i]);
    }
    for (int i = 0; i < cfg->event_count; i++) {
        s_check_event (cfg, &cfg->events[i]);
        fuzz_check (herald_config_event_index (cfg, cfg->events[i].name) == i,
                    "event type %s named twice", cfg->events[i].name);
    }
    const herald_broker_config_t *b = &cfg->broker;
    fuzz_check (s_printable (b->producers, sizeof b->producers)
                && s_printable (b->workers, sizeof b->workers)
                && s_printable (b->admin, sizeof b->admin)
                && s_printable (b->store, sizeof b->store) && b->store[0],
                "broker: an endpoint or the store is not a terminated printable string");
    fuzz_check (b->max_event_bytes >= 1024 && b->batch_max >= 1 && b->heartbeat_ms >= 10
                && b->heartbeat_liveness >= 1 && b->queue_window >= 100 && b->max_unread_replies >= 1
                && b->dedup_retention_ms >= 60000 && b->hwm >= 0 && b->max_pending_events >= 0,
                "broker: a limit out of range");
    fuzz_check (strcmp (b->producers, b->workers) != 0 && strcmp (b->producers, b->admin) != 0
                && strcmp (b->workers, b->admin) != 0, "two endpoints on one address accepted");
}

static const char s_running_text[] =
    "broker: { listen: { producers: \"ipc://@p\", workers: \"ipc://@w\", admin: \"ipc://@a\" } }\n"
    "channels:\n"
    "  email: { driver: file, dir: out/email, rate: 5/s }\n"
    "  inventory: { driver: file, dir: out/inventory }\n"
    "events:\n"
    "  order.confirmed: { key: order_id, fanout: [email, inventory] }\n"
    "  order.paid: { fanout: [inventory] }\n";

/*  merged = running reloaded with fresh: the invariants a process relies
    on after a reload. */
static void
s_check_merge (const herald_config_t *running, const herald_config_t *fresh)
{
    static herald_config_t merged;
    static herald_config_diff_t diff;
    herald_config_merge (running, fresh, &merged, &diff);
    fuzz_check (merged.channel_count == running->channel_count, "a reload changed the number of channels");
    for (int i = 0; i < merged.channel_count; i++) {
        fuzz_check (strcmp (merged.channels[i].name, running->channels[i].name) == 0,
                    "a reload moved channel %s", running->channels[i].name);
        s_check_channel (&merged.channels[i]);
    }
    fuzz_check (merged.event_count >= 0 && merged.event_count <= HERALD_MAX_EVENT_TYPES, "%d event types",
                merged.event_count);
    for (int i = 0; i < merged.event_count; i++)
        s_check_event (&merged, &merged.events[i]);
    for (int i = 0; i < running->event_count; i++)
        fuzz_check (diff.event_map[i] >= -1 && diff.event_map[i] < merged.event_count
                    && (diff.event_map[i] < 0
                        || strcmp (merged.events[diff.event_map[i]].name, running->events[i].name) == 0),
                    "event map of %s", running->events[i].name);
    fuzz_check (strcmp (merged.broker.producers, running->broker.producers) == 0
                && strcmp (merged.broker.store, running->broker.store) == 0
                && merged.broker.hwm == running->broker.hwm
                && strcmp (merged.security.broker_key, running->security.broker_key) == 0,
                "a reload changed a restart key");
    fuzz_check (diff.count >= 0 && diff.count <= HERALD_MAX_CHANGES && diff.unlisted >= 0 && diff.restart >= 0
                && diff.restart <= diff.count + diff.unlisted, "change counts");
    for (int i = 0; i < diff.count; i++)
        fuzz_check (fuzz_terminated (diff.changes[i].key, sizeof diff.changes[i].key)
                    && fuzz_terminated (diff.changes[i].was, sizeof diff.changes[i].was)
                    && fuzz_terminated (diff.changes[i].now, sizeof diff.changes[i].now), "change text");
    char text[512];
    herald_config_diff_text (&diff, false, text, sizeof text);
    herald_config_diff_text (&diff, true, text, sizeof text);
}

static void
s_check_reloads (const herald_config_t *fresh)
{
    static herald_config_t running, merged;
    static herald_config_diff_t diff;
    static bool loaded;
    if (!loaded) {
        char err[HERALD_ERR_MAX];
        fuzz_check (herald_config_parse (&running, s_running_text, sizeof s_running_text - 1, "running", err,
                                         sizeof err) == 0, "the running configuration: %s", err);
        loaded = true;
    }
    s_check_merge (&running, fresh);
    s_check_merge (fresh, &running);
    herald_config_merge (fresh, fresh, &merged, &diff);
    fuzz_check (diff.count == 0 && diff.unlisted == 0 && memcmp (&merged, fresh, sizeof merged) == 0,
                "a reload of the same file changed something (%d changes)", diff.count);
}

/*  Each line of a check-config report: "NAME: key: what" (no lines are
    known: the file is not there to be read again). */
static void
s_check_report (const char *report, int problems)
{
    int lines = 0;
    for (const char *line = report; line && *line; lines++) {
        const char *eol = strchr (line, '\n');
        fuzz_check (eol != NULL, "report does not end in a newline");
        fuzz_check (strncmp (line, S_NAME ": ", strlen (S_NAME) + 2) == 0,
                    "report line does not name the file: %.*s", (int) (eol - line), line);
        line = eol + 1;
    }
    fuzz_check (lines == problems, "%d problems, %d report lines", problems, lines);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *text = fuzz_copy (data, size);
    char err[HERALD_ERR_MAX];
    err[0] = 'x';
    int rc = herald_config_parse (&s_config, text, size, S_NAME, err, sizeof err);
    fuzz_check (rc == 0 || rc == -1, "herald_config_parse returned %d", rc);
    fuzz_check (fuzz_terminated (err, sizeof err), "error not terminated");
    if (rc != 0) {
        fuzz_check (strncmp (err, S_NAME ":", strlen (S_NAME) + 1) == 0,
                    "error does not start with the file name: %s", err);
        fuzz_check (!strchr (err, '\n'), "error of more than one line: %s", err);
    }
    else {
        s_check_accepted (&s_config);
        char *explained = herald_config_explain (&s_config);
        fuzz_check (explained != NULL, "herald_config_explain failed");
        free (explained);
        char *report = NULL;
        int problems = herald_config_check (&s_config, &report);
        fuzz_check (problems >= 0, "herald_config_check failed");
        s_check_report (report, problems);
        free (report);
        s_check_reloads (&s_config);
    }
    /*  A short error buffer (for one input in four: parsing allocates a
        whole configuration, half a megabyte, which is what costs here): the
        message is cut, never overflows. */
    if (size && data[size - 1] % 4 == 0) {
        size_t errlen = 1 + data[0] % 64;
        char *small = malloc (errlen);
        fuzz_check (small != NULL, "out of memory");
        static herald_config_t other;
        int rc_small = herald_config_parse (&other, text, size, S_NAME, small, errlen);
        fuzz_check (rc_small == rc, "the error buffer's size changed the answer");
        fuzz_check (fuzz_terminated (small, errlen), "short error not terminated");
        free (small);
    }
    free (text);
    return 0;
}
