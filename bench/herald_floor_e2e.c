/*  herald_floor_e2e: the machine's floor for end to end over three channels
    (shape 4 of herald_bench_peers), with no Herald code in it: the work a
    broker and its workers cannot avoid, and nothing more.

      server  a ZeroMQ ROUTER for producers (HERALD/1 PUBLISH, answered ACK)
              and one for workers (HERALD/2 READY, TASKS, RESULTS). What has
              arrived (events, and workers' outcomes) is staged; one writer
              thread appends each staged batch to a preallocated file with
              one write + one fdatasync while the loop keeps receiving and
              staging the next (pipelined group commit). Once a batch is
              durable its events are ACKed and queued once per channel, and
              its outcomes count as done. Tasks go to the workers within
              their credit, up to max-batch per TASKS message; a result
              gives its credit back on arrival. A STATUS request on the
              producer ROUTER answers the durable done counts.
      worker  a DEALER that announces a channel with a credit (READY) and
              answers each task "done" at once, the results of one loop
              round in one RESULTS message, as herald-worker with the noop
              driver does (floor_worker.c).

    Nothing is parsed beyond the frames and entry headers: no JSON, no
    validation, no dedup, no index, no lease table, no retry timers. What a
    broker costs above this is the broker's own work. Started and stopped
    (SIGTERM) by herald_bench_peers. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_util.h"
#include "floor_frames.h"
#include "floor_worker.h"

#define E2E_CHANNELS_MAX    8
#define E2E_WORKERS_MAX     32
#define E2E_BATCH_EVENTS    2048                /* events per durable write, as broker.batch_max */
#define E2E_BATCH_OUTCOMES  8192                /* outcomes per durable write */
#define E2E_EVENT_MAX       (256 * 1024)        /* as broker.max_event_bytes */
#define E2E_BUFFER          (8L << 20)          /* one batch's bytes at most */
#define E2E_OUTCOME_MAX     256                 /* bytes kept of one result's header */

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_stop = 1;
}

//  ---------------------------------------------------------------- server

/*  One event, held from its durable write until the last channel's task
    carrying it has been sent. */
typedef struct {
    int refs;                       /* channels that have not sent it yet */
    uint64_t seq;                   /* its number: task ids are "seq.channel" */
    size_t len;
    char data[];
} e2e_event_t;

typedef struct {
    zmq_msg_t id;                   /* the producer's routing id */
    zmq_msg_t corr;                 /* its correlation id */
} e2e_ack_t;

/*  What one durable write covers. */
typedef struct {
    char *bytes;                    /* what is written: events, then outcome headers */
    long used;
    e2e_ack_t acks[E2E_BATCH_EVENTS];
    e2e_event_t *events[E2E_BATCH_EVENTS];
    int event_count;
    int outcome_count;
    uint64_t done[E2E_CHANNELS_MAX];    /* outcomes in it, by channel */
    long offset;                    /* where it goes in the file */
    int rc;                         /* the writer's verdict: 0, or an errno */
} e2e_batch_t;

typedef struct {
    char name[64];
    e2e_event_t **ring;             /* durable events waiting to be sent to this channel */
    size_t head, count, cap;
    uint64_t done;                  /* durable outcomes */
} e2e_channel_t;

typedef struct {
    unsigned char id[256];          /* routing id */
    size_t id_len;
    int channel;
    uint32_t credit, max_batch, in_flight;
} e2e_worker_t;

typedef struct {
    void *producers, *workers;      /* ROUTERs */
    int fd;                         /* the data file */
    long file_size, at;             /* its size, the next write offset */
    int wake;                       /* eventfd: the writer has finished a batch */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    e2e_batch_t *job;               /* handed to the writer, under lock */
    bool quit;                      /* the writer stops, under lock */
    e2e_batch_t batches[2];
    e2e_batch_t *staging, *writing; /* writing: at the writer, NULL when idle */
    e2e_channel_t channels[E2E_CHANNELS_MAX];
    int channel_count;
    e2e_worker_t sessions[E2E_WORKERS_MAX];
    int session_count;
    char *frame;                    /* a TASKS frame being built */
    size_t frame_cap;
    uint64_t seq, lease, acked, writes, outcomes;
} e2e_server_t;

//  The writer thread: one pwrite + fdatasync per batch handed over.
static void *
s_writer (void *arg)
{
    e2e_server_t *self = (e2e_server_t *) arg;
    pthread_mutex_lock (&self->lock);
    for (;;) {
        while (!self->job && !self->quit)
            pthread_cond_wait (&self->cond, &self->lock);
        if (self->quit)
            break;
        e2e_batch_t *batch = self->job;
        pthread_mutex_unlock (&self->lock);
        int rc = 0;
        errno = 0;
        if (pwrite (self->fd, batch->bytes, (size_t) batch->used, batch->offset) != batch->used
        ||  fdatasync (self->fd) != 0)
            rc = errno? errno: EIO;
        pthread_mutex_lock (&self->lock);
        self->job = NULL;
        batch->rc = rc;
        uint64_t one = 1;
        if (write (self->wake, &one, sizeof one) != sizeof one)
            batch->rc = errno;
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

//  Hands the staged batch to the writer if it is idle.
static void
s_commit (e2e_server_t *self)
{
    e2e_batch_t *batch = self->staging;
    if (self->writing || batch->used == 0)
        return;
    if (self->at + batch->used > self->file_size)
        self->at = 0;
    batch->offset = self->at;
    self->at += batch->used;
    self->writing = batch;
    self->staging = batch == &self->batches[0]? &self->batches[1]: &self->batches[0];
    pthread_mutex_lock (&self->lock);
    self->job = batch;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->lock);
}

//  Room in ch's ring for extra more events. 0, or -1 (out of memory).
static int
s_reserve (e2e_channel_t *ch, size_t extra)
{
    if (ch->count + extra <= ch->cap)
        return 0;
    size_t cap = ch->cap? ch->cap: 4096;
    while (cap < ch->count + extra)
        cap *= 2;
    e2e_event_t **ring = malloc (cap * sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < ch->count; i++)
        ring[i] = ch->ring[(ch->head + i) % ch->cap];
    free (ch->ring);
    ch->ring = ring;
    ch->head = 0;
    ch->cap = cap;
    return 0;
}

//  The written batch is durable: ACK its events, queue them on every
//  channel, count its outcomes. 0, or -1 (the write failed: stop).
static int
s_completed (e2e_server_t *self)
{
    uint64_t n;
    if (read (self->wake, &n, sizeof n) != sizeof n || !self->writing)
        return 0;
    e2e_batch_t *batch = self->writing;
    self->writing = NULL;
    pthread_mutex_lock (&self->lock);
    int rc = batch->rc;
    pthread_mutex_unlock (&self->lock);
    if (rc != 0) {
        fprintf (stderr, "herald_floor_e2e: write + fdatasync: %s\n", strerror (rc));
        return -1;
    }
    for (int c = 0; c < self->channel_count; c++)
        if (s_reserve (&self->channels[c], (size_t) batch->event_count) != 0) {
            fprintf (stderr, "herald_floor_e2e: out of memory\n");
            return -1;
        }
    for (int i = 0; i < batch->event_count; i++) {
        e2e_ack_t *a = &batch->acks[i];
        char id[32];
        int len = snprintf (id, sizeof id, "floor-%" PRIu64, ++self->acked);
        zmq_msg_send (&a->id, self->producers, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send (self->producers, "HERALD/1", 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send (self->producers, "ACK", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_msg_send (&a->corr, self->producers, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send (self->producers, id, (size_t) len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send (self->producers, "new", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send (self->producers, "fsync", 5, ZMQ_DONTWAIT);
        zmq_msg_close (&a->id);
        zmq_msg_close (&a->corr);
        e2e_event_t *event = batch->events[i];
        event->refs = self->channel_count;
        for (int c = 0; c < self->channel_count; c++) {
            e2e_channel_t *ch = &self->channels[c];
            ch->ring[(ch->head + ch->count++) % ch->cap] = event;
        }
    }
    for (int c = 0; c < self->channel_count; c++)
        self->channels[c].done += batch->done[c];
    self->writes++;
    batch->used = 0;
    batch->event_count = batch->outcome_count = 0;
    memset (batch->done, 0, sizeof batch->done);
    return 0;
}

static bool
s_staging_full (e2e_server_t *self)
{
    e2e_batch_t *b = self->staging;
    return b->event_count == E2E_BATCH_EVENTS || b->outcome_count + FLOOR_ENTRIES_MAX > E2E_BATCH_OUTCOMES
        || b->used + E2E_EVENT_MAX + FLOOR_ENTRIES_MAX * E2E_OUTCOME_MAX > E2E_BUFFER;
}

//  STATUS: "HERALD/1" "STATUS" corr "WORKERS DONE..." (done by channel).
static void
s_status (e2e_server_t *self, zmq_msg_t *id, zmq_msg_t *corr)
{
    char text[512];
    size_t at = (size_t) snprintf (text, sizeof text, "%d", self->session_count);
    for (int c = 0; c < self->channel_count && at < sizeof text; c++)
        at += (size_t) snprintf (text + at, sizeof text - at, " %" PRIu64, self->channels[c].done);
    zmq_msg_send (id, self->producers, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->producers, "HERALD/1", 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->producers, "STATUS", 6, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_send (corr, self->producers, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->producers, text, at < sizeof text? at: sizeof text - 1, ZMQ_DONTWAIT);
}

//  Stages what producers have sent: each PUBLISH's event into the batch's
//  bytes and into an event held for the channels. 0, or -1.
static int
s_take_producers (e2e_server_t *self)
{
    e2e_batch_t *b = self->staging;
    while (!s_staging_full (self)) {
        zmq_msg_t f[FLOOR_FRAMES_MAX];
        int count = floor_recv (self->producers, f);
        if (count <= 0)
            return count;
        if (count == 4 && floor_is (&f[1], "HERALD/1") && floor_is (&f[2], "STATUS"))
            s_status (self, &f[0], &f[3]);
        else
        if (count == 5 && floor_is (&f[1], "HERALD/1") && floor_is (&f[2], "PUBLISH")
            && zmq_msg_size (&f[4]) <= E2E_EVENT_MAX) {
            size_t len = zmq_msg_size (&f[4]);
            e2e_event_t *event = malloc (sizeof *event + len);
            if (!event) {
                floor_close (f, count);
                return -1;
            }
            event->seq = ++self->seq;
            event->len = len;
            memcpy (event->data, zmq_msg_data (&f[4]), len);
            memcpy (b->bytes + b->used, event->data, len);
            b->used += (long) len;
            e2e_ack_t *a = &b->acks[b->event_count];
            zmq_msg_init (&a->id);
            zmq_msg_init (&a->corr);
            zmq_msg_move (&a->id, &f[0]);
            zmq_msg_move (&a->corr, &f[3]);
            b->events[b->event_count++] = event;
        }
        floor_close (f, count);
    }
    return 0;
}

static e2e_worker_t *
s_session (e2e_server_t *self, zmq_msg_t *id)
{
    for (int i = 0; i < self->session_count; i++)
        if (self->sessions[i].id_len == zmq_msg_size (id)
            && memcmp (self->sessions[i].id, zmq_msg_data (id), zmq_msg_size (id)) == 0)
            return &self->sessions[i];
    return NULL;
}

//  A decimal number in frame, 1..max; 0 if not one.
static uint32_t
s_frame_number (zmq_msg_t *frame, uint32_t max)
{
    char text[16];
    size_t len = zmq_msg_size (frame);
    if (len == 0 || len >= sizeof text)
        return 0;
    memcpy (text, zmq_msg_data (frame), len);
    text[len] = '\0';
    char *end = NULL;
    unsigned long v = strtoul (text, &end, 10);
    return *end == '\0' && v >= 1 && v <= max? (uint32_t) v: 0;
}

//  READY: a new session for a known channel.
static void
s_ready (e2e_server_t *self, zmq_msg_t *f)
{
    int channel = -1;
    for (int c = 0; c < self->channel_count; c++)
        if (floor_is (&f[3], self->channels[c].name))
            channel = c;
    uint32_t credit = s_frame_number (&f[4], 65535), max_batch = s_frame_number (&f[6], FLOOR_ENTRIES_MAX);
    if (channel < 0 || !credit || !max_batch || zmq_msg_size (&f[0]) > sizeof self->sessions[0].id
        || s_session (self, &f[0]) || self->session_count == E2E_WORKERS_MAX) {
        fprintf (stderr, "herald_floor_e2e: a READY refused (unknown channel, bad numbers or "
                 "a session too many)\n");
        return;
    }
    e2e_worker_t *w = &self->sessions[self->session_count++];
    memset (w, 0, sizeof *w);
    w->id_len = zmq_msg_size (&f[0]);
    memcpy (w->id, zmq_msg_data (&f[0]), w->id_len);
    w->channel = channel;
    w->credit = credit;
    w->max_batch = max_batch;
}

//  RESULTS: each entry gives its credit back now and stages its header
//  (id, lease, outcome) as the outcome record. Entries are found by their
//  length fields, as the protocol says; a malformed tail is dropped.
static void
s_results (e2e_server_t *self, e2e_worker_t *w, zmq_msg_t *frame)
{
    e2e_batch_t *b = self->staging;
    const char *at = zmq_msg_data (frame), *end = at + zmq_msg_size (frame);
    for (int entries = 0; at < end && entries < FLOOR_ENTRIES_MAX; entries++) {
        const char *lf = memchr (at, '\n', (size_t) (end - at));
        const char *space = lf? lf: at;
        while (space > at && space[-1] != ' ')
            space--;
        if (!lf || space == at || lf - at > E2E_OUTCOME_MAX)
            break;
        char *stop = NULL;
        unsigned long text_len = strtoul (space, &stop, 10);
        if (stop != lf || (size_t) (end - lf) < 2 || text_len > (size_t) (end - lf) - 2)
            break;
        memcpy (b->bytes + b->used, at, (size_t) (lf - at + 1));
        b->used += lf - at + 1;
        b->outcome_count++;
        b->done[w->channel]++;
        if (w->in_flight > 0)
            w->in_flight--;
        self->outcomes++;
        at = lf + 1 + text_len + 1;
    }
}

static int
s_take_workers (e2e_server_t *self)
{
    while (!s_staging_full (self)) {
        zmq_msg_t f[FLOOR_FRAMES_MAX];
        int count = floor_recv (self->workers, f);
        if (count <= 0)
            return count;
        if (count == 7 && floor_is (&f[1], "HERALD/2") && floor_is (&f[2], "READY"))
            s_ready (self, f);
        else
        if (count == 4 && floor_is (&f[1], "HERALD/2") && floor_is (&f[2], "RESULTS")) {
            e2e_worker_t *w = s_session (self, &f[0]);
            if (w)
                s_results (self, w, &f[3]);
        }
        floor_close (f, count);
    }
    return 0;
}

static void
s_free_frame (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Sends every worker what its credit allows, max-batch tasks per TASKS
//  message: entries "seq.channel attempt lease length LF event LF".
static int
s_dispatch (e2e_server_t *self)
{
    for (int i = 0; i < self->session_count; i++) {
        e2e_worker_t *w = &self->sessions[i];
        e2e_channel_t *ch = &self->channels[w->channel];
        while (ch->count > 0 && w->in_flight < w->credit) {
            uint32_t n = w->credit - w->in_flight;
            if (n > w->max_batch)
                n = w->max_batch;
            if (n > ch->count)
                n = (uint32_t) ch->count;
            size_t size = 0;
            for (uint32_t k = 0; k < n; k++)
                size += ch->ring[(ch->head + k) % ch->cap]->len + 80;
            char *frame = malloc (size);
            if (!frame)
                return -1;
            size_t used = 0;
            for (uint32_t k = 0; k < n; k++) {
                e2e_event_t *event = ch->ring[ch->head];
                ch->head = (ch->head + 1) % ch->cap;
                ch->count--;
                used += (size_t) snprintf (frame + used, size - used, "%" PRIu64 ".%d 1 %" PRIu64
                                           " %zu\n", event->seq, w->channel, ++self->lease,
                                           event->len);
                memcpy (frame + used, event->data, event->len);
                used += event->len;
                frame[used++] = '\n';
                if (--event->refs == 0)
                    free (event);
            }
            zmq_msg_t msg;
            zmq_msg_init_data (&msg, frame, used, s_free_frame, NULL);
            zmq_send (self->workers, w->id, w->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send (self->workers, "HERALD/2", 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send (self->workers, "TASKS", 5, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send (self->workers, ch->name, strlen (ch->name), ZMQ_SNDMORE | ZMQ_DONTWAIT);
            if (zmq_msg_send (&msg, self->workers, ZMQ_DONTWAIT) < 0)
                zmq_msg_close (&msg);
            w->in_flight += n;
        }
    }
    return 0;
}

static int
s_serve (e2e_server_t *self)
{
    while (!s_stop) {
        bool full = s_staging_full (self);
        zmq_pollitem_t items[3] = {
            { NULL, self->wake, ZMQ_POLLIN, 0 },
            { self->producers, 0, full? 0: ZMQ_POLLIN, 0 },
            { self->workers, 0, full? 0: ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 3, 200) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if ((items[0].revents & ZMQ_POLLIN) && s_completed (self) != 0)
            return -1;
        if (s_take_workers (self) != 0 || s_take_producers (self) != 0)
            return -1;
        s_commit (self);
        if (s_dispatch (self) != 0)
            return -1;
    }
    return 0;
}

//  At exit: frees the events still held (queued, staged or being written).
static void
s_release (e2e_server_t *self)
{
    for (int c = 0; c < self->channel_count; c++) {
        e2e_channel_t *ch = &self->channels[c];
        for (size_t i = 0; i < ch->count; i++) {
            e2e_event_t *event = ch->ring[(ch->head + i) % ch->cap];
            if (--event->refs == 0)
                free (event);
        }
        free (ch->ring);
    }
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < self->batches[b].event_count; i++) {
            free (self->batches[b].events[i]);
            zmq_msg_close (&self->batches[b].acks[i].id);
            zmq_msg_close (&self->batches[b].acks[i].corr);
        }
        free (self->batches[b].bytes);
    }
}

static void *
s_bind (void *ctx, const char *endpoint)
{
    void *socket = zmq_socket (ctx, ZMQ_ROUTER);
    int linger = 0, hwm = 0;
    if (!socket
    ||  zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger) != 0
    ||  zmq_setsockopt (socket, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0
    ||  zmq_setsockopt (socket, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0
    ||  zmq_bind (socket, endpoint) != 0) {
        fprintf (stderr, "herald_floor_e2e: bind %s: %s\n", endpoint, zmq_strerror (errno));
        if (socket)
            zmq_close (socket);
        return NULL;
    }
    return socket;
}

//  "a,b,c" into the server's channels. 0, or -1 with a message.
static int
s_channels (e2e_server_t *self, const char *list)
{
    const char *at = list;
    while (*at) {
        size_t len = strcspn (at, ",");
        if (len == 0 || len >= sizeof self->channels[0].name || self->channel_count == E2E_CHANNELS_MAX) {
            fprintf (stderr, "herald_floor_e2e: --channels: expected 1 to %d names of 1 to 63 "
                     "characters separated by commas, got '%s'\n", E2E_CHANNELS_MAX, list);
            return -1;
        }
        memcpy (self->channels[self->channel_count++].name, at, len);
        at += len + (at[len] == ',');
    }
    return self->channel_count > 0? 0: -1;
}

static int
s_run_server (const char *producers, const char *workers, const char *file, long file_mib,
              const char *channels)
{
    static e2e_server_t self;
    if (s_channels (&self, channels) != 0)
        return 64;
    self.file_size = file_mib << 20;
    self.staging = &self.batches[0];
    self.batches[0].bytes = malloc (E2E_BUFFER);
    self.batches[1].bytes = malloc (E2E_BUFFER);
    self.fd = open (file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    self.wake = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!self.batches[0].bytes || !self.batches[1].bytes || self.fd < 0 || self.wake < 0
        || bench_fill_file (self.fd, self.file_size) != 0) {
        fprintf (stderr, "herald_floor_e2e: %s: %s\n", file, strerror (errno));
        return 1;
    }
    pthread_mutex_init (&self.lock, NULL);
    pthread_cond_init (&self.cond, NULL);
    if (pthread_create (&self.thread, NULL, s_writer, &self) != 0) {
        fprintf (stderr, "herald_floor_e2e: cannot start the writer thread\n");
        return 1;
    }
    void *ctx = zmq_ctx_new ();
    self.producers = ctx? s_bind (ctx, producers): NULL;
    self.workers = self.producers? s_bind (ctx, workers): NULL;
    int rc = self.workers? s_serve (&self): -1;
    if (rc != 0 && !s_stop)
        fprintf (stderr, "herald_floor_e2e: stopped: %s\n", zmq_strerror (errno));
    pthread_mutex_lock (&self.lock);
    self.quit = true;
    pthread_cond_signal (&self.cond);
    pthread_mutex_unlock (&self.lock);
    pthread_join (self.thread, NULL);
    fprintf (stderr, "herald_floor_e2e: %" PRIu64 " events, %" PRIu64 " outcomes in %" PRIu64
             " writes (%.1f records per fdatasync)\n", self.seq, self.outcomes, self.writes,
             self.writes? (double) (self.seq + self.outcomes) / (double) self.writes: 0.0);
    if (self.workers)
        zmq_close (self.workers);
    if (self.producers)
        zmq_close (self.producers);
    if (ctx)
        zmq_ctx_term (ctx);
    close (self.fd);
    close (self.wake);
    unlink (file);
    s_release (&self);
    return rc == 0? 0: 1;
}

//  ---------------------------------------------------------------- main

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: herald_floor_e2e server --producers ENDPOINT --workers ENDPOINT --file PATH\n"
        "                               [--file-mib N] [--channels a,b,c]\n"
        "       herald_floor_e2e worker --endpoint ENDPOINT --channel NAME [--credit N]\n"
        "\n"
        "The floor for end to end over three channels on this machine, no Herald code:\n"
        "  server  ROUTERs for producers (HERALD/1 PUBLISH -> ACK, STATUS) and workers\n"
        "          (HERALD/2 READY, TASKS, RESULTS). Each batch of what has arrived (events\n"
        "          and workers' outcomes) is appended to a preallocated file (default 64 MiB,\n"
        "          overwritten in place) with one write + fdatasync by a writer thread while\n"
        "          the loop stages the next; once durable, events are ACKed and sent to every\n"
        "          channel (default email,inventory,courier) within the workers' credit, and\n"
        "          outcomes count as done. STATUS answers \"WORKERS DONE...\" by channel.\n"
        "  worker  READY with a credit (default %d, as Herald's channel capacity) and max-batch\n"
        "          min(credit, 1024); answers every task \"done\" at once, one RESULTS message\n"
        "          per loop round.\n"
        "Both run until SIGTERM or SIGINT and print their counts to stderr at the end.\n",
        FLOOR_WORKER_CREDIT);
}

int
main (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "producers", required_argument, NULL, 'p' },
        { "workers", required_argument, NULL, 'w' },
        { "file", required_argument, NULL, 'f' },
        { "file-mib", required_argument, NULL, 'm' },
        { "channels", required_argument, NULL, 'c' },
        { "endpoint", required_argument, NULL, 'e' },
        { "channel", required_argument, NULL, 'n' },
        { "credit", required_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *producers = NULL, *workers = NULL, *file = NULL, *endpoint = NULL,
               *channel = NULL, *channels = "email,inventory,courier";
    long file_mib = 64, credit = FLOOR_WORKER_CREDIT;
    int c;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
            case 'p': producers = optarg; break;
            case 'w': workers = optarg; break;
            case 'f': file = optarg; break;
            case 'c': channels = optarg; break;
            case 'e': endpoint = optarg; break;
            case 'n': channel = optarg; break;
            case 'm':
                file_mib = strtol (optarg, &end, 10);
                if (*end != '\0' || file_mib < 16 || file_mib > 4096) {
                    fprintf (stderr, "herald_floor_e2e: --file-mib: expected 16..4096, got '%s'\n",
                             optarg);
                    return 64;
                }
                break;
            case 'k':
                credit = strtol (optarg, &end, 10);
                if (*end != '\0' || credit < 1 || credit > 65535) {
                    fprintf (stderr, "herald_floor_e2e: --credit: expected 1..65535, got '%s'\n",
                             optarg);
                    return 64;
                }
                break;
            case 'h': s_usage (stdout); return 0;
            default:  s_usage (stderr); return 64;
        }
    }
    const char *mode = optind < argc? argv[optind++]: "";
    bool server = strcmp (mode, "server") == 0, worker = strcmp (mode, "worker") == 0;
    if (optind < argc || (!server && !worker)
        || (server && (!producers || !workers || !file))
        || (worker && (!endpoint || !channel))) {
        fprintf (stderr, "herald_floor_e2e: expected 'server' with --producers, --workers and "
                 "--file, or 'worker' with --endpoint and --channel\n");
        s_usage (stderr);
        return 64;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    return server? s_run_server (producers, workers, file, file_mib, channels)
                 : floor_worker_run (endpoint, channel, credit, &s_stop);
}
