/*  store: SQLite (WAL, synchronous=FULL) implementation of the broker store. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store.h"

enum {
    S_INSERT_EVENT,
    S_FIND_DEDUP,
    S_INSERT_TASK,
    S_TASK_DONE,
    S_TASK_RESCHEDULE,
    S_TASK_DEAD,
    S_ATTEMPT_LOG,
    S_LOAD_PENDING,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_COUNT
};

static const char *s_sql[S_COUNT] = {
    [S_INSERT_EVENT] =
        "INSERT OR IGNORE INTO events (id, source, type, dedup_key, received_at, body, first_task, fanout)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_FIND_DEDUP] = "SELECT seq, id FROM events WHERE dedup_key = ?1",
    [S_INSERT_TASK] =
        "INSERT INTO tasks (id, key, event_seq, channel, state, attempts, not_before, updated_at)"
        " VALUES (?5, ?1, ?2, ?3, 0, 0, 0, ?4)",
    [S_TASK_DONE] =
        "UPDATE tasks SET state = 1, attempts = ?2, last_error = NULL, updated_at = ?3 WHERE id = ?1",
    [S_TASK_RESCHEDULE] =
        "UPDATE tasks SET state = 0, attempts = ?2, not_before = ?3, last_error = ?4,"
        " updated_at = ?5, retry_delay = ?6 WHERE id = ?1",
    [S_TASK_DEAD] =
        "UPDATE tasks SET state = 2, attempts = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
    [S_ATTEMPT_LOG] =
        "INSERT INTO attempts (task_id, attempt, at, outcome, error) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_LOAD_PENDING] =
        "SELECT t.id, t.key, t.channel, t.attempts, t.not_before, e.body, t.retry_delay FROM tasks t"
        " JOIN events e ON e.seq = t.event_seq"
        " WHERE t.state = 0 AND t.channel = ?1 AND t.id > ?2 ORDER BY t.id LIMIT ?3",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  dedup_key TEXT NOT NULL UNIQUE,"
    "  received_at INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  first_task INTEGER NOT NULL,"   /* its tasks are rowids first_task .. first_task+fanout-1 */
    "  fanout INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_id ON events (id);"
    "CREATE TABLE IF NOT EXISTS tasks ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  event_seq INTEGER NOT NULL,"
    "  channel TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  not_before INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  updated_at INTEGER NOT NULL,"
    "  retry_delay INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS tasks_open ON tasks (channel, id) WHERE state = 0;"
    "CREATE INDEX IF NOT EXISTS tasks_dead ON tasks (channel, id) WHERE state = 2;"
    "CREATE TABLE IF NOT EXISTS attempts ("
    "  task_id INTEGER NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL,"
    "  error TEXT);"
    "CREATE INDEX IF NOT EXISTS attempts_task ON attempts (task_id);"
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', 'herald/1');";

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    char path[1024];
    store_error_t err;              /* class of the last error */
    char errstr[1600];              /* what failed, naming the operation */
    bool in_transaction;
    int64_t next_task;              /* rowid of the next task: the broker numbers tasks itself */
    int64_t next_task_at_begin;     /* restored on rollback */
    /*  Checkpoints run on their own thread and connection, so a commit on
        the broker loop only appends to the WAL and fsyncs it. */
    pthread_t checkpointer;
    bool checkpointer_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;                  /* under lock */
    bool wake_pending;              /* under lock: a commit left CHECKPOINT_PAGES or more */
    atomic_int wal_frames;          /* WAL size (frames) after the last commit */
    atomic_int checkpoint_failed;   /* an I/O error in a checkpoint: the store is unsound */
    char checkpoint_error[1600];    /* written once before checkpoint_failed is set */
};

#define CHECKPOINT_PAGES STORE_CHECKPOINT_PAGES     /* WAL pages that wake the checkpointer */
#define CHECKPOINT_PASSES 8         /* passive passes before the closing one */
#define CHECKPOINT_TAIL 64          /* frames left that the closing pass may take */

static int
s_fail (store_t *self, const char *what)
{
    int code = self->db? sqlite3_extended_errcode (self->db): SQLITE_ERROR;
    int primary = code & 0xff;
    if (primary == SQLITE_FULL)
        self->err = STORE_ERR_FULL;
    else
    if (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY)
        self->err = STORE_ERR_IO;
    else
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
        self->err = STORE_ERR_CORRUPT;
    else
        self->err = STORE_ERR_OTHER;
    snprintf (self->errstr, sizeof self->errstr, "store %s: %s: %s (sqlite code %d)",
              self->path, what, self->db? sqlite3_errmsg (self->db): "no database", code);
    return -1;
}

static int
s_step_done (store_t *self, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return s_fail (self, what);
    return 0;
}

static int
s_exec (store_t *self, const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec (self->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_free (msg);
        return s_fail (self, what);
    }
    return 0;
}

static int
s_wal_hook (void *ctx, sqlite3 *db, const char *name, int pages)
{
    store_t *self = ctx;
    atomic_store_explicit (&self->wal_frames, pages, memory_order_relaxed);
    if (pages >= CHECKPOINT_PAGES) {
        pthread_mutex_lock (&self->lock);
        self->wake_pending = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
    }
    return SQLITE_OK;
}

/*  A connection that meets a lock held by the other one (the broker's
    commit, or the checkpointer's closing pass) waits in short steps: both
    hold it well under a millisecond, and SQLite's own busy timeout sleeps
    a whole millisecond at least. 50 us steps for 10 ms, then 1 ms steps,
    up to about 5 s in all. */
static int
s_busy_wait (void *ctx, int count)
{
    (void) ctx;
    if (count >= 200 + 5000)
        return 0;
    struct timespec step = { 0, count < 200? 50000: 1000000 };
    nanosleep (&step, NULL);
    return 1;
}

static void *
s_checkpointer (void *arg)
{
    store_t *self = arg;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2 (self->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf (self->checkpoint_error, sizeof self->checkpoint_error,
                  "store %s: checkpointer cannot open the store: %s", self->path,
                  db? sqlite3_errmsg (db): "out of memory");
        atomic_store (&self->checkpoint_failed, 1);
        sqlite3_close (db);
        return NULL;
    }
    sqlite3_busy_handler (db, s_busy_wait, NULL);
    sqlite3_exec (db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    pthread_mutex_lock (&self->lock);
    while (!self->stopping) {
        if (!self->wake_pending) {
            pthread_cond_wait (&self->wake, &self->lock);
            continue;
        }
        pthread_mutex_unlock (&self->lock);
        /*  Passive passes copy the WAL into the database while commits go
            on. When they catch up with the commits (little traffic), one
            closing RESTART pass holds commits off while it copies the last
            few frames, so the next commit starts the WAL over from its
            beginning: commits then overwrite blocks the file already has,
            and fdatasync after an overwrite has a far shorter tail than
            after an append, which must also journal the file's new size.
            Under heavy traffic the passes never catch up and the WAL grows
            (a closing pass would hold commits off for milliseconds), up to
            STORE_WAL_LIMIT_PAGES, where it is closed anyway, with TRUNCATE:
            after RESTART the next commit starts the WAL over only if no
            other connection touches a reader lock at that moment, while
            TRUNCATE starts it over itself. */
        int done = 0, log = 0, behind = 0, frames = 0;
        int rc = SQLITE_OK;
        for (int pass = 0; pass < CHECKPOINT_PASSES && rc == SQLITE_OK; pass++) {
            rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
            frames = atomic_load_explicit (&self->wal_frames, memory_order_relaxed);
            behind = frames - done;
            if (behind <= CHECKPOINT_TAIL || frames >= STORE_WAL_LIMIT_PAGES)
                break;
        }
        if (rc == SQLITE_OK && behind <= CHECKPOINT_TAIL)
            rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
        else
        if (rc == SQLITE_OK && frames >= STORE_WAL_LIMIT_PAGES)
            rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
        if ((rc & 0xff) == SQLITE_BUSY)
            rc = SQLITE_OK;     /* a reader held on: a later round closes it */
        int primary = rc & 0xff;
        if (primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_CORRUPT) {
            /*  The database file could not take the WAL's pages: nothing is
                lost (the WAL still holds them) unless fsync failed, and then
                the page cache cannot be trusted. The broker stops. */
            snprintf (self->checkpoint_error, sizeof self->checkpoint_error,
                      "store %s: checkpoint failed: %s (sqlite code %d)", self->path,
                      sqlite3_errmsg (db), sqlite3_extended_errcode (db));
            if (primary != SQLITE_FULL)
                atomic_store (&self->checkpoint_failed, 1);
        }
        pthread_mutex_lock (&self->lock);
        self->wake_pending = false;     /* the next commit says whether the WAL is long again */
    }
    pthread_mutex_unlock (&self->lock);
    sqlite3_close (db);
    return NULL;
}

static int
s_check_integrity (store_t *self, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, "PRAGMA quick_check", -1, &stmt, NULL) != SQLITE_OK) {
        s_fail (self, "integrity check");
        snprintf (err, errlen, "%s", self->errstr);
        return -1;
    }
    int rc = sqlite3_step (stmt);
    const char *result = rc == SQLITE_ROW? (const char *) sqlite3_column_text (stmt, 0): NULL;
    if (rc != SQLITE_ROW || !result || strcmp (result, "ok") != 0) {
        if (result) {
            /*  One line: SQLite lists problems on several lines. */
            char problems[400];
            size_t n = 0;
            for (const char *p = result; *p && n + 3 < sizeof problems; p++) {
                if (*p == '\n') {
                    problems[n++] = ';';
                    problems[n++] = ' ';
                }
                else
                if ((unsigned char) *p >= 0x20)
                    problems[n++] = *p;
            }
            problems[n] = '\0';
            snprintf (err, errlen, "store %s: corrupt: integrity check failed: %s "
                      "(restore from a backup or move the file away)", self->path, problems);
        }
        else {
            s_fail (self, "integrity check");
            snprintf (err, errlen, "%s", self->errstr);
        }
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
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir (dir, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir (dir, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

store_t *
store_open (const char *path, char *err, size_t errlen)
{
    store_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "store %s: out of memory", path);
        return NULL;
    }
    snprintf (self->path, sizeof self->path, "%s", path);
    if (s_mkdir_parent (path) != 0) {
        snprintf (err, errlen, "store %s: cannot create its directory: %s", path, strerror (errno));
        free (self);
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2 (path, &self->db, flags, NULL) != SQLITE_OK) {
        s_fail (self, "open");
        snprintf (err, errlen, "%s", self->errstr);
        store_destroy (&self);
        return NULL;
    }
    sqlite3_extended_result_codes (self->db, 1);
    sqlite3_busy_handler (self->db, s_busy_wait, NULL);
    /*  An existing file must be a SQLite database holding a Herald store:
        anything else is refused rather than overwritten. */
    if (s_check_integrity (self, err, errlen) != 0) {
        store_destroy (&self);
        return NULL;
    }
    /*  A database with tables but no Herald schema row belongs to someone
        else: refuse it rather than add our tables to it. */
    sqlite3_stmt *probe = NULL;
    bool foreign = false;
    if (sqlite3_prepare_v2 (self->db,
            "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table'),"
            " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            -1, &probe, NULL) == SQLITE_OK && sqlite3_step (probe) == SQLITE_ROW)
        foreign = sqlite3_column_int (probe, 0) > 0 && sqlite3_column_int (probe, 1) == 0;
    sqlite3_finalize (probe);
    if (foreign) {
        snprintf (err, errlen, "store %s: not a Herald store (an SQLite database with other tables);"
                  " refusing to use it", path);
        store_destroy (&self);
        return NULL;
    }
    if (s_exec (self, "PRAGMA journal_mode=WAL", "set WAL mode") != 0
    ||  s_exec (self, "PRAGMA synchronous=FULL", "set synchronous=FULL") != 0
    ||  s_exec (self, "PRAGMA foreign_keys=OFF", "pragma") != 0
    ||  s_exec (self, "PRAGMA cache_size=-65536", "pragma") != 0
    ||  s_exec (self, "PRAGMA wal_autocheckpoint=0", "pragma") != 0
    ||  s_exec (self, "PRAGMA journal_size_limit=67108864", "pragma") != 0
    ||  s_exec (self, s_schema, "create schema") != 0) {
        snprintf (err, errlen, "%s", self->errstr);
        store_destroy (&self);
        return NULL;
    }
    sqlite3_stmt *check = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT value FROM meta WHERE key = 'schema'", -1,
                            &check, NULL) == SQLITE_OK
    &&  sqlite3_step (check) == SQLITE_ROW) {
        const char *schema = (const char *) sqlite3_column_text (check, 0);
        if (!schema || strcmp (schema, "herald/1") != 0) {
            snprintf (err, errlen, "store %s: schema '%s' is not supported (expected herald/1)",
                      path, schema? schema: "");
            sqlite3_finalize (check);
            store_destroy (&self);
            return NULL;
        }
    }
    sqlite3_finalize (check);
    sqlite3_stmt *max = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT coalesce(max(id), 0) + 1 FROM tasks", -1, &max, NULL)
        != SQLITE_OK || sqlite3_step (max) != SQLITE_ROW) {
        sqlite3_finalize (max);
        s_fail (self, "read task numbering");
        snprintf (err, errlen, "%s", self->errstr);
        store_destroy (&self);
        return NULL;
    }
    self->next_task = sqlite3_column_int64 (max, 0);
    sqlite3_finalize (max);
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3 (self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->stmt[i], NULL) != SQLITE_OK) {
            s_fail (self, "prepare statement");
            snprintf (err, errlen, "%s", self->errstr);
            store_destroy (&self);
            return NULL;
        }
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    sqlite3_wal_hook (self->db, s_wal_hook, self);
    if (pthread_create (&self->checkpointer, NULL, s_checkpointer, self) != 0) {
        snprintf (err, errlen, "store %s: cannot start the checkpoint thread", path);
        pthread_mutex_destroy (&self->lock);
        pthread_cond_destroy (&self->wake);
        store_destroy (&self);
        return NULL;
    }
    self->checkpointer_started = true;
    return self;
}

void
store_destroy (store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    if (self->checkpointer_started) {
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->checkpointer, NULL);
        pthread_mutex_destroy (&self->lock);
        pthread_cond_destroy (&self->wake);
    }
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize (self->stmt[i]);
    if (self->db)
        sqlite3_close (self->db);
    free (self);
    *self_p = NULL;
}

store_error_t
store_error (store_t *self)
{
    return self->err;
}

const char *
store_errstr (store_t *self)
{
    return self->errstr;
}

int
store_begin (store_t *self)
{
    /*  The checkpointer could not keep up (a disk slower than the intake):
        the writer waits while the WAL is copied and started over, so it
        stays bounded. */
    for (int tries = 0; tries < 10000
         && atomic_load_explicit (&self->wal_frames, memory_order_relaxed) >= 2 * STORE_WAL_LIMIT_PAGES;
         tries++) {
        /*  TRUNCATE resets the WAL itself, under the lock; after RESTART
            the next writer resets it only if no other connection touches
            a reader lock at that moment, which a busy checkpointer can. */
        int rc = sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        if (rc == SQLITE_OK)
            atomic_store_explicit (&self->wal_frames, 0, memory_order_relaxed);
        else
        if ((rc & 0xff) != SQLITE_BUSY)
            return s_fail (self, "checkpoint of an overlong WAL");
        else {
            /*  The checkpointer is in the middle of a pass (SQLite runs one
                checkpoint at a time and says BUSY at once): wait for it. */
            struct timespec step = { 0, 1000000 };
            nanosleep (&step, NULL);
        }
    }
    if (s_step_done (self, self->stmt[S_BEGIN], "begin transaction") != 0)
        return -1;
    self->in_transaction = true;
    self->next_task_at_begin = self->next_task;
    return 0;
}

int
store_commit (store_t *self)
{
    if (atomic_load (&self->checkpoint_failed)) {
        /*  A checkpoint's fsync failed: nothing more may be acknowledged. */
        self->err = STORE_ERR_IO;
        snprintf (self->errstr, sizeof self->errstr, "%s", self->checkpoint_error);
        store_rollback (self);
        return -1;
    }
    int rc = s_step_done (self, self->stmt[S_COMMIT], "commit");
    if (rc != 0 && sqlite3_get_autocommit (self->db) == 0) {
        /*  Keep the error of the commit, not of the rollback. */
        store_error_t err = self->err;
        char errstr[sizeof self->errstr];
        memcpy (errstr, self->errstr, sizeof errstr);
        sqlite3_step (self->stmt[S_ROLLBACK]);
        sqlite3_reset (self->stmt[S_ROLLBACK]);
        self->err = err;
        memcpy (self->errstr, errstr, sizeof errstr);
    }
    if (rc != 0)
        self->next_task = self->next_task_at_begin;
    self->in_transaction = false;
    return rc;
}

void
store_rollback (store_t *self)
{
    if (sqlite3_get_autocommit (self->db) == 0) {
        sqlite3_step (self->stmt[S_ROLLBACK]);
        sqlite3_reset (self->stmt[S_ROLLBACK]);
    }
    if (self->in_transaction)
        self->next_task = self->next_task_at_begin;
    self->in_transaction = false;
}

int
store_insert_event (store_t *self, store_event_t *event)
{
    sqlite3_stmt *stmt = self->stmt[S_INSERT_EVENT];
    sqlite3_bind_text (stmt, 1, event->id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, event->source, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, event->type, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 4, event->dedup_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 5, event->received_at);
    sqlite3_bind_text (stmt, 6, event->body, (int) event->body_len, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 7, self->next_task);
    sqlite3_bind_int (stmt, 8, event->fanout);
    if (s_step_done (self, stmt, "insert event") != 0)
        return -1;
    if (sqlite3_changes (self->db) == 1) {
        event->seq = sqlite3_last_insert_rowid (self->db);
        event->duplicate = false;
        return 0;
    }
    /*  Ignored: the idempotency key is already stored. */
    stmt = self->stmt[S_FIND_DEDUP];
    sqlite3_bind_text (stmt, 1, event->dedup_key, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW) {
        sqlite3_reset (stmt);
        return s_fail (self, "find duplicate event");
    }
    event->seq = sqlite3_column_int64 (stmt, 0);
    const char *id = (const char *) sqlite3_column_text (stmt, 1);
    snprintf (event->existing_id, sizeof event->existing_id, "%s", id? id: "");
    event->duplicate = true;
    sqlite3_reset (stmt);
    return 0;
}

int
store_insert_task (store_t *self, int64_t event_seq, const char *channel, const char *key,
                   int64_t now, int64_t *rowid)
{
    sqlite3_stmt *stmt = self->stmt[S_INSERT_TASK];
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, event_seq);
    sqlite3_bind_text (stmt, 3, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, now);
    sqlite3_bind_int64 (stmt, 5, self->next_task);
    if (s_step_done (self, stmt, "insert task") != 0)
        return -1;
    *rowid = self->next_task++;
    return 0;
}

int
store_task_done (store_t *self, int64_t rowid, int attempts, int64_t now)
{
    sqlite3_stmt *stmt = self->stmt[S_TASK_DONE];
    sqlite3_bind_int64 (stmt, 1, rowid);
    sqlite3_bind_int (stmt, 2, attempts);
    sqlite3_bind_int64 (stmt, 3, now);
    return s_step_done (self, stmt, "mark task done");
}

int
store_task_reschedule (store_t *self, int64_t rowid, int attempts, int64_t not_before,
                       int64_t delay, const char *error, int64_t now)
{
    sqlite3_stmt *stmt = self->stmt[S_TASK_RESCHEDULE];
    sqlite3_bind_int64 (stmt, 1, rowid);
    sqlite3_bind_int (stmt, 2, attempts);
    sqlite3_bind_int64 (stmt, 3, not_before);
    sqlite3_bind_text (stmt, 4, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 5, now);
    sqlite3_bind_int64 (stmt, 6, delay);
    return s_step_done (self, stmt, "reschedule task");
}

int
store_task_dead (store_t *self, int64_t rowid, int attempts, const char *error, int64_t now)
{
    sqlite3_stmt *stmt = self->stmt[S_TASK_DEAD];
    sqlite3_bind_int64 (stmt, 1, rowid);
    sqlite3_bind_int (stmt, 2, attempts);
    sqlite3_bind_text (stmt, 3, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, now);
    return s_step_done (self, stmt, "mark task dead");
}

int
store_attempt_log (store_t *self, int64_t rowid, int attempt, int64_t at,
                   const char *outcome, const char *error)
{
    sqlite3_stmt *stmt = self->stmt[S_ATTEMPT_LOG];
    sqlite3_bind_int64 (stmt, 1, rowid);
    sqlite3_bind_int (stmt, 2, attempt);
    sqlite3_bind_int64 (stmt, 3, at);
    sqlite3_bind_text (stmt, 4, outcome, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 5, error, -1, SQLITE_STATIC);
    return s_step_done (self, stmt, "log attempt");
}

int
store_load_pending (store_t *self, const char *channel, int64_t after, int limit,
                    store_task_fn *fn, void *ctx)
{
    sqlite3_stmt *stmt = self->stmt[S_LOAD_PENDING];
    sqlite3_bind_text (stmt, 1, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, after);
    sqlite3_bind_int (stmt, 3, limit);
    int count = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        store_task_t task = {
            .rowid = sqlite3_column_int64 (stmt, 0),
            .key = (const char *) sqlite3_column_text (stmt, 1),
            .channel = (const char *) sqlite3_column_text (stmt, 2),
            .attempts = sqlite3_column_int (stmt, 3),
            .not_before = sqlite3_column_int64 (stmt, 4),
            .body = (const char *) sqlite3_column_text (stmt, 5),
            .body_len = (size_t) sqlite3_column_bytes (stmt, 5),
            .delay = sqlite3_column_int64 (stmt, 6),
        };
        count++;
        if (fn (ctx, &task) != 0)
            break;
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_fail (self, "load pending tasks");
    return count;
}

int
store_count (store_t *self, int64_t now_wall, store_count_fn *fn, void *ctx)
{
    sqlite3_stmt *stmt = NULL;
    const char *sql =
        "SELECT channel, sum(state = 0), sum(state = 0 AND not_before > ?1),"
        " sum(state = 1), sum(state = 2) FROM tasks GROUP BY channel";
    if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return s_fail (self, "count tasks");
    sqlite3_bind_int64 (stmt, 1, now_wall);
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        store_counts_t counts = {
            .pending = sqlite3_column_int64 (stmt, 1),
            .retrying = sqlite3_column_int64 (stmt, 2),
            .done = sqlite3_column_int64 (stmt, 3),
            .dead = sqlite3_column_int64 (stmt, 4),
        };
        fn (ctx, (const char *) sqlite3_column_text (stmt, 0), &counts);
    }
    sqlite3_finalize (stmt);
    if (rc != SQLITE_DONE)
        return s_fail (self, "count tasks");
    return 0;
}

int64_t
store_event_count (store_t *self)
{
    sqlite3_stmt *stmt = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2 (self->db, "SELECT max(seq) FROM events", -1, &stmt, NULL) == SQLITE_OK
    &&  sqlite3_step (stmt) == SQLITE_ROW)
        n = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return n;
}

int
store_wal_pages (store_t *self)
{
    return atomic_load_explicit (&self->wal_frames, memory_order_relaxed);
}

void *
store_db (store_t *self)
{
    return self->db;
}

int
store_prune (store_t *self, int64_t cutoff, int limit)
{
    /*  Old events whose every task is done: their idempotency window is
        over and nothing is left to deliver. Dead tasks keep their event. */
    sqlite3_stmt *old = NULL, *open = NULL, *del_tasks = NULL, *del_event = NULL;
    int deleted = 0;
    if (sqlite3_prepare_v2 (self->db, "SELECT seq, first_task, fanout FROM events"
                            " WHERE received_at < ?1 ORDER BY seq LIMIT ?2", -1, &old, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "SELECT count(*) FROM tasks WHERE id >= ?1 AND id < ?1 + ?2"
                            " AND state <> 1", -1, &open, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM tasks WHERE id >= ?1 AND id < ?1 + ?2", -1,
                            &del_tasks, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (self->db, "DELETE FROM events WHERE seq = ?1", -1, &del_event, NULL)
        != SQLITE_OK) {
        deleted = s_fail (self, "prepare prune");
        goto done;
    }
    if (store_begin (self) != 0) {
        deleted = -1;
        goto done;
    }
    sqlite3_bind_int64 (old, 1, cutoff);
    sqlite3_bind_int (old, 2, limit);
    while (sqlite3_step (old) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64 (old, 0);
        int64_t first = sqlite3_column_int64 (old, 1);
        int fanout = sqlite3_column_int (old, 2);
        sqlite3_bind_int64 (open, 1, first);
        sqlite3_bind_int (open, 2, fanout);
        bool finished = sqlite3_step (open) == SQLITE_ROW && sqlite3_column_int64 (open, 0) == 0;
        sqlite3_reset (open);
        if (!finished)
            continue;
        sqlite3_bind_int64 (del_tasks, 1, first);
        sqlite3_bind_int (del_tasks, 2, fanout);
        sqlite3_bind_int64 (del_event, 1, seq);
        if (s_step_done (self, del_tasks, "prune tasks") != 0
        ||  s_step_done (self, del_event, "prune event") != 0) {
            store_rollback (self);
            deleted = -1;
            goto done;
        }
        deleted++;
    }
    if (store_commit (self) != 0)
        deleted = -1;
done:
    sqlite3_finalize (old);
    sqlite3_finalize (open);
    sqlite3_finalize (del_tasks);
    sqlite3_finalize (del_event);
    return deleted;
}
