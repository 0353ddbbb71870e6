/*  herald_wire: ZeroMQ I/O for Herald messages, and the one place where
    sockets are created and their options set (HWM, ZMQ_MAXMSGSIZE,
    ZMQ_ROUTER_MANDATORY, linger, heartbeats, handshake interval). */
#ifndef HERALD_WIRE_H
#define HERALD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

#include "herald_proto.h"

typedef enum {
    HW_PRODUCER_ROUTER,     /* broker side of the producer endpoint (bind) */
    HW_WORKER_ROUTER,       /* broker side of the worker endpoint (bind) */
    HW_ADMIN_ROUTER,        /* broker side of the admin endpoint (bind) */
    HW_CLIENT_DEALER,       /* producer / admin client (connect) */
    HW_WORKER_DEALER        /* worker (connect) */
} hw_role_t;

typedef struct {
    int hwm;                /* send and receive high-water mark, 0 = libzmq default */
    long long max_msg_size; /* ZMQ_MAXMSGSIZE, -1 = unlimited */
    int linger_ms;          /* ZMQ_LINGER */
    int handshake_ivl_ms;   /* ZMQ_HANDSHAKE_IVL: a peer must finish ZMTP (and CURVE) by then; 0 = 5 s */
    const char *monitor;    /* inproc:// endpoint that gets the socket's connection events
                               (zmq_socket_monitor, set before bind), NULL = none */
    /*  CURVE (RFC 26), all Z85 text, NULL = the NULL mechanism. ROUTER roles
        are servers: curve_secret and zap_domain (every client is checked by
        the ZAP handler; ZMQ_ZAP_ENFORCE_DOMAIN is on, so no handler means no
        connection). DEALER roles are clients: curve_public, curve_secret and
        curve_server (the broker's public key). */
    const char *curve_public;
    const char *curve_secret;
    const char *curve_server;
    const char *zap_domain;
} hw_options_t;

/*  Creates a socket for role, applies options, binds (ROUTER roles) or
    connects (DEALER roles) to endpoint. Returns the socket, or NULL with
    a message naming the endpoint and errno text in err (also when CURVE is
    asked for and this libzmq has none: zmq_has ("curve")). */
void *
    hw_socket_new (void *ctx, hw_role_t role, const char *endpoint,
                   const hw_options_t *options, char *err, size_t errlen);

/*  A received multipart message. Frames point into parts[]. */
typedef struct {
    zmq_msg_t parts[HP_MAX_FRAMES + 2];
    size_t part_count;          /* parts initialised (to close) */
    hp_str_t identity;          /* ROUTER sockets: the peer's routing id */
    hp_frame_t frames[HP_MAX_FRAMES];
    size_t count;               /* frames after the identity */
    bool too_many_frames;       /* more than HP_MAX_FRAMES: the rest was drained and dropped */
    bool router;                /* received on a ROUTER: parts[1] carries the connection's metadata */
} hw_msg_t;

/*  A ROUTER message's User-Id (what the ZAP handler gave the peer's
    connection), NULL without one; borrowed until hw_msg_close. Looked up
    when asked (a lookup in the message's metadata for every message was
    a fortieth of the broker loop's instructions per publish). */
const char *
    hw_msg_user_id (const hw_msg_t *in);

/*  A ROUTER message's connection descriptor (ZMQ_SRCFD), -1 unknown. */
int
    hw_msg_peer_fd (const hw_msg_t *in);

/*  Receives one whole multipart message (draining extra frames). For ROUTER
    sockets (router = true) the first frame is taken as the identity.
    flags: 0 or ZMQ_DONTWAIT. Returns 0, or -1 (errno EAGAIN, EINTR, ...).
    Call hw_msg_close afterwards in both cases. */
int
    hw_recv (void *socket, bool router, hw_msg_t *in, int flags);

/*  Releases the frames of in. Safe on a closed or failed message. */
void
    hw_msg_close (hw_msg_t *in);

/*  Decodes in into msg (hp_decode on its frames). 0 / -1 with err. */
int
    hw_decode (const hw_msg_t *in, hp_msg_t *msg, hp_error_t *err);

/*  Encodes and sends msg, prefixed with identity when identity.ptr is set.
    flags: 0 or ZMQ_DONTWAIT. Returns 0, or -1 with errno (EAGAIN at HWM,
    EHOSTUNREACH for an unknown peer on a ROUTER_MANDATORY socket). */
int
    hw_send (void *socket, hp_str_t identity, const hp_msg_t *msg, int flags);

/*  A wait over ZeroMQ sockets (for reading) and plain descriptors that asks
    a socket for its events only when its ZMQ_FD signalled or the caller
    touched it since the last time. zmq_poll asks every socket on every
    pass, and makes two passes when it waits: for an idle socket that is
    two system calls (getpid, poll) each time, four per wait, whether or
    not anything arrived for it.

    ZMQ_FD signals edge-triggered: a send or receive on the socket may
    take a signal for messages it does not read, and a drain stopped
    before EAGAIN leaves messages no signal will announce. So after any
    send, receive or option set on a socket, set its item's check: the
    next hw_poll asks it before it waits (and does not wait if it is
    readable). */
typedef struct {
    void *socket;                   /* a ZeroMQ socket, or NULL for fd */
    int fd;                         /* a plain descriptor; for a socket, its ZMQ_FD (hw_poll_socket) */
    bool check;                     /* ask the socket before waiting (set it after touching the socket) */
    bool ready;                     /* out: readable (a socket: a message can be received) */
    unsigned long asked;            /* times the socket was asked for its events (ZMQ_EVENTS) */
} hw_pollitem_t;

/*  Makes item watch socket (for reading), to be asked at the first wait.
    Returns 0, or -1 with errno. */
int
    hw_poll_socket (hw_pollitem_t *item, void *socket);

/*  Makes item watch a plain descriptor for reading. */
void
    hw_poll_fd (hw_pollitem_t *item, int fd);

/*  Waits up to timeout_ms (-1: no limit, 0: not at all) until an item is
    ready, and sets every item's ready. Items whose socket or fd is NULL / -1
    are left out (ready false). Returns how many are ready, or -1 with errno
    (EINTR on a signal, unless a socket was already found ready: a socket's
    signal, once taken, is not given again, so that answer stands). */
int
    hw_poll (hw_pollitem_t *items, int count, long timeout_ms);

/*  Watches a DEALER's handshakes, to tell a user why its connection does
    not come up (the broker refused its key, the broker's key is wrong, one
    side has no CURVE). hw_watch_new connects to a fresh inproc endpoint and
    sets options->monitor to it: pass those options to hw_socket_new. */
typedef struct hw_watch hw_watch_t;

hw_watch_t *
    hw_watch_new (void *ctx, hw_options_t *options);

/*  Reads the events so far. True, with the reason in text, if the latest
    handshake failed (and none succeeded since). */
bool
    hw_watch_failed (hw_watch_t *self, char *text, size_t size);

/*  Closes the watch (after the watched socket). NULL-safe, nulls the pointer. */
void
    hw_watch_destroy (hw_watch_t **self_p);

/*  Closes socket (with linger_ms) and then its watch, in the order libzmq
    needs: the socket's monitor is stopped first, so its I/O thread never
    blocks on an event for a watch that is gone. socket may be NULL;
    nulls *self_p. */
void
    hw_watch_close (hw_watch_t **self_p, void *socket, int linger_ms);

#endif
