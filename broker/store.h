/*  store: the broker's durable state, behind one door. Two parts:
      - the journal (journal.h): an append-only log in `STORE.journal/`, the
        only thing an ACK waits for;
      - the index (index.h): the SQLite file `STORE` (inspect it with the
        sqlite3 shell), applied from the journal on its own thread, which
        answers every query (track, dead letters, tasks to load).
    Opening recovers: the journal is checked (a torn tail cut off, a damaged
    durable record refused) and replayed into the index from the position
    the index reached. Nothing else in the broker reads or writes a file.

    A store named by a URL (postgresql://...) is another store behind the
    same functions (store_ops.h: store_pg.h), which several brokers may
    share (store_shared); the journal and index figures are then 0. */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_config.h"
#include "index.h"
#include "journal.h"
#include "store_ops.h"

typedef struct store store_t;

typedef struct {
    const char *path;               /* the index file; the journal is PATH.journal/ */
    uint32_t segment_size;          /* journal segment bytes (0: default) */
    uint64_t journal_max;           /* journal bytes before appends are refused (0: no limit) */
    int64_t retention_ms;           /* events older than this, all done, are deleted */
    herald_metrics_t *metrics;      /* the journal's fdatasync times (borrowed, NULL = none) */
    const herald_config_t *config;  /* a shared store: channels, heartbeat, takeover (borrowed) */
} store_options_t;

/*  Opens both parts and checks the journal (no thread runs yet). info
    says where numbering resumes. NULL with err filled; *corrupt tells a
    damaged store from an I/O error. */
store_t *
    store_open (const store_options_t *options, index_info_t *info, bool *corrupt, char *err, size_t errlen);

/*  Replays the journal into the index and reports what it holds: counts
    per channel and every retained event's key. 0 / -1. */
int
    store_recover (store_t *self, index_count_fn *counts, index_key_fn *keys, void *ctx,
                   char *err, size_t errlen);

/*  Starts the journal's writer and the index's thread. 0 / -1. */
int
    store_start (store_t *self, char *err, size_t errlen);

/*  Writes what is staged, stops the threads, closes. NULL-safe. */
void
    store_destroy (store_t **self_p);

/*  Journal (see journal.h). */
uint64_t
    store_append (store_t *self, const void *payload, uint32_t len);
journal_status_t
    store_append_status (store_t *self);
const char *
    store_errstr (store_t *self);
void
    store_flush (store_t *self);
/*  Makes what is staged durable on the calling thread when that is the
    cheaper way (journal_commit_here: durable (arg) is called once it is,
    before the journal's own bookkeeping); false: call store_flush. */
bool
    store_commit_here (store_t *self, journal_durable_fn *durable, void *arg);
uint64_t
    store_durable (store_t *self);
uint64_t
    store_end (store_t *self);
int
    store_journal_fd (store_t *self);
void
    store_journal_clear (store_t *self);

/*  Index (see index.h). A request whose min_lsn is UINT64_MAX waits for
    everything appended so far. */
void
    store_post (store_t *self, index_msg_t *msg);
index_msg_t *
    store_take (store_t *self);
int
    store_index_fd (store_t *self);

/*  Bytes on disk: journal segments and index file; and how far the index
    lags behind the journal (bytes). */
uint64_t
    store_journal_bytes (store_t *self);
int64_t
    store_index_bytes (store_t *self);
uint64_t
    store_index_lag (store_t *self);

/*  A new dedup retention for the index's pruning (a reload). */
void
    store_set_retention (store_t *self, int64_t retention_ms);

/*  Facts for `herald status`, added to its answer (reply: "broker",
    "channels", ...). */
void
    store_status (store_t *self, json_t *reply);

/*  A store several brokers may share (core_start_t.shared), and what the
    core asks of one (store_ops.h); the embedded store is not shared. */
bool
    store_shared (store_t *self);
uint64_t
    store_next_seq (store_t *self);
uint64_t
    store_append_event (store_t *self, const void *payload, uint32_t len, uint32_t held);
int
    store_commit_result (store_t *self, uint64_t lsn, store_commit_t *out);
const char *
    store_durability (store_t *self);

#endif
