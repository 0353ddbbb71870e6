/*  dispatch: ready queues, delayed heap, workers, leases and channel limits. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

typedef struct {
    task_t *head, *tail;            /* ready queue */
    size_t ready;
    task_t **heap;                  /* delayed tasks, min-heap on due_ms */
    size_t delayed, heap_cap;
    size_t in_flight;
    int rr;                         /* round-robin position among workers */
    double tokens;                  /* rate limit bucket */
    int64_t tokens_at;              /* monotonic ms of the last refill */
    int64_t paused_until;           /* throttled by the downstream until then */
    double share;                   /* brokers sharing the channel's limits (dispatch_set_share), 1 alone */
} channel_state_t;

struct dispatch {
    const herald_config_t *config;
    channel_state_t channels[HERALD_MAX_CHANNELS];
    worker_t *workers[DISPATCH_MAX_WORKERS];
    int worker_count;
    int next_channel;               /* fairness between channels */
    uint64_t next_serial;           /* for worker serials */
    uint64_t last_lease;            /* lease ids only ever grow */
};

dispatch_t *
dispatch_new (const herald_config_t *config, uint64_t first_lease)
{
    dispatch_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->config = config;
    self->last_lease = first_lease;
    for (int i = 0; i < config->channel_count; i++) {
        const herald_channel_t *ch = &config->channels[i];
        self->channels[i].tokens = ch->burst > 0? ch->burst: 1;
        self->channels[i].tokens_at = -1;
        self->channels[i].share = 1;
    }
    return self;
}

void
dispatch_set_share (dispatch_t *self, int channel, int brokers)
{
    if (channel >= 0 && channel < self->config->channel_count)
        self->channels[channel].share = brokers > 1? brokers: 1;
}

static void
s_free_queue (channel_state_t *ch)
{
    task_t *task = ch->head;
    while (task) {
        task_t *next = task->next;
        task_destroy (&task);
        task = next;
    }
    for (size_t i = 0; i < ch->delayed; i++)
        task_destroy (&ch->heap[i]);
    free (ch->heap);
}

void
dispatch_destroy (dispatch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dispatch_t *self = *self_p;
    for (int i = 0; i < self->worker_count; i++) {
        worker_t *worker = self->workers[i];
        for (uint32_t j = 0; j < worker->lease_count; j++)
            task_destroy (&worker->leases[j]);
        free (worker->leases);
        free (worker);
    }
    for (int i = 0; i < HERALD_MAX_CHANNELS; i++)
        s_free_queue (&self->channels[i]);
    free (self);
    *self_p = NULL;
}

blob_t *
blob_new (uint64_t seq, const char *uid, const char *data, size_t len)
{
    blob_t *blob = malloc (sizeof *blob + len + 1);
    if (!blob)
        return NULL;
    blob->refs = 0;
    blob->seq = seq;
    blob->received_at = 0;
    /*  Copied, not printed: a formatted print was 1.7 % of the loop's CPU
        at 8 producers x 1 (perf). Cut to the field, as ever. */
    size_t uid_len = strnlen (uid, sizeof blob->uid - 1);
    memcpy (blob->uid, uid, uid_len);
    blob->uid[uid_len] = '\0';
    blob->len = len;
    memcpy (blob->data, data, len);
    blob->data[len] = '\0';
    return blob;
}

task_t *
task_new (blob_t *event, int ch, int channel, uint32_t attempts)
{
    assert (ch >= 0 && ch < 256 && channel >= 0 && channel < HERALD_MAX_CHANNELS);
    task_t *task = calloc (1, sizeof *task);
    if (!task)
        return NULL;
    task->seq = event->seq;
    task->ch = (uint8_t) ch;
    task->channel = (uint16_t) channel;
    task->attempts = attempts;
    task->event = event;
    event->refs++;
    return task;
}

/*  Copies, not a formatted print: it is built three times per task sent
    (the batch's size, the frame, the answer's check), on the loop. */
hp_str_t
task_id (const task_t *task, const herald_config_t *config, char *buf)
{
    const char *uid = task->event->uid;
    const char *name = config->channels[task->channel].name;
    size_t uid_len = strnlen (uid, sizeof task->event->uid - 1);
    size_t name_len = strnlen (name, HERALD_NAME_MAX - 1);
    memcpy (buf, uid, uid_len);
    buf[uid_len] = '.';
    memcpy (buf + uid_len + 1, name, name_len);
    buf[uid_len + 1 + name_len] = '\0';
    return hp_strn (buf, uid_len + 1 + name_len);
}

void
task_destroy (task_t **task_p)
{
    if (!task_p || !*task_p)
        return;
    task_t *task = *task_p;
    if (task->event && --task->event->refs <= 0)
        free (task->event);
    free (task);
    *task_p = NULL;
}

/*  Delayed heap. */

static void
s_heap_swap (task_t **heap, size_t a, size_t b)
{
    task_t *tmp = heap[a];
    heap[a] = heap[b];
    heap[b] = tmp;
    heap[a]->heap_index = a;
    heap[b]->heap_index = b;
}

static void
s_heap_up (task_t **heap, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent]->due_ms <= heap[i]->due_ms)
            break;
        s_heap_swap (heap, i, parent);
        i = parent;
    }
}

static void
s_heap_down (task_t **heap, size_t count, size_t i)
{
    while (true) {
        size_t left = 2 * i + 1, right = left + 1, least = i;
        if (left < count && heap[left]->due_ms < heap[least]->due_ms)
            least = left;
        if (right < count && heap[right]->due_ms < heap[least]->due_ms)
            least = right;
        if (least == i)
            break;
        s_heap_swap (heap, i, least);
        i = least;
    }
}

static int
s_heap_push (channel_state_t *ch, task_t *task)
{
    if (ch->delayed == ch->heap_cap) {
        size_t cap = ch->heap_cap? ch->heap_cap * 2: 64;
        task_t **heap = realloc (ch->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        ch->heap = heap;
        ch->heap_cap = cap;
    }
    task->heap_index = ch->delayed;
    ch->heap[ch->delayed++] = task;
    s_heap_up (ch->heap, task->heap_index);
    return 0;
}

static task_t *
s_heap_pop (channel_state_t *ch)
{
    if (ch->delayed == 0)
        return NULL;
    task_t *top = ch->heap[0];
    ch->delayed--;
    if (ch->delayed > 0) {
        ch->heap[0] = ch->heap[ch->delayed];
        ch->heap[0]->heap_index = 0;
        s_heap_down (ch->heap, ch->delayed, 0);
    }
    return top;
}

static void
s_ready_push (channel_state_t *ch, task_t *task, bool front)
{
    task->next = NULL;
    if (!ch->head)
        ch->head = ch->tail = task;
    else
    if (front) {
        task->next = ch->head;
        ch->head = task;
    }
    else {
        ch->tail->next = task;
        ch->tail = task;
    }
    ch->ready++;
}

void
dispatch_enqueue (dispatch_t *self, task_t *task, int64_t due_ms, int64_t now, bool front)
{
    channel_state_t *ch = &self->channels[task->channel];
    task->worker = NULL;
    task->due_ms = due_ms;
    if (due_ms > now && s_heap_push (ch, task) == 0)
        return;
    s_ready_push (ch, task, front);
}

void
dispatch_promote (dispatch_t *self, int64_t now)
{
    for (int i = 0; i < self->config->channel_count; i++) {
        channel_state_t *ch = &self->channels[i];
        while (ch->delayed > 0 && ch->heap[0]->due_ms <= now)
            s_ready_push (ch, s_heap_pop (ch), false);
    }
}

void
dispatch_reconfigure (dispatch_t *self)
{
    for (int i = 0; i < self->config->channel_count; i++) {
        const herald_channel_t *cfg = &self->config->channels[i];
        channel_state_t *ch = &self->channels[i];
        double burst = cfg->burst > 0? cfg->burst: 1;
        if (ch->tokens_at < 0 || ch->tokens > burst)
            ch->tokens = burst;
    }
    for (int i = 0; i < self->worker_count; i++) {
        worker_t *worker = self->workers[i];
        uint32_t capacity = herald_channel_credit (&self->config->channels[worker->channel]);
        if (worker->capacity > capacity)
            worker->capacity = capacity;
        if (worker->max_batch > worker->capacity)
            worker->max_batch = worker->capacity;
    }
}

/*  Workers. */

worker_t *
dispatch_worker_add (dispatch_t *self, const char *identity, size_t identity_len,
                     int channel, uint32_t capacity, uint32_t max_batch, const char *name, int64_t now)
{
    if (self->worker_count >= DISPATCH_MAX_WORKERS || identity_len > sizeof ((worker_t *) 0)->identity)
        return NULL;
    worker_t *worker = calloc (1, sizeof *worker);
    if (!worker)
        return NULL;
    worker->leases = calloc (capacity, sizeof *worker->leases);
    if (!worker->leases) {
        free (worker);
        return NULL;
    }
    memcpy (worker->identity, identity, identity_len);
    worker->identity_len = identity_len;
    snprintf (worker->name, sizeof worker->name, "%s", name);
    worker->channel = channel;
    worker->capacity = capacity;
    worker->max_batch = max_batch? max_batch: 1;
    worker->serial = ++self->next_serial;
    worker->last_recv = worker->last_send = now;
    self->workers[self->worker_count++] = worker;
    return worker;
}

worker_t *
dispatch_worker_find (dispatch_t *self, const char *identity, size_t identity_len)
{
    for (int i = 0; i < self->worker_count; i++) {
        worker_t *worker = self->workers[i];
        if (worker->identity_len == identity_len
        &&  memcmp (worker->identity, identity, identity_len) == 0)
            return worker;
    }
    return NULL;
}

static void
s_unlease (dispatch_t *self, worker_t *worker, uint32_t slot)
{
    task_t *task = worker->leases[slot];
    worker->leases[slot] = worker->leases[--worker->lease_count];
    worker->leases[worker->lease_count] = NULL;
    self->channels[task->channel].in_flight--;
    task->worker = NULL;
    task->lease = 0;
    worker->solo = false;
}

task_t *
dispatch_worker_pop_lease (dispatch_t *self, worker_t *worker)
{
    if (worker->lease_count == 0)
        return NULL;
    task_t *task = worker->leases[worker->lease_count - 1];
    s_unlease (self, worker, worker->lease_count - 1);
    return task;
}

void
dispatch_worker_remove (dispatch_t *self, worker_t **worker_p)
{
    worker_t *worker = *worker_p;
    while (worker->lease_count > 0) {
        /*  The caller should have taken the leases back; never lose a task. */
        task_t *task = dispatch_worker_pop_lease (self, worker);
        dispatch_enqueue (self, task, 0, 0, true);
    }
    for (int i = 0; i < self->worker_count; i++) {
        if (self->workers[i] == worker) {
            self->workers[i] = self->workers[--self->worker_count];
            self->workers[self->worker_count] = NULL;
            break;
        }
    }
    free (worker->leases);
    free (worker);
    *worker_p = NULL;
}

worker_t *
dispatch_worker_at (dispatch_t *self, int index)
{
    return index < self->worker_count? self->workers[index]: NULL;
}

/*  Rate limit: refill the bucket; true if a token is available. */
static bool
s_rate_allows (const herald_channel_t *cfg, channel_state_t *ch, int64_t now)
{
    if (cfg->rate_per_sec <= 0)
        return true;
    double burst = cfg->burst > 0? cfg->burst / ch->share: 1;
    if (burst < 1)
        burst = 1;
    if (ch->tokens_at < 0)
        ch->tokens_at = now;
    if (now > ch->tokens_at) {
        ch->tokens += (double) (now - ch->tokens_at) * cfg->rate_per_sec / ch->share / 1000.0;
        if (ch->tokens > burst)
            ch->tokens = burst;
        ch->tokens_at = now;
    }
    return ch->tokens >= 1.0;
}

static worker_t *
s_pick_worker (dispatch_t *self, int channel, channel_state_t *ch, bool idle_only, uint64_t avoid)
{
    /*  First pass: not the worker the task should avoid; second: any. */
    int count = self->worker_count;
    for (int pass = 0; pass < 2; pass++) {
        for (int n = 0; n < count; n++) {
            int i = (ch->rr + n) % count;
            worker_t *worker = self->workers[i];
            if (worker->channel == channel && !worker->solo && !worker->blocked
            &&  (pass == 1 || avoid == 0 || worker->serial != avoid)
            &&  (idle_only? worker->lease_count == 0: worker->lease_count < worker->capacity)) {
                ch->rr = (i + 1) % count;
                return worker;
            }
        }
        if (avoid == 0)
            break;
    }
    return NULL;
}

task_t *
dispatch_next (dispatch_t *self, int64_t now)
{
    int channels = self->config->channel_count;
    for (int n = 0; n < channels; n++) {
        int c = (self->next_channel + n) % channels;
        channel_state_t *ch = &self->channels[c];
        const herald_channel_t *cfg = &self->config->channels[c];
        if (!ch->head || now < ch->paused_until)
            continue;
        if (cfg->max_in_flight > 0 && ch->in_flight >= (size_t) (cfg->max_in_flight / ch->share + 0.999))
            continue;
        if (!s_rate_allows (cfg, ch, now))
            continue;
        worker_t *worker = s_pick_worker (self, c, ch, ch->head->suspect, ch->head->avoid);
        if (!worker)
            continue;
        task_t *task = ch->head;
        worker->solo = task->suspect;
        ch->head = task->next;
        if (!ch->head)
            ch->tail = NULL;
        ch->ready--;
        task->next = NULL;
        task->attempts++;
        task->lease = ++self->last_lease;
        task->worker = worker;
        task->lease_deadline = now + cfg->lease_ms;
        worker->leases[worker->lease_count++] = task;
        ch->in_flight++;
        if (cfg->rate_per_sec > 0)
            ch->tokens -= 1.0;
        self->next_channel = (c + 1) % channels;
        return task;
    }
    return NULL;
}

void
dispatch_pause (dispatch_t *self, int channel, int64_t until)
{
    if (until > self->channels[channel].paused_until)
        self->channels[channel].paused_until = until;
}

task_t *
dispatch_complete (dispatch_t *self, worker_t *worker, hp_str_t wanted, uint64_t lease)
{
    for (uint32_t i = 0; i < worker->lease_count; i++) {
        task_t *task = worker->leases[i];
        if (task->lease == lease) {
            char id[TASK_ID_MAX];
            hp_str_t own = task_id (task, self->config, id);
            if (wanted.len != own.len || memcmp (wanted.ptr, own.ptr, own.len) != 0)
                return NULL;        /* a lease id with another task's id: not ours */
            s_unlease (self, worker, i);
            return task;
        }
    }
    return NULL;                    /* an older lease's late answer, or unknown */
}

void
dispatch_hand_back (dispatch_t *self, task_t *task, int64_t now)
{
    if (task->attempts > 0)
        task->attempts--;
    dispatch_enqueue (self, task, 0, now, true);
}

task_t *
dispatch_expired (dispatch_t *self, int64_t now)
{
    for (int i = 0; i < self->worker_count; i++) {
        worker_t *worker = self->workers[i];
        for (uint32_t j = 0; j < worker->lease_count; j++) {
            task_t *task = worker->leases[j];
            if (task->lease_deadline <= now) {
                task->avoid = worker->serial;
                s_unlease (self, worker, j);
                return task;
            }
        }
    }
    return NULL;
}

int64_t
dispatch_next_deadline (dispatch_t *self, int64_t now)
{
    int64_t next = INT64_MAX;
    for (int c = 0; c < self->config->channel_count; c++) {
        channel_state_t *ch = &self->channels[c];
        const herald_channel_t *cfg = &self->config->channels[c];
        if (ch->delayed > 0 && ch->heap[0]->due_ms < next)
            next = ch->heap[0]->due_ms;
        if (ch->head && ch->paused_until > now && ch->paused_until < next)
            next = ch->paused_until;
        if (ch->head && cfg->rate_per_sec > 0 && ch->tokens < 1.0) {
            int64_t wait = (int64_t) ((1.0 - ch->tokens) * 1000.0 * ch->share / cfg->rate_per_sec) + 1;
            if (now + wait < next)
                next = now + wait;
        }
    }
    for (int i = 0; i < self->worker_count; i++) {
        worker_t *worker = self->workers[i];
        for (uint32_t j = 0; j < worker->lease_count; j++)
            if (worker->leases[j]->lease_deadline < next)
                next = worker->leases[j]->lease_deadline;
    }
    return next;
}

bool
dispatch_leased (dispatch_t *self, uint64_t seq, int ch)
{
    for (int i = 0; i < self->worker_count; i++) {
        worker_t *worker = self->workers[i];
        for (uint32_t j = 0; j < worker->lease_count; j++)
            if (worker->leases[j]->seq == seq && worker->leases[j]->ch == ch)
                return true;
    }
    return false;
}

void
dispatch_counts (dispatch_t *self, int channel, dispatch_counts_t *counts)
{
    channel_state_t *ch = &self->channels[channel];
    counts->ready = ch->ready;
    counts->delayed = ch->delayed;
    counts->in_flight = ch->in_flight;
    counts->workers = 0;
    for (int i = 0; i < self->worker_count; i++)
        if (self->workers[i]->channel == channel)
            counts->workers++;
}

int64_t
dispatch_oldest (dispatch_t *self, int channel)
{
    channel_state_t *ch = &self->channels[channel];
    int64_t oldest = INT64_MAX;
    for (task_t *task = ch->head; task; task = task->next)
        if (task->event->received_at < oldest)
            oldest = task->event->received_at;
    for (size_t i = 0; i < ch->delayed; i++)
        if (ch->heap[i]->event->received_at < oldest)
            oldest = ch->heap[i]->event->received_at;
    for (int w = 0; w < self->worker_count; w++) {
        worker_t *worker = self->workers[w];
        for (uint32_t i = 0; worker->channel == channel && i < worker->lease_count; i++)
            if (worker->leases[i]->event->received_at < oldest)
                oldest = worker->leases[i]->event->received_at;
    }
    return oldest;
}

task_t *
dispatch_take_back (dispatch_t *self, int channel)
{
    channel_state_t *ch = &self->channels[channel];
    task_t *task = ch->head;
    if (task) {
        ch->head = task->next;
        if (!ch->head)
            ch->tail = NULL;
        ch->ready--;
        task->next = NULL;
        return task;
    }
    return s_heap_pop (ch);
}

size_t
dispatch_held (dispatch_t *self, int channel)
{
    channel_state_t *ch = &self->channels[channel];
    return ch->ready + ch->delayed + ch->in_flight;
}

int64_t
dispatch_backoff_ms (const herald_channel_t *channel, uint32_t attempts, double random01)
{
    int64_t ceiling = channel->backoff_min_ms;
    for (uint32_t i = 1; i < attempts && ceiling < channel->backoff_max_ms; i++)
        ceiling *= 2;
    if (ceiling > channel->backoff_max_ms)
        ceiling = channel->backoff_max_ms;
    return (int64_t) (random01 * (double) ceiling);
}
