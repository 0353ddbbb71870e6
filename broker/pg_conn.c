/*  pg_conn: connections, schema and shared state of the PostgreSQL store
    (see pg_conn.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald_log.h"
#include "pg_conn.h"

bool
pg_is_url (const char *text)
{
    return text && (strncmp (text, "postgresql://", 13) == 0 || strncmp (text, "postgres://", 11) == 0);
}

/*  One line: libpq's messages end with a newline and may hold several. */
static void
s_one_line (char *text)
{
    size_t len = strlen (text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}

const char *
pg_error (PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
    const char *text = res? PQresultErrorMessage (res): NULL;
    if (!text || !*text)
        text = conn? PQerrorMessage (conn): "no connection";
    snprintf (err, errlen, "%s", text && *text? text: "unknown error");
    s_one_line (err);
    return err;
}

PGconn *
pg_connect (const char *url, const char *role, char *err, size_t errlen)
{
    char application[64];
    snprintf (application, sizeof application, "herald-broker-%s", role);
    /*  The URL first (expanded), then what Herald sets: keepalives so that
        a vanished database host is noticed in seconds, not hours. */
    const char *keys[] = { "dbname", "application_name", "client_encoding", "connect_timeout",
                           "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                           "tcp_user_timeout", NULL };
    const char *values[] = { url, application, "UTF8", "5", "1", "5", "2", "3", "10000", NULL };
    PGconn *conn = PQconnectdbParams (keys, values, 1);
    if (!conn) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus (conn) != CONNECTION_OK) {
        char why[1024];
        snprintf (err, errlen, "cannot connect to PostgreSQL: %s", pg_error (conn, NULL, why, sizeof why));
        PQfinish (conn);
        return NULL;
    }
    const char *encoding = PQparameterStatus (conn, "server_encoding");
    if (encoding && strcmp (encoding, "UTF8") != 0 && strcmp (encoding, "SQL_ASCII") != 0) {
        snprintf (err, errlen, "the database's encoding is %s: Herald stores UTF-8 events; create the database"
                  " WITH ENCODING 'UTF8'", encoding);
        PQfinish (conn);
        return NULL;
    }
    return conn;
}

int
pg_exec (PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec (conn, sql);
    ExecStatusType status = res? PQresultStatus (res): PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        pg_error (conn, res, err, errlen);
        PQclear (res);
        return -1;
    }
    PQclear (res);
    return 0;
}

bool
pg_lost (PGconn *conn)
{
    return !conn || PQstatus (conn) != CONNECTION_OK;
}

/*  The durability words, by rank (pg_durability_rank). */
static const char *s_durability_words[] = { "commit-async", "commit", "commit-standby" };

void
pg_durability_word (const char *commit, const char *standbys, char *out, size_t size)
{
    int rank = 1;                                       /* commit */
    if (strcmp (commit, "off") == 0)
        rank = 0;                                       /* commit-async */
    else
    if (strcmp (commit, "local") != 0 && standbys[0])
        rank = 2;                                       /* commit-standby */
    snprintf (out, size, "%s", s_durability_words[rank]);
}

int
pg_durability_rank (const char *word)
{
    for (int rank = 2; rank > 0; rank--)
        if (strcmp (word, s_durability_words[rank]) == 0)
            return rank;
    return 0;
}

const char *
pg_durability_named (int rank)
{
    return s_durability_words[rank < 0? 0: rank > 2? 2: rank];
}

void
pg_durability (PGconn *conn, char *out, size_t size)
{
    snprintf (out, size, "commit");
    PGresult *res = PQexec (conn, PG_DURABILITY_SQL);
    if (res && PQresultStatus (res) == PGRES_TUPLES_OK && PQntuples (res) == 1)
        pg_durability_word (PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1), out, size);
    PQclear (res);
}

//  --------------------------------------------------------------------------
//  Schema: version 1 is the whole schema; a later version adds a step that
//  migrates from the one before (in the same transaction as the version).

static const char *s_schema_v1 =
    "CREATE SEQUENCE herald.event_seq INCREMENT BY 1000 MINVALUE 1 START 1;"
    "CREATE SEQUENCE herald.broker_id;"
    "CREATE SEQUENCE herald.requeue_serial;"
    "CREATE SEQUENCE herald.claim_serial;"
    "CREATE TABLE herald.brokers ("
    "  id bigint PRIMARY KEY,"
    "  host text NOT NULL,"
    "  pid integer NOT NULL,"
    "  started_at bigint NOT NULL,"
    "  seen_at timestamptz NOT NULL,"           /* the database's clock */
    "  channels text NOT NULL DEFAULT '');"     /* with a worker here, space separated */
    "CREATE TABLE herald.events ("
    "  seq bigint PRIMARY KEY,"
    "  uid text NOT NULL,"
    "  id text NOT NULL,"
    "  source text NOT NULL,"
    "  type text NOT NULL,"
    "  dedup_key text NOT NULL,"
    "  received_at bigint NOT NULL,"
    "  channels text NOT NULL,"                 /* the fan-out, space separated, in order */
    "  broker bigint NOT NULL,"                 /* the broker that stored it */
    "  body text NOT NULL);"
    "CREATE UNIQUE INDEX events_key ON herald.events (dedup_key);"
    "CREATE INDEX events_id ON herald.events (id);"
    "CREATE INDEX events_uid ON herald.events (uid);"
    "CREATE TABLE herald.tasks ("
    "  seq bigint NOT NULL,"
    "  ch smallint NOT NULL,"
    "  channel text NOT NULL,"
    "  state smallint NOT NULL DEFAULT 0,"      /* 0 pending, 1 done, 2 dead */
    "  attempts integer NOT NULL DEFAULT 0,"
    "  throttled integer NOT NULL DEFAULT 0,"
    "  not_before bigint NOT NULL DEFAULT 0,"
    "  retry_delay bigint NOT NULL DEFAULT 0,"
    "  last_error text,"
    "  updated_at bigint NOT NULL,"
    "  requeued bigint NOT NULL DEFAULT 0,"     /* dead-retry serial */
    "  owner bigint,"                           /* the broker holding it in memory; NULL: free */
    "  claim bigint NOT NULL DEFAULT 0,"        /* the claim that took it (undone if its answer was lost) */
    "  PRIMARY KEY (seq, ch));"
    "CREATE INDEX tasks_free ON herald.tasks (channel, seq) WHERE state = 0 AND owner IS NULL;"
    "CREATE INDEX tasks_owner ON herald.tasks (owner) WHERE owner IS NOT NULL;"
    "CREATE INDEX tasks_dead ON herald.tasks (channel, seq) WHERE state = 2;"
    "CREATE TABLE herald.attempts ("
    "  seq bigint NOT NULL,"
    "  ch smallint NOT NULL,"
    "  attempt integer NOT NULL,"
    "  at bigint NOT NULL,"
    "  outcome text NOT NULL,"
    "  error text,"
    "  PRIMARY KEY (seq, ch, attempt, at));"
    "CREATE TABLE herald.counts ("             /* deltas per broker: no row is shared */
    "  broker bigint NOT NULL,"
    "  channel text NOT NULL,"                  /* '' : events stored */
    "  pending bigint NOT NULL DEFAULT 0,"
    "  done bigint NOT NULL DEFAULT 0,"
    "  dead bigint NOT NULL DEFAULT 0,"
    "  events bigint NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (broker, channel));";

typedef struct {
    const char *from;               /* the version it migrates, NULL: a new database */
    const char *to;
    const char *sql;
} s_step_t;

static const s_step_t s_steps[] = {
    { NULL, PG_SCHEMA_VERSION, NULL },      /* s_schema_v1 */
};

int
pg_schema (PGconn *conn, char *err, size_t errlen)
{
    char why[1024];
    /*  Brokers starting together: one creates, the others wait and find it. */
    if (pg_exec (conn, "BEGIN", why, sizeof why) != 0
    ||  pg_exec (conn, "SELECT pg_advisory_xact_lock (7275687)", why, sizeof why) != 0
    ||  pg_exec (conn, "CREATE SCHEMA IF NOT EXISTS herald", why, sizeof why) != 0
    ||  pg_exec (conn, "CREATE TABLE IF NOT EXISTS herald.meta (key text PRIMARY KEY, value text NOT NULL)",
                 why, sizeof why) != 0) {
        snprintf (err, errlen, "PostgreSQL store: cannot create the schema 'herald': %s", why);
        PQexec (conn, "ROLLBACK");
        return -1;
    }
    PGresult *res = PQexec (conn, "SELECT value FROM herald.meta WHERE key = 'schema'");
    if (!res || PQresultStatus (res) != PGRES_TUPLES_OK) {
        snprintf (err, errlen, "PostgreSQL store: cannot read herald.meta: %s", pg_error (conn, res, why, sizeof why));
        PQclear (res);
        PQclear (PQexec (conn, "ROLLBACK"));
        return -1;
    }
    char version[64] = "";
    if (PQntuples (res) == 1)
        snprintf (version, sizeof version, "%s", PQgetvalue (res, 0, 0));
    PQclear (res);
    const char *current = version[0]? version: NULL;
    for (size_t i = 0; i < sizeof s_steps / sizeof s_steps[0]; i++) {
        const s_step_t *step = &s_steps[i];
        bool applies = step->from? current && strcmp (current, step->from) == 0: !current;
        if (!applies)
            continue;
        const char *sql = step->sql? step->sql: s_schema_v1;
        char set[200];
        snprintf (set, sizeof set, "INSERT INTO herald.meta (key, value) VALUES ('schema', '%s')"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value", step->to);
        if (pg_exec (conn, sql, why, sizeof why) != 0 || pg_exec (conn, set, why, sizeof why) != 0) {
            snprintf (err, errlen, "PostgreSQL store: cannot %s schema %s: %s", current? "migrate to": "create",
                      step->to, why);
            PQclear (PQexec (conn, "ROLLBACK"));
            return -1;
        }
        if (current)
            herald_info ("PostgreSQL store migrated", "from=%s to=%s", current, step->to);
        else
            herald_info ("PostgreSQL store: schema created", "schema=%s", step->to);
        current = step->to;
    }
    if (!current || strcmp (current, PG_SCHEMA_VERSION) != 0) {
        snprintf (err, errlen, "PostgreSQL store: schema '%s' in herald.meta is not supported (expected %s):"
                  " a newer Herald made it", current? current: "", PG_SCHEMA_VERSION);
        PQclear (PQexec (conn, "ROLLBACK"));
        return -1;
    }
    if (pg_exec (conn, "COMMIT", why, sizeof why) != 0) {
        snprintf (err, errlen, "PostgreSQL store: cannot commit the schema: %s", why);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Between threads

void
pg_wake (int fd)
{
    uint64_t one = 1;
    ssize_t n = write (fd, &one, sizeof one);
    (void) n;
}

void
pg_post (pg_shared_t *shared, index_msg_t *msg)
{
    pthread_mutex_lock (&shared->lock);
    msg->next = NULL;
    if (shared->replies_tail)
        shared->replies_tail->next = msg;
    else
        shared->replies = msg;
    shared->replies_tail = msg;
    pthread_mutex_unlock (&shared->lock);
    pg_wake (shared->reply_fd);
}

//  --------------------------------------------------------------------------
//  Array literals

static void
s_array_next (pg_array_t *self)
{
    herald_text_putc (&self->text, self->count++? ',': '{');
}

void
pg_array_text (pg_array_t *self, const char *data, size_t len)
{
    s_array_next (self);
    herald_text_putc (&self->text, '"');
    const char *run = data;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '"' || data[i] == '\\') {
            herald_text_append (&self->text, run, (size_t) (data + i - run));
            herald_text_putc (&self->text, '\\');
            run = data + i;
        }
    herald_text_append (&self->text, run, (size_t) (data + len - run));
    herald_text_putc (&self->text, '"');
}

void
pg_array_int (pg_array_t *self, int64_t value)
{
    s_array_next (self);
    herald_text_printf (&self->text, "%" PRId64, value);
}

void
pg_array_null (pg_array_t *self)
{
    s_array_next (self);
    herald_text_puts (&self->text, "NULL");
}

const char *
pg_array_end (pg_array_t *self)
{
    if (self->count == 0)
        herald_text_puts (&self->text, "{}");
    else
        herald_text_putc (&self->text, '}');
    return self->text.failed? NULL: self->text.data;
}
