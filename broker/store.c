/*  store: the journal and the index, opened and recovered together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald_log.h"
#include "store.h"
#include "store_pg.h"

struct store {
    const store_ops_t *ops;         /* another store (a URL), or NULL: the journal and index below */
    void *impl;
    journal_t *journal;
    index_t *index;
    int64_t retention_ms;
};

store_t *
store_open (const store_options_t *options, index_info_t *info, bool *corrupt, char *err, size_t errlen)
{
    *corrupt = false;
    store_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "store %s: out of memory", options->path);
        return NULL;
    }
    self->retention_ms = options->retention_ms;
    if (store_pg_is_url (options->path)) {
        self->ops = &store_pg_ops;
        self->impl = store_pg_open (options, info, corrupt, err, errlen);
        if (!self->impl) {
            free (self);
            return NULL;
        }
        return self;
    }
    self->index = index_open_file (options->path, info, err, errlen);
    if (!self->index) {
        *corrupt = strstr (err, "corrupt") || strstr (err, "not a Herald store") || strstr (err, "schema");
        store_destroy (&self);
        return NULL;
    }
    char dir[1100];
    snprintf (dir, sizeof dir, "%s.journal", options->path);
    journal_options_t journal_options = { .segment_size = options->segment_size,
                                          .max_bytes = options->journal_max, .metrics = options->metrics };
    journal_status_t status;
    self->journal = journal_open (dir, &journal_options, info->applied_lsn, &status, err, errlen);
    if (!self->journal) {
        *corrupt = status == JOURNAL_CORRUPT;
        store_destroy (&self);
        return NULL;
    }
    return self;
}

int
store_recover (store_t *self, index_count_fn *counts, index_key_fn *keys, void *ctx, char *err, size_t errlen)
{
    if (self->ops)
        return self->ops->recover (self->impl, counts, keys, ctx, err, errlen);
    return index_catch_up (self->index, self->journal, counts, keys, ctx, err, errlen);
}

int
store_start (store_t *self, char *err, size_t errlen)
{
    if (self->ops)
        return self->ops->start (self->impl, err, errlen);
    if (journal_start (self->journal, err, errlen) != 0)
        return -1;
    return index_start (self->index, self->retention_ms, err, errlen);
}

void
store_destroy (store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    if (self->ops) {
        self->ops->destroy (&self->impl);
        free (self);
        *self_p = NULL;
        return;
    }
    /*  The journal first: what is staged gets written and synced, then the
        index applies it and commits as it stops. */
    if (self->journal && self->index)
        journal_flush (self->journal);
    journal_t *journal = self->journal;
    if (journal) {
        /*  Wait for the writer to make the staged records durable. */
        for (int i = 0; i < 10000 && journal_pending (journal) && journal_status (journal) != JOURNAL_IO; i++) {
            journal_flush (journal);
            struct timespec step = { 0, 1000000 };
            nanosleep (&step, NULL);
        }
    }
    index_destroy (&self->index);
    journal_destroy (&self->journal);
    free (self);
    *self_p = NULL;
}

uint64_t
store_append (store_t *self, const void *payload, uint32_t len)
{
    if (self->ops)
        return self->ops->append (self->impl, payload, len);
    return journal_append (self->journal, payload, len);
}

journal_status_t
store_append_status (store_t *self)
{
    if (self->ops)
        return self->ops->append_status (self->impl);
    return journal_status (self->journal);
}

const char *
store_errstr (store_t *self)
{
    if (self->ops)
        return self->ops->errstr (self->impl);
    return journal_errstr (self->journal);
}

void
store_flush (store_t *self)
{
    if (self->ops) {
        self->ops->flush (self->impl);
        return;
    }
    journal_flush (self->journal);
}

bool
store_commit_here (store_t *self, journal_durable_fn *durable, void *arg)
{
    if (self->ops)
        return false;
    return journal_commit_here (self->journal, durable, arg);
}

uint64_t
store_durable (store_t *self)
{
    if (self->ops)
        return self->ops->durable (self->impl);
    return journal_durable (self->journal);
}

uint64_t
store_end (store_t *self)
{
    if (self->ops)
        return self->ops->end (self->impl);
    return journal_end (self->journal);
}

int
store_journal_fd (store_t *self)
{
    if (self->ops)
        return self->ops->journal_fd (self->impl);
    return journal_fd (self->journal);
}

void
store_journal_clear (store_t *self)
{
    if (self->ops) {
        self->ops->journal_clear (self->impl);
        return;
    }
    journal_clear_fd (self->journal);
}

void
store_post (store_t *self, index_msg_t *msg)
{
    if (self->ops) {
        self->ops->post (self->impl, msg);
        return;
    }
    if (msg->min_lsn == UINT64_MAX)
        msg->min_lsn = journal_end (self->journal);
    index_post (self->index, msg);
}

index_msg_t *
store_take (store_t *self)
{
    if (self->ops)
        return self->ops->take (self->impl);
    return index_take (self->index);
}

int
store_index_fd (store_t *self)
{
    if (self->ops)
        return self->ops->index_fd (self->impl);
    return index_fd (self->index);
}

uint64_t
store_journal_bytes (store_t *self)
{
    if (self->ops)
        return 0;
    return journal_disk_bytes (self->journal);
}

int64_t
store_index_bytes (store_t *self)
{
    if (self->ops)
        return 0;
    return index_file_bytes (self->index);
}

uint64_t
store_index_lag (store_t *self)
{
    if (self->ops)
        return 0;
    uint64_t durable = journal_durable (self->journal);
    uint64_t applied = index_applied (self->index);
    return durable > applied? durable - applied: 0;
}

void
store_set_retention (store_t *self, int64_t retention_ms)
{
    self->retention_ms = retention_ms;
    if (self->ops)
        self->ops->set_retention (self->impl, retention_ms);
    else
        index_set_retention (self->index, retention_ms);
}

void
store_status (store_t *self, json_t *reply)
{
    if (self->ops) {
        self->ops->status (self->impl, reply);
        return;
    }
    json_t *broker = json_object_get (reply, "broker");
    json_object_set_new (broker, "journal_bytes", json_integer ((json_int_t) store_journal_bytes (self)));
    json_object_set_new (broker, "index_bytes", json_integer ((json_int_t) store_index_bytes (self)));
    json_object_set_new (broker, "index_lag_bytes", json_integer ((json_int_t) store_index_lag (self)));
}

bool
store_shared (store_t *self)
{
    return self->ops && self->ops->shared;
}

uint64_t
store_next_seq (store_t *self)
{
    return store_shared (self)? self->ops->next_seq (self->impl): 0;
}

uint64_t
store_append_event (store_t *self, const void *payload, uint32_t len, uint32_t held)
{
    if (store_shared (self))
        return self->ops->append_event (self->impl, payload, len, held);
    return store_append (self, payload, len);
}

int
store_commit_result (store_t *self, uint64_t lsn, store_commit_t *out)
{
    if (store_shared (self))
        return self->ops->commit_result (self->impl, lsn, out);
    out->kind = STORE_COMMIT_NEW;
    return 0;
}

const char *
store_durability (store_t *self)
{
    return self->ops? self->ops->durability (self->impl): "fsync";
}
