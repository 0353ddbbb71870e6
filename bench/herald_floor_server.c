/*  herald_floor_server: the machine's floor for a durable ACK, with no
    Herald code in it. A ZeroMQ ROUTER takes HERALD/1 PUBLISH messages; per
    batch of whatever messages have arrived, it appends their event bytes to
    a preallocated file (overwritten in place, so fdatasync has no metadata
    to update) with one write and one fdatasync, then answers each with an
    ACK. Nothing is parsed or checked: what a broker costs above this is the
    broker's own work. Started and stopped (SIGTERM) by herald_bench_peers. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_util.h"

#define FLOOR_BATCH_MAX     2048                /* messages per write, as broker.batch_max */
#define FLOOR_EVENT_MAX     (256 * 1024)        /* as broker.max_event_bytes */
#define FLOOR_BUFFER        (8L << 20)          /* one batch's bytes at most */
#define FLOOR_FRAMES_MAX    8                   /* frames kept of one message (HERALD/1: at most 8) */

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_stop = 1;
}

typedef struct {
    zmq_msg_t id;                   /* the producer's routing id */
    zmq_msg_t corr;                 /* its correlation id */
} floor_pending_t;

typedef struct {
    void *router;
    int fd;
    long file_size;
    long at;                        /* next write offset */
    char *buffer;                   /* the batch's bytes */
    floor_pending_t pending[FLOOR_BATCH_MAX];
    uint64_t events, batches, acked;
} floor_server_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: herald_floor_server --endpoint tcp://127.0.0.1:PORT --file PATH [--file-mib N]\n"
        "\n"
        "The floor for a durable ACK on this machine: a ZeroMQ ROUTER answering HERALD/1\n"
        "PUBLISH with ACK after one write + fdatasync per batch into a preallocated file\n"
        "(default 64 MiB, written in full first, then overwritten in place). Runs until\n"
        "SIGTERM or SIGINT; prints its counts to stderr at the end.\n");
}

//  Receives one message's frames: id, "HERALD/1", "PUBLISH", corr, event.
//  1 if one was taken into pending[n] and buffer (at *used), 0 if none was
//  waiting, -1 on a socket error. A malformed message is dropped.
static int
s_take (floor_server_t *self, int n, long *used)
{
    zmq_msg_t frames[FLOOR_FRAMES_MAX];
    int count = 0, more = 1;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *frame = count < FLOOR_FRAMES_MAX? &frames[count]: &scratch;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->router, count == 0? ZMQ_DONTWAIT: 0) < 0) {
            zmq_msg_close (frame);
            for (int i = 0; i < count && i < FLOOR_FRAMES_MAX; i++)
                zmq_msg_close (&frames[i]);
            return count == 0 && (errno == EAGAIN || errno == EINTR)? 0: -1;
        }
        more = zmq_msg_more (frame);
        if (frame == &scratch)
            zmq_msg_close (frame);
        count++;
    }
    bool ok = count == 5 && zmq_msg_size (&frames[1]) == 8
           && memcmp (zmq_msg_data (&frames[1]), "HERALD/1", 8) == 0
           && zmq_msg_size (&frames[2]) == 7 && memcmp (zmq_msg_data (&frames[2]), "PUBLISH", 7) == 0
           && zmq_msg_size (&frames[4]) <= FLOOR_EVENT_MAX
           && *used + (long) zmq_msg_size (&frames[4]) <= FLOOR_BUFFER;
    if (ok) {
        memcpy (self->buffer + *used, zmq_msg_data (&frames[4]), zmq_msg_size (&frames[4]));
        *used += (long) zmq_msg_size (&frames[4]);
        zmq_msg_init (&self->pending[n].id);
        zmq_msg_init (&self->pending[n].corr);
        zmq_msg_move (&self->pending[n].id, &frames[0]);
        zmq_msg_move (&self->pending[n].corr, &frames[3]);
    }
    for (int i = 0; i < count && i < FLOOR_FRAMES_MAX; i++)
        zmq_msg_close (&frames[i]);
    return ok? 1: 0;
}

//  One write + fdatasync of used bytes at the next offset (from the start
//  again when the file's end is reached). 0, or -1.
static int
s_append (floor_server_t *self, long used)
{
    if (self->at + used > self->file_size)
        self->at = 0;
    if (pwrite (self->fd, self->buffer, (size_t) used, self->at) != used
    ||  fdatasync (self->fd) != 0)
        return -1;
    self->at += used;
    return 0;
}

static void
s_ack (floor_server_t *self, floor_pending_t *p)
{
    char id[24];
    int len = snprintf (id, sizeof id, "floor-%" PRIu64, ++self->acked);
    zmq_msg_send (&p->id, self->router, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->router, "HERALD/1", 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->router, "ACK", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_send (&p->corr, self->router, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->router, id, (size_t) len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->router, "new", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->router, "fsync", 5, ZMQ_DONTWAIT);
    zmq_msg_close (&p->id);
    zmq_msg_close (&p->corr);
}

static int
s_serve (floor_server_t *self)
{
    while (!s_stop) {
        zmq_pollitem_t item = { self->router, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 200) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        long used = 0;
        int n = 0;
        while (n < FLOOR_BATCH_MAX && used + FLOOR_EVENT_MAX <= FLOOR_BUFFER) {
            int rc = s_take (self, n, &used);
            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
            n++;
        }
        if (n == 0)
            continue;
        if (s_append (self, used) != 0) {
            fprintf (stderr, "herald_floor_server: write + fdatasync: %s\n", strerror (errno));
            return -1;
        }
        for (int i = 0; i < n; i++)
            s_ack (self, &self->pending[i]);
        self->events += (uint64_t) n;
        self->batches++;
    }
    return 0;
}

int
main (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "file", required_argument, NULL, 'f' },
        { "file-mib", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *endpoint = NULL, *file = NULL;
    long file_mib = 64;
    int c;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'e')
            endpoint = optarg;
        else
        if (c == 'f')
            file = optarg;
        else
        if (c == 'm') {
            char *end = NULL;
            file_mib = strtol (optarg, &end, 10);
            if (*end != '\0' || file_mib < 16 || file_mib > 4096) {
                fprintf (stderr, "herald_floor_server: --file-mib: expected 16..4096, got '%s'\n",
                         optarg);
                return 64;
            }
        }
        else
        if (c == 'h') {
            s_usage (stdout);
            return 0;
        }
        else {
            s_usage (stderr);
            return 64;
        }
    }
    if (!endpoint || !file || optind < argc) {
        fprintf (stderr, "herald_floor_server: --endpoint and --file are required\n");
        s_usage (stderr);
        return 64;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);

    static floor_server_t self;
    self.file_size = file_mib << 20;
    self.buffer = malloc (FLOOR_BUFFER);
    self.fd = open (file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (!self.buffer || self.fd < 0 || bench_fill_file (self.fd, self.file_size) != 0) {
        fprintf (stderr, "herald_floor_server: %s: %s\n", file, strerror (errno));
        return 1;
    }
    void *ctx = zmq_ctx_new ();
    self.router = ctx? zmq_socket (ctx, ZMQ_ROUTER): NULL;
    int linger = 0, hwm = 0;
    if (!self.router
    ||  zmq_setsockopt (self.router, ZMQ_LINGER, &linger, sizeof linger) != 0
    ||  zmq_setsockopt (self.router, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0
    ||  zmq_setsockopt (self.router, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0
    ||  zmq_bind (self.router, endpoint) != 0) {
        fprintf (stderr, "herald_floor_server: bind %s: %s\n", endpoint, zmq_strerror (errno));
        return 1;
    }
    int rc = s_serve (&self);
    if (rc != 0 && !s_stop)
        fprintf (stderr, "herald_floor_server: stopped: %s\n", zmq_strerror (errno));
    fprintf (stderr, "herald_floor_server: %" PRIu64 " events in %" PRIu64 " batches "
             "(%.1f events per fdatasync)\n", self.events, self.batches,
             self.batches? (double) self.events / (double) self.batches: 0.0);
    zmq_close (self.router);
    zmq_ctx_term (ctx);
    close (self.fd);
    unlink (file);
    free (self.buffer);
    return rc == 0? 0: 1;
}
