/*  core: the broker's rules (see core.h). Named actions, no I/O. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core.h"
#include "dedup.h"
#include "dispatch.h"
#include "herald_clock.h"
#include "herald_log.h"
#include "herald_ratelimit.h"
#include "herald_redact.h"
#include "record.h"
#include "validate.h"

#define S_OUTCOME_FLUSH_MS  20          /* outcomes alone wait this long for company on disk */
#define S_LOAD_CHUNK        2000        /* tasks per load from the index */
#define S_RECORD_MAX        (64u << 20)
/*  A task's id for a log line (a buffer that lives to the end of the
    enclosing full expression). */
#define S_TASK_ID(self, task) (task_id ((task), (self)->config, (char [TASK_ID_MAX]) { 0 }).ptr)
#define S_BATCHES_MAX       16          /* workers given tasks at once in a tick */

/*  A publish waiting for its journal record (or its duplicate's) to be durable. */
typedef struct {
    uint64_t lsn;                       /* ACK once durable up to here */
    bool duplicate;
    size_t identity_len;
    unsigned char identity[256];
    size_t corr_len;
    char corr[HP_MAX_CORR];
    uint8_t version;                    /* the request's protocol version, for its reply */
    core_origin_t origin;               /* the socket the request came in on, for its reply */
    int64_t received_us;                /* monotonic us it arrived (ACK latency) */
    char event_id[129];
    blob_t *blob;                       /* a new event: its tasks are made at durability */
    int type_index;
    uint8_t fanout[HERALD_MAX_CHANNELS];/* its channels as its record lists them (a reload may change the type's) */
    uint8_t fanout_count;
    uint32_t held;                      /* shared store: fan-out places kept in memory (bit f) */
} s_ack_t;

/*  A duplicate waiting for the index to name the stored event. */
typedef struct s_lookup {
    struct s_lookup *next;
    uint64_t tag;
    size_t identity_len;
    unsigned char identity[256];
    size_t corr_len;
    char corr[HP_MAX_CORR];
    uint8_t version;
    core_origin_t origin;
    int64_t received_us;
    validate_result_t check;            /* to publish it as new after all (pruned meanwhile) */
    char *body;
    size_t body_len;
} s_lookup_t;

typedef enum {
    S_ADMIN_TRACK, S_ADMIN_PASS, S_ADMIN_RETRY, S_ADMIN_PURGE
} s_admin_kind_t;

/*  A TASKS message being built for one worker. */
typedef struct {
    worker_t *worker;
    task_t *tasks[HP_MAX_BATCH];
    uint32_t count;
    size_t bytes;
} s_batch_t;

/*  An outcome record waiting for room in the journal. */
typedef struct s_held {
    struct s_held *next;
    uint32_t len;
    unsigned char data[];
} s_held_t;

/*  An admin request waiting for the index. */
typedef struct s_admin {
    struct s_admin *next;
    uint64_t tag;
    s_admin_kind_t kind;
    size_t identity_len;
    unsigned char identity[256];
    size_t corr_len;
    char corr[HP_MAX_CORR];
    uint8_t version;
    core_origin_t origin;
} s_admin_t;

typedef struct {
    int64_t open, done, dead;           /* tasks: pending (memory or store), done, dead */
    uint64_t loaded_upto;               /* pending tasks with seq <= this are in memory (or finished) */
    bool backlog;                       /* pending tasks beyond loaded_upto wait in the store */
    uint64_t backlog_lsn;               /* journal position of the last task sent there */
    uint64_t requeue_cursor;            /* dead-retry serials loaded so far */
    bool requeued;                      /* dead-retried tasks wait in the store */
    bool loading;                       /* a load is out */
} s_chan_t;

struct core {
    const herald_config_t *config;
    core_io_t io;
    dispatch_t *dispatch;
    dedup_t *dedup;
    s_chan_t chans[HERALD_MAX_CHANNELS];
    uint64_t next_seq;
    uint64_t boots;
    uint64_t next_tag;
    uint64_t rng[2];
    uint8_t version;                    /* protocol version of the request being answered */
    core_origin_t origin;               /* the socket of the request being answered */
    int64_t received_us;                /* monotonic us the publish being handled arrived */
    /*  ACKs in journal order. */
    s_ack_t *acks;
    size_t ack_head, ack_count, ack_cap;
    s_lookup_t *lookups;
    size_t lookup_count;
    s_admin_t *admins;
    s_batch_t *batches;                 /* S_BATCHES_MAX: TASKS being built */
    char *frame;                        /* a TASKS message's entries */
    size_t frame_cap;
    s_held_t *held_outcomes, *held_tail;
    size_t held_count;
    bool full_logged;                   /* "store full" said for this episode */
    /*  What the next flush carries. */
    bool events_staged;
    int64_t outcomes_since;             /* 0: no outcome waiting */
    unsigned char *record;              /* encoding buffer */
    size_t record_cap;
    uint64_t durable;
    int64_t next_heartbeat;
    bool stopping;
    int64_t stop_deadline;
    bool failed;
    bool journal_failed;
    char abandoned[HERALD_MAX_CHANNELS][64];
    int abandoned_count;
    int64_t events_accepted;
    herald_ratelimit_t refusals, worker_refusals;
    int64_t started;
    bool shared;                        /* the store is shared with other brokers (core_start_t) */
    uint32_t serving;                   /* shared: channels with a worker here, as last told to the store */
    bool serving_told;
};

//  --------------------------------------------------------------------------
//  Small things

static uint64_t
s_random (core_t *self)
{
    uint64_t s1 = self->rng[0];
    const uint64_t s0 = self->rng[1];
    self->rng[0] = s0;
    s1 ^= s1 << 23;
    self->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return self->rng[1] + s0;
}

static double
s_random01 (core_t *self)
{
    return (double) (s_random (self) >> 11) / 9007199254740992.0;
}

static bool
s_log_refusal (core_t *self, int64_t now)
{
    bool allow = herald_ratelimit_allow (&self->refusals, now);
    if (allow && self->refusals.suppressed > 0)
        herald_info ("refused publishes not logged", "count=%llu",
                     (unsigned long long) self->refusals.suppressed);
    return allow;
}

/*  A reply goes back on the socket its request came in on, never chosen by
    the routing id (a producer picks its own). */
static void
s_send_reply (core_t *self, core_origin_t origin, bool admin, const void *identity, size_t identity_len,
              const hp_msg_t *msg)
{
    if (origin == CORE_ORIGIN_INTERNAL && self->io.internal_reply)
        self->io.internal_reply (self->io.ctx, identity, identity_len, msg);
    else
    if (admin)
        self->io.admin_reply (self->io.ctx, identity, identity_len, msg);
    else
        self->io.reply (self->io.ctx, identity, identity_len, msg);
}

static void
s_nack (core_t *self, const void *identity, size_t identity_len, hp_str_t corr, int code,
        const char *reason)
{
    hp_msg_t msg = { .command = HP_NACK, .version = self->version, .corr = corr, .code = code,
                     .text = hp_str (reason) };
    if (!corr.ptr || corr.len == 0)
        msg.corr = hp_str ("-");
    herald_metrics_refused (self->io.metrics, code);
    s_send_reply (self, self->origin, false, identity, identity_len, &msg);
}

/*  Encodes a record into self->record. Its length, or 0. */
static size_t
s_encode (core_t *self, const record_t *rec)
{
    /*  Straight into the buffer when it is big enough (nearly always):
        measuring first wrote every record twice. */
    size_t len = self->record? record_encode (rec, self->record, self->record_cap): 0;
    if (len > 0 && len <= S_RECORD_MAX)
        return len;
    size_t size = record_size (rec);
    if (size == 0 || size > S_RECORD_MAX)
        return 0;
    if (size > self->record_cap) {
        size_t cap = self->record_cap? self->record_cap: 4096;
        while (cap < size)
            cap *= 2;
        unsigned char *grown = realloc (self->record, cap);
        if (!grown)
            return 0;
        self->record = grown;
        self->record_cap = cap;
    }
    return record_encode (rec, self->record, self->record_cap);
}

/*  Encodes and appends a record. The LSN past it, or 0. */
static uint64_t
s_append (core_t *self, const record_t *rec)
{
    size_t len = s_encode (self, rec);
    return len? self->io.append (self->io.ctx, self->record, (uint32_t) len): 0;
}

/*  The ACK's durability word: what the store reached. */
static const char *
s_durability (core_t *self)
{
    return self->io.durability? self->io.durability (self->io.ctx): "fsync";
}

static const char *
s_append_refusal (core_t *self, int *code)
{
    journal_status_t status = self->io.append_status (self->io.ctx);
    if (status == JOURNAL_UNAVAILABLE) {
        *code = HP_CODE_BUSY;
        return "store unavailable: the broker cannot reach its database; the event is not stored; publish it"
               " again later";
    }
    if (status == JOURNAL_FULL) {
        *code = HP_CODE_STORAGE;
        return "storage full: the broker cannot store new events now; publish again later";
    }
    if (status == JOURNAL_IO) {
        *code = HP_CODE_STORAGE;
        return "storage failure: the event is not stored; publish it again (it is idempotent)";
    }
    *code = HP_CODE_BUSY;
    return "busy: the broker's journal is at its limit (its index is behind); publish again later";
}

/*  An event's record; a shared store also learns which places this broker
    keeps (io.append_event). */
static uint64_t
s_append_event (core_t *self, const record_t *rec, uint32_t keep)
{
    if (!self->io.append_event)
        return s_append (self, rec);
    size_t len = s_encode (self, rec);
    return len? self->io.append_event (self->io.ctx, self->record, (uint32_t) len, keep): 0;
}

//  --------------------------------------------------------------------------
//  Construction

core_t *
core_new (const herald_config_t *config, const core_io_t *io, const core_start_t *start)
{
    core_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->config = config;
    self->io = *io;
    /*  Lease ids above any an earlier run gave: boots count starts. */
    self->dispatch = dispatch_new (config, start->boots << 32);
    self->dedup = dedup_new (1 << 16);
    self->batches = calloc (S_BATCHES_MAX, sizeof *self->batches);
    self->next_seq = start->next_seq? start->next_seq: 1;
    self->boots = start->boots;
    self->shared = start->shared;
    if (!self->dispatch || !self->dedup || !self->batches) {
        core_destroy (&self);
        return NULL;
    }
    if (getrandom (self->rng, sizeof self->rng, 0) != (ssize_t) sizeof self->rng)
        self->rng[0] = (uint64_t) herald_clock_wall_ms (), self->rng[1] = 0x9e3779b97f4a7c15ULL;
    self->refusals = herald_ratelimit (20, 1000);
    self->worker_refusals = herald_ratelimit (5, 10000);
    self->next_heartbeat = herald_clock_mono_ms () + config->broker.heartbeat_ms;
    self->started = herald_clock_mono_ms ();
    return self;
}

void
core_destroy (core_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    core_t *self = *self_p;
    for (size_t i = 0; i < self->ack_count; i++) {
        s_ack_t *ack = &self->acks[(self->ack_head + i) % self->ack_cap];
        if (ack->blob && --ack->blob->refs <= 0)
            free (ack->blob);
    }
    free (self->acks);
    while (self->lookups) {
        s_lookup_t *next = self->lookups->next;
        free (self->lookups->body);
        free (self->lookups);
        self->lookups = next;
    }
    while (self->admins) {
        s_admin_t *next = self->admins->next;
        free (self->admins);
        self->admins = next;
    }
    while (self->held_outcomes) {
        s_held_t *next = self->held_outcomes->next;
        free (self->held_outcomes);
        self->held_outcomes = next;
    }
    dispatch_destroy (&self->dispatch);
    dedup_destroy (&self->dedup);
    free (self->batches);
    free (self->frame);
    free (self->record);
    free (self);
    *self_p = NULL;
}

void
core_recover_counts (core_t *self, const char *channel, int64_t pending, int64_t done, int64_t dead)
{
    int c = herald_config_channel_index (self->config, channel);
    if (c < 0) {
        /*  A shared store's other brokers may serve channels this one does
            not have: they are theirs, not abandoned. */
        if (pending > 0 && !self->shared && self->abandoned_count < HERALD_MAX_CHANNELS)
            snprintf (self->abandoned[self->abandoned_count++], sizeof self->abandoned[0], "%s", channel);
        return;
    }
    s_chan_t *ch = &self->chans[c];
    ch->open = pending;
    ch->done = done;
    ch->dead = dead;
    ch->backlog = pending > 0;
    ch->requeued = pending > 0;
    if (pending > 0)
        herald_info ("recovering unfinished tasks", "channel=%s pending=%lld", channel, (long long) pending);
}

void
core_recover_key (core_t *self, uint64_t seq, const char *key, size_t len)
{
    if (dedup_add (self->dedup, key, len, seq) == UINT64_MAX)
        herald_error ("out of memory rebuilding the idempotency keys", NULL);
    if (seq >= self->next_seq)
        self->next_seq = seq + 1;
}

void
core_started (core_t *self, int64_t now)
{
    /*  A channel gone from the configuration keeps its pending tasks in
        the store: they become dead, visible to `herald dead list`. */
    for (int i = 0; i < self->abandoned_count; i++) {
        herald_warn ("channel no longer configured: its pending tasks become dead",
                     "channel=%s", self->abandoned[i]);
        record_t rec = { .type = RECORD_ABANDON };
        rec.u.admin = (record_admin_t) { .channel = record_str (self->abandoned[i]),
                                         .at = herald_clock_wall_ms () };
        if (s_append (self, &rec))
            self->events_staged = true;
    }
    self->abandoned_count = 0;
    (void) now;
}

//  --------------------------------------------------------------------------
//  ACKs in journal order

static s_ack_t *
s_ack_push (core_t *self)
{
    if (self->ack_count == self->ack_cap) {
        size_t cap = self->ack_cap? self->ack_cap * 2: 256;
        s_ack_t *grown = malloc (cap * sizeof *grown);
        if (!grown)
            return NULL;
        for (size_t i = 0; i < self->ack_count; i++)
            grown[i] = self->acks[(self->ack_head + i) % self->ack_cap];
        free (self->acks);
        self->acks = grown;
        self->ack_cap = cap;
        self->ack_head = 0;
    }
    s_ack_t *ack = &self->acks[(self->ack_head + self->ack_count) % self->ack_cap];
    self->ack_count++;
    memset (ack, 0, offsetof (s_ack_t, identity));
    return ack;
}

static void
s_fill_peer (unsigned char *identity, size_t *identity_len, char *corr, size_t *corr_len,
             uint8_t *version, uint8_t from_version, const void *from, size_t from_len, hp_str_t from_corr)
{
    *version = from_version;
    /*  The socket to answer on travels with the version (see the callers:
        origin, and received_us for publishes, are copied beside it). */
    *identity_len = from_len < 256? from_len: 256;
    memcpy (identity, from, *identity_len);
    *corr_len = from_corr.len < HP_MAX_CORR? from_corr.len: HP_MAX_CORR;
    if (*corr_len)
        memcpy (corr, from_corr.ptr, *corr_len);
}

/*  A shared store: the fan-out places of a new event this broker keeps in
    memory: channels with a worker here, room in the window, and no free
    task waiting in the store (those go first). The others stay free in
    the store for any broker with workers to claim. */
static uint32_t
s_places_kept (core_t *self, const herald_event_type_t *type)
{
    uint32_t keep = 0;
    for (int f = 0; f < type->fanout_count; f++) {
        int c = type->fanout[f];
        dispatch_counts_t counts;
        dispatch_counts (self->dispatch, c, &counts);
        if (counts.workers > 0 && !self->chans[c].backlog
        &&  dispatch_held (self->dispatch, c) < (size_t) self->config->broker.queue_window)
            keep |= 1u << f;
    }
    return keep;
}

/*  A shared store: the last worker of channel c left this broker, which
    keeps none of its tasks then: they go back to the store (free), for a
    broker with workers to claim, once what was appended before is
    committed (their outcomes first). */
static void
s_give_back (core_t *self, int c)
{
    size_t count = dispatch_held (self->dispatch, c);
    index_msg_t *msg = count? index_msg_new (INDEX_RELEASE): NULL;
    if (msg)
        msg->tasks = calloc (count, sizeof *msg->tasks);
    if (!msg || !msg->tasks) {
        index_msg_destroy (&msg);
        return;
    }
    task_t *task;
    while (msg->task_count < count && (task = dispatch_take_back (self->dispatch, c))) {
        msg->tasks[msg->task_count++] = (index_task_t) { .seq = task->seq, .ch = task->ch };
        task_destroy (&task);
    }
    if (msg->task_count == 0) {
        index_msg_destroy (&msg);
        return;
    }
    herald_info ("no worker left for a channel: its tasks go back to the store for the other brokers",
                 "channel=%s tasks=%zu", self->config->channels[c].name, msg->task_count);
    snprintf (msg->text, sizeof msg->text, "%s", self->config->channels[c].name);
    msg->min_lsn = UINT64_MAX;          /* after what was appended so far */
    self->chans[c].backlog = true;
    self->io.query (self->io.ctx, msg);
}

/*  A shared store: tells it which channels have a worker here (for its
    liveness row: the other brokers' share of each channel's rate). */
static void
s_tell_serving (core_t *self)
{
    uint32_t serving = 0;
    for (int c = 0; c < self->config->channel_count; c++) {
        dispatch_counts_t counts;
        dispatch_counts (self->dispatch, c, &counts);
        if (counts.workers > 0)
            serving |= 1u << c;
    }
    if (self->serving_told && serving == self->serving)
        return;
    for (int c = 0; c < self->config->channel_count && self->serving_told; c++)
        if ((self->serving & (1u << c)) && !(serving & (1u << c)))
            s_give_back (self, c);
    index_msg_t *msg = index_msg_new (INDEX_SERVING);
    if (!msg)
        return;
    size_t n = 0;
    for (int c = 0; c < self->config->channel_count; c++)
        if (serving & (1u << c))
            n += (size_t) snprintf (msg->text + n, sizeof msg->text - n, "%s%s", n? " ": "",
                                    self->config->channels[c].name);
    self->serving = serving;
    self->serving_told = true;
    self->io.query (self->io.ctx, msg);
}

//  --------------------------------------------------------------------------
//  Publishing

/*  Stages a new event: its record, and its ACK for once it is durable. */
static void
s_stage_event (core_t *self, const void *identity, size_t identity_len, hp_str_t corr,
               const validate_result_t *check, const char *body, size_t body_len, int64_t now)
{
    if (check->type_index < 0) {
        /*  A duplicate's type removed by a reload while it waited. */
        s_nack (self, identity, identity_len, corr, HP_CODE_UNKNOWN_TYPE,
                "type: the event type was removed from the configuration");
        return;
    }
    const herald_event_type_t *type = &self->config->events[check->type_index];
    int cap = self->config->broker.max_pending_events;
    if (cap > 0)
        for (int f = 0; f < type->fanout_count; f++) {
            int c = type->fanout[f];
            if (self->chans[c].open >= cap) {
                char reason[200];
                snprintf (reason, sizeof reason, "busy: channel %s has %lld tasks waiting "
                          "(broker.max_pending_events %d); publish again later",
                          self->config->channels[c].name, (long long) self->chans[c].open, cap);
                s_nack (self, identity, identity_len, corr, HP_CODE_BUSY, reason);
                return;
            }
        }
    uint64_t seq = self->io.next_seq? self->io.next_seq (self->io.ctx): self->next_seq;
    if (seq == 0) {
        s_nack (self, identity, identity_len, corr, HP_CODE_BUSY, "busy: the broker has no event number at hand"
                " (its store is slow to give one); publish again later");
        return;
    }
    uint64_t held = dedup_add (self->dedup, check->dedup_key, strlen (check->dedup_key), seq);
    if (held == UINT64_MAX) {
        s_nack (self, identity, identity_len, corr, HP_CODE_BUSY, "broker out of memory: publish again later");
        return;
    }
    char uid[33];
    record_uid (uid, seq, s_random (self));
    blob_t *blob = blob_new (seq, uid, body, body_len);
    s_ack_t *ack = blob? s_ack_push (self): NULL;
    if (!ack) {
        free (blob);
        dedup_remove (self->dedup, check->dedup_key, strlen (check->dedup_key), seq);
        s_nack (self, identity, identity_len, corr, HP_CODE_BUSY, "broker out of memory: publish again later");
        return;
    }
    record_t rec = { .type = RECORD_EVENT };
    record_event_t *e = &rec.u.event;
    e->seq = seq;
    e->received_at = herald_clock_wall_ms ();
    memcpy (e->uid, uid, sizeof e->uid);
    e->fanout = type->fanout_count;
    for (int f = 0; f < type->fanout_count; f++)
        e->channels[f] = record_str (self->config->channels[type->fanout[f]].name);
    e->type = record_str (type->name);
    e->id = record_str (check->id);
    e->source = record_str (check->source);
    e->dedup_key = record_str (check->dedup_key);
    e->body = (record_str_t) { body, body_len };
    uint32_t keep = self->shared? s_places_kept (self, type): 0;
    uint64_t lsn = s_append_event (self, &rec, keep);
    if (lsn == 0) {
        self->ack_count--;
        free (blob);
        dedup_remove (self->dedup, check->dedup_key, strlen (check->dedup_key), seq);
        int code;
        const char *reason = s_append_refusal (self, &code);
        if (self->io.append_status (self->io.ctx) == JOURNAL_FULL && !self->full_logged) {
            herald_error ("store full: refusing new events", NULL);
            self->full_logged = true;
        }
        if (s_log_refusal (self, now))
            herald_warn ("event refused: not stored", "code=%d reason=\"%s\"", code, reason);
        s_nack (self, identity, identity_len, corr, code, reason);
        return;
    }
    if (self->full_logged) {
        herald_info ("store accepts writes again", NULL);
        self->full_logged = false;
    }
    self->next_seq++;
    blob->refs = 1;                     /* the ACK's reference */
    ack->lsn = lsn;
    ack->duplicate = false;
    ack->blob = blob;
    ack->type_index = check->type_index;
    ack->fanout_count = (uint8_t) type->fanout_count;
    for (int f = 0; f < type->fanout_count; f++)
        ack->fanout[f] = (uint8_t) type->fanout[f];
    ack->held = keep;
    _Static_assert (sizeof ack->event_id == sizeof check->id, "an ACK's event id holds a validated id");
    memcpy (ack->event_id, check->id, sizeof ack->event_id);
    s_fill_peer (ack->identity, &ack->identity_len, ack->corr, &ack->corr_len, &ack->version,
                 self->version, identity, identity_len, corr);
    ack->origin = self->origin;
    ack->received_us = self->received_us;
    blob->received_at = e->received_at;
    self->events_staged = true;
}

static void
s_lookup_duplicate (core_t *self, const void *identity, size_t identity_len, hp_str_t corr,
                    const validate_result_t *check, uint64_t seq, const char *body, size_t body_len,
                    int64_t now)
{
    s_lookup_t *lookup = calloc (1, sizeof *lookup);
    index_msg_t *msg = lookup? index_msg_new (INDEX_EVENT_ID): NULL;
    char *copy = msg? malloc (body_len + 1): NULL;
    if (!copy) {
        free (lookup);
        index_msg_destroy (&msg);
        s_nack (self, identity, identity_len, corr, HP_CODE_BUSY, "broker out of memory: publish again later");
        return;
    }
    memcpy (copy, body, body_len);
    copy[body_len] = '\0';
    lookup->tag = ++self->next_tag;
    lookup->check = *check;
    lookup->body = copy;
    lookup->body_len = body_len;
    s_fill_peer (lookup->identity, &lookup->identity_len, lookup->corr, &lookup->corr_len,
                 &lookup->version, self->version, identity,
                 identity_len, corr);
    lookup->origin = self->origin;
    lookup->received_us = self->received_us;
    lookup->next = self->lookups;
    self->lookups = lookup;
    self->lookup_count++;
    msg->tag = lookup->tag;
    msg->number = seq;
    /*  The stored event may not be durable yet: the index answers once
        it has applied everything appended so far. */
    msg->min_lsn = self->io.append? 0: 0;
    msg->min_lsn = UINT64_MAX;          /* set by the loop: the journal's end */
    self->io.query (self->io.ctx, msg);
    (void) now;
}

void
core_publish (core_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg, int64_t now)
{
    core_publish_from (self, CORE_ORIGIN_PEER, identity, identity_len, msg, now);
}

void
core_publish_from (core_t *self, core_origin_t origin, const void *identity, size_t identity_len,
                   const hp_msg_t *msg, int64_t now)
{
    self->version = msg->version;
    self->origin = origin;
    self->received_us = self->io.metrics? herald_clock_mono_us (): 0;
    herald_metrics_received (self->io.metrics);
    if (self->stopping) {
        s_nack (self, identity, identity_len, msg->corr, HP_CODE_BUSY, "busy: the broker is stopping;"
                " publish again later");
        return;
    }
    validate_result_t check;
    if (validate_event (self->config, msg->body.ptr, msg->body.len, &check) != 0) {
        char quoted[600];
        if (s_log_refusal (self, now))
            herald_info ("event refused", "code=%d reason=%s", check.code,
                         herald_log_quote (check.reason, quoted, sizeof quoted));
        s_nack (self, identity, identity_len, msg->corr, check.code, check.reason);
        return;
    }
    uint64_t held = dedup_find (self->dedup, check.dedup_key, strlen (check.dedup_key));
    if (held)
        s_lookup_duplicate (self, identity, identity_len, msg->corr, &check, held, msg->body.ptr,
                            msg->body.len, now);
    else
        s_stage_event (self, identity, identity_len, msg->corr, &check, msg->body.ptr, msg->body.len, now);
}

static void
s_duplicate_answered (core_t *self, index_msg_t *msg, int64_t now)
{
    s_lookup_t **link = &self->lookups;
    while (*link && (*link)->tag != msg->tag)
        link = &(*link)->next;
    s_lookup_t *lookup = *link;
    if (!lookup)
        return;
    *link = lookup->next;
    self->lookup_count--;
    hp_str_t corr = hp_strn (lookup->corr, lookup->corr_len);
    self->version = lookup->version;
    self->origin = lookup->origin;
    self->received_us = lookup->received_us;
    if (msg->code == HP_CODE_OK && msg->dedup_key && strcmp (msg->dedup_key, lookup->check.dedup_key) == 0) {
        hp_msg_t ack = { .command = HP_ACK, .version = lookup->version, .corr = corr,
                         .event_id = hp_str (msg->event_id),
                         .duplicate = true, .durability = hp_str (s_durability (self)) };
        if (!corr.ptr || corr.len == 0)
            ack.corr = hp_str ("-");
        herald_metrics_acked (self->io.metrics, true, lookup->received_us);
        s_send_reply (self, lookup->origin, false, lookup->identity, lookup->identity_len, &ack);
    }
    else
    if (msg->code == HP_CODE_OK || msg->code == HP_CODE_NOT_FOUND) {
        /*  The stored event is gone (pruned meanwhile) or was another key
            with the same fingerprint: this one is new after all. */
        dedup_remove (self->dedup, lookup->check.dedup_key, strlen (lookup->check.dedup_key), msg->number);
        if (!self->stopping)
            s_stage_event (self, lookup->identity, lookup->identity_len, corr, &lookup->check, lookup->body,
                           lookup->body_len, now);
        else
            s_nack (self, lookup->identity, lookup->identity_len, corr, HP_CODE_BUSY,
                    "busy: the broker is stopping; publish again later");
    }
    else
        s_nack (self, lookup->identity, lookup->identity_len, corr, HP_CODE_STORAGE,
                "storage failure: the broker cannot read its store; publish again later");
    free (lookup->body);
    free (lookup);
}

//  --------------------------------------------------------------------------
//  Tasks

/*  A new event's tasks, once it is durable: in memory while the channel's
    window has room and nothing waits before them, else in the store. */
static void
s_make_tasks (core_t *self, const s_ack_t *ack, int64_t now)
{
    for (int f = 0; f < ack->fanout_count; f++) {
        int c = ack->fanout[f];
        s_chan_t *ch = &self->chans[c];
        ch->open++;
        /*  A shared store: the places not kept are free tasks in the store,
            for this broker (once it has room) or another to claim. */
        bool free_in_store = self->shared && !(ack->held & (1u << f));
        if (free_in_store || (!self->shared && (ch->backlog
            || dispatch_held (self->dispatch, c) >= (size_t) self->config->broker.queue_window))) {
            ch->backlog = true;
            ch->backlog_lsn = ack->lsn;
            continue;
        }
        task_t *task = task_new (ack->blob, f, c, 0);
        if (!task) {
            ch->backlog = true;
            ch->backlog_lsn = ack->lsn;
            continue;
        }
        dispatch_enqueue (self->dispatch, task, 0, now, false);
        ch->loaded_upto = ack->blob->seq;
    }
}

/*  A shared store decided at commit what a tentative new event became:
    a duplicate of an event another broker stored (ACKed with its id, no
    tasks; the key now names that event here too) or refused (a NACK:
    not stored, or not known to be). Returns true when it answered the
    publish, false for a new event (the caller ACKs it). */
static bool
s_commit_result (core_t *self, s_ack_t *ack)
{
    store_commit_t result = { .kind = STORE_COMMIT_NEW };
    if (self->io.commit_result (self->io.ctx, ack->lsn, &result) != 0 || result.kind == STORE_COMMIT_NEW)
        return false;
    hp_str_t corr = ack->corr_len? hp_strn (ack->corr, ack->corr_len): hp_str ("-");
    self->version = ack->version;
    self->origin = ack->origin;
    if (result.key)
        dedup_remove (self->dedup, result.key, result.key_len, ack->blob->seq);
    if (result.kind == STORE_COMMIT_DUPLICATE) {
        if (result.key && dedup_add (self->dedup, result.key, result.key_len, result.seq) == UINT64_MAX)
            herald_warn ("out of memory keeping an idempotency key", NULL);
        hp_msg_t reply = { .command = HP_ACK, .version = ack->version, .corr = corr,
                           .event_id = hp_str (result.event_id), .duplicate = true,
                           .durability = hp_str (s_durability (self)) };
        herald_metrics_acked (self->io.metrics, true, ack->received_us);
        s_send_reply (self, ack->origin, false, ack->identity, ack->identity_len, &reply);
    }
    else
        s_nack (self, ack->identity, ack->identity_len, corr, result.code? result.code: HP_CODE_BUSY,
                result.reason);
    if (--ack->blob->refs <= 0)
        free (ack->blob);
    ack->blob = NULL;
    return true;
}

void
core_durable (core_t *self, uint64_t lsn, int64_t now)
{
    if (lsn > self->durable)
        self->durable = lsn;
    /*  Every ACK the position covers leaves first; the tasks of the events
        they answer are made after, off their path: in a batch of hundreds
        the last ACK waited for every task before it. */
    size_t due = 0;
    for (; due < self->ack_count; due++) {
        s_ack_t *ack = &self->acks[(self->ack_head + due) % self->ack_cap];
        if (ack->lsn > lsn)
            break;
        if (ack->blob && self->io.commit_result && s_commit_result (self, ack))
            continue;                   /* answered, its blob let go: nothing more to do */
        hp_msg_t reply = {
            .command = HP_ACK,
            .version = ack->version,
            .corr = ack->corr_len? hp_strn (ack->corr, ack->corr_len): hp_str ("-"),
            .event_id = hp_str (ack->event_id),
            .duplicate = ack->duplicate,
            .durability = hp_str (s_durability (self)),
        };
        herald_metrics_acked (self->io.metrics, ack->duplicate, ack->received_us);
        s_send_reply (self, ack->origin, false, ack->identity, ack->identity_len, &reply);
    }
    for (; due > 0; due--) {
        s_ack_t *ack = &self->acks[self->ack_head];
        if (ack->blob) {
            self->events_accepted++;
            s_make_tasks (self, ack, now);
            if (--ack->blob->refs <= 0)
                free (ack->blob);
            ack->blob = NULL;
        }
        self->ack_head = (self->ack_head + 1) % self->ack_cap;
        self->ack_count--;
    }
}

void
core_journal_failed (core_t *self, const char *why)
{
    char quoted[1200];
    herald_error ("store failed: stopping without acknowledging what is not durable", "error=%s",
                  herald_log_quote (why, quoted, sizeof quoted));
    while (self->ack_count > 0) {
        s_ack_t *ack = &self->acks[self->ack_head];
        self->version = ack->version;
        self->origin = ack->origin;
        s_nack (self, ack->identity, ack->identity_len, hp_strn (ack->corr, ack->corr_len), HP_CODE_STORAGE,
                "storage failure: the event may or may not be stored; publish it again (it is idempotent)");
        if (ack->blob && --ack->blob->refs <= 0)
            free (ack->blob);
        self->ack_head = (self->ack_head + 1) % self->ack_cap;
        self->ack_count--;
    }
    self->journal_failed = true;
    self->failed = true;
}

/*  Outcomes the journal could not take yet (disk full), in order: tried
    again each tick, and new ones queue behind them, so a task's outcomes
    reach the index in the order they happened. At most one per task held
    in memory, so the queue is bounded by the queue window. */
static void
s_retry_outcomes (core_t *self)
{
    while (self->held_outcomes) {
        s_held_t *held = self->held_outcomes;
        if (self->io.append (self->io.ctx, held->data, held->len) == 0)
            return;
        self->held_outcomes = held->next;
        if (!self->held_outcomes)
            self->held_tail = NULL;
        self->held_count--;
        free (held);
        if (!self->outcomes_since)
            self->outcomes_since = herald_clock_mono_ms ();
    }
}

/*  Appends a task's outcome. */
static void
s_outcome (core_t *self, const task_t *task, record_outcome_kind_t kind, bool log_attempt,
           const char *outcome, const char *error, int64_t not_before, int64_t delay)
{
    record_t rec = { .type = RECORD_OUTCOME };
    rec.u.outcome = (record_outcome_t) {
        .seq = task->seq, .ch = task->ch, .kind = kind, .log_attempt = log_attempt,
        .attempts = task->attempts, .throttled = task->throttled, .at = herald_clock_wall_ms (),
        .not_before = not_before, .delay = delay, .outcome = record_str (outcome), .error = record_str (error),
    };
    s_retry_outcomes (self);
    if (!self->held_outcomes && s_append (self, &rec) != 0) {
        if (!self->outcomes_since)
            self->outcomes_since = herald_clock_mono_ms ();
        return;
    }
    if (self->io.append_status (self->io.ctx) == JOURNAL_IO) {
        herald_warn ("outcome not recorded: the journal failed", "task_id=%s", S_TASK_ID (self, task));
        return;
    }
    size_t size = record_size (&rec);
    s_held_t *held = size? malloc (sizeof *held + size): NULL;
    if (!held) {
        /*  One more delivery under the same task id after a restart,
            never a lost event. */
        herald_warn ("outcome not recorded", "task_id=%s", S_TASK_ID (self, task));
        return;
    }
    held->next = NULL;
    held->len = (uint32_t) record_encode (&rec, held->data, size);
    if (self->held_tail)
        self->held_tail->next = held;
    else
        self->held_outcomes = held;
    self->held_tail = held;
    self->held_count++;
}

/*  A delivery attempt ended without success: retry later or give up. */
static void
s_attempt_failed (core_t *self, task_t *task, const char *outcome_name, const char *error,
                  int64_t requested_delay_ms, bool permanent, bool throttled, int64_t now)
{
    const herald_channel_t *channel = &self->config->channels[task->channel];
    s_chan_t *ch = &self->chans[task->channel];
    if (throttled)
        task->throttled++;
    uint32_t charged = task->attempts - task->throttled;
    bool out_of_throttles = throttled && task->throttled >= (uint32_t) channel->max_throttled;
    bool dead = permanent || out_of_throttles || (!throttled && charged >= (uint32_t) channel->max_attempts);
    char text[HP_MAX_TEXT + 128];
    char quoted[HP_MAX_TEXT + 160];
    if (dead) {
        if (permanent)
            snprintf (text, sizeof text, "%s", error);
        else
        if (out_of_throttles)
            snprintf (text, sizeof text, "gave up after %u throttled answers (retry.max_throttled): %s",
                      task->throttled, error);
        else
            snprintf (text, sizeof text, "gave up after %u attempts: %s", charged, error);
        herald_warn ("task dead", "task_id=%s channel=%s attempt=%u error=%s", S_TASK_ID (self, task), channel->name,
                     task->attempts, herald_log_quote (text, quoted, sizeof quoted));
        s_outcome (self, task, RECORD_DEAD, true, outcome_name, text, 0, 0);
        ch->open--;
        ch->dead++;
        task_destroy (&task);
        return;
    }
    /*  A worker's "not before" is a hint, held to the channel's backoff
        maximum: a bogus 2^53 ms must not park a task for ever. */
    int64_t delay = requested_delay_ms > 0? requested_delay_ms
                  : dispatch_backoff_ms (channel, charged? charged: 1, s_random01 (self));
    if (delay > channel->backoff_max_ms)
        delay = channel->backoff_max_ms;
    int64_t wall = herald_clock_wall_ms ();
    s_outcome (self, task, RECORD_RESCHEDULE, true, outcome_name, error, wall + delay, delay);
    herald_info ("task will retry", "task_id=%s channel=%s attempt=%u outcome=%s delay_ms=%lld error=%s",
                 S_TASK_ID (self, task), channel->name, task->attempts, outcome_name, (long long) delay,
                 herald_log_quote (error, quoted, sizeof quoted));
    dispatch_enqueue (self->dispatch, task, now + delay, now, false);
}

/*  Takes back every lease of a worker that died or vanished. */
static void
s_worker_lost (core_t *self, worker_t **worker_p, const char *why, int64_t now)
{
    worker_t *worker = *worker_p;
    herald_warn ("worker lost", "worker=%s channel=%s leases=%u reason=\"%s\"", worker->name,
                 self->config->channels[worker->channel].name, worker->lease_count, why);
    /*  Which of its tasks killed it cannot be told when it held several:
        none is charged, all become suspects and are delivered alone from
        now on. A worker lost while holding one task alone charges that
        task, so a payload that kills every worker ends dead after its
        attempts, without dragging innocent tasks along. */
    bool alone = worker->lease_count == 1;
    task_t *task;
    while ((task = dispatch_worker_pop_lease (self->dispatch, worker))) {
        task->suspect = true;
        herald_metrics_delivery (self->io.metrics, task->channel, HERALD_DELIVERY_WORKER_LOST);
        if (alone)
            s_attempt_failed (self, task, "worker-lost", why, 0, false, false, now);
        else
            dispatch_hand_back (self->dispatch, task, now);
    }
    dispatch_worker_remove (self->dispatch, worker_p);
}

/*  A worker leaving in good order: its leases go back uncharged. */
static void
s_worker_leaving (core_t *self, worker_t **worker_p, int64_t now)
{
    worker_t *worker = *worker_p;
    herald_info ("worker left", "worker=%s channel=%s handed_back=%u", worker->name,
                 self->config->channels[worker->channel].name, worker->lease_count);
    task_t *task;
    while ((task = dispatch_worker_pop_lease (self->dispatch, worker)))
        dispatch_hand_back (self->dispatch, task, now);
    dispatch_worker_remove (self->dispatch, worker_p);
}

static void
s_register_worker (core_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg, int64_t now)
{
    char channel_name[HERALD_NAME_MAX], name[HP_MAX_ID + 1];
    hp_str_copy (msg->channel, channel_name, sizeof channel_name);
    hp_str_copy (msg->worker, name, sizeof name);
    char qname[2 * HP_MAX_ID], qchannel[2 * HERALD_NAME_MAX];
    herald_log_quote (name, qname, sizeof qname);
    herald_log_quote (channel_name, qchannel, sizeof qchannel);
    int channel = herald_config_channel_index (self->config, channel_name);
    if (channel < 0) {
        if (herald_ratelimit_allow (&self->worker_refusals, now))
            herald_warn ("worker refused: unknown channel", "worker=%s channel=%s", qname, qchannel);
        return;
    }
    worker_t *existing = dispatch_worker_find (self->dispatch, identity, identity_len);
    if (existing)
        s_worker_leaving (self, &existing, now);
    /*  A worker's word is checked against the configuration: its credit is
        at most the channel's capacity + prefetch, and a channel takes at most
        max_workers registrations. */
    const herald_channel_t *cfg = &self->config->channels[channel];
    dispatch_counts_t counts;
    dispatch_counts (self->dispatch, channel, &counts);
    if (counts.workers >= cfg->max_workers) {
        if (herald_ratelimit_allow (&self->worker_refusals, now))
            herald_warn ("worker refused: channel has max_workers registered", "worker=%s channel=%s"
                         " max_workers=%d not_logged=%llu", qname, qchannel, cfg->max_workers,
                         (unsigned long long) self->worker_refusals.suppressed);
        return;
    }
    uint32_t capacity = msg->capacity, credit = herald_channel_credit (cfg);
    if (capacity > credit) {
        herald_info ("worker capacity lowered to the channel's", "worker=%s channel=%s asked=%u"
                     " capacity=%d prefetch=%d", qname, qchannel, capacity, cfg->capacity, cfg->prefetch);
        capacity = credit;
    }
    uint32_t max_batch = msg->max_batch < capacity? msg->max_batch: capacity;
    worker_t *worker = dispatch_worker_add (self->dispatch, identity, identity_len, channel, capacity,
                                            max_batch, name, now);
    if (!worker) {
        herald_error ("worker refused: too many workers", "worker=%s", qname);
        return;
    }
    herald_info ("worker registered", "worker=%s channel=%s capacity=%u", qname, qchannel, capacity);
}

static void
s_task_answered (core_t *self, worker_t *worker, const hp_result_t *result, int64_t now)
{
    task_t *task = dispatch_complete (self->dispatch, worker, result->task_id, result->lease);
    if (!task) {
        char id[HP_MAX_ID + 1], quoted[2 * HP_MAX_ID];
        herald_info ("stale answer ignored", "worker=%s task_id=%s lease=%llu answer=%s", worker->name,
                     herald_log_quote (hp_str_copy (result->task_id, id, sizeof id), quoted, sizeof quoted),
                     (unsigned long long) result->lease, hp_outcome_name (result->outcome));
        return;
    }
    if (result->outcome == HP_OUTCOME_RELEASED) {
        /*  Never started (it waited half its lease behind the worker's
            busy deliveries, or the downstream said 429): back to the
            queue uncharged, and to another worker if one has room. */
        herald_debug ("task released", "task_id=%s worker=%s", S_TASK_ID (self, task), worker->name);
        herald_metrics_delivery (self->io.metrics, task->channel, HERALD_DELIVERY_RELEASED);
        task->avoid = worker->serial;
        dispatch_hand_back (self->dispatch, task, now);
        return;
    }
    /*  What a worker says is kept, but never a secret nor a control
        character: it is logged and shown by `herald dead show`. */
    char raw[HP_MAX_TEXT + 1], error[HP_MAX_TEXT + 1];
    hp_str_copy (result->text, raw, sizeof raw);
    herald_redact (raw, error, sizeof error);
    s_chan_t *ch = &self->chans[task->channel];
    static const herald_delivery_t delivery[] = {
        [HP_OUTCOME_DONE] = HERALD_DELIVERY_DONE, [HP_OUTCOME_RETRY] = HERALD_DELIVERY_RETRY,
        [HP_OUTCOME_THROTTLED] = HERALD_DELIVERY_THROTTLED, [HP_OUTCOME_FAILED] = HERALD_DELIVERY_FAILED,
    };
    herald_metrics_delivery (self->io.metrics, task->channel,
                             result->outcome >= HP_OUTCOME_DONE && result->outcome <= HP_OUTCOME_FAILED
                             ? delivery[result->outcome]: HERALD_DELIVERY_FAILED);
    switch (result->outcome) {
        case HP_OUTCOME_DONE:
            herald_debug ("task done", "task_id=%s attempt=%u", S_TASK_ID (self, task), task->attempts);
            s_outcome (self, task, RECORD_DONE, false, "done", "", 0, 0);
            ch->open--;
            ch->done++;
            task_destroy (&task);
            break;
        case HP_OUTCOME_RETRY:
            s_attempt_failed (self, task, "retry", error, result->delay_ms, false, false, now);
            break;
        case HP_OUTCOME_THROTTLED: {
            /*  The downstream's Retry-After pauses the whole channel, at
                most for the channel's backoff maximum, and spends no attempt. */
            int64_t delay = result->delay_ms > 0? result->delay_ms: 1000;
            int64_t cap = self->config->channels[task->channel].backoff_max_ms;
            if (delay > cap)
                delay = cap;
            dispatch_pause (self->dispatch, task->channel, now + delay);
            s_attempt_failed (self, task, "throttled", error, delay, false, true, now);
            break;
        }
        default:
            s_attempt_failed (self, task, "failed", error, 0, true, false, now);
    }
}

void
core_worker (core_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg, int64_t now)
{
    if (msg->command == HP_READY) {
        s_register_worker (self, identity, identity_len, msg, now);
        return;
    }
    worker_t *worker = dispatch_worker_find (self->dispatch, identity, identity_len);
    if (!worker) {
        /*  Not registered here (we restarted, or declared it dead): it
            must say READY again. */
        if (msg->command != HP_DISCONNECT) {
            hp_msg_t reply = { .command = HP_DISCONNECT };
            self->io.to_worker (self->io.ctx, identity, identity_len, &reply);
        }
        return;
    }
    worker->last_recv = now;
    switch (msg->command) {
        case HP_RESULTS: {
            hp_str_t cursor = msg->batch;
            hp_result_t result;
            while (hp_next_result (&cursor, &result)) {
                s_task_answered (self, worker, &result, now);
                /*  An answer may have been the last task of a worker lost
                    meanwhile: never touch a removed worker. */
                if (!dispatch_worker_find (self->dispatch, identity, identity_len))
                    break;
            }
            break;
        }
        case HP_HEARTBEAT:
            break;
        case HP_DISCONNECT:
            s_worker_leaving (self, &worker, now);
            break;
        default:
            herald_warn ("unexpected worker command dropped", "command=%s", hp_command_name (msg->command));
    }
}

/*  Dispatch: as many deliveries as credit, limits and rate allow, sent
    as one TASKS message per worker (up to its max_batch tasks each). */
static void
s_send_batch (core_t *self, s_batch_t *batch, int64_t now)
{
    if (batch->count == 0)
        return;
    worker_t *worker = batch->worker;
    if (batch->bytes > self->frame_cap) {
        size_t cap = self->frame_cap? self->frame_cap: 65536;
        while (cap < batch->bytes)
            cap *= 2;
        char *grown = realloc (self->frame, cap);
        if (!grown) {
            for (uint32_t i = 0; i < batch->count; i++) {
                char id[TASK_ID_MAX];
                task_t *task = dispatch_complete (self->dispatch, worker,
                                                  task_id (batch->tasks[i], self->config, id),
                                                  batch->tasks[i]->lease);
                if (task)
                    dispatch_hand_back (self->dispatch, task, now);
            }
            batch->count = 0;
            return;
        }
        self->frame = grown;
        self->frame_cap = cap;
    }
    size_t len = 0;
    for (uint32_t i = 0; i < batch->count; i++) {
        task_t *task = batch->tasks[i];
        char id[TASK_ID_MAX];
        hp_task_t entry = { task_id (task, self->config, id), task->attempts, task->lease,
                            hp_strn (task->event->data, task->event->len) };
        len += hp_task_put (self->frame + len, &entry);
    }
    hp_msg_t msg = {
        .command = HP_TASKS,
        .channel = hp_str (self->config->channels[worker->channel].name),
        .batch = hp_strn (self->frame, len),
    };
    if (self->io.to_worker (self->io.ctx, worker->identity, worker->identity_len, &msg) == 0) {
        worker->last_send = now;
        batch->count = 0;
        batch->bytes = 0;
        return;
    }
    /*  The worker is gone or its pipe is full: its tasks go back uncharged
        and it gets nothing more. A worker stopping in good order sends
        DISCONNECT and closes: the loop reads its queued messages before
        the next tick decides it was lost. */
    worker->blocked = true;
    worker->blocked_errno = errno;
    for (uint32_t i = 0; i < batch->count; i++) {
        char id[TASK_ID_MAX];
        task_t *task = dispatch_complete (self->dispatch, worker, task_id (batch->tasks[i], self->config, id),
                                          batch->tasks[i]->lease);
        if (task)
            dispatch_hand_back (self->dispatch, task, now);
    }
    batch->count = 0;
    batch->bytes = 0;
}

static void
s_dispatch (core_t *self, int64_t now)
{
    s_batch_t *batches = self->batches;
    size_t open = 0;
    task_t *task;
    while ((task = dispatch_next (self->dispatch, now))) {
        worker_t *worker = task->worker;
        s_batch_t *batch = NULL;
        for (size_t i = 0; i < open && !batch; i++)
            if (batches[i].worker == worker)
                batch = &batches[i];
        if (!batch) {
            if (open == S_BATCHES_MAX) {
                /*  More workers served in one tick than batches at hand:
                    send what is ready, start over. */
                for (size_t i = 0; i < open; i++)
                    s_send_batch (self, &batches[i], now);
                open = 0;
            }
            batch = &batches[open++];
            batch->worker = worker;
            batch->count = 0;
            batch->bytes = 0;
        }
        char id[TASK_ID_MAX];
        hp_task_t entry = { task_id (task, self->config, id), task->attempts, task->lease,
                            hp_strn (task->event->data, task->event->len) };
        size_t size = hp_task_size (&entry);
        if (batch->count > 0 && batch->bytes + size > (size_t) self->config->broker.max_event_bytes + HP_BATCH_OVERHEAD)
            s_send_batch (self, batch, now);    /* the frame is full: this task starts the next */
        batch->tasks[batch->count++] = task;
        batch->bytes += size;
        if (batch->count >= worker->max_batch || batch->count == HP_MAX_BATCH)
            s_send_batch (self, batch, now);
    }
    for (size_t i = 0; i < open; i++)
        s_send_batch (self, &batches[i], now);
}

/*  Workers a send failed to, still registered after their queued
    messages were read: lost. */
static void
s_blocked_workers (core_t *self, int64_t now)
{
    for (int i = 0; ; ) {
        worker_t *worker = dispatch_worker_at (self->dispatch, i);
        if (!worker)
            break;
        if (worker->blocked) {
            s_worker_lost (self, &worker, worker->blocked_errno == EHOSTUNREACH? "worker unreachable"
                                                                                : "worker pipe full", now);
            continue;
        }
        i++;
    }
}

//  --------------------------------------------------------------------------
//  Loading tasks from the store

static void
s_refill (core_t *self)
{
    int window = self->config->broker.queue_window;
    for (int c = 0; c < self->config->channel_count; c++) {
        s_chan_t *ch = &self->chans[c];
        if (ch->loading || !(ch->backlog || ch->requeued))
            continue;
        if (self->shared) {
            /*  A shared store's tasks are claimed only for workers here. */
            dispatch_counts_t counts;
            dispatch_counts (self->dispatch, c, &counts);
            if (counts.workers == 0)
                continue;
        }
        size_t held = dispatch_held (self->dispatch, c);
        if (held > (size_t) window / 2)
            continue;
        index_msg_t *msg = index_msg_new (INDEX_LOAD);
        if (!msg)
            return;
        snprintf (msg->text, sizeof msg->text, "%s", self->config->channels[c].name);
        msg->requeued = !ch->backlog && ch->requeued;
        msg->after = msg->requeued? ch->requeue_cursor: ch->loaded_upto;
        size_t want = (size_t) window - held;
        msg->number = want < S_LOAD_CHUNK? want: S_LOAD_CHUNK;
        msg->min_lsn = msg->requeued? 0: ch->backlog_lsn;
        msg->tag = (uint64_t) c;
        ch->loading = true;
        self->io.query (self->io.ctx, msg);
    }
}

static void
s_loaded (core_t *self, index_msg_t *msg, int64_t now)
{
    int c = (int) msg->tag;
    if (c < 0 || c >= self->config->channel_count)
        return;
    s_chan_t *ch = &self->chans[c];
    ch->loading = false;
    if (msg->code != HP_CODE_OK) {
        char quoted[2100];
        herald_error ("cannot load pending tasks", "channel=%s error=%s", self->config->channels[c].name,
                      herald_log_quote (msg->error, quoted, sizeof quoted));
        return;
    }
    int64_t wall = herald_clock_wall_ms ();
    for (size_t i = 0; i < msg->task_count; i++) {
        index_task_t *t = &msg->tasks[i];
        blob_t *blob = blob_new (t->seq, t->uid, t->body, t->body_len);
        task_t *task = blob? task_new (blob, t->ch, c, t->attempts): NULL;
        if (!task) {
            free (blob);
            herald_error ("out of memory loading tasks", "channel=%s", self->config->channels[c].name);
            return;
        }
        task->throttled = t->throttled;
        /*  not_before is wall-clock time (it must survive restarts); a
            clock stepped back while the broker was down must not stretch
            the wait beyond the delay that was asked for. */
        int64_t delay = t->not_before > wall? t->not_before - wall: 0;
        if (t->delay > 0 && delay > t->delay)
            delay = t->delay;
        dispatch_enqueue (self->dispatch, task, now + delay, now, false);
        if (msg->requeued)
            ch->requeue_cursor = t->requeued;
        else
            ch->loaded_upto = t->seq;
    }
    bool short_read = msg->task_count < msg->number;
    if (msg->requeued) {
        if (short_read)
            ch->requeued = false;
    }
    else
    if (short_read && msg->min_lsn == ch->backlog_lsn)
        ch->backlog = false;        /* nothing newer went to the store meanwhile */
    if (msg->task_count > 0)
        herald_debug ("tasks loaded from store", "channel=%s count=%zu requeued=%d",
                      self->config->channels[c].name, msg->task_count, msg->requeued);
}

//  --------------------------------------------------------------------------
//  Admin

static void
s_admin_reply (core_t *self, const void *identity, size_t identity_len, hp_str_t corr, int code,
               const char *body)
{
    hp_msg_t reply = { .command = HP_ADMIN_REPLY, .version = self->version,
                       .corr = corr.ptr && corr.len? corr: hp_str ("-"),
                       .code = code, .body = hp_str (body? body: "{}") };
    s_send_reply (self, self->origin, true, identity, identity_len, &reply);
}

static void
s_admin_error (core_t *self, const void *identity, size_t identity_len, hp_str_t corr, int code,
               const char *fmt, ...) __attribute__ ((format (printf, 6, 7)));

static void
s_admin_error (core_t *self, const void *identity, size_t identity_len, hp_str_t corr, int code,
               const char *fmt, ...)
{
    char text[400];
    va_list args;
    va_start (args, fmt);
    vsnprintf (text, sizeof text, fmt, args);
    va_end (args);
    json_t *body = json_pack ("{s:s}", "error", text);
    char *dump = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    s_admin_reply (self, identity, identity_len, corr, code, dump);
    free (dump);
}

static void
s_admin_wait (core_t *self, s_admin_kind_t kind, uint64_t tag, const void *identity, size_t identity_len,
              hp_str_t corr)
{
    s_admin_t *admin = calloc (1, sizeof *admin);
    if (!admin) {
        s_admin_error (self, identity, identity_len, corr, HP_CODE_INTERNAL, "out of memory");
        return;
    }
    admin->tag = tag;
    admin->kind = kind;
    s_fill_peer (admin->identity, &admin->identity_len, admin->corr, &admin->corr_len,
                 &admin->version, self->version, identity,
                 identity_len, corr);
    admin->origin = self->origin;
    admin->next = self->admins;
    self->admins = admin;
}

/*  status, and metrics: the same with the counters of herald_metrics and
    each channel's oldest open task's age (tasks loaded from the store have
    no arrival time: they count from the broker's start). */
static void
s_status (core_t *self, const void *identity, size_t identity_len, hp_str_t corr, bool metrics)
{
    int64_t uptime_ms = herald_clock_mono_ms () - self->started;
    json_t *channels = json_array ();
    for (int c = 0; c < self->config->channel_count; c++) {
        const herald_channel_t *channel = &self->config->channels[c];
        dispatch_counts_t counts;
        dispatch_counts (self->dispatch, c, &counts);
        s_chan_t *ch = &self->chans[c];
        int64_t pending = ch->open - (int64_t) counts.in_flight - (int64_t) counts.delayed;
        json_array_append_new (channels, json_pack (
            "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:i}",
            "name", channel->name,
            "driver", herald_driver_name (channel->driver),
            "pending", (json_int_t) (pending > 0? pending: 0),
            "in_flight", (json_int_t) counts.in_flight,
            "retrying", (json_int_t) counts.delayed,
            "done", (json_int_t) ch->done,
            "dead", (json_int_t) ch->dead,
            "workers", counts.workers));
        if (metrics) {
            int64_t oldest = dispatch_oldest (self->dispatch, c);
            int64_t age = oldest == INT64_MAX? (ch->open > 0? uptime_ms: 0)
                        : oldest == 0? uptime_ms: herald_clock_wall_ms () - oldest;
            json_object_set_new (json_array_get (channels, (size_t) c), "oldest_pending_age_ms",
                                 json_integer ((json_int_t) (age > 0? age: 0)));
        }
    }
    json_t *broker = json_pack ("{s:s, s:I, s:I, s:s, s:b}",
        "version", HERALD_VERSION,
        "uptime_ms", (json_int_t) uptime_ms,
        "events", (json_int_t) (self->next_seq - 1),
        "store", self->config->broker.store,
        "store_full", self->io.append_status (self->io.ctx) == JOURNAL_FULL);
    json_object_set_new (broker, "dedup_keys", json_integer ((json_int_t) dedup_count (self->dedup)));
    json_t *reply = json_pack ("{s:o, s:o}", "broker", broker, "channels", channels);
    if (self->io.status)
        self->io.status (self->io.ctx, reply);
    if (metrics)
        json_object_set_new (reply, "metrics", herald_metrics_json (self->io.metrics, self->config->channel_count));
    char *body = json_dumps (reply, JSON_COMPACT);
    json_decref (reply);
    s_admin_reply (self, identity, identity_len, corr, body? HP_CODE_OK: HP_CODE_INTERNAL, body);
    free (body);
}

/*  dead.retry and dead.purge: a journal record, answered once the index
    has applied it. */
static void
s_dead_change (core_t *self, record_type_t type, json_t *args, const void *identity, size_t identity_len,
               hp_str_t corr, int64_t now)
{
    const char *task_id = json_string_value (json_object_get (args, "task_id"));
    const char *channel = json_string_value (json_object_get (args, "channel"));
    bool all = json_is_true (json_object_get (args, "all"));
    if (!task_id && !channel && !all) {
        s_admin_error (self, identity, identity_len, corr, HP_CODE_BAD_REQUEST,
                       "say which tasks: task_id, channel or all");
        return;
    }
    if (!task_id && channel && herald_config_channel_index (self->config, channel) < 0
    &&  type == RECORD_DEAD_RETRY) {
        s_admin_error (self, identity, identity_len, corr, HP_CODE_NOT_FOUND, "no channel '%s'", channel);
        return;
    }
    record_t rec = { .type = type };
    rec.u.admin = (record_admin_t) { .task_id = record_str (task_id), .channel = record_str (task_id? NULL: channel),
                                     .all = all && !task_id && !channel, .at = herald_clock_wall_ms (),
                                     .request = ++self->next_tag };
    if (s_append (self, &rec) == 0) {
        int code;
        const char *reason = s_append_refusal (self, &code);
        s_admin_error (self, identity, identity_len, corr, code, "%s", reason);
        return;
    }
    self->events_staged = true;
    s_admin_wait (self, type == RECORD_DEAD_RETRY? S_ADMIN_RETRY: S_ADMIN_PURGE, rec.u.admin.request,
                  identity, identity_len, corr);
    (void) now;
}

void
core_admin (core_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg, int64_t now)
{
    core_admin_from (self, CORE_ORIGIN_PEER, identity, identity_len, msg, now);
}

void
core_admin_from (core_t *self, core_origin_t origin, const void *identity, size_t identity_len, const hp_msg_t *msg,
                 int64_t now)
{
    self->version = msg->version;
    self->origin = origin;
    json_error_t jerr;
    json_t *args = json_loadb (msg->body.ptr, msg->body.len, 0, &jerr);
    if (!json_is_object (args)) {
        json_decref (args);
        s_admin_error (self, identity, identity_len, msg->corr, HP_CODE_BAD_REQUEST,
                       "arguments must be a JSON object: %s", jerr.text);
        return;
    }
    index_kind_t kind = INDEX_FAILED;
    const char *text = NULL;
    uint64_t number = 0;
    if (hp_str_eq (msg->verb, "status") || hp_str_eq (msg->verb, "metrics"))
        s_status (self, identity, identity_len, msg->corr, hp_str_eq (msg->verb, "metrics"));
    else
    if (hp_str_eq (msg->verb, "dead.list")) {
        kind = INDEX_DEAD_LIST;
        text = json_string_value (json_object_get (args, "channel"));
        json_int_t limit = json_integer_value (json_object_get (args, "limit"));
        number = limit <= 0 || limit > 100000? 100: (uint64_t) limit;
    }
    else
    if (hp_str_eq (msg->verb, "dead.show")) {
        text = json_string_value (json_object_get (args, "task_id"));
        if (!text)
            s_admin_error (self, identity, identity_len, msg->corr, HP_CODE_BAD_REQUEST, "dead.show needs task_id");
        else
            kind = INDEX_DEAD_SHOW;
    }
    else
    if (hp_str_eq (msg->verb, "track")) {
        text = json_string_value (json_object_get (args, "event_id"));
        if (!text)
            s_admin_error (self, identity, identity_len, msg->corr, HP_CODE_BAD_REQUEST, "track needs event_id");
        else
            kind = INDEX_TRACK;
    }
    else
    if (hp_str_eq (msg->verb, "dead.retry"))
        s_dead_change (self, RECORD_DEAD_RETRY, args, identity, identity_len, msg->corr, now);
    else
    if (hp_str_eq (msg->verb, "dead.purge"))
        s_dead_change (self, RECORD_DEAD_PURGE, args, identity, identity_len, msg->corr, now);
    else {
        char verb[64];
        s_admin_error (self, identity, identity_len, msg->corr, HP_CODE_NOT_FOUND, "unknown verb '%s'",
                       hp_str_copy (msg->verb, verb, sizeof verb));
    }
    if (kind != INDEX_FAILED) {
        index_msg_t *query = index_msg_new (kind);
        if (!query)
            s_admin_error (self, identity, identity_len, msg->corr, HP_CODE_INTERNAL, "out of memory");
        else {
            snprintf (query->text, sizeof query->text, "%s", text? text: "");
            query->number = number;
            query->tag = ++self->next_tag;
            query->min_lsn = UINT64_MAX;    /* the loop sets the journal's end: admin sees all so far */
            s_admin_wait (self, kind == INDEX_TRACK? S_ADMIN_TRACK: S_ADMIN_PASS, query->tag, identity,
                          identity_len, msg->corr);
            self->io.query (self->io.ctx, query);
        }
    }
    json_decref (args);
}

/*  track: the index knows what is stored; a task leased right now is
    in flight, which only the core knows. */
static char *
s_track_patch (core_t *self, const char *json)
{
    json_t *root = json_loads (json, 0, NULL);
    json_t *events = json_object_get (root, "events");
    size_t i, j;
    json_t *event, *task;
    json_array_foreach (events, i, event) {
        json_array_foreach (json_object_get (event, "channels"), j, task) {
            uint64_t seq = (uint64_t) json_integer_value (json_object_get (task, "_seq"));
            int ch = (int) json_integer_value (json_object_get (task, "_ch"));
            const char *state = json_string_value (json_object_get (task, "state"));
            if (state && strcmp (state, "pending") == 0 && dispatch_leased (self->dispatch, seq, ch))
                json_object_set_new (task, "state", json_string ("in_flight"));
            json_object_del (task, "_seq");
            json_object_del (task, "_ch");
        }
    }
    char *out = root? json_dumps (root, JSON_COMPACT): NULL;
    json_decref (root);
    return out;
}

static void
s_admin_answered (core_t *self, index_msg_t *msg)
{
    s_admin_t **link = &self->admins;
    while (*link && (*link)->tag != msg->tag)
        link = &(*link)->next;
    s_admin_t *admin = *link;
    if (!admin)
        return;
    *link = admin->next;
    hp_str_t corr = hp_strn (admin->corr, admin->corr_len);
    self->version = admin->version;
    self->origin = admin->origin;
    if (admin->kind == S_ADMIN_RETRY || admin->kind == S_ADMIN_PURGE) {
        int64_t total = 0;
        for (int i = 0; i < msg->channel_count; i++) {
            total += msg->channel_counts[i];
            int c = herald_config_channel_index (self->config, msg->channels[i]);
            if (c < 0)
                continue;
            s_chan_t *ch = &self->chans[c];
            ch->dead -= msg->channel_counts[i];
            if (admin->kind == S_ADMIN_RETRY) {
                ch->open += msg->channel_counts[i];
                ch->requeued = true;
            }
        }
        herald_info (admin->kind == S_ADMIN_RETRY? "dead tasks retried": "dead tasks purged", "count=%lld",
                     (long long) total);
        char body[64];
        snprintf (body, sizeof body, "{\"%s\":%lld}", admin->kind == S_ADMIN_RETRY? "retried": "purged",
                  (long long) total);
        s_admin_reply (self, admin->identity, admin->identity_len, corr, HP_CODE_OK, body);
    }
    else
    if (admin->kind == S_ADMIN_TRACK && msg->code == HP_CODE_OK && msg->json) {
        char *patched = s_track_patch (self, msg->json);
        s_admin_reply (self, admin->identity, admin->identity_len, corr, patched? HP_CODE_OK: HP_CODE_INTERNAL,
                       patched);
        free (patched);
    }
    else
        s_admin_reply (self, admin->identity, admin->identity_len, corr, msg->code? msg->code: HP_CODE_INTERNAL,
                       msg->json);
    free (admin);
}

//  --------------------------------------------------------------------------
//  The index speaks

/*  A shared store: each channel's limits (rate, burst, max_in_flight) are
    divided among the living brokers serving it. */
static void
s_share (core_t *self, const index_msg_t *msg)
{
    for (int i = 0; i < msg->channel_count; i++) {
        int c = herald_config_channel_index (self->config, msg->channels[i]);
        if (c < 0)
            continue;
        const herald_channel_t *cfg = &self->config->channels[c];
        int brokers = msg->channel_counts[i] > 1? (int) msg->channel_counts[i]: 1;
        dispatch_set_share (self->dispatch, c, brokers);
        if (cfg->rate_per_sec > 0 || cfg->max_in_flight > 0)
            herald_info ("channel limits shared among brokers", "channel=%s brokers=%d rate_per_sec=%.3g",
                         cfg->name, brokers, cfg->rate_per_sec / brokers);
    }
}

void
core_index (core_t *self, index_msg_t *msg, int64_t now)
{
    switch (msg->kind) {
        case INDEX_EVENT_ID:
            s_duplicate_answered (self, msg, now);
            break;
        case INDEX_LOAD:
            s_loaded (self, msg, now);
            break;
        case INDEX_TRACK:
        case INDEX_DEAD_LIST:
        case INDEX_DEAD_SHOW:
        case INDEX_RETRIED:
        case INDEX_PURGED:
            s_admin_answered (self, msg);
            break;
        case INDEX_PRUNED:
            for (size_t i = 0; i < msg->pruned_count; i++)
                dedup_remove (self->dedup, msg->pruned_keys[i], strlen (msg->pruned_keys[i]), msg->pruned_seqs[i]);
            herald_info ("old events pruned", "count=%zu", msg->pruned_count);
            break;
        case INDEX_APPLIED:
        case INDEX_SERVING:
        case INDEX_RELEASE:
            break;
        case INDEX_BACKLOG: {
            int c = herald_config_channel_index (self->config, msg->text);
            if (c >= 0)
                self->chans[c].backlog = true;
            break;
        }
        case INDEX_SHARE:
            s_share (self, msg);
            break;
        case INDEX_FAILED: {
            char quoted[2100];
            herald_error ("store index failed: stopping", "error=%s",
                          herald_log_quote (msg->error, quoted, sizeof quoted));
            self->failed = true;
            break;
        }
    }
    index_msg_destroy (&msg);
}

//  --------------------------------------------------------------------------
//  Time

int64_t
core_tick (core_t *self, int64_t now)
{
    const herald_broker_config_t *cfg = &self->config->broker;
    task_t *task;
    while ((task = dispatch_expired (self->dispatch, now))) {
        char error[128];
        snprintf (error, sizeof error, "lease expired after %lld ms without an answer",
                  (long long) self->config->channels[task->channel].lease_ms);
        herald_metrics_delivery (self->io.metrics, task->channel, HERALD_DELIVERY_LEASE_EXPIRED);
        s_attempt_failed (self, task, "lease-expired", error, 0, false, false, now);
    }
    dispatch_promote (self->dispatch, now);
    s_blocked_workers (self, now);
    s_retry_outcomes (self);
    if (now >= self->next_heartbeat) {
        int64_t silence_limit = cfg->heartbeat_ms * cfg->heartbeat_liveness;
        for (int i = 0; ; ) {
            worker_t *worker = dispatch_worker_at (self->dispatch, i);
            if (!worker)
                break;
            if (now - worker->last_recv > silence_limit) {
                char why[96];
                snprintf (why, sizeof why, "silent for %lld ms (heartbeat)", (long long) (now - worker->last_recv));
                s_worker_lost (self, &worker, why, now);
                continue;   /* the table was compacted: same index, next worker */
            }
            if (now - worker->last_send >= cfg->heartbeat_ms) {
                hp_msg_t beat = { .command = HP_HEARTBEAT };
                if (self->io.to_worker (self->io.ctx, worker->identity, worker->identity_len, &beat) == 0)
                    worker->last_send = now;
            }
            i++;
        }
        self->next_heartbeat = now + cfg->heartbeat_ms;
    }
    if (self->shared)
        s_tell_serving (self);
    s_refill (self);
    if (!self->stopping)
        s_dispatch (self, now);
    int64_t next = self->next_heartbeat;
    int64_t deadline = dispatch_next_deadline (self->dispatch, now);
    if (deadline < next)
        next = deadline;
    if (self->outcomes_since && self->outcomes_since + S_OUTCOME_FLUSH_MS < next)
        next = self->outcomes_since + S_OUTCOME_FLUSH_MS;
    if (self->stopping && now + 50 < next)
        next = now + 50;
    if (self->held_outcomes && now + 1000 < next)
        next = now + 1000;
    return next;
}

bool
core_flush_due (core_t *self, int64_t now, bool journal_pending)
{
    bool due = self->events_staged || self->stopping
            || (self->outcomes_since && now >= self->outcomes_since + S_OUTCOME_FLUSH_MS);
    (void) journal_pending;
    if (due) {
        self->events_staged = false;
        self->outcomes_since = 0;
    }
    return due;
}

void
core_stop (core_t *self, int64_t now)
{
    if (self->stopping)
        return;
    self->stopping = true;
    self->stop_deadline = now + self->config->broker.shutdown_timeout_ms;
    size_t in_flight = 0;
    for (int c = 0; c < self->config->channel_count; c++) {
        dispatch_counts_t counts;
        dispatch_counts (self->dispatch, c, &counts);
        in_flight += counts.in_flight;
    }
    herald_info ("stopping: no new events; waiting for deliveries in flight", "in_flight=%zu timeout_ms=%lld",
                 in_flight, (long long) self->config->broker.shutdown_timeout_ms);
}

bool
core_stopped (core_t *self, int64_t now)
{
    if (!self->stopping)
        return false;
    size_t in_flight = 0;
    for (int c = 0; c < self->config->channel_count; c++) {
        dispatch_counts_t counts;
        dispatch_counts (self->dispatch, c, &counts);
        in_flight += counts.in_flight;
    }
    bool drained = in_flight == 0 && self->ack_count == 0 && !self->lookups && !self->admins;
    if (drained)
        return true;
    if (now >= self->stop_deadline) {
        herald_warn ("shutdown timeout: leaving deliveries in flight to be redelivered",
                     "in_flight=%zu unanswered_publishes=%zu", in_flight, self->ack_count);
        return true;
    }
    return false;
}

/*  Producers are read while fewer than two batches of events wait for
    the disk: one being written, one being staged. Beyond that a producer
    feels backpressure (its sends wait), as with a full socket. */
bool
core_accepting (core_t *self)
{
    return !self->stopping && !self->failed
        && self->ack_count + self->lookup_count < 2 * (size_t) self->config->broker.batch_max;
}

bool
core_failed (core_t *self)
{
    return self->failed;
}

void
core_counts (core_t *self, int channel, core_channel_counts_t *counts)
{
    dispatch_counts_t d;
    dispatch_counts (self->dispatch, channel, &d);
    s_chan_t *ch = &self->chans[channel];
    *counts = (core_channel_counts_t) { .open = ch->open, .done = ch->done, .dead = ch->dead,
                                        .in_flight = d.in_flight, .delayed = d.delayed, .ready = d.ready,
                                        .workers = d.workers };
}

int64_t
core_events_accepted (core_t *self)
{
    return self->events_accepted;
}

void
core_config_changed (core_t *self, const int *event_map, int64_t now)
{
    for (s_lookup_t *lookup = self->lookups; lookup; lookup = lookup->next)
        if (lookup->check.type_index >= 0)
            lookup->check.type_index = event_map[lookup->check.type_index];
    dispatch_reconfigure (self->dispatch);
    if (self->next_heartbeat > now + self->config->broker.heartbeat_ms)
        self->next_heartbeat = now + self->config->broker.heartbeat_ms;
}
