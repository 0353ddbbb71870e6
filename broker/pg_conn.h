/*  pg_conn: what the PostgreSQL store's threads share (docs/postgresql.md):
    the connection settings and helpers, the schema (created and migrated at
    open, versioned in herald.meta), the queue of answers and notices to the
    broker loop, and the blocks of event numbers. The store (store_pg.c)
    owns one pg_shared_t; its writer (pg_writer.c) and query thread
    (pg_query.c) each hold their own connection. */
#ifndef HERALD_PG_CONN_H
#define HERALD_PG_CONN_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_config.h"
#include "herald_text.h"
#include "index.h"

#define PG_SCHEMA_VERSION   "herald-pg/1"
#define PG_SEQ_BLOCK        1000        /* event numbers a broker reserves at once (herald.event_seq's increment) */
#define PG_SEQ_SPARES       32          /* blocks kept at hand beyond the one in use: 32,000 numbers, most of a
                                           second at the fastest a broker ACKs, so that a query thread held up
                                           (a heartbeat or a claim waiting, a busy machine) does not leave the
                                           loop without numbers (a 503 for every publish) */
#define PG_SEQ_BLOCKS_SQL   "SELECT nextval ('herald.event_seq') FROM generate_series (1, $1::int)"
                                        /* $1 blocks of PG_SEQ_BLOCK event numbers: their first numbers */
#define PG_NOTIFY_CHANNEL   "herald_tasks"  /* NOTIFY payload: a channel whose free tasks were just committed */
#define PG_RECONNECT_MIN_MS 100
#define PG_RECONNECT_MAX_MS 5000

typedef struct {
    char url[HERALD_PATH_MAX];          /* the libpq URL (no password: PGPASSWORD / PGPASSFILE) */
    uint64_t broker_id;                 /* this broker process's instance id (herald.broker_id) */
    char host[256];                     /* gethostname */
    int64_t takeover_ms;                /* broker.takeover_timeout */
    int64_t heartbeat_ms;               /* liveness row renewed this often */
    int64_t retention_ms;               /* broker.dedup_retention */
    int channel_count;
    char channels[HERALD_MAX_CHANNELS][HERALD_NAME_MAX];

    /*  Answers and notices to the loop (index_msg_t), any thread posts. */
    pthread_mutex_t lock;
    index_msg_t *replies, *replies_tail;
    int reply_fd;                       /* eventfd: readable when replies wait */

    /*  Event numbers: [seq_next, seq_end) in use, then the blocks that
        start at spares[0 .. spare_count), in that order; the query thread
        tops them up to PG_SEQ_SPARES when spare_wanted. Guarded by lock. */
    uint64_t seq_next, seq_end;
    uint64_t spares[PG_SEQ_SPARES];
    int spare_count;
    bool spare_wanted;

    _Atomic uint64_t durable;           /* the writer's committed position (queries wait for min_lsn) */
    int wake_fd;                        /* eventfd: wakes the query thread (requests, commits) */
    char durability[16];                /* the ACK's word: the last batch's (or the connection's); guarded by lock */
    int durability_low;                 /* lowest pg_durability_rank of the batches made durable since the
                                           loop last read durable (-1: none); guarded by lock with durable */

    /*  For `herald status`: summed counts and live brokers, refreshed by
        the query thread (JSON text, guarded by lock). */
    char *status_json;
} pg_shared_t;

/*  True for a postgresql:// or postgres:// URL. */
bool
    pg_is_url (const char *text);

/*  Connects to url (application_name herald-broker-ROLE, TCP keepalives),
    checks the server's encoding. NULL with the reason in err (one line). */
PGconn *
    pg_connect (const char *url, const char *role, char *err, size_t errlen);

/*  The connection's error as one line (no newline), in err. */
const char *
    pg_error (PGconn *conn, const PGresult *res, char *err, size_t errlen);

/*  Runs a command (no parameters); 0, or -1 with err filled. */
int
    pg_exec (PGconn *conn, const char *sql, char *err, size_t errlen);

/*  True when the connection is broken (a result cannot be trusted to say
    what happened on the server). */
bool
    pg_lost (PGconn *conn);

/*  The durability word the server's settings give a commit on conn
    (commit, commit-standby, commit-async), in out (16 bytes). */
void
    pg_durability (PGconn *conn, char *out, size_t size);

/*  What pg_durability asks; the writer asks it again after each COMMIT,
    in the same pipeline: a reload (ALTER SYSTEM, synchronous_standby_names
    cleared to ride out a lost standby) reaches a session at its next
    command, so the answer says what the COMMIT before it waited for. */
#define PG_DURABILITY_SQL "SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names')"

/*  The word for those two settings' values. */
void
    pg_durability_word (const char *commit, const char *standbys, char *out, size_t size);

/*  Orders the words by what they promise: commit-async 0, commit 1,
    commit-standby 2. */
int
    pg_durability_rank (const char *word);

/*  The word of a rank (0 to 2). */
const char *
    pg_durability_named (int rank);

/*  Creates the schema, or migrates an older version, in one transaction
    under an advisory lock. 0, or -1 with err filled. */
int
    pg_schema (PGconn *conn, char *err, size_t errlen);

/*  Posts an answer or notice to the loop. */
void
    pg_post (pg_shared_t *shared, index_msg_t *msg);

/*  Wakes the query thread. */
void
    pg_wake (int fd);

/*  A PostgreSQL array literal being built, for a parameter in text form
    ("{1,2}", "{\"a b\",NULL}"): pg_array_text quotes and escapes. Start
    with { 0 }; the text's data is the caller's to free. */
typedef struct {
    herald_text_t text;
    size_t count;
} pg_array_t;

void
    pg_array_text (pg_array_t *self, const char *data, size_t len);
void
    pg_array_int (pg_array_t *self, int64_t value);
void
    pg_array_null (pg_array_t *self);
/*  The literal (closed with "}"), or NULL on out of memory. */
const char *
    pg_array_end (pg_array_t *self);

#endif
