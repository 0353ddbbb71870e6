/*  floor_worker: see floor_worker.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "floor_frames.h"
#include "floor_worker.h"

typedef struct {
    void *dealer;
    char *results;                  /* this round's RESULTS entries */
    size_t used, cap;
    int count;
    uint64_t tasks;
} floor_worker_t;

static int
s_flush (floor_worker_t *self)
{
    if (self->count == 0)
        return 0;
    int rc = zmq_send (self->dealer, "HERALD/2", 8, ZMQ_SNDMORE) < 0
          || zmq_send (self->dealer, "RESULTS", 7, ZMQ_SNDMORE) < 0
          || zmq_send (self->dealer, self->results, self->used, 0) < 0? -1: 0;
    self->used = 0;
    self->count = 0;
    return rc;
}

//  One TASKS frame: a "done" result per entry ("id lease done 0 0 LF LF").
static int
s_answer (floor_worker_t *self, zmq_msg_t *frame)
{
    const char *at = zmq_msg_data (frame), *end = at + zmq_msg_size (frame);
    while (at < end) {
        const char *lf = memchr (at, '\n', (size_t) (end - at));
        const char *id_end = lf? memchr (at, ' ', (size_t) (lf - at)): NULL;
        const char *lease = id_end? memchr (id_end + 1, ' ', (size_t) (lf - id_end - 1)): NULL;
        const char *len_at = lease? memchr (lease + 1, ' ', (size_t) (lf - lease - 1)): NULL;
        char *stop = NULL;
        unsigned long len = len_at? strtoul (len_at + 1, &stop, 10): 0;
        if (!len_at || stop != lf || (size_t) (end - lf) < 2 || len > (size_t) (end - lf) - 2) {
            fprintf (stderr, "herald_floor_e2e: worker: a malformed TASKS entry\n");
            return -1;
        }
        size_t need = (size_t) (len_at - at) + 16;
        if (self->count == FLOOR_ENTRIES_MAX && s_flush (self) != 0)
            return -1;
        if (self->used + need > self->cap) {
            size_t cap = self->cap? self->cap * 2: 65536;
            char *grown = realloc (self->results, cap);
            if (!grown)
                return -1;
            self->results = grown;
            self->cap = cap;
        }
        //  id SP lease, then " done 0 0" and an empty text.
        memcpy (self->results + self->used, at, (size_t) (id_end - at));
        self->used += (size_t) (id_end - at);
        memcpy (self->results + self->used, lease, (size_t) (len_at - lease));
        self->used += (size_t) (len_at - lease);
        memcpy (self->results + self->used, " done 0 0\n\n", 11);
        self->used += 11;
        self->count++;
        self->tasks++;
        at = lf + 1 + len + 1;
    }
    return 0;
}

int
floor_worker_run (const char *endpoint, const char *channel, long credit,
                  volatile sig_atomic_t *stop)
{
    floor_worker_t self;
    memset (&self, 0, sizeof self);
    void *ctx = zmq_ctx_new ();
    self.dealer = ctx? zmq_socket (ctx, ZMQ_DEALER): NULL;
    int linger = 0, hwm = 0;
    char text[32], name[64];
    snprintf (name, sizeof name, "floor-worker:%d", (int) getpid ());
    if (!self.dealer
    ||  zmq_setsockopt (self.dealer, ZMQ_LINGER, &linger, sizeof linger) != 0
    ||  zmq_setsockopt (self.dealer, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0
    ||  zmq_setsockopt (self.dealer, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0
    ||  zmq_connect (self.dealer, endpoint) != 0) {
        fprintf (stderr, "herald_floor_e2e: worker: connect %s: %s\n", endpoint, zmq_strerror (errno));
        return 1;
    }
    int len = snprintf (text, sizeof text, "%ld", credit);
    char batch[16];
    int batch_len = snprintf (batch, sizeof batch, "%ld", credit < FLOOR_ENTRIES_MAX? credit: FLOOR_ENTRIES_MAX);
    int rc = zmq_send (self.dealer, "HERALD/2", 8, ZMQ_SNDMORE) < 0
          || zmq_send (self.dealer, "READY", 5, ZMQ_SNDMORE) < 0
          || zmq_send (self.dealer, channel, strlen (channel), ZMQ_SNDMORE) < 0
          || zmq_send (self.dealer, text, (size_t) len, ZMQ_SNDMORE) < 0
          || zmq_send (self.dealer, name, strlen (name), ZMQ_SNDMORE) < 0
          || zmq_send (self.dealer, batch, (size_t) batch_len, 0) < 0? -1: 0;
    while (rc == 0 && !*stop) {
        zmq_pollitem_t item = { self.dealer, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 200) < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        //  One loop round: every TASKS message waiting, then one RESULTS.
        for (;;) {
            zmq_msg_t f[FLOOR_FRAMES_MAX];
            int count = floor_recv (self.dealer, f);
            if (count < 0)
                rc = -1;
            if (count <= 0)
                break;
            if (count == 4 && floor_is (&f[0], "HERALD/2") && floor_is (&f[1], "TASKS")
                && s_answer (&self, &f[3]) != 0)
                rc = -1;
            floor_close (f, count);
        }
        if (rc == 0)
            rc = s_flush (&self);
    }
    if (rc != 0 && !*stop)
        fprintf (stderr, "herald_floor_e2e: worker: stopped: %s\n", zmq_strerror (errno));
    fprintf (stderr, "herald_floor_e2e: worker %s: %" PRIu64 " tasks done\n", channel, self.tasks);
    zmq_close (self.dealer);
    zmq_ctx_term (ctx);
    free (self.results);
    return rc == 0? 0: 1;
}
