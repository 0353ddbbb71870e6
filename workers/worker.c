/*  herald_worker: the worker runtime (contract in worker.h, wire in
    proto/PROTOCOL.md). One loop: compute the next deadline (heartbeat due,
    broker silence, stop budget, the driver's own timers), zmq_poll until
    then, handle what arrived, run the timers. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver_set.h"
#include "herald_clock.h"
#include "herald_config_reload.h"
#include "herald_log.h"
#include "herald_ratelimit.h"
#include "herald_redact.h"
#include "herald_wire.h"
#include "worker.h"

#define WORKER_RECONNECT_MAX_MS 30000   /* reconnect backoff cap */
#define WORKER_POLL_CAP_MS      100     /* longest poll: how late a stop set by another thread is seen */
#define WORKER_DRAIN_BATCH      1024    /* messages handled per poll round before timers run */
#define WORKER_STOP_LINGER_MS   1000    /* lets the final DISCONNECT get out */
#define WORKER_MAX_ITEMS        4096    /* poll items an asynchronous driver may use */
#define WORKER_ENDPOINT_MAX     256

/*  A task received while an asynchronous driver is at capacity. */
typedef struct {
    char task_id[HP_MAX_ID + 1];
    uint32_t attempt;
    uint64_t lease;             /* echoed in the result (the broker's fencing token) */
    int64_t received;           /* monotonic ms: the broker's lease runs from about then */
    char *event;                /* owned, NUL-terminated */
    size_t event_len;
} worker_task_t;

struct _herald_worker_t {
    const herald_config_t *config;      /* the current driver's (borrowed at start, then a reload's) */
    const herald_channel_t *channel;    /* inside config */
    driver_set_t *drivers;              /* the current instance, and those a reload replaced */
    bool ops_fixed;                     /* the driver was given (tests): a reload keeps its ops */
    bool async;                         /* the current driver has poll_items/progress */
    volatile sig_atomic_t *reload;      /* set by SIGHUP: read the configuration again, or NULL */
    bool resession;                     /* capacity or message cap changed: register again once idle */
    char endpoint[WORKER_ENDPOINT_MAX];
    char name[HP_MAX_ID + 1];           /* "hostname:pid", announced in READY */
    uint32_t credit;                    /* announced in READY: capacity + prefetch, the queue's size */
    uint32_t capacity;                  /* deliveries run at once: an asynchronous driver's in
                                           progress, a synchronous one's in one round */
    uint32_t round_started;             /* synchronous drivers: started since the last flush */
    int64_t lease_ms;                   /* the channel's lease: a task waits at most half of it here */
    bool release_all;                   /* a delivery was throttled: give back what has not started */
    herald_ratelimit_t release_log;     /* "tasks released" lines */
    void *ctx;                          /* own ZeroMQ context */
    void *socket;                       /* DEALER, NULL when a reconnect failed */
    hw_options_t options;
    int64_t heartbeat_ms;
    int64_t silence_ms;                 /* heartbeat_liveness x heartbeat_ms */
    int64_t now;                        /* monotonic ms, refreshed once per loop round */
    int64_t last_sent;                  /* when we last sent anything */
    int64_t silence_deadline;           /* reconnect if nothing arrives by then */
    int64_t backoff_ms;                 /* extra wait added after each reconnect */
    bool ready_pending;                 /* READY could not be sent yet: send on next tick */
    bool session_live;                  /* the broker sent something other than DISCONNECT since READY */
    bool stopping;
    int64_t stop_deadline;
    worker_task_t *queue;               /* bounded FIFO (async drivers), credit entries */
    uint32_t queue_head;
    uint32_t queue_count;
    char *event_buf;                    /* NUL-terminated copy of the current task's event */
    size_t event_cap;
    char *results;                      /* RESULTS entries waiting for the end of the round */
    size_t results_len, results_cap;
    uint32_t results_count;
    zmq_pollitem_t *items;              /* [0] the socket, then the driver's */
    int item_max;
    bool curve;                         /* CURVE: keys and server_key are set */
    herald_keypair_t keys;              /* CURVE: this worker's key pair */
    char server_key[HERALD_KEY_LEN + 1];/* CURVE: the broker's public key */
    hw_watch_t *watch;                  /* the socket's handshakes: why a connection fails, for the log */
};

static void s_on_complete (void *ctx, const char *task_id, uint32_t attempt, uint64_t lease,
                           const hd_result_t *result);
static void s_add_result (herald_worker_t *self, const hp_result_t *entry);

static int64_t
s_min (int64_t a, int64_t b)
{
    return a < b? a: b;
}

static const char *
s_outcome_name (hd_outcome_t outcome)
{
    switch (outcome) {
        case HD_DONE:      return "done";
        case HD_RETRY:     return "retry";
        case HD_THROTTLED: return "throttled";
        case HD_FAILED:    return "failed";
    }
    return "failed";
}

//  Sends msg without blocking (a full pipe means the broker is gone or
//  drowning: it will requeue what we could not report).
static int
s_send (herald_worker_t *self, const hp_msg_t *msg)
{
    if (!self->socket)
        return -1;
    if (hw_send (self->socket, (hp_str_t) { NULL, 0 }, msg, ZMQ_DONTWAIT) != 0) {
        char q[128];
        herald_warn ("send failed", "command=%s endpoint=%s error=%s",
                     hp_command_name (msg->command), self->endpoint,
                     herald_log_quote (zmq_strerror (errno), q, sizeof q));
        return -1;
    }
    self->last_sent = self->now;
    return 0;
}

static void
s_send_ready (herald_worker_t *self)
{
    hp_msg_t msg = {
        .command = HP_READY,
        .channel = hp_str (self->channel->name),
        .capacity = self->credit,
        .worker = hp_str (self->name),
        .max_batch = self->credit < HP_MAX_BATCH? self->credit: HP_MAX_BATCH
    };
    self->ready_pending = s_send (self, &msg) != 0;
    self->session_live = false;
    if (!self->ready_pending)
        herald_info ("registered", "channel=%s capacity=%u credit=%u worker=%s endpoint=%s",
                     self->channel->name, self->capacity, self->credit, self->name, self->endpoint);
}

static void
s_drop_queue (herald_worker_t *self)
{
    while (self->queue_count > 0) {
        worker_task_t *task = &self->queue[self->queue_head];
        free (task->event);
        task->event = NULL;
        self->queue_head = (self->queue_head + 1) % self->credit;
        self->queue_count--;
    }
    self->queue_head = 0;
}

static int
s_connect (herald_worker_t *self, char *err, size_t errlen)
{
    hw_options_t options = self->options;
    if (self->curve) {
        options.curve_public = self->keys.public_key;
        options.curve_secret = self->keys.secret_key;
        options.curve_server = self->server_key;
    }
    /*  Without keys too: a CURVE broker refuses us, and the log says why. */
    self->watch = hw_watch_new (self->ctx, &options);
    self->socket = hw_socket_new (self->ctx, HW_WORKER_DEALER, self->endpoint, &options, err, errlen);
    if (!self->socket)
        hw_watch_destroy (&self->watch);
    return self->socket? 0: -1;
}

static void
s_close_socket (herald_worker_t *self, int linger_ms)
{
    hw_watch_close (&self->watch, self->socket, linger_ms);
    self->socket = NULL;
}

//  The broker said nothing for too long: new socket (new identity), READY
//  again, and wait longer each time before giving up on it again.
static void
s_reconnect (herald_worker_t *self)
{
    char why[256];
    if (hw_watch_failed (self->watch, why, sizeof why)) {
        char q[sizeof why + 16];
        herald_error ("cannot connect to the broker", "channel=%s endpoint=%s error=%s",
                      self->channel->name, self->endpoint, herald_log_quote (why, q, sizeof q));
    }
    herald_warn ("broker silent, reconnecting", "channel=%s endpoint=%s silent_ms=%lld",
                 self->channel->name, self->endpoint,
                 (long long) (self->now - self->silence_deadline + self->silence_ms));
    s_close_socket (self, 0);
    s_drop_queue (self);     //  the broker requeues the leases of a worker it lost
    self->silence_deadline = self->now + self->silence_ms + self->backoff_ms;
    self->backoff_ms = s_min (self->backoff_ms * 2, WORKER_RECONNECT_MAX_MS);
    char err[HERALD_ERR_MAX];
    if (s_connect (self, err, sizeof err) != 0) {
        char q[HERALD_ERR_MAX];
        herald_error ("reconnect failed", "endpoint=%s error=%s", self->endpoint,
                      herald_log_quote (err, q, sizeof q));
        return;
    }
    self->last_sent = self->now;
    s_send_ready (self);
}

//  Sends the results gathered this round as one RESULTS message.
static void
s_flush_results (herald_worker_t *self)
{
    if (self->results_count == 0)
        return;
    if (!self->socket)
        herald_debug ("results dropped, not connected", "count=%u", self->results_count);
    else {
        hp_msg_t msg = { .command = HP_RESULTS, .batch = hp_strn (self->results, self->results_len) };
        s_send (self, &msg);
    }
    self->results_len = 0;
    self->results_count = 0;
}

//  Logs a delivery's outcome and adds it to this round's results. Its text
//  may quote a URL or what a server said: it leaves as one bounded
//  printable line without secrets.
static void
s_report (herald_worker_t *self, const char *task_id, uint32_t attempt, uint64_t lease,
          const hd_result_t *result)
{
    char text[HP_MAX_TEXT];
    herald_redact_bytes (result->text, strnlen (result->text, sizeof result->text),
                         text, sizeof text);
    hp_result_t entry = {
        .task_id = hp_str (task_id),
        .lease = lease,
        .text = hp_str (text),
        .delay_ms = result->delay_ms > 0 && (result->outcome == HD_RETRY || result->outcome == HD_THROTTLED)
                  ? result->delay_ms: 0,
        .outcome = result->outcome == HD_DONE? HP_OUTCOME_DONE
                 : result->outcome == HD_RETRY? HP_OUTCOME_RETRY
                 : result->outcome == HD_THROTTLED? HP_OUTCOME_THROTTLED: HP_OUTCOME_FAILED,
    };
    if (result->outcome == HD_DONE)
        herald_debug ("task", "channel=%s task_id=%s attempt=%u outcome=done", self->channel->name, task_id,
                      attempt);
    else {
        char q[HP_MAX_TEXT + 64];
        herald_warn ("delivery not done", "channel=%s task_id=%s attempt=%u outcome=%s delay_ms=%lld error=%s",
                     self->channel->name, task_id, attempt, s_outcome_name (result->outcome),
                     (long long) entry.delay_ms, herald_log_quote (text[0]? text: "-", q, sizeof q));
    }
    if (result->outcome == HD_THROTTLED)
        self->release_all = true;   //  the broker pauses the channel: nothing queued here may start
    s_add_result (self, &entry);
}

//  Adds entry to this round's results (a full batch leaves first).
static void
s_add_result (herald_worker_t *self, const hp_result_t *entry)
{
    size_t size = hp_result_size (entry);
    if (self->results_count == HP_MAX_BATCH
    ||  self->results_len + size > (size_t) self->config->broker.max_event_bytes + HP_BATCH_OVERHEAD)
        s_flush_results (self);
    if (self->results_len + size > self->results_cap) {
        size_t cap = self->results_cap? self->results_cap: 16384;
        while (cap < self->results_len + size)
            cap *= 2;
        char *grown = realloc (self->results, cap);
        if (!grown) {
            //  Lost: the broker's lease expires and it retries (same task id).
            char id[HP_MAX_ID + 1];
            herald_error ("out of memory: result dropped", "task_id=%s",
                          hp_str_copy (entry->task_id, id, sizeof id));
            return;
        }
        self->results = grown;
        self->results_cap = cap;
    }
    self->results_len += hp_result_put (self->results + self->results_len, entry);
    self->results_count++;
}

//  Gives back, unstarted, the queued tasks that have waited half the
//  channel's lease (all of them when `all`: a delivery was throttled), so
//  that none starts when the broker may be about to hand it to another
//  worker, and none runs into a downstream that asked for a pause. They
//  travel in a RESULTS message of their own: a broker from before
//  `released`, which refuses that frame as malformed, loses no other
//  result and takes them back when their leases end.
static void
s_release_queued (herald_worker_t *self, bool all)
{
    uint32_t count = 0;
    while (self->queue_count > 0) {
        worker_task_t *task = &self->queue[self->queue_head];
        if (!all && self->now - task->received < self->lease_ms / 2)
            break;      //  FIFO: the others arrived later
        if (count++ == 0)
            s_flush_results (self);
        hp_result_t entry = { .task_id = hp_str (task->task_id), .lease = task->lease,
                              .outcome = HP_OUTCOME_RELEASED,
                              .text = hp_str (all? "not started: the downstream throttled"
                                                 : "not started: waited half its lease") };
        s_add_result (self, &entry);
        free (task->event);
        task->event = NULL;
        self->queue_head = (self->queue_head + 1) % self->credit;
        self->queue_count--;
    }
    if (count == 0)
        return;
    s_flush_results (self);
    if (herald_ratelimit_allow (&self->release_log, self->now))
        herald_warn ("tasks given back unstarted", "channel=%s count=%u still_waiting=%u why=\"%s\" not_logged=%llu",
                     self->channel->name, count, self->queue_count,
                     all? "a delivery was throttled"
                        : "they waited half the lease behind busy deliveries: lower channels.NAME.prefetch",
                     (unsigned long long) self->release_log.suppressed);
}

static void
s_on_complete (void *ctx, const char *task_id, uint32_t attempt, uint64_t lease, const hd_result_t *result)
{
    s_report ((herald_worker_t *) ctx, task_id, attempt, lease, result);
}

//  event must be NUL-terminated at event[len].
static void
s_start_task (herald_worker_t *self, const char *task_id, uint32_t attempt, uint64_t lease,
              const char *event, size_t len)
{
    hd_task_t task = { .task_id = task_id, .attempt = attempt, .lease = lease,
                       .channel = self->channel->name, .event_json = event, .event_len = len };
    const hd_driver_ops_t *ops = driver_set_ops (self->drivers);
    if (!self->async)
        self->round_started++;
    if (ops->start (driver_set_current (self->drivers), &task) != 0) {
        hd_result_t result = { .outcome = HD_RETRY };
        snprintf (result.text, sizeof result.text, "driver %s could not start the delivery", ops->name);
        s_report (self, task_id, attempt, lease, &result);
    }
}

/*  A synchronous driver (file, noop) runs a round of at most capacity
    deliveries, made durable together by its flush: a round must stay
    short, because the loop heartbeats only between rounds. An
    asynchronous one runs capacity at once (deliveries a replaced driver
    still finishes count too). The rest of the credit waits in the queue. */
static bool
s_driver_has_room (herald_worker_t *self)
{
    return self->async? (uint32_t) driver_set_in_progress (self->drivers) < self->capacity
                      : self->round_started < self->capacity;
}

static void
s_start_queued (herald_worker_t *self)
{
    while (self->queue_count > 0 && !self->stopping && !self->resession && s_driver_has_room (self)) {
        worker_task_t task = self->queue[self->queue_head];
        self->queue[self->queue_head].event = NULL;
        self->queue_head = (self->queue_head + 1) % self->credit;
        self->queue_count--;
        s_start_task (self, task.task_id, task.attempt, task.lease, task.event, task.event_len);
        free (task.event);
    }
}

static void
s_on_task (herald_worker_t *self, const hp_task_t *entry)
{
    char task_id[HP_MAX_ID + 1];
    hp_str_copy (entry->task_id, task_id, sizeof task_id);
    if (self->stopping || self->resession) {
        //  Not started: the broker requeues it when it gets our DISCONNECT.
        herald_debug ("task not started", "task_id=%s why=%s", task_id,
                      self->stopping? "stopping": "registering again");
        return;
    }
    if (self->queue_count > 0 || !s_driver_has_room (self)) {
        if (self->queue_count >= self->credit) {
            hd_result_t result = { .outcome = HD_RETRY };
            snprintf (result.text, sizeof result.text,
                      "worker over its credit (%u): broker sent more", self->credit);
            s_report (self, task_id, entry->attempt, entry->lease, &result);
            return;
        }
        char *event = malloc (entry->body.len + 1);
        if (!event) {
            hd_result_t result = { .outcome = HD_RETRY };
            snprintf (result.text, sizeof result.text, "worker out of memory");
            s_report (self, task_id, entry->attempt, entry->lease, &result);
            return;
        }
        memcpy (event, entry->body.ptr, entry->body.len);
        event[entry->body.len] = '\0';
        worker_task_t *slot = &self->queue[(self->queue_head + self->queue_count) % self->credit];
        memcpy (slot->task_id, task_id, sizeof slot->task_id);
        slot->attempt = entry->attempt;
        slot->lease = entry->lease;
        slot->received = self->now;
        slot->event = event;
        slot->event_len = entry->body.len;
        self->queue_count++;
        return;
    }
    if (entry->body.len + 1 > self->event_cap) {
        size_t cap = self->event_cap? self->event_cap: 4096;
        while (cap < entry->body.len + 1)
            cap *= 2;
        char *buf = realloc (self->event_buf, cap);
        if (!buf) {
            hd_result_t result = { .outcome = HD_RETRY };
            snprintf (result.text, sizeof result.text, "worker out of memory");
            s_report (self, task_id, entry->attempt, entry->lease, &result);
            return;
        }
        self->event_buf = buf;
        self->event_cap = cap;
    }
    if (entry->body.len)
        memcpy (self->event_buf, entry->body.ptr, entry->body.len);
    self->event_buf[entry->body.len] = '\0';
    s_start_task (self, task_id, entry->attempt, entry->lease, self->event_buf, entry->body.len);
}

static void
s_on_tasks (herald_worker_t *self, const hp_msg_t *msg)
{
    if (!hp_str_eq (msg->channel, self->channel->name)) {
        char channel[HP_MAX_ID + 1];
        char q[2 * HP_MAX_ID];
        hp_str_copy (msg->channel, channel, sizeof channel);
        herald_warn ("tasks for another channel dropped", "channel=%s task_channel=%s count=%u",
                     self->channel->name, herald_log_quote (channel, q, sizeof q), msg->batch_count);
        return;
    }
    hp_str_t cursor = msg->batch;
    hp_task_t entry;
    while (hp_next_task (&cursor, &entry))
        s_on_task (self, &entry);
}

static void
s_on_message (herald_worker_t *self, const hp_msg_t *msg)
{
    switch (msg->command) {
        case HP_TASKS:
            s_on_tasks (self, msg);
            break;
        case HP_HEARTBEAT:
            break;
        case HP_DISCONNECT:
            //  The broker restarted and does not know us: it has requeued
            //  whatever we held, so forget what we have not started.
            herald_info ("broker asked to register again", "channel=%s endpoint=%s dropped=%u",
                         self->channel->name, self->endpoint, self->queue_count);
            s_drop_queue (self);
            if (!self->stopping)
                s_send_ready (self);
            break;
        default:
            herald_warn ("unexpected command dropped", "command=%s endpoint=%s",
                         hp_command_name (msg->command), self->endpoint);
            break;
    }
}

//  Handles what the socket holds (at most a batch). 0, or -1 when the
//  socket is unusable (context terminated).
static int
s_drain_socket (herald_worker_t *self)
{
    for (int i = 0; i < WORKER_DRAIN_BATCH && self->socket; i++) {
        hw_msg_t in;
        if (hw_recv (self->socket, false, &in, ZMQ_DONTWAIT) != 0) {
            int e = errno;
            hw_msg_close (&in);
            if (e == EAGAIN || e == EINTR)
                return 0;
            char q[128];
            herald_error ("receive failed", "endpoint=%s error=%s", self->endpoint,
                          herald_log_quote (zmq_strerror (e), q, sizeof q));
            return -1;
        }
        hp_msg_t msg;
        hp_error_t perr;
        bool valid = !in.too_many_frames && hw_decode (&in, &msg, &perr) == 0;
        if (valid && msg.command == HP_NACK) {
            //  The broker refused our READY (our key does not serve this
            //  channel): no session; the silence timer registers again
            //  later, with backoff, in case its key lists are reloaded.
            char reason[HP_MAX_TEXT + 1], q[HP_MAX_TEXT + 16];
            hp_str_copy (msg.text, reason, sizeof reason);
            herald_error ("broker refused this worker", "channel=%s endpoint=%s code=%d reason=%s",
                          self->channel->name, self->endpoint, msg.code,
                          herald_log_quote (reason, q, sizeof q));
            hw_msg_close (&in);
            continue;
        }
        if (valid && msg.command == HP_DISCONNECT && !self->session_live) {
            //  Each message we sent before READY to a broker that did not
            //  know us gets its own DISCONNECT: only the first one counts.
            //  These do not prove the broker takes our READY, so they do
            //  not keep the connection alive either.
            herald_debug ("DISCONNECT before the session started ignored",
                          "endpoint=%s", self->endpoint);
            hw_msg_close (&in);
            continue;
        }
        /*  Deliveries in this round take time: measure silence from now. */
        self->now = herald_clock_mono_ms ();
        self->silence_deadline = self->now + self->silence_ms;
        self->backoff_ms = self->heartbeat_ms;
        if (valid && msg.command != HP_DISCONNECT)
            self->session_live = true;
        if (!valid) {
            char q[sizeof perr.text + 16];
            herald_warn ("malformed message dropped", "endpoint=%s error=%s", self->endpoint,
                         herald_log_quote (in.too_many_frames? "too many frames": perr.text,
                                           q, sizeof q));
        }
        else
            s_on_message (self, &msg);
        hw_msg_close (&in);
    }
    return 0;
}

static void
s_run_timers (herald_worker_t *self)
{
    if (!self->stopping && self->now >= self->silence_deadline) {
        s_reconnect (self);
        return;
    }
    if (self->socket && self->now - self->last_sent >= self->heartbeat_ms) {
        if (self->ready_pending && !self->stopping)
            s_send_ready (self);
        else {
            hp_msg_t msg = { .command = HP_HEARTBEAT };
            s_send (self, &msg);
        }
        if (self->now - self->last_sent >= self->heartbeat_ms)
            self->last_sent = self->now;    //  failed: try again next interval, not at once
    }
}

static long
s_poll_timeout (herald_worker_t *self)
{
    int64_t timeout = WORKER_POLL_CAP_MS;
    if (self->socket)
        timeout = s_min (timeout, self->last_sent + self->heartbeat_ms - self->now);
    if (self->stopping)
        timeout = s_min (timeout, self->stop_deadline - self->now);
    else
        timeout = s_min (timeout, self->silence_deadline - self->now);
    if (self->queue_count > 0 && !self->stopping && !self->resession && s_driver_has_room (self))
        timeout = 0;    //  the next round of a synchronous driver: at once
    return timeout < 0? 0: (long) timeout;
}

//  Sizes the queue of tasks waiting for the driver (credit entries; it
//  must be empty) and the poll items (the socket, then a share for each
//  driver instance). 0 / -1 (out of memory: nothing changed).
static int
s_size (herald_worker_t *self, uint32_t credit, int drivers)
{
    int item_max = (int) s_min (1 + (int64_t) drivers * (2 * (int64_t) credit + 16),
                                (int64_t) drivers * WORKER_MAX_ITEMS);
    if (item_max > self->item_max) {
        zmq_pollitem_t *items = realloc (self->items, (size_t) item_max * sizeof *items);
        if (!items)
            return -1;
        self->items = items;
        self->item_max = item_max;
    }
    if (credit != self->credit || !self->queue) {
        worker_task_t *queue = calloc (credit, sizeof *queue);
        if (!queue)
            return -1;
        free (self->queue);
        self->queue = queue;
        self->queue_head = 0;
        self->credit = credit;
    }
    return 0;
}

//  What the channel's settings make of this worker: deliveries at once and
//  the lease. The credit changes only with a new session (s_size).
static void
s_limits (herald_worker_t *self, const herald_channel_t *channel)
{
    int capacity = channel->capacity;
    self->capacity = (uint32_t) (capacity < 1? 1: capacity > 65535? 65535: capacity);
    self->lease_ms = channel->lease_ms > 0? channel->lease_ms: 60000;
}

static herald_worker_t *
s_worker_new (const herald_config_t *config, int channel_index, const char *endpoint,
              const hd_driver_ops_t *ops, bool ops_fixed, const herald_keypair_t *keys, const char *server_key,
              char *err, size_t errlen)
{
    if (!config || !ops || channel_index < 0 || channel_index >= config->channel_count) {
        snprintf (err, errlen, "worker: no channel with index %d", channel_index);
        return NULL;
    }
    const herald_channel_t *channel = &config->channels[channel_index];
    if (!endpoint)
        endpoint = config->broker.workers;
    if (!*endpoint || strlen (endpoint) >= WORKER_ENDPOINT_MAX) {
        snprintf (err, errlen, "channel %s: worker endpoint is empty or too long", channel->name);
        return NULL;
    }
    herald_worker_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "worker: out of memory");
        return NULL;
    }
    self->config = config;
    self->channel = channel;
    self->ops_fixed = ops_fixed;
    if (keys && server_key) {
        self->curve = true;
        self->keys = *keys;
        snprintf (self->server_key, sizeof self->server_key, "%s", server_key);
    }
    self->async = ops->poll_items && ops->progress;
    snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    char host[HP_MAX_ID];
    if (gethostname (host, sizeof host) != 0)
        snprintf (host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf (self->name, sizeof self->name, "%.100s:%d", host, (int) getpid ());

    self->heartbeat_ms = config->broker.heartbeat_ms > 0? config->broker.heartbeat_ms: 1000;
    int liveness = config->broker.heartbeat_liveness > 0? config->broker.heartbeat_liveness: 3;
    self->silence_ms = self->heartbeat_ms * liveness;
    self->backoff_ms = self->heartbeat_ms;
    self->options.hwm = config->broker.hwm;
    self->options.max_msg_size = (long long) config->broker.max_event_bytes + HP_BATCH_OVERHEAD;
    self->options.linger_ms = 0;

    self->ctx = zmq_ctx_new ();
    s_limits (self, channel);
    self->release_log = herald_ratelimit (1, 10000);
    if (s_size (self, herald_channel_credit (channel), 1) != 0 || !self->ctx) {
        snprintf (err, errlen, "worker: out of memory");
        herald_worker_destroy (&self);
        return NULL;
    }
    void *instance = ops->open (channel, s_on_complete, self, err, errlen);
    if (!instance) {
        herald_worker_destroy (&self);
        return NULL;
    }
    self->drivers = driver_set_new (ops, instance, (herald_config_t *) config, false);
    if (!self->drivers) {
        snprintf (err, errlen, "worker: out of memory");
        herald_worker_destroy (&self);
        return NULL;
    }
    if (s_connect (self, err, errlen) != 0) {
        herald_worker_destroy (&self);
        return NULL;
    }
    return self;
}

herald_worker_t *
herald_worker_new_with_driver (const herald_config_t *config, int channel_index,
                               const char *endpoint, const hd_driver_ops_t *ops,
                               char *err, size_t errlen)
{
    return s_worker_new (config, channel_index, endpoint, ops, true, NULL, NULL, err, errlen);
}

herald_worker_t *
herald_worker_new_curve (const herald_config_t *config, int channel_index, const char *endpoint,
                         const herald_keypair_t *keys, const char *server_key, char *err, size_t errlen)
{
    if (!config || channel_index < 0 || channel_index >= config->channel_count || !keys || !server_key) {
        snprintf (err, errlen, "worker: no channel with index %d, or no keys", channel_index);
        return NULL;
    }
    return s_worker_new (config, channel_index, endpoint,
                         hd_driver_for (config->channels[channel_index].driver), false, keys, server_key,
                         err, errlen);
}

herald_worker_t *
herald_worker_new (const herald_config_t *config, int channel_index, const char *endpoint,
                   char *err, size_t errlen)
{
    if (!config || channel_index < 0 || channel_index >= config->channel_count) {
        snprintf (err, errlen, "worker: no channel with index %d", channel_index);
        return NULL;
    }
    return s_worker_new (config, channel_index, endpoint, hd_driver_for (config->channels[channel_index].driver),
                         false, NULL, NULL, err, errlen);
}

//  ----------------------------------------------------------------------
//  Reload

//  A new capacity or message cap reaches the broker with a new session
//  (PROTOCOL.md: READY again only after a DISCONNECT or on a new
//  connection). Called with no delivery in progress: our DISCONNECT gives
//  back, uncharged, what the broker sent that we did not start; a new
//  connection registers with the new numbers.
static void
s_resession (herald_worker_t *self)
{
    self->resession = false;
    hp_msg_t msg = { .command = HP_DISCONNECT };
    s_send (self, &msg);
    s_close_socket (self, WORKER_STOP_LINGER_MS);
    s_drop_queue (self);
    uint32_t credit = herald_channel_credit (self->channel);
    if (s_size (self, credit, driver_set_count (self->drivers)) != 0)
        herald_error ("out of memory: the credit stays", "channel=%s credit=%u wanted=%u", self->channel->name,
                      self->credit, credit);
    self->options.max_msg_size = (long long) self->config->broker.max_event_bytes + HP_BATCH_OVERHEAD;
    self->silence_deadline = self->now + self->silence_ms;
    char err[HERALD_ERR_MAX];
    if (s_connect (self, err, sizeof err) != 0) {
        char q[HERALD_ERR_MAX + 16];
        herald_error ("reconnect failed", "endpoint=%s error=%s", self->endpoint, herald_log_quote (err, q, sizeof q));
        return;         //  the silence timer tries again
    }
    self->last_sent = self->now;
    s_send_ready (self);
}

//  Takes merged (owned) as the configuration, with instance of ops opened
//  on its channel as the current driver; the one in use retires and
//  finishes what it started with its own settings. NULL, or why not (then
//  nothing changed and the caller still owns both).
static const char *
s_switch (herald_worker_t *self, herald_config_t *merged, const herald_channel_t *channel,
          const hd_driver_ops_t *ops, void *instance)
{
    if (s_size (self, self->credit, driver_set_count (self->drivers) + 1) != 0)
        return "out of memory";
    if (driver_set_replace (self->drivers, ops, instance, merged) != 0)
        return "the drivers of several earlier reloads still finish their deliveries: try again later";
    size_t message_cap = self->config->broker.max_event_bytes;
    self->config = merged;
    self->channel = channel;
    self->async = ops->poll_items && ops->progress;
    self->heartbeat_ms = merged->broker.heartbeat_ms > 0? merged->broker.heartbeat_ms: 1000;
    int liveness = merged->broker.heartbeat_liveness > 0? merged->broker.heartbeat_liveness: 3;
    self->silence_ms = self->heartbeat_ms * liveness;
    s_limits (self, channel);
    if (herald_channel_credit (channel) != self->credit || merged->broker.max_event_bytes != message_cap)
        self->resession = true;
    return NULL;
}

//  SIGHUP: reads the configuration file again and opens the channel's
//  driver anew with it (templates and CA files read again, secrets taken
//  from the environment again); heartbeats follow at once, a new capacity
//  or message cap with a new session once nothing is in progress. What
//  needs a restart (the broker's endpoint, keys) keeps its running value.
//  A file that does not load, or that the driver cannot open, changes
//  nothing.
static void
s_reload (herald_worker_t *self)
{
    herald_config_t *fresh = malloc (sizeof *fresh);
    herald_config_t *merged = malloc (sizeof *merged);
    herald_config_diff_t *diff = malloc (sizeof *diff);
    char err[HERALD_ERR_MAX];
    const char *why = !fresh || !merged || !diff? "out of memory": NULL;
    if (!why && herald_config_load (fresh, self->config->path, err, sizeof err) != 0)
        why = err;
    if (!why) {
        herald_config_merge (self->config, fresh, merged, diff);
        const herald_channel_t *channel = &merged->channels[herald_config_channel_index (merged, self->channel->name)];
        const hd_driver_ops_t *ops = self->ops_fixed? driver_set_ops (self->drivers): hd_driver_for (channel->driver);
        void *instance = ops? ops->open (channel, s_on_complete, self, err, sizeof err): NULL;
        if (!instance)
            why = ops? err: "unknown driver";
        else
        if ((why = s_switch (self, merged, channel, ops, instance)) != NULL)
            ops->close (&instance);
        else {
            char applied[1024], waiting[512], q1[1100], q2[600];
            herald_info ("configuration reloaded", "channel=%s driver=%s capacity=%d register_again=%s "
                         "changes=%s restart=%s", self->channel->name, ops->name, channel->capacity,
                         self->resession? "true": "false",
                         herald_log_quote (herald_config_diff_text (diff, false, applied, sizeof applied), q1, sizeof q1),
                         herald_log_quote (herald_config_diff_text (diff, true, waiting, sizeof waiting), q2, sizeof q2));
            merged = NULL;      //  the driver set owns it
            driver_set_reap (self->drivers);
        }
    }
    if (why) {
        char q[HERALD_ERR_MAX + 16], qpath[HERALD_PATH_MAX + 8];
        herald_error ("reload refused: keeping the running configuration", "channel=%s file=%s error=%s",
                      self->channel->name, herald_log_quote (self->config->path, qpath, sizeof qpath),
                      herald_log_quote (why, q, sizeof q));
    }
    free (fresh);
    free (merged);
    free (diff);
}

void
herald_worker_watch_reload (herald_worker_t *self, volatile sig_atomic_t *reload)
{
    self->reload = reload;
}

int
herald_worker_run (herald_worker_t *self, volatile sig_atomic_t *stop)
{
    herald_info ("worker started", "channel=%s driver=%s endpoint=%s capacity=%u credit=%u worker=%s",
                 self->channel->name, driver_set_ops (self->drivers)->name, self->endpoint, self->capacity,
                 self->credit, self->name);
    self->now = herald_clock_mono_ms ();
    self->silence_deadline = self->now + self->silence_ms;
    self->last_sent = self->now;
    if (!self->socket) {
        char err[HERALD_ERR_MAX];
        if (s_connect (self, err, sizeof err) != 0) {
            char q[HERALD_ERR_MAX];
            herald_error ("connect failed", "error=%s", herald_log_quote (err, q, sizeof q));
            return -1;
        }
    }
    s_send_ready (self);

    int rc = 0;
    while (true) {
        if (self->reload && *self->reload) {
            *self->reload = 0;
            if (!self->stopping)
                s_reload (self);
        }
        if (*stop && !self->stopping) {
            self->stopping = true;
            self->stop_deadline = self->now + self->config->broker.shutdown_timeout_ms;
            herald_info ("stopping", "channel=%s in_progress=%d not_started=%u",
                         self->channel->name, driver_set_in_progress (self->drivers),
                         self->queue_count);
            s_drop_queue (self);
        }
        if (self->stopping
        && (driver_set_in_progress (self->drivers) == 0 || self->now >= self->stop_deadline))
            break;

        long timeout = s_poll_timeout (self);
        int count = 0;
        if (self->socket)
            self->items[count++] = (zmq_pollitem_t) { self->socket, 0, ZMQ_POLLIN, 0 };
        int first_driver_item = count;
        count += driver_set_poll_items (self->drivers, self->items + count, self->item_max - count, &timeout);
        if (zmq_poll (self->items, count, timeout) < 0) {
            if (errno == EINTR) {
                self->now = herald_clock_mono_ms ();
                continue;
            }
            char q[128];
            herald_error ("poll failed", "error=%s", herald_log_quote (zmq_strerror (errno), q, sizeof q));
            rc = -1;
            break;
        }
        self->now = herald_clock_mono_ms ();
        if (first_driver_item == 1 && (self->items[0].revents & ZMQ_POLLIN)
        && s_drain_socket (self) != 0) {
            rc = -1;
            break;
        }
        driver_set_progress (self->drivers, self->items + first_driver_item, count - first_driver_item);
        s_release_queued (self, self->release_all);
        self->release_all = false;
        s_start_queued (self);
        /*  The round's deliveries end together: a driver that defers its
            completions (the file driver syncs once for the round) finishes
            them now, and their results leave as one RESULTS message. */
        driver_set_flush (self->drivers);
        self->round_started = 0;
        s_flush_results (self);
        if (driver_set_reap (self->drivers) == 0 && self->resession && !self->stopping
        &&  driver_set_in_progress (self->drivers) == 0)
            s_resession (self);
        s_run_timers (self);
    }
    driver_set_flush (self->drivers);
    s_flush_results (self);
    if (rc == 0) {
        int left = driver_set_in_progress (self->drivers);
        if (left > 0)
            herald_warn ("stop budget spent, abandoning deliveries", "channel=%s in_progress=%d",
                         self->channel->name, left);
        hp_msg_t msg = { .command = HP_DISCONNECT };
        s_send (self, &msg);
        herald_info ("worker stopped", "channel=%s endpoint=%s", self->channel->name, self->endpoint);
    }
    s_close_socket (self, WORKER_STOP_LINGER_MS);
    return rc;
}

void
herald_worker_destroy (herald_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herald_worker_t *self = *self_p;
    driver_set_destroy (&self->drivers);
    s_close_socket (self, 0);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    if (self->queue) {
        s_drop_queue (self);
        free (self->queue);
    }
    free (self->items);
    free (self->event_buf);
    free (self->results);
    explicit_bzero (&self->keys, sizeof self->keys);
    free (self);
    *self_p = NULL;
}
