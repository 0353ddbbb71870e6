/*  index: SQLite picture of the store, applied from the journal on its own
    thread (see index.h). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "herald_clock.h"
#include "herald_log.h"
#include "herald_proto.h"
#include "index.h"
#include "record.h"

#define S_COMMIT_MS         200         /* a transaction stays open this long at most */
#define S_TXN_BYTES         (8u << 20)  /* and takes at most this much of the journal... */
#define S_TXN_BYTES_BEHIND  (48u << 20) /* ...or this much while behind (see s_txn_bytes) */
#define S_FULL_CAREFUL_MS   600000      /* so long after the disk was full, transactions stay small */
#define S_QUIET_MS          200         /* the journal is quiet when it grows by less than... */
#define S_QUIET_BYTES       (2u << 20)  /* ...this much in S_QUIET_MS (10 MiB/s) */
#define S_WAKE_MS           50          /* the thread looks at the journal this often */
#define S_WINDOW_EVENTS     8000        /* events held before they are written */
#define S_CHUNK_BYTES       (256u << 10)    /* the window's strings are taken from chunks this big... */
#define S_CHUNKS_KEPT       32          /* ...of which it keeps this many when cleared (8 MiB) */
#define S_RECENT_SLOTS      65536       /* written events whose pending bits are known (a power of two) */
#define S_RECENT_LISTS      64          /* distinct fan-out lists they name */
#define S_BEHIND_BYTES      (8u << 20)  /* this far behind the journal, the index stops yielding... */
#define S_YIELD_BYTES       (1u << 20)  /* applied before requests waiting are answered (s_apply_until) */
#define S_CAUGHT_UP_BYTES   (1u << 20)  /* ...until it is back within this */
#define S_PRUNE_IDLE_MS     60000
#define S_PRUNE_BATCH       500
#define S_PRUNE_FIRST_MS    5000

enum {
    S_INS_EVENT, S_INS_TASK, S_GET_TASK, S_UPD_TASK, S_INS_ATTEMPT, S_SET_META, S_COUNT_ADD,
    S_COUNT_NEW, S_GET_PENDING, S_INS_PENDING, S_TAKE_PENDING, S_INS_OUTCOME, S_BEGIN, S_COMMIT, S_ROLLBACK,
    S_STMT_COUNT
};

static const char *s_sql[S_STMT_COUNT] = {
    [S_INS_EVENT] = "INSERT OR REPLACE INTO events (seq, uid, id, source, type, dedup_key, received_at,"
                    " channels, done_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_INS_TASK] = "INSERT OR REPLACE INTO tasks (seq, ch, channel, state, attempts, throttled, not_before,"
                   " retry_delay, last_error, updated_at, requeued)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [S_GET_TASK] = "SELECT state, channel, requeued FROM tasks WHERE seq = ?1 AND ch = ?2",
    [S_UPD_TASK] = "UPDATE tasks SET state = ?3, attempts = ?4, throttled = ?5, not_before = ?6,"
                   " retry_delay = ?7, last_error = ?8, updated_at = ?9 WHERE seq = ?1 AND ch = ?2",
    [S_INS_ATTEMPT] = "INSERT INTO attempts (seq, ch, attempt, at, outcome, error)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_SET_META] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
    [S_COUNT_ADD] = "UPDATE counts SET pending = pending + ?2, done = done + ?3, dead = dead + ?4"
                    " WHERE channel = ?1",
    [S_COUNT_NEW] = "INSERT OR IGNORE INTO counts (channel, pending, done, dead) VALUES (?1, 0, 0, 0)",
    [S_GET_PENDING] = "SELECT p.bits, e.channels FROM events e LEFT JOIN pending p ON p.seq = e.seq"
                      " WHERE e.seq = ?1",
    [S_INS_PENDING] = "INSERT OR REPLACE INTO pending (seq, bits, done_at) VALUES (?1, ?2, 0)",
    [S_TAKE_PENDING] = "UPDATE pending SET bits = bits & ~?2,"
                       " done_at = CASE WHEN ?3 > done_at THEN ?3 ELSE done_at END WHERE seq = ?1",
    /*  Numbered as S_UPD_TASK (s_bind_outcome binds ?1 to ?9 of both). */
    [S_INS_OUTCOME] = "INSERT INTO tasks (seq, ch, state, attempts, throttled, not_before, retry_delay,"
                      " last_error, updated_at, channel, requeued)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

_Static_assert (RECORD_MAX_FANOUT <= 62, "an event's pending tasks are bits of an SQLite integer");

/*  The pending bits of events written with tasks pending at their first
    attempt, in a table of their own: bit i for the i-th channel of the
    event's channels, and done_at the latest of its tasks done at the first
    attempt after the event was written (the event's own done_at is that of
    those done before). A row stays, its bits 0, until its event is pruned.
    Its bits change as the tasks are worked off: a row of 20-odd bytes, a
    page for hundreds of events, where an UPDATE of the event's own row
    (herald/3, its body beside it) rewrote a page for every three or four
    events (BENCHMARKS.md). No index on the rows with bits: the loads read
    them from their cursor on, in seq order, and skip those without; such
    an index cost every change a second B-tree (the index's CPU in a drain
    15 % higher). */
#define S_PENDING_SCHEMA \
    "CREATE TABLE IF NOT EXISTS pending (" \
    "  seq INTEGER PRIMARY KEY," \
    "  bits INTEGER NOT NULL," \
    "  done_at INTEGER NOT NULL DEFAULT 0);"

/*  Which tasks have a row in tasks: not one done at its first attempt (its
    event's channels and done_at stand for it), nor one pending at its first
    attempt, not yet tried and never failed (bit i of its event's pending
    bits is set, i its place in channels). A row is the task's
    state whenever there is one, and a bit is set only while there is none.
    So an event whose tasks go as planned writes one row (and one in
    pending if they were not done when it was written): with three pending
    task rows and their tasks_pending entries, the index spent more than
    twice the time per event (BENCHMARKS.md). */
static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY,"
    "  uid TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  dedup_key TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  channels TEXT NOT NULL,"         /* the fan-out: channel names, space separated, in order */
    "  done_at INTEGER NOT NULL DEFAULT 0,"  /* when its last task done at the first attempt was */
    "  body TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_id ON events (id);"
    S_PENDING_SCHEMA
    "CREATE TABLE IF NOT EXISTS tasks ("
    "  seq INTEGER NOT NULL,"
    "  ch INTEGER NOT NULL,"
    "  channel TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  throttled INTEGER NOT NULL DEFAULT 0,"
    "  not_before INTEGER NOT NULL DEFAULT 0,"
    "  retry_delay INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  updated_at INTEGER NOT NULL,"
    "  requeued INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (seq, ch)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (channel, seq) WHERE state = 0 AND requeued = 0;"
    "CREATE INDEX IF NOT EXISTS tasks_requeued ON tasks (channel, requeued) WHERE state = 0 AND requeued > 0;"
    "CREATE INDEX IF NOT EXISTS tasks_dead ON tasks (channel, seq) WHERE state = 2;"
    "CREATE TABLE IF NOT EXISTS attempts ("
    "  seq INTEGER NOT NULL,"
    "  ch INTEGER NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL,"
    "  error TEXT);"
    "CREATE INDEX IF NOT EXISTS attempts_task ON attempts (seq, ch);"
    "CREATE TABLE IF NOT EXISTS counts ("
    "  channel TEXT PRIMARY KEY,"
    "  pending INTEGER NOT NULL,"
    "  done INTEGER NOT NULL,"
    "  dead INTEGER NOT NULL);";

/*  A herald/2 store becomes a herald/4 one: the table of pending bits
    comes, empty (its pending tasks keep their rows, which still count). */
static const char *s_migrate_v2 =
    S_PENDING_SCHEMA
    "UPDATE meta SET value = '" INDEX_SCHEMA "' WHERE key = 'schema';";

/*  A herald/3 store becomes a herald/4 one: events' pending bits move to
    their table (the events' done_at stays where it is), and the column
    goes (SQLite rewrites the events table: a 288 MB store of 400,000
    pending events took the broker 2.1 s from its start to ready). */
static const char *s_migrate_v3 =
    S_PENDING_SCHEMA
    "INSERT INTO pending (seq, bits, done_at) SELECT seq, pending, 0 FROM events WHERE pending <> 0;"
    "DROP INDEX IF EXISTS events_pending;"
    "ALTER TABLE events DROP COLUMN pending;"
    "UPDATE meta SET value = '" INDEX_SCHEMA "' WHERE key = 'schema';";

/*  A herald/1 store (one SQLite file, tasks numbered by the broker) becomes
    a herald/4 one in a single transaction. Keys already in today's form
    (key US type US s|n US value, ce US source US id) are kept; older ones
    (type US value) take the string form, the type of a key value not
    having been recorded then. */
static const char *s_migrate_v1 =
    "ALTER TABLE events RENAME TO events_v1;"
    "ALTER TABLE tasks RENAME TO tasks_v1;"
    "ALTER TABLE attempts RENAME TO attempts_v1;"
    "DROP INDEX IF EXISTS events_id;"
    "DROP INDEX IF EXISTS tasks_open;"
    "DROP INDEX IF EXISTS tasks_dead;"
    "DROP INDEX IF EXISTS attempts_task;"
    "%SCHEMA%"
    "INSERT INTO events (seq, uid, id, source, type, dedup_key, received_at, channels, done_at, body)"
    " SELECT e.seq,"
    "  coalesce ((SELECT substr (t.key, 1, instr (t.key, '.') - 1) FROM tasks_v1 t"
    "             WHERE t.event_seq = e.seq LIMIT 1), printf ('%016x', e.seq)),"
    "  e.id, e.source, e.type,"
    "  CASE WHEN substr (e.dedup_key, 1, 3) = 'ce' || char (31)"
    "         OR substr (e.dedup_key, 1, 4) = 'key' || char (31) THEN e.dedup_key"
    "       ELSE 'key' || char (31) || substr (e.dedup_key, 1, instr (e.dedup_key, char (31)))"
    "            || 's' || char (31) || substr (e.dedup_key, instr (e.dedup_key, char (31)) + 1) END,"
    "  e.received_at,"
    "  coalesce ((SELECT group_concat (channel, ' ') FROM (SELECT channel FROM tasks_v1 t"
    "             WHERE t.event_seq = e.seq ORDER BY t.id)), ''),"
    "  0, e.body FROM events_v1 e;"
    "INSERT INTO tasks (seq, ch, channel, state, attempts, throttled, not_before, retry_delay,"
    "                   last_error, updated_at, requeued)"
    " SELECT t.event_seq, t.id - e.first_task, t.channel, t.state, t.attempts, 0, t.not_before,"
    "        t.retry_delay, t.last_error, t.updated_at, 0"
    " FROM tasks_v1 t JOIN events_v1 e ON e.seq = t.event_seq;"
    "INSERT INTO attempts (seq, ch, attempt, at, outcome, error)"
    " SELECT t.event_seq, t.id - e.first_task, a.attempt, a.at, a.outcome, a.error"
    " FROM attempts_v1 a JOIN tasks_v1 t ON t.id = a.task_id JOIN events_v1 e ON e.seq = t.event_seq;"
    "INSERT OR REPLACE INTO counts (channel, pending, done, dead)"
    " SELECT channel, sum (state = 0), sum (state = 1), sum (state = 2) FROM tasks GROUP BY channel;"
    "DROP TABLE attempts_v1; DROP TABLE tasks_v1; DROP TABLE events_v1;"
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', '" INDEX_SCHEMA "');"
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', (SELECT coalesce (max (seq), 0) + 1 FROM events));"
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('applied_lsn', '0');";

//  --------------------------------------------------------------------------
//  The window: events read from the journal and not yet written, so that
//  an event and the outcomes that follow it soon become one row.

typedef struct {
    int state;                      /* 0 pending, 1 done, 2 dead */
    uint32_t attempts, throttled;
    int64_t not_before, delay, updated_at;
    char *error;                    /* owned */
    bool history;                   /* a failed attempt was recorded */
} s_wtask_t;

typedef struct {
    uint64_t seq;
    int64_t received_at;
    char uid[33];
    int fanout;
    char *channels[RECORD_MAX_FANOUT];  /* in the window's chunks, as the others */
    char *list;                     /* the channels space separated (events.channels) */
    char *type, *id, *source, *dedup_key, *body;
    size_t list_len, body_len, key_len;
    s_wtask_t *tasks;               /* fanout of them, in the window's chunks */
} s_wevent_t;

typedef struct {
    s_wevent_t *events;
    size_t count, cap;
    uint64_t first_seq;             /* events are consecutive by seq... mostly: a map finds them */
    size_t *slots;                  /* open addressing: seq -> index + 1 */
    size_t slot_mask;
    char **chunks;                  /* the events' strings, S_CHUNK_BYTES each... */
    size_t chunk_count, chunk_cap;
    char **big;                     /* ...but a big event's, each its own */
    size_t big_count, big_cap;
    size_t chunk_at;                /* the chunk in use */
    size_t chunk_used;              /* bytes of it taken */
} s_window_t;

typedef struct {
    char name[64];
    int64_t pending, done, dead;
} s_delta_t;

/*  Events written with tasks pending at their first attempt, or read so by
    a load, by seq (direct-mapped: the later one takes a slot). Their
    pending bits (their rows in pending) are known here, so that an outcome
    that comes after its event left the window (a backlog: the window holds
    S_WINDOW_EVENTS and each commit writes it) costs no read: a task done at its first
    attempt clears its bit here, and each event gets one UPDATE at the next
    write (s_recent_write) however many of its tasks were done meanwhile.
    Without it, 100,000 events consumed end to end behind a backlog cost the
    index three reads and an UPDATE of the event's bits per task, three times
    its CPU with no worker (BENCHMARKS.md). The index thread only. */
typedef struct {
    uint64_t seq_1;                 /* the event's seq + 1; 0: an empty slot */
    int64_t pending;                /* the row's pending bits, less those cleared here */
    int64_t cleared;                /* bits cleared here and not yet written */
    int64_t done_at;                /* the latest done at a cleared bit */
    uint32_t list;                  /* its channels: recent_lists[list] */
} s_recent_t;

struct index {
    char path[1024];
    sqlite3 *db;
    sqlite3_stmt *stmt[S_STMT_COUNT];
    journal_t *journal;
    journal_reader_t *reader;
    _Atomic uint64_t applied;       /* journal position applied (in the open transaction or before) */
    _Atomic bool asked;             /* requests posted and not yet taken by the thread */
    uint64_t committed;             /* position of the last commit */
    bool yielding;                  /* the thread runs under SCHED_IDLE (see s_thread) */
    bool started_yielding;          /* it could at start (else it stays at nice 19) */
    uint64_t next_seq;
    bool in_txn;
    int64_t txn_began;              /* monotonic ms */
    s_window_t window;
    s_recent_t *recent;             /* S_RECENT_SLOTS, allocated at the first use */
    uint64_t *recent_dirty;         /* seqs with bits cleared and not yet written */
    size_t recent_dirty_count, recent_dirty_cap;
    char *recent_lists[S_RECENT_LISTS];     /* fan-out lists (events.channels), owned */
    int recent_list_count;
    s_delta_t deltas[INDEX_MAX_CHANNELS * 2];
    int delta_count;
    _Atomic int64_t retention_ms;   /* the index thread reads it; a reload may change it (index_set_retention) */
    uint64_t prune_cursor;
    int64_t next_prune;
    int64_t full_since;             /* monotonic ms: the disk was full at the last try */
    int64_t full_last;              /* monotonic ms: the disk was last found full (0: never) */
    bool quiet;                     /* the journal grew little of late (s_txn_bytes) */
    uint64_t quiet_from;            /* durable at quiet_at */
    int64_t quiet_at;
    uint64_t requeue_serial;        /* the last dead-retry serial given */
    index_key_fn *key_fn;           /* at catch-up: keys of replayed events */
    void *key_ctx;
    /*  Between threads. */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    index_msg_t *requests, *requests_tail;
    index_msg_t *replies, *replies_tail;
    int event_fd;
    _Atomic int64_t file_bytes;
    char err[2048];
};

static int
s_fail (index_t *self, const char *what)
{
    snprintf (self->err, sizeof self->err, "index %.900s: %s: %s (sqlite code %d)", self->path, what,
              self->db? sqlite3_errmsg (self->db): "no database",
              self->db? sqlite3_extended_errcode (self->db): 0);
    return -1;
}

static int
s_exec (index_t *self, const char *sql, const char *what)
{
    if (sqlite3_exec (self->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return s_fail (self, what);
    return 0;
}

static int
s_step (index_t *self, int which, const char *what)
{
    sqlite3_stmt *stmt = self->stmt[which];
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return s_fail (self, what);
    return 0;
}

static void
s_bind_str (sqlite3_stmt *stmt, int i, const char *text)
{
    if (text)
        sqlite3_bind_text (stmt, i, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (stmt, i);
}

static char *
s_dup (record_str_t s)
{
    char *out = malloc (s.len + 1);
    if (out) {
        memcpy (out, s.ptr, s.len);
        out[s.len] = '\0';
    }
    return out;
}

/*  Copies s to *at, NUL-terminated, and moves *at past it. */
static char *
s_put (char **at, record_str_t s)
{
    char *out = *at;
    memcpy (out, s.ptr, s.len);
    out[s.len] = '\0';
    *at += s.len + 1;
    return out;
}

static const char *
s_col (sqlite3_stmt *stmt, int i)
{
    const char *text = (const char *) sqlite3_column_text (stmt, i);
    return text? text: "";
}

static int
s_set_meta (index_t *self, const char *key, uint64_t value)
{
    char text[32];
    snprintf (text, sizeof text, "%" PRIu64, value);
    sqlite3_stmt *stmt = self->stmt[S_SET_META];
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, text, -1, SQLITE_TRANSIENT);
    return s_step (self, S_SET_META, "write meta");
}

static uint64_t
s_get_meta (index_t *self, const char *key)
{
    sqlite3_stmt *stmt = NULL;
    uint64_t value = 0;
    if (sqlite3_prepare_v2 (self->db, "SELECT value FROM meta WHERE key = ?1", -1, &stmt, NULL) == SQLITE_OK) {
        sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step (stmt) == SQLITE_ROW)
            value = strtoull (s_col (stmt, 0), NULL, 10);
    }
    sqlite3_finalize (stmt);
    return value;
}

//  --------------------------------------------------------------------------
//  Counts: deltas per channel, written at each commit

static s_delta_t *
s_delta (index_t *self, const char *channel)
{
    for (int i = 0; i < self->delta_count; i++)
        if (strcmp (self->deltas[i].name, channel) == 0)
            return &self->deltas[i];
    if (self->delta_count == (int) (sizeof self->deltas / sizeof self->deltas[0]))
        return NULL;
    s_delta_t *d = &self->deltas[self->delta_count++];
    memset (d, 0, sizeof *d);
    snprintf (d->name, sizeof d->name, "%s", channel);
    return d;
}

static void
s_count (index_t *self, const char *channel, int state, int64_t n)
{
    s_delta_t *d = s_delta (self, channel);
    if (!d)
        return;
    if (state == 0)
        d->pending += n;
    else
    if (state == 1)
        d->done += n;
    else
        d->dead += n;
}

static int
s_write_counts (index_t *self)
{
    for (int i = 0; i < self->delta_count; i++) {
        s_delta_t *d = &self->deltas[i];
        sqlite3_stmt *stmt = self->stmt[S_COUNT_NEW];
        sqlite3_bind_text (stmt, 1, d->name, -1, SQLITE_STATIC);
        if (s_step (self, S_COUNT_NEW, "count tasks") != 0)
            return -1;
        stmt = self->stmt[S_COUNT_ADD];
        sqlite3_bind_text (stmt, 1, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, d->pending);
        sqlite3_bind_int64 (stmt, 3, d->done);
        sqlite3_bind_int64 (stmt, 4, d->dead);
        if (s_step (self, S_COUNT_ADD, "count tasks") != 0)
            return -1;
    }
    self->delta_count = 0;
    return 0;
}

//  --------------------------------------------------------------------------
//  The window

static s_wevent_t *
s_window_find (s_window_t *w, uint64_t seq)
{
    if (!w->slots)
        return NULL;
    size_t i = (size_t) (seq * 0x9e3779b97f4a7c15ULL >> 20) & w->slot_mask;
    while (w->slots[i]) {
        s_wevent_t *e = &w->events[w->slots[i] - 1];
        if (e->seq == seq)
            return e;
        i = (i + 1) & w->slot_mask;
    }
    return NULL;
}

static int
s_window_rehash (s_window_t *w, size_t capacity)
{
    size_t *slots = calloc (capacity, sizeof *slots);
    if (!slots)
        return -1;
    free (w->slots);
    w->slots = slots;
    w->slot_mask = capacity - 1;
    for (size_t k = 0; k < w->count; k++) {
        size_t i = (size_t) (w->events[k].seq * 0x9e3779b97f4a7c15ULL >> 20) & w->slot_mask;
        while (w->slots[i])
            i = (i + 1) & w->slot_mask;
        w->slots[i] = k + 1;
    }
    return 0;
}

static s_wevent_t *
s_window_add (s_window_t *w, uint64_t seq)
{
    if (w->count == w->cap) {
        size_t cap = w->cap? w->cap * 2: 1024;
        s_wevent_t *grown = realloc (w->events, cap * sizeof *grown);
        if (!grown)
            return NULL;
        w->events = grown;
        w->cap = cap;
    }
    if (!w->slots || (w->count + 1) * 2 > w->slot_mask + 1) {
        size_t capacity = w->slots? (w->slot_mask + 1) * 2: 2048;
        if (s_window_rehash (w, capacity) != 0)
            return NULL;
    }
    s_wevent_t *e = &w->events[w->count++];
    memset (e, 0, sizeof *e);
    e->seq = seq;
    size_t i = (size_t) (seq * 0x9e3779b97f4a7c15ULL >> 20) & w->slot_mask;
    while (w->slots[i])
        i = (i + 1) & w->slot_mask;
    w->slots[i] = w->count;
    return e;
}

static void
s_wevent_free (s_wevent_t *e)
{
    for (int i = 0; i < e->fanout; i++)
        free (e->tasks[i].error);
}

/*  Appends p to list (grown by doubling). 0 / -1. */
static int
s_ptr_push (char ***list, size_t *count, size_t *cap, char *p)
{
    if (*count == *cap) {
        size_t grown_cap = *cap? *cap * 2: 16;
        char **grown = realloc (*list, grown_cap * sizeof *grown);
        if (!grown)
            return -1;
        *list = grown;
        *cap = grown_cap;
    }
    (*list)[(*count)++] = p;
    return 0;
}

/*  size bytes for an event's strings, valid until the window is cleared;
    NULL when out of memory. Taken from S_CHUNK_BYTES chunks (no malloc
    and free per event); a big event gets a block of its own. */
static char *
s_window_alloc (s_window_t *w, size_t size)
{
    size = (size + 7) & ~(size_t) 7;
    if (size > S_CHUNK_BYTES / 4) {
        char *own = malloc (size);
        if (own && s_ptr_push (&w->big, &w->big_count, &w->big_cap, own) != 0) {
            free (own);
            own = NULL;
        }
        return own;
    }
    if (w->chunk_at >= w->chunk_count || w->chunk_used + size > S_CHUNK_BYTES) {
        size_t next = w->chunk_at < w->chunk_count? w->chunk_at + 1: 0;
        if (next == w->chunk_count) {
            char *chunk = malloc (S_CHUNK_BYTES);
            if (!chunk || s_ptr_push (&w->chunks, &w->chunk_count, &w->chunk_cap, chunk) != 0) {
                free (chunk);
                return NULL;
            }
        }
        w->chunk_at = next;
        w->chunk_used = 0;
    }
    char *out = w->chunks[w->chunk_at] + w->chunk_used;
    w->chunk_used += size;
    return out;
}

static void
s_window_clear (s_window_t *w)
{
    for (size_t k = 0; k < w->count; k++)
        s_wevent_free (&w->events[k]);
    w->count = 0;
    while (w->chunk_count > S_CHUNKS_KEPT)
        free (w->chunks[--w->chunk_count]);
    while (w->big_count)
        free (w->big[--w->big_count]);
    w->chunk_at = w->chunk_count;   /* none in use: the next take starts at the first */
    w->chunk_used = 0;
    if (w->slots)
        memset (w->slots, 0, (w->slot_mask + 1) * sizeof *w->slots);
}

/*  A task in the window that needs no row: done or pending at its first
    attempt (see s_schema). */
static bool
s_no_row (const s_wtask_t *t, bool *pending)
{
    *pending = t->state == 0 && t->attempts == 0 && t->throttled == 0 && !t->history && !t->error
            && t->not_before == 0 && t->delay == 0;
    return *pending || (t->state == 1 && t->attempts <= 1 && t->throttled == 0 && !t->history);
}

/*  Clears bits of an event's pending bits (S_TAKE_PENDING: its row in
    pending), with done_at its latest done when later than the row's (0:
    none). 0 / -1. */
static int
s_take_pending (index_t *self, uint64_t seq, int64_t bits, int64_t done_at, const char *what)
{
    sqlite3_stmt *take = self->stmt[S_TAKE_PENDING];
    sqlite3_bind_int64 (take, 1, (int64_t) seq);
    sqlite3_bind_int64 (take, 2, bits);
    sqlite3_bind_int64 (take, 3, done_at);
    return s_step (self, S_TAKE_PENDING, what);
}

/*  True if the task in the state an outcome gives it needs neither a row
    nor its bit: done at its first attempt. */
static bool
s_done_without_row (const record_outcome_t *rec, int state)
{
    s_wtask_t task = { .state = state, .attempts = rec->attempts, .throttled = rec->throttled,
                       .not_before = rec->not_before, .delay = rec->delay, .updated_at = rec->at,
                       .history = rec->log_attempt };
    bool is_pending;
    return s_no_row (&task, &is_pending) && !is_pending;
}

//  --------------------------------------------------------------------------
//  Recently written events (s_recent_t)

static bool
s_channel_at (const char *channels, int ch, char *name, size_t size);

/*  The slot seq takes (NULL before the first use). */
static s_recent_t *
s_recent_slot (index_t *self, uint64_t seq)
{
    return self->recent? &self->recent[seq & (S_RECENT_SLOTS - 1)]: NULL;
}

static s_recent_t *
s_recent_find (index_t *self, uint64_t seq)
{
    s_recent_t *r = s_recent_slot (self, seq);
    return r && r->seq_1 == seq + 1? r: NULL;
}

static void
s_recent_forget (index_t *self)
{
    if (self->recent)
        memset (self->recent, 0, S_RECENT_SLOTS * sizeof *self->recent);
    self->recent_dirty_count = 0;
}

/*  Writes the bits cleared at r, and its latest done, into its event's
    row in pending (in the open transaction). 0 / -1. */
static int
s_recent_write_one (index_t *self, s_recent_t *r)
{
    if (!r->cleared)
        return 0;
    if (s_take_pending (self, r->seq_1 - 1, r->cleared, r->done_at, "update event") != 0)
        return -1;
    r->cleared = 0;
    return 0;
}

/*  Writes every bit cleared here. With forget, the cache goes too. 0 / -1. */
static int
s_recent_write (index_t *self, bool forget)
{
    for (size_t i = 0; i < self->recent_dirty_count; i++) {
        s_recent_t *r = s_recent_find (self, self->recent_dirty[i]);
        if (r && s_recent_write_one (self, r) != 0)
            return -1;
    }
    self->recent_dirty_count = 0;
    if (forget)
        s_recent_forget (self);
    return 0;
}

/*  Remembers the pending bits an event was just written with, and
    its fan-out list. Nothing is remembered without memory or past
    S_RECENT_LISTS lists: outcomes then read the row. An older event in the
    slot has its cleared bits written first. 0 / -1. */
static int
s_recent_put (index_t *self, uint64_t seq, int64_t pending, const char *channels, size_t len)
{
    if (!pending)
        return 0;
    if (!self->recent) {
        self->recent = calloc (S_RECENT_SLOTS, sizeof *self->recent);
        if (!self->recent)
            return 0;
    }
    int list = -1;
    for (int i = self->recent_list_count - 1; i >= 0 && list < 0; i--)
        if (strncmp (self->recent_lists[i], channels, len) == 0 && self->recent_lists[i][len] == 0)
            list = i;
    if (list < 0) {
        char *copy = self->recent_list_count < S_RECENT_LISTS? strndup (channels, len): NULL;
        if (!copy)
            return 0;
        list = self->recent_list_count++;
        self->recent_lists[list] = copy;
    }
    s_recent_t *r = s_recent_slot (self, seq);
    if (r->seq_1 && s_recent_write_one (self, r) != 0)
        return -1;
    *r = (s_recent_t) { .seq_1 = seq + 1, .pending = pending, .list = (uint32_t) list };
    return 0;
}

/*  As s_recent_put for an event row just read, whose bits are as written:
    a slot with bits cleared and not yet written is left as it is (a read
    writes nothing). */
static void
s_recent_note (index_t *self, uint64_t seq, int64_t pending, const char *channels, size_t len)
{
    s_recent_t *r = s_recent_slot (self, seq);
    if (!r || !r->cleared)
        (void) s_recent_put (self, seq, pending, channels, len);
}

/*  An outcome for a task whose bit r holds: done at its first attempt, it
    clears the bit here and true; otherwise (the task gets a row) false,
    and the caller writes r and reads the row as for any other event. */
static bool
s_recent_take (index_t *self, s_recent_t *r, const record_outcome_t *rec, int state)
{
    char channel[64];
    if (rec->ch < 0 || rec->ch >= RECORD_MAX_FANOUT || !((r->pending >> rec->ch) & 1)
    ||  !s_done_without_row (rec, state)
    ||  !s_channel_at (self->recent_lists[r->list], rec->ch, channel, sizeof channel))
        return false;
    if (!r->cleared) {
        if (self->recent_dirty_count == self->recent_dirty_cap) {
            size_t cap = self->recent_dirty_cap? self->recent_dirty_cap * 2: 1024;
            uint64_t *grown = realloc (self->recent_dirty, cap * sizeof *grown);
            if (!grown)
                return false;
            self->recent_dirty = grown;
            self->recent_dirty_cap = cap;
        }
        self->recent_dirty[self->recent_dirty_count++] = rec->seq;
    }
    int64_t bit = (int64_t) 1 << rec->ch;
    r->pending &= ~bit;
    r->cleared |= bit;
    if (rec->at > r->done_at)
        r->done_at = rec->at;
    s_count (self, channel, 0, -1);
    s_count (self, channel, state, 1);
    return true;
}

/*  Writes the window's events and the rows their tasks need. */
static int
s_window_flush (index_t *self)
{
    s_window_t *w = &self->window;
    if (w->count == 0)
        return 0;
    for (size_t k = 0; k < w->count; k++) {
        s_wevent_t *e = &w->events[k];
        int64_t done_at = 0;
        int64_t pending = 0;
        for (int i = 0; i < e->fanout; i++) {
            s_wtask_t *t = &e->tasks[i];
            s_count (self, e->channels[i], t->state, 1);
            bool is_pending;
            if (s_no_row (t, &is_pending)) {
                if (is_pending)
                    pending |= (int64_t) 1 << i;
                else
                if (t->updated_at > done_at)
                    done_at = t->updated_at;
                continue;
            }
            sqlite3_stmt *stmt = self->stmt[S_INS_TASK];
            sqlite3_bind_int64 (stmt, 1, (int64_t) e->seq);
            sqlite3_bind_int (stmt, 2, i);
            sqlite3_bind_text (stmt, 3, e->channels[i], -1, SQLITE_STATIC);
            sqlite3_bind_int (stmt, 4, t->state);
            sqlite3_bind_int64 (stmt, 5, t->attempts);
            sqlite3_bind_int64 (stmt, 6, t->throttled);
            sqlite3_bind_int64 (stmt, 7, t->not_before);
            sqlite3_bind_int64 (stmt, 8, t->delay);
            s_bind_str (stmt, 9, t->error);
            sqlite3_bind_int64 (stmt, 10, t->updated_at? t->updated_at: e->received_at);
            sqlite3_bind_int64 (stmt, 11, 0);
            if (s_step (self, S_INS_TASK, "insert task") != 0)
                return -1;
        }
        sqlite3_stmt *stmt = self->stmt[S_INS_EVENT];
        sqlite3_bind_int64 (stmt, 1, (int64_t) e->seq);
        sqlite3_bind_text (stmt, 2, e->uid, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, e->id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 4, e->source, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 5, e->type, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 6, e->dedup_key, (int) e->key_len, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 7, e->received_at);
        sqlite3_bind_text (stmt, 8, e->list, (int) e->list_len, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 9, done_at);
        sqlite3_bind_text (stmt, 10, e->body, (int) e->body_len, SQLITE_STATIC);
        if (s_step (self, S_INS_EVENT, "insert event") != 0)
            return -1;
        if (pending) {
            stmt = self->stmt[S_INS_PENDING];
            sqlite3_bind_int64 (stmt, 1, (int64_t) e->seq);
            sqlite3_bind_int64 (stmt, 2, pending);
            if (s_step (self, S_INS_PENDING, "insert pending bits") != 0
            ||  s_recent_put (self, e->seq, pending, e->list, e->list_len) != 0)
                return -1;
        }
    }
    s_window_clear (w);
    return 0;
}

/*  Writes what the index holds in memory: the window's events, then the
    bits cleared in the cache. With forget the cache goes too: an
    operator's record (retry, purge, abandon) changes rows and bits behind
    it. 0 / -1. */
static int
s_write_held (index_t *self, bool forget)
{
    return s_window_flush (self) != 0 || s_recent_write (self, forget) != 0? -1: 0;
}

//  --------------------------------------------------------------------------
//  Applying records

static int
s_apply_event (index_t *self, const record_event_t *rec)
{
    s_wevent_t *e = s_window_add (&self->window, rec->seq);
    if (!e) {
        snprintf (self->err, sizeof self->err, "index %.900s: out of memory", self->path);
        return -1;
    }
    e->received_at = rec->received_at;
    memcpy (e->uid, rec->uid, sizeof e->uid);
    /*  One block for its tasks, then its strings (each NUL-terminated):
        the channels twice, one by one and as the list events.channels
        keeps. */
    size_t tasks = (size_t) rec->fanout * sizeof (s_wtask_t);
    size_t size = tasks + rec->type.len + rec->id.len + rec->source.len + rec->dedup_key.len + rec->body.len + 5;
    for (int i = 0; i < rec->fanout; i++)
        size += 2 * (rec->channels[i].len + 1);
    char *at = s_window_alloc (&self->window, size + 1);
    if (!at) {
        snprintf (self->err, sizeof self->err, "index %.900s: out of memory", self->path);
        return -1;
    }
    e->tasks = (s_wtask_t *) (void *) at;       /* s_window_alloc aligns to 8 */
    at += tasks;
    e->fanout = rec->fanout;
    for (int i = 0; i < rec->fanout; i++) {
        e->channels[i] = s_put (&at, rec->channels[i]);
        e->tasks[i] = (s_wtask_t) { .state = 0 };
    }
    e->list = at;
    for (int i = 0; i < rec->fanout; i++) {
        if (i)
            *at++ = ' ';
        memcpy (at, rec->channels[i].ptr, rec->channels[i].len);
        at += rec->channels[i].len;
    }
    e->list_len = (size_t) (at - e->list);
    *at++ = '\0';
    e->type = s_put (&at, rec->type);
    e->id = s_put (&at, rec->id);
    e->source = s_put (&at, rec->source);
    e->dedup_key = s_put (&at, rec->dedup_key);
    e->key_len = rec->dedup_key.len;
    e->body = s_put (&at, rec->body);
    e->body_len = rec->body.len;
    if (rec->seq >= self->next_seq)
        self->next_seq = rec->seq + 1;
    if (self->key_fn)
        self->key_fn (self->key_ctx, rec->seq, e->dedup_key, e->key_len);
    return 0;
}

/*  The name of the ch-th channel in channels (space separated) into name;
    false if there is none. */
static bool
s_channel_at (const char *channels, int ch, char *name, size_t size)
{
    const char *p = channels;
    for (int i = 0; p && i < ch; i++) {
        p = strchr (p, ' ');
        if (p)
            p++;
    }
    if (!p || !*p)
        return false;
    size_t len = strcspn (p, " ");
    snprintf (name, size, "%.*s", (int) len, p);
    return true;
}

/*  The place of channel in an event's fan-out (channels) if its bit is
    set in pending, else -1. */
static int
s_pending_place (const char *channels, int64_t pending, const char *channel)
{
    size_t want = strlen (channel);
    const char *p = channels;
    for (int i = 0; i < RECORD_MAX_FANOUT && *p; i++) {
        size_t len = strcspn (p, " ");
        if ((pending >> i) & 1 && len == want && memcmp (p, channel, len) == 0)
            return i;
        p += len;
        if (*p == ' ')
            p++;
    }
    return -1;
}

/*  Binds ?1 to ?9 of S_UPD_TASK or S_INS_OUTCOME: the task's new state
    as the outcome rec gives it. */
static void
s_bind_outcome (sqlite3_stmt *stmt, const record_outcome_t *rec, int state)
{
    sqlite3_bind_int64 (stmt, 1, (int64_t) rec->seq);
    sqlite3_bind_int (stmt, 2, rec->ch);
    sqlite3_bind_int (stmt, 3, state);
    sqlite3_bind_int64 (stmt, 4, rec->attempts);
    sqlite3_bind_int64 (stmt, 5, rec->throttled);
    sqlite3_bind_int64 (stmt, 6, rec->not_before);
    sqlite3_bind_int64 (stmt, 7, rec->delay);
    if (state == 1)
        sqlite3_bind_null (stmt, 8);
    else
        sqlite3_bind_text (stmt, 8, rec->error.ptr, (int) rec->error.len, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 9, rec->at);
}

/*  An outcome for a task of a written event with no row: pending at its
    first attempt (its bit is set: it goes, and the task gets the row its
    new state needs, if any), or gone (purged, pruned). 0 / -1. */
static int
s_outcome_no_row (index_t *self, const record_outcome_t *rec, int state)
{
    if (rec->ch < 0 || rec->ch >= RECORD_MAX_FANOUT)
        return 0;
    int64_t bit = (int64_t) 1 << rec->ch;
    sqlite3_stmt *get = self->stmt[S_GET_PENDING];
    sqlite3_bind_int64 (get, 1, (int64_t) rec->seq);
    int rc = sqlite3_step (get);
    int64_t pending = 0;
    char channel[64] = "";
    char list[RECORD_MAX_FANOUT * 65] = "";
    if (rc == SQLITE_ROW) {
        pending = sqlite3_column_int64 (get, 0);
        snprintf (list, sizeof list, "%s", s_col (get, 1));
        if (!s_channel_at (list, rec->ch, channel, sizeof channel))
            pending = 0;
    }
    sqlite3_reset (get);
    sqlite3_clear_bindings (get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_fail (self, "read event");
    if (!(pending & bit))
        return 0;       /* purged or pruned meanwhile */
    bool no_row = s_done_without_row (rec, state);
    if (no_row) {
        /*  The event is remembered from here (its slot's former event
            written first), so that this outcome and those of its other
            tasks clear bits in memory: one read of its rows and one
            UPDATE of its bits at the commit, not one of each per task. A
            backlog bigger than the cache, worked off from its oldest
            events, comes this way. */
        if (s_recent_put (self, rec->seq, pending, list, strlen (list)) != 0)
            return -1;
        s_recent_t *r = s_recent_find (self, rec->seq);
        if (r && s_recent_take (self, r, rec, state))
            return 0;
        if (r)
            r->seq_1 = 0;   /* not taken (no memory): the row takes the bit below, as it holds it */
    }
    if (s_take_pending (self, rec->seq, bit, no_row? rec->at: 0, "update event") != 0)
        return -1;
    if (!no_row) {
        sqlite3_stmt *stmt = self->stmt[S_INS_OUTCOME];
        s_bind_outcome (stmt, rec, state);
        sqlite3_bind_text (stmt, 10, channel, -1, SQLITE_STATIC);
        if (s_step (self, S_INS_OUTCOME, "insert task") != 0)
            return -1;
    }
    if (state != 0) {
        s_count (self, channel, 0, -1);
        s_count (self, channel, state, 1);
    }
    return 0;
}

static int
s_apply_outcome (index_t *self, const record_outcome_t *rec)
{
    int state = rec->kind == RECORD_DONE? 1: rec->kind == RECORD_DEAD? 2: 0;
    if (rec->log_attempt) {
        sqlite3_stmt *stmt = self->stmt[S_INS_ATTEMPT];
        sqlite3_bind_int64 (stmt, 1, (int64_t) rec->seq);
        sqlite3_bind_int (stmt, 2, rec->ch);
        sqlite3_bind_int64 (stmt, 3, rec->attempts);
        sqlite3_bind_int64 (stmt, 4, rec->at);
        sqlite3_bind_text (stmt, 5, rec->outcome.ptr, (int) rec->outcome.len, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 6, rec->error.ptr, (int) rec->error.len, SQLITE_STATIC);
        if (s_step (self, S_INS_ATTEMPT, "log attempt") != 0)
            return -1;
    }
    s_wevent_t *e = s_window_find (&self->window, rec->seq);
    if (e) {
        if (rec->ch < 0 || rec->ch >= e->fanout)
            return 0;
        s_wtask_t *t = &e->tasks[rec->ch];
        t->state = state;
        t->attempts = rec->attempts;
        t->throttled = rec->throttled;
        t->not_before = rec->not_before;
        t->delay = rec->delay;
        t->updated_at = rec->at;
        t->history = t->history || rec->log_attempt;
        free (t->error);
        t->error = state == 1? NULL: s_dup (rec->error);
        return 0;
    }
    s_recent_t *r = s_recent_find (self, rec->seq);
    if (r) {
        if (s_recent_take (self, r, rec, state))
            return 0;
        if (s_recent_write_one (self, r) != 0)
            return -1;
        r->seq_1 = 0;
    }
    /*  An older event: its task has a row (it was not done when written). */
    sqlite3_stmt *get = self->stmt[S_GET_TASK];
    sqlite3_bind_int64 (get, 1, (int64_t) rec->seq);
    sqlite3_bind_int (get, 2, rec->ch);
    int rc = sqlite3_step (get);
    int old_state = -1;
    char channel[64] = "";
    if (rc == SQLITE_ROW) {
        old_state = sqlite3_column_int (get, 0);
        snprintf (channel, sizeof channel, "%s", s_col (get, 1));
    }
    sqlite3_reset (get);
    sqlite3_clear_bindings (get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_fail (self, "read task");
    if (old_state < 0)
        return s_outcome_no_row (self, rec, state);
    sqlite3_stmt *stmt = self->stmt[S_UPD_TASK];
    s_bind_outcome (stmt, rec, state);
    if (s_step (self, S_UPD_TASK, "update task") != 0)
        return -1;
    if (old_state != state) {
        s_count (self, channel, old_state, -1);
        s_count (self, channel, state, 1);
    }
    return 0;
}

/*  The WHERE clause of an operator's selector over dead tasks t joined
    with their events e; binds ?1. */
static const char *
s_selector_sql (const record_admin_t *a)
{
    if (a->task_id.len)
        return "t.state = 2 AND e.uid || '.' || t.channel = ?1";
    if (a->channel.len)
        return "t.state = 2 AND t.channel = ?1";
    return "t.state = 2";
}

static void
s_bind_selector (sqlite3_stmt *stmt, const record_admin_t *a)
{
    if (a->task_id.len)
        sqlite3_bind_text (stmt, 1, a->task_id.ptr, (int) a->task_id.len, SQLITE_TRANSIENT);
    else
    if (a->channel.len)
        sqlite3_bind_text (stmt, 1, a->channel.ptr, (int) a->channel.len, SQLITE_TRANSIENT);
}

static void
s_post_reply (index_t *self, index_msg_t *msg);

static void
s_add_channel_count (index_msg_t *msg, const char *channel, int64_t n)
{
    for (int i = 0; i < msg->channel_count; i++)
        if (strcmp (msg->channels[i], channel) == 0) {
            msg->channel_counts[i] += n;
            return;
        }
    if (msg->channel_count < INDEX_MAX_CHANNELS) {
        snprintf (msg->channels[msg->channel_count], sizeof msg->channels[0], "%s", channel);
        msg->channel_counts[msg->channel_count++] = n;
    }
}

/*  dead retry: each selected task gets a fresh budget and a serial that
    orders it after everything the broker has loaded (its history stays). */
static int
s_apply_retry (index_t *self, const record_admin_t *a)
{
    char sql[400];
    snprintf (sql, sizeof sql, "SELECT t.seq, t.ch, t.channel FROM tasks t JOIN events e ON e.seq = t.seq"
              " WHERE %s ORDER BY t.seq, t.ch", s_selector_sql (a));
    sqlite3_stmt *select = NULL, *update = NULL;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &select, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "UPDATE tasks SET state = 0, attempts = 0, throttled = 0,"
                            " not_before = 0, retry_delay = 0, requeued = ?3, updated_at = ?4"
                            " WHERE seq = ?1 AND ch = ?2", -1, &update, NULL) != SQLITE_OK) {
        sqlite3_finalize (select);
        return s_fail (self, "dead retry");
    }
    s_bind_selector (select, a);
    index_msg_t *note = index_msg_new (INDEX_RETRIED);
    int rc;
    while ((rc = sqlite3_step (select)) == SQLITE_ROW) {
        sqlite3_bind_int64 (update, 1, sqlite3_column_int64 (select, 0));
        sqlite3_bind_int (update, 2, sqlite3_column_int (select, 1));
        sqlite3_bind_int64 (update, 3, (int64_t) ++self->requeue_serial);
        sqlite3_bind_int64 (update, 4, a->at);
        if (sqlite3_step (update) != SQLITE_DONE)
            break;
        sqlite3_reset (update);
        const char *channel = s_col (select, 2);
        s_count (self, channel, 2, -1);
        s_count (self, channel, 0, 1);
        if (note)
            s_add_channel_count (note, channel, 1);
    }
    bool failed = rc != SQLITE_DONE;
    sqlite3_finalize (select);
    sqlite3_finalize (update);
    if (failed || s_set_meta (self, "requeue_serial", self->requeue_serial) != 0) {
        index_msg_destroy (&note);
        return s_fail (self, "dead retry");
    }
    if (note) {
        note->tag = a->request;
        note->code = HP_CODE_OK;
        s_post_reply (self, note);
    }
    return 0;
}

static int
s_apply_purge (index_t *self, const record_admin_t *a)
{
    char sql[500];
    snprintf (sql, sizeof sql, "SELECT t.seq, t.ch, t.channel FROM tasks t JOIN events e ON e.seq = t.seq"
              " WHERE %s", s_selector_sql (a));
    sqlite3_stmt *select = NULL, *del = NULL, *del_attempts = NULL;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &select, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM tasks WHERE seq = ?1 AND ch = ?2", -1, &del, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM attempts WHERE seq = ?1 AND ch = ?2", -1, &del_attempts,
                            NULL) != SQLITE_OK) {
        sqlite3_finalize (select);
        sqlite3_finalize (del);
        return s_fail (self, "dead purge");
    }
    /*  Collect first: deleting rows under a running SELECT of the same table. */
    s_bind_selector (select, a);
    size_t count = 0, cap = 0;
    struct { int64_t seq; int ch; char channel[64]; } *rows = NULL;
    int rc;
    while ((rc = sqlite3_step (select)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap? cap * 2: 256;
            void *grown = realloc (rows, cap * sizeof *rows);
            if (!grown)
                break;
            rows = grown;
        }
        rows[count].seq = sqlite3_column_int64 (select, 0);
        rows[count].ch = sqlite3_column_int (select, 1);
        snprintf (rows[count].channel, sizeof rows[count].channel, "%s", s_col (select, 2));
        count++;
    }
    bool failed = rc != SQLITE_DONE;
    sqlite3_finalize (select);
    index_msg_t *note = index_msg_new (INDEX_PURGED);
    for (size_t i = 0; i < count && !failed; i++) {
        sqlite3_bind_int64 (del, 1, rows[i].seq);
        sqlite3_bind_int (del, 2, rows[i].ch);
        sqlite3_bind_int64 (del_attempts, 1, rows[i].seq);
        sqlite3_bind_int (del_attempts, 2, rows[i].ch);
        failed = sqlite3_step (del) != SQLITE_DONE || sqlite3_step (del_attempts) != SQLITE_DONE;
        sqlite3_reset (del);
        sqlite3_reset (del_attempts);
        s_count (self, rows[i].channel, 2, -1);
        if (note)
            s_add_channel_count (note, rows[i].channel, 1);
    }
    free (rows);
    sqlite3_finalize (del);
    sqlite3_finalize (del_attempts);
    if (failed) {
        index_msg_destroy (&note);
        return s_fail (self, "dead purge");
    }
    if (note) {
        note->tag = a->request;
        note->code = HP_CODE_OK;
        s_post_reply (self, note);
    }
    return 0;
}

/*  Pending tasks of a channel no longer configured become dead, so an
    operator sees them (dead list) and may purge them, or retry them once
    the channel is back. */
static int
s_apply_abandon (index_t *self, const record_admin_t *a)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, "UPDATE tasks SET state = 2, last_error = ?2, updated_at = ?3"
                            " WHERE state = 0 AND channel = ?1", -1, &stmt, NULL) != SQLITE_OK)
        return s_fail (self, "abandon tasks");
    char error[200];
    snprintf (error, sizeof error, "channel %.*s is no longer in the configuration", (int) a->channel.len,
              a->channel.ptr);
    char channel[64];
    snprintf (channel, sizeof channel, "%.*s", (int) a->channel.len, a->channel.ptr);
    sqlite3_bind_text (stmt, 1, channel, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 3, a->at);
    int rc = sqlite3_step (stmt);
    int64_t changed = sqlite3_changes (self->db);
    sqlite3_finalize (stmt);
    if (rc != SQLITE_DONE)
        return s_fail (self, "abandon tasks");
    /*  And those pending at their first attempt (a bit, no row): collected
        first, their rows in pending being updated. */
    sqlite3_stmt *scan = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT p.seq, e.channels, p.bits FROM pending p"
                            " JOIN events e ON e.seq = p.seq WHERE p.bits <> 0", -1, &scan, NULL) != SQLITE_OK)
        return s_fail (self, "abandon tasks");
    size_t count = 0, cap = 0;
    struct { int64_t seq; int ch; } *found = NULL;
    while ((rc = sqlite3_step (scan)) == SQLITE_ROW) {
        int ch = s_pending_place (s_col (scan, 1), sqlite3_column_int64 (scan, 2), channel);
        if (ch < 0)
            continue;
        if (count == cap) {
            cap = cap? cap * 2: 256;
            void *grown = realloc (found, cap * sizeof *found);
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            found = grown;
        }
        found[count].seq = sqlite3_column_int64 (scan, 0);
        found[count].ch = ch;
        count++;
    }
    sqlite3_finalize (scan);
    bool failed = rc != SQLITE_DONE;
    for (size_t k = 0; k < count && !failed; k++) {
        sqlite3_stmt *ins = self->stmt[S_INS_TASK];
        sqlite3_bind_int64 (ins, 1, found[k].seq);
        sqlite3_bind_int (ins, 2, found[k].ch);
        sqlite3_bind_text (ins, 3, channel, -1, SQLITE_STATIC);
        sqlite3_bind_int (ins, 4, 2);
        sqlite3_bind_int64 (ins, 5, 0);
        sqlite3_bind_int64 (ins, 6, 0);
        sqlite3_bind_int64 (ins, 7, 0);
        sqlite3_bind_int64 (ins, 8, 0);
        sqlite3_bind_text (ins, 9, error, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (ins, 10, a->at);
        sqlite3_bind_int64 (ins, 11, 0);
        failed = s_take_pending (self, (uint64_t) found[k].seq, (int64_t) 1 << found[k].ch, 0, "abandon tasks") != 0
              || s_step (self, S_INS_TASK, "abandon tasks") != 0;
        changed++;
    }
    free (found);
    if (rc == SQLITE_NOMEM) {
        snprintf (self->err, sizeof self->err, "index %.900s: abandon tasks: out of memory", self->path);
        return -1;
    }
    if (rc != SQLITE_DONE)
        return s_fail (self, "abandon tasks");
    if (failed)
        return -1;          /* s_step said why */
    s_count (self, channel, 0, -changed);
    s_count (self, channel, 2, changed);
    return 0;
}

static int
s_begin (index_t *self)
{
    if (self->in_txn)
        return 0;
    if (s_step (self, S_BEGIN, "begin") != 0)
        return -1;
    self->in_txn = true;
    self->txn_began = herald_clock_mono_ms ();
    return 0;
}

static int
s_apply_record (index_t *self, const journal_record_t *jr)
{
    record_t rec;
    char why[256];
    if (record_decode (jr->payload, jr->len, &rec, why, sizeof why) != 0) {
        snprintf (self->err, sizeof self->err, "index %.900s: journal record at position %" PRIu64
                  " cannot be read: %s", self->path, jr->lsn, why);
        return -1;
    }
    switch (rec.type) {
        case RECORD_EVENT:
            return s_apply_event (self, &rec.u.event);
        case RECORD_OUTCOME:
            return s_apply_outcome (self, &rec.u.outcome);
        case RECORD_DEAD_RETRY:
            return s_write_held (self, true) != 0? -1: s_apply_retry (self, &rec.u.admin);
        case RECORD_DEAD_PURGE:
            return s_write_held (self, true) != 0? -1: s_apply_purge (self, &rec.u.admin);
        case RECORD_ABANDON:
            return s_write_held (self, true) != 0? -1: s_apply_abandon (self, &rec.u.admin);
    }
    return 0;
}

/*  Applies the journal's records up to `until` (inside the open
    transaction), then writes the window and the position. With yield, it
    stops once S_YIELD_BYTES are applied if requests wait (waiting, or
    posted meanwhile): the transaction stays open, the thread answers them
    and comes back. A transaction of S_TXN_BYTES_BEHIND took a second or
    more, and loads, `track` and `dead list` waited for all of it. 0 / -1. */
static int
s_apply_until (index_t *self, uint64_t until, bool yield, bool waiting)
{
    uint64_t from = atomic_load (&self->applied);
    if (from >= until)
        return 0;
    if (s_begin (self) != 0)
        return -1;
    journal_record_t jr;
    char err[1024];
    int rc;
    bool stopped = false;
    while ((rc = journal_read (self->reader, until, &jr, err, sizeof err)) == 1) {
        if (s_apply_record (self, &jr) != 0)
            return -1;
        atomic_store (&self->applied, jr.next);
        if (self->window.count >= S_WINDOW_EVENTS && s_window_flush (self) != 0)
            return -1;
        if (yield && jr.next - from >= S_YIELD_BYTES && jr.next < until
        &&  (waiting || atomic_load (&self->asked))) {
            stopped = true;
            break;
        }
    }
    if (rc < 0) {
        snprintf (self->err, sizeof self->err, "%s", err);
        return -1;
    }
    if (!stopped)
        atomic_store (&self->applied, until);
    /*  The window stays open across applies until the transaction commits
        (or a reader needs the tables): an event and the outcomes that
        follow it within a commit interval become one row. */
    if (s_set_meta (self, "applied_lsn", atomic_load (&self->applied)) != 0
    ||  s_set_meta (self, "next_seq", self->next_seq) != 0)
        return -1;
    return 0;
}

static int
s_commit (index_t *self)
{
    if (!self->in_txn)
        return 0;
    if (s_write_held (self, false) != 0 || s_write_counts (self) != 0 || s_step (self, S_COMMIT, "commit") != 0)
        return -1;
    self->in_txn = false;
    self->committed = atomic_load (&self->applied);
    return 0;
}

//  --------------------------------------------------------------------------
//  Opening

static int
s_integrity (index_t *self, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, "PRAGMA quick_check", -1, &stmt, NULL) != SQLITE_OK) {
        s_fail (self, "integrity check");
        snprintf (err, errlen, "%s", self->err);
        return -1;
    }
    int rc = sqlite3_step (stmt);
    const char *result = rc == SQLITE_ROW? (const char *) sqlite3_column_text (stmt, 0): NULL;
    if (rc != SQLITE_ROW || !result || strcmp (result, "ok") != 0) {
        char problems[400] = "";
        size_t n = 0;
        for (const char *p = result? result: sqlite3_errmsg (self->db); *p && n + 3 < sizeof problems; p++)
            if (*p == '\n') {
                problems[n++] = ';';
                problems[n++] = ' ';
            }
            else
            if ((unsigned char) *p >= 0x20)
                problems[n++] = *p;
        problems[n] = '\0';
        snprintf (err, errlen, "store %s: corrupt: integrity check failed: %s (restore from a backup or"
                  " move the file away)", self->path, problems);
        sqlite3_finalize (stmt);
        return -1;
    }
    sqlite3_finalize (stmt);
    return 0;
}

static int
s_mkdir_parent (const char *path)
{
    char dir[1024];
    snprintf (dir, sizeof dir, "%s", path);
    char *slash = strrchr (dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir (dir, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir (dir, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/*  The conversion of a store of schema `from` to today's, or NULL if
    there is none (today's, or a schema not supported). */
static const char *
s_migration (const char *from)
{
    static const struct { const char *from; const char **sql; } migrations[] = {
        { "herald/1", &s_migrate_v1 }, { "herald/2", &s_migrate_v2 }, { "herald/3", &s_migrate_v3 },
    };
    for (size_t i = 0; i < sizeof migrations / sizeof migrations[0]; i++)
        if (strcmp (from, migrations[i].from) == 0)
            return *migrations[i].sql;
    return NULL;
}

/*  Converts a store of schema `from` (one s_migration knows) to today's,
    in one transaction. */
static int
s_migrate (index_t *self, const char *from, char *err, size_t errlen)
{
    const char *migration = s_migration (from);
    /*  herald/1's migration creates today's tables where it says %SCHEMA%. */
    const char *marker = "%SCHEMA%";
    const char *at = strstr (migration, marker);
    size_t size = strlen (migration) + strlen (s_schema) + 1;
    char *sql = malloc (size);
    if (!sql) {
        snprintf (err, errlen, "store %s: out of memory", self->path);
        return -1;
    }
    if (at)
        snprintf (sql, size, "%.*s%s%s", (int) (at - migration), migration, s_schema, at + strlen (marker));
    else
        snprintf (sql, size, "%s", migration);
    char what[64];
    snprintf (what, sizeof what, "migrate the %s store", from);
    int rc = s_exec (self, "BEGIN IMMEDIATE", "begin migration");
    if (rc == 0)
        rc = s_exec (self, sql, what);
    if (rc == 0)
        rc = s_exec (self, "COMMIT", "commit migration");
    free (sql);
    if (rc != 0) {
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        snprintf (err, errlen, "%s", self->err);
        return -1;
    }
    char said[64];
    snprintf (said, sizeof said, "store migrated from %s to " INDEX_SCHEMA, from);
    herald_info (said, "store=%s", self->path);
    return 0;
}

/*  SQLite keeps statistics of its memory under a global mutex, taken at
    every allocation (a few per row). Nothing here reads them. Set once,
    before SQLite initializes: later it is refused, and nothing is lost. */
static pthread_once_t s_sqlite_once = PTHREAD_ONCE_INIT;

static void
s_sqlite_setup (void)
{
    sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);
}

index_t *
index_open_file (const char *path, index_info_t *info, char *err, size_t errlen)
{
    index_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "store %s: out of memory", path);
        return NULL;
    }
    snprintf (self->path, sizeof self->path, "%s", path);
    pthread_mutex_init (&self->lock, NULL);
    herald_cond_init_monotonic (&self->wake);
    self->event_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->event_fd < 0 || s_mkdir_parent (path) != 0) {
        snprintf (err, errlen, "store %s: %s", path, strerror (errno));
        index_destroy (&self);
        return NULL;
    }
    pthread_once (&s_sqlite_once, s_sqlite_setup);
    struct stat st;
    bool existed = stat (path, &st) == 0 && st.st_size > 0;
    if (sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                         NULL) != SQLITE_OK) {
        s_fail (self, "open");
        snprintf (err, errlen, "%s", self->err);
        index_destroy (&self);
        return NULL;
    }
    sqlite3_extended_result_codes (self->db, 1);
    sqlite3_busy_timeout (self->db, 5000);
    /*  Damage is looked for at every start (PRAGMA quick_check: it reads
        the whole file, a few seconds per GiB), so a damaged store is never
        served; damage met later stops the broker (INDEX_FAILED). */
    if (existed && s_integrity (self, err, errlen) != 0) {
        index_destroy (&self);
        return NULL;
    }
    sqlite3_stmt *probe = NULL;
    bool foreign = false, has_meta = false;
    if (sqlite3_prepare_v2 (self->db,
            "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table'),"
            " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            -1, &probe, NULL) == SQLITE_OK && sqlite3_step (probe) == SQLITE_ROW) {
        has_meta = sqlite3_column_int (probe, 1) > 0;
        foreign = sqlite3_column_int (probe, 0) > 0 && !has_meta;
    }
    else
    if (existed) {
        s_fail (self, "read");
        snprintf (err, errlen, "store %s: not a Herald store (%s)", path, sqlite3_errmsg (self->db));
        sqlite3_finalize (probe);
        index_destroy (&self);
        return NULL;
    }
    sqlite3_finalize (probe);
    if (foreign) {
        snprintf (err, errlen, "store %s: not a Herald store (an SQLite database with other tables);"
                  " refusing to use it", path);
        index_destroy (&self);
        return NULL;
    }
    if (s_exec (self, "PRAGMA journal_mode=WAL", "set WAL mode") != 0
    ||  s_exec (self, "PRAGMA synchronous=FULL", "set synchronous") != 0
    ||  s_exec (self, "PRAGMA cache_size=-8192", "pragma") != 0
    ||  s_exec (self, "PRAGMA journal_size_limit=67108864", "pragma") != 0) {
        snprintf (err, errlen, "%s", self->err);
        index_destroy (&self);
        return NULL;
    }
    if (has_meta) {
        sqlite3_stmt *check = NULL;
        char schema[64] = "";
        if (sqlite3_prepare_v2 (self->db, "SELECT value FROM meta WHERE key = 'schema'", -1, &check,
                                NULL) == SQLITE_OK && sqlite3_step (check) == SQLITE_ROW)
            snprintf (schema, sizeof schema, "%s", s_col (check, 0));
        sqlite3_finalize (check);
        if (s_migration (schema)) {
            if (s_migrate (self, schema, err, errlen) != 0) {
                index_destroy (&self);
                return NULL;
            }
        }
        else
        if (strcmp (schema, INDEX_SCHEMA) != 0) {
            snprintf (err, errlen, "store %s: schema '%s' is not supported (expected %s)", path, schema,
                      INDEX_SCHEMA);
            index_destroy (&self);
            return NULL;
        }
    }
    if (s_exec (self, s_schema, "create schema") != 0
    ||  s_exec (self, "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '" INDEX_SCHEMA "')",
                "create schema") != 0) {
        snprintf (err, errlen, "%s", self->err);
        index_destroy (&self);
        return NULL;
    }
    /*  The index on events.uid that stores before this release have: no
        query needs it any more (see s_query_dead_show). */
    sqlite3_stmt *uid_index = NULL;
    bool has_uid_index = sqlite3_prepare_v2 (self->db, "SELECT 1 FROM sqlite_master WHERE type = 'index'"
                                             " AND name = 'events_uid'", -1, &uid_index, NULL) == SQLITE_OK
                      && sqlite3_step (uid_index) == SQLITE_ROW;
    sqlite3_finalize (uid_index);
    if (has_uid_index) {
        if (s_exec (self, "DROP INDEX events_uid", "drop index events_uid") != 0) {
            snprintf (err, errlen, "%s", self->err);
            index_destroy (&self);
            return NULL;
        }
        herald_info ("store: index events_uid dropped (a uid is looked up by its event's number)", NULL);
    }
    for (int i = 0; i < S_STMT_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt[i], NULL)
            != SQLITE_OK) {
            s_fail (self, "prepare statement");
            snprintf (err, errlen, "%s", self->err);
            index_destroy (&self);
            return NULL;
        }
    uint64_t applied = s_get_meta (self, "applied_lsn");
    self->next_seq = s_get_meta (self, "next_seq");
    self->requeue_serial = s_get_meta (self, "requeue_serial");
    sqlite3_stmt *max = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT coalesce (max (seq), 0) + 1 FROM events", -1, &max, NULL)
        == SQLITE_OK && sqlite3_step (max) == SQLITE_ROW) {
        uint64_t next = (uint64_t) sqlite3_column_int64 (max, 0);
        if (next > self->next_seq)
            self->next_seq = next;
    }
    sqlite3_finalize (max);
    if (self->next_seq == 0)
        self->next_seq = 1;
    uint64_t boots = s_get_meta (self, "boots") + 1;
    if (s_exec (self, "BEGIN IMMEDIATE", "begin") != 0
    ||  s_set_meta (self, "boots", boots) != 0
    ||  s_exec (self, "COMMIT", "commit") != 0) {
        snprintf (err, errlen, "%s", self->err);
        index_destroy (&self);
        return NULL;
    }
    atomic_store (&self->applied, applied);
    self->committed = applied;
    *info = (index_info_t) { .applied_lsn = applied, .next_seq = self->next_seq, .boots = boots };
    return self;
}

static int
s_report_counts (index_t *self, index_count_fn *counts, void *ctx)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT channel, pending, done, dead FROM counts", -1, &stmt, NULL)
        != SQLITE_OK)
        return s_fail (self, "read counts");
    while (sqlite3_step (stmt) == SQLITE_ROW)
        counts (ctx, s_col (stmt, 0), sqlite3_column_int64 (stmt, 1), sqlite3_column_int64 (stmt, 2),
                sqlite3_column_int64 (stmt, 3));
    sqlite3_finalize (stmt);
    return 0;
}

static int
s_report_keys (index_t *self, index_key_fn *keys, void *ctx)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT seq, dedup_key FROM events", -1, &stmt, NULL) != SQLITE_OK)
        return s_fail (self, "read keys");
    while (sqlite3_step (stmt) == SQLITE_ROW)
        keys (ctx, (uint64_t) sqlite3_column_int64 (stmt, 0), s_col (stmt, 1),
              (size_t) sqlite3_column_bytes (stmt, 1));
    sqlite3_finalize (stmt);
    return 0;
}

int
index_catch_up (index_t *self, journal_t *journal, index_count_fn *counts, index_key_fn *keys,
                void *ctx, char *err, size_t errlen)
{
    self->journal = journal;
    self->reader = journal_reader_new (journal, atomic_load (&self->applied));
    if (!self->reader) {
        snprintf (err, errlen, "index %.900s: out of memory", self->path);
        return -1;
    }
    /*  Keys of the events already in the index, then of those replayed. */
    if (keys && s_report_keys (self, keys, ctx) != 0) {
        snprintf (err, errlen, "%s", self->err);
        return -1;
    }
    uint64_t from = atomic_load (&self->applied);
    uint64_t end = journal_end (journal);
    self->key_fn = keys;
    self->key_ctx = ctx;
    int rc = s_apply_until (self, end, false, false);
    self->key_fn = NULL;
    if (rc == 0)
        rc = s_commit (self);
    if (rc != 0) {
        snprintf (err, errlen, "%s", self->err);
        if (self->in_txn)
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        self->in_txn = false;
        s_recent_forget (self);
        return -1;
    }
    if (end > from)
        herald_info ("store: journal replayed into the index", "from=%" PRIu64 " to=%" PRIu64, from, end);
    /*  Everything below is in the index for good. */
    journal_release (journal, self->committed);
    if (counts && s_report_counts (self, counts, ctx) != 0) {
        snprintf (err, errlen, "%s", self->err);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Queries

static json_t *
s_history (index_t *self, int64_t seq, int ch)
{
    json_t *history = json_array ();
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT attempt, at, outcome, error FROM attempts"
                            " WHERE seq = ?1 AND ch = ?2 ORDER BY at, attempt", -1, &stmt, NULL) != SQLITE_OK)
        return history;
    sqlite3_bind_int64 (stmt, 1, seq);
    sqlite3_bind_int (stmt, 2, ch);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (history, json_pack ("{s:i, s:I, s:s, s:s}",
            "attempt", sqlite3_column_int (stmt, 0), "at", (json_int_t) sqlite3_column_int64 (stmt, 1),
            "outcome", s_col (stmt, 2), "error", s_col (stmt, 3)));
    sqlite3_finalize (stmt);
    return history;
}

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
    s_answer_json (msg, code, json_pack ("{s:s}", "error", text));
}

static void
s_query_track (index_t *self, index_msg_t *msg)
{
    sqlite3_stmt *events = NULL, *task = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT e.seq, e.uid, e.id, e.source, e.type, e.received_at, e.channels,"
                            " max (e.done_at, coalesce (p.done_at, 0)), coalesce (p.bits, 0)"
                            " FROM events e LEFT JOIN pending p ON p.seq = e.seq WHERE e.id = ?1 ORDER BY e.seq",
                            -1, &events, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "SELECT state, attempts, throttled, last_error, updated_at, not_before"
                            " FROM tasks WHERE seq = ?1 AND ch = ?2", -1, &task, NULL) != SQLITE_OK) {
        sqlite3_finalize (events);
        s_fail (self, "track");
        s_answer_error (msg, HP_CODE_INTERNAL, self->err);
        return;
    }
    sqlite3_bind_text (events, 1, msg->text, -1, SQLITE_STATIC);
    json_t *list = json_array ();
    int64_t now = herald_clock_wall_ms ();
    while (sqlite3_step (events) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64 (events, 0);
        const char *uid = s_col (events, 1);
        char channels[RECORD_MAX_FANOUT * 65];
        snprintf (channels, sizeof channels, "%s", s_col (events, 6));
        int64_t done_at = sqlite3_column_int64 (events, 7);
        int64_t pending = sqlite3_column_int64 (events, 8);
        json_t *tasks = json_array ();
        int ch = 0;
        char *rest = NULL;
        for (char *name = strtok_r (channels, " ", &rest); name; name = strtok_r (NULL, " ", &rest), ch++) {
            char task_id[200];
            snprintf (task_id, sizeof task_id, "%s.%s", uid, name);
            sqlite3_bind_int64 (task, 1, seq);
            sqlite3_bind_int (task, 2, ch);
            json_t *entry;
            if (sqlite3_step (task) == SQLITE_ROW) {
                int state = sqlite3_column_int (task, 0);
                const char *state_name = state == 1? "done": state == 2? "dead"
                                       : sqlite3_column_int64 (task, 5) > now? "retrying": "pending";
                entry = json_pack ("{s:s, s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:i}",
                    "channel", name, "task_id", task_id, "state", state_name,
                    "attempts", sqlite3_column_int (task, 1), "throttled", sqlite3_column_int (task, 2),
                    "last_error", s_col (task, 3), "updated_at", (json_int_t) sqlite3_column_int64 (task, 4),
                    "_seq", (json_int_t) seq, "_ch", ch);
            }
            else
            if (ch < RECORD_MAX_FANOUT && (pending >> ch) & 1)
                entry = json_pack ("{s:s, s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:i}",
                    "channel", name, "task_id", task_id, "state", "pending", "attempts", 0, "throttled", 0,
                    "last_error", "", "updated_at", (json_int_t) sqlite3_column_int64 (events, 5),
                    "_seq", (json_int_t) seq, "_ch", ch);
            else
                entry = json_pack ("{s:s, s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:i}",
                    "channel", name, "task_id", task_id, "state", "done", "attempts", 1, "throttled", 0,
                    "last_error", "", "updated_at", (json_int_t) done_at, "_seq", (json_int_t) seq, "_ch", ch);
            sqlite3_reset (task);
            json_array_append_new (tasks, entry);
        }
        json_array_append_new (list, json_pack ("{s:s, s:s, s:s, s:I, s:o}",
            "event_id", s_col (events, 2), "source", s_col (events, 3), "type", s_col (events, 4),
            "received_at", (json_int_t) sqlite3_column_int64 (events, 5), "channels", tasks));
    }
    sqlite3_finalize (events);
    sqlite3_finalize (task);
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
s_query_dead_list (index_t *self, index_msg_t *msg)
{
    char sql[500];
    snprintf (sql, sizeof sql,
              "SELECT e.uid || '.' || t.channel, e.id, t.channel, t.attempts, t.last_error, t.updated_at,"
              " t.throttled FROM tasks t JOIN events e ON e.seq = t.seq"
              " WHERE t.state = 2%s ORDER BY t.seq, t.ch LIMIT ?2", msg->text[0]? " AND t.channel = ?1": "");
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        s_fail (self, "dead list");
        s_answer_error (msg, HP_CODE_INTERNAL, self->err);
        return;
    }
    if (msg->text[0])
        sqlite3_bind_text (stmt, 1, msg->text, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (int64_t) msg->number);
    json_t *tasks = json_array ();
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (tasks, json_pack ("{s:s, s:s, s:s, s:i, s:i, s:s, s:I}",
            "task_id", s_col (stmt, 0), "event_id", s_col (stmt, 1), "channel", s_col (stmt, 2),
            "attempts", sqlite3_column_int (stmt, 3), "throttled", sqlite3_column_int (stmt, 6),
            "last_error", s_col (stmt, 4), "dead_at", (json_int_t) sqlite3_column_int64 (stmt, 5)));
    sqlite3_finalize (stmt);
    s_answer_json (msg, HP_CODE_OK, json_pack ("{s:o}", "tasks", tasks));
}

static void
s_query_dead_show (index_t *self, index_msg_t *msg)
{
    const char *dot = strrchr (msg->text, '.');
    char uid[128] = "";
    if (dot && (size_t) (dot - msg->text) < sizeof uid)
        snprintf (uid, sizeof uid, "%.*s", (int) (dot - msg->text), msg->text);
    /*  No index on uid (one B-tree insert fewer per event): a uid begins
        with its event's number in 16 hex digits, so the event is found by
        its number; a uid of another form (a store from before) by the
        channel's dead tasks. */
    uint64_t seq = 0;
    bool numbered = record_uid_seq (uid, &seq);
    sqlite3_stmt *stmt = NULL;
    int rc = SQLITE_DONE;
    for (int pass = numbered? 0: 1; pass < 2 && rc != SQLITE_ROW; pass++) {
        sqlite3_finalize (stmt);
        stmt = NULL;
        if (sqlite3_prepare_v2 (self->db,
                pass == 0
                ? "SELECT t.seq, t.ch, e.id, t.channel, t.attempts, t.last_error, t.updated_at, e.body, t.throttled"
                  " FROM events e JOIN tasks t ON t.seq = e.seq"
                  " WHERE e.seq = ?3 AND e.uid = ?1 AND t.channel = ?2 AND t.state = 2"
                : "SELECT t.seq, t.ch, e.id, t.channel, t.attempts, t.last_error, t.updated_at, e.body, t.throttled"
                  " FROM tasks t JOIN events e ON e.seq = t.seq"
                  " WHERE t.state = 2 AND t.channel = ?2 AND e.uid = ?1", -1, &stmt, NULL) != SQLITE_OK) {
            s_fail (self, "dead show");
            s_answer_error (msg, HP_CODE_INTERNAL, self->err);
            return;
        }
        sqlite3_bind_text (stmt, 1, uid, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, dot? dot + 1: "", -1, SQLITE_STATIC);
        if (pass == 0)
            sqlite3_bind_int64 (stmt, 3, (sqlite3_int64) seq);
        rc = sqlite3_step (stmt);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_finalize (stmt);
        char text[400];
        snprintf (text, sizeof text, "no dead task '%s'", msg->text);
        s_answer_error (msg, HP_CODE_NOT_FOUND, text);
        return;
    }
    json_t *event = json_loads (s_col (stmt, 7), 0, NULL);
    json_t *task = json_pack ("{s:s, s:s, s:s, s:i, s:i, s:s, s:I, s:o, s:o}",
        "task_id", msg->text, "event_id", s_col (stmt, 2), "channel", s_col (stmt, 3),
        "attempts", sqlite3_column_int (stmt, 4), "throttled", sqlite3_column_int (stmt, 8),
        "last_error", s_col (stmt, 5), "dead_at", (json_int_t) sqlite3_column_int64 (stmt, 6),
        "event", event? event: json_null (),
        "history", s_history (self, sqlite3_column_int64 (stmt, 0), sqlite3_column_int (stmt, 1)));
    sqlite3_finalize (stmt);
    s_answer_json (msg, HP_CODE_OK, json_pack ("{s:o}", "task", task));
}

static void
s_query_event_id (index_t *self, index_msg_t *msg)
{
    sqlite3_stmt *stmt = NULL;
    msg->code = HP_CODE_NOT_FOUND;
    if (sqlite3_prepare_v2 (self->db, "SELECT id, dedup_key FROM events WHERE seq = ?1", -1, &stmt, NULL)
        != SQLITE_OK) {
        s_fail (self, "find event");
        msg->code = HP_CODE_INTERNAL;
        snprintf (msg->error, sizeof msg->error, "%s", self->err);
        return;
    }
    sqlite3_bind_int64 (stmt, 1, (int64_t) msg->number);
    if (sqlite3_step (stmt) == SQLITE_ROW) {
        snprintf (msg->event_id, sizeof msg->event_id, "%s", s_col (stmt, 0));
        size_t len = (size_t) sqlite3_column_bytes (stmt, 1);
        msg->dedup_key = malloc (len + 1);
        if (msg->dedup_key) {
            memcpy (msg->dedup_key, s_col (stmt, 1), len);
            msg->dedup_key[len] = '\0';
            msg->code = HP_CODE_OK;
        }
        else
            msg->code = HP_CODE_INTERNAL;
    }
    sqlite3_finalize (stmt);
}

/*  Column col of stmt's row, as text, into out (cut to size - 1 bytes). */
static void
s_copy_col (char *out, size_t size, sqlite3_stmt *stmt, int col)
{
    const unsigned char *text = sqlite3_column_text (stmt, col);
    size_t len = text? (size_t) sqlite3_column_bytes (stmt, col): 0;
    if (len > size - 1)
        len = size - 1;
    if (len)
        memcpy (out, text, len);
    out[len] = '\0';
}

/*  Reads up to `number` tasks of a load from stmt (columns: seq, ch, uid,
    attempts, throttled, not_before, retry_delay, requeued, body) into out,
    or, with pending_bits, the channel's pending bits of the events stmt
    gives (columns: seq, uid, channels, pending, body). SQLITE_DONE (all
    read), SQLITE_ROW (number reached) or an error. */
static int
s_load_read (index_t *self, sqlite3_stmt *stmt, bool pending_bits, const char *channel, size_t number,
             index_task_t *out, size_t *count)
{
    int rc = SQLITE_DONE;
    size_t channel_len = strnlen (channel, sizeof out->channel - 1);
    while (*count < number && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        int ch = 0;
        if (pending_bits) {
            /*  Its tasks are about to be delivered: their outcomes then
                find the row's bits remembered (the row is as written: a
                reader is answered after the window and the cache are). */
            s_recent_note (self, (uint64_t) sqlite3_column_int64 (stmt, 0), sqlite3_column_int64 (stmt, 3),
                           s_col (stmt, 2), (size_t) sqlite3_column_bytes (stmt, 2));
            /*  The channel's place in this event's fan-out, if pending there. */
            ch = s_pending_place (s_col (stmt, 2), sqlite3_column_int64 (stmt, 3), channel);
            if (ch < 0)
                continue;
        }
        index_task_t *t = &out[*count];
        memset (t, 0, sizeof *t);
        t->seq = (uint64_t) sqlite3_column_int64 (stmt, 0);
        t->ch = pending_bits? ch: sqlite3_column_int (stmt, 1);
        s_copy_col (t->uid, sizeof t->uid, stmt, pending_bits? 1: 2);
        memcpy (t->channel, channel, channel_len);
        t->channel[channel_len] = '\0';
        if (!pending_bits) {
            t->attempts = (uint32_t) sqlite3_column_int64 (stmt, 3);
            t->throttled = (uint32_t) sqlite3_column_int64 (stmt, 4);
            t->not_before = sqlite3_column_int64 (stmt, 5);
            t->delay = sqlite3_column_int64 (stmt, 6);
            t->requeued = (uint64_t) sqlite3_column_int64 (stmt, 7);
        }
        int body = pending_bits? 4: 8;
        t->body_len = (size_t) sqlite3_column_bytes (stmt, body);
        t->body = malloc (t->body_len + 1);
        if (!t->body)
            return SQLITE_NOMEM;
        memcpy (t->body, s_col (stmt, body), t->body_len);
        t->body[t->body_len] = '\0';
        (*count)++;
    }
    return *count < number? rc: SQLITE_ROW;
}

static int
s_task_order (const void *a, const void *b)
{
    const index_task_t *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq? -1: 1;
    return x->ch < y->ch? -1: x->ch > y->ch;
}

/*  A channel's tasks to deliver, oldest first: those requeued by an
    operator (in the order of their retry), or those pending after `after`,
    with a row or with their event's pending bit (see s_schema): both read,
    merged by event number, the first `number` kept. */
static void
s_query_load (index_t *self, index_msg_t *msg)
{
    const char *sql = msg->requeued
        ? "SELECT t.seq, t.ch, e.uid, t.attempts, t.throttled, t.not_before, t.retry_delay, t.requeued, e.body"
          " FROM tasks t JOIN events e ON e.seq = t.seq"
          " WHERE t.channel = ?1 AND t.state = 0 AND t.requeued > ?2 ORDER BY t.requeued LIMIT ?3"
        : "SELECT t.seq, t.ch, e.uid, t.attempts, t.throttled, t.not_before, t.retry_delay, t.requeued, e.body"
          " FROM tasks t JOIN events e ON e.seq = t.seq"
          " WHERE t.channel = ?1 AND t.state = 0 AND t.requeued = 0 AND t.seq > ?2 ORDER BY t.seq LIMIT ?3";
    sqlite3_stmt *stmt = NULL, *bits = NULL;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK
    ||  (!msg->requeued
         && sqlite3_prepare_v2 (self->db, "SELECT p.seq, e.uid, e.channels, p.bits, e.body FROM pending p"
                                " JOIN events e ON e.seq = p.seq WHERE p.bits <> 0 AND p.seq > ?1 ORDER BY p.seq",
                                -1, &bits, NULL) != SQLITE_OK)) {
        sqlite3_finalize (stmt);
        s_fail (self, "load tasks");
        msg->code = HP_CODE_INTERNAL;
        snprintf (msg->error, sizeof msg->error, "%s", self->err);
        return;
    }
    sqlite3_bind_text (stmt, 1, msg->text, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (int64_t) msg->after);
    sqlite3_bind_int64 (stmt, 3, (int64_t) msg->number);
    size_t number = msg->number;
    msg->tasks = calloc (number? 2 * number: 1, sizeof *msg->tasks);
    msg->task_count = 0;
    int rc = SQLITE_NOMEM;
    if (msg->tasks) {
        rc = s_load_read (self, stmt, false, msg->text, number, msg->tasks, &msg->task_count);
        if (bits && (rc == SQLITE_DONE || rc == SQLITE_ROW)) {
            size_t from_rows = msg->task_count, from_bits = 0;
            sqlite3_bind_int64 (bits, 1, (int64_t) msg->after);
            int brc = s_load_read (self, bits, true, msg->text, number, msg->tasks + from_rows, &from_bits);
            rc = brc == SQLITE_DONE || brc == SQLITE_ROW? SQLITE_DONE: brc;
            msg->task_count = from_rows + from_bits;
            /*  Oldest first across both; the rest waits for the next load. */
            qsort (msg->tasks, msg->task_count, sizeof *msg->tasks, s_task_order);
            while (msg->task_count > number) {
                index_task_t *t = &msg->tasks[--msg->task_count];
                free (t->body);
                t->body = NULL;
            }
        }
    }
    sqlite3_finalize (stmt);
    sqlite3_finalize (bits);
    if (!msg->tasks || (rc != SQLITE_DONE && rc != SQLITE_ROW)) {
        msg->code = HP_CODE_INTERNAL;
        snprintf (msg->error, sizeof msg->error, "index %.900s: load tasks: %s", self->path,
                  rc == SQLITE_NOMEM? "out of memory": sqlite3_errmsg (self->db));
        return;
    }
    msg->code = HP_CODE_OK;
}

static void
s_answer (index_t *self, index_msg_t *msg)
{
    switch (msg->kind) {
        case INDEX_TRACK:     s_query_track (self, msg); break;
        case INDEX_DEAD_LIST: s_query_dead_list (self, msg); break;
        case INDEX_DEAD_SHOW: s_query_dead_show (self, msg); break;
        case INDEX_EVENT_ID:  s_query_event_id (self, msg); break;
        case INDEX_LOAD:      s_query_load (self, msg); break;
        default:
            msg->code = HP_CODE_BAD_REQUEST;
    }
}

//  --------------------------------------------------------------------------
//  Pruning: events past the retention whose tasks are all done. A cursor
//  walks the events from the oldest, so unfinished ones (dead tasks, or a
//  channel with no workers) never stop it; it starts over once it reaches
//  events still within the retention.

static int
s_prune_step (index_t *self, int64_t now_wall)
{
    int64_t cutoff = now_wall - self->retention_ms;
    sqlite3_stmt *scan = NULL, *open = NULL, *del_tasks = NULL, *del_attempts = NULL, *del_event = NULL,
                 *del_bits = NULL;
    int rc = -1;
    size_t deleted = 0, cap = 0;
    uint64_t *seqs = NULL;
    char **keys = NULL;
    bool wrapped = false;
    if (sqlite3_prepare_v2 (self->db, "SELECT e.seq, e.received_at, e.dedup_key, coalesce (p.bits, 0)"
                            " FROM events e LEFT JOIN pending p ON p.seq = e.seq WHERE e.seq > ?1"
                            " ORDER BY e.seq LIMIT ?2", -1, &scan, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "SELECT count(*) FROM tasks WHERE seq = ?1 AND state <> 1", -1,
                            &open, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM tasks WHERE seq = ?1", -1, &del_tasks, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM attempts WHERE seq = ?1", -1, &del_attempts, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM events WHERE seq = ?1", -1, &del_event, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM pending WHERE seq = ?1", -1, &del_bits, NULL) != SQLITE_OK) {
        s_fail (self, "prune");
        goto done;
    }
    sqlite3_bind_int64 (scan, 1, (int64_t) self->prune_cursor);
    sqlite3_bind_int (scan, 2, S_PRUNE_BATCH);
    int seen = 0;
    /*  Collect first (deleting under the scan of the same table). */
    struct { uint64_t seq; char *key; } *found = NULL;
    size_t found_count = 0;
    while (sqlite3_step (scan) == SQLITE_ROW) {
        seen++;
        uint64_t seq = (uint64_t) sqlite3_column_int64 (scan, 0);
        if (sqlite3_column_int64 (scan, 1) >= cutoff) {
            wrapped = true;
            break;
        }
        self->prune_cursor = seq;
        if (sqlite3_column_int64 (scan, 3) != 0)
            continue;       /* a task pending at its first attempt */
        sqlite3_bind_int64 (open, 1, (int64_t) seq);
        bool finished = sqlite3_step (open) == SQLITE_ROW && sqlite3_column_int64 (open, 0) == 0;
        sqlite3_reset (open);
        if (!finished)
            continue;
        if (found_count == cap) {
            cap = cap? cap * 2: 64;
            void *grown = realloc (found, cap * sizeof *found);
            if (!grown)
                break;
            found = grown;
        }
        found[found_count].seq = seq;
        found[found_count].key = strdup (s_col (scan, 2));
        found_count++;
    }
    if (seen < S_PRUNE_BATCH)
        wrapped = true;
    if (found_count > 0) {
        seqs = calloc (found_count, sizeof *seqs);
        keys = calloc (found_count, sizeof *keys);
    }
    for (size_t i = 0; i < found_count; i++) {
        bool ok = true;
        sqlite3_stmt *dels[] = { del_tasks, del_attempts, del_bits, del_event };
        for (int d = 0; d < 4 && ok; d++) {
            sqlite3_bind_int64 (dels[d], 1, (int64_t) found[i].seq);
            ok = sqlite3_step (dels[d]) == SQLITE_DONE;
            sqlite3_reset (dels[d]);
        }
        if (!ok) {
            s_fail (self, "prune");
            for (size_t k = i; k < found_count; k++)
                free (found[k].key);
            free (found);
            found = NULL;
            goto done;
        }
        if (seqs && keys && found[i].key) {
            seqs[deleted] = found[i].seq;
            keys[deleted] = found[i].key;
            deleted++;
        }
        else
            free (found[i].key);
    }
    free (found);
    rc = 0;
done:
    sqlite3_finalize (scan);
    sqlite3_finalize (open);
    sqlite3_finalize (del_tasks);
    sqlite3_finalize (del_attempts);
    sqlite3_finalize (del_event);
    sqlite3_finalize (del_bits);
    if (wrapped)
        self->prune_cursor = 0;
    if (deleted > 0) {
        index_msg_t *note = index_msg_new (INDEX_PRUNED);
        if (note) {
            note->pruned_seqs = seqs;
            note->pruned_keys = keys;
            note->pruned_count = deleted;
            s_post_reply (self, note);
            seqs = NULL;
            keys = NULL;
        }
    }
    for (size_t i = 0; keys && i < deleted; i++)
        free (keys[i]);
    free (keys);
    free (seqs);
    if (rc == 0)
        self->next_prune = herald_clock_mono_ms () + (wrapped? S_PRUNE_IDLE_MS: 100);
    return rc < 0? -1: (int) deleted;
}

//  --------------------------------------------------------------------------
//  The thread

static void
s_post_reply (index_t *self, index_msg_t *msg)
{
    pthread_mutex_lock (&self->lock);
    msg->next = NULL;
    if (self->replies_tail)
        self->replies_tail->next = msg;
    else
        self->replies = msg;
    self->replies_tail = msg;
    pthread_mutex_unlock (&self->lock);
    uint64_t one = 1;
    ssize_t n = write (self->event_fd, &one, sizeof one);
    (void) n;
}

static void
s_post_failure (index_t *self)
{
    index_msg_t *note = index_msg_new (INDEX_FAILED);
    if (note) {
        snprintf (note->error, sizeof note->error, "%s", self->err);
        s_post_reply (self, note);
    }
}

/*  After a failed write: true if it was for lack of space, in which case
    the open transaction is rolled back and applying starts again from the
    last commit once there is room (the journal keeps the records). */
static bool
s_retry_when_room (index_t *self)
{
    int primary = sqlite3_extended_errcode (self->db) & 0xff;
    if (primary != SQLITE_FULL)
        return false;
    if (!self->full_since)
        herald_error ("index: disk full, applying the journal waits for room", "error=\"%s\"", self->err);
    self->full_since = self->full_last = herald_clock_mono_ms ();
    if (self->in_txn)
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    self->in_txn = false;
    s_window_clear (&self->window);
    s_recent_forget (self);
    self->delta_count = 0;
    self->requeue_serial = s_get_meta (self, "requeue_serial");
    atomic_store (&self->applied, self->committed);
    journal_reader_destroy (&self->reader);
    self->reader = journal_reader_new (self->journal, self->committed);
    return self->reader != NULL;
}

/*  How much of the journal one transaction takes, lag bytes behind it
    with the journal durable up to durable. Each commit costs a sync of
    the WAL and, with the checkpoint that follows, of the file: tens of
    milliseconds. Behind by more than S_BEHIND_BYTES once the burst that
    put it there is over (the journal grew by less than S_QUIET_BYTES in
    the last S_QUIET_MS), transactions of S_TXN_BYTES_BEHIND caught up
    with a million events several times sooner for the same CPU
    (BENCHMARKS.md). During the burst they stay small: a bigger one
    waits less for the disk, so the index took CPU from the producers'
    ACKs. The WAL grows to about that much before it is checkpointed:
    after the disk was full, transactions stay small. */
static uint64_t
s_txn_bytes (index_t *self, uint64_t lag, uint64_t durable, int64_t now)
{
    if (now - self->quiet_at >= S_QUIET_MS) {
        self->quiet = durable - self->quiet_from < S_QUIET_BYTES;
        self->quiet_from = durable;
        self->quiet_at = now;
    }
    bool careful = self->full_last && now - self->full_last < S_FULL_CAREFUL_MS;
    return lag > S_BEHIND_BYTES && self->quiet && !careful? S_TXN_BYTES_BEHIND: S_TXN_BYTES;
}

/*  The index thread's policy: SCHED_IDLE while it keeps up (yielding),
    SCHED_OTHER at nice 19 while it is behind. 0 / -1 (errno). */
static int
s_yield (index_t *self, bool yielding)
{
    struct sched_param param = { .sched_priority = 0 };
    if (sched_setscheduler (0, yielding? SCHED_IDLE: SCHED_OTHER, &param) != 0)
        return -1;
    self->yielding = yielding;
    return 0;
}

static void
s_msg_free_tasks (index_msg_t *msg);

/*  A load waits for the index to apply the journal up to its min_lsn,
    the channel's last task sent to the store: then a short read means
    nothing is left there. But the oldest tasks, those it reads first, were
    applied long before. So while it waits, it is answered with the tasks
    applied so far, if there are any, its min_lsn now the position they
    were read at (the owner then knows there may be more, and loads again);
    once per position applied. Without this, a burst beyond queue_window
    stopped deliveries until the index had applied all of it (300,000
    events, noop workers: 0.6 s without a delivery). True if answered. */
static bool
s_load_early (index_t *self, index_msg_t *msg)
{
    uint64_t applied = atomic_load (&self->applied);
    if (msg->requeued || msg->tried == applied + 1)
        return false;
    msg->tried = applied + 1;
    if (s_write_held (self, false) != 0) {
        msg->code = HP_CODE_INTERNAL;
        s_answer_error (msg, HP_CODE_INTERNAL, self->err);
        return true;
    }
    s_query_load (self, msg);
    if (msg->code == HP_CODE_OK && msg->task_count > 0) {
        msg->min_lsn = applied;
        return true;
    }
    s_msg_free_tasks (msg);
    msg->code = 0;
    msg->error[0] = '\0';
    return false;
}

static void *
s_thread (void *arg)
{
    index_t *self = arg;
    /*  The index yields to the ACK path when the machine is busy: it may
        fall behind (the journal keeps the records, up to its size limit,
        then producers are told busy) and catches up after. The lowest
        priority, not a middling one: with another process taking most of a
        core, the loop got 8-10 % more events ACKed at 1,000 outstanding at
        nice 19 than at 5 (herald_bench_load pipe, alternating runs). And
        SCHED_IDLE over nice 19 alone: the scheduler then takes the CPU from
        it the moment the loop, the journal writer or ZeroMQ's I/O thread
        wakes up, and counts a CPU running only it as idle when it places
        them; at nice 19 a waking thread could wait for the index's slice.
        ACK p99 at 1 outstanding went from 1.99-2.10x the floor's to
        1.28-1.77x (herald_bench_peers --shapes 3, 4 alternating pairs).
        But under SCHED_IDLE a saturated machine gives it next to nothing:
        1,000 outstanding for 10 s left it 20.6 s of catching up against
        10.8 at nice 19. So once it is S_BEHIND_BYTES behind the journal, it
        goes back to the normal policy (at nice 19) until it has caught up.
        Nice 19 stays as well, should the policy be refused. Admin reads the
        index answers wait longer on a saturated machine. */
    setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), 19);
    if (!journal_may_leave_idle ())
        herald_info ("index: its thread runs at nice 19, not under SCHED_IDLE: leaving that again"
                     " when behind would need RLIMIT_NICE 1 or more (systemd: LimitNICE=+0) or CAP_SYS_NICE", NULL);
    else {
        self->started_yielding = s_yield (self, true) == 0;
        if (!self->started_yielding)
            herald_warn ("index: cannot run the index thread under SCHED_IDLE; it runs at nice 19",
                         "error=\"%s\"", strerror (errno));
    }
    bool failed = false;
    index_msg_t *waiting = NULL;       /* requests that need a position not yet durable */
    pthread_mutex_lock (&self->lock);
    while (true) {
        bool stopping = self->stopping;
        index_msg_t *requests = self->requests;
        self->requests = self->requests_tail = NULL;
        if (!requests && !stopping && !waiting) {
            struct timespec until = herald_clock_deadline (S_WAKE_MS);
            pthread_cond_timedwait (&self->wake, &self->lock, &until);
            stopping = self->stopping;
            requests = self->requests;
            self->requests = self->requests_tail = NULL;
        }
        atomic_store (&self->asked, false);
        pthread_mutex_unlock (&self->lock);
        /*  Requests that waited for durability come first, in order. */
        if (waiting) {
            index_msg_t *tail = waiting;
            while (tail->next)
                tail = tail->next;
            tail->next = requests;
            requests = waiting;
            waiting = NULL;
        }
        uint64_t durable = journal_durable (self->journal);
        uint64_t lag = durable - atomic_load (&self->applied);
        if (self->yielding && lag > S_BEHIND_BYTES && s_yield (self, false) == 0)
            herald_info ("index: behind the journal, no longer yielding the CPU until it catches up",
                         "lag_bytes=%" PRIu64, lag);
        else
        if (!self->yielding && self->started_yielding && lag < S_CAUGHT_UP_BYTES && s_yield (self, true) == 0)
            herald_info ("index: caught up, yielding the CPU again", "lag_bytes=%" PRIu64, lag);
        int64_t now = herald_clock_mono_ms ();
        bool waiting_room = self->full_since && now - self->full_since < 1000 && !stopping;
        /*  One transaction takes at most txn_bytes of the journal: its
            WAL stays bounded, and small once the disk was full. */
        uint64_t txn_bytes = s_txn_bytes (self, lag, durable, now);
        uint64_t target = durable;
        if (target > self->committed + txn_bytes)
            target = self->committed + txn_bytes;
        if (target < atomic_load (&self->applied))
            target = atomic_load (&self->applied);
        if (!failed && !waiting_room && s_apply_until (self, target, true, requests != NULL) != 0
        &&  !s_retry_when_room (self)) {
            failed = true;
            s_post_failure (self);
        }
        index_msg_t **keep = &waiting;
        while (requests) {
            index_msg_t *msg = requests;
            requests = msg->next;
            msg->next = NULL;
            if (failed) {
                msg->code = HP_CODE_INTERNAL;
                snprintf (msg->error, sizeof msg->error, "%s", self->err);
                s_answer_error (msg, HP_CODE_INTERNAL, self->err);
                s_post_reply (self, msg);
                continue;
            }
            /*  While the disk is full, admin reads answer with what is
                applied; a duplicate's lookup and a load must wait. */
            bool admin_read = msg->kind == INDEX_TRACK || msg->kind == INDEX_DEAD_LIST
                           || msg->kind == INDEX_DEAD_SHOW;
            if (msg->min_lsn > atomic_load (&self->applied) && !stopping && !(self->full_since && admin_read)) {
                if (msg->kind == INDEX_LOAD && s_load_early (self, msg)) {
                    s_post_reply (self, msg);
                    continue;
                }
                *keep = msg;
                keep = &msg->next;
                continue;
            }
            if (s_write_held (self, false) != 0) {
                msg->code = HP_CODE_INTERNAL;
                s_answer_error (msg, HP_CODE_INTERNAL, self->err);
                s_post_reply (self, msg);
                continue;
            }
            s_answer (self, msg);
            int primary = sqlite3_extended_errcode (self->db) & 0xff;
            if (msg->code == HP_CODE_INTERNAL && (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)) {
                /*  A damaged index is not served from. */
                s_fail (self, "read");
                failed = true;
                s_post_failure (self);
            }
            s_post_reply (self, msg);
        }
        now = herald_clock_mono_ms ();
        if (!failed && !self->full_since && self->retention_ms > 0 && now >= self->next_prune) {
            if ((s_begin (self) != 0 || s_write_held (self, false) != 0
                 || s_prune_step (self, herald_clock_wall_ms ()) < 0)
            &&  !s_retry_when_room (self)) {
                failed = true;
                s_post_failure (self);
            }
        }
        /*  An apply stopped early to answer requests (s_apply_until)
            goes on in the same transaction: it commits on time only
            once it has reached its target, as an uninterrupted one. */
        bool big = atomic_load (&self->applied) >= self->committed + txn_bytes;
        bool reached = atomic_load (&self->applied) >= target || waiting_room;
        if (!failed && self->in_txn && (stopping || big || (reached && now - self->txn_began >= S_COMMIT_MS))) {
            if (s_commit (self) != 0) {
                if (!s_retry_when_room (self)) {
                    failed = true;
                    s_post_failure (self);
                }
            }
            else {
                if (self->full_since) {
                    herald_info ("index: room again, applying resumed", NULL);
                    self->full_since = 0;
                }
                journal_release (self->journal, self->committed);
                index_msg_t *note = index_msg_new (INDEX_APPLIED);
                if (note) {
                    note->lsn = self->committed;
                    s_post_reply (self, note);
                }
                struct stat st;
                if (stat (self->path, &st) == 0)
                    atomic_store (&self->file_bytes, (int64_t) st.st_size);
            }
        }
        if (waiting) {
            /*  Somebody waits for a position the writer is about to make
                durable: look again soon. */
            struct timespec step = { 0, 500000 };
            nanosleep (&step, NULL);
        }
        bool behind = atomic_load (&self->applied) < journal_durable (self->journal);
        pthread_mutex_lock (&self->lock);
        if (stopping && !self->requests && (!behind || failed || self->full_since))
            break;
    }
    pthread_mutex_unlock (&self->lock);
    while (waiting) {
        index_msg_t *msg = waiting;
        waiting = msg->next;
        s_answer_error (msg, HP_CODE_INTERNAL, "the broker is stopping");
        s_post_reply (self, msg);
    }
    return NULL;
}

int
index_start (index_t *self, int64_t retention_ms, char *err, size_t errlen)
{
    self->retention_ms = retention_ms;
    self->next_prune = herald_clock_mono_ms () + S_PRUNE_FIRST_MS;
    if (pthread_create (&self->thread, NULL, s_thread, self) != 0) {
        snprintf (err, errlen, "index %.900s: cannot start its thread", self->path);
        return -1;
    }
    pthread_setname_np (self->thread, "herald-index");
    self->started = true;
    return 0;
}

void
index_destroy (index_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    index_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->thread, NULL);
    }
    if (self->db && self->in_txn)
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    s_window_clear (&self->window);
    for (size_t k = 0; k < self->window.chunk_count; k++)
        free (self->window.chunks[k]);
    free (self->window.chunks);
    free (self->window.big);
    free (self->window.events);
    free (self->window.slots);
    free (self->recent);
    free (self->recent_dirty);
    for (int i = 0; i < self->recent_list_count; i++)
        free (self->recent_lists[i]);
    for (int i = 0; i < S_STMT_COUNT; i++)
        sqlite3_finalize (self->stmt[i]);
    if (self->db)
        sqlite3_close (self->db);
    journal_reader_destroy (&self->reader);
    while (self->requests) {
        index_msg_t *next = self->requests->next;
        index_msg_destroy (&self->requests);
        self->requests = next;
    }
    while (self->replies) {
        index_msg_t *next = self->replies->next;
        index_msg_destroy (&self->replies);
        self->replies = next;
    }
    if (self->event_fd >= 0)
        close (self->event_fd);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    free (self);
    *self_p = NULL;
}

void
index_post (index_t *self, index_msg_t *msg)
{
    pthread_mutex_lock (&self->lock);
    msg->next = NULL;
    if (self->requests_tail)
        self->requests_tail->next = msg;
    else
        self->requests = msg;
    self->requests_tail = msg;
    atomic_store (&self->asked, true);
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

index_msg_t *
index_take (index_t *self)
{
    pthread_mutex_lock (&self->lock);
    index_msg_t *msg = self->replies;
    if (msg) {
        self->replies = msg->next;
        if (!self->replies)
            self->replies_tail = NULL;
        msg->next = NULL;
    }
    else {
        uint64_t value;
        ssize_t n = read (self->event_fd, &value, sizeof value);
        (void) n;
    }
    pthread_mutex_unlock (&self->lock);
    return msg;
}

int
index_fd (index_t *self)
{
    return self->event_fd;
}

index_msg_t *
index_msg_new (index_kind_t kind)
{
    index_msg_t *msg = calloc (1, sizeof *msg);
    if (msg)
        msg->kind = kind;
    return msg;
}

/*  Frees a load's tasks and their bodies; the message has none after. */
static void
s_msg_free_tasks (index_msg_t *msg)
{
    for (size_t i = 0; i < msg->task_count; i++)
        free (msg->tasks[i].body);
    free (msg->tasks);
    msg->tasks = NULL;
    msg->task_count = 0;
}

void
index_msg_destroy (index_msg_t **msg_p)
{
    if (!msg_p || !*msg_p)
        return;
    index_msg_t *msg = *msg_p;
    free (msg->json);
    s_msg_free_tasks (msg);
    free (msg->dedup_key);
    for (size_t i = 0; msg->pruned_keys && i < msg->pruned_count; i++)
        free (msg->pruned_keys[i]);
    free (msg->pruned_keys);
    free (msg->pruned_seqs);
    free (msg);
    *msg_p = NULL;
}

uint64_t
index_applied (index_t *self)
{
    return atomic_load (&self->applied);
}

int64_t
index_file_bytes (index_t *self)
{
    return atomic_load (&self->file_bytes);
}

void
index_set_retention (index_t *self, int64_t retention_ms)
{
    if (self)
        atomic_store (&self->retention_ms, retention_ms);
}
