/*  pg_writer: the PostgreSQL store's ACK path. The loop stages records
    (record.h payloads) as it would in the journal; a thread with its own
    connection turns each batch into one transaction (the statements of the
    batch pipelined: a couple of round trips whatever its size, then
    COMMIT) while the loop stages the next batch (pipelined group commit).
    A batch is durable when COMMIT has returned; positions (LSNs) are byte
    counts of what was staged, as the journal's.

    What became of each event record is decided at commit: stored, a
    duplicate of an event another broker stored (the unique key), or
    refused (the connection was down: not stored; or broke during the
    commit: not known). pg_writer_commit_result says which, once durable.
    Outcomes and operator commands of a batch that did not commit are
    written again after the reconnection (they are idempotent where it
    matters); the tasks of a batch whose commit is not known are freed
    then, for any broker to claim. See docs/postgresql.md. */
#ifndef HERALD_PG_WRITER_H
#define HERALD_PG_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "herald_metrics.h"
#include "journal.h"
#include "pg_conn.h"
#include "store_ops.h"

typedef struct pg_writer pg_writer_t;

/*  A writer for shared (borrowed); conn is its connection, taken (NULL:
    it connects itself). metrics gets each commit's time (NULL = none). */
pg_writer_t *
    pg_writer_new (pg_shared_t *shared, PGconn *conn, herald_metrics_t *metrics);

/*  Starts the thread. 0 / -1. */
int
    pg_writer_start (pg_writer_t *self, char *err, size_t errlen);

/*  Commits what is staged (if it can), stops, closes; NULL-safe. */
void
    pg_writer_destroy (pg_writer_t **self_p);

/*  Loop: stages a record; held: fan-out places this broker keeps (event
    records). The position past it, or 0 (pg_writer_status says why:
    JOURNAL_BUSY, JOURNAL_UNAVAILABLE). */
uint64_t
    pg_writer_append (pg_writer_t *self, const void *payload, uint32_t len, uint32_t held);

/*  Loop: hands what is staged to the thread (now, or when it is done with
    the batch in hand). */
void
    pg_writer_flush (pg_writer_t *self);

/*  Committed (or answered, for a batch that could not be) up to here. */
uint64_t
    pg_writer_durable (pg_writer_t *self);
uint64_t
    pg_writer_end (pg_writer_t *self);
bool
    pg_writer_pending (pg_writer_t *self);

/*  Readable when pg_writer_durable advanced. */
int
    pg_writer_fd (pg_writer_t *self);
void
    pg_writer_clear_fd (pg_writer_t *self);

journal_status_t
    pg_writer_status (pg_writer_t *self);
const char *
    pg_writer_errstr (pg_writer_t *self);

/*  Loop, for an event record that is durable (lsn: the position past it):
    what became of it. 0 (out filled). */
int
    pg_writer_commit_result (pg_writer_t *self, uint64_t lsn, store_commit_t *out);

#endif
