/*  store_pg: the PostgreSQL store's facade (see store_pg.h). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "herald_clock.h"
#include "herald_log.h"
#include "pg_conn.h"
#include "pg_query.h"
#include "pg_writer.h"
#include "store_pg.h"

#define S_TAKEOVER_DEFAULT_MS   10000

typedef struct {
    pg_shared_t shared;
    PGconn *writer_conn, *query_conn;   /* from open to start */
    pg_writer_t *writer;
    pg_query_t *query;
    herald_metrics_t *metrics;
    bool registered;                    /* our liveness row exists */
    char durability[16];                /* the loop's word for what s_durable returned last */
    int durability_low;                 /* loop: the lowest word's rank not forgotten yet (-1: none) */
    uint64_t durable_seen;              /* loop: what s_durable returned last */
} s_store_t;

bool
store_pg_is_url (const char *text)
{
    return pg_is_url (text);
}

//  --------------------------------------------------------------------------
//  Opening

static int64_t
s_int (PGresult *res, int row, int col)
{
    return PQgetisnull (res, row, col)? 0: strtoll (PQgetvalue (res, row, col), NULL, 10);
}

static PGresult *
s_exec (PGconn *conn, const char *sql, int n, const char *const *values, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexecParams (conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType status = res? PQresultStatus (res): PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return res;
    char why[1024];
    snprintf (err, errlen, "PostgreSQL store: %s: %s", what, pg_error (conn, res, why, sizeof why));
    PQclear (res);
    return NULL;
}

/*  Brokers of this host whose process is gone (a restart after a crash):
    their tasks are freed now rather than after the takeover timeout. */
static void
s_take_over_gone (s_store_t *self, PGconn *conn)
{
    char err[1200];
    const char *values[1] = { self->shared.host };
    PGresult *res = s_exec (conn, "SELECT id, pid FROM herald.brokers WHERE host = $1", 1, values,
                            "read brokers", err, sizeof err);
    for (int r = 0; res && r < PQntuples (res); r++) {
        pid_t pid = (pid_t) s_int (res, r, 1);
        if (pid <= 0 || pid == getpid () || kill (pid, 0) == 0 || errno != ESRCH)
            continue;
        const char *id[1] = { PQgetvalue (res, r, 0) };
        PGresult *freed = s_exec (conn,
            "WITH dead AS (DELETE FROM herald.brokers WHERE id = $1 RETURNING id),"
            " f AS (UPDATE herald.tasks SET owner = NULL, claim = 0 WHERE owner IN (SELECT id FROM dead)"
            "       RETURNING channel),"
            " n AS (SELECT pg_notify ('" PG_NOTIFY_CHANNEL "', c) FROM (SELECT DISTINCT channel AS c FROM f) x)"
            " SELECT (SELECT count (*) FROM f), (SELECT count (*) FROM n)", 1, id, "free a gone broker's tasks",
            err, sizeof err);
        if (freed)
            herald_info ("PostgreSQL store: a broker of this host is gone: its tasks are free", "broker_id=%s"
                         " pid=%d tasks=%s", id[0], (int) pid, PQgetvalue (freed, 0, 0));
        else
            herald_warn ("PostgreSQL store: cannot free a gone broker's tasks", "error=\"%s\"", err);
        PQclear (freed);
    }
    PQclear (res);
}

static void
s_destroy (void **impl_p);
static const char *
s_durability (void *impl);

void *
store_pg_open (const store_options_t *options, index_info_t *info, bool *corrupt, char *err, size_t errlen)
{
    *corrupt = false;
    s_store_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "PostgreSQL store: out of memory");
        return NULL;
    }
    pg_shared_t *shared = &self->shared;
    pthread_mutex_init (&shared->lock, NULL);
    shared->reply_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    shared->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    snprintf (shared->url, sizeof shared->url, "%s", options->path);
    if (gethostname (shared->host, sizeof shared->host) != 0)
        snprintf (shared->host, sizeof shared->host, "unknown");
    snprintf (shared->durability, sizeof shared->durability, "commit");
    shared->durability_low = -1;
    self->durability_low = -1;
    const herald_config_t *config = options->config;
    shared->takeover_ms = config && config->broker.takeover_timeout_ms > 0? config->broker.takeover_timeout_ms
                        : S_TAKEOVER_DEFAULT_MS;
    shared->heartbeat_ms = shared->takeover_ms / 5;
    if (shared->heartbeat_ms > 1000)
        shared->heartbeat_ms = 1000;
    if (shared->heartbeat_ms < 50)
        shared->heartbeat_ms = 50;
    shared->retention_ms = options->retention_ms;
    for (int c = 0; config && c < config->channel_count; c++)
        snprintf (shared->channels[shared->channel_count++], HERALD_NAME_MAX, "%s", config->channels[c].name);
    self->metrics = options->metrics;
    if (shared->reply_fd < 0 || shared->wake_fd < 0) {
        snprintf (err, errlen, "PostgreSQL store: %s", strerror (errno));
        s_destroy ((void **) &self);
        return NULL;
    }
    self->writer_conn = pg_connect (shared->url, "writer", err, errlen);
    if (!self->writer_conn) {
        s_destroy ((void **) &self);
        return NULL;
    }
    if (pg_schema (self->writer_conn, err, errlen) != 0) {
        *corrupt = strstr (err, "not supported") != NULL;
        s_destroy ((void **) &self);
        return NULL;
    }
    s_take_over_gone (self, self->writer_conn);
    char pid[16], started[24];
    snprintf (pid, sizeof pid, "%d", (int) getpid ());
    snprintf (started, sizeof started, "%" PRId64, herald_clock_wall_ms ());
    const char *values[3] = { shared->host, pid, started };
    PGresult *res = s_exec (self->writer_conn, "INSERT INTO herald.brokers (id, host, pid, started_at, seen_at)"
                            " VALUES (nextval ('herald.broker_id'), $1, $2, $3, now ()) RETURNING id", 3, values,
                            "register this broker", err, errlen);
    if (!res) {
        s_destroy ((void **) &self);
        return NULL;
    }
    shared->broker_id = (uint64_t) s_int (res, 0, 0);
    self->registered = true;
    PQclear (res);
    char blocks[16];
    snprintf (blocks, sizeof blocks, "%d", 1 + PG_SEQ_SPARES);
    const char *count[1] = { blocks };
    res = s_exec (self->writer_conn, PG_SEQ_BLOCKS_SQL, 1, count, "reserve event numbers", err, errlen);
    if (!res) {
        s_destroy ((void **) &self);
        return NULL;
    }
    shared->seq_next = (uint64_t) s_int (res, 0, 0);
    shared->seq_end = shared->seq_next + PG_SEQ_BLOCK;
    for (int r = 1; r < PQntuples (res) && shared->spare_count < PG_SEQ_SPARES; r++)
        shared->spares[shared->spare_count++] = (uint64_t) s_int (res, r, 0);
    PQclear (res);
    self->query_conn = pg_connect (shared->url, "query", err, errlen);
    if (!self->query_conn) {
        s_destroy ((void **) &self);
        return NULL;
    }
    pg_query_refresh_status (shared, self->query_conn);
    *info = (index_info_t) { .applied_lsn = 0, .next_seq = shared->seq_next, .boots = shared->broker_id };
    const char *password = getenv ("PGPASSWORD")? "PGPASSWORD": getenv ("PGPASSFILE")? "PGPASSFILE": "~/.pgpass or none";
    herald_info ("PostgreSQL store open", "broker_id=%" PRIu64 " host=%s takeover_timeout_ms=%" PRId64
                 " password_from=\"%s\"", shared->broker_id, shared->host, shared->takeover_ms, password);
    return self;
}

//  --------------------------------------------------------------------------
//  The facade

static int
s_recover (void *impl, index_count_fn *counts, index_key_fn *keys, void *ctx, char *err, size_t errlen)
{
    s_store_t *self = impl;
    PGconn *conn = self->query_conn;
    if (counts) {
        PGresult *res = s_exec (conn, "SELECT channel, sum (pending), sum (done), sum (dead) FROM herald.counts"
                                " WHERE channel <> '' GROUP BY channel", 0, NULL, "read counts", err, errlen);
        if (!res)
            return -1;
        for (int r = 0; r < PQntuples (res); r++)
            counts (ctx, PQgetvalue (res, r, 0), s_int (res, r, 1), s_int (res, r, 2), s_int (res, r, 3));
        PQclear (res);
    }
    if (!keys)
        return 0;
    /*  Every stored key, row by row (a big table is not held twice). */
    if (PQsendQuery (conn, "SELECT seq, dedup_key FROM herald.events") != 1 || PQsetSingleRowMode (conn) != 1) {
        char why[1024];
        snprintf (err, errlen, "PostgreSQL store: read keys: %s", pg_error (conn, NULL, why, sizeof why));
        return -1;
    }
    int rc = 0;
    PGresult *res;
    while ((res = PQgetResult (conn))) {
        ExecStatusType status = PQresultStatus (res);
        if (status == PGRES_SINGLE_TUPLE)
            keys (ctx, (uint64_t) s_int (res, 0, 0), PQgetvalue (res, 0, 1), (size_t) PQgetlength (res, 0, 1));
        else
        if (status != PGRES_TUPLES_OK && rc == 0) {
            char why[1024];
            snprintf (err, errlen, "PostgreSQL store: read keys: %s", pg_error (conn, res, why, sizeof why));
            rc = -1;
        }
        PQclear (res);
    }
    return rc;
}

static int
s_start (void *impl, char *err, size_t errlen)
{
    s_store_t *self = impl;
    self->writer = pg_writer_new (&self->shared, self->writer_conn, self->metrics);
    self->writer_conn = NULL;
    self->query = self->writer? pg_query_new (&self->shared, self->query_conn): NULL;
    if (self->writer)
        self->query_conn = NULL;
    if (!self->writer || !self->query) {
        snprintf (err, errlen, "PostgreSQL store: out of memory");
        return -1;
    }
    if (pg_writer_start (self->writer, err, errlen) != 0 || pg_query_start (self->query, err, errlen) != 0)
        return -1;
    return 0;
}

static void
s_destroy (void **impl_p)
{
    s_store_t *self = *impl_p;
    if (!self)
        return;
    /*  The writer first (what is staged is committed, outcomes fenced by
        our ownership), then the query thread frees what we hold. */
    pg_writer_destroy (&self->writer);
    if (self->query)
        pg_query_destroy (&self->query);
    else
    if (self->registered) {
        PGconn *conn = self->query_conn? self->query_conn: self->writer_conn;
        char broker[24];
        snprintf (broker, sizeof broker, "%" PRIu64, self->shared.broker_id);
        const char *values[1] = { broker };
        if (conn)
            PQclear (PQexecParams (conn, "DELETE FROM herald.brokers WHERE id = $1", 1, NULL, values, NULL, NULL, 0));
    }
    if (self->writer_conn)
        PQfinish (self->writer_conn);
    if (self->query_conn)
        PQfinish (self->query_conn);
    pg_shared_t *shared = &self->shared;
    while (shared->replies) {
        index_msg_t *next = shared->replies->next;
        index_msg_destroy (&shared->replies);
        shared->replies = next;
    }
    free (shared->status_json);
    if (shared->reply_fd >= 0)
        close (shared->reply_fd);
    if (shared->wake_fd >= 0)
        close (shared->wake_fd);
    pthread_mutex_destroy (&shared->lock);
    free (self);
    *impl_p = NULL;
}

static uint64_t
s_append (void *impl, const void *payload, uint32_t len)
{
    s_store_t *self = impl;
    return pg_writer_append (self->writer, payload, len, 0);
}

static uint64_t
s_append_event (void *impl, const void *payload, uint32_t len, uint32_t held)
{
    s_store_t *self = impl;
    return pg_writer_append (self->writer, payload, len, held);
}

static journal_status_t
s_append_status (void *impl)
{
    s_store_t *self = impl;
    return pg_writer_status (self->writer);
}

static const char *
s_errstr (void *impl)
{
    s_store_t *self = impl;
    return pg_writer_errstr (self->writer);
}

static void
s_flush (void *impl)
{
    s_store_t *self = impl;
    pg_writer_flush (self->writer);
}

/*  The committed position, and the word for the ACKs it lets out: the
    lowest of the current one and of the batches committed since the
    loop was last caught up (a batch that reached less, its wait for the
    standby cancelled or synchronous_standby_names cleared, is never ACKed
    with more). The low is forgotten only once two calls in a row found
    everything committed (the stop path calls this in a loop before the
    core is told: a call the core does not hear must not lose it). */
static uint64_t
s_durable (void *impl)
{
    s_store_t *self = impl;
    pthread_mutex_lock (&self->shared.lock);
    uint64_t durable = pg_writer_durable (self->writer);
    int low = self->shared.durability_low;
    self->shared.durability_low = -1;
    if (low >= 0 && (self->durability_low < 0 || low < self->durability_low))
        self->durability_low = low;
    if (self->durability_low >= 0 && self->durability_low < pg_durability_rank (self->shared.durability))
        snprintf (self->durability, sizeof self->durability, "%s", pg_durability_named (self->durability_low));
    else
        snprintf (self->durability, sizeof self->durability, "%s", self->shared.durability);
    pthread_mutex_unlock (&self->shared.lock);
    if (durable == self->durable_seen && durable == pg_writer_end (self->writer))
        self->durability_low = -1;
    self->durable_seen = durable;
    return durable;
}

static uint64_t
s_end (void *impl)
{
    s_store_t *self = impl;
    return pg_writer_end (self->writer);
}

static int
s_journal_fd (void *impl)
{
    s_store_t *self = impl;
    return pg_writer_fd (self->writer);
}

static void
s_journal_clear (void *impl)
{
    s_store_t *self = impl;
    pg_writer_clear_fd (self->writer);
}

static void
s_post (void *impl, index_msg_t *msg)
{
    s_store_t *self = impl;
    if (msg->min_lsn == UINT64_MAX)
        msg->min_lsn = pg_writer_end (self->writer);
    pg_query_post (self->query, msg);
}

static index_msg_t *
s_take (void *impl)
{
    s_store_t *self = impl;
    pg_shared_t *shared = &self->shared;
    pthread_mutex_lock (&shared->lock);
    index_msg_t *msg = shared->replies;
    if (msg) {
        shared->replies = msg->next;
        if (!shared->replies)
            shared->replies_tail = NULL;
        msg->next = NULL;
    }
    else {
        uint64_t value;
        ssize_t n = read (shared->reply_fd, &value, sizeof value);
        (void) n;
    }
    pthread_mutex_unlock (&shared->lock);
    return msg;
}

static int
s_index_fd (void *impl)
{
    s_store_t *self = impl;
    return self->shared.reply_fd;
}

static void
s_set_retention (void *impl, int64_t retention_ms)
{
    s_store_t *self = impl;
    __atomic_store_n (&self->shared.retention_ms, retention_ms, __ATOMIC_RELAXED);
}

/*  Status: pending, done and dead summed over every broker (in flight and
    retrying are this broker's); the living brokers. */
static void
s_status (void *impl, json_t *reply)
{
    s_store_t *self = impl;
    pg_shared_t *shared = &self->shared;
    pthread_mutex_lock (&shared->lock);
    json_t *cluster = shared->status_json? json_loads (shared->status_json, 0, NULL): NULL;
    pthread_mutex_unlock (&shared->lock);
    json_t *broker = json_object_get (reply, "broker");
    json_t *store = json_pack ("{s:s, s:I, s:s, s:b}", "kind", "postgresql", "broker_id",
                               (json_int_t) shared->broker_id, "durability", s_durability (impl),
                               "connected", pg_writer_status (self->writer) != JOURNAL_UNAVAILABLE);
    if (cluster) {
        json_object_set (store, "brokers", json_object_get (cluster, "brokers"));
        json_object_set (broker, "events", json_object_get (cluster, "events"));
        json_t *sums = json_object_get (cluster, "channels");
        size_t i;
        json_t *channel;
        json_array_foreach (json_object_get (reply, "channels"), i, channel) {
            json_t *sum = json_object_get (sums, json_string_value (json_object_get (channel, "name")));
            json_int_t mine = json_integer_value (json_object_get (channel, "in_flight"))
                            + json_integer_value (json_object_get (channel, "retrying"));
            json_int_t pending = json_integer_value (json_object_get (sum, "pending")) - mine;
            json_object_set_new (channel, "pending", json_integer (pending > 0? pending: 0));
            json_object_set_new (channel, "done", json_integer (json_integer_value (json_object_get (sum, "done"))));
            json_object_set_new (channel, "dead", json_integer (json_integer_value (json_object_get (sum, "dead"))));
        }
        json_decref (cluster);
    }
    json_object_set_new (broker, "postgresql", store);
    json_object_set_new (broker, "journal_bytes", json_integer (0));
    json_object_set_new (broker, "index_bytes", json_integer (0));
    json_object_set_new (broker, "index_lag_bytes", json_integer (0));
}

static uint64_t
s_next_seq (void *impl)
{
    s_store_t *self = impl;
    pg_shared_t *shared = &self->shared;
    uint64_t seq = 0;
    bool wake = false;
    pthread_mutex_lock (&shared->lock);
    if (shared->seq_next >= shared->seq_end && shared->spare_count > 0) {
        shared->seq_next = shared->spares[0];
        shared->seq_end = shared->seq_next + PG_SEQ_BLOCK;
        shared->spare_count--;
        memmove (shared->spares, shared->spares + 1, (size_t) shared->spare_count * sizeof shared->spares[0]);
        shared->spare_wanted = wake = true;
    }
    if (shared->seq_next < shared->seq_end)
        seq = shared->seq_next++;
    else
        shared->spare_wanted = wake = true;
    pthread_mutex_unlock (&shared->lock);
    if (wake)
        pg_wake (shared->wake_fd);
    return seq;
}

static int
s_commit_result (void *impl, uint64_t lsn, store_commit_t *out)
{
    s_store_t *self = impl;
    return pg_writer_commit_result (self->writer, lsn, out);
}

/*  The word s_durable took with the position it returned. */
static const char *
s_durability (void *impl)
{
    s_store_t *self = impl;
    if (!self->durability[0]) {
        pthread_mutex_lock (&self->shared.lock);
        snprintf (self->durability, sizeof self->durability, "%s", self->shared.durability);
        pthread_mutex_unlock (&self->shared.lock);
    }
    return self->durability;
}

const store_ops_t store_pg_ops = {
    .shared = true,
    .recover = s_recover,
    .start = s_start,
    .destroy = s_destroy,
    .append = s_append,
    .append_status = s_append_status,
    .errstr = s_errstr,
    .flush = s_flush,
    .durable = s_durable,
    .end = s_end,
    .journal_fd = s_journal_fd,
    .journal_clear = s_journal_clear,
    .post = s_post,
    .take = s_take,
    .index_fd = s_index_fd,
    .status = s_status,
    .set_retention = s_set_retention,
    .next_seq = s_next_seq,
    .append_event = s_append_event,
    .commit_result = s_commit_result,
    .durability = s_durability,
};
