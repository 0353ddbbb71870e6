/*  store_pg: the store in PostgreSQL, shared by any number of brokers
    (broker.store: "postgresql://user@host:port/db"; the password comes
    from PGPASSWORD or PGPASSFILE). The same facade as the embedded store
    (store.h, through store_ops.h): its writer (pg_writer.h) commits each
    batch of records in one transaction, and the ACK follows the commit;
    its query thread (pg_query.h) answers queries, claims free tasks and
    keeps the broker's liveness row. The design, what each failure costs,
    and how it keeps the core's rules: docs/postgresql.md. */
#ifndef HERALD_STORE_PG_H
#define HERALD_STORE_PG_H

#include <stdbool.h>

#include "store.h"
#include "store_ops.h"

extern const store_ops_t store_pg_ops;

/*  True for a postgresql:// or postgres:// URL. */
bool
    store_pg_is_url (const char *text);

/*  Connects (both connections), creates or migrates the schema, registers
    this broker (its instance id: info->boots), frees the tasks of brokers
    of this host whose process is gone, reserves event numbers. NULL with
    err filled (*corrupt: the schema is not one this version can use). */
void *
    store_pg_open (const store_options_t *options, index_info_t *info, bool *corrupt, char *err, size_t errlen);

#endif
