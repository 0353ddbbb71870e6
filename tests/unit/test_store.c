/*  Unit tests: broker/store — durable events and tasks in SQLite. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static char dir[64];
static char path[128];

static void
setup (void)
{
    snprintf (dir, sizeof dir, "/tmp/herald-store-XXXXXX");
    cr_assert_not_null (mkdtemp (dir));
    snprintf (path, sizeof path, "%s/sub/herald.db", dir);
}

static void
teardown (void)
{
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (store, .init = setup, .fini = teardown);

static store_t *
open_store (void)
{
    char err[512];
    store_t *store = store_open (path, err, sizeof err);
    cr_assert_not_null (store, "open: %s", err);
    return store;
}

static int64_t
insert_fanout (store_t *store, const char *id, const char *key, int fanout, bool *duplicate,
               char *existing)
{
    store_event_t ev = { .id = id, .source = "shop", .type = "order.confirmed", .dedup_key = key,
                         .body = "{\"id\":\"x\"}", .body_len = 10, .received_at = 1000,
                         .fanout = fanout };
    cr_assert_eq (store_insert_event (store, &ev), 0, "%s", store_errstr (store));
    *duplicate = ev.duplicate;
    if (existing)
        snprintf (existing, 129, "%s", ev.existing_id);
    return ev.seq;
}

static int64_t
insert (store_t *store, const char *id, const char *key, bool *duplicate, char *existing)
{
    return insert_fanout (store, id, key, 0, duplicate, existing);
}

typedef struct {
    int count;
    int64_t rowids[16];
    char keys[16][64];
    int attempts[16];
    int64_t not_before[16];
    int64_t delays[16];
} loaded_t;

static int
collect (void *ctx, const store_task_t *task)
{
    loaded_t *loaded = ctx;
    loaded->rowids[loaded->count] = task->rowid;
    snprintf (loaded->keys[loaded->count], 64, "%s", task->key);
    loaded->attempts[loaded->count] = task->attempts;
    loaded->not_before[loaded->count] = task->not_before;
    loaded->delays[loaded->count] = task->delay;
    cr_assert_str_eq (task->body, "{\"id\":\"x\"}");
    loaded->count++;
    return 0;
}

Test (store, committed_tasks_survive_reopen)
{
    store_t *store = open_store ();
    bool dup;
    cr_assert_eq (store_begin (store), 0);
    int64_t seq = insert_fanout (store, "e1", "k1", 2, &dup, NULL);
    cr_assert_not (dup);
    int64_t r1, r2;
    cr_assert_eq (store_insert_task (store, seq, "email", "u1.email", 1000, &r1), 0);
    cr_assert_eq (store_insert_task (store, seq, "courier", "u1.courier", 1000, &r2), 0);
    cr_assert_eq (store_commit (store), 0);
    store_destroy (&store);
    cr_assert_null (store);

    store = open_store ();
    loaded_t loaded = { 0 };
    cr_assert_eq (store_load_pending (store, "email", 0, 100, collect, &loaded), 1);
    cr_assert_eq (loaded.rowids[0], r1);
    cr_assert_str_eq (loaded.keys[0], "u1.email");
    store_destroy (&store);
}

Test (store, rolled_back_work_is_gone)
{
    store_t *store = open_store ();
    bool dup;
    store_begin (store);
    int64_t seq = insert (store, "e1", "k1", &dup, NULL);
    int64_t r;
    store_insert_task (store, seq, "email", "u1.email", 1000, &r);
    store_rollback (store);
    loaded_t loaded = { 0 };
    cr_assert_eq (store_load_pending (store, "email", 0, 100, collect, &loaded), 0);
    store_destroy (&store);
}

Test (store, duplicate_key_reports_the_first_id)
{
    store_t *store = open_store ();
    bool dup;
    char existing[129];
    store_begin (store);
    int64_t first = insert (store, "e1", "k1", &dup, NULL);
    int64_t again = insert (store, "e2", "k1", &dup, existing);
    cr_assert (dup);
    cr_assert_eq (again, first);
    cr_assert_str_eq (existing, "e1");
    insert (store, "e3", "k2", &dup, NULL);
    cr_assert_not (dup);
    cr_assert_eq (store_commit (store), 0);
    cr_assert_eq (store_event_count (store), 2);
    store_destroy (&store);
}

typedef struct {
    int channels;
    char name[32];
    store_counts_t counts;
} counted_t;

static void
count_channel (void *ctx, const char *channel, const store_counts_t *counts)
{
    counted_t *counted = ctx;
    counted->channels++;
    snprintf (counted->name, sizeof counted->name, "%s", channel);
    counted->counts = *counts;
}

Test (store, outcomes_and_counts)
{
    store_t *store = open_store ();
    bool dup;
    store_begin (store);
    int64_t seq = insert (store, "e1", "k1", &dup, NULL);
    int64_t r[4];
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf (key, sizeof key, "u%d.email", i);
        store_insert_task (store, seq, "email", key, 1000, &r[i]);
    }
    cr_assert_eq (store_commit (store), 0);
    store_begin (store);
    cr_assert_eq (store_task_done (store, r[0], 1, 2000), 0);
    cr_assert_eq (store_task_dead (store, r[1], 3, "HTTP 400", 2000), 0);
    cr_assert_eq (store_attempt_log (store, r[1], 3, 2000, "failed", "HTTP 400"), 0);
    cr_assert_eq (store_task_reschedule (store, r[2], 2, 99999, 97999, "HTTP 500", 2000), 0);
    cr_assert_eq (store_commit (store), 0);
    counted_t counted = { 0 };
    cr_assert_eq (store_count (store, 5000, count_channel, &counted), 0);
    cr_assert_eq (counted.channels, 1, "one row per channel with tasks");
    cr_assert_str_eq (counted.name, "email");
    cr_assert_eq (counted.counts.pending, 2);
    cr_assert_eq (counted.counts.retrying, 1);
    cr_assert_eq (counted.counts.done, 1);
    cr_assert_eq (counted.counts.dead, 1);
    loaded_t loaded = { 0 };
    cr_assert_eq (store_load_pending (store, "email", 0, 100, collect, &loaded), 2);
    cr_assert_eq (loaded.rowids[0], r[2]);
    cr_assert_eq (loaded.attempts[0], 2);
    cr_assert_eq (loaded.not_before[0], 99999, "a scheduled retry is durable");
    cr_assert_eq (loaded.delays[0], 97999, "with the wait it asked for");
    cr_assert_eq (loaded.rowids[1], r[3]);
    /*  Refill window: after r[2], limit 1. */
    loaded_t next = { 0 };
    cr_assert_eq (store_load_pending (store, "email", r[2], 1, collect, &next), 1);
    cr_assert_eq (next.rowids[0], r[3]);
    store_destroy (&store);
}

Test (store, corrupt_file_refused_with_clear_error)
{
    char sub[160];
    snprintf (sub, sizeof sub, "%s/sub", dir);
    mkdir (sub, 0755);
    FILE *f = fopen (path, "w");
    cr_assert_not_null (f);
    for (int i = 0; i < 2000; i++)
        fputs ("this is not a database ", f);
    fclose (f);
    char err[512];
    store_t *store = store_open (path, err, sizeof err);
    cr_assert_null (store);
    cr_assert (strstr (err, path), "error names the file: %s", err);
    cr_assert (strstr (err, "not a database") || strstr (err, "corrupt"), "error says why: %s", err);
}

Test (store, damaged_pages_detected_at_open)
{
    store_t *store = open_store ();
    bool dup;
    store_begin (store);
    for (int i = 0; i < 500; i++) {
        char id[32], key[32];
        snprintf (id, sizeof id, "event-%d", i);
        snprintf (key, sizeof key, "key-%d", i);
        insert (store, id, key, &dup, NULL);
    }
    cr_assert_eq (store_commit (store), 0);
    store_destroy (&store);
    /*  Checkpoint the WAL into the main file, then scribble over pages 3 and 4. */
    char cmd[300];
    snprintf (cmd, sizeof cmd, "sqlite3 %s 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null", path);
    cr_assert_eq (system (cmd), 0);
    FILE *f = fopen (path, "r+b");
    cr_assert_not_null (f);
    fseek (f, 4096 * 2, SEEK_SET);
    for (int i = 0; i < 4096 * 2; i++)
        fputc (0xA5, f);
    fclose (f);
    char err[512];
    store = store_open (path, err, sizeof err);
    cr_assert_null (store, "a damaged store must not be served");
    cr_assert (strstr (err, path), "error names the file: %s", err);
}

Test (store, prune_keeps_unfinished_work)
{
    store_t *store = open_store ();
    bool dup;
    store_begin (store);
    int64_t r1, r2;
    int64_t old_done = insert_fanout (store, "e1", "k1", 1, &dup, NULL);
    store_insert_task (store, old_done, "email", "a.email", 1000, &r1);
    int64_t old_open = insert_fanout (store, "e2", "k2", 1, &dup, NULL);
    store_insert_task (store, old_open, "email", "b.email", 1000, &r2);
    store_task_done (store, r1, 1, 1000);
    cr_assert_eq (store_commit (store), 0);
    cr_assert_eq (store_prune (store, 5000, 100), 1);
    /*  k1 may be used again; k2 still deduplicates. */
    store_begin (store);
    insert (store, "e3", "k1", &dup, NULL);
    cr_assert_not (dup);
    insert (store, "e4", "k2", &dup, NULL);
    cr_assert (dup);
    store_commit (store);
    store_destroy (&store);
}

Test (store, rollback_restores_task_numbering)
{
    store_t *store = open_store ();
    bool dup;
    int64_t r1, r2, r3;
    store_begin (store);
    int64_t seq = insert_fanout (store, "e1", "k1", 1, &dup, NULL);
    store_insert_task (store, seq, "email", "a.email", 1000, &r1);
    cr_assert_eq (store_commit (store), 0);
    store_begin (store);
    seq = insert_fanout (store, "e2", "k2", 1, &dup, NULL);
    store_insert_task (store, seq, "email", "b.email", 1000, &r2);
    store_rollback (store);
    store_begin (store);
    seq = insert_fanout (store, "e3", "k3", 1, &dup, NULL);
    store_insert_task (store, seq, "email", "c.email", 1000, &r3);
    cr_assert_eq (store_commit (store), 0);
    cr_assert_eq (r2, r1 + 1);
    cr_assert_eq (r3, r1 + 1, "the rolled-back number is reused");
    store_destroy (&store);
    /*  Numbering continues after a reopen. */
    store = open_store ();
    store_begin (store);
    seq = insert_fanout (store, "e4", "k4", 1, &dup, NULL);
    int64_t r4;
    store_insert_task (store, seq, "email", "d.email", 1000, &r4);
    cr_assert_eq (store_commit (store), 0);
    cr_assert_eq (r4, r3 + 1);
    store_destroy (&store);
}

Test (store, foreign_database_refused_and_left_alone)
{
    char sub[160], cmd[400];
    snprintf (sub, sizeof sub, "%s/sub", dir);
    mkdir (sub, 0755);
    snprintf (cmd, sizeof cmd, "sqlite3 %s 'CREATE TABLE customers (id INTEGER, name TEXT);'", path);
    cr_assert_eq (system (cmd), 0);
    char err[512];
    store_t *store = store_open (path, err, sizeof err);
    cr_assert_null (store, "another application's database must not be adopted");
    cr_assert (strstr (err, path) && strstr (err, "not a Herald store"), "%s", err);
    snprintf (cmd, sizeof cmd, "test \"$(sqlite3 %s \"SELECT count(*) FROM sqlite_master WHERE name = 'events'\")\" = 0", path);
    cr_assert_eq (system (cmd), 0, "no Herald table was added to it");
}

/*  Commits one transaction of `events` events with a body of body_len bytes
    and three tasks each; returns the WAL length after it. */
static int
commit_events (store_t *store, int *serial, int events, size_t body_len)
{
    static char body[8192];
    memset (body, 'b', body_len);
    body[body_len] = '\0';
    cr_assert_eq (store_begin (store), 0, "%s", store_errstr (store));
    for (int i = 0; i < events; i++) {
        char id[32];
        snprintf (id, sizeof id, "ev-%d", ++*serial);
        store_event_t ev = { .id = id, .source = "shop", .type = "order.confirmed", .dedup_key = id,
                             .body = body, .body_len = body_len, .received_at = 1000, .fanout = 3 };
        cr_assert_eq (store_insert_event (store, &ev), 0, "%s", store_errstr (store));
        const char *channels[] = { "email", "inventory", "courier" };
        for (int c = 0; c < 3; c++) {
            char key[64];
            int64_t rowid;
            snprintf (key, sizeof key, "%s.%s", id, channels[c]);
            cr_assert_eq (store_insert_task (store, ev.seq, channels[c], key, 1000, &rowid), 0);
        }
    }
    cr_assert_eq (store_commit (store), 0, "%s", store_errstr (store));
    return store_wal_pages (store);
}

/*  One small commit at a time (a producer publishing one event at a time):
    the checkpointer catches up and starts the WAL over, so commits keep
    overwriting the same few megabytes instead of growing the file. */
Test (store, wal_starts_over_under_one_commit_at_a_time, .timeout = 120)
{
    store_t *store = open_store ();
    int serial = 0, peak = 0, restarts = 0, previous = 0;
    for (int i = 0; i < 40000 && restarts < 3; i++) {
        int pages = commit_events (store, &serial, 1, 600);
        if (pages > peak)
            peak = pages;
        if (pages < previous)
            restarts++;
        previous = pages;
    }
    cr_assert_geq (restarts, 3, "the WAL was started over %d times in %d commits (peak %d pages)",
                   restarts, serial, peak);
    cr_assert_lt (peak, STORE_WAL_LIMIT_PAGES, "the WAL grew to %d pages", peak);
    /*  Nothing was lost on the way. */
    cr_assert_eq (store_event_count (store), serial);
    store_destroy (&store);
    store = open_store ();
    cr_assert_eq (store_event_count (store), serial);
    store_destroy (&store);
}

/*  Large commits back to back, faster than the checkpointer can catch up:
    the WAL is still started over by STORE_WAL_LIMIT_PAGES, not left to
    grow without bound. */
Test (store, wal_bounded_under_heavy_commits, .timeout = 300)
{
    store_t *store = open_store ();
    int serial = 0, peak = 0, restarts = 0, previous = 0;
    long written = 0;
    char peaks[400] = "";           /* the WAL's length before each restart */
    size_t used = 0;
    while (written < 5L * STORE_WAL_LIMIT_PAGES) {
        int pages = commit_events (store, &serial, 100, 4000);
        if (pages > peak)
            peak = pages;
        if (pages < previous) {
            restarts++;
            written += pages;       /* the growth before it is counted already */
            if (used < sizeof peaks - 20)
                used += (size_t) snprintf (peaks + used, sizeof peaks - used, " %d", previous);
        }
        else
            written += pages - previous;
        previous = pages;
    }
    cr_assert_geq (restarts, 2, "%ld pages written, %d restarts (at%s), now %d pages", written,
                   restarts, peaks, previous);
    /*  At most twice the limit plus the one commit that crossed it. */
    cr_assert_lt (peak, 2 * STORE_WAL_LIMIT_PAGES + 1000, "the WAL grew to %d pages (limit %d)",
                  peak, STORE_WAL_LIMIT_PAGES);
    struct stat st;
    char wal[160];
    snprintf (wal, sizeof wal, "%s-wal", path);
    cr_assert_eq (stat (wal, &st), 0);
    cr_assert_lt (st.st_size, (2L * STORE_WAL_LIMIT_PAGES + 1000) * 4120, "WAL file of %lld bytes",
                  (long long) st.st_size);
    cr_assert_eq (store_event_count (store), serial);
    store_destroy (&store);
}
