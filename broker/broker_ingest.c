/*  broker_ingest: the producer side of the loop — receive PUBLISH, validate,
    stage, commit the batch in one transaction (fsync), then ACK; parked
    replies (backpressure); refilling channel queues from the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "broker_internal.h"
#include "herald_clock.h"
#include "herald_log.h"
#include "herald_wire.h"

typedef struct {
    broker_t *self;
    int channel;
    int64_t now;
    int64_t wall;
    int64_t last_rowid;
} refill_t;

void
broker_make_uid (broker_t *self, char out[33])
{
    uint64_t ms = (uint64_t) herald_clock_wall_ms ();
    uint64_t r1 = broker_random (self), r2 = broker_random (self);
    snprintf (out, 33, "%012llx%04llx%016llx", (unsigned long long) (ms & 0xffffffffffffULL),
              (unsigned long long) (r1 & 0xffff), (unsigned long long) r2);
}

/*  Replies to producers: a full pipe (EAGAIN) parks the reply in the outbox
    for a later turn, so no ACK is ever silently dropped; a departed peer
    (EHOSTUNREACH) cannot be answered and will publish again. */
static void
s_reply_producer (broker_t *self, const char *identity, size_t identity_len, const hp_msg_t *msg)
{
    if (broker_send (self->producers, identity, identity_len, msg) == 0)
        return;
    if (errno != EAGAIN) {
        herald_debug ("reply not delivered", "command=%s errno=%d", hp_command_name (msg->command), errno);
        return;
    }
    reply_t *reply = calloc (1, sizeof *reply);
    if (!reply) {
        herald_error ("out of memory: reply dropped", NULL);
        return;
    }
    memcpy (reply->identity, identity, identity_len);
    reply->identity_len = identity_len;
    reply->msg = *msg;
    /*  Copy the strings the message borrows into the reply. */
    char *p = reply->text;
    hp_str_t *fields[] = { &reply->msg.corr, &reply->msg.event_id, &reply->msg.durability,
                           &reply->msg.text };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        hp_str_t *field = fields[i];
        if (!field->ptr)
            continue;
        size_t room = sizeof reply->text - (size_t) (p - reply->text);
        size_t len = field->len < room? field->len: room;
        memcpy (p, field->ptr, len);
        field->ptr = p;
        field->len = len;
        p += len;
    }
    if (self->outbox_tail)
        self->outbox_tail->next = reply;
    else
        self->outbox_head = reply;
    self->outbox_tail = reply;
    self->outbox_count++;
}

void
broker_flush_outbox (broker_t *self)
{
    /*  Each producer has its own pipe: a reply that still meets a full pipe
        stays parked, the others go. Replies carry correlation ids, so their
        order does not matter. */
    reply_t **link = &self->outbox_head;
    self->outbox_tail = NULL;
    while (*link) {
        reply_t *reply = *link;
        if (broker_send (self->producers, reply->identity, reply->identity_len, &reply->msg) != 0
        &&  errno == EAGAIN) {
            self->outbox_tail = reply;
            link = &reply->next;
            continue;
        }
        /*  Sent, or its producer is gone (it will publish again). */
        *link = reply->next;
        self->outbox_count--;
        free (reply);
    }
}

static void
s_nack (broker_t *self, const char *identity, size_t identity_len, hp_str_t corr,
        int code, const char *reason)
{
    hp_msg_t msg = { .command = HP_NACK, .corr = corr, .code = code, .text = hp_str (reason) };
    if (!corr.ptr || corr.len == 0)
        msg.corr = hp_str ("-");
    s_reply_producer (self, identity, identity_len, &msg);
}

static void
s_publish (broker_t *self, const hw_msg_t *in, const hp_msg_t *msg)
{
    pending_event_t *pending = &self->batch[self->batch_count];
    if (validate_event (self->config, msg->body.ptr, msg->body.len, &pending->check) != 0) {
        char quoted[600];
        herald_info ("event refused", "code=%d reason=%s", pending->check.code,
                     herald_log_quote (pending->check.reason, quoted, sizeof quoted));
        s_nack (self, in->identity.ptr, in->identity.len, msg->corr, pending->check.code,
                pending->check.reason);
        return;
    }
    /*  Overload: a channel whose backlog reached the cap refuses new work
        (retryable) rather than letting the store grow without bound. */
    int cap = self->config->broker.max_pending_events;
    if (cap > 0) {
        const herald_event_type_t *type = &self->config->events[pending->check.type_index];
        for (int f = 0; f < type->fanout_count; f++) {
            int c = type->fanout[f];
            if (self->stats[c].open >= cap) {
                char reason[200];
                snprintf (reason, sizeof reason, "busy: channel %s has %lld tasks waiting "
                          "(broker.max_pending_events %d); publish again later",
                          self->config->channels[c].name, (long long) self->stats[c].open, cap);
                s_nack (self, in->identity.ptr, in->identity.len, msg->corr, HP_CODE_BUSY, reason);
                return;
            }
        }
    }
    pending->event = blob_new (msg->body.ptr, msg->body.len);
    if (!pending->event) {
        s_nack (self, in->identity.ptr, in->identity.len, msg->corr, HP_CODE_BUSY,
                "broker out of memory: publish again later");
        return;
    }
    pending->event->refs = 1;       /* the batch's reference */
    memcpy (pending->identity, in->identity.ptr, in->identity.len);
    pending->identity_len = in->identity.len;
    memcpy (pending->corr, msg->corr.ptr, msg->corr.len);
    pending->corr_len = msg->corr.len;
    broker_make_uid (self, pending->uid);
    self->batch_count++;
}

static void
s_producer_message (broker_t *self, const hw_msg_t *in)
{
    hp_msg_t msg;
    hp_error_t err;
    if (in->too_many_frames) {
        s_nack (self, in->identity.ptr, in->identity.len, hp_str (NULL), HP_CODE_BAD_REQUEST,
                "malformed message: too many frames");
        return;
    }
    if (hw_decode (in, &msg, &err) != 0) {
        herald_info ("malformed publish refused", "code=%d error=\"%s\"", err.code, err.text);
        s_nack (self, in->identity.ptr, in->identity.len,
                msg.command == HP_PUBLISH? msg.corr: hp_str (NULL), err.code, err.text);
        return;
    }
    if (msg.command != HP_PUBLISH) {
        char reason[96];
        snprintf (reason, sizeof reason, "command %s is not accepted on the producer endpoint",
                  hp_command_name (msg.command));
        s_nack (self, in->identity.ptr, in->identity.len, msg.corr, HP_CODE_BAD_REQUEST, reason);
        return;
    }
    if (self->store_full && herald_clock_mono_ms () < self->store_retry_at) {
        s_nack (self, in->identity.ptr, in->identity.len, msg.corr, HP_CODE_STORAGE,
                "storage full: the broker cannot store new events now; publish again later");
        return;
    }
    s_publish (self, in, &msg);
}

void
broker_drain_producers (broker_t *self)
{
    while (self->batch_count < self->config->broker.batch_max) {
        hw_msg_t in;
        int rc = hw_recv (self->producers, true, &in, ZMQ_DONTWAIT);
        if (rc == 0 && security_admit (self->security, ENDPOINT_PRODUCERS, &in))
            s_producer_message (self, &in);
        hw_msg_close (&in);
        if (rc != 0)
            break;
    }
}

static int
s_write_batch (broker_t *self, int64_t wall)
{
    for (int i = 0; i < self->batch_count; i++) {
        pending_event_t *pending = &self->batch[i];
        const herald_event_type_t *type = &self->config->events[pending->check.type_index];
        pending->stored = (store_event_t) {
            .id = pending->check.id,
            .source = pending->check.source,
            .type = type->name,
            .dedup_key = pending->check.dedup_key,
            .body = pending->event->data,
            .body_len = pending->event->len,
            .received_at = wall,
            .fanout = type->fanout_count,
        };
        if (store_insert_event (self->store, &pending->stored) != 0)
            return -1;
        if (pending->stored.duplicate)
            continue;
        for (int f = 0; f < type->fanout_count; f++) {
            const herald_channel_t *channel = &self->config->channels[type->fanout[f]];
            char key[HP_MAX_ID + 1];
            snprintf (key, sizeof key, "%s.%s", pending->uid, channel->name);
            if (store_insert_task (self->store, pending->stored.seq, channel->name, key, wall,
                                   &pending->task_rowids[f]) != 0)
                return -1;
        }
    }
    for (size_t i = 0; i < self->outcome_count; i++) {
        outcome_t *o = &self->outcomes[i];
        int rc = 0;
        if (o->log_attempt)
            rc = store_attempt_log (self->store, o->rowid, (int) o->attempts, o->at, o->outcome,
                                    o->error);
        if (rc == 0) {
            if (o->kind == OUTCOME_DONE)
                rc = store_task_done (self->store, o->rowid, (int) o->attempts, o->at);
            else
            if (o->kind == OUTCOME_RESCHEDULE)
                rc = store_task_reschedule (self->store, o->rowid, (int) o->attempts, o->not_before,
                                            o->not_before - o->at, o->error, o->at);
            else
                rc = store_task_dead (self->store, o->rowid, (int) o->attempts, o->error, o->at);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/*  After the commit: ACK each event and queue its tasks for delivery. */
static void
s_acknowledge (broker_t *self, int64_t now)
{
    for (int i = 0; i < self->batch_count; i++) {
        pending_event_t *pending = &self->batch[i];
        const herald_event_type_t *type = &self->config->events[pending->check.type_index];
        hp_msg_t ack = {
            .command = HP_ACK,
            .corr = hp_strn (pending->corr, pending->corr_len),
            .event_id = hp_str (pending->stored.duplicate? pending->stored.existing_id
                                                          : pending->check.id),
            .duplicate = pending->stored.duplicate,
            .durability = hp_str ("fsync"),
        };
        s_reply_producer (self, pending->identity, pending->identity_len, &ack);
        if (!pending->stored.duplicate) {
            self->events_accepted++;
            for (int f = 0; f < type->fanout_count; f++) {
                int c = type->fanout[f];
                channel_stats_t *stats = &self->stats[c];
                stats->open++;
                if (stats->backlog
                ||  dispatch_held (self->dispatch, c) >= (size_t) self->config->broker.queue_window) {
                    stats->backlog = true;      /* stays in the store; refilled later */
                    continue;
                }
                char key[HP_MAX_ID + 1];
                snprintf (key, sizeof key, "%s.%s", pending->uid, self->config->channels[c].name);
                task_t *task = task_new (pending->task_rowids[f], c, key, 0, pending->event);
                if (!task) {
                    stats->backlog = true;
                    continue;
                }
                dispatch_enqueue (self->dispatch, task, 0, now, false);
                stats->loaded_upto = pending->task_rowids[f];
            }
        }
        if (--pending->event->refs <= 0)
            free (pending->event);
        pending->event = NULL;
    }
    self->batch_count = 0;
}

static void
s_refuse_batch (broker_t *self, int code, const char *reason)
{
    for (int i = 0; i < self->batch_count; i++) {
        pending_event_t *pending = &self->batch[i];
        s_nack (self, pending->identity, pending->identity_len,
                hp_strn (pending->corr, pending->corr_len), code, reason);
        if (--pending->event->refs <= 0)
            free (pending->event);
        pending->event = NULL;
    }
    self->batch_count = 0;
}

void
broker_commit (broker_t *self, int64_t now, bool force)
{
    if (self->batch_count == 0 && self->outcome_count == 0)
        return;
    if (self->batch_count == 0 && !force && self->outcome_count < OUTCOME_FLUSH_MAX
    &&  now < self->outcomes_since + OUTCOME_FLUSH_MS)
        return;     /* outcomes wait for events to ride with, a little while */
    if (self->store_full && self->batch_count == 0 && now < self->store_retry_at)
        return;
    int64_t wall = herald_clock_wall_ms ();
    int rc = store_begin (self->store);
    if (rc == 0) {
        rc = s_write_batch (self, wall);
        if (rc == 0)
            rc = store_commit (self->store);
        else
            store_rollback (self->store);
    }
    if (rc == 0) {
        if (self->store_full)
            herald_info ("store accepts writes again", NULL);
        self->store_full = false;
        self->outcome_count = 0;
        s_acknowledge (self, now);
        return;
    }
    char quoted[600];
    herald_log_quote (store_errstr (self->store), quoted, sizeof quoted);
    if (store_error (self->store) == STORE_ERR_FULL) {
        /*  Nothing of the batch is stored: refuse it, keep the outcomes for
            the next try, go on delivering what is already stored. */
        if (!self->store_full)
            herald_error ("store full: refusing new events", "error=%s", quoted);
        self->store_full = true;
        self->store_retry_at = now + STORE_RETRY_MS;
        char reason[700];
        snprintf (reason, sizeof reason, "storage full: event not stored (%s); publish again later",
                  store_errstr (self->store));
        s_refuse_batch (self, HP_CODE_STORAGE, reason);
        return;
    }
    /*  An I/O error (a failed fsync above all) leaves the page cache in an
        unknown state: no ACK for anything in this batch, and stop. */
    herald_error ("store failed: stopping without acknowledging the batch", "error=%s", quoted);
    s_refuse_batch (self, HP_CODE_STORAGE, "storage failure: the event may or may not be stored;"
                    " publish it again (it is idempotent)");
    self->fatal = BROKER_ERR_IO;
}

static int
s_refill_task (void *ctx, const store_task_t *stored)
{
    refill_t *refill = ctx;
    blob_t *blob = blob_new (stored->body, stored->body_len);
    task_t *task = blob? task_new (stored->rowid, refill->channel, stored->key,
                                   (uint32_t) stored->attempts, blob): NULL;
    if (!task) {
        free (blob);
        return -1;
    }
    /*  not_before is wall-clock time (it must survive restarts); a clock
        stepped back while the broker was down must not stretch the wait,
        so it never exceeds the delay that was asked for. */
    int64_t delay = stored->not_before > refill->wall? stored->not_before - refill->wall: 0;
    if (stored->delay > 0 && delay > stored->delay)
        delay = stored->delay;
    dispatch_enqueue (refill->self->dispatch, task, refill->now + delay, refill->now, false);
    refill->last_rowid = stored->rowid;
    return 0;
}

void
broker_refill (broker_t *self, int64_t now)
{
    int window = self->config->broker.queue_window;
    for (int c = 0; c < self->config->channel_count; c++) {
        channel_stats_t *stats = &self->stats[c];
        size_t held = dispatch_held (self->dispatch, c);
        if (!stats->backlog || held > (size_t) window / 2)
            continue;
        int want = window - (int) held;
        refill_t refill = { self, c, now, herald_clock_wall_ms (), stats->loaded_upto };
        int loaded = store_load_pending (self->store, self->config->channels[c].name,
                                         stats->loaded_upto, want, s_refill_task, &refill);
        if (loaded < 0) {
            herald_error ("cannot load pending tasks", "channel=%s error=\"%s\"",
                          self->config->channels[c].name, store_errstr (self->store));
            continue;
        }
        stats->loaded_upto = refill.last_rowid;
        if (loaded < want)
            stats->backlog = false;
        if (loaded > 0)
            herald_debug ("tasks loaded from store", "channel=%s count=%d", self->config->channels[c].name,
                          loaded);
    }
}

void
broker_requeue_from_store (broker_t *self, const store_task_t *stored, int channel)
{
    channel_stats_t *stats = &self->stats[channel];
    stats->open++;
    stats->dead--;
    if (stats->backlog && stored->rowid > stats->loaded_upto)
        return;     /* the refill will find it */
    refill_t refill = { self, channel, herald_clock_mono_ms (), herald_clock_wall_ms (), 0 };
    s_refill_task (&refill, stored);
}