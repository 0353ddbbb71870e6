/*  pg_query: queries, claims and liveness of the PostgreSQL store (see
    pg_query.h). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald_clock.h"
#include "herald_log.h"
#include "herald_proto.h"
#include "pg_query.h"

#define S_PRUNE_BATCH       500
#define S_PRUNE_IDLE_MS     60000
#define S_PRUNE_FIRST_MS    5000

struct pg_query {
    pg_shared_t *shared;
    PGconn *conn;                       /* NULL while disconnected */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    bool stopping;
    index_msg_t *requests, *requests_tail;      /* posted, guarded by lock */

    /*  The thread's own. */
    index_msg_t *waiting;               /* requests for a position not committed yet, in order */
    char serving[256];                  /* channels with a worker here (INDEX_SERVING) */
    int64_t connected_since;            /* monotonic ms; 0 while disconnected */
    int64_t next_connect, backoff;
    bool lost_logged;
    bool taken_over;                    /* our liveness row was gone: nothing more is done */
    int64_t next_beat, next_takeover, next_prune;
    uint64_t prune_cursor;
    uint64_t claim_serial;              /* claims made (the claim column) */
    uint64_t lost_claim;                /* a claim whose answer was lost with the connection */
    char broker[24];                    /* broker id as text */
    char shares[512];                   /* the last INDEX_SHARE told, as text */
};

//  --------------------------------------------------------------------------
//  Connection

static void
s_lost (pg_query_t *self, const char *why)
{
    if (!self->lost_logged) {
        herald_error ("PostgreSQL store: connection lost: queries and claims wait for it", "role=query"
                      " error=\"%s\"", why);
        self->lost_logged = true;
    }
    if (self->conn)
        PQfinish (self->conn);
    self->conn = NULL;
    self->connected_since = 0;
    if (self->backoff == 0) {
        self->backoff = PG_RECONNECT_MIN_MS;
        self->next_connect = herald_clock_mono_ms ();
    }
}

/*  The result of a statement, or NULL after a failure (logged; a lost
    connection is closed). */
static PGresult *
s_exec (pg_query_t *self, const char *what, const char *sql, int n, const char *const *values)
{
    if (!self->conn)
        return NULL;
    PGresult *res = PQexecParams (self->conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType status = res? PQresultStatus (res): PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return res;
    char err[1024];
    pg_error (self->conn, res, err, sizeof err);
    PQclear (res);
    if (pg_lost (self->conn))
        s_lost (self, err);
    else
        herald_warn ("PostgreSQL store: query failed", "what=%s error=\"%s\"", what, err);
    return NULL;
}

static void
s_failed (pg_query_t *self, const char *why)
{
    index_msg_t *note = index_msg_new (INDEX_FAILED);
    if (note) {
        snprintf (note->error, sizeof note->error, "%s", why);
        pg_post (self->shared, note);
    }
}

/*  Renews the liveness row. false when it is gone: another broker took
    this one's tasks over. */
static bool
s_heartbeat (pg_query_t *self)
{
    const char *values[2] = { self->broker, self->serving };
    PGresult *res = s_exec (self, "heartbeat", "UPDATE herald.brokers SET seen_at = now (), channels = $2"
                            " WHERE id = $1", 2, values);
    if (!res)
        return true;
    bool alive = strcmp (PQcmdTuples (res), "0") != 0;
    PQclear (res);
    if (!alive && !self->taken_over) {
        self->taken_over = true;
        herald_error ("PostgreSQL store: this broker was taken over (cut off from the database longer than"
                      " broker.takeover_timeout): its tasks are another broker's now; stopping", "broker_id=%s",
                      self->broker);
        s_failed (self, "this broker was taken over by another (cut off from the database longer than"
                  " broker.takeover_timeout): restart it");
    }
    return alive;
}

static void
s_try_connect (pg_query_t *self)
{
    int64_t now = herald_clock_mono_ms ();
    if (self->conn || now < self->next_connect || self->taken_over)
        return;
    char err[1024];
    self->conn = pg_connect (self->shared->url, "query", err, sizeof err);
    if (!self->conn) {
        self->backoff = self->backoff? self->backoff * 2: PG_RECONNECT_MIN_MS;
        if (self->backoff > PG_RECONNECT_MAX_MS)
            self->backoff = PG_RECONNECT_MAX_MS;
        self->next_connect = now + self->backoff;
        return;
    }
    self->backoff = 0;
    /*  Our row first, so the others see us alive before anything else. */
    if (!s_heartbeat (self) || !self->conn)
        return;
    PGresult *res = s_exec (self, "listen", "LISTEN " PG_NOTIFY_CHANNEL, 0, NULL);
    PQclear (res);
    if (self->lost_claim && self->conn) {
        char serial[24];
        snprintf (serial, sizeof serial, "%" PRIu64, self->lost_claim);
        const char *values[2] = { self->broker, serial };
        res = s_exec (self, "undo a lost claim", "UPDATE herald.tasks SET owner = NULL, claim = 0"
                      " WHERE owner = $1 AND claim = $2", 2, values);
        if (res)
            self->lost_claim = 0;
        PQclear (res);
    }
    if (!self->conn)
        return;
    self->connected_since = herald_clock_mono_ms ();
    self->next_beat = self->connected_since + self->shared->heartbeat_ms;
    self->next_takeover = self->connected_since + self->shared->takeover_ms;
    if (self->lost_logged)
        herald_info ("PostgreSQL store: connection back", "role=query");
    self->lost_logged = false;
}

//  --------------------------------------------------------------------------
//  Answers

static void
s_answer_json (index_msg_t *msg, int code, json_t *body)
{
    msg->code = code;
    msg->json = body? json_dumps (body, JSON_COMPACT): NULL;
    json_decref (body);
}

static void
s_answer_error (index_msg_t *msg, int code, const char *text)
{
    snprintf (msg->error, sizeof msg->error, "%s", text);
    s_answer_json (msg, code, json_pack ("{s:s}", "error", text));
}

static int64_t
s_int (PGresult *res, int row, int col)
{
    return PQgetisnull (res, row, col)? 0: strtoll (PQgetvalue (res, row, col), NULL, 10);
}

static void
s_track (pg_query_t *self, index_msg_t *msg)
{
    const char *values[1] = { msg->text };
    PGresult *res = s_exec (self, "track",
        "SELECT e.seq, e.uid, e.id, e.source, e.type, e.received_at, t.ch, t.channel, t.state, t.attempts,"
        " t.throttled, coalesce (t.last_error, ''), t.updated_at, t.not_before"
        " FROM herald.events e JOIN herald.tasks t ON t.seq = e.seq WHERE e.id = $1 ORDER BY e.seq, t.ch",
        1, values);
    if (!res) {
        s_answer_error (msg, HP_CODE_INTERNAL, "store unavailable: the broker cannot reach its database");
        return;
    }
    json_t *list = json_array ();
    json_t *event = NULL;
    int64_t last_seq = -1;
    int64_t now = herald_clock_wall_ms ();
    for (int r = 0; r < PQntuples (res); r++) {
        int64_t seq = s_int (res, r, 0);
        if (seq != last_seq) {
            event = json_pack ("{s:s, s:s, s:s, s:I, s:[]}", "event_id", PQgetvalue (res, r, 2),
                               "source", PQgetvalue (res, r, 3), "type", PQgetvalue (res, r, 4),
                               "received_at", (json_int_t) s_int (res, r, 5), "channels");
            json_array_append_new (list, event);
            last_seq = seq;
        }
        int state = (int) s_int (res, r, 8);
        const char *name = PQgetvalue (res, r, 7);
        char task_id[200];
        snprintf (task_id, sizeof task_id, "%s.%s", PQgetvalue (res, r, 1), name);
        const char *state_name = state == 1? "done": state == 2? "dead"
                               : s_int (res, r, 13) > now? "retrying": "pending";
        json_array_append_new (json_object_get (event, "channels"), json_pack (
            "{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:I}",
            "channel", name, "task_id", task_id, "state", state_name,
            "attempts", (json_int_t) s_int (res, r, 9), "throttled", (json_int_t) s_int (res, r, 10),
            "last_error", PQgetvalue (res, r, 11), "updated_at", (json_int_t) s_int (res, r, 12),
            "_seq", (json_int_t) seq, "_ch", (json_int_t) s_int (res, r, 6)));
    }
    PQclear (res);
    if (json_array_size (list) == 0) {
        json_decref (list);
        char text[400];
        snprintf (text, sizeof text, "no event '%s'", msg->text);
        s_answer_error (msg, HP_CODE_NOT_FOUND, text);
        return;
    }
    s_answer_json (msg, HP_CODE_OK, json_pack ("{s:o}", "events", list));
}

static void
s_dead_list (pg_query_t *self, index_msg_t *msg)
{
    char limit[24];
    snprintf (limit, sizeof limit, "%" PRIu64, msg->number);
    const char *values[2] = { msg->text[0]? msg->text: NULL, limit };
    PGresult *res = s_exec (self, "dead list",
        "SELECT e.uid || '.' || t.channel, e.id, t.channel, t.attempts, coalesce (t.last_error, ''),"
        " t.updated_at, t.throttled FROM herald.tasks t JOIN herald.events e ON e.seq = t.seq"
        " WHERE t.state = 2 AND ($1::text IS NULL OR t.channel = $1) ORDER BY t.seq, t.ch LIMIT $2", 2, values);
    if (!res) {
        s_answer_error (msg, HP_CODE_INTERNAL, "store unavailable: the broker cannot reach its database");
        return;
    }
    json_t *tasks = json_array ();
    for (int r = 0; r < PQntuples (res); r++)
        json_array_append_new (tasks, json_pack ("{s:s, s:s, s:s, s:I, s:I, s:s, s:I}",
            "task_id", PQgetvalue (res, r, 0), "event_id", PQgetvalue (res, r, 1), "channel", PQgetvalue (res, r, 2),
            "attempts", (json_int_t) s_int (res, r, 3), "throttled", (json_int_t) s_int (res, r, 6),
            "last_error", PQgetvalue (res, r, 4), "dead_at", (json_int_t) s_int (res, r, 5)));
    PQclear (res);
    s_answer_json (msg, HP_CODE_OK, json_pack ("{s:o}", "tasks", tasks));
}

static void
s_dead_show (pg_query_t *self, index_msg_t *msg)
{
    const char *dot = strrchr (msg->text, '.');
    char uid[128] = "";
    if (dot && (size_t) (dot - msg->text) < sizeof uid)
        snprintf (uid, sizeof uid, "%.*s", (int) (dot - msg->text), msg->text);
    const char *values[2] = { uid, dot? dot + 1: "" };
    PGresult *res = s_exec (self, "dead show",
        "SELECT t.seq, t.ch, e.id, t.channel, t.attempts, coalesce (t.last_error, ''), t.updated_at, e.body,"
        " t.throttled FROM herald.events e JOIN herald.tasks t ON t.seq = e.seq"
        " WHERE e.uid = $1 AND t.channel = $2 AND t.state = 2", 2, values);
    if (!res) {
        s_answer_error (msg, HP_CODE_INTERNAL, "store unavailable: the broker cannot reach its database");
        return;
    }
    if (PQntuples (res) == 0) {
        PQclear (res);
        char text[400];
        snprintf (text, sizeof text, "no dead task '%s'", msg->text);
        s_answer_error (msg, HP_CODE_NOT_FOUND, text);
        return;
    }
    json_t *event = json_loads (PQgetvalue (res, 0, 7), 0, NULL);
    const char *keys[2] = { PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1) };
    json_t *history = json_array ();
    PGresult *attempts = PQexecParams (self->conn, "SELECT attempt, at, outcome, coalesce (error, '')"
                                       " FROM herald.attempts WHERE seq = $1 AND ch = $2 ORDER BY at, attempt",
                                       2, NULL, keys, NULL, NULL, 0);
    if (attempts && PQresultStatus (attempts) == PGRES_TUPLES_OK)
        for (int r = 0; r < PQntuples (attempts); r++)
            json_array_append_new (history, json_pack ("{s:I, s:I, s:s, s:s}",
                "attempt", (json_int_t) s_int (attempts, r, 0), "at", (json_int_t) s_int (attempts, r, 1),
                "outcome", PQgetvalue (attempts, r, 2), "error", PQgetvalue (attempts, r, 3)));
    PQclear (attempts);
    json_t *task = json_pack ("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:o, s:o}",
        "task_id", msg->text, "event_id", PQgetvalue (res, 0, 2), "channel", PQgetvalue (res, 0, 3),
        "attempts", (json_int_t) s_int (res, 0, 4), "throttled", (json_int_t) s_int (res, 0, 8),
        "last_error", PQgetvalue (res, 0, 5), "dead_at", (json_int_t) s_int (res, 0, 6),
        "event", event? event: json_null (), "history", history);
    PQclear (res);
    s_answer_json (msg, HP_CODE_OK, json_pack ("{s:o}", "task", task));
}

static void
s_event_id (pg_query_t *self, index_msg_t *msg)
{
    char seq[24];
    snprintf (seq, sizeof seq, "%" PRIu64, msg->number);
    const char *values[1] = { seq };
    PGresult *res = s_exec (self, "event id", "SELECT id, dedup_key FROM herald.events WHERE seq = $1", 1, values);
    if (!res) {
        msg->code = HP_CODE_INTERNAL;
        snprintf (msg->error, sizeof msg->error, "store unavailable");
        return;
    }
    msg->code = HP_CODE_NOT_FOUND;
    if (PQntuples (res) == 1) {
        snprintf (msg->event_id, sizeof msg->event_id, "%s", PQgetvalue (res, 0, 0));
        msg->dedup_key = strdup (PQgetvalue (res, 0, 1));
        msg->code = msg->dedup_key? HP_CODE_OK: HP_CODE_INTERNAL;
    }
    PQclear (res);
}

/*  A load is a claim: free pending tasks of the channel become this
    broker's (SKIP LOCKED: two brokers never take the same, nor wait for
    each other). */
static void
s_claim (pg_query_t *self, index_msg_t *msg)
{
    char limit[24], serial[24];
    snprintf (limit, sizeof limit, "%" PRIu64, msg->number);
    snprintf (serial, sizeof serial, "%" PRIu64, ++self->claim_serial);
    const char *values[4] = { msg->text, limit, self->broker, serial };
    PGresult *res = s_exec (self, "claim",
        "WITH c AS (SELECT seq, ch FROM herald.tasks WHERE channel = $1 AND state = 0 AND owner IS NULL"
        "           ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " UPDATE herald.tasks t SET owner = $3, claim = $4 FROM c, herald.events e"
        " WHERE t.seq = c.seq AND t.ch = c.ch AND e.seq = t.seq"
        " RETURNING t.seq, t.ch, e.uid, t.attempts, t.throttled, t.not_before, t.retry_delay, t.requeued, e.body",
        4, values);
    if (!res) {
        if (!self->conn)
            self->lost_claim = self->claim_serial;
        msg->code = HP_CODE_INTERNAL;
        snprintf (msg->error, sizeof msg->error, "store unavailable: the claim is tried again");
        return;
    }
    size_t rows = (size_t) PQntuples (res);
    msg->tasks = calloc (rows? rows: 1, sizeof *msg->tasks);
    if (!msg->tasks) {
        PQclear (res);
        msg->code = HP_CODE_INTERNAL;
        snprintf (msg->error, sizeof msg->error, "out of memory");
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        index_task_t *t = &msg->tasks[msg->task_count];
        t->seq = (uint64_t) s_int (res, (int) r, 0);
        t->ch = (int) s_int (res, (int) r, 1);
        snprintf (t->uid, sizeof t->uid, "%s", PQgetvalue (res, (int) r, 2));
        snprintf (t->channel, sizeof t->channel, "%.63s", msg->text);
        t->attempts = (uint32_t) s_int (res, (int) r, 3);
        t->throttled = (uint32_t) s_int (res, (int) r, 4);
        t->not_before = s_int (res, (int) r, 5);
        t->delay = s_int (res, (int) r, 6);
        t->requeued = (uint64_t) s_int (res, (int) r, 7);
        t->body_len = (size_t) PQgetlength (res, (int) r, 8);
        t->body = malloc (t->body_len + 1);
        if (!t->body)
            break;
        memcpy (t->body, PQgetvalue (res, (int) r, 8), t->body_len + 1);
        msg->task_count++;
    }
    PQclear (res);
    /*  The claim's rows come back in no order: the core loads by seq. */
    for (size_t i = 1; i < msg->task_count; i++)
        for (size_t j = i; j > 0 && msg->tasks[j - 1].seq > msg->tasks[j].seq; j--) {
            index_task_t swap = msg->tasks[j];
            msg->tasks[j] = msg->tasks[j - 1];
            msg->tasks[j - 1] = swap;
        }
    msg->code = HP_CODE_OK;
}

/*  Tasks a broker left without a worker for their channel gives back. */
static void
s_release_tasks (pg_query_t *self, index_msg_t *msg)
{
    pg_array_t seqs = { 0 }, places = { 0 };
    for (size_t i = 0; i < msg->task_count; i++) {
        pg_array_int (&seqs, (int64_t) msg->tasks[i].seq);
        pg_array_int (&places, msg->tasks[i].ch);
    }
    const char *values[4] = { self->broker, pg_array_end (&seqs), pg_array_end (&places), msg->text };
    PGresult *res = values[1] && values[2]? s_exec (self, "give tasks back",
        "WITH f AS (UPDATE herald.tasks t SET owner = NULL, claim = 0 FROM unnest ($2::bigint[], $3::int[]) AS g (seq, ch)"
        "           WHERE t.seq = g.seq AND t.ch = g.ch AND t.owner = $1 RETURNING 1)"
        " SELECT count (*), pg_notify ('" PG_NOTIFY_CHANNEL "', $4) FROM f", 4, values): NULL;
    msg->code = res? HP_CODE_OK: HP_CODE_INTERNAL;
    PQclear (res);
    free (seqs.text.data);
    free (places.text.data);
}

/*  Answers a request now. False when it must wait for the connection. */
static bool
s_answer (pg_query_t *self, index_msg_t *msg)
{
    if (msg->kind == INDEX_SERVING) {
        snprintf (self->serving, sizeof self->serving, "%s", msg->text);
        self->next_beat = 0;            /* tell the others now */
        msg->code = HP_CODE_OK;
        return true;
    }
    if (!self->conn && !self->stopping) {
        /*  Claims wait for the connection (a loop would retry them every
            turn); the rest is answered at once. */
        if (msg->kind == INDEX_LOAD || msg->kind == INDEX_RELEASE)
            return false;
        if (msg->kind == INDEX_EVENT_ID) {
            msg->code = HP_CODE_INTERNAL;
            snprintf (msg->error, sizeof msg->error, "store unavailable");
        }
        else
            s_answer_error (msg, HP_CODE_BUSY, "store unavailable: the broker cannot reach its database; try"
                            " again later");
        return true;
    }
    switch (msg->kind) {
        case INDEX_TRACK:     s_track (self, msg); break;
        case INDEX_DEAD_LIST: s_dead_list (self, msg); break;
        case INDEX_DEAD_SHOW: s_dead_show (self, msg); break;
        case INDEX_EVENT_ID:  s_event_id (self, msg); break;
        case INDEX_LOAD:      s_claim (self, msg); break;
        case INDEX_RELEASE:   s_release_tasks (self, msg); break;
        default:
            msg->code = HP_CODE_BAD_REQUEST;
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Liveness, takeover, announcements, numbers, pruning, figures

/*  Dead brokers' rows deleted and their tasks freed (and tasks owned by
    no living broker: a broker that kept writing after it was taken over),
    their counts folded into row 0. Only by a broker connected for a whole
    takeover timeout: after a database restart every broker has had the
    time to renew its row. */
static void
s_takeover (pg_query_t *self)
{
    char timeout[24];
    snprintf (timeout, sizeof timeout, "%" PRId64, self->shared->takeover_ms);
    const char *values[2] = { self->broker, timeout };
    PGresult *res = s_exec (self, "takeover",
        "WITH dead AS (DELETE FROM herald.brokers WHERE id <> $1"
        "              AND seen_at < now () - make_interval (secs => $2::double precision / 1000) RETURNING id),"
        " f AS (UPDATE herald.tasks SET owner = NULL, claim = 0"
        "       WHERE owner IN (SELECT id FROM dead) RETURNING channel),"
        " m AS (DELETE FROM herald.counts WHERE broker IN (SELECT id FROM dead)"
        "       RETURNING channel, pending, done, dead, events),"
        " k AS (INSERT INTO herald.counts (broker, channel, pending, done, dead, events)"
        "       SELECT 0, channel, sum (pending), sum (done), sum (dead), sum (events) FROM m GROUP BY channel"
        "       ON CONFLICT (broker, channel) DO UPDATE SET pending = herald.counts.pending + excluded.pending,"
        "       done = herald.counts.done + excluded.done, dead = herald.counts.dead + excluded.dead,"
        "       events = herald.counts.events + excluded.events),"
        " n AS (SELECT pg_notify ('" PG_NOTIFY_CHANNEL "', c) FROM (SELECT DISTINCT channel AS c FROM f) x)"
        " SELECT (SELECT coalesce (string_agg (id::text, ' '), '') FROM dead), (SELECT count (*) FROM f),"
        "        (SELECT count (*) FROM n)", 2, values);
    if (res && PQntuples (res) == 1 && PQgetvalue (res, 0, 0)[0])
        herald_warn ("PostgreSQL store: took over dead brokers: their tasks are free for any broker to claim",
                     "dead_brokers=\"%s\" tasks=%s takeover_timeout_ms=%s", PQgetvalue (res, 0, 0),
                     PQgetvalue (res, 0, 1), timeout);
    PQclear (res);
    res = s_exec (self, "orphan tasks",
        "WITH f AS (UPDATE herald.tasks t SET owner = NULL, claim = 0 WHERE owner IS NOT NULL AND owner <> $1"
        "           AND NOT EXISTS (SELECT 1 FROM herald.brokers b WHERE b.id = t.owner) RETURNING channel)"
        " SELECT count (*), (SELECT count (*) FROM (SELECT pg_notify ('" PG_NOTIFY_CHANNEL "', c)"
        "        FROM (SELECT DISTINCT channel AS c FROM f) x) n) FROM f", 1, values);
    if (res && PQntuples (res) == 1 && s_int (res, 0, 0) > 0)
        herald_warn ("PostgreSQL store: tasks of no living broker freed", "tasks=%s", PQgetvalue (res, 0, 0));
    PQclear (res);
}

/*  Tells the core which of the channels served here have free tasks. */
static void
s_announce (pg_query_t *self, const char *channel)
{
    index_msg_t *note = index_msg_new (INDEX_BACKLOG);
    if (note) {
        snprintf (note->text, sizeof note->text, "%s", channel);
        pg_post (self->shared, note);
    }
}

static void
s_look_for_free_tasks (pg_query_t *self)
{
    if (!self->serving[0])
        return;
    const char *values[1] = { self->serving };
    PGresult *res = s_exec (self, "free tasks",
        "SELECT c FROM unnest (string_to_array ($1, ' ')) AS c WHERE EXISTS (SELECT 1 FROM herald.tasks t"
        " WHERE t.channel = c AND t.state = 0 AND t.owner IS NULL)", 1, values);
    for (int r = 0; res && r < PQntuples (res); r++)
        s_announce (self, PQgetvalue (res, r, 0));
    PQclear (res);
}

static void
s_notifications (pg_query_t *self)
{
    if (!self->conn)
        return;
    if (PQconsumeInput (self->conn) != 1) {
        char err[1024];
        s_lost (self, pg_error (self->conn, NULL, err, sizeof err));
        return;
    }
    PGnotify *note;
    /*  One announcement per channel however many commits said so. */
    char said[HERALD_MAX_CHANNELS][HERALD_NAME_MAX];
    int said_count = 0;
    while ((note = PQnotifies (self->conn))) {
        bool served = false;
        char copy[sizeof self->serving + 2];
        snprintf (copy, sizeof copy, " %s ", self->serving);
        char word[HERALD_NAME_MAX + 2];
        snprintf (word, sizeof word, " %s ", note->extra);
        served = strstr (copy, word) != NULL;
        bool again = false;
        for (int i = 0; i < said_count && !again; i++)
            again = strcmp (said[i], note->extra) == 0;
        if (served && !again && said_count < HERALD_MAX_CHANNELS) {
            snprintf (said[said_count++], HERALD_NAME_MAX, "%s", note->extra);
            s_announce (self, note->extra);
        }
        PQfreemem (note);
    }
}

static void
s_fetch_numbers (pg_query_t *self)
{
    pg_shared_t *shared = self->shared;
    pthread_mutex_lock (&shared->lock);
    int missing = shared->spare_wanted? PG_SEQ_SPARES - shared->spare_count: 0;
    pthread_mutex_unlock (&shared->lock);
    if (missing <= 0)
        return;
    char blocks[16];
    snprintf (blocks, sizeof blocks, "%d", missing);
    const char *values[1] = { blocks };
    PGresult *res = s_exec (self, "event numbers", PG_SEQ_BLOCKS_SQL, 1, values);
    if (!res)
        return;
    pthread_mutex_lock (&shared->lock);
    for (int r = 0; r < PQntuples (res) && shared->spare_count < PG_SEQ_SPARES; r++)
        shared->spares[shared->spare_count++] = (uint64_t) s_int (res, r, 0);
    //  Blocks taken meanwhile: fetched on the next turn.
    shared->spare_wanted = shared->spare_count < PG_SEQ_SPARES;
    pthread_mutex_unlock (&shared->lock);
    PQclear (res);
}

/*  Events past the retention whose tasks are all done, S_PRUNE_BATCH at a
    step, by one broker at a time (an advisory lock). */
static void
s_prune (pg_query_t *self)
{
    int64_t now = herald_clock_mono_ms ();
    int64_t retention_ms = __atomic_load_n (&self->shared->retention_ms, __ATOMIC_RELAXED);
    if (retention_ms <= 0 || now < self->next_prune)
        return;
    self->next_prune = now + S_PRUNE_IDLE_MS;
    char cursor[24], cutoff[24], upto[24] = "";
    snprintf (cursor, sizeof cursor, "%" PRIu64, self->prune_cursor);
    snprintf (cutoff, sizeof cutoff, "%" PRId64, herald_clock_wall_ms () - retention_ms);
    PGresult *res = s_exec (self, "prune", "BEGIN", 0, NULL);
    PQclear (res);
    res = s_exec (self, "prune", "SELECT pg_try_advisory_xact_lock (7275688)", 0, NULL);
    bool mine = res && PQntuples (res) == 1 && strcmp (PQgetvalue (res, 0, 0), "t") == 0;
    PQclear (res);
    const char *window[2] = { cursor, cutoff };
    res = mine? s_exec (self, "prune", "SELECT max (seq), count (*) FROM (SELECT seq FROM herald.events"
                        " WHERE seq > $1 AND received_at < $2 ORDER BY seq LIMIT 500) o", 2, window): NULL;
    int64_t seen = res? s_int (res, 0, 1): 0;
    if (res && seen > 0)
        snprintf (upto, sizeof upto, "%s", PQgetvalue (res, 0, 0));
    PQclear (res);
    index_msg_t *note = NULL;
    if (upto[0]) {
        const char *values[3] = { cursor, upto, cutoff };
        res = s_exec (self, "prune",
            "WITH fin AS (SELECT e.seq FROM herald.events e WHERE e.seq > $1 AND e.seq <= $2 AND e.received_at < $3"
            "             AND NOT EXISTS (SELECT 1 FROM herald.tasks t WHERE t.seq = e.seq AND t.state <> 1)),"
            " dt AS (DELETE FROM herald.tasks WHERE seq IN (SELECT seq FROM fin)),"
            " da AS (DELETE FROM herald.attempts WHERE seq IN (SELECT seq FROM fin))"
            " DELETE FROM herald.events WHERE seq IN (SELECT seq FROM fin) RETURNING seq, dedup_key", 3, values);
        int rows = res? PQntuples (res): 0;
        if (rows > 0 && (note = index_msg_new (INDEX_PRUNED))) {
            note->pruned_seqs = calloc ((size_t) rows, sizeof *note->pruned_seqs);
            note->pruned_keys = calloc ((size_t) rows, sizeof *note->pruned_keys);
            for (int r = 0; note->pruned_seqs && note->pruned_keys && r < rows; r++) {
                note->pruned_seqs[r] = (uint64_t) s_int (res, r, 0);
                note->pruned_keys[r] = strdup (PQgetvalue (res, r, 1));
                if (note->pruned_keys[r])
                    note->pruned_count++;
            }
        }
        PQclear (res);
    }
    res = s_exec (self, "prune", "COMMIT", 0, NULL);
    if (res && note && note->pruned_count > 0) {
        pg_post (self->shared, note);
        note = NULL;
    }
    PQclear (res);
    index_msg_destroy (&note);
    if (!mine)
        return;
    if (seen >= S_PRUNE_BATCH) {
        self->prune_cursor = strtoull (upto, NULL, 10);
        self->next_prune = now + 100;
    }
    else
        self->prune_cursor = 0;
}

void
pg_query_refresh_status (pg_shared_t *shared, PGconn *conn)
{
    PGresult *counts = PQexec (conn, "SELECT channel, sum (pending), sum (done), sum (dead), sum (events)"
                                     " FROM herald.counts GROUP BY channel");
    PGresult *brokers = PQexec (conn, "SELECT id, host, pid, (extract (epoch FROM now () - seen_at) * 1000)::bigint,"
                                      " channels FROM herald.brokers ORDER BY id");
    if (!counts || PQresultStatus (counts) != PGRES_TUPLES_OK
    ||  !brokers || PQresultStatus (brokers) != PGRES_TUPLES_OK) {
        PQclear (counts);
        PQclear (brokers);
        return;
    }
    json_t *channels = json_object ();
    json_int_t events = 0;
    for (int r = 0; r < PQntuples (counts); r++) {
        if (!PQgetvalue (counts, r, 0)[0]) {
            events = (json_int_t) s_int (counts, r, 4);
            continue;
        }
        json_object_set_new (channels, PQgetvalue (counts, r, 0), json_pack ("{s:I, s:I, s:I}",
            "pending", (json_int_t) s_int (counts, r, 1), "done", (json_int_t) s_int (counts, r, 2),
            "dead", (json_int_t) s_int (counts, r, 3)));
    }
    json_t *list = json_array ();
    for (int r = 0; r < PQntuples (brokers); r++)
        json_array_append_new (list, json_pack ("{s:I, s:s, s:I, s:I, s:s}",
            "id", (json_int_t) s_int (brokers, r, 0), "host", PQgetvalue (brokers, r, 1),
            "pid", (json_int_t) s_int (brokers, r, 2), "seen_ms_ago", (json_int_t) s_int (brokers, r, 3),
            "channels", PQgetvalue (brokers, r, 4)));
    PQclear (counts);
    PQclear (brokers);
    json_t *status = json_pack ("{s:I, s:o, s:o}", "events", events, "channels", channels, "brokers", list);
    char *text = status? json_dumps (status, JSON_COMPACT): NULL;
    json_decref (status);
    if (!text)
        return;
    pthread_mutex_lock (&shared->lock);
    free (shared->status_json);
    shared->status_json = text;
    pthread_mutex_unlock (&shared->lock);
}

/*  How many living brokers serve each channel (their liveness rows), told
    to the core when it changes: each takes its part of the channel's rate. */
static void
s_shares (pg_query_t *self)
{
    char timeout[24];
    snprintf (timeout, sizeof timeout, "%" PRId64, self->shared->takeover_ms);
    const char *values[1] = { timeout };
    PGresult *res = s_exec (self, "shares",
        "SELECT c, count (*) FROM herald.brokers b, unnest (string_to_array (b.channels, ' ')) AS c"
        " WHERE b.seen_at >= now () - make_interval (secs => $1::double precision / 1000)"
        " GROUP BY c ORDER BY c", 1, values);
    if (!res)
        return;
    char text[sizeof self->shares] = "";
    size_t n = 0;
    index_msg_t *note = index_msg_new (INDEX_SHARE);
    for (int r = 0; note && r < PQntuples (res) && r < INDEX_MAX_CHANNELS; r++) {
        n += (size_t) snprintf (text + n, n < sizeof text? sizeof text - n: 0, "%s=%s ", PQgetvalue (res, r, 0),
                                PQgetvalue (res, r, 1));
        snprintf (note->channels[note->channel_count], sizeof note->channels[0], "%s", PQgetvalue (res, r, 0));
        note->channel_counts[note->channel_count++] = s_int (res, r, 1);
    }
    PQclear (res);
    if (note && strcmp (text, self->shares) != 0) {
        snprintf (self->shares, sizeof self->shares, "%s", text);
        pg_post (self->shared, note);
        note = NULL;
    }
    index_msg_destroy (&note);
}

static void
s_periodic (pg_query_t *self)
{
    int64_t now = herald_clock_mono_ms ();
    if (!self->conn || self->taken_over)
        return;
    if (now >= self->next_beat) {
        self->next_beat = now + self->shared->heartbeat_ms;
        if (!s_heartbeat (self) || !self->conn)
            return;
        s_look_for_free_tasks (self);
        if (self->conn)
            s_shares (self);
        if (self->conn)
            pg_query_refresh_status (self->shared, self->conn);
    }
    if (self->conn && now >= self->next_takeover
    &&  now - self->connected_since >= self->shared->takeover_ms) {
        self->next_takeover = now + self->shared->takeover_ms / 2;
        s_takeover (self);
    }
    if (self->conn)
        s_prune (self);
}

//  --------------------------------------------------------------------------
//  The thread

static void
s_release (pg_query_t *self)
{
    if (!self->conn || self->taken_over)
        return;
    const char *values[1] = { self->broker };
    PGresult *res = s_exec (self, "release",
        "WITH f AS (UPDATE herald.tasks SET owner = NULL, claim = 0 WHERE owner = $1 RETURNING channel),"
        " d AS (DELETE FROM herald.brokers WHERE id = $1),"
        " m AS (DELETE FROM herald.counts WHERE broker = $1 RETURNING channel, pending, done, dead, events),"
        " k AS (INSERT INTO herald.counts (broker, channel, pending, done, dead, events)"
        "       SELECT 0, channel, pending, done, dead, events FROM m"
        "       ON CONFLICT (broker, channel) DO UPDATE SET pending = herald.counts.pending + excluded.pending,"
        "       done = herald.counts.done + excluded.done, dead = herald.counts.dead + excluded.dead,"
        "       events = herald.counts.events + excluded.events),"
        " n AS (SELECT pg_notify ('" PG_NOTIFY_CHANNEL "', c) FROM (SELECT DISTINCT channel AS c FROM f) x)"
        " SELECT (SELECT count (*) FROM f), (SELECT count (*) FROM n)", 1, values);
    if (res && PQntuples (res) == 1 && s_int (res, 0, 0) > 0)
        herald_info ("PostgreSQL store: tasks held here freed for the other brokers", "tasks=%s",
                     PQgetvalue (res, 0, 0));
    PQclear (res);
}

static void *
s_thread (void *arg)
{
    pg_query_t *self = arg;
    while (true) {
        pthread_mutex_lock (&self->lock);
        bool stopping = self->stopping;
        index_msg_t *requests = self->requests;
        self->requests = self->requests_tail = NULL;
        pthread_mutex_unlock (&self->lock);
        /*  Those that waited come first, in order. */
        if (self->waiting) {
            index_msg_t *tail = self->waiting;
            while (tail->next)
                tail = tail->next;
            tail->next = requests;
            requests = self->waiting;
            self->waiting = NULL;
        }
        if (!self->conn && !stopping)
            s_try_connect (self);
        if (!stopping)
            s_fetch_numbers (self);         //  first: the loop's publishes wait for none of the rest
        s_notifications (self);
        uint64_t durable = atomic_load (&self->shared->durable);
        index_msg_t **keep = &self->waiting;
        while (requests) {
            index_msg_t *msg = requests;
            requests = msg->next;
            msg->next = NULL;
            if ((msg->min_lsn > durable && !stopping) || !s_answer (self, msg)) {
                *keep = msg;
                keep = &msg->next;
                continue;
            }
            if (msg->kind == INDEX_SERVING)
                index_msg_destroy (&msg);
            else
                pg_post (self->shared, msg);
        }
        if (stopping)
            break;
        s_fetch_numbers (self);
        s_periodic (self);
        /*  Sleep until a request, a commit, a notification or the next
            heartbeat (sooner while reconnecting). */
        int64_t now = herald_clock_mono_ms ();
        int64_t until = self->conn? self->next_beat: self->next_connect;
        if (self->conn && self->next_prune < until)
            until = self->next_prune;
        int timeout = until > now? (int) (until - now): 0;
        if (timeout > 1000)
            timeout = 1000;
        if (self->waiting && self->conn && timeout > 5)
            timeout = 5;
        struct pollfd fds[2] = { { self->shared->wake_fd, POLLIN, 0 }, { -1, POLLIN, 0 } };
        if (self->conn)
            fds[1].fd = PQsocket (self->conn);
        if (poll (fds, self->conn? 2: 1, timeout) > 0 && (fds[0].revents & POLLIN)) {
            uint64_t value;
            ssize_t n = read (self->shared->wake_fd, &value, sizeof value);
            (void) n;
        }
    }
    while (self->waiting) {
        index_msg_t *msg = self->waiting;
        self->waiting = msg->next;
        msg->next = NULL;
        s_answer_error (msg, HP_CODE_INTERNAL, "the broker is stopping");
        pg_post (self->shared, msg);
    }
    s_release (self);
    return NULL;
}

pg_query_t *
pg_query_new (pg_shared_t *shared, PGconn *conn)
{
    pg_query_t *self = calloc (1, sizeof *self);
    if (!self) {
        PQfinish (conn);
        return NULL;
    }
    self->shared = shared;
    self->conn = conn;
    pthread_mutex_init (&self->lock, NULL);
    snprintf (self->broker, sizeof self->broker, "%" PRIu64, shared->broker_id);
    int64_t now = herald_clock_mono_ms ();
    self->connected_since = conn? now: 0;
    self->next_beat = now + shared->heartbeat_ms;
    self->next_takeover = now + shared->takeover_ms;
    self->next_prune = now + S_PRUNE_FIRST_MS;
    if (conn) {
        PGresult *res = s_exec (self, "listen", "LISTEN " PG_NOTIFY_CHANNEL, 0, NULL);
        PQclear (res);
    }
    else
        s_lost (self, "not connected yet");
    return self;
}

int
pg_query_start (pg_query_t *self, char *err, size_t errlen)
{
    if (pthread_create (&self->thread, NULL, s_thread, self) != 0) {
        snprintf (err, errlen, "PostgreSQL store: cannot start the query thread");
        return -1;
    }
    pthread_setname_np (self->thread, "herald-pgquery");
    self->started = true;
    return 0;
}

void
pg_query_destroy (pg_query_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pg_query_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        pthread_mutex_unlock (&self->lock);
        pg_wake (self->shared->wake_fd);
        pthread_join (self->thread, NULL);
    }
    else
        s_release (self);
    while (self->requests) {
        index_msg_t *next = self->requests->next;
        index_msg_destroy (&self->requests);
        self->requests = next;
    }
    while (self->waiting) {
        index_msg_t *next = self->waiting->next;
        index_msg_destroy (&self->waiting);
        self->waiting = next;
    }
    if (self->conn)
        PQfinish (self->conn);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

void
pg_query_post (pg_query_t *self, index_msg_t *msg)
{
    pthread_mutex_lock (&self->lock);
    msg->next = NULL;
    if (self->requests_tail)
        self->requests_tail->next = msg;
    else
        self->requests = msg;
    self->requests_tail = msg;
    pthread_mutex_unlock (&self->lock);
    pg_wake (self->shared->wake_fd);
}
