/*  store_ops: the store facade's table of functions, for a store other than
    the embedded one (store.c: the journal and the SQLite index). store.c
    opens the embedded store itself, and any other through its table:
    today the PostgreSQL store (store_pg.h), chosen by a postgresql:// URL.
    Every function takes the implementation's own handle.

    A store shared by several brokers (store_ops_t.shared) also answers
    what the core asks of such a store (core.h: core_start_t.shared): event
    numbers from blocks reserved across brokers, which fan-out places this
    broker keeps, and whether a durable event was stored or found its key
    stored already. */
#ifndef HERALD_STORE_OPS_H
#define HERALD_STORE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "index.h"
#include "journal.h"

/*  What became of an event record once durable, in a shared store. */
typedef enum {
    STORE_COMMIT_NEW = 0,           /* stored, with its tasks */
    STORE_COMMIT_DUPLICATE,         /* another event holds its key: seq and event_id name it; nothing stored */
    STORE_COMMIT_REFUSED            /* not stored, or not known to be: code and reason for the NACK */
} store_commit_kind_t;

typedef struct {
    store_commit_kind_t kind;
    uint64_t seq;                   /* DUPLICATE: the stored event's number */
    char event_id[129];             /* DUPLICATE: the stored event's id */
    const char *key;                /* the record's idempotency key (borrowed until the next call) */
    size_t key_len;
    int code;                       /* REFUSED: 503 */
    char reason[256];               /* REFUSED: what the producer is told */
} store_commit_t;

typedef struct {
    bool shared;                    /* several brokers may use it at once */
    int (*recover) (void *impl, index_count_fn *counts, index_key_fn *keys, void *ctx, char *err, size_t errlen);
    int (*start) (void *impl, char *err, size_t errlen);
    void (*destroy) (void **impl_p);
    uint64_t (*append) (void *impl, const void *payload, uint32_t len);
    journal_status_t (*append_status) (void *impl);
    const char *(*errstr) (void *impl);
    void (*flush) (void *impl);
    uint64_t (*durable) (void *impl);
    uint64_t (*end) (void *impl);
    int (*journal_fd) (void *impl);
    void (*journal_clear) (void *impl);
    void (*post) (void *impl, index_msg_t *msg);
    index_msg_t *(*take) (void *impl);
    int (*index_fd) (void *impl);
    /*  Facts for `herald status`, added to its answer (reply: "broker",
        "channels", ...). */
    void (*status) (void *impl, json_t *reply);
    /*  Shared stores only. */
    uint64_t (*next_seq) (void *impl);
    uint64_t (*append_event) (void *impl, const void *payload, uint32_t len, uint32_t held);
    int (*commit_result) (void *impl, uint64_t lsn, store_commit_t *out);
    const char *(*durability) (void *impl);
    /*  A new dedup retention (a reload), read by the store's own threads. */
    void (*set_retention) (void *impl, int64_t retention_ms);
} store_ops_t;

#endif
