/*  admin: the admin endpoint's verbs (status, dead.*, track), as specified
    in proto/PROTOCOL.md "Admin verbs". Reads committed state from the store
    and live state (in flight, workers) from the dispatcher. */
#include <jansson.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_internal.h"
#include "herald_clock.h"
#include "herald_log.h"

static int
s_error (char **body, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_error (char **body, int code, const char *fmt, ...)
{
    char text[300];
    va_list args;
    va_start (args, fmt);
    vsnprintf (text, sizeof text, fmt, args);
    va_end (args);
    json_t *reply = json_pack ("{s:s}", "error", text);
    *body = json_dumps (reply, JSON_COMPACT);
    json_decref (reply);
    return code;
}

static int
s_reply (char **body, json_t *reply)
{
    *body = json_dumps (reply, JSON_COMPACT);
    json_decref (reply);
    return *body? HP_CODE_OK: HP_CODE_INTERNAL;
}

static const char *
s_text (sqlite3_stmt *stmt, int column)
{
    const char *text = (const char *) sqlite3_column_text (stmt, column);
    return text? text: "";
}

/*  status */

static int
s_status (broker_t *self, char **body)
{
    json_t *channels = json_array ();
    for (int c = 0; c < self->config->channel_count; c++) {
        const herald_channel_t *channel = &self->config->channels[c];
        dispatch_counts_t counts;
        dispatch_counts (self->dispatch, c, &counts);
        int64_t open = self->stats[c].open;
        int64_t pending = open - (int64_t) counts.in_flight - (int64_t) counts.delayed;
        json_array_append_new (channels, json_pack (
            "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:i}",
            "name", channel->name,
            "driver", herald_driver_name (channel->driver),
            "pending", (json_int_t) (pending > 0? pending: 0),
            "in_flight", (json_int_t) counts.in_flight,
            "retrying", (json_int_t) counts.delayed,
            "done", (json_int_t) self->stats[c].done,
            "dead", (json_int_t) self->stats[c].dead,
            "workers", counts.workers));
    }
    int64_t events = store_event_count (self->store);
    json_t *reply = json_pack ("{s:{s:s, s:I, s:I, s:s, s:b}, s:o}",
        "broker",
            "version", HERALD_VERSION,
            "uptime_ms", (json_int_t) (herald_clock_mono_ms () - self->started_mono),
            "events", (json_int_t) (events > 0? events: 0),
            "store", self->config->broker.store,
            "store_full", self->store_full,
        "channels", channels);
    json_object_set_new (reply, "security", security_status (self->security));
    return s_reply (body, reply);
}

/*  Selectors shared by dead.retry and dead.purge: task_id, channel or all. */
typedef struct {
    char where[128];
    const char *task_id;
    const char *channel;
} selector_t;

static int
s_selector (broker_t *self, json_t *args, selector_t *sel, char **body)
{
    sel->task_id = json_string_value (json_object_get (args, "task_id"));
    sel->channel = json_string_value (json_object_get (args, "channel"));
    bool all = json_is_true (json_object_get (args, "all"));
    if (sel->task_id)
        snprintf (sel->where, sizeof sel->where, "t.state = 2 AND t.key = ?1");
    else
    if (sel->channel) {
        if (herald_config_channel_index (self->config, sel->channel) < 0)
            return s_error (body, HP_CODE_NOT_FOUND, "no channel '%s'", sel->channel);
        snprintf (sel->where, sizeof sel->where, "t.state = 2 AND t.channel = ?1");
    }
    else
    if (all)
        snprintf (sel->where, sizeof sel->where, "t.state = 2");
    else
        return s_error (body, HP_CODE_BAD_REQUEST, "%s", "say which tasks: task_id, channel or all");
    return 0;
}

static void
s_bind_selector (sqlite3_stmt *stmt, const selector_t *sel)
{
    if (sel->task_id)
        sqlite3_bind_text (stmt, 1, sel->task_id, -1, SQLITE_TRANSIENT);
    else
    if (sel->channel)
        sqlite3_bind_text (stmt, 1, sel->channel, -1, SQLITE_TRANSIENT);
}

/*  dead.list */

static int
s_dead_list (broker_t *self, json_t *args, char **body)
{
    const char *channel = json_string_value (json_object_get (args, "channel"));
    json_int_t limit = json_integer_value (json_object_get (args, "limit"));
    if (limit <= 0 || limit > 100000)
        limit = 100;
    char sql[400];
    snprintf (sql, sizeof sql,
              "SELECT t.key, e.id, t.channel, t.attempts, t.last_error, t.updated_at"
              " FROM tasks t JOIN events e ON e.seq = t.event_seq"
              " WHERE t.state = 2%s ORDER BY t.id LIMIT %lld",
              channel? " AND t.channel = ?1": "", (long long) limit);
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (store_db (self->store), sql, -1, &stmt, NULL) != SQLITE_OK)
        return s_error (body, HP_CODE_INTERNAL, "dead.list: %s", sqlite3_errmsg (store_db (self->store)));
    if (channel)
        sqlite3_bind_text (stmt, 1, channel, -1, SQLITE_TRANSIENT);
    json_t *tasks = json_array ();
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (tasks, json_pack ("{s:s, s:s, s:s, s:i, s:s, s:I}",
            "task_id", s_text (stmt, 0), "event_id", s_text (stmt, 1), "channel", s_text (stmt, 2),
            "attempts", sqlite3_column_int (stmt, 3), "last_error", s_text (stmt, 4),
            "dead_at", (json_int_t) sqlite3_column_int64 (stmt, 5)));
    sqlite3_finalize (stmt);
    return s_reply (body, json_pack ("{s:o}", "tasks", tasks));
}

/*  dead.show */

static json_t *
s_history (broker_t *self, int64_t rowid)
{
    json_t *history = json_array ();
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (store_db (self->store),
            "SELECT attempt, at, outcome, error FROM attempts WHERE task_id = ?1 ORDER BY at, attempt",
            -1, &stmt, NULL) != SQLITE_OK)
        return history;
    sqlite3_bind_int64 (stmt, 1, rowid);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (history, json_pack ("{s:i, s:I, s:s, s:s}",
            "attempt", sqlite3_column_int (stmt, 0), "at", (json_int_t) sqlite3_column_int64 (stmt, 1),
            "outcome", s_text (stmt, 2), "error", s_text (stmt, 3)));
    sqlite3_finalize (stmt);
    return history;
}

static int
s_dead_show (broker_t *self, json_t *args, char **body)
{
    const char *task_id = json_string_value (json_object_get (args, "task_id"));
    if (!task_id)
        return s_error (body, HP_CODE_BAD_REQUEST, "%s", "dead.show needs task_id");
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (store_db (self->store),
            "SELECT t.id, t.key, e.id, t.channel, t.attempts, t.last_error, t.updated_at, e.body"
            " FROM tasks t JOIN events e ON e.seq = t.event_seq WHERE t.state = 2 AND t.key = ?1",
            -1, &stmt, NULL) != SQLITE_OK)
        return s_error (body, HP_CODE_INTERNAL, "dead.show: %s", sqlite3_errmsg (store_db (self->store)));
    sqlite3_bind_text (stmt, 1, task_id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step (stmt) != SQLITE_ROW) {
        sqlite3_finalize (stmt);
        return s_error (body, HP_CODE_NOT_FOUND, "no dead task '%s'", task_id);
    }
    json_t *event = json_loads (s_text (stmt, 7), 0, NULL);
    json_t *task = json_pack ("{s:s, s:s, s:s, s:i, s:s, s:I, s:o, s:o}",
        "task_id", s_text (stmt, 1), "event_id", s_text (stmt, 2), "channel", s_text (stmt, 3),
        "attempts", sqlite3_column_int (stmt, 4), "last_error", s_text (stmt, 5),
        "dead_at", (json_int_t) sqlite3_column_int64 (stmt, 6),
        "event", event? event: json_null (),
        "history", s_history (self, sqlite3_column_int64 (stmt, 0)));
    sqlite3_finalize (stmt);
    return s_reply (body, json_pack ("{s:o}", "task", task));
}

/*  dead.retry: fresh attempts, same task id (the idempotency key). */

static int
s_dead_retry (broker_t *self, json_t *args, char **body)
{
    selector_t sel;
    int rc = s_selector (self, args, &sel, body);
    if (rc != 0)
        return rc;
    sqlite3 *db = store_db (self->store);
    char sql[512];
    snprintf (sql, sizeof sql,
              "SELECT t.id, t.key, t.channel, e.body FROM tasks t JOIN events e ON e.seq = t.event_seq"
              " WHERE %s ORDER BY t.id", sel.where);
    sqlite3_stmt *select = NULL, *update = NULL;
    if (sqlite3_prepare_v2 (db, sql, -1, &select, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (db, "UPDATE tasks SET state = 0, attempts = 0, not_before = 0,"
                                " updated_at = ?2 WHERE id = ?1", -1, &update, NULL) != SQLITE_OK) {
        sqlite3_finalize (select);
        return s_error (body, HP_CODE_INTERNAL, "dead.retry: %s", sqlite3_errmsg (db));
    }
    s_bind_selector (select, &sel);
    if (store_begin (self->store) != 0) {
        sqlite3_finalize (select);
        sqlite3_finalize (update);
        return s_error (body, HP_CODE_INTERNAL, "dead.retry: %s", store_errstr (self->store));
    }
    /*  Collect first, requeue after the commit: memory follows the store. */
    size_t count = 0, cap = 0;
    store_task_t *tasks = NULL;
    int64_t now = herald_clock_wall_ms ();
    bool failed = false;
    while (sqlite3_step (select) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap? cap * 2: 64;
            store_task_t *grown = realloc (tasks, cap * sizeof *tasks);
            if (!grown) {
                failed = true;
                break;
            }
            tasks = grown;
        }
        store_task_t *task = &tasks[count++];
        task->rowid = sqlite3_column_int64 (select, 0);
        task->key = strdup (s_text (select, 1));
        task->channel = strdup (s_text (select, 2));
        task->body = strdup (s_text (select, 3));
        task->body_len = strlen (task->body? task->body: "");
        task->attempts = 0;
        task->not_before = 0;
        sqlite3_bind_int64 (update, 1, task->rowid);
        sqlite3_bind_int64 (update, 2, now);
        if (sqlite3_step (update) != SQLITE_DONE || !task->key || !task->channel || !task->body)
            failed = true;
        sqlite3_reset (update);
        if (failed)
            break;
    }
    sqlite3_finalize (select);
    sqlite3_finalize (update);
    if (failed)
        store_rollback (self->store);
    else
    if (store_commit (self->store) != 0)
        failed = true;
    for (size_t i = 0; i < count; i++) {
        if (!failed) {
            int channel = herald_config_channel_index (self->config, tasks[i].channel);
            if (channel >= 0)
                broker_requeue_from_store (self, &tasks[i], channel);
        }
        free ((char *) tasks[i].key);
        free ((char *) tasks[i].channel);
        free ((char *) tasks[i].body);
    }
    free (tasks);
    if (failed)
        return s_error (body, HP_CODE_INTERNAL, "dead.retry: %s", store_errstr (self->store));
    herald_info ("dead tasks retried", "count=%zu", count);
    return s_reply (body, json_pack ("{s:I}", "retried", (json_int_t) count));
}

/*  dead.purge */

static int
s_dead_purge (broker_t *self, json_t *args, char **body)
{
    selector_t sel;
    int rc = s_selector (self, args, &sel, body);
    if (rc != 0)
        return rc;
    sqlite3 *db = store_db (self->store);
    char sql[2][400];
    snprintf (sql[0], sizeof sql[0],
              "DELETE FROM attempts WHERE task_id IN (SELECT t.id FROM tasks t WHERE %s)", sel.where);
    snprintf (sql[1], sizeof sql[1], "DELETE FROM tasks AS t WHERE %s", sel.where);
    if (store_begin (self->store) != 0)
        return s_error (body, HP_CODE_INTERNAL, "dead.purge: %s", store_errstr (self->store));
    int64_t purged = 0;
    int64_t per_channel[HERALD_MAX_CHANNELS] = { 0 };
    /*  Count per channel first, to keep the status counters right. */
    char count_sql[400];
    snprintf (count_sql, sizeof count_sql, "SELECT t.channel, count(*) FROM tasks t WHERE %s GROUP BY t.channel",
              sel.where);
    sqlite3_stmt *stmt = NULL;
    bool failed = sqlite3_prepare_v2 (db, count_sql, -1, &stmt, NULL) != SQLITE_OK;
    if (!failed) {
        s_bind_selector (stmt, &sel);
        while (sqlite3_step (stmt) == SQLITE_ROW) {
            int c = herald_config_channel_index (self->config, s_text (stmt, 0));
            if (c >= 0)
                per_channel[c] = sqlite3_column_int64 (stmt, 1);
        }
    }
    sqlite3_finalize (stmt);
    for (int i = 0; i < 2 && !failed; i++) {
        stmt = NULL;
        failed = sqlite3_prepare_v2 (db, sql[i], -1, &stmt, NULL) != SQLITE_OK;
        if (!failed) {
            s_bind_selector (stmt, &sel);
            failed = sqlite3_step (stmt) != SQLITE_DONE;
            if (i == 1)
                purged = sqlite3_changes (db);
        }
        sqlite3_finalize (stmt);
    }
    if (failed) {
        char error[300];
        snprintf (error, sizeof error, "%s", sqlite3_errmsg (db));
        store_rollback (self->store);
        return s_error (body, HP_CODE_INTERNAL, "dead.purge: %s", error);
    }
    if (store_commit (self->store) != 0)
        return s_error (body, HP_CODE_INTERNAL, "dead.purge: %s", store_errstr (self->store));
    for (int c = 0; c < self->config->channel_count; c++)
        self->stats[c].dead -= per_channel[c];
    herald_info ("dead tasks purged", "count=%lld", (long long) purged);
    return s_reply (body, json_pack ("{s:I}", "purged", (json_int_t) purged));
}

/*  track */

static const char *
s_state_name (broker_t *self, int state, int64_t rowid, int64_t not_before, int64_t now)
{
    if (state == STORE_TASK_DONE)
        return "done";
    if (state == STORE_TASK_DEAD)
        return "dead";
    if (dispatch_leased (self->dispatch, rowid))
        return "in_flight";
    return not_before > now? "retrying": "pending";
}

static int
s_track (broker_t *self, json_t *args, char **body)
{
    const char *event_id = json_string_value (json_object_get (args, "event_id"));
    if (!event_id)
        return s_error (body, HP_CODE_BAD_REQUEST, "%s", "track needs event_id");
    sqlite3 *db = store_db (self->store);
    sqlite3_stmt *events = NULL, *tasks = NULL;
    if (sqlite3_prepare_v2 (db, "SELECT seq, id, source, type, received_at, first_task, fanout"
                                " FROM events WHERE id = ?1 ORDER BY seq", -1, &events, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (db, "SELECT id, channel, key, state, attempts, last_error, updated_at,"
                                " not_before FROM tasks WHERE id >= ?1 AND id < ?1 + ?2 ORDER BY id",
                            -1, &tasks, NULL) != SQLITE_OK) {
        sqlite3_finalize (events);
        return s_error (body, HP_CODE_INTERNAL, "track: %s", sqlite3_errmsg (db));
    }
    sqlite3_bind_text (events, 1, event_id, -1, SQLITE_TRANSIENT);
    json_t *list = json_array ();
    int64_t now = herald_clock_wall_ms ();
    while (sqlite3_step (events) == SQLITE_ROW) {
        json_t *channels = json_array ();
        sqlite3_bind_int64 (tasks, 1, sqlite3_column_int64 (events, 5));
        sqlite3_bind_int (tasks, 2, sqlite3_column_int (events, 6));
        while (sqlite3_step (tasks) == SQLITE_ROW) {
            int64_t rowid = sqlite3_column_int64 (tasks, 0);
            json_array_append_new (channels, json_pack ("{s:s, s:s, s:s, s:i, s:s, s:I}",
                "channel", s_text (tasks, 1), "task_id", s_text (tasks, 2),
                "state", s_state_name (self, sqlite3_column_int (tasks, 3), rowid,
                                       sqlite3_column_int64 (tasks, 7), now),
                "attempts", sqlite3_column_int (tasks, 4), "last_error", s_text (tasks, 5),
                "updated_at", (json_int_t) sqlite3_column_int64 (tasks, 6)));
        }
        sqlite3_reset (tasks);
        json_array_append_new (list, json_pack ("{s:s, s:s, s:s, s:I, s:o}",
            "event_id", s_text (events, 1), "source", s_text (events, 2), "type", s_text (events, 3),
            "received_at", (json_int_t) sqlite3_column_int64 (events, 4), "channels", channels));
    }
    sqlite3_finalize (events);
    sqlite3_finalize (tasks);
    if (json_array_size (list) == 0) {
        json_decref (list);
        return s_error (body, HP_CODE_NOT_FOUND, "no event '%s'", event_id);
    }
    return s_reply (body, json_pack ("{s:o}", "events", list));
}

int
admin_handle (broker_t *self, hp_str_t verb, hp_str_t args_text, char **body)
{
    *body = NULL;
    json_error_t jerr;
    json_t *args = json_loadb (args_text.ptr, args_text.len, 0, &jerr);
    if (!json_is_object (args)) {
        json_decref (args);
        return s_error (body, HP_CODE_BAD_REQUEST, "arguments must be a JSON object: %s",
                        jerr.text);
    }
    int code;
    if (hp_str_eq (verb, "status"))
        code = s_status (self, body);
    else
    if (hp_str_eq (verb, "dead.list"))
        code = s_dead_list (self, args, body);
    else
    if (hp_str_eq (verb, "dead.show"))
        code = s_dead_show (self, args, body);
    else
    if (hp_str_eq (verb, "dead.retry"))
        code = s_dead_retry (self, args, body);
    else
    if (hp_str_eq (verb, "dead.purge"))
        code = s_dead_purge (self, args, body);
    else
    if (hp_str_eq (verb, "track"))
        code = s_track (self, args, body);
    else {
        char name[80];
        code = s_error (body, HP_CODE_NOT_FOUND, "unknown admin verb '%s'",
                        hp_str_copy (verb, name, sizeof name));
    }
    json_decref (args);
    return code;
}
