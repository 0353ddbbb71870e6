/*  broker: the loop. It owns the sockets and the store's descriptors, and
    passes what arrives to the core (core.h), which decides; the core's
    effects come back through core_io_t. One turn: wait for a socket, the
    journal's writer, the index, or the core's next deadline; read what
    arrived; let the core act; hand what it staged to the journal's writer;
    send parked replies. The writer syncs one batch while the loop reads and
    stages the next (pipelined group commit). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "core.h"
#include "herald_metrics.h"
#include "http.h"
#include "herald_clock.h"
#include "herald_log.h"
#include "herald_ratelimit.h"
#include "herald_wire.h"
#include "notify.h"
#include "outbox.h"
#include "reload.h"
#include "security.h"
#include "store.h"

#define DRAIN_WORKER_MAX    8192    /* worker messages handled per turn */
#define DRAIN_ADMIN_MAX     16      /* admin requests handled per turn */
#define INTERNAL_HWM        100000  /* the internal socket's HWM: the HTTP thread always reads */
#define POLL_MAX_MS         1000

/*  What the loop waits on (hw_poll: a socket is asked for its events only
    when its descriptor signalled or the loop touched it, so the admin and
    internal sockets, idle nearly always, cost nothing per turn). */
enum { S_WORKERS, S_ADMIN, S_JOURNAL, S_INDEX, S_PRODUCERS, S_INTERNAL, S_WAITS };

struct broker {
    const herald_config_t *config;  /* the loop's: live, below */
    herald_config_t *live;          /* a copy of the one loaded, which a reload rewrites between turns (reload.h) */
    void *ctx;
    void *producers;                /* ROUTER */
    void *workers;                  /* ROUTER */
    void *admin;                    /* ROUTER */
    void *internal;                 /* ROUTER on inproc://herald-internal-PID: the HTTP thread (trusted) */
    outbox_t *outbox;               /* replies to producers, parked per peer */
    outbox_t *internal_outbox;      /* replies to the HTTP thread */
    herald_metrics_t *metrics;      /* for GET /metrics */
    http_t *http;                   /* the HTTP endpoint's thread, or NULL */
    store_t *store;
    core_t *core;
    herald_ratelimit_t malformed;   /* log lines about malformed messages */
    security_t *security;           /* CURVE, ZAP, connection limits (security.c) */
    volatile sig_atomic_t *reload;  /* set by SIGHUP: reload the security section, or NULL */
    broker_status_t fatal;
    hw_pollitem_t waits[S_WAITS];   /* set check on a socket's item after touching the socket */
};

//  --------------------------------------------------------------------------
//  What the core asks for

static void
s_io_reply (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    broker_t *self = ctx;
    outbox_send (self->outbox, identity, identity_len, msg);
    self->waits[S_PRODUCERS].check = true;
}

/*  Replies to the HTTP thread, on the socket it asked on. */
static void
s_io_internal_reply (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    broker_t *self = ctx;
    outbox_send (self->internal_outbox, identity, identity_len, msg);
    self->waits[S_INTERNAL].check = true;
}

static int
s_io_to_worker (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    broker_t *self = ctx;
    self->waits[S_WORKERS].check = true;
    return hw_send (self->workers, hp_strn (identity, identity_len), msg, ZMQ_DONTWAIT);
}

static void
s_io_admin_reply (void *ctx, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    broker_t *self = ctx;
    hw_send (self->admin, hp_strn (identity, identity_len), msg, ZMQ_DONTWAIT);
    self->waits[S_ADMIN].check = true;
}

static uint64_t
s_io_append (void *ctx, const void *payload, uint32_t len)
{
    broker_t *self = ctx;
    return store_append (self->store, payload, len);
}

static journal_status_t
s_io_append_status (void *ctx)
{
    broker_t *self = ctx;
    return store_append_status (self->store);
}

static void
s_io_query (void *ctx, index_msg_t *msg)
{
    broker_t *self = ctx;
    store_post (self->store, msg);
}

/*  A shared store's answers (core_start_t.shared). */
static uint64_t
s_io_next_seq (void *ctx)
{
    broker_t *self = ctx;
    return store_next_seq (self->store);
}

static uint64_t
s_io_append_event (void *ctx, const void *payload, uint32_t len, uint32_t held)
{
    broker_t *self = ctx;
    return store_append_event (self->store, payload, len, held);
}

static int
s_io_commit_result (void *ctx, uint64_t lsn, store_commit_t *out)
{
    broker_t *self = ctx;
    return store_commit_result (self->store, lsn, out);
}

static const char *
s_io_durability (void *ctx)
{
    broker_t *self = ctx;
    return store_durability (self->store);
}

static void
s_io_status (void *ctx, json_t *reply)
{
    broker_t *self = ctx;
    outbox_stats_t out;
    outbox_stats (self->outbox, &out);
    json_object_set_new (reply, "producers", json_pack ("{s:I, s:I, s:I, s:I}",
        "unread_replies", (json_int_t) out.parked,
        "peers_not_reading", (json_int_t) out.peers_waiting,
        "dropped", (json_int_t) out.dropped,
        "replies_lost", (json_int_t) out.lost));
    json_object_set_new (reply, "security", security_status (self->security));
    store_status (self->store, reply);
}

//  --------------------------------------------------------------------------
//  Construction

static void
s_recover_counts (void *ctx, const char *channel, int64_t pending, int64_t done, int64_t dead)
{
    core_recover_counts (ctx, channel, pending, done, dead);
}

static void
s_recover_key (void *ctx, uint64_t seq, const char *key, size_t len)
{
    core_recover_key (ctx, seq, key, len);
}

broker_t *
broker_new (const herald_config_t *config, broker_status_t *status, char *err, size_t errlen)
{
    broker_t *self = calloc (1, sizeof *self);
    *status = BROKER_ERR_INTERNAL;
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    /*  The loop and what runs on its thread read the live copy; the HTTP
        thread gets the configuration as loaded (reload.h says why). */
    const herald_config_t *loaded = config;
    self->live = malloc (sizeof *self->live);
    if (!self->live) {
        snprintf (err, errlen, "out of memory");
        broker_destroy (&self);
        return NULL;
    }
    memcpy (self->live, loaded, sizeof *self->live);
    config = self->config = self->live;
    self->malformed = herald_ratelimit (20, 1000);
    self->ctx = zmq_ctx_new ();
    self->metrics = herald_metrics_new ();
    if (!self->ctx || !self->metrics) {
        snprintf (err, errlen, "out of memory");
        broker_destroy (&self);
        return NULL;
    }
    self->security = security_new (self->ctx, config, err, errlen);
    if (!self->security) {
        *status = BROKER_ERR_CONFIG;
        broker_destroy (&self);
        return NULL;
    }
    store_options_t store_options = {
        .path = config->broker.store,
        .segment_size = config->broker.journal_segment_bytes,
        .journal_max = config->broker.journal_max_bytes,
        .retention_ms = config->broker.dedup_retention_ms,
        .metrics = self->metrics,
        .config = config,
    };
    index_info_t info;
    bool corrupt;
    self->store = store_open (&store_options, &info, &corrupt, err, errlen);
    if (!self->store) {
        *status = BROKER_ERR_STORE;
        broker_destroy (&self);
        return NULL;
    }
    core_io_t io = {
        .ctx = self, .reply = s_io_reply, .to_worker = s_io_to_worker, .admin_reply = s_io_admin_reply,
        .append = s_io_append, .append_status = s_io_append_status, .query = s_io_query,
        .status = s_io_status, .metrics = self->metrics, .internal_reply = s_io_internal_reply,
    };
    if (store_shared (self->store)) {
        io.next_seq = s_io_next_seq;
        io.append_event = s_io_append_event;
        io.commit_result = s_io_commit_result;
        io.durability = s_io_durability;
    }
    core_start_t start = { .next_seq = info.next_seq, .boots = info.boots, .shared = store_shared (self->store) };
    self->core = core_new (config, &io, &start);
    if (!self->core) {
        snprintf (err, errlen, "out of memory");
        broker_destroy (&self);
        return NULL;
    }
    if (store_recover (self->store, s_recover_counts, s_recover_key, self->core, err, errlen) != 0) {
        *status = BROKER_ERR_STORE;
        broker_destroy (&self);
        return NULL;
    }
    /*  Transport cap: above max_event_bytes we still want to answer with a
        NACK 413, so only absurd messages are cut off by libzmq itself. */
    long long transport_max = reload_transport_max (config->broker.max_event_bytes);
    hw_options_t options = { .hwm = config->broker.hwm, .max_msg_size = transport_max, .linger_ms = 1000 };
    hw_options_t admin_options = { .hwm = 1000, .max_msg_size = 1 << 20, .linger_ms = 1000 };
    hw_options_t producer_options = options, worker_options = options;
    security_socket_options (self->security, ENDPOINT_PRODUCERS, &producer_options);
    security_socket_options (self->security, ENDPOINT_WORKERS, &worker_options);
    security_socket_options (self->security, ENDPOINT_ADMIN, &admin_options);
    self->producers = hw_socket_new (self->ctx, HW_PRODUCER_ROUTER, config->broker.producers,
                                     &producer_options, err, errlen);
    if (self->producers)
        self->workers = hw_socket_new (self->ctx, HW_WORKER_ROUTER, config->broker.workers,
                                       &worker_options, err, errlen);
    if (self->workers)
        self->admin = hw_socket_new (self->ctx, HW_ADMIN_ROUTER, config->broker.admin, &admin_options,
                                     err, errlen);
    /*  The HTTP thread's way in: inproc, so only this process reaches it
        (no ZAP); its requests take the producers' path through the core. */
    char internal[80];
    snprintf (internal, sizeof internal, "inproc://herald-internal-%ld-%p", (long) getpid (), (void *) self);
    hw_options_t internal_options = { .hwm = INTERNAL_HWM, .max_msg_size = transport_max, .linger_ms = 0 };
    if (self->admin)
        self->internal = hw_socket_new (self->ctx, HW_PRODUCER_ROUTER, internal, &internal_options, err, errlen);
    if (!self->internal) {
        *status = BROKER_ERR_BIND;
        broker_destroy (&self);
        return NULL;
    }
    void *sockets[S_WAITS] = { [S_WORKERS] = self->workers, [S_ADMIN] = self->admin,
                               [S_PRODUCERS] = self->producers, [S_INTERNAL] = self->internal };
    for (int i = 0; i < S_WAITS; i++) {
        if (!sockets[i])
            hw_poll_fd (&self->waits[i], -1);   /* a descriptor, set at each turn */
        else
        if (hw_poll_socket (&self->waits[i], sockets[i]) != 0) {
            snprintf (err, errlen, "cannot watch a socket: %s", zmq_strerror (errno));
            *status = BROKER_ERR_INTERNAL;
            broker_destroy (&self);
            return NULL;
        }
    }
    size_t peer_cap = (size_t) config->broker.max_unread_replies;
    self->outbox = outbox_new (self->producers, "producer", peer_cap, reload_outbox_total (peer_cap));
    self->internal_outbox = outbox_new (self->internal, "http", reload_outbox_total (peer_cap),
                                        reload_outbox_total (peer_cap));
    if (!self->outbox || !self->internal_outbox) {
        snprintf (err, errlen, "out of memory");
        broker_destroy (&self);
        return NULL;
    }
    if (store_start (self->store, err, errlen) != 0) {
        *status = BROKER_ERR_STORE;
        broker_destroy (&self);
        return NULL;
    }
    core_started (self->core, herald_clock_mono_ms ());
    if (config->broker.http[0]) {
        self->http = http_new (self->ctx, loaded, internal, err, errlen);
        if (!self->http) {
            *status = BROKER_ERR_BIND;
            broker_destroy (&self);
            return NULL;
        }
    }
    *status = BROKER_OK;
    return self;
}

void
broker_destroy (broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_t *self = *self_p;
    /*  The HTTP thread first (its socket closes before the context ends),
        the store next (it writes what is staged), the core after (the
        store's threads post to nobody once stopped). */
    http_destroy (&self->http);
    store_destroy (&self->store);
    core_destroy (&self->core);
    outbox_destroy (&self->outbox);
    outbox_destroy (&self->internal_outbox);
    if (self->internal)
        zmq_close (self->internal);
    if (self->producers)
        zmq_close (self->producers);
    if (self->workers)
        zmq_close (self->workers);
    if (self->admin)
        zmq_close (self->admin);
    security_destroy (&self->security);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    herald_metrics_destroy (&self->metrics);
    free (self->live);
    free (self);
    *self_p = NULL;
}

void
broker_watch_reload (broker_t *self, volatile sig_atomic_t *reload)
{
    self->reload = reload;
}

//  --------------------------------------------------------------------------
//  The loop

static bool
s_log_malformed (broker_t *self, int64_t now)
{
    bool allow = herald_ratelimit_allow (&self->malformed, now);
    if (allow && self->malformed.suppressed > 0)
        herald_info ("malformed messages not logged", "count=%llu",
                     (unsigned long long) self->malformed.suppressed);
    return allow;
}

static void
s_drain_producers (broker_t *self, int64_t now)
{
    self->waits[S_PRODUCERS].check = true;     /* received from, and maybe answered on */
    for (int i = 0; i < self->config->broker.batch_max && core_accepting (self->core); i++) {
        hw_msg_t in;
        if (hw_recv (self->producers, true, &in, ZMQ_DONTWAIT) != 0) {
            hw_msg_close (&in);
            break;
        }
        if (!security_admit (self->security, ENDPOINT_PRODUCERS, &in)) {
            hw_msg_close (&in);
            continue;
        }
        hp_msg_t msg;
        hp_error_t err;
        if (hw_decode (&in, &msg, &err) != 0) {
            if (s_log_malformed (self, now))
                herald_info ("malformed publish refused", "code=%d error=\"%s\"", err.code, err.text);
            herald_metrics_received (self->metrics);
            herald_metrics_refused (self->metrics, err.code);
            hp_msg_t nack = { .command = HP_NACK, .version = msg.version, .code = err.code, .text = hp_str (err.text),
                              .corr = msg.command == HP_PUBLISH && msg.corr.ptr? msg.corr: hp_str ("-") };
            outbox_send (self->outbox, in.identity.ptr, in.identity.len, &nack);
        }
        else
        if (msg.command != HP_PUBLISH) {
            char reason[96];
            snprintf (reason, sizeof reason, "command %s is not accepted on the producer endpoint",
                      hp_command_name (msg.command));
            hp_msg_t nack = { .command = HP_NACK, .version = msg.version, .code = HP_CODE_BAD_REQUEST, .text = hp_str (reason),
                              .corr = msg.corr.ptr? msg.corr: hp_str ("-") };
            outbox_send (self->outbox, in.identity.ptr, in.identity.len, &nack);
        }
        else
            core_publish (self->core, in.identity.ptr, in.identity.len, &msg, now);
        hw_msg_close (&in);
    }
}

static void
s_drain_workers (broker_t *self, int64_t now)
{
    self->waits[S_WORKERS].check = true;     /* received from, and maybe answered on */
    for (int i = 0; i < DRAIN_WORKER_MAX; i++) {
        hw_msg_t in;
        if (hw_recv (self->workers, true, &in, ZMQ_DONTWAIT) != 0) {
            hw_msg_close (&in);
            break;
        }
        if (!security_admit (self->security, ENDPOINT_WORKERS, &in)) {
            hw_msg_close (&in);
            continue;
        }
        hp_msg_t msg;
        hp_error_t err;
        if (hw_decode (&in, &msg, &err) != 0) {
            if (s_log_malformed (self, now))
                herald_warn ("malformed worker message dropped", "code=%d error=\"%s\"", err.code, err.text);
            if (msg.command == HP_READY && err.code == HP_CODE_VERSION) {
                /*  A worker of another protocol version: tell it, in its
                    own version, why it gets no tasks. */
                hp_msg_t nack = { .command = HP_NACK, .version = msg.version, .corr = hp_str ("READY"),
                                  .code = HP_CODE_VERSION, .text = hp_str (err.text) };
                hw_send (self->workers, in.identity, &nack, ZMQ_DONTWAIT);
            }
        }
        else {
            /*  A worker key serves only its own channels. */
            char channel[HERALD_NAME_MAX];
            if (msg.command == HP_READY
            &&  !security_may_serve (self->security, self->workers, &in,
                                     hp_str_copy (msg.channel, channel, sizeof channel))) {
                hw_msg_close (&in);
                continue;
            }
            core_worker (self->core, in.identity.ptr, in.identity.len, &msg, now);
        }
        hw_msg_close (&in);
    }
}

static void
s_drain_admin (broker_t *self, int64_t now)
{
    self->waits[S_ADMIN].check = true;     /* received from, and maybe answered on */
    for (int i = 0; i < DRAIN_ADMIN_MAX; i++) {
        hw_msg_t in;
        if (hw_recv (self->admin, true, &in, ZMQ_DONTWAIT) != 0) {
            hw_msg_close (&in);
            break;
        }
        if (!security_admit (self->security, ENDPOINT_ADMIN, &in)) {
            hw_msg_close (&in);
            continue;
        }
        hp_msg_t msg;
        hp_error_t err;
        bool decoded = hw_decode (&in, &msg, &err) == 0;
        if (!decoded || msg.command != HP_ADMIN) {
            if (decoded)
                snprintf (err.text, sizeof err.text, "command %s is not accepted on the admin endpoint",
                          hp_command_name (msg.command));
            char body[300];
            snprintf (body, sizeof body, "{\"error\": \"%s\"}", err.text);
            hp_msg_t reply = { .command = HP_ADMIN_REPLY, .version = msg.version,
                               .corr = msg.corr.ptr? msg.corr: hp_str ("-"),
                               .code = HP_CODE_BAD_REQUEST, .body = hp_str (body) };
            hw_send (self->admin, in.identity, &reply, ZMQ_DONTWAIT);
        }
        else {
            /*  The key's role decides which verbs it may use. */
            char *body = NULL;
            int code = security_admin_check (self->security, &in, msg.verb, &body);
            if (code != 0) {
                hp_msg_t reply = { .command = HP_ADMIN_REPLY, .version = msg.version, .corr = msg.corr, .code = code,
                                   .body = hp_str (body? body: "{}") };
                hw_send (self->admin, in.identity, &reply, ZMQ_DONTWAIT);
            }
            else
                core_admin (self->core, in.identity.ptr, in.identity.len, &msg, now);
            free (body);
        }
        hw_msg_close (&in);
    }
}

/*  The HTTP thread's requests: PUBLISH and ADMIN, as from a producer and an
    admin tool, answered on this socket (CORE_ORIGIN_INTERNAL). It is
    trusted (inproc: this process only); the HTTP thread has checked the
    client's token and role. Read, like producers, only while the core
    accepts publishes. */
static void
s_drain_internal (broker_t *self, int64_t now)
{
    self->waits[S_INTERNAL].check = true;     /* received from, and maybe answered on */
    for (int i = 0; i < self->config->broker.batch_max && core_accepting (self->core); i++) {
        hw_msg_t in;
        if (hw_recv (self->internal, true, &in, ZMQ_DONTWAIT) != 0) {
            hw_msg_close (&in);
            break;
        }
        hp_msg_t msg;
        hp_error_t err;
        if (hw_decode (&in, &msg, &err) != 0 || (msg.command != HP_PUBLISH && msg.command != HP_ADMIN)) {
            herald_error ("internal request refused (a bug of the HTTP thread)", "code=%d", err.code);
            hp_msg_t nack = { .command = HP_NACK, .code = HP_CODE_INTERNAL, .text = hp_str ("malformed internal request"),
                              .corr = msg.corr.ptr? msg.corr: hp_str ("-") };
            outbox_send (self->internal_outbox, in.identity.ptr, in.identity.len, &nack);
        }
        else
        if (msg.command == HP_PUBLISH)
            core_publish_from (self->core, CORE_ORIGIN_INTERNAL, in.identity.ptr, in.identity.len, &msg, now);
        else
            core_admin_from (self->core, CORE_ORIGIN_INTERNAL, in.identity.ptr, in.identity.len, &msg, now);
        hw_msg_close (&in);
    }
}

/*  What the journal's writer and the index's thread have done. */
static void
s_store_news (broker_t *self, int64_t now)
{
    if (store_append_status (self->store) == JOURNAL_IO && self->fatal == BROKER_OK) {
        core_journal_failed (self->core, store_errstr (self->store));
        self->fatal = BROKER_ERR_IO;
        return;
    }
    core_durable (self->core, store_durable (self->store), now);
    index_msg_t *msg;
    while ((msg = store_take (self->store)))
        core_index (self->core, msg, now);
}

typedef struct {
    broker_t *broker;
    int64_t now;
} s_turn_t;

/*  A batch the loop made durable itself: its ACKs leave now. */
static void
s_durable_here (void *arg)
{
    s_turn_t *turn = arg;
    s_store_news (turn->broker, turn->now);
}

broker_status_t
broker_run (broker_t *self, volatile sig_atomic_t *stop)
{
    const herald_broker_config_t *cfg = &self->config->broker;
    char qstore[HERALD_PATH_MAX + 8];
    herald_info ("broker ready", "producers=%s workers=%s admin=%s http=%s store=%s", cfg->producers, cfg->workers,
                 cfg->admin, cfg->http[0]? cfg->http: "-", herald_log_quote (cfg->store, qstore, sizeof qstore));
    bool stopping = false;
    int64_t next_deadline = herald_clock_mono_ms ();
    while (self->fatal == BROKER_OK) {
        if (self->reload && *self->reload) {
            *self->reload = 0;
            notify_reloading ();
            reload_targets_t targets = {
                .core = self->core, .security = self->security, .store = self->store, .outbox = self->outbox,
                .internal_outbox = self->internal_outbox, .http = self->http,
                .sockets = { self->producers, self->workers, self->internal },
            };
            reload_apply (self->live, &targets);
            for (int i = 0; i < S_WAITS; i++)
                self->waits[i].check = self->waits[i].socket != NULL;   /* options were set */
            notify_ready ();
        }
        int64_t now = herald_clock_mono_ms ();
        if (*stop && !stopping) {
            stopping = true;
            notify_stopping ();
            core_stop (self->core, now);
        }
        if (stopping && core_stopped (self->core, now))
            break;
        hw_pollitem_t *waits = self->waits;
        waits[S_JOURNAL].fd = store_journal_fd (self->store);
        waits[S_INDEX].fd = store_index_fd (self->store);
        int count = core_accepting (self->core)? S_WAITS: S_PRODUCERS;
        long timeout = next_deadline > now? (long) (next_deadline - now): 0;
        if ((outbox_parked (self->outbox) > 0 || outbox_parked (self->internal_outbox) > 0) && timeout > 5)
            timeout = 5;
        if (timeout > POLL_MAX_MS)
            timeout = POLL_MAX_MS;
        int rc = hw_poll (waits, count, timeout);
        if (rc < 0 && errno != EINTR) {
            herald_error ("poll failed", "error=\"%s\"", zmq_strerror (errno));
            self->fatal = BROKER_ERR_INTERNAL;
            break;
        }
        now = herald_clock_mono_ms ();
        if (rc > 0 && waits[S_JOURNAL].ready)
            store_journal_clear (self->store);
        s_store_news (self, now);
        if (rc > 0 && waits[S_WORKERS].ready)
            s_drain_workers (self, now);
        if (rc > 0 && count == S_WAITS && waits[S_PRODUCERS].ready)
            s_drain_producers (self, now);
        if (rc > 0 && count == S_WAITS && waits[S_INTERNAL].ready)
            s_drain_internal (self, now);
        if (rc > 0 && waits[S_ADMIN].ready)
            s_drain_admin (self, now);
        next_deadline = core_tick (self->core, now);
        if (core_flush_due (self->core, now, false)) {
            /*  A small batch with the writer idle is synced right here and
                its ACKs leave in this turn; otherwise the writer takes it. */
            s_turn_t turn = { self, now };
            if (!store_commit_here (self->store, s_durable_here, &turn))
                store_flush (self->store);
        }
        if (outbox_parked (self->outbox) > 0)
            waits[S_PRODUCERS].check = true;
        if (outbox_parked (self->internal_outbox) > 0)
            waits[S_INTERNAL].check = true;
        outbox_flush (self->outbox);
        outbox_flush (self->internal_outbox);
        if (core_failed (self->core) && self->fatal == BROKER_OK)
            self->fatal = store_append_status (self->store) == JOURNAL_IO? BROKER_ERR_IO: BROKER_ERR_STORE;
    }
    /*  Whatever is staged gets written and answered before we go. */
    if (self->fatal == BROKER_OK) {
        store_flush (self->store);
        int64_t until = herald_clock_mono_ms () + 2000;
        while (herald_clock_mono_ms () < until && store_durable (self->store) < store_end (self->store)
               && store_append_status (self->store) != JOURNAL_IO) {
            zmq_pollitem_t item = { NULL, store_journal_fd (self->store), ZMQ_POLLIN, 0 };
            zmq_poll (&item, 1, 50);
            store_journal_clear (self->store);
        }
        s_store_news (self, herald_clock_mono_ms ());
    }
    outbox_flush (self->outbox);
    outbox_flush (self->internal_outbox);
    /*  Give producers a moment to read the last replies: a peer that sees
        the connection close drops what it had not read yet. */
    int64_t grace_end = herald_clock_mono_ms () + 300;
    while (outbox_parked (self->outbox) > 0 && herald_clock_mono_ms () < grace_end) {
        zmq_poll (NULL, 0, 5);
        outbox_flush (self->outbox);
    }
    zmq_poll (NULL, 0, 300);
    herald_info ("broker stopped", "events_accepted=%lld", (long long) core_events_accepted (self->core));
    return self->fatal;
}
