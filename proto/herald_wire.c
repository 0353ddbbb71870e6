/*  herald_wire: ZeroMQ I/O for Herald messages. Every Herald socket is made
    here, so its options (HWM, ZMQ_MAXMSGSIZE, ROUTER_MANDATORY, reconnect and
    handshake intervals, ZMTP heartbeats) are decided in one place. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_clock.h"
#include "herald_wire.h"

#define S_HANDSHAKE_IVL_MS     5000     /* a peer that does not finish ZMTP in time is dropped */
#define S_BACKLOG              1024     /* listen queue: a burst of connects is not met with dropped SYNs */
#define S_MONITOR_EVENTS       (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED \
                                | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL \
                                | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/*  In libzmq 4.3 the option works but its name is in the draft API only. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif
#define S_RECONNECT_IVL_MS     100
#define S_RECONNECT_IVL_MAX_MS 2000
#define S_ZMTP_HEARTBEAT_MS    5000     /* tcp only: detects half-open connections */
#define S_ZMTP_TIMEOUT_MS      15000

static bool
s_is_router (hw_role_t role)
{
    return role == HW_PRODUCER_ROUTER || role == HW_WORKER_ROUTER || role == HW_ADMIN_ROUTER;
}

static int
s_set_int (void *socket, int option, int value)
{
    return zmq_setsockopt (socket, option, &value, sizeof value);
}

static int
s_set_text (void *socket, int option, const char *value)
{
    return zmq_setsockopt (socket, option, value, strlen (value));
}

/*  CURVE server (ROUTER) or client (DEALER) options. 0 / -1 (errno). */
static int
s_set_curve (void *socket, bool router, const hw_options_t *options)
{
    if (!zmq_has ("curve")) {
        errno = ENOTSUP;
        return -1;
    }
    if (router) {
        if (!options->curve_secret || !options->zap_domain || !*options->zap_domain) {
            errno = EINVAL;
            return -1;
        }
        return s_set_int (socket, ZMQ_CURVE_SERVER, 1)
            || s_set_text (socket, ZMQ_CURVE_SECRETKEY, options->curve_secret)
            || s_set_text (socket, ZMQ_ZAP_DOMAIN, options->zap_domain)
            || s_set_int (socket, ZMQ_ZAP_ENFORCE_DOMAIN, 1)? -1: 0;
    }
    if (!options->curve_public || !options->curve_secret || !options->curve_server) {
        errno = EINVAL;
        return -1;
    }
    return s_set_text (socket, ZMQ_CURVE_SERVERKEY, options->curve_server)
        || s_set_text (socket, ZMQ_CURVE_PUBLICKEY, options->curve_public)
        || s_set_text (socket, ZMQ_CURVE_SECRETKEY, options->curve_secret)? -1: 0;
}

/*  Writes "what endpoint: strerror" into err and closes socket. Returns NULL
    with errno preserved. */
static void *
s_fail (void *socket, const char *what, const char *endpoint, char *err, size_t errlen)
{
    int saved = errno;
    if (err && errlen)
        snprintf (err, errlen, "%s %s: %s", what, endpoint, zmq_strerror (saved));
    if (socket) {
        s_set_int (socket, ZMQ_LINGER, 0);
        zmq_close (socket);
    }
    errno = saved;
    return NULL;
}

void *
hw_socket_new (void *ctx, hw_role_t role, const char *endpoint,
               const hw_options_t *options, char *err, size_t errlen)
{
    const hw_options_t defaults = { .hwm = 0, .max_msg_size = -1, .linger_ms = 0 };
    if (!options)
        options = &defaults;
    if (err && errlen)
        err[0] = '\0';
    if (!ctx || !endpoint) {
        errno = EINVAL;
        return s_fail (NULL, "socket for", endpoint? endpoint: "(null)", err, errlen);
    }
    bool router = s_is_router (role);
    void *socket = zmq_socket (ctx, router? ZMQ_ROUTER: ZMQ_DEALER);
    if (!socket)
        return s_fail (NULL, "socket for", endpoint, err, errlen);

    int64_t max_msg_size = options->max_msg_size < 0? -1: (int64_t) options->max_msg_size;
    if (options->hwm > 0
    &&  (s_set_int (socket, ZMQ_SNDHWM, options->hwm)
      || s_set_int (socket, ZMQ_RCVHWM, options->hwm)))
        return s_fail (socket, "set HWM for", endpoint, err, errlen);
    if (zmq_setsockopt (socket, ZMQ_MAXMSGSIZE, &max_msg_size, sizeof max_msg_size))
        return s_fail (socket, "set ZMQ_MAXMSGSIZE for", endpoint, err, errlen);
    if (s_set_int (socket, ZMQ_LINGER, options->linger_ms))
        return s_fail (socket, "set ZMQ_LINGER for", endpoint, err, errlen);
    int handshake_ivl = options->handshake_ivl_ms > 0? options->handshake_ivl_ms: S_HANDSHAKE_IVL_MS;
    if (s_set_int (socket, ZMQ_HANDSHAKE_IVL, handshake_ivl))
        return s_fail (socket, "set ZMQ_HANDSHAKE_IVL for", endpoint, err, errlen);
    if (options->curve_secret && s_set_curve (socket, router, options) != 0) {
        if (errno == ENOTSUP && err && errlen) {
            snprintf (err, errlen, "CURVE for %s: this libzmq has no CURVE support (zmq_has (\"curve\") "
                      "is false): install a libzmq built with libsodium", endpoint);
            s_set_int (socket, ZMQ_LINGER, 0);
            zmq_close (socket);
            errno = ENOTSUP;
            return NULL;
        }
        return s_fail (socket, "set CURVE keys for", endpoint, err, errlen);
    }
    if (options->monitor && zmq_socket_monitor (socket, options->monitor, S_MONITOR_EVENTS))
        return s_fail (socket, "monitor", endpoint, err, errlen);

    if (router) {
        /*  A reply to a peer that has gone fails with EHOSTUNREACH instead of
            vanishing, and a full peer gives EAGAIN (with ZMQ_DONTWAIT). */
        if (s_set_int (socket, ZMQ_ROUTER_MANDATORY, 1)
        ||  s_set_int (socket, ZMQ_BACKLOG, S_BACKLOG))
            return s_fail (socket, "set ROUTER options for", endpoint, err, errlen);
    }
    else {
        /*  A client does not queue to a connection that is not up, so
            "broker unavailable" shows as a send that cannot proceed. A worker
            keeps its messages queued across a reconnect instead. */
        if (role == HW_CLIENT_DEALER && s_set_int (socket, ZMQ_IMMEDIATE, 1))
            return s_fail (socket, "set ZMQ_IMMEDIATE for", endpoint, err, errlen);
        if (s_set_int (socket, ZMQ_RECONNECT_IVL, S_RECONNECT_IVL_MS)
        ||  s_set_int (socket, ZMQ_RECONNECT_IVL_MAX, S_RECONNECT_IVL_MAX_MS))
            return s_fail (socket, "set reconnect interval for", endpoint, err, errlen);
    }
    if (strncmp (endpoint, "tcp://", 6) == 0
    &&  (s_set_int (socket, ZMQ_HEARTBEAT_IVL, S_ZMTP_HEARTBEAT_MS)
      || s_set_int (socket, ZMQ_HEARTBEAT_TIMEOUT, S_ZMTP_TIMEOUT_MS)))
        return s_fail (socket, "set ZMTP heartbeat for", endpoint, err, errlen);

    if (router) {
        if (zmq_bind (socket, endpoint))
            return s_fail (socket, "bind", endpoint, err, errlen);
    }
    else
    if (zmq_connect (socket, endpoint))
        return s_fail (socket, "connect", endpoint, err, errlen);
    return socket;
}

/*  Discards the rest of a multipart message whose first part was read. */
static void
s_drain (void *socket)
{
    int more = 1;
    size_t more_size = sizeof more;
    while (zmq_getsockopt (socket, ZMQ_RCVMORE, &more, &more_size) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init (&part);
        int rc = zmq_msg_recv (&part, socket, 0);
        zmq_msg_close (&part);
        if (rc == -1 && errno != EINTR)
            break;
        more_size = sizeof more;
    }
}

int
hw_recv (void *socket, bool router, hw_msg_t *in, int flags)
{
    in->part_count = 0;
    in->count = 0;
    in->identity = hp_strn (NULL, 0);
    in->too_many_frames = false;
    in->router = false;

    const size_t keep = (router? 1: 0) + HP_MAX_FRAMES;
    bool more = true;
    bool first = true;
    while (more) {
        zmq_msg_t spill;
        zmq_msg_t *part = &spill;
        if (in->part_count < keep)
            part = &in->parts[in->part_count++];
        else
            in->too_many_frames = true;
        zmq_msg_init (part);

        int rc;
        do
            rc = zmq_msg_recv (part, socket, first? flags: 0);
        while (rc == -1 && errno == EINTR && !first);
        if (rc == -1) {
            int saved = errno;
            if (part == &spill)
                zmq_msg_close (&spill);
            if (!first)
                s_drain (socket);
            errno = saved;
            return -1;
        }
        more = zmq_msg_more (part);
        if (part == &spill)
            zmq_msg_close (&spill);
        first = false;
    }

    size_t start = 0;
    if (router) {
        in->identity = hp_strn (zmq_msg_data (&in->parts[0]), zmq_msg_size (&in->parts[0]));
        start = 1;
        in->router = true;
    }
    for (size_t i = start; i < in->part_count; i++)
        in->frames[in->count++] = (hp_frame_t) {
            zmq_msg_data (&in->parts[i]), zmq_msg_size (&in->parts[i])
        };
    return 0;
}

void
hw_msg_close (hw_msg_t *in)
{
    for (size_t i = 0; i < in->part_count; i++)
        zmq_msg_close (&in->parts[i]);
    in->part_count = 0;
    in->count = 0;
    in->identity = hp_strn (NULL, 0);
    in->router = false;
}

/*  The routing id frame is made by the ROUTER itself; the frames after it
    carry the connection's metadata. */
const char *
hw_msg_user_id (const hw_msg_t *in)
{
    return in->router && in->part_count > 1? zmq_msg_gets (&in->parts[1], "User-Id"): NULL;
}

int
hw_msg_peer_fd (const hw_msg_t *in)
{
    /*  zmq_msg_get takes a message it does not change as not const. */
    return in->router && in->part_count > 1? zmq_msg_get ((zmq_msg_t *) &in->parts[1], ZMQ_SRCFD): -1;
}

int
hw_decode (const hw_msg_t *in, hp_msg_t *msg, hp_error_t *err)
{
    hp_error_t scratch_err;
    if (!err)
        err = &scratch_err;
    int rc = hp_decode (in->frames, in->count, msg, err);
    if (!in->too_many_frames)
        return rc;
    /*  Signature and command errors come first; after them, the frame count
        (the command and corr that hp_decode found are kept for a NACK). */
    if (rc == 0 || (err->code != HP_CODE_VERSION && msg->command != HP_NONE)) {
        err->code = HP_CODE_BAD_REQUEST;
        snprintf (err->text, sizeof err->text,
                  "frame %d: too many frames (no message has more than %d)",
                  HP_MAX_FRAMES, HP_MAX_FRAMES);
    }
    return -1;
}

int
hw_send (void *socket, hp_str_t identity, const hp_msg_t *msg, int flags)
{
    hp_encoded_t out;
    if (hp_encode (msg, &out)) {
        errno = EINVAL;
        return -1;
    }
    flags &= ZMQ_DONTWAIT;
    /*  If the first part fails (EHOSTUNREACH, EAGAIN) nothing was queued.
        Once it is accepted, libzmq takes the rest of the message whole. */
    if (identity.ptr
    &&  zmq_send (socket, identity.ptr, identity.len, flags | ZMQ_SNDMORE) == -1)
        return -1;
    for (size_t i = 0; i < out.count; i++) {
        const void *data = out.frames[i].size? out.frames[i].data: "";
        int more = i + 1 < out.count? ZMQ_SNDMORE: 0;
        if (zmq_send (socket, data, out.frames[i].size, flags | more) == -1)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/*  Handshake watch                                                          */

struct hw_watch {
    void *socket;               /* PAIR connected to the watched socket's monitor */
    char endpoint[64];
    int failed;                 /* the latest handshake: 0 succeeded (or none yet), 1 failed with
                                   a bare close, 2 refused or a protocol error (reason says which) */
    bool curve;                 /* the watched socket is a CURVE client */
    char reason[200];
};

hw_watch_t *
hw_watch_new (void *ctx, hw_options_t *options)
{
    hw_watch_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->curve = options->curve_server != NULL;
    /*  A name never used before in this process: a closed socket's monitor
        may still hold the last one for a moment (libzmq unbinds it
        asynchronously), and a reused name would be "address in use". */
    static _Atomic unsigned long s_watches;
    snprintf (self->endpoint, sizeof self->endpoint, "inproc://herald-watch-%lu",
              (unsigned long) atomic_fetch_add (&s_watches, 1));
    /*  Connected before the monitor exists: libzmq's monitor blocks its
        I/O thread on an event nobody can take, and an unlimited pipe keeps
        a watch nobody reads from doing so too. */
    self->socket = zmq_socket (ctx, ZMQ_PAIR);
    int unlimited = 0;
    if (!self->socket || zmq_setsockopt (self->socket, ZMQ_RCVHWM, &unlimited, sizeof unlimited)
    ||  zmq_connect (self->socket, self->endpoint)) {
        hw_watch_destroy (&self);
        return NULL;
    }
    options->monitor = self->endpoint;
    return self;
}

static void
s_watch_event (hw_watch_t *self, uint16_t event, uint32_t value)
{
    switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            self->failed = 0;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            self->failed = 2;
            snprintf (self->reason, sizeof self->reason,
                      "the broker refused this client's key (ZAP %u): it is not in the broker's "
                      "security lists for this endpoint", (unsigned) value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            self->failed = 2;
            if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
                snprintf (self->reason, sizeof self->reason,
                          "security mismatch: the broker uses CURVE and this client has no key, or "
                          "the other way round (--key, security.broker_key)");
            else
            if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
                snprintf (self->reason, sizeof self->reason,
                          "CURVE handshake failed: the broker's key does not match (--server-key)");
            else
                snprintf (self->reason, sizeof self->reason, "handshake failed: protocol error 0x%x",
                          (unsigned) value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            /*  A connection closed with no word after one refused with a
                reason (the client reconnects meanwhile; libzmq may close
                before the peer's ERROR is read): the reason stands. */
            if (self->failed == 2)
                break;
            /*  A bare close says nothing for sure: the broker's ERROR or
                greeting can be lost with the connection (the broker closes
                it with our handshake unread, and the reset discards what we
                had not read yet). Seen on a 2-core machine: a client
                without a key got only bare closes from a CURVE broker in
                one run of three, a refused key now and then. So it names
                what it may be, for this client's mechanism. */
            self->failed = 1;
            if (self->curve)
                snprintf (self->reason, sizeof self->reason,
                          "the broker closed the connection during the CURVE handshake: wrong broker key "
                          "(--server-key)?, or the broker refused this client's key");
            else
                snprintf (self->reason, sizeof self->reason,
                          "the broker closed the connection during the handshake: a security mismatch? (the "
                          "broker uses CURVE and this client has no key: --key)");
            break;
        default:
            break;
    }
}

bool
hw_watch_failed (hw_watch_t *self, char *text, size_t size)
{
    if (!self)
        return false;
    for (;;) {
        zmq_msg_t head, address;
        zmq_msg_init (&head);
        if (zmq_msg_recv (&head, self->socket, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&head);
            break;
        }
        zmq_msg_init (&address);
        if (zmq_msg_more (&head) && zmq_msg_recv (&address, self->socket, 0) != -1
        &&  zmq_msg_size (&head) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy (&event, zmq_msg_data (&head), 2);
            memcpy (&value, (const char *) zmq_msg_data (&head) + 2, 4);
            s_watch_event (self, event, value);
        }
        zmq_msg_close (&head);
        zmq_msg_close (&address);
    }
    if (self->failed && text && size)
        snprintf (text, size, "%s", self->reason);
    return self->failed > 0;
}

void
hw_watch_destroy (hw_watch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hw_watch_t *self = *self_p;
    if (self->socket) {
        int linger = 0;
        zmq_setsockopt (self->socket, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (self->socket);
    }
    free (self);
    *self_p = NULL;
}

void
hw_watch_close (hw_watch_t **self_p, void *socket, int linger_ms)
{
    if (socket) {
        /*  No event leaves the socket after this returns (libzmq sends them
            under a lock that zmq_socket_monitor takes too). */
        if (self_p && *self_p)
            zmq_socket_monitor (socket, NULL, 0);
        zmq_setsockopt (socket, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
        zmq_close (socket);
    }
    hw_watch_destroy (self_p);
}

//  --------------------------------------------------------------------------
//  Waiting

#define S_POLL_MAX  16

int
hw_poll_socket (hw_pollitem_t *item, void *socket)
{
    int fd = -1;
    size_t size = sizeof fd;
    if (zmq_getsockopt (socket, ZMQ_FD, &fd, &size) != 0)
        return -1;
    *item = (hw_pollitem_t) { .socket = socket, .fd = fd, .check = true };
    return 0;
}

void
hw_poll_fd (hw_pollitem_t *item, int fd)
{
    *item = (hw_pollitem_t) { .socket = NULL, .fd = fd };
}

//  Asks a socket whether a message can be received; this also takes its
//  ZMQ_FD's signal. Returns 1, 0, or -1 with errno.
static int
s_readable (hw_pollitem_t *item)
{
    uint32_t events = 0;
    size_t size = sizeof events;
    item->asked++;
    item->check = false;
    if (zmq_getsockopt (item->socket, ZMQ_EVENTS, &events, &size) != 0)
        return -1;
    return (events & ZMQ_POLLIN) != 0;
}

int
hw_poll (hw_pollitem_t *items, int count, long timeout_ms)
{
    if (count < 0 || count > S_POLL_MAX) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd fds[S_POLL_MAX];
    int ready = 0;
    for (int i = 0; i < count; i++) {
        hw_pollitem_t *item = &items[i];
        item->ready = false;
        fds[i] = (struct pollfd) { .fd = item->fd, .events = POLLIN };
        if (item->socket && item->check) {
            int rc = s_readable (item);
            if (rc < 0)
                return -1;
            item->ready = rc == 1;
            ready += rc;
        }
    }
    int64_t deadline = timeout_ms > 0? herald_clock_mono_ms () + timeout_ms: 0;
    for (;;) {
        long wait = ready > 0? 0: timeout_ms < 0? -1: timeout_ms > 0? (long) (deadline - herald_clock_mono_ms ()): 0;
        if (wait < 0 && timeout_ms >= 0)
            wait = 0;
        if (poll (fds, (nfds_t) count, wait > INT_MAX? INT_MAX: (int) wait) < 0)
            /*  Interrupted after sockets were asked: what they said stands
                (their signals are taken; they will not be announced again). */
            return ready > 0 && errno == EINTR? ready: -1;
        for (int i = 0; i < count; i++) {
            hw_pollitem_t *item = &items[i];
            if (item->ready || !(fds[i].revents & (POLLIN | POLLERR | POLLHUP)))
                continue;
            if (item->socket) {
                int rc = s_readable (item);
                if (rc < 0)
                    return -1;
                item->ready = rc == 1;
            }
            else
                item->ready = true;
            ready += item->ready;
        }
        /*  A socket's signal may have been for something else than a
            message (a peer connecting): then wait on, for what is left. */
        if (ready > 0 || wait == 0)
            return ready;
    }
}
