/*  bench_floor: what one durable round trip costs on this machine with no
    Herald code in it. A child process serves a ZeroMQ ROUTER socket on an
    ipc:// endpoint; the bench sends it one message at a time from a DEALER
    and times each reply: either plain (the ZeroMQ round trip) or durable,
    the server writing BENCH_FLOOR_WRITE bytes into a preallocated file and
    calling fdatasync before it replies (the least a broker that fsyncs
    before it ACKs can do). Herald's own ACK latency is reported against it,
    measured in blocks taken turn about with Herald's, so that both see the
    same disk at the same moments. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_floor.h"
#include "bench_util.h"

#define FLOOR_WRITE     BENCH_FLOOR_WRITE   /* about one Herald commit: five WAL frames */
#define FLOOR_FILE      (8L * 1024 * 1024)  /* written over and over, as the WAL is */
#define FLOOR_REPLY_MS  10000

struct bench_floor {
    pid_t pid;                      /* the server */
    void *ctx;
    void *dealer;
    char file[200];
    char *buffer;                   /* the message with its first byte set */
    size_t buffer_size;
};

/*  The child: replies to every message; a message whose first byte is 'w'
    is made durable first. Ends when its parent closes (a message "q"). */
static int
s_serve (const char *endpoint, const char *file)
{
    int fd = open (file, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char *block = calloc (1, FLOOR_WRITE);
    if (fd < 0 || !block || bench_fill_file (fd, FLOOR_FILE) != 0)
        return 1;
    void *ctx = zmq_ctx_new ();
    void *router = zmq_socket (ctx, ZMQ_ROUTER);
    if (!router || zmq_bind (router, endpoint) != 0)
        return 1;
    long at = 0;
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init (&id);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&id, router, 0) < 0 || zmq_msg_recv (&body, router, 0) < 0)
            break;
        const char *data = zmq_msg_data (&body);
        size_t size = zmq_msg_size (&body);
        if (size == 1 && data[0] == 'q')
            break;
        if (size > 0 && data[0] == 'w') {
            if (at + FLOOR_WRITE > FLOOR_FILE)
                at = 0;
            if (pwrite (fd, block, FLOOR_WRITE, at) != FLOOR_WRITE || fdatasync (fd) != 0)
                break;
            at += FLOOR_WRITE;
        }
        static const char ack[] = "HERALD/1 ACK corr event-id durable";
        zmq_msg_send (&id, router, ZMQ_SNDMORE);
        zmq_send (router, ack, sizeof ack - 1, 0);
        zmq_msg_close (&body);
    }
    zmq_close (router);
    zmq_ctx_term (ctx);
    close (fd);
    free (block);
    return 0;
}

bench_floor_t *
bench_floor_start (const char *dir)
{
    bench_floor_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    char endpoint[200];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/floor.sock", dir);
    snprintf (self->file, sizeof self->file, "%s/floor.data", dir);
    fflush (stdout);
    fflush (stderr);
    self->pid = fork ();
    if (self->pid < 0) {
        free (self);
        return NULL;
    }
    if (self->pid == 0)
        _exit (s_serve (endpoint, self->file));
    self->ctx = zmq_ctx_new ();
    self->dealer = self->ctx? zmq_socket (self->ctx, ZMQ_DEALER): NULL;
    int timeout = FLOOR_REPLY_MS, linger = 0;
    if (!self->dealer
    ||  zmq_setsockopt (self->dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout) != 0
    ||  zmq_setsockopt (self->dealer, ZMQ_SNDTIMEO, &timeout, sizeof timeout) != 0
    ||  zmq_setsockopt (self->dealer, ZMQ_LINGER, &linger, sizeof linger) != 0
    ||  zmq_connect (self->dealer, endpoint) != 0) {
        bench_floor_stop (&self);
        return NULL;
    }
    return self;
}

double
bench_floor_round_trip (bench_floor_t *self, const char *message, bool durable)
{
    size_t size = strlen (message);
    if (size == 0)
        return -1;
    if (size + 1 > self->buffer_size) {
        char *grown = realloc (self->buffer, size + 1);
        if (!grown)
            return -1;
        self->buffer = grown;
        self->buffer_size = size + 1;
    }
    memcpy (self->buffer, message, size + 1);
    self->buffer[0] = durable? 'w': 'p';
    char reply[128];
    double t0 = bench_now_ms ();
    if (zmq_send (self->dealer, self->buffer, size, 0) < 0
    ||  zmq_recv (self->dealer, reply, sizeof reply, 0) < 0)
        return -1;
    return bench_now_ms () - t0;
}

void
bench_floor_stop (bench_floor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bench_floor_t *self = *self_p;
    if (self->dealer) {
        zmq_send (self->dealer, "q", 1, ZMQ_DONTWAIT);
        zmq_close (self->dealer);
    }
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    if (self->pid > 0) {
        /*  The server ends on "q"; if it did not get it, it is stopped. */
        int status;
        double deadline = bench_now_ms () + 2000;
        while (waitpid (self->pid, &status, WNOHANG) == 0) {
            if (bench_now_ms () > deadline) {
                kill (self->pid, SIGKILL);
                waitpid (self->pid, &status, 0);
                break;
            }
            struct timespec pause = { 0, 5000000 };
            nanosleep (&pause, NULL);
        }
        unlink (self->file);
    }
    free (self->buffer);
    free (self);
    *self_p = NULL;
}
