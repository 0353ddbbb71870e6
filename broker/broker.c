/*  broker: the loop and its named actions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <zmq.h>

#include "broker_internal.h"
#include "herald_clock.h"
#include "herald_log.h"
#include "herald_wire.h"

#define DRAIN_WORKER_MAX    8192    /* worker messages handled per turn */
#define ADMIN_MAX           16      /* admin requests handled per turn */

#define PRUNE_EVERY_MS      60000
#define OUTBOX_MAX          20000   /* parked replies before reading producers pauses */

/*  Random numbers: xorshift128+, seeded from getrandom. */

uint64_t
broker_random (broker_t *self)
{
    uint64_t s1 = self->rng[0];
    const uint64_t s0 = self->rng[1];
    self->rng[0] = s0;
    s1 ^= s1 << 23;
    self->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return self->rng[1] + s0;
}

static double
s_random01 (broker_t *self)
{
    return (double) (broker_random (self) >> 11) / 9007199254740992.0;
}

/*  Sending. */

int
broker_send (void *socket, const char *identity, size_t identity_len, const hp_msg_t *msg)
{
    return hw_send (socket, hp_strn (identity, identity_len), msg, ZMQ_DONTWAIT);
}

/*  Outcomes waiting for the commit. */

static outcome_t *
s_outcome_new (broker_t *self, outcome_kind_t kind, const task_t *task)
{
    if (self->outcome_count == self->outcome_cap) {
        size_t cap = self->outcome_cap? self->outcome_cap * 2: 1024;
        outcome_t *grown = realloc (self->outcomes, cap * sizeof *grown);
        if (!grown)
            return NULL;
        self->outcomes = grown;
        self->outcome_cap = cap;
    }
    if (self->outcome_count == 0)
        self->outcomes_since = herald_clock_mono_ms ();
    outcome_t *outcome = &self->outcomes[self->outcome_count++];
    outcome->kind = kind;
    outcome->rowid = task->rowid;
    outcome->attempts = task->attempts;
    outcome->not_before = 0;
    outcome->at = herald_clock_wall_ms ();
    outcome->log_attempt = false;
    outcome->outcome[0] = '\0';
    outcome->error[0] = '\0';
    return outcome;
}

/*  A delivery attempt ended without success: retry later or give up. */
static void
s_attempt_failed (broker_t *self, task_t *task, const char *outcome_name, const char *error,
                  int64_t requested_delay_ms, bool permanent, int64_t now)
{
    const herald_channel_t *channel = &self->config->channels[task->channel];
    bool dead = permanent || task->attempts >= (uint32_t) channel->max_attempts;
    outcome_t *outcome = s_outcome_new (self, dead? OUTCOME_DEAD: OUTCOME_RESCHEDULE, task);
    if (!outcome) {
        herald_error ("out of memory recording an outcome", "task_id=%s", task->key);
        dispatch_enqueue (self->dispatch, task, now + STORE_RETRY_MS, now, false);
        return;
    }
    outcome->log_attempt = true;
    snprintf (outcome->outcome, sizeof outcome->outcome, "%s", outcome_name);
    char quoted[HP_MAX_TEXT + 16];
    if (dead) {
        if (permanent)
            snprintf (outcome->error, sizeof outcome->error, "%s", error);
        else
            snprintf (outcome->error, sizeof outcome->error, "gave up after %u attempts: %s",
                      task->attempts, error);
        herald_warn ("task dead", "task_id=%s channel=%s attempt=%u error=%s", task->key,
                     channel->name, task->attempts,
                     herald_log_quote (outcome->error, quoted, sizeof quoted));
        self->stats[task->channel].open--;
        self->stats[task->channel].dead++;
        /*  Its history row is the attempt log; the error stays on the task. */
        task_destroy (&task);
        return;
    }
    int64_t delay = requested_delay_ms > 0? requested_delay_ms
                  : dispatch_backoff_ms (channel, task->attempts, s_random01 (self));
    outcome->not_before = outcome->at + delay;
    snprintf (outcome->error, sizeof outcome->error, "%s", error);
    herald_info ("task will retry", "task_id=%s channel=%s attempt=%u outcome=%s delay_ms=%lld error=%s",
                 task->key, channel->name, task->attempts, outcome_name, (long long) delay,
                 herald_log_quote (error, quoted, sizeof quoted));
    dispatch_enqueue (self->dispatch, task, now + delay, now, false);
}

/*  Takes back every lease of a worker that died or vanished. */
static void
s_worker_lost (broker_t *self, worker_t **worker_p, const char *why, int64_t now)
{
    worker_t *worker = *worker_p;
    herald_warn ("worker lost", "worker=%s channel=%s leases=%u reason=\"%s\"", worker->name,
                 self->config->channels[worker->channel].name, worker->lease_count, why);
    /*  Which of its tasks killed it cannot be told when it held several:
        none is charged, all become suspects and are delivered alone from
        now on. A worker lost while holding one task alone charges that task,
        so a payload that kills every worker ends dead after its attempts,
        without dragging innocent tasks along. */
    bool alone = worker->lease_count == 1;
    task_t *task;
    while ((task = dispatch_worker_pop_lease (self->dispatch, worker))) {
        task->suspect = true;
        if (alone)
            s_attempt_failed (self, task, "worker-lost", why, 0, false, now);
        else {
            task->attempts--;
            dispatch_enqueue (self->dispatch, task, 0, now, true);
        }
    }
    dispatch_worker_remove (self->dispatch, worker_p);
}

/*  A worker leaving in good order: its unfinished leases were not tried
    to the end, so they go back at the head of the queue uncharged. */
static void
s_worker_leaving (broker_t *self, worker_t **worker_p, int64_t now)
{
    worker_t *worker = *worker_p;
    herald_info ("worker left", "worker=%s channel=%s handed_back=%u", worker->name,
                 self->config->channels[worker->channel].name, worker->lease_count);
    task_t *task;
    while ((task = dispatch_worker_pop_lease (self->dispatch, worker))) {
        task->attempts--;
        dispatch_enqueue (self->dispatch, task, 0, now, true);
    }
    dispatch_worker_remove (self->dispatch, worker_p);
}

/*  Worker messages. */

static void
s_register_worker (broker_t *self, const hw_msg_t *in, const hp_msg_t *msg, int64_t now)
{
    char channel_name[HERALD_NAME_MAX], name[HP_MAX_ID + 1];
    hp_str_copy (msg->channel, channel_name, sizeof channel_name);
    hp_str_copy (msg->worker, name, sizeof name);
    if (!security_may_serve (self->security, self->workers, in, channel_name))
        return;
    int channel = herald_config_channel_index (self->config, channel_name);
    if (channel < 0) {
        herald_warn ("worker refused: unknown channel", "worker=%s channel=%s", name, channel_name);
        return;
    }
    worker_t *existing = dispatch_worker_find (self->dispatch, in->identity.ptr, in->identity.len);
    if (existing)
        s_worker_leaving (self, &existing, now);
    worker_t *worker = dispatch_worker_add (self->dispatch, in->identity.ptr, in->identity.len,
                                            channel, msg->capacity, name, now);
    if (!worker) {
        herald_error ("worker refused: too many workers", "worker=%s", name);
        return;
    }
    herald_info ("worker registered", "worker=%s channel=%s capacity=%u", name, channel_name,
                 msg->capacity);
}

static void
s_task_answered (broker_t *self, worker_t *worker, const hp_msg_t *msg, int64_t now)
{
    task_t *task = dispatch_complete (self->dispatch, worker, msg->task_id, msg->attempt);
    if (!task) {
        char id[HP_MAX_ID + 1];
        herald_info ("stale answer ignored", "worker=%s task_id=%s attempt=%u answer=%s",
                     worker->name, hp_str_copy (msg->task_id, id, sizeof id), msg->attempt,
                     hp_command_name (msg->command));
        return;
    }
    char error[HP_MAX_TEXT + 1];
    hp_str_copy (msg->text, error, sizeof error);
    if (msg->command == HP_DONE) {
        outcome_t *outcome = s_outcome_new (self, OUTCOME_DONE, task);
        if (!outcome) {
            dispatch_enqueue (self->dispatch, task, now + STORE_RETRY_MS, now, false);
            return;
        }
        herald_debug ("task done", "task_id=%s attempt=%u", task->key, task->attempts);
        self->stats[task->channel].open--;
        self->stats[task->channel].done++;
        task_destroy (&task);
    }
    else
    if (msg->command == HP_RETRY)
        s_attempt_failed (self, task, "retry", error, msg->delay_ms, false, now);
    else
    if (msg->command == HP_THROTTLED) {
        int64_t delay = msg->delay_ms > 0? msg->delay_ms: 1000;
        dispatch_pause (self->dispatch, task->channel, now + delay);
        s_attempt_failed (self, task, "throttled", error, delay, false, now);
    }
    else
        s_attempt_failed (self, task, "failed", error, 0, true, now);
}

static void
s_worker_message (broker_t *self, const hw_msg_t *in, int64_t now)
{
    hp_msg_t msg;
    hp_error_t err;
    if (hw_decode (in, &msg, &err) != 0) {
        herald_warn ("malformed worker message dropped", "code=%d error=\"%s\"", err.code, err.text);
        return;
    }
    if (msg.command == HP_READY) {
        s_register_worker (self, in, &msg, now);
        return;
    }
    worker_t *worker = dispatch_worker_find (self->dispatch, in->identity.ptr, in->identity.len);
    if (!worker) {
        /*  Not registered here (we restarted, or it was declared dead):
            it must say READY again. */
        if (msg.command != HP_DISCONNECT) {
            hp_msg_t reply = { .command = HP_DISCONNECT };
            broker_send (self->workers, in->identity.ptr, in->identity.len, &reply);
        }
        return;
    }
    worker->last_recv = now;
    switch (msg.command) {
        case HP_DONE:
        case HP_RETRY:
        case HP_THROTTLED:
        case HP_FAILED:
            s_task_answered (self, worker, &msg, now);
            break;
        case HP_HEARTBEAT:
            break;
        case HP_DISCONNECT:
            s_worker_leaving (self, &worker, now);
            break;
        default:
            herald_warn ("unexpected worker command dropped", "command=%s",
                         hp_command_name (msg.command));
    }
}

static void
s_drain_workers (broker_t *self, int64_t now)
{
    for (int i = 0; i < DRAIN_WORKER_MAX; i++) {
        hw_msg_t in;
        int rc = hw_recv (self->workers, true, &in, ZMQ_DONTWAIT);
        if (rc == 0 && security_admit (self->security, ENDPOINT_WORKERS, &in))
            s_worker_message (self, &in, now);
        hw_msg_close (&in);
        if (rc != 0)
            break;
    }
}





/*  Dispatch: as many deliveries as credit, limits and rate allow. */

static void
s_dispatch (broker_t *self, int64_t now)
{
    task_t *task;
    while ((task = dispatch_next (self->dispatch, now))) {
        worker_t *worker = task->worker;
        char attempt_note[16];
        snprintf (attempt_note, sizeof attempt_note, "%u", task->attempts);
        hp_msg_t msg = {
            .command = HP_TASK,
            .task_id = hp_str (task->key),
            .attempt = task->attempts,
            .channel = hp_str (self->config->channels[task->channel].name),
            .body = hp_strn (task->event->data, task->event->len),
        };
        if (broker_send (self->workers, worker->identity, worker->identity_len, &msg) == 0) {
            worker->last_send = now;
            continue;
        }
        /*  The worker is gone (or its pipe is full): take the task back
            uncharged. A worker stopping in good order sends DISCONNECT and
            closes: the DISCONNECT may still wait in our queue, so read it
            before deciding the worker was lost. */
        int err = errno;
        char identity[sizeof worker->identity];
        size_t identity_len = worker->identity_len;
        memcpy (identity, worker->identity, identity_len);
        task_t *undo = dispatch_complete (self->dispatch, worker, hp_str (task->key), task->attempts);
        if (undo) {
            undo->attempts--;
            dispatch_enqueue (self->dispatch, undo, 0, now, true);
        }
        s_drain_workers (self, now);
        worker = dispatch_worker_find (self->dispatch, identity, identity_len);
        if (worker)
            s_worker_lost (self, &worker, err == EHOSTUNREACH? "worker unreachable": "worker pipe full",
                           now);
    }
}

/*  Timers: heartbeats, silent workers, expired leases, due retries, pruning. */

static void
s_timers (broker_t *self, int64_t now)
{
    const herald_broker_config_t *cfg = &self->config->broker;
    task_t *task;
    while ((task = dispatch_expired (self->dispatch, now))) {
        char error[128];
        snprintf (error, sizeof error, "lease expired after %lld ms without an answer",
                  (long long) self->config->channels[task->channel].lease_ms);
        s_attempt_failed (self, task, "lease-expired", error, 0, false, now);
    }
    dispatch_promote (self->dispatch, now);
    if (now >= self->next_heartbeat) {
        int64_t silence_limit = cfg->heartbeat_ms * cfg->heartbeat_liveness;
        for (int i = 0; ; ) {
            worker_t *worker = dispatch_worker_at (self->dispatch, i);
            if (!worker)
                break;
            if (now - worker->last_recv > silence_limit) {
                char why[96];
                snprintf (why, sizeof why, "silent for %lld ms (heartbeat)",
                          (long long) (now - worker->last_recv));
                s_worker_lost (self, &worker, why, now);
                continue;   /* the table was compacted: same index, next worker */
            }
            if (now - worker->last_send >= cfg->heartbeat_ms) {
                hp_msg_t beat = { .command = HP_HEARTBEAT };
                if (broker_send (self->workers, worker->identity, worker->identity_len, &beat) == 0)
                    worker->last_send = now;
            }
            i++;
        }
        self->next_heartbeat = now + cfg->heartbeat_ms;
    }
    if (now >= self->next_prune) {
        int64_t cutoff = herald_clock_wall_ms () - cfg->dedup_retention_ms;
        int pruned = store_prune (self->store, cutoff, 1000);
        if (pruned > 0)
            herald_info ("old events pruned", "count=%d", pruned);
        self->next_prune = now + (pruned == 1000? 1000: PRUNE_EVERY_MS);
    }
}

/*  Admin requests are served between commits, so they see committed state. */
static void
s_drain_admin (broker_t *self)
{
    for (int i = 0; i < ADMIN_MAX; i++) {
        hw_msg_t in;
        if (hw_recv (self->admin, true, &in, ZMQ_DONTWAIT) != 0) {
            hw_msg_close (&in);
            break;
        }
        if (!security_admit (self->security, ENDPOINT_ADMIN, &in)) {
            hw_msg_close (&in);
            continue;
        }
        hp_msg_t msg;
        hp_error_t err;
        hp_msg_t reply = { .command = HP_ADMIN_REPLY };
        char *body = NULL;
        char error_body[300];
        bool decoded = hw_decode (&in, &msg, &err) == 0;
        if (!decoded || msg.command != HP_ADMIN) {
            if (decoded)
                snprintf (err.text, sizeof err.text, "command %s is not accepted on the admin endpoint",
                          hp_command_name (msg.command));
            snprintf (error_body, sizeof error_body, "{\"error\": \"%s\"}", err.text);
            reply.corr = msg.corr.ptr? msg.corr: hp_str ("-");
            reply.code = HP_CODE_BAD_REQUEST;
            reply.body = hp_str (error_body);
        }
        else {
            reply.corr = msg.corr;
            reply.code = security_admin_check (self->security, &in, msg.verb, &body);
            if (reply.code == 0)
                reply.code = admin_handle (self, msg.verb, msg.body, &body);
            reply.body = hp_str (body? body: "{}");
        }
        broker_send (self->admin, in.identity.ptr, in.identity.len, &reply);
        free (body);
        hw_msg_close (&in);
    }
}

/*  Construction. */

static void
s_recover_counts (void *ctx, const char *channel, const store_counts_t *counts)
{
    broker_t *self = ctx;
    int c = herald_config_channel_index (self->config, channel);
    if (c < 0)
        return;     /* tasks of a channel no longer configured stay in the store */
    self->stats[c] = (channel_stats_t) { .open = counts->pending, .done = counts->done,
                                         .dead = counts->dead, .loaded_upto = 0,
                                         .backlog = counts->pending > 0 };
    if (counts->pending > 0)
        herald_info ("recovering unfinished tasks", "channel=%s pending=%lld retrying=%lld",
                     channel, (long long) counts->pending, (long long) counts->retrying);
}

static int
s_recover (broker_t *self, char *err, size_t errlen)
{
    if (store_count (self->store, herald_clock_wall_ms (), s_recover_counts, self) != 0) {
        snprintf (err, errlen, "%s", store_errstr (self->store));
        return -1;
    }
    broker_refill (self, herald_clock_mono_ms ());
    return 0;
}

broker_t *
broker_new (const herald_config_t *config, broker_status_t *status, char *err, size_t errlen)
{
    broker_t *self = calloc (1, sizeof *self);
    *status = BROKER_ERR_INTERNAL;
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->config = config;
    if (getrandom (self->rng, sizeof self->rng, 0) != (ssize_t) sizeof self->rng)
        self->rng[0] = (uint64_t) herald_clock_wall_ms (), self->rng[1] = 0x9e3779b97f4a7c15ULL;
    self->batch = calloc ((size_t) config->broker.batch_max, sizeof *self->batch);
    self->dispatch = dispatch_new (config);
    self->ctx = zmq_ctx_new ();
    if (!self->batch || !self->dispatch || !self->ctx) {
        snprintf (err, errlen, "out of memory");
        broker_destroy (&self);
        return NULL;
    }
    self->security = security_new (self->ctx, config, err, errlen);
    if (!self->security) {
        *status = BROKER_ERR_CONFIG;
        broker_destroy (&self);
        return NULL;
    }
    self->store = store_open (config->broker.store, err, errlen);
    if (!self->store) {
        *status = BROKER_ERR_STORE;
        broker_destroy (&self);
        return NULL;
    }
    if (s_recover (self, err, errlen) != 0) {
        *status = BROKER_ERR_STORE;
        broker_destroy (&self);
        return NULL;
    }
    /*  Transport cap: above max_event_bytes we still want to answer with a
        NACK 413, so only absurd messages are cut off by libzmq itself. */
    long long transport_max = (long long) config->broker.max_event_bytes * 4 + 65536;
    hw_options_t options = { .hwm = config->broker.hwm, .max_msg_size = transport_max,
                             .linger_ms = 1000 };
    hw_options_t admin_options = { .hwm = 1000, .max_msg_size = 1 << 20, .linger_ms = 1000 };
    hw_options_t producer_options = options, worker_options = options;
    security_socket_options (self->security, ENDPOINT_PRODUCERS, &producer_options);
    security_socket_options (self->security, ENDPOINT_WORKERS, &worker_options);
    security_socket_options (self->security, ENDPOINT_ADMIN, &admin_options);
    self->producers = hw_socket_new (self->ctx, HW_PRODUCER_ROUTER, config->broker.producers,
                                     &producer_options, err, errlen);
    if (self->producers)
        self->workers = hw_socket_new (self->ctx, HW_WORKER_ROUTER, config->broker.workers,
                                       &worker_options, err, errlen);
    if (self->workers)
        self->admin = hw_socket_new (self->ctx, HW_ADMIN_ROUTER, config->broker.admin,
                                     &admin_options, err, errlen);
    if (!self->admin) {
        *status = BROKER_ERR_BIND;
        broker_destroy (&self);
        return NULL;
    }
    self->started_mono = herald_clock_mono_ms ();
    self->next_heartbeat = self->started_mono + config->broker.heartbeat_ms;
    self->next_prune = self->started_mono + 5000;
    *status = BROKER_OK;
    return self;
}

void
broker_destroy (broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_t *self = *self_p;
    for (int i = 0; i < self->batch_count; i++)
        if (self->batch[i].event && --self->batch[i].event->refs <= 0)
            free (self->batch[i].event);
    free (self->batch);
    free (self->outcomes);
    while (self->outbox_head) {
        reply_t *next = self->outbox_head->next;
        free (self->outbox_head);
        self->outbox_head = next;
    }
    dispatch_destroy (&self->dispatch);
    if (self->producers)
        zmq_close (self->producers);
    if (self->workers)
        zmq_close (self->workers);
    if (self->admin)
        zmq_close (self->admin);
    security_destroy (&self->security);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    store_destroy (&self->store);
    free (self);
    *self_p = NULL;
}

void
broker_watch_reload (broker_t *self, volatile sig_atomic_t *reload)
{
    self->reload = reload;
}

/*  The loop. */

static long
s_poll_timeout (broker_t *self, int64_t now, bool stopping)
{
    int64_t next = self->next_heartbeat;
    int64_t deadline = dispatch_next_deadline (self->dispatch, now);
    if (deadline < next)
        next = deadline;
    if (self->outbox_head || (self->store_full && self->outcome_count > 0)) {
        int64_t soon = now + (self->outbox_head? 5: STORE_RETRY_MS);
        if (soon < next)
            next = soon;
    }
    if (self->outcome_count > 0 && !self->store_full && self->outcomes_since + OUTCOME_FLUSH_MS < next)
        next = self->outcomes_since + OUTCOME_FLUSH_MS;
    if (stopping && now + 50 < next)
        next = now + 50;
    if (next <= now)
        return 0;
    return (long) (next - now);
}

broker_status_t
broker_run (broker_t *self, volatile sig_atomic_t *stop)
{
    const herald_broker_config_t *cfg = &self->config->broker;
    herald_info ("broker ready", "producers=%s workers=%s admin=%s store=%s", cfg->producers,
                 cfg->workers, cfg->admin, cfg->store);
    bool stopping = false;
    int64_t stop_deadline = 0;
    while (self->fatal == BROKER_OK) {
        if (self->reload && *self->reload) {
            *self->reload = 0;
            security_reload (self->security);
        }
        int64_t now = herald_clock_mono_ms ();
        if (*stop && !stopping) {
            stopping = true;
            stop_deadline = now + cfg->shutdown_timeout_ms;
            dispatch_counts_t counts;
            size_t in_flight = 0;
            for (int c = 0; c < self->config->channel_count; c++) {
                dispatch_counts (self->dispatch, c, &counts);
                in_flight += counts.in_flight;
            }
            herald_info ("stopping: no new events; waiting for deliveries in flight",
                         "in_flight=%zu timeout_ms=%lld", in_flight, (long long) cfg->shutdown_timeout_ms);
        }
        if (stopping) {
            size_t in_flight = 0;
            dispatch_counts_t counts;
            for (int c = 0; c < self->config->channel_count; c++) {
                dispatch_counts (self->dispatch, c, &counts);
                in_flight += counts.in_flight;
            }
            bool drained = in_flight == 0 && self->outcome_count == 0 && !self->outbox_head;
            if (drained || now >= stop_deadline) {
                if (!drained)
                    herald_warn ("shutdown timeout: leaving deliveries in flight to be redelivered",
                                 "in_flight=%zu", in_flight);
                break;
            }
        }
        zmq_pollitem_t items[] = {
            { self->workers, 0, ZMQ_POLLIN, 0 },
            { self->admin, 0, ZMQ_POLLIN, 0 },
            { self->producers, 0, ZMQ_POLLIN, 0 },
        };
        /*  Replies parked for producers that do not read their ACKs are
            bounded: at OUTBOX_MAX the broker stops reading new events. */
        int count = (stopping || self->outbox_count >= OUTBOX_MAX)? 2: 3;
        int rc = zmq_poll (items, count, s_poll_timeout (self, now, stopping));
        if (rc < 0 && errno != EINTR) {
            herald_error ("poll failed", "error=\"%s\"", zmq_strerror (errno));
            self->fatal = BROKER_ERR_INTERNAL;
            break;
        }
        now = herald_clock_mono_ms ();
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            s_drain_workers (self, now);
        if (rc > 0 && count == 3 && (items[2].revents & ZMQ_POLLIN))
            broker_drain_producers (self);
        /*  Admin requests read the store: they see every outcome so far. */
        bool admin_waiting = rc > 0 && (items[1].revents & ZMQ_POLLIN);
        broker_commit (self, now, stopping || admin_waiting);
        if (self->fatal != BROKER_OK)
            break;
        broker_flush_outbox (self);
        if (admin_waiting)
            s_drain_admin (self);
        s_timers (self, now);
        broker_refill (self, now);
        if (!stopping)
            s_dispatch (self, now);
    }
    /*  Whatever is staged gets committed (or refused) before we go. */
    broker_commit (self, herald_clock_mono_ms (), true);
    broker_flush_outbox (self);
    /*  Give producers a moment to read the last replies: a peer that sees
        the connection close drops what it had not read yet. */
    int64_t grace_end = herald_clock_mono_ms () + 300;
    while (self->outbox_head && herald_clock_mono_ms () < grace_end) {
        zmq_poll (NULL, 0, 5);
        broker_flush_outbox (self);
    }
    zmq_poll (NULL, 0, 300);
    herald_info ("broker stopped", "events_accepted=%lld", (long long) self->events_accepted);
    return self->fatal;
}
