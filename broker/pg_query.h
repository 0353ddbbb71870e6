/*  pg_query: the PostgreSQL store's other thread, with its own connection.
    It answers the loop's requests as the SQLite index's thread does (track,
    dead list and show, an event's id, loads: here claims of free tasks,
    FOR UPDATE SKIP LOCKED), each once the writer has committed up to its
    min_lsn; and it keeps the broker among the living: its liveness row
    renewed every heartbeat, dead brokers' tasks freed after
    broker.takeover_timeout, free tasks waiting announced to the core
    (INDEX_BACKLOG, from NOTIFY and a look every heartbeat), blocks of event
    numbers fetched ahead, old events pruned, status figures refreshed.
    See docs/postgresql.md. */
#ifndef HERALD_PG_QUERY_H
#define HERALD_PG_QUERY_H

#include "index.h"
#include "pg_conn.h"

typedef struct pg_query pg_query_t;

/*  A query thread for shared (borrowed); conn is its connection, taken. */
pg_query_t *
    pg_query_new (pg_shared_t *shared, PGconn *conn);

/*  Starts the thread. 0 / -1. */
int
    pg_query_start (pg_query_t *self, char *err, size_t errlen);

/*  Stops: waiting requests are answered "stopping"; then this broker's
    tasks are freed and its liveness row deleted (the others claim them at
    once). NULL-safe. */
void
    pg_query_destroy (pg_query_t **self_p);

/*  Owner: a request (ownership passes until it comes back through
    shared->replies). */
void
    pg_query_post (pg_query_t *self, index_msg_t *msg);

/*  Refreshes the status figures now (at open, before the thread runs). */
void
    pg_query_refresh_status (pg_shared_t *shared, PGconn *conn);

#endif
