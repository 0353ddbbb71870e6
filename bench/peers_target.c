/*  peers_target: see peers_target.h. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <zmq.h>

#include "herald.h"
#include "peers_target.h"

#define TARGET_SEND_MS  10000       /* a send that cannot leave by then: the peer is stuck */

struct peers_target {
    peers_system_t system;
    herald_client_t *herald;        /* Herald */
    void *ctx;                      /* floor */
    void *dealer;
    uint64_t corr;                  /* floor: last correlation id sent */
    redisContext *redis;            /* Redis */
    char *stream;
    int redis_timeout_ms;           /* the read timeout set on the socket */
    char error[1200];
};

static const char *const s_names[PEERS_SYSTEMS] = { "redis", "floor", "herald" };
static const char *const s_labels[PEERS_SYSTEMS] = { "Redis", "floor", "Herald" };

const char *
peers_system_name (peers_system_t system)
{
    return system < PEERS_SYSTEMS? s_names[system]: "?";
}

const char *
peers_system_label (peers_system_t system)
{
    return system < PEERS_SYSTEMS? s_labels[system]: "?";
}

int
peers_system_parse (const char *name)
{
    for (int i = 0; i < PEERS_SYSTEMS; i++)
        if (strcmp (name, s_names[i]) == 0)
            return i;
    return -1;
}

int
peers_endpoint_split (const char *endpoint, char *host, size_t size, int *port)
{
    const char *rest = strncmp (endpoint, "tcp://", 6) == 0? endpoint + 6: NULL;
    const char *colon = rest? strrchr (rest, ':'): NULL;
    if (!colon || colon == rest || (size_t) (colon - rest) >= size)
        return -1;
    char *end = NULL;
    long value = strtol (colon + 1, &end, 10);
    if (*end != '\0' || value < 1 || value > 65535)
        return -1;
    memcpy (host, rest, (size_t) (colon - rest));
    host[colon - rest] = '\0';
    *port = (int) value;
    return 0;
}

static int
s_set_redis_timeout (peers_target_t *self, int timeout_ms)
{
    if (timeout_ms == self->redis_timeout_ms)
        return 0;
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    if (redisSetTimeout (self->redis, tv) != REDIS_OK) {
        snprintf (self->error, sizeof self->error, "redis: cannot set a timeout: %s",
                  self->redis->errstr);
        return -1;
    }
    self->redis_timeout_ms = timeout_ms;
    return 0;
}

static int
s_connect_redis (peers_target_t *self, const char *endpoint, const char *stream)
{
    char host[256];
    int port;
    if (peers_endpoint_split (endpoint, host, sizeof host, &port) != 0) {
        snprintf (self->error, sizeof self->error, "redis: endpoint '%s' is not tcp://HOST:PORT",
                  endpoint);
        return -1;
    }
    self->stream = strdup (stream? stream: "orders");
    self->redis = redisConnect (host, port);
    if (!self->stream || !self->redis || self->redis->err) {
        snprintf (self->error, sizeof self->error, "redis: cannot connect to %s: %s", endpoint,
                  self->redis? self->redis->errstr: "out of memory");
        return -1;
    }
    return s_set_redis_timeout (self, TARGET_SEND_MS);
}

static int
s_connect_floor (peers_target_t *self, const char *endpoint)
{
    self->ctx = zmq_ctx_new ();
    self->dealer = self->ctx? zmq_socket (self->ctx, ZMQ_DEALER): NULL;
    //  As libherald's DEALER: nothing queued before the connection is up.
    int timeout = TARGET_SEND_MS, linger = 0, immediate = 1;
    if (!self->dealer
    ||  zmq_setsockopt (self->dealer, ZMQ_SNDTIMEO, &timeout, sizeof timeout) != 0
    ||  zmq_setsockopt (self->dealer, ZMQ_LINGER, &linger, sizeof linger) != 0
    ||  zmq_setsockopt (self->dealer, ZMQ_IMMEDIATE, &immediate, sizeof immediate) != 0
    ||  zmq_connect (self->dealer, endpoint) != 0) {
        snprintf (self->error, sizeof self->error, "floor: cannot connect to %s: %s", endpoint,
                  zmq_strerror (errno));
        return -1;
    }
    return 0;
}

peers_target_t *
peers_target_new (peers_system_t system, const char *endpoint, const char *stream,
                  char *err, size_t errlen)
{
    peers_target_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->system = system;
    int rc = -1;
    if (system == PEERS_REDIS)
        rc = s_connect_redis (self, endpoint, stream);
    else
    if (system == PEERS_FLOOR)
        rc = s_connect_floor (self, endpoint);
    else
    if (system == PEERS_HERALD) {
        self->herald = herald_client_new (endpoint);
        rc = self->herald? 0: -1;
        if (rc)
            snprintf (self->error, sizeof self->error, "herald: cannot connect to %s: %s",
                      endpoint, strerror (errno));
    }
    if (rc != 0) {
        snprintf (err, errlen, "%s", self->error[0]? self->error: "unknown system");
        peers_target_destroy (&self);
    }
    return self;
}

void
peers_target_destroy (peers_target_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    peers_target_t *self = *self_p;
    herald_client_destroy (&self->herald);
    if (self->dealer)
        zmq_close (self->dealer);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    if (self->redis)
        redisFree (self->redis);
    free (self->stream);
    free (self);
    *self_p = NULL;
}

static int
s_send_floor (peers_target_t *self, const char *event, size_t len)
{
    char corr[24];
    int corr_len = snprintf (corr, sizeof corr, "%" PRIu64, ++self->corr);
    if (zmq_send (self->dealer, "HERALD/1", 8, ZMQ_SNDMORE) < 0
    ||  zmq_send (self->dealer, "PUBLISH", 7, ZMQ_SNDMORE) < 0
    ||  zmq_send (self->dealer, corr, (size_t) corr_len, ZMQ_SNDMORE) < 0
    ||  zmq_send (self->dealer, event, len, 0) < 0) {
        snprintf (self->error, sizeof self->error, "floor: send: %s", zmq_strerror (errno));
        return -1;
    }
    return 0;
}

//  The floor's answer: "HERALD/1" "ACK" corr event-id status durability.
static int
s_recv_floor (peers_target_t *self, int timeout_ms)
{
    zmq_pollitem_t item = { self->dealer, 0, ZMQ_POLLIN, 0 };
    int ready = zmq_poll (&item, 1, timeout_ms);
    if (ready <= 0) {
        snprintf (self->error, sizeof self->error, "floor: no answer within %d ms", timeout_ms);
        return -1;
    }
    char command[16] = "";
    int frames = 0, more = 1;
    while (more) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, self->dealer, 0) < 0) {
            snprintf (self->error, sizeof self->error, "floor: recv: %s", zmq_strerror (errno));
            zmq_msg_close (&frame);
            return -1;
        }
        if (frames == 1 && zmq_msg_size (&frame) < sizeof command)
            memcpy (command, zmq_msg_data (&frame), zmq_msg_size (&frame));
        more = zmq_msg_more (&frame);
        zmq_msg_close (&frame);
        frames++;
    }
    if (frames != 6 || strcmp (command, "ACK") != 0) {
        snprintf (self->error, sizeof self->error, "floor: unexpected answer '%s' (%d frames)",
                  command, frames);
        return -1;
    }
    return 0;
}

int
peers_target_floor_status (peers_target_t *self, long *values, int n, int timeout_ms)
{
    if (self->system != PEERS_FLOOR) {
        snprintf (self->error, sizeof self->error, "STATUS: only the floor answers it");
        return -1;
    }
    if (zmq_send (self->dealer, "HERALD/1", 8, ZMQ_SNDMORE) < 0
    ||  zmq_send (self->dealer, "STATUS", 6, ZMQ_SNDMORE) < 0
    ||  zmq_send (self->dealer, "status", 6, 0) < 0) {
        snprintf (self->error, sizeof self->error, "floor: send STATUS: %s", zmq_strerror (errno));
        return -1;
    }
    zmq_pollitem_t item = { self->dealer, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, timeout_ms) <= 0) {
        snprintf (self->error, sizeof self->error, "floor: no STATUS answer within %d ms",
                  timeout_ms);
        return -1;
    }
    char command[16] = "", text[256] = "";
    int frames = 0, more = 1;
    while (more) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, self->dealer, 0) < 0) {
            snprintf (self->error, sizeof self->error, "floor: recv: %s", zmq_strerror (errno));
            zmq_msg_close (&frame);
            return -1;
        }
        size_t size = zmq_msg_size (&frame);
        if (frames == 1 && size < sizeof command)
            memcpy (command, zmq_msg_data (&frame), size);
        if (frames == 3 && size < sizeof text)
            memcpy (text, zmq_msg_data (&frame), size);
        more = zmq_msg_more (&frame);
        zmq_msg_close (&frame);
        frames++;
    }
    if (frames != 4 || strcmp (command, "STATUS") != 0) {
        snprintf (self->error, sizeof self->error, "floor: unexpected answer '%s' (%d frames) "
                  "to STATUS", command, frames);
        return -1;
    }
    int count = 0;
    for (char *at = text, *end = NULL; count < n && *at; at = end) {
        errno = 0;
        long v = strtol (at, &end, 10);
        if (end == at || errno)
            break;
        values[count++] = v;
    }
    return count;
}

static int
s_send_redis (peers_target_t *self, const char *event, size_t len)
{
    if (redisAppendCommand (self->redis, "XADD %s * event %b", self->stream, event, len)
        != REDIS_OK) {
        snprintf (self->error, sizeof self->error, "redis: %s", self->redis->errstr);
        return -1;
    }
    //  Written now, as a ZeroMQ send leaves at once: hiredis would otherwise
    //  hold it until the next read.
    int done = 0;
    while (!done)
        if (redisBufferWrite (self->redis, &done) != REDIS_OK) {
            snprintf (self->error, sizeof self->error, "redis: write: %s", self->redis->errstr);
            return -1;
        }
    return 0;
}

static int
s_recv_redis (peers_target_t *self, int timeout_ms)
{
    if (s_set_redis_timeout (self, timeout_ms) != 0)
        return -1;
    redisReply *reply = NULL;
    if (redisGetReply (self->redis, (void **) &reply) != REDIS_OK || !reply) {
        snprintf (self->error, sizeof self->error, "redis: %s", self->redis->errstr);
        return -1;
    }
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf (self->error, sizeof self->error, "redis: %s", reply->str);
        rc = 1;
    }
    else
    if (reply->type != REDIS_REPLY_STRING) {
        snprintf (self->error, sizeof self->error, "redis: XADD answered type %d", reply->type);
        rc = -1;
    }
    freeReplyObject (reply);
    return rc;
}

int
peers_target_send (peers_target_t *self, const char *event, size_t len)
{
    if (self->system == PEERS_HERALD) {
        herald_status_t st = herald_send (self->herald, event, TARGET_SEND_MS, NULL);
        if (st != HERALD_OK) {
            snprintf (self->error, sizeof self->error, "herald: send: %s", herald_strerror (st));
            return -1;
        }
        return 0;
    }
    return self->system == PEERS_FLOOR? s_send_floor (self, event, len)
                                      : s_send_redis (self, event, len);
}

int
peers_target_recv (peers_target_t *self, int timeout_ms)
{
    if (self->system == PEERS_HERALD) {
        herald_reply_t reply;
        herald_status_t st = herald_recv (self->herald, timeout_ms, &reply);
        if (st != HERALD_OK) {
            snprintf (self->error, sizeof self->error, "herald: %s", herald_strerror (st));
            return -1;
        }
        if (!reply.acked) {
            snprintf (self->error, sizeof self->error, "herald: NACK %d: %s", reply.code,
                      reply.reason);
            return 1;
        }
        return 0;
    }
    return self->system == PEERS_FLOOR? s_recv_floor (self, timeout_ms)
                                      : s_recv_redis (self, timeout_ms);
}

const char *
peers_target_error (peers_target_t *self)
{
    return self->error;
}
