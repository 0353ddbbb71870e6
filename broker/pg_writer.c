/*  pg_writer: staged records committed to PostgreSQL by a thread of their
    own, one transaction per batch (see pg_writer.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "herald_clock.h"
#include "herald_log.h"
#include "herald_proto.h"
#include "pg_writer.h"
#include "record.h"

#define S_STAGE_MAX     (16u << 20)     /* staged bytes before appends are refused (busy) */
#define S_HEAD          16              /* a staged record: its length, held places, end position */
#define S_RETRIES       3               /* a batch failed by a deadlock or serialization is tried again */
#define S_MAX_DELTAS    64              /* channels whose counts one batch changes */

typedef struct {
    unsigned char *data;
    size_t len, cap;
} s_buf_t;

/*  What became of an event record that was not simply stored. */
typedef struct s_result {
    struct s_result *next;
    uint64_t lsn;
    store_commit_kind_t kind;
    uint64_t seq;
    char event_id[129];
    char *key;
    size_t key_len;
    int code;
    char reason[256];
} s_result_t;

/*  A record to write again (an outcome or an operator's command of a batch
    that did not commit). */
typedef struct s_redo {
    struct s_redo *next;
    uint32_t len;
    unsigned char data[];
} s_redo_t;

struct pg_writer {
    pg_shared_t *shared;
    PGconn *conn;                       /* the thread's; NULL while disconnected */
    herald_metrics_t *metrics;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    bool busy;                          /* the thread holds a batch */
    bool flush_wanted;                  /* hand over what is staged once the batch in hand is done */
    s_buf_t stage, batch;
    uint64_t end;                       /* loop: position past the last record staged */
    _Atomic uint64_t durable;
    _Atomic bool connected;
    int event_fd;
    char err[1024];                     /* why appends are refused (guarded by lock) */
    s_result_t *results, *results_tail; /* guarded by lock, in position order */
    char *last_key;                     /* the key lent by the last commit_result (loop) */

    /*  The thread's own. */
    s_redo_t *redo, *redo_tail;
    uint64_t *unknown;                  /* events whose commit is not known: their tasks are freed */
    size_t unknown_count, unknown_cap;
    int64_t next_connect, backoff;
    bool lost_logged;
    char conn_word[16];                 /* the connection's durability word (pg_durability) */
    char batch_word[16];                /* the last batch's, when it committed; else empty */
    unsigned warnings;                  /* WARNINGs the server sent on the connection */
    char warning[512];                  /* the last one */
};

//  --------------------------------------------------------------------------
//  A batch, decoded

typedef struct {
    uint64_t lsn;                       /* position past the record */
    uint32_t held;
    record_event_t e;
    bool stored;
    uint64_t dup_seq;
    char dup_id[129];
} s_event_t;

typedef struct {
    record_outcome_t o;
    size_t order;
} s_outcome_t;

typedef struct {
    record_type_t type;
    record_admin_t a;
    index_msg_t *note;                  /* INDEX_RETRIED / INDEX_PURGED */
} s_admin_t;

typedef struct {
    char channel[HERALD_NAME_MAX];
    int64_t pending, done, dead, events;
} s_delta_t;

typedef struct {
    s_event_t *events;
    size_t event_count;
    s_outcome_t *outcomes;
    size_t outcome_count;
    s_admin_t *admins;
    size_t admin_count;
    s_delta_t deltas[S_MAX_DELTAS];
    int delta_count;
    char sqlstate[6];
    char error[1024];
    bool had_redo;
    char durability[16];                /* what its COMMIT reached (s_round2) */
} s_work_t;

//  --------------------------------------------------------------------------
//  Small things

static void
s_buf_free (s_buf_t *buf)
{
    free (buf->data);
    *buf = (s_buf_t) { 0 };
}

static size_t
s_padded (uint32_t len)
{
    return S_HEAD + (((size_t) len + 7) & ~(size_t) 7);
}

static void
s_put_u32 (unsigned char *p, uint32_t v)
{
    memcpy (p, &v, sizeof v);
}

static uint32_t
s_get_u32 (const unsigned char *p)
{
    uint32_t v;
    memcpy (&v, p, sizeof v);
    return v;
}

static uint64_t
s_get_u64 (const unsigned char *p)
{
    uint64_t v;
    memcpy (&v, p, sizeof v);
    return v;
}

static s_delta_t *
s_delta (s_work_t *work, const char *channel, size_t len)
{
    if (len >= HERALD_NAME_MAX)
        len = HERALD_NAME_MAX - 1;
    for (int i = 0; i < work->delta_count; i++)
        if (strlen (work->deltas[i].channel) == len && memcmp (work->deltas[i].channel, channel, len) == 0)
            return &work->deltas[i];
    if (work->delta_count == S_MAX_DELTAS)
        return NULL;
    s_delta_t *d = &work->deltas[work->delta_count++];
    memset (d, 0, sizeof *d);
    memcpy (d->channel, channel, len);
    return d;
}

static void
s_count (s_work_t *work, const char *channel, int from_state, int to_state)
{
    s_delta_t *d = s_delta (work, channel, strlen (channel));
    if (!d)
        return;
    int64_t *cells[] = { &d->pending, &d->done, &d->dead };
    if (from_state >= 0 && from_state <= 2)
        (*cells[from_state])--;
    if (to_state >= 0 && to_state <= 2)
        (*cells[to_state])++;
}

static void
s_add_note_count (index_msg_t *note, const char *channel)
{
    for (int i = 0; i < note->channel_count; i++)
        if (strcmp (note->channels[i], channel) == 0) {
            note->channel_counts[i]++;
            return;
        }
    if (note->channel_count < INDEX_MAX_CHANNELS) {
        snprintf (note->channels[note->channel_count], sizeof note->channels[0], "%s", channel);
        note->channel_counts[note->channel_count++] = 1;
    }
}

/*  The event's fan-out, space separated. */
static void
s_channels (const record_event_t *e, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < e->fanout && n < size; i++)
        n += (size_t) snprintf (out + n, size - n, "%s%.*s", i? " ": "", (int) e->channels[i].len, e->channels[i].ptr);
}

//  --------------------------------------------------------------------------
//  Connection

static void
s_lost (pg_writer_t *self, const char *why)
{
    if (!self->lost_logged) {
        herald_error ("PostgreSQL store: connection lost: publishes are refused until it is back", "role=writer"
                      " error=\"%s\"", why);
        self->lost_logged = true;
    }
    pthread_mutex_lock (&self->lock);
    snprintf (self->err, sizeof self->err, "PostgreSQL unreachable: %s", why);
    pthread_mutex_unlock (&self->lock);
    if (self->conn)
        PQfinish (self->conn);
    self->conn = NULL;
    atomic_store (&self->connected, false);
    if (!self->next_connect || self->backoff == 0) {
        self->backoff = PG_RECONNECT_MIN_MS;
        self->next_connect = herald_clock_mono_ms ();
    }
}

/*  The server's notices on the writer's connection: logged (libpq would
    print them on stderr), and WARNINGs counted, for s_round2: a COMMIT
    whose wait for the synchronous standby was cancelled (pg_cancel_backend,
    statement_timeout) returns success with a WARNING "the transaction has
    already committed locally, but might not have been replicated". */
static void
s_notice (void *arg, const PGresult *res)
{
    pg_writer_t *self = arg;
    const char *severity = PQresultErrorField (res, PG_DIAG_SEVERITY_NONLOCALIZED);
    char text[512];
    snprintf (text, sizeof text, "%s", PQresultErrorMessage (res));
    for (char *c = text; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '"')
            *c = ' ';
    if (severity && strcmp (severity, "WARNING") == 0) {
        self->warnings++;
        snprintf (self->warning, sizeof self->warning, "%s", text);
        herald_warn ("PostgreSQL store: the server warns", "role=writer warning=\"%s\"", text);
    }
    else
        herald_info ("PostgreSQL store: the server notes", "role=writer notice=\"%s\"", text);
}

/*  A fresh connection: its durability word, pipeline mode. */
static int
s_adopt (pg_writer_t *self, PGconn *conn, char *err, size_t errlen)
{
    char durability[16];
    pg_durability (conn, durability, sizeof durability);
    snprintf (self->conn_word, sizeof self->conn_word, "%s", durability);
    PQsetNoticeReceiver (conn, s_notice, self);
    if (PQenterPipelineMode (conn) != 1) {
        pg_error (conn, NULL, err, errlen);
        return -1;
    }
    pthread_mutex_lock (&self->shared->lock);
    if (strcmp (self->shared->durability, durability) != 0) {
        if (strcmp (durability, "commit-async") == 0)
            herald_warn ("PostgreSQL store: synchronous_commit is off: an ACK does not mean the event is on disk"
                         " (durability commit-async)", NULL);
        else
            herald_info ("PostgreSQL store: ACKs follow the commit", "durability=%s", durability);
        snprintf (self->shared->durability, sizeof self->shared->durability, "%s", durability);
    }
    pthread_mutex_unlock (&self->shared->lock);
    self->conn = conn;
    self->backoff = 0;
    self->next_connect = 0;
    atomic_store (&self->connected, true);
    return 0;
}

static void
s_try_connect (pg_writer_t *self)
{
    int64_t now = herald_clock_mono_ms ();
    if (self->conn || now < self->next_connect)
        return;
    char err[1024];
    PGconn *conn = pg_connect (self->shared->url, "writer", err, sizeof err);
    if (conn && s_adopt (self, conn, err, sizeof err) != 0) {
        PQfinish (conn);
        conn = NULL;
    }
    if (!conn) {
        self->backoff = self->backoff? self->backoff * 2: PG_RECONNECT_MIN_MS;
        if (self->backoff > PG_RECONNECT_MAX_MS)
            self->backoff = PG_RECONNECT_MAX_MS;
        self->next_connect = now + self->backoff;
        pthread_mutex_lock (&self->lock);
        snprintf (self->err, sizeof self->err, "%s", err);
        pthread_mutex_unlock (&self->lock);
        return;
    }
    if (self->lost_logged)
        herald_info ("PostgreSQL store: connection back: publishes are taken again", "role=writer");
    self->lost_logged = false;
}

//  --------------------------------------------------------------------------
//  Pipelined statements

typedef struct {
    PGconn *conn;
    int sent;
    bool failed;                        /* a statement failed: the transaction is aborted */
    s_work_t *work;
} s_pipe_t;

static int
s_send (s_pipe_t *pipe, const char *sql, int n, const char *const *values)
{
    if (PQsendQueryParams (pipe->conn, sql, n, NULL, values, NULL, NULL, 0) != 1)
        return -1;
    pipe->sent++;
    return 0;
}

/*  The next statement's result (the caller clears it); NULL when the
    connection is gone. A failed statement is noted (its SQLSTATE and
    message, the first one). */
static PGresult *
s_result (s_pipe_t *pipe)
{
    PGresult *res = PQgetResult (pipe->conn);
    if (!res)
        return NULL;
    PGresult *extra;
    while ((extra = PQgetResult (pipe->conn)))
        PQclear (extra);
    ExecStatusType status = PQresultStatus (res);
    if (status == PGRES_FATAL_ERROR || status == PGRES_PIPELINE_ABORTED) {
        if (!pipe->failed && status == PGRES_FATAL_ERROR) {
            const char *state = PQresultErrorField (res, PG_DIAG_SQLSTATE);
            snprintf (pipe->work->sqlstate, sizeof pipe->work->sqlstate, "%s", state? state: "");
            pg_error (pipe->conn, res, pipe->work->error, sizeof pipe->work->error);
        }
        pipe->failed = true;
    }
    return res;
}

/*  Sends the sync and reads it. 0, or -1 when the connection is gone. */
static int
s_sync (s_pipe_t *pipe)
{
    if (PQpipelineSync (pipe->conn) != 1)
        return -1;
    return 0;
}

static int
s_read_sync (s_pipe_t *pipe)
{
    PGresult *res = PQgetResult (pipe->conn);
    bool ok = res && PQresultStatus (res) == PGRES_PIPELINE_SYNC;
    PQclear (res);
    return ok && !pg_lost (pipe->conn)? 0: -1;
}

/*  A round that could not be sent whole (out of memory): what was sent is
    read and rolled back. */
static void
s_abort (s_pipe_t *pipe)
{
    if (s_sync (pipe) == 0) {
        for (int i = 0; i < pipe->sent; i++)
            PQclear (s_result (pipe));
        s_read_sync (pipe);
    }
    pipe->sent = 0;
}

/*  A lone statement, its result dropped (ROLLBACK). */
static void
s_lone (PGconn *conn, const char *sql)
{
    s_work_t work;
    memset (&work, 0, sizeof work);
    s_pipe_t pipe = { .conn = conn, .work = &work };
    if (s_send (&pipe, sql, 0, NULL) == 0 && s_sync (&pipe) == 0) {
        PQclear (s_result (&pipe));
        s_read_sync (&pipe);
    }
}

//  --------------------------------------------------------------------------
//  The statements

static const char *s_sql_events =
    "WITH i AS (SELECT * FROM unnest ($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
    "                                 $6::text[], $7::bigint[], $8::text[], $9::text[], $10::int[])"
    "           AS i (seq, uid, id, source, type, dedup_key, received_at, channels, body, held)),"
    " e AS (INSERT INTO herald.events (seq, uid, id, source, type, dedup_key, received_at, channels, broker, body)"
    "       SELECT seq, uid, id, source, type, dedup_key, received_at, channels, $11, body FROM i"
    "       ORDER BY dedup_key"
    "       ON CONFLICT (dedup_key) DO NOTHING RETURNING seq),"
    " t AS (INSERT INTO herald.tasks (seq, ch, channel, updated_at, owner)"
    "       SELECT i.seq, c.ord - 1, c.name, i.received_at,"
    "              CASE WHEN (i.held >> (c.ord - 1)::int) & 1 = 1 THEN $11::bigint END"
    "       FROM e JOIN i ON i.seq = e.seq,"
    "            unnest (string_to_array (i.channels, ' ')) WITH ORDINALITY AS c (name, ord))"
    " SELECT seq FROM e";

static const char *s_sql_outcomes =
    "WITH i AS (SELECT * FROM unnest ($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[], $6::bigint[],"
    "                                 $7::bigint[], $8::text[], $9::bigint[])"
    "           AS i (seq, ch, state, attempts, throttled, not_before, retry_delay, last_error, at)),"
    " u AS (UPDATE herald.tasks t SET state = i.state, attempts = i.attempts, throttled = i.throttled,"
    "              not_before = i.not_before, retry_delay = i.retry_delay, last_error = i.last_error,"
    "              updated_at = i.at, owner = CASE WHEN i.state = 0 THEN t.owner END"
    "       FROM i WHERE t.seq = i.seq AND t.ch = i.ch AND t.owner = $10 AND t.state = 0"
    "       RETURNING t.seq, t.ch, t.channel, i.state),"
    " a AS (INSERT INTO herald.attempts (seq, ch, attempt, at, outcome, error)"
    "       SELECT h.seq, h.ch, h.attempt, h.at, h.outcome, h.error"
    "       FROM unnest ($11::bigint[], $12::int[], $13::int[], $14::bigint[], $15::text[], $16::text[])"
    "            AS h (seq, ch, attempt, at, outcome, error)"
    "       JOIN u ON u.seq = h.seq AND u.ch = h.ch"
    "       ON CONFLICT DO NOTHING)"
    " SELECT channel, state FROM u";

/*  An operator's command: the head, the selector (s_selector), the tail;
    $1 the selector's value, $2 the time. */
static const char *s_sql_retry[2] = {
    "WITH s AS (SELECT t.seq, t.ch FROM herald.tasks t JOIN herald.events e ON e.seq = t.seq"
    "           WHERE t.state = 2 AND ",
    " ORDER BY t.seq, t.ch FOR UPDATE OF t)"
    " UPDATE herald.tasks t SET state = 0, attempts = 0, throttled = 0, not_before = 0, retry_delay = 0,"
    "        requeued = nextval ('herald.requeue_serial'), owner = NULL, claim = 0, updated_at = $2"
    " FROM s WHERE t.seq = s.seq AND t.ch = s.ch RETURNING t.channel"
};

static const char *s_sql_purge[2] = {
    "WITH d AS (DELETE FROM herald.tasks t USING herald.events e"
    "           WHERE e.seq = t.seq AND t.state = 2 AND ",
    " AND $2::bigint IS NOT NULL RETURNING t.seq, t.ch, t.channel),"
    " a AS (DELETE FROM herald.attempts a USING d WHERE a.seq = d.seq AND a.ch = d.ch)"
    " SELECT channel FROM d"
};

static const char *
s_selector (const record_admin_t *a)
{
    if (a->task_id.len)
        return "e.uid || '.' || t.channel = $1";
    if (a->channel.len)
        return "t.channel = $1";
    return "$1::text IS NULL";
}

//  --------------------------------------------------------------------------
//  Round 1: the batch's statements

static int
s_cmp_outcome (const void *a, const void *b)
{
    const s_outcome_t *x = a, *y = b;
    if (x->o.seq != y->o.seq)
        return x->o.seq < y->o.seq? -1: 1;
    if (x->o.ch != y->o.ch)
        return x->o.ch < y->o.ch? -1: 1;
    return x->order < y->order? -1: x->order > y->order;
}

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y? -1: x > y;
}

/*  Sends the events' statement. */
static int
s_send_events (pg_writer_t *self, s_pipe_t *pipe, s_work_t *work, pg_array_t *arrays)
{
    for (size_t i = 0; i < work->event_count; i++) {
        const record_event_t *e = &work->events[i].e;
        char channels[RECORD_MAX_FANOUT * HERALD_NAME_MAX];
        s_channels (e, channels, sizeof channels);
        pg_array_int (&arrays[0], (int64_t) e->seq);
        pg_array_text (&arrays[1], e->uid, strlen (e->uid));
        pg_array_text (&arrays[2], e->id.ptr, e->id.len);
        pg_array_text (&arrays[3], e->source.ptr, e->source.len);
        pg_array_text (&arrays[4], e->type.ptr, e->type.len);
        pg_array_text (&arrays[5], e->dedup_key.ptr, e->dedup_key.len);
        pg_array_int (&arrays[6], e->received_at);
        pg_array_text (&arrays[7], channels, strlen (channels));
        pg_array_text (&arrays[8], e->body.ptr, e->body.len);
        pg_array_int (&arrays[9], (int64_t) work->events[i].held);
    }
    char broker[24];
    snprintf (broker, sizeof broker, "%" PRIu64, self->shared->broker_id);
    const char *values[11];
    for (int i = 0; i < 10; i++)
        if (!(values[i] = pg_array_end (&arrays[i])))
            return -1;
    values[10] = broker;
    return s_send (pipe, s_sql_events, 11, values);
}

/*  Sends the outcomes' statement: the last outcome of each task sets its
    row, every failed attempt goes to the history. */
static int
s_send_outcomes (pg_writer_t *self, s_pipe_t *pipe, s_work_t *work, pg_array_t *arrays)
{
    qsort (work->outcomes, work->outcome_count, sizeof *work->outcomes, s_cmp_outcome);
    for (size_t i = 0; i < work->outcome_count; i++) {
        const record_outcome_t *o = &work->outcomes[i].o;
        if (o->log_attempt) {
            pg_array_int (&arrays[9], (int64_t) o->seq);
            pg_array_int (&arrays[10], o->ch);
            pg_array_int (&arrays[11], o->attempts);
            pg_array_int (&arrays[12], o->at);
            pg_array_text (&arrays[13], o->outcome.ptr, o->outcome.len);
            pg_array_text (&arrays[14], o->error.ptr, o->error.len);
        }
        bool last = i + 1 == work->outcome_count || work->outcomes[i + 1].o.seq != o->seq
                 || work->outcomes[i + 1].o.ch != o->ch;
        if (!last)
            continue;
        int state = o->kind == RECORD_DONE? 1: o->kind == RECORD_DEAD? 2: 0;
        pg_array_int (&arrays[0], (int64_t) o->seq);
        pg_array_int (&arrays[1], o->ch);
        pg_array_int (&arrays[2], state);
        pg_array_int (&arrays[3], o->attempts);
        pg_array_int (&arrays[4], o->throttled);
        pg_array_int (&arrays[5], o->not_before);
        pg_array_int (&arrays[6], o->delay);
        if (state == 1)
            pg_array_null (&arrays[7]);
        else
            pg_array_text (&arrays[7], o->error.ptr, o->error.len);
        pg_array_int (&arrays[8], o->at);
    }
    char broker[24];
    snprintf (broker, sizeof broker, "%" PRIu64, self->shared->broker_id);
    const char *values[16];
    for (int i = 0; i < 15; i++)
        if (!(values[i < 9? i: i + 1] = pg_array_end (&arrays[i])))
            return -1;
    values[9] = broker;
    return s_send (pipe, s_sql_outcomes, 16, values);
}

static int
s_send_admin (s_pipe_t *pipe, const s_admin_t *admin)
{
    const record_admin_t *a = &admin->a;
    const char *const *parts = admin->type == RECORD_DEAD_RETRY? s_sql_retry: s_sql_purge;
    char sql[1200];
    snprintf (sql, sizeof sql, "%s%s%s", parts[0], s_selector (a), parts[1]);
    char selector[HP_MAX_ID + HERALD_NAME_MAX + 8] = "";
    if (a->task_id.len)
        snprintf (selector, sizeof selector, "%.*s", (int) a->task_id.len, a->task_id.ptr);
    else
    if (a->channel.len)
        snprintf (selector, sizeof selector, "%.*s", (int) a->channel.len, a->channel.ptr);
    char at[24];
    snprintf (at, sizeof at, "%" PRId64, a->at);
    const char *values[2] = { selector[0]? selector: NULL, at };
    return s_send (pipe, sql, 2, values);
}

/*  What a round of statements came to. */
enum {
    S_DONE = 0,
    S_FAILED = -1,                      /* a statement failed: rolled back, nothing stored */
    S_UNKNOWN = -2,                     /* the connection broke with COMMIT on the wire */
    S_UNSENT = -3                       /* the connection broke before COMMIT was sent: nothing stored */
};

/*  BEGIN, the tasks of unknown commits freed, the events, the outcomes, the
    operators' commands; then their results. S_DONE, S_FAILED or S_UNSENT. */
static int
s_round1 (pg_writer_t *self, s_work_t *work)
{
    s_pipe_t pipe = { .conn = self->conn, .work = work };
    pg_array_t arrays[15];
    memset (arrays, 0, sizeof arrays);
    int rc = s_send (&pipe, "BEGIN", 0, NULL);
    char broker[24];
    snprintf (broker, sizeof broker, "%" PRIu64, self->shared->broker_id);
    if (rc == 0 && self->unknown_count > 0) {
        pg_array_t seqs = { 0 };
        for (size_t i = 0; i < self->unknown_count; i++)
            pg_array_int (&seqs, (int64_t) self->unknown[i]);
        const char *values[2] = { broker, pg_array_end (&seqs) };
        rc = values[1]? s_send (&pipe, "UPDATE herald.tasks SET owner = NULL, claim = 0"
                                " WHERE owner = $1 AND seq = ANY ($2::bigint[])", 2, values): -1;
        free (seqs.text.data);
    }
    int events_at = -1, outcomes_at = -1, admins_at = -1;
    if (rc == 0 && work->event_count > 0) {
        events_at = pipe.sent;
        rc = s_send_events (self, &pipe, work, arrays);
    }
    for (int i = 0; i < 15; i++) {
        free (arrays[i].text.data);
        arrays[i] = (pg_array_t) { 0 };
    }
    if (rc == 0 && work->outcome_count > 0) {
        outcomes_at = pipe.sent;
        rc = s_send_outcomes (self, &pipe, work, arrays);
    }
    for (int i = 0; i < 15; i++)
        free (arrays[i].text.data);
    if (rc == 0 && work->admin_count > 0) {
        admins_at = pipe.sent;
        for (size_t i = 0; i < work->admin_count && rc == 0; i++)
            rc = s_send_admin (&pipe, &work->admins[i]);
    }
    if (rc == 0)
        rc = s_sync (&pipe);
    if (rc != 0) {
        snprintf (work->error, sizeof work->error, "%s", PQerrorMessage (self->conn));
        if (pg_lost (self->conn))
            return S_UNSENT;
        s_abort (&pipe);
        s_lone (self->conn, "ROLLBACK");
        return S_FAILED;
    }
    /*  Results, in the order sent. */
    uint64_t *inserted = NULL;
    size_t inserted_count = 0;
    for (int i = 0; i < pipe.sent; i++) {
        PGresult *res = s_result (&pipe);
        if (!res) {
            free (inserted);
            return S_UNSENT;
        }
        bool ok = PQresultStatus (res) == PGRES_TUPLES_OK || PQresultStatus (res) == PGRES_COMMAND_OK;
        int rows = ok? PQntuples (res): 0;
        if (ok && i == events_at && rows > 0) {
            inserted = calloc ((size_t) rows, sizeof *inserted);
            for (int r = 0; inserted && r < rows; r++)
                inserted[inserted_count++] = strtoull (PQgetvalue (res, r, 0), NULL, 10);
        }
        else
        if (ok && i == outcomes_at) {
            for (int r = 0; r < rows; r++)
                s_count (work, PQgetvalue (res, r, 0), 0, (int) strtol (PQgetvalue (res, r, 1), NULL, 10));
        }
        else
        if (ok && admins_at >= 0 && i >= admins_at) {
            s_admin_t *admin = &work->admins[i - admins_at];
            admin->note = index_msg_new (admin->type == RECORD_DEAD_RETRY? INDEX_RETRIED: INDEX_PURGED);
            for (int r = 0; r < rows; r++) {
                const char *channel = PQgetvalue (res, r, 0);
                s_count (work, channel, 2, admin->type == RECORD_DEAD_RETRY? 0: -1);
                if (admin->note)
                    s_add_note_count (admin->note, channel);
            }
        }
        PQclear (res);
    }
    if (s_read_sync (&pipe) != 0) {
        free (inserted);
        return S_UNSENT;
    }
    if (pipe.failed) {
        free (inserted);
        s_lone (self->conn, "ROLLBACK");
        return pg_lost (self->conn)? S_UNSENT: S_FAILED;
    }
    if (inserted_count > 1)         //  NULL with no event in the batch: qsort must not see it
        qsort (inserted, inserted_count, sizeof *inserted, s_cmp_u64);
    for (size_t i = 0; i < work->event_count; i++) {
        s_event_t *ev = &work->events[i];
        ev->stored = inserted && bsearch (&ev->e.seq, inserted, inserted_count, sizeof *inserted, s_cmp_u64);
        if (!ev->stored)
            continue;
        s_delta_t *d = s_delta (work, "", 0);
        if (d)
            d->events++;
        for (int f = 0; f < ev->e.fanout; f++) {
            d = s_delta (work, ev->e.channels[f].ptr, ev->e.channels[f].len);
            if (d)
                d->pending++;
        }
    }
    free (inserted);
    return S_DONE;
}

//  --------------------------------------------------------------------------
//  Round 2: duplicates named, counts, notices, COMMIT

/*  S_DONE committed, S_FAILED rolled back, S_UNKNOWN the connection broke
    with COMMIT sent, S_UNSENT before. */
static int
s_round2 (pg_writer_t *self, s_work_t *work)
{
    s_pipe_t pipe = { .conn = self->conn, .work = work };
    int rc = 0, dups_at = -1;
    pg_array_t keys = { 0 }, names = { 0 }, pending = { 0 }, done = { 0 }, dead = { 0 }, events = { 0 },
               free_channels = { 0 };
    size_t dup_count = 0;
    for (size_t i = 0; i < work->event_count; i++)
        if (!work->events[i].stored) {
            pg_array_text (&keys, work->events[i].e.dedup_key.ptr, work->events[i].e.dedup_key.len);
            dup_count++;
        }
    if (dup_count > 0) {
        dups_at = pipe.sent;
        const char *values[1] = { pg_array_end (&keys) };
        rc = values[0]? s_send (&pipe, "SELECT dedup_key, seq, id FROM herald.events"
                                " WHERE dedup_key = ANY ($1::text[])", 1, values): -1;
    }
    if (rc == 0 && work->delta_count > 0) {
        for (int i = 0; i < work->delta_count; i++) {
            s_delta_t *d = &work->deltas[i];
            pg_array_text (&names, d->channel, strlen (d->channel));
            pg_array_int (&pending, d->pending);
            pg_array_int (&done, d->done);
            pg_array_int (&dead, d->dead);
            pg_array_int (&events, d->events);
        }
        char broker[24];
        snprintf (broker, sizeof broker, "%" PRIu64, self->shared->broker_id);
        const char *values[6] = { broker, pg_array_end (&names), pg_array_end (&pending), pg_array_end (&done),
                                  pg_array_end (&dead), pg_array_end (&events) };
        rc = values[1] && values[2] && values[3] && values[4] && values[5]
           ? s_send (&pipe, "INSERT INTO herald.counts (broker, channel, pending, done, dead, events)"
                     " SELECT $1, * FROM unnest ($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])"
                     " ON CONFLICT (broker, channel) DO UPDATE SET pending = herald.counts.pending + excluded.pending,"
                     " done = herald.counts.done + excluded.done, dead = herald.counts.dead + excluded.dead,"
                     " events = herald.counts.events + excluded.events", 6, values): -1;
    }
    /*  Free tasks just made: the brokers listening claim them. */
    uint32_t told = 0;
    char seen[RECORD_MAX_FANOUT][HERALD_NAME_MAX];
    int seen_count = 0;
    for (size_t i = 0; i < work->event_count && rc == 0; i++) {
        const s_event_t *ev = &work->events[i];
        if (!ev->stored)
            continue;
        for (int f = 0; f < ev->e.fanout; f++) {
            if (ev->held & (1u << f))
                continue;
            char name[HERALD_NAME_MAX];
            snprintf (name, sizeof name, "%.*s", (int) ev->e.channels[f].len, ev->e.channels[f].ptr);
            bool known = false;
            for (int k = 0; k < seen_count && !known; k++)
                known = strcmp (seen[k], name) == 0;
            if (known || seen_count == RECORD_MAX_FANOUT)
                continue;
            snprintf (seen[seen_count++], HERALD_NAME_MAX, "%s", name);
            pg_array_text (&free_channels, name, strlen (name));
            told++;
        }
    }
    for (size_t i = 0; i < work->admin_count && rc == 0; i++)
        if (work->admins[i].type == RECORD_DEAD_RETRY && work->admins[i].note)
            for (int c = 0; c < work->admins[i].note->channel_count; c++) {
                pg_array_text (&free_channels, work->admins[i].note->channels[c],
                               strlen (work->admins[i].note->channels[c]));
                told++;
            }
    if (rc == 0 && told > 0) {
        const char *values[1] = { pg_array_end (&free_channels) };
        rc = values[0]? s_send (&pipe, "SELECT pg_notify ('" PG_NOTIFY_CHANNEL "', c)"
                                " FROM (SELECT DISTINCT unnest ($1::text[]) AS c) n", 1, values): -1;
    }
    int commit_at = pipe.sent, settings_at = pipe.sent + 1;
    unsigned warned = self->warnings;
    if (rc == 0)
        rc = s_send (&pipe, "COMMIT", 0, NULL);
    /*  What the COMMIT waited for: the settings as the session has them
        after it (a reload reaches it at its next command, this one). Read
        nothing, or a WARNING came: no more than "commit". */
    snprintf (work->durability, sizeof work->durability, "%s",
              pg_durability_rank (self->conn_word) < 1? self->conn_word: "commit");
    if (rc == 0)
        rc = s_send (&pipe, PG_DURABILITY_SQL, 0, NULL);
    if (rc == 0)
        rc = s_sync (&pipe);
    pg_array_t *all[] = { &keys, &names, &pending, &done, &dead, &events, &free_channels };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free (all[i]->text.data);
    if (rc != 0) {
        snprintf (work->error, sizeof work->error, "%s", PQerrorMessage (self->conn));
        if (pg_lost (self->conn))
            return commit_at < pipe.sent? S_UNKNOWN: S_UNSENT;
        s_abort (&pipe);
        s_lone (self->conn, "ROLLBACK");
        return S_FAILED;
    }
    bool committed = false;
    for (int i = 0; i < pipe.sent; i++) {
        PGresult *res = s_result (&pipe);
        if (!res)
            return S_UNKNOWN;
        ExecStatusType status = PQresultStatus (res);
        if (i == dups_at && status == PGRES_TUPLES_OK) {
            for (int r = 0; r < PQntuples (res); r++) {
                const char *key = PQgetvalue (res, r, 0);
                size_t key_len = (size_t) PQgetlength (res, r, 0);
                for (size_t k = 0; k < work->event_count; k++) {
                    s_event_t *ev = &work->events[k];
                    if (!ev->stored && ev->e.dedup_key.len == key_len
                    &&  memcmp (ev->e.dedup_key.ptr, key, key_len) == 0) {
                        ev->dup_seq = strtoull (PQgetvalue (res, r, 1), NULL, 10);
                        snprintf (ev->dup_id, sizeof ev->dup_id, "%s", PQgetvalue (res, r, 2));
                    }
                }
            }
        }
        if (i == commit_at)
            committed = status == PGRES_COMMAND_OK && !pipe.failed;
        if (i == settings_at && status == PGRES_TUPLES_OK && PQntuples (res) == 1)
            pg_durability_word (PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1), work->durability,
                                sizeof work->durability);
        PQclear (res);
    }
    if (self->warnings != warned && pg_durability_rank (work->durability) > 1) {
        herald_warn ("PostgreSQL store: the server warned during the commit (its wait for the synchronous"
                     " standby cancelled?): this batch is ACKed with durability commit", "warning=\"%s\"",
                     self->warning);
        snprintf (work->durability, sizeof work->durability, "commit");
    }
    if (s_read_sync (&pipe) != 0)
        return committed? S_DONE: S_UNKNOWN;
    if (!committed) {
        if (pg_lost (self->conn))
            return committed? S_DONE: S_UNKNOWN;
        s_lone (self->conn, "ROLLBACK");
        return S_FAILED;
    }
    return S_DONE;
}

//  --------------------------------------------------------------------------
//  A batch

static void
s_result_push (pg_writer_t *self, const s_event_t *ev, store_commit_kind_t kind, int code, const char *reason)
{
    s_result_t *result = calloc (1, sizeof *result);
    char *key = result? malloc (ev->e.dedup_key.len + 1): NULL;
    if (!key) {
        free (result);
        herald_error ("out of memory keeping a commit's result", NULL);
        return;
    }
    memcpy (key, ev->e.dedup_key.ptr, ev->e.dedup_key.len);
    key[ev->e.dedup_key.len] = '\0';
    result->lsn = ev->lsn;
    result->kind = kind;
    result->seq = ev->dup_seq;
    snprintf (result->event_id, sizeof result->event_id, "%s", ev->dup_id);
    result->key = key;
    result->key_len = ev->e.dedup_key.len;
    result->code = code;
    snprintf (result->reason, sizeof result->reason, "%s", reason? reason: "");
    pthread_mutex_lock (&self->lock);
    if (self->results_tail)
        self->results_tail->next = result;
    else
        self->results = result;
    self->results_tail = result;
    pthread_mutex_unlock (&self->lock);
}

static void
s_refuse_events (pg_writer_t *self, s_work_t *work, int code, const char *reason)
{
    for (size_t i = 0; i < work->event_count; i++)
        s_result_push (self, &work->events[i], STORE_COMMIT_REFUSED, code, reason);
}

/*  Keeps a record to write again after the reconnection. */
static void
s_redo_keep (pg_writer_t *self, const unsigned char *payload, uint32_t len)
{
    s_redo_t *redo = malloc (sizeof *redo + len);
    if (!redo) {
        herald_error ("out of memory keeping an outcome to write again: it is lost (one more delivery"
                      " under the same task id after a takeover)", NULL);
        return;
    }
    redo->next = NULL;
    redo->len = len;
    memcpy (redo->data, payload, len);
    if (self->redo_tail)
        self->redo_tail->next = redo;
    else
        self->redo = redo;
    self->redo_tail = redo;
}

static void
s_redo_clear (pg_writer_t *self)
{
    while (self->redo) {
        s_redo_t *next = self->redo->next;
        free (self->redo);
        self->redo = next;
    }
    self->redo_tail = NULL;
}

/*  Decodes a record into the work lists. -1 when it cannot be read (a bug:
    the loop encoded it). */
static int
s_decode (s_work_t *work, const unsigned char *payload, uint32_t len, uint32_t held, uint64_t lsn, size_t order)
{
    record_t rec;
    char why[256];
    if (record_decode (payload, len, &rec, why, sizeof why) != 0) {
        herald_error ("PostgreSQL store: a staged record cannot be read (a bug): skipped", "error=\"%s\"", why);
        return -1;
    }
    switch (rec.type) {
        case RECORD_EVENT:
            work->events[work->event_count++] = (s_event_t) { .lsn = lsn, .held = held, .e = rec.u.event };
            break;
        case RECORD_OUTCOME:
            work->outcomes[work->outcome_count++] = (s_outcome_t) { .o = rec.u.outcome, .order = order };
            break;
        case RECORD_DEAD_RETRY:
        case RECORD_DEAD_PURGE:
            work->admins[work->admin_count++] = (s_admin_t) { .type = rec.type, .a = rec.u.admin };
            break;
        case RECORD_ABANDON:
            /*  A shared store's brokers may serve different channels: a
                channel missing from one configuration is not abandoned. */
            break;
    }
    return 0;
}

static void
s_work_free (s_work_t *work)
{
    for (size_t i = 0; i < work->admin_count; i++)
        index_msg_destroy (&work->admins[i].note);
    free (work->events);
    free (work->outcomes);
    free (work->admins);
}

static void
s_process (pg_writer_t *self, s_buf_t *batch)
{
    /*  Count first, to size the lists. */
    size_t records = 0;
    for (s_redo_t *r = self->redo; r; r = r->next)
        records++;
    for (size_t at = 0; at + S_HEAD <= batch->len; at += s_padded (s_get_u32 (batch->data + at)))
        records++;
    s_work_t *work = calloc (1, sizeof *work);
    if (work) {
        work->events = calloc (records + 1, sizeof *work->events);
        work->outcomes = calloc (records + 1, sizeof *work->outcomes);
        work->admins = calloc (records + 1, sizeof *work->admins);
    }
    if (!work || !work->events || !work->outcomes || !work->admins) {
        herald_error ("PostgreSQL store: out of memory for a batch: its events are refused", NULL);
        if (work)
            s_work_free (work);
        free (work);
        /*  Nothing is known to the loop but the position: events get NEW
            by default, which must not happen: refuse them one by one. */
        for (size_t at = 0; at + S_HEAD <= batch->len; at += s_padded (s_get_u32 (batch->data + at))) {
            s_event_t ev;
            memset (&ev, 0, sizeof ev);
            record_t rec;
            char why[64];
            if (record_decode (batch->data + at + S_HEAD, s_get_u32 (batch->data + at), &rec, why, sizeof why) == 0
            &&  rec.type == RECORD_EVENT) {
                ev.e = rec.u.event;
                ev.lsn = s_get_u64 (batch->data + at + 8);
                s_result_push (self, &ev, STORE_COMMIT_REFUSED, HP_CODE_BUSY,
                               "broker out of memory: the event is not stored; publish it again later");
            }
        }
        return;
    }
    size_t order = 0;
    for (s_redo_t *r = self->redo; r; r = r->next)
        s_decode (work, r->data, r->len, 0, 0, order++);
    work->had_redo = self->redo != NULL;
    for (size_t at = 0; at + S_HEAD <= batch->len; at += s_padded (s_get_u32 (batch->data + at))) {
        uint32_t len = s_get_u32 (batch->data + at);
        s_decode (work, batch->data + at + S_HEAD, len, s_get_u32 (batch->data + at + 4),
                  s_get_u64 (batch->data + at + 8), order++);
    }
    int rc = S_UNSENT;
    if (self->conn) {
        int64_t started = herald_clock_mono_us ();
        for (int attempt = 0; attempt < S_RETRIES; attempt++) {
            work->delta_count = 0;
            work->sqlstate[0] = '\0';
            for (size_t i = 0; i < work->admin_count; i++)
                index_msg_destroy (&work->admins[i].note);
            rc = s_round1 (self, work);
            if (rc == S_DONE)
                rc = s_round2 (self, work);
            bool again = rc == S_FAILED && (strcmp (work->sqlstate, "40001") == 0 || strcmp (work->sqlstate, "40P01") == 0);
            if (!again)
                break;
            herald_info ("PostgreSQL store: batch rolled back by the database, written again", "sqlstate=%s",
                         work->sqlstate);
        }
        if (rc == S_DONE && self->metrics)
            herald_metrics_journal_sync (self->metrics, herald_clock_mono_us () - started);
    }
    /*  Keeps the batch's outcomes and commands (and what was kept before)
        for after the reconnection. */
    if (rc == S_UNKNOWN || rc == S_UNSENT) {
        for (size_t at = 0; at + S_HEAD <= batch->len; at += s_padded (s_get_u32 (batch->data + at))) {
            const unsigned char *payload = batch->data + at + S_HEAD;
            if (payload[0] != RECORD_EVENT && payload[0] != RECORD_ABANDON)
                s_redo_keep (self, payload, s_get_u32 (batch->data + at));
        }
    }
    self->batch_word[0] = '\0';
    if (rc == S_DONE) {
        snprintf (self->batch_word, sizeof self->batch_word, "%s", work->durability);
        for (size_t i = 0; i < work->event_count; i++) {
            s_event_t *ev = &work->events[i];
            if (ev->stored)
                continue;
            if (ev->dup_id[0])
                s_result_push (self, ev, STORE_COMMIT_DUPLICATE, 0, NULL);
            else
                s_result_push (self, ev, STORE_COMMIT_REFUSED, HP_CODE_BUSY, "busy: the event's key was"
                               " taken and released meanwhile; publish it again");
        }
        for (size_t i = 0; i < work->admin_count; i++) {
            index_msg_t *note = work->admins[i].note;
            if (!note)
                note = index_msg_new (work->admins[i].type == RECORD_DEAD_RETRY? INDEX_RETRIED: INDEX_PURGED);
            if (note) {
                note->tag = work->admins[i].a.request;
                note->code = HP_CODE_OK;
                pg_post (self->shared, note);
            }
            work->admins[i].note = NULL;
        }
        s_redo_clear (self);
        self->unknown_count = 0;
    }
    else
    if (rc == S_FAILED) {
        /*  The database refused the batch for good (not a lost connection):
            nothing of it is stored. Events are refused; outcomes and
            commands are dropped, not tried for ever (the tasks concerned
            are delivered again after a takeover). */
        char reason[256];
        snprintf (reason, sizeof reason, "storage failure: PostgreSQL refused the batch (%s); the event is not"
                  " stored: publish it again later", work->sqlstate[0]? work->sqlstate: "error");
        herald_error ("PostgreSQL store: batch refused by the database: events refused, outcomes dropped",
                      "sqlstate=%s events=%zu outcomes=%zu error=\"%s\"", work->sqlstate, work->event_count,
                      work->outcome_count, work->error);
        s_refuse_events (self, work, HP_CODE_STORAGE, reason);
        for (size_t i = 0; i < work->admin_count; i++) {
            index_msg_t *note = index_msg_new (work->admins[i].type == RECORD_DEAD_RETRY? INDEX_RETRIED
                                               : INDEX_PURGED);
            if (note) {
                note->tag = work->admins[i].a.request;
                note->code = HP_CODE_OK;
                pg_post (self->shared, note);
            }
        }
        s_redo_clear (self);
    }
    else {
        if (self->conn)
            s_lost (self, work->error[0]? work->error: "connection closed");
        if (rc == S_UNKNOWN && work->event_count > 0) {
            /*  The connection broke with the batch on the wire: its commit
                may have happened. Its events are answered "not known" and
                their tasks are freed once the connection is back (claimed
                by whoever has workers, if the commit did happen). */
            s_refuse_events (self, work, HP_CODE_BUSY, "durability unknown: the connection to the database broke"
                             " during the commit; the event may or may not be stored: publish it again (with"
                             " the same key it is stored once)");
            for (size_t i = 0; i < work->event_count; i++) {
                if (self->unknown_count == self->unknown_cap) {
                    size_t cap = self->unknown_cap? self->unknown_cap * 2: 1024;
                    uint64_t *grown = realloc (self->unknown, cap * sizeof *grown);
                    if (!grown)
                        break;
                    self->unknown = grown;
                    self->unknown_cap = cap;
                }
                self->unknown[self->unknown_count++] = work->events[i].e.seq;
            }
        }
        else
            s_refuse_events (self, work, HP_CODE_BUSY, "store unavailable: the broker cannot reach its database;"
                             " the event is not stored: publish it again later");
    }
    s_work_free (work);
    free (work);
}

//  --------------------------------------------------------------------------
//  The thread

static void *
s_thread (void *arg)
{
    pg_writer_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (true) {
        if (!self->busy && self->stopping)
            break;
        if (!self->busy) {
            struct timespec until = herald_clock_deadline (self->conn? 1000: 100);
            pthread_cond_timedwait (&self->wake, &self->lock, &until);
        }
        bool have = self->busy;
        pthread_mutex_unlock (&self->lock);
        if (!self->conn)
            s_try_connect (self);
        uint64_t end = 0;
        if (have) {
            if (self->batch.len >= S_HEAD) {
                size_t at = 0, last = 0;
                for (; at + S_HEAD <= self->batch.len; at += s_padded (s_get_u32 (self->batch.data + at)))
                    last = at;
                end = s_get_u64 (self->batch.data + last + 8);
            }
            s_process (self, &self->batch);
            /*  The batch's word with its position, together: the loop ACKs
                what is durable with the lowest word among them. */
            pthread_mutex_lock (&self->shared->lock);
            if (self->batch_word[0]) {
                int rank = pg_durability_rank (self->batch_word);
                if (self->shared->durability_low < 0 || rank < self->shared->durability_low)
                    self->shared->durability_low = rank;
                if (strcmp (self->shared->durability, self->batch_word) != 0) {
                    if (rank < pg_durability_rank (self->shared->durability))
                        herald_warn ("PostgreSQL store: ACKs promise less: the server's settings changed",
                                     "durability=%s was=%s", self->batch_word, self->shared->durability);
                    else
                        herald_info ("PostgreSQL store: ACKs follow the commit: the server's settings changed",
                                     "durability=%s was=%s", self->batch_word, self->shared->durability);
                    snprintf (self->shared->durability, sizeof self->shared->durability, "%s",
                              self->batch_word);
                }
            }
            if (end)
                atomic_store (&self->durable, end);
            pthread_mutex_unlock (&self->shared->lock);
        }
        pthread_mutex_lock (&self->lock);
        if (have) {
            if (end)
                atomic_store (&self->durable, end);
            atomic_store (&self->shared->durable, atomic_load (&self->durable));
            self->batch.len = 0;
            self->busy = false;
            if (self->flush_wanted && self->stage.len > 0) {
                s_buf_t swap = self->batch;
                self->batch = self->stage;
                self->stage = swap;
                self->busy = true;
                self->flush_wanted = false;
            }
            pg_wake (self->event_fd);
            pg_wake (self->shared->wake_fd);
        }
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

//  --------------------------------------------------------------------------
//  The owner's side

pg_writer_t *
pg_writer_new (pg_shared_t *shared, PGconn *conn, herald_metrics_t *metrics)
{
    pg_writer_t *self = calloc (1, sizeof *self);
    if (!self) {
        PQfinish (conn);
        return NULL;
    }
    self->shared = shared;
    self->metrics = metrics;
    pthread_mutex_init (&self->lock, NULL);
    herald_cond_init_monotonic (&self->wake);
    self->event_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    char err[1024];
    if (conn && s_adopt (self, conn, err, sizeof err) != 0) {
        PQfinish (conn);
        conn = NULL;
    }
    if (!conn)
        s_lost (self, "not connected yet");
    if (self->event_fd < 0) {
        pg_writer_destroy (&self);
        return NULL;
    }
    return self;
}

int
pg_writer_start (pg_writer_t *self, char *err, size_t errlen)
{
    if (pthread_create (&self->thread, NULL, s_thread, self) != 0) {
        snprintf (err, errlen, "PostgreSQL store: cannot start the writer thread");
        return -1;
    }
    pthread_setname_np (self->thread, "herald-pgwrite");
    self->started = true;
    return 0;
}

void
pg_writer_destroy (pg_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pg_writer_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        if (self->stage.len > 0) {
            if (!self->busy) {
                s_buf_t swap = self->batch;
                self->batch = self->stage;
                self->stage = swap;
                self->busy = true;
            }
            else
                self->flush_wanted = true;
        }
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->thread, NULL);
    }
    if (self->redo)
        herald_warn ("PostgreSQL store: outcomes not written at stop (the database was away): their tasks are"
                     " delivered again after a takeover", NULL);
    s_redo_clear (self);
    if (self->conn)
        PQfinish (self->conn);
    while (self->results) {
        s_result_t *next = self->results->next;
        free (self->results->key);
        free (self->results);
        self->results = next;
    }
    free (self->last_key);
    free (self->unknown);
    s_buf_free (&self->stage);
    s_buf_free (&self->batch);
    if (self->event_fd >= 0)
        close (self->event_fd);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    free (self);
    *self_p = NULL;
}

uint64_t
pg_writer_append (pg_writer_t *self, const void *payload, uint32_t len, uint32_t held)
{
    if (!atomic_load (&self->connected))
        return 0;
    size_t need = s_padded (len);
    pthread_mutex_lock (&self->lock);
    if (self->stage.len + need > S_STAGE_MAX) {
        pthread_mutex_unlock (&self->lock);
        return 0;
    }
    if (self->stage.len + need > self->stage.cap) {
        size_t cap = self->stage.cap? self->stage.cap: 65536;
        while (cap < self->stage.len + need)
            cap *= 2;
        unsigned char *grown = realloc (self->stage.data, cap);
        if (!grown) {
            pthread_mutex_unlock (&self->lock);
            return 0;
        }
        self->stage.data = grown;
        self->stage.cap = cap;
    }
    unsigned char *at = self->stage.data + self->stage.len;
    self->end += need;
    s_put_u32 (at, len);
    s_put_u32 (at + 4, held);
    memcpy (at + 8, &self->end, sizeof self->end);
    memcpy (at + S_HEAD, payload, len);
    if (need > S_HEAD + len)
        memset (at + S_HEAD + len, 0, need - S_HEAD - len);
    self->stage.len += need;
    uint64_t end = self->end;
    pthread_mutex_unlock (&self->lock);
    return end;
}

void
pg_writer_flush (pg_writer_t *self)
{
    pthread_mutex_lock (&self->lock);
    if (self->stage.len > 0) {
        if (!self->busy) {
            s_buf_t swap = self->batch;
            self->batch = self->stage;
            self->stage = swap;
            self->busy = true;
            pthread_cond_signal (&self->wake);
        }
        else
            self->flush_wanted = true;
    }
    pthread_mutex_unlock (&self->lock);
}

uint64_t
pg_writer_durable (pg_writer_t *self)
{
    return atomic_load (&self->durable);
}

uint64_t
pg_writer_end (pg_writer_t *self)
{
    return self->end;
}

bool
pg_writer_pending (pg_writer_t *self)
{
    return atomic_load (&self->durable) < self->end;
}

int
pg_writer_fd (pg_writer_t *self)
{
    return self->event_fd;
}

void
pg_writer_clear_fd (pg_writer_t *self)
{
    uint64_t value;
    ssize_t n = read (self->event_fd, &value, sizeof value);
    (void) n;
}

journal_status_t
pg_writer_status (pg_writer_t *self)
{
    if (!atomic_load (&self->connected))
        return JOURNAL_UNAVAILABLE;
    pthread_mutex_lock (&self->lock);
    bool full = self->stage.len + 65536 > S_STAGE_MAX;
    pthread_mutex_unlock (&self->lock);
    return full? JOURNAL_BUSY: JOURNAL_OK;
}

const char *
pg_writer_errstr (pg_writer_t *self)
{
    /*  The loop reads it after a refusal; the thread rewrites it only on a
        connection's loss or failure. */
    return self->err;
}

int
pg_writer_commit_result (pg_writer_t *self, uint64_t lsn, store_commit_t *out)
{
    memset (out, 0, sizeof *out);
    out->kind = STORE_COMMIT_NEW;
    pthread_mutex_lock (&self->lock);
    while (self->results && self->results->lsn < lsn) {
        /*  Answered already (cannot happen: the loop asks in order). */
        s_result_t *stale = self->results;
        self->results = stale->next;
        free (stale->key);
        free (stale);
    }
    s_result_t *result = self->results && self->results->lsn == lsn? self->results: NULL;
    if (result) {
        self->results = result->next;
        if (!self->results)
            self->results_tail = NULL;
    }
    else
    if (!self->results)
        self->results_tail = NULL;
    pthread_mutex_unlock (&self->lock);
    if (!result)
        return 0;
    free (self->last_key);
    self->last_key = result->key;
    out->kind = result->kind;
    out->seq = result->seq;
    snprintf (out->event_id, sizeof out->event_id, "%s", result->event_id);
    out->key = result->key;
    out->key_len = result->key_len;
    out->code = result->code;
    snprintf (out->reason, sizeof out->reason, "%s", result->reason);
    free (result);
    return 0;
}
