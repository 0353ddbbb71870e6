/*  config_reload: what a reload may change (contract in
    herald_config_reload.h). The comparison walks the schema table
    (config_schema_key), so a key added to the schema is compared without
    code here; s_classes says for each row whether it reloads live, and
    tests/unit/test_config_reload.c fails for a row it does not class.
    Lists (required fields, fan-out, headers, key lists, worker counts) are
    compared by the code below, by name: channels are matched by name, never
    by their place in the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "herald_config_reload.h"
#include "herald_redact.h"

#define S_RESTART   HERALD_RELOAD_RESTART
#define S_LIVE      HERALD_RELOAD_LIVE

/*  Every row of the schema table, classed. Restart: bound at start (the
    endpoints), opened at start (the store and its journal), sized at start
    (socket options libzmq copies into each connection, the ZAP thread's
    and libmicrohttpd's limits), and the set of channels (workers, queues,
    counters and the store's tasks are per channel). The rest is read where
    it is used, and a reload rewrites it between two turns of a loop. */
static const struct {
    const char *pattern;
    herald_reload_t reload;
} s_classes[] = {
    { "broker",                             S_LIVE },
    { "broker.listen",                      S_RESTART },
    { "broker.listen.producers",            S_RESTART },
    { "broker.listen.workers",              S_RESTART },
    { "broker.listen.admin",                S_RESTART },
    { "broker.listen.http",                 S_RESTART },
    { "broker.store",                       S_RESTART },
    { "broker.takeover_timeout",            S_RESTART },    /* the PostgreSQL store reads it at start */
    { "broker.max_event_bytes",             S_LIVE },
    { "broker.batch_max",                   S_LIVE },
    { "broker.dedup_retention",             S_LIVE },
    { "broker.heartbeat",                   S_LIVE },
    { "broker.heartbeat_liveness",          S_LIVE },
    { "broker.shutdown_timeout",            S_LIVE },
    { "broker.queue_window",                S_LIVE },
    { "broker.max_pending_events",          S_LIVE },
    { "broker.hwm",                         S_RESTART },
    { "broker.journal_segment",             S_RESTART },
    { "broker.journal_max",                 S_RESTART },
    { "broker.max_unread_replies",          S_LIVE },
    { "broker.max_connections",             S_RESTART },
    { "broker.handshake_timeout",           S_RESTART },
    { "broker.http_max_connections",        S_RESTART },
    { "broker.http_timeout",                S_RESTART },
    { "channels",                           S_LIVE },
    { "channels.*",                         S_RESTART },    /* adding, removing, renaming a channel */
    { "channels.*.driver",                  S_LIVE },
    { "channels.*.capacity",                S_LIVE },
    { "channels.*.prefetch",                S_LIVE },
    { "channels.*.max_workers",             S_LIVE },
    { "channels.*.concurrency",             S_LIVE },
    { "channels.*.retry",                   S_LIVE },
    { "channels.*.retry.max_attempts",      S_LIVE },
    { "channels.*.retry.max_throttled",     S_LIVE },
    { "channels.*.retry.backoff",           S_LIVE },
    { "channels.*.lease",                   S_LIVE },
    { "channels.*.max_in_flight",           S_LIVE },
    { "channels.*.rate",                    S_LIVE },
    { "channels.*.burst",                   S_LIVE },
    { "channels.*.dir",                     S_LIVE },
    { "channels.*.smtp",                    S_LIVE },
    { "channels.*.smtp.url",                S_LIVE },
    { "channels.*.smtp.tls",                S_LIVE },
    { "channels.*.smtp.from",               S_LIVE },
    { "channels.*.smtp.to",                 S_LIVE },
    { "channels.*.smtp.subject",            S_LIVE },
    { "channels.*.smtp.text_template",      S_LIVE },
    { "channels.*.smtp.html_template",      S_LIVE },
    { "channels.*.smtp.username",           S_LIVE },
    { "channels.*.smtp.password_env",       S_LIVE },
    { "channels.*.smtp.ca_file",            S_LIVE },
    { "channels.*.smtp.verify_peer",        S_LIVE },
    { "channels.*.smtp.timeout",            S_LIVE },
    { "channels.*.http",                    S_LIVE },
    { "channels.*.http.method",             S_LIVE },
    { "channels.*.http.url",                S_LIVE },
    { "channels.*.http.headers",            S_LIVE },
    { "channels.*.http.headers.*",          S_LIVE },
    { "channels.*.http.body_template",      S_LIVE },
    { "channels.*.http.connect_timeout",    S_LIVE },
    { "channels.*.http.timeout",            S_LIVE },
    { "channels.*.http.follow_redirects",   S_LIVE },
    { "channels.*.http.ca_file",            S_LIVE },
    { "channels.*.http.verify_peer",        S_LIVE },
    { "events",                             S_LIVE },
    { "events.*",                           S_LIVE },       /* adding and removing event types */
    { "events.*.key",                       S_LIVE },
    { "events.*.required",                  S_LIVE },
    { "events.*.fanout",                    S_LIVE },
    { "workers",                            S_LIVE },
    { "workers.*",                          S_LIVE },
    { "security",                           S_LIVE },
    { "security.broker_key",                S_RESTART },
    { "security.plaintext",                 S_RESTART },
    { "security.producers",                 S_LIVE },
    { "security.workers",                   S_LIVE },
    { "security.workers.*",                 S_LIVE },
    { "security.admin_read",                S_LIVE },
    { "security.admin_operate",             S_LIVE },
    { "security.tokens_file",               S_RESTART },    /* its content is re-read on change, no SIGHUP */
    { "security.tls_cert",                  S_RESTART },
    { "security.tls_key",                   S_RESTART },
};

int
herald_config_reload_class (const char *pattern)
{
    for (size_t i = 0; pattern && i < sizeof s_classes / sizeof s_classes[0]; i++)
        if (strcmp (s_classes[i].pattern, pattern) == 0)
            return (int) s_classes[i].reload;
    return -1;
}

/*  An unknown pattern (a schema row added without a class) is taken as
    restart: the running value stays, which is always safe. */
static bool
s_needs_restart (const char *pattern)
{
    return herald_config_reload_class (pattern) != HERALD_RELOAD_LIVE;
}

/* ------------------------------------------------------------------------ */
/*  The list of changes                                                      */

static void
s_add (herald_config_diff_t *diff, bool restart, const char *key, const char *was, const char *now)
{
    if (restart)
        diff->restart++;
    if (diff->count >= HERALD_MAX_CHANGES) {
        diff->unlisted++;
        return;
    }
    herald_config_change_t *change = &diff->changes[diff->count++];
    snprintf (change->key, sizeof change->key, "%s", key);
    snprintf (change->was, sizeof change->was, "%s", was? was: "");
    snprintf (change->now, sizeof change->now, "%s", now? now: "");
    change->restart = restart;
}

/*  pattern with its first "*" replaced by name: "channels.email.rate". */
static const char *
s_key_path (const char *pattern, const char *name, char *buf, size_t size)
{
    const char *star = strchr (pattern, '*');
    if (!star || !name)
        snprintf (buf, size, "%s", pattern);
    else
        snprintf (buf, size, "%.*s%s%s", (int) (star - pattern), pattern, name, star + 1);
    return buf;
}

/* ------------------------------------------------------------------------ */
/*  Scalar fields, by the schema                                             */

static bool
s_same (const config_key_t *key, const void *a, const void *b)
{
    const char *x = (const char *) a + key->offset, *y = (const char *) b + key->offset;
    switch (key->value) {
        case CONFIG_VALUE_STRING:
            return strncmp (x, y, key->size) == 0;
        case CONFIG_VALUE_RATE: {
            double p, q;
            memcpy (&p, x, sizeof p);
            memcpy (&q, y, sizeof q);
            return p == q;
        }
        case CONFIG_VALUE_BACKOFF:
            return memcmp (x, y, key->size) == 0
                && memcmp ((const char *) a + key->offset2, (const char *) b + key->offset2, sizeof (int64_t)) == 0;
        default:
            return memcmp (x, y, key->size) == 0;
    }
}

static void
s_copy (const config_key_t *key, void *to, const void *from)
{
    memcpy ((char *) to + key->offset, (const char *) from + key->offset, key->size);
    if (key->value == CONFIG_VALUE_BACKOFF)
        memcpy ((char *) to + key->offset2, (const char *) from + key->offset2, sizeof (int64_t));
}

/*  The field as text for a log line; URLs are redacted (one may hold a
    password or a token), other strings (paths, endpoints, names) are not. */
static const char *
s_format (const config_key_t *key, const void *base, char *buf, size_t size)
{
    const char *field = (const char *) base + key->offset;
    int i;
    int64_t ms, ms2;
    size_t bytes;
    double rate;
    bool flag;
    char a[32], b[32];
    switch (key->value) {
        case CONFIG_VALUE_STRING: {
            size_t len = strlen (key->pattern);
            if (len >= 4 && strcmp (key->pattern + len - 4, ".url") == 0)
                herald_redact (field, buf, size);
            else
                snprintf (buf, size, "%.*s", (int) (size > 1? size - 1: 0), field);
            if (!buf[0])
                snprintf (buf, size, "\"\"");
            break;
        }
        case CONFIG_VALUE_INT:
            memcpy (&i, field, sizeof i);
            snprintf (buf, size, "%d", i);
            break;
        case CONFIG_VALUE_SIZE:
            memcpy (&bytes, field, sizeof bytes);
            snprintf (buf, size, "%s", config_format_size ((uint64_t) bytes, a, sizeof a));
            break;
        case CONFIG_VALUE_DURATION:
            memcpy (&ms, field, sizeof ms);
            snprintf (buf, size, "%s", config_format_duration (ms, a, sizeof a));
            break;
        case CONFIG_VALUE_BACKOFF:
            memcpy (&ms, field, sizeof ms);
            memcpy (&ms2, (const char *) base + key->offset2, sizeof ms2);
            snprintf (buf, size, "%s..%s", config_format_duration (ms, a, sizeof a),
                      config_format_duration (ms2, b, sizeof b));
            break;
        case CONFIG_VALUE_RATE:
            memcpy (&rate, field, sizeof rate);
            snprintf (buf, size, "%g/s", rate);
            break;
        case CONFIG_VALUE_BOOL:
            memcpy (&flag, field, sizeof flag);
            snprintf (buf, size, "%s", flag? "true": "false");
            break;
        case CONFIG_VALUE_ENUM:
            memcpy (&i, field, sizeof i);
            snprintf (buf, size, "%s", key->choices && i >= 0? key->choices[i]: "?");
            break;
        default:
            snprintf (buf, size, "?");
    }
    return buf;
}

/*  True if an earlier row of the schema targets the same field (an alias,
    like channels.*.concurrency for capacity): it is compared once. */
static bool
s_alias (size_t index, const config_key_t *key)
{
    config_key_t earlier;
    for (size_t i = 0; i < index && config_schema_key (i, &earlier) == 0; i++)
        if (earlier.value != CONFIG_VALUE_NONE && earlier.scope == key->scope && earlier.offset == key->offset)
            return true;
    return false;
}

/*  Compares the scalar keys of scope between running's and fresh's structs
    (name fills the pattern's "*"); copies the live ones into merged's. */
static void
s_merge_scope (config_scope_t scope, const char *name, const void *running, const void *fresh, void *merged,
               herald_config_diff_t *diff)
{
    config_key_t key;
    for (size_t i = 0; config_schema_key (i, &key) == 0; i++) {
        if (key.scope != scope || key.value == CONFIG_VALUE_NONE || s_alias (i, &key))
            continue;
        if (s_same (&key, running, fresh))
            continue;
        bool restart = s_needs_restart (key.pattern);
        char path[160], was[96], now[96];
        s_add (diff, restart, s_key_path (key.pattern, name, path, sizeof path),
               s_format (&key, running, was, sizeof was), s_format (&key, fresh, now, sizeof now));
        if (!restart)
            s_copy (&key, merged, fresh);
    }
}

/* ------------------------------------------------------------------------ */
/*  Channels and the workers `herald up` runs                                */

static bool
s_same_headers (const herald_http_config_t *a, const herald_http_config_t *b)
{
    if (a->header_count != b->header_count)
        return false;
    for (int i = 0; i < a->header_count; i++)
        if (strcmp (a->headers[i].name, b->headers[i].name) != 0
        ||  strcmp (a->headers[i].value, b->headers[i].value) != 0
        ||  strcmp (a->headers[i].value_env, b->headers[i].value_env) != 0)
            return false;
    return true;
}

static void
s_merge_channels (const herald_config_t *running, const herald_config_t *fresh, herald_config_t *merged,
                  herald_config_diff_t *diff)
{
    bool restart = s_needs_restart ("channels.*");
    char path[160], was[32], now[32];
    for (int c = 0; c < running->channel_count; c++) {
        const herald_channel_t *old = &running->channels[c];
        int f = herald_config_channel_index (fresh, old->name);
        if (f < 0) {
            s_add (diff, restart, s_key_path ("channels.*", old->name, path, sizeof path), "", "removed");
            continue;
        }
        const herald_channel_t *new = &fresh->channels[f];
        herald_channel_t *out = &merged->channels[c];
        s_merge_scope (CONFIG_SCOPE_CHANNEL, old->name, old, new, out, diff);
        if (!s_same_headers (&old->http, &new->http)) {
            /*  Header values may be secrets: counted, not shown. */
            bool headers_restart = s_needs_restart ("channels.*.http.headers");
            snprintf (was, sizeof was, "%d headers", old->http.header_count);
            snprintf (now, sizeof now, "%d headers", new->http.header_count);
            s_add (diff, headers_restart, s_key_path ("channels.*.http.headers", old->name, path, sizeof path),
                   was, now);
            if (!headers_restart) {
                memcpy (out->http.headers, new->http.headers, sizeof out->http.headers);
                out->http.header_count = new->http.header_count;
            }
        }
        /*  workers.CHANNEL: how many processes `herald up` runs. */
        if (running->workers[c] != fresh->workers[f]) {
            bool workers_restart = s_needs_restart ("workers.*");
            snprintf (was, sizeof was, "%d", running->workers[c]);
            snprintf (now, sizeof now, "%d", fresh->workers[f]);
            s_add (diff, workers_restart, s_key_path ("workers.*", old->name, path, sizeof path), was, now);
            if (!workers_restart)
                merged->workers[c] = fresh->workers[f];
        }
    }
    for (int f = 0; f < fresh->channel_count; f++)
        if (herald_config_channel_index (running, fresh->channels[f].name) < 0)
            s_add (diff, restart, s_key_path ("channels.*", fresh->channels[f].name, path, sizeof path),
                   "", "added");
}

/* ------------------------------------------------------------------------ */
/*  Event types                                                              */

/*  "email,inventory": the channels of a fan-out, by name. */
static const char *
s_fanout_text (const herald_config_t *config, const herald_event_type_t *type, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < type->fanout_count && used < size; i++)
        used += (size_t) snprintf (buf + used, size - used, "%s%s", i? ",": "",
                                   config->channels[type->fanout[i]].name);
    return buf;
}

static bool
s_same_required (const herald_event_type_t *a, const herald_event_type_t *b)
{
    if (a->required_count != b->required_count)
        return false;
    for (int i = 0; i < a->required_count; i++)
        if (strcmp (a->required[i], b->required[i]) != 0 || a->required_types[i] != b->required_types[i])
            return false;
    return true;
}

/*  fresh's type with its fan-out in running's channel indexes into *out.
    0, or -1 when it names a channel running does not have (its name in
    missing). */
static int
s_remap_fanout (const herald_config_t *running, const herald_config_t *fresh, const herald_event_type_t *type,
                herald_event_type_t *out, const char **missing)
{
    *out = *type;
    for (int i = 0; i < type->fanout_count; i++) {
        const char *name = fresh->channels[type->fanout[i]].name;
        int c = herald_config_channel_index (running, name);
        if (c < 0) {
            *missing = name;
            return -1;
        }
        out->fanout[i] = c;
    }
    return 0;
}

static void
s_merge_events (const herald_config_t *running, const herald_config_t *fresh, herald_config_t *merged,
                herald_config_diff_t *diff)
{
    char path[160], was[96], now[96];
    int count = 0;
    for (int t = 0; t < fresh->event_count; t++) {
        const herald_event_type_t *type = &fresh->events[t];
        int r = herald_config_event_index (running, type->name);
        const herald_event_type_t *old = r >= 0? &running->events[r]: NULL;
        herald_event_type_t remapped;
        const char *missing = NULL;
        if (s_remap_fanout (running, fresh, type, &remapped, &missing) != 0) {
            /*  A fan-out to a channel that runs only after a restart: the
                type stays as it runs (or stays unknown) until then. */
            snprintf (now, sizeof now, "names channel %s, which is new", missing);
            s_add (diff, true, s_key_path ("events.*.fanout", type->name, path, sizeof path),
                   old? s_fanout_text (running, old, was, sizeof was): "", now);
            if (old)
                merged->events[count++] = *old;
            continue;
        }
        merged->events[count++] = remapped;
        if (!old) {
            s_add (diff, s_needs_restart ("events.*"), s_key_path ("events.*", type->name, path, sizeof path),
                   "", "added");
            continue;
        }
        s_merge_scope (CONFIG_SCOPE_EVENT, type->name, old, type, &merged->events[count - 1], diff);
        if (!s_same_required (old, type)) {
            snprintf (was, sizeof was, "%d fields", old->required_count);
            snprintf (now, sizeof now, "%d fields", type->required_count);
            s_add (diff, false, s_key_path ("events.*.required", type->name, path, sizeof path), was, now);
        }
        s_fanout_text (running, old, was, sizeof was);
        s_fanout_text (fresh, type, now, sizeof now);
        if (strcmp (was, now) != 0)
            s_add (diff, false, s_key_path ("events.*.fanout", type->name, path, sizeof path), was, now);
    }
    for (int r = 0; r < running->event_count; r++)
        if (herald_config_event_index (fresh, running->events[r].name) < 0)
            s_add (diff, s_needs_restart ("events.*"), s_key_path ("events.*", running->events[r].name, path,
                   sizeof path), "", "removed");
    memset (merged->events + count, 0, sizeof merged->events - (size_t) count * sizeof merged->events[0]);
    merged->event_count = count;
    for (int r = 0; r < running->event_count; r++)
        diff->event_map[r] = herald_config_event_index (merged, running->events[r].name);
}

/* ------------------------------------------------------------------------ */
/*  Security                                                                 */

/*  Keys of config holding role (and, for workers, serving the channel
    named channel): how many, and whether every one is in other with the
    same. */
static int
s_list_count (const herald_config_t *config, unsigned role, const char *channel)
{
    int count = 0;
    int c = channel? herald_config_channel_index (config, channel): -1;
    if (channel && c < 0)
        return 0;
    for (int i = 0; i < config->security.key_count; i++) {
        const herald_client_key_t *key = &config->security.keys[i];
        if ((key->roles & role) && (!channel || (key->channels & (UINT32_C (1) << c))))
            count++;
    }
    return count;
}

/*  True if every key a's list (role, channel) holds is in b's list too. */
static bool
s_list_within (const herald_config_t *a, const herald_config_t *b, unsigned role, const char *channel)
{
    int ca = channel? herald_config_channel_index (a, channel): -1;
    int cb = channel? herald_config_channel_index (b, channel): -1;
    for (int i = 0; i < a->security.key_count; i++) {
        const herald_client_key_t *key = &a->security.keys[i];
        if (!(key->roles & role) || (channel && (ca < 0 || !(key->channels & (UINT32_C (1) << ca)))))
            continue;
        const herald_client_key_t *other = herald_config_find_key (b, key->key);
        if (!other || !(other->roles & role) || (channel && (cb < 0 || !(other->channels & (UINT32_C (1) << cb)))))
            return false;
    }
    return true;
}

static void
s_merge_security (const herald_config_t *running, const herald_config_t *fresh, herald_config_t *merged,
                  herald_config_diff_t *diff)
{
    const herald_security_config_t *old = &running->security, *new = &fresh->security;
    s_merge_scope (CONFIG_SCOPE_SECURITY, NULL, old, new, &merged->security, diff);
    /*  A new broker key, or CURVE turned on or off, changes what the lists
        mean: they wait for the restart with it. */
    bool lists_wait = old->curve != new->curve || old->plaintext != new->plaintext
                   || strcmp (old->broker_key, new->broker_key) != 0;
    static const struct {
        const char *pattern;
        unsigned role;
    } lists[] = {
        { "security.producers", HERALD_ROLE_PRODUCER },
        { "security.admin_read", HERALD_ROLE_ADMIN_READ },
        { "security.admin_operate", HERALD_ROLE_ADMIN_OPERATE },
        { "security.workers.*", HERALD_ROLE_WORKER },
    };
    bool changed = false;
    char path[160], was[32], now[32];
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        bool per_channel = lists[l].role == HERALD_ROLE_WORKER;
        for (int c = 0; c < (per_channel? running->channel_count: 1); c++) {
            const char *channel = per_channel? running->channels[c].name: NULL;
            int a = s_list_count (running, lists[l].role, channel);
            int b = s_list_count (fresh, lists[l].role, channel);
            if (a == b && s_list_within (running, fresh, lists[l].role, channel))
                continue;
            changed = true;
            snprintf (was, sizeof was, "%d key%s", a, a == 1? "": "s");
            snprintf (now, sizeof now, "%d key%s", b, b == 1? "": "s");
            s_add (diff, lists_wait || s_needs_restart (lists[l].pattern),
                   s_key_path (lists[l].pattern, channel, path, sizeof path), was, now);
        }
    }
    if (!changed || lists_wait)
        return;
    /*  The lists, with each worker key's channels in running's indexes. */
    herald_security_config_t *out = &merged->security;
    memcpy (out->keys, new->keys, sizeof out->keys);
    out->key_count = new->key_count;
    for (int i = 0; i < out->key_count; i++) {
        uint32_t channels = 0;
        for (int f = 0; f < fresh->channel_count; f++) {
            int c = herald_config_channel_index (running, fresh->channels[f].name);
            if (c >= 0 && (new->keys[i].channels & (UINT32_C (1) << f)))
                channels |= UINT32_C (1) << c;
        }
        out->keys[i].channels = channels;
    }
    memcpy (out->producer_file, new->producer_file, sizeof out->producer_file);
    memcpy (out->admin_read_file, new->admin_read_file, sizeof out->admin_read_file);
    memcpy (out->admin_operate_file, new->admin_operate_file, sizeof out->admin_operate_file);
    for (int c = 0; c < running->channel_count; c++) {
        int f = herald_config_channel_index (fresh, running->channels[c].name);
        if (f >= 0)
            memcpy (out->worker_file[c], new->worker_file[f], sizeof out->worker_file[c]);
        else
            out->worker_file[c][0] = '\0';
    }
}

/* ------------------------------------------------------------------------ */
/*  Public API                                                               */

void
herald_config_merge (const herald_config_t *running, const herald_config_t *fresh, herald_config_t *merged,
                     herald_config_diff_t *diff)
{
    memset (diff, 0, sizeof *diff);
    memcpy (merged, running, sizeof *merged);
    s_merge_scope (CONFIG_SCOPE_BROKER, NULL, &running->broker, &fresh->broker, &merged->broker, diff);
    s_merge_channels (running, fresh, merged, diff);
    s_merge_events (running, fresh, merged, diff);
    s_merge_security (running, fresh, merged, diff);
}

const char *
herald_config_diff_text (const herald_config_diff_t *diff, bool restart, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < diff->count && used + 1 < size; i++) {
        const herald_config_change_t *change = &diff->changes[i];
        if (change->restart != restart)
            continue;
        int n;
        if (change->was[0] && change->now[0])
            n = snprintf (buf + used, size - used, "%s%s %s->%s", used? ", ": "", change->key, change->was,
                          change->now);
        else
            n = snprintf (buf + used, size - used, "%s%s%s%s", used? ", ": "", change->key,
                          change->now[0]? " ": "", change->now);
        used = n < 0 || (size_t) n >= size - used? size - 1: used + (size_t) n;
    }
    if (!restart && diff->unlisted > 0 && used + 1 < size)
        snprintf (buf + used, size - used, "%s%d more", used? ", and ": "", diff->unlisted);
    if (!buf[0])
        snprintf (buf, size, "-");
    return buf;
}

const herald_config_change_t *
herald_config_diff_find (const herald_config_diff_t *diff, const char *key)
{
    for (int i = 0; i < diff->count; i++)
        if (strcmp (diff->changes[i].key, key) == 0)
            return &diff->changes[i];
    return NULL;
}
