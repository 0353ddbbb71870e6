/*  zap: the security thread (contract in zap.h).

    ZAP (RFC 27): a request is version "1.0", request id, domain, address,
    identity, mechanism, then credentials (CURVE: the client's 32-byte public
    key); the reply is version, request id, status code, status text,
    user id, metadata. The user id given back is the client's key in Z85,
    which the broker reads on every message (User-Id) to know who speaks.

    Socket monitor events (libzmq 4.3, version 1): a 6-byte frame (event as
    uint16, value as uint32, native byte order) and the endpoint. libzmq runs
    one I/O thread per context by default, so a handshake failure and the
    DISCONNECTED of the same connection (whose value is its descriptor)
    arrive one after the other: the failure is held until that DISCONNECTED
    so its refusal can name the peer's address, read when it was accepted. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <zmq.h>

#include "herald_clock.h"
#include "herald_log.h"
#include "zap.h"

#define S_ZAP_ENDPOINT      "inproc://zeromq.zap.01"
#define S_ZAP_FRAMES        8               /* request frames kept; more are drained */
#define S_MAX_FD            (1 << 20)       /* descriptors beyond are not given addresses */
#define S_ADDRESS_LEN       64

/*  What the thread knows of one accepted connection. */
typedef struct {
    char address[S_ADDRESS_LEN];    /* "ip:port", "" unknown */
    bool capped;                    /* closed for the connection cap: already counted */
} s_conn_t;

/*  One endpoint's monitor. */
typedef struct {
    void *socket;                   /* PAIR connected to the monitor endpoint, thread-owned */
    bool pending;                   /* a handshake failure waits for its DISCONNECTED */
    refusal_reason_t pending_reason;
} s_monitor_t;

struct zap {
    zap_options_t options;
    pthread_t thread;
    bool started;
    void *control;                  /* caller's PAIR to the thread */
    char control_endpoint[64];
    char error[256];                /* the thread's start-up error */
    /* thread-owned */
    allowlist_t *allowlist;
    s_monitor_t monitors[ENDPOINT_COUNT];
    s_conn_t *conns;                /* indexed by fd */
    int conn_size;
    /* shared */
    _Atomic int open[ENDPOINT_COUNT];
};

/* ------------------------------------------------------------------------ */
/*  Connection bookkeeping (thread)                                          */

static s_conn_t *
s_conn (zap_t *self, int fd, bool grow)
{
    if (fd < 0 || fd >= S_MAX_FD)
        return NULL;
    if (fd >= self->conn_size) {
        if (!grow)
            return NULL;
        int size = self->conn_size? self->conn_size: 256;
        while (size <= fd)
            size *= 2;
        s_conn_t *grown = realloc (self->conns, (size_t) size * sizeof *grown);
        if (!grown)
            return NULL;
        memset (grown + self->conn_size, 0, (size_t) (size - self->conn_size) * sizeof *grown);
        self->conns = grown;
        self->conn_size = size;
    }
    return &self->conns[fd];
}

/*  The peer's "ip:port" (or "local" for ipc) into buf. */
static void
s_peer_address (int fd, char *buf, size_t size)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    buf[0] = '\0';
    if (getpeername (fd, (struct sockaddr *) &addr, &len) != 0)
        return;
    char ip[INET6_ADDRSTRLEN];
    if (addr.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *) &addr;
        inet_ntop (AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf (buf, size, "%s:%u", ip, (unsigned) ntohs (in->sin_port));
    }
    else
    if (addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &addr;
        inet_ntop (AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf (buf, size, "[%s]:%u", ip, (unsigned) ntohs (in6->sin6_port));
    }
    else
    if (addr.ss_family == AF_UNIX)
        snprintf (buf, size, "local");
}

/* ------------------------------------------------------------------------ */
/*  Monitor events (thread)                                                  */

static refusal_reason_t
s_protocol_reason (zap_t *self, uint32_t code)
{
    if (self->options.curve && code == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return REFUSAL_NO_KEY;
    if (self->options.curve && code == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        return REFUSAL_WRONG_SERVER_KEY;
    return REFUSAL_PROTOCOL;
}

static void
s_on_event (zap_t *self, endpoint_t endpoint, uint16_t event, uint32_t value)
{
    s_monitor_t *monitor = &self->monitors[endpoint];
    switch (event) {
        case ZMQ_EVENT_ACCEPTED: {
            int fd = (int) value;
            peers_forget (self->options.peers, fd);
            s_conn_t *conn = s_conn (self, fd, true);
            if (conn) {
                s_peer_address (fd, conn->address, sizeof conn->address);
                conn->capped = false;
            }
            int open = atomic_fetch_add (&self->open[endpoint], 1) + 1;
            if (open > self->options.max_connections) {
                /*  libzmq has no "refuse": shutting the socket down makes its
                    I/O thread see the end of the stream and close it. */
                shutdown (fd, SHUT_RDWR);
                if (conn)
                    conn->capped = true;
                refusals_add (self->options.refusals, endpoint, REFUSAL_CONNECTION_CAP,
                              "address=%s open=%d max_connections=%d",
                              conn && conn->address[0]? conn->address: "-", open - 1,
                              self->options.max_connections);
            }
            break;
        }
        case ZMQ_EVENT_DISCONNECTED: {
            int fd = (int) value;
            atomic_fetch_sub (&self->open[endpoint], 1);
            peers_forget (self->options.peers, fd);
            s_conn_t *conn = s_conn (self, fd, false);
            if (monitor->pending && !(conn && conn->capped))
                refusals_add (self->options.refusals, endpoint, monitor->pending_reason, "address=%s",
                              conn && conn->address[0]? conn->address: "-");
            monitor->pending = false;
            if (conn)
                memset (conn, 0, sizeof *conn);
            break;
        }
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            if (!monitor->pending) {
                monitor->pending = true;
                monitor->pending_reason = REFUSAL_HANDSHAKE;
            }
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            monitor->pending = true;
            monitor->pending_reason = s_protocol_reason (self, value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            monitor->pending = false;   /* the ZAP handler counted it */
            break;
        default:
            break;
    }
}

/*  Handles every event queued on endpoint's monitor. */
static void
s_drain_monitor (zap_t *self, endpoint_t endpoint)
{
    void *socket = self->monitors[endpoint].socket;
    if (!socket)
        return;
    for (;;) {
        zmq_msg_t head, address;
        zmq_msg_init (&head);
        if (zmq_msg_recv (&head, socket, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&head);
            return;
        }
        bool complete = zmq_msg_more (&head);
        zmq_msg_init (&address);
        if (complete)
            complete = zmq_msg_recv (&address, socket, 0) != -1;
        if (complete && zmq_msg_size (&head) == 6) {
            const uint8_t *data = zmq_msg_data (&head);
            uint16_t event;
            uint32_t value;
            memcpy (&event, data, 2);
            memcpy (&value, data + 2, 4);
            s_on_event (self, endpoint, event, value);
        }
        zmq_msg_close (&head);
        zmq_msg_close (&address);
    }
}

/* ------------------------------------------------------------------------ */
/*  ZAP requests (thread)                                                    */

static bool
s_frame_is (zmq_msg_t *frame, const char *text)
{
    size_t len = strlen (text);
    return zmq_msg_size (frame) == len && memcmp (zmq_msg_data (frame), text, len) == 0;
}

/*  Copies a frame as printable text (other bytes as '?') into buf. */
static const char *
s_frame_text (zmq_msg_t *frame, char *buf, size_t size)
{
    size_t len = zmq_msg_size (frame);
    const unsigned char *data = zmq_msg_data (frame);
    size_t i = 0;
    for (; i < len && i + 1 < size; i++)
        buf[i] = data[i] >= 0x20 && data[i] < 0x7f && data[i] != '"' && data[i] != '\\'? (char) data[i]: '?';
    buf[i] = '\0';
    return buf;
}

/*  Decides one request: 200 with the key as user id, or 400. */
static const char *
s_decide (zap_t *self, zmq_msg_t *frames, size_t count, char user_id[HERALD_KEY_TEXT])
{
    user_id[0] = '\0';
    if (count < 6 || !s_frame_is (&frames[0], "1.0")) {
        herald_error ("malformed ZAP request refused", "frames=%zu", count);
        return "400";
    }
    endpoint_t endpoint = ENDPOINT_COUNT;
    if (s_frame_is (&frames[2], ZAP_DOMAIN_PRODUCERS))
        endpoint = ENDPOINT_PRODUCERS;
    else
    if (s_frame_is (&frames[2], ZAP_DOMAIN_WORKERS))
        endpoint = ENDPOINT_WORKERS;
    else
    if (s_frame_is (&frames[2], ZAP_DOMAIN_ADMIN))
        endpoint = ENDPOINT_ADMIN;
    char address[S_ADDRESS_LEN];
    s_frame_text (&frames[3], address, sizeof address);
    if (endpoint == ENDPOINT_COUNT || !s_frame_is (&frames[5], "CURVE") || count < 7
    ||  zmq_msg_size (&frames[6]) != 32) {
        char domain[64], mechanism[16];
        herald_error ("ZAP request refused: not a CURVE request for a Herald endpoint",
                      "domain=\"%s\" mechanism=\"%s\" address=%s",
                      s_frame_text (&frames[2], domain, sizeof domain),
                      s_frame_text (&frames[5], mechanism, sizeof mechanism), address);
        return "400";
    }
    char key[HERALD_KEY_TEXT];
    if (!zmq_z85_encode (key, zmq_msg_data (&frames[6]), 32))
        return "400";
    const allowlist_entry_t *entry = allowlist_find (self->allowlist, key);
    if (!entry) {
        const char *removed = allowlist_removed_name (self->allowlist, key);
        if (removed)
            refusals_add (self->options.refusals, endpoint, REFUSAL_REMOVED_KEY,
                          "key=\"%s\" name=%s address=%s", key, removed, address);
        else
            refusals_add (self->options.refusals, endpoint, REFUSAL_UNKNOWN_KEY,
                          "key=\"%s\" address=%s", key, address);
        return "400";
    }
    if (!allowlist_permits (entry, endpoint)) {
        refusals_add (self->options.refusals, endpoint, REFUSAL_WRONG_ROLE,
                      "key=\"%s\" name=%s address=%s", key, entry->name, address);
        return "400";
    }
    memcpy (user_id, key, HERALD_KEY_TEXT);
    return "200";
}

static void
s_handle_zap (zap_t *self, void *handler)
{
    zmq_msg_t frames[S_ZAP_FRAMES];
    size_t count = 0;
    bool more = true;
    while (more) {
        zmq_msg_t spill;
        zmq_msg_t *frame = count < S_ZAP_FRAMES? &frames[count]: &spill;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, handler, count == 0? ZMQ_DONTWAIT: 0) == -1) {
            zmq_msg_close (frame);
            if (count == 0)
                return;         /* nothing there after all */
            break;
        }
        more = zmq_msg_more (frame);
        if (frame == &spill)
            zmq_msg_close (&spill);
        else
            count++;
    }
    char user_id[HERALD_KEY_TEXT];
    const char *status = s_decide (self, frames, count, user_id);
    /*  A REP socket must answer every request, even a malformed one. */
    zmq_send (handler, "1.0", 3, ZMQ_SNDMORE);
    if (count > 1)
        zmq_send (handler, zmq_msg_data (&frames[1]), zmq_msg_size (&frames[1]), ZMQ_SNDMORE);
    else
        zmq_send (handler, "", 0, ZMQ_SNDMORE);
    zmq_send (handler, status, 3, ZMQ_SNDMORE);
    const char *text = status[0] == '2'? "OK": "not allowed";
    zmq_send (handler, text, strlen (text), ZMQ_SNDMORE);
    zmq_send (handler, user_id, strlen (user_id), ZMQ_SNDMORE);
    zmq_send (handler, "", 0, 0);
    for (size_t i = 0; i < count; i++)
        zmq_msg_close (&frames[i]);
}

/* ------------------------------------------------------------------------ */
/*  The thread                                                               */

static void *
s_close (void *socket)
{
    if (socket) {
        int linger = 0;
        zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (socket);
    }
    return NULL;
}

/*  Handles one control request; returns false on STOP. */
static bool
s_on_control (zap_t *self, void *control)
{
    char command[16] = "";
    allowlist_t *incoming = NULL;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    int rc = zmq_msg_recv (&msg, control, ZMQ_DONTWAIT);
    if (rc >= 0)
        memcpy (command, zmq_msg_data (&msg), zmq_msg_size (&msg) < sizeof command - 1?
                                             zmq_msg_size (&msg): sizeof command - 1);
    bool more = rc >= 0 && zmq_msg_more (&msg);
    zmq_msg_close (&msg);
    if (rc < 0)
        return true;
    if (more) {
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, control, 0) >= 0 && zmq_msg_size (&msg) == sizeof incoming)
            memcpy (&incoming, zmq_msg_data (&msg), sizeof incoming);
        zmq_msg_close (&msg);
    }
    if (strcmp (command, "RELOAD") == 0 && incoming) {
        allowlist_destroy (&self->allowlist);
        self->allowlist = incoming;
    }
    /*  RELOAD and SYNC: the connection events so far are handled before
        the answer, so peers knows of every connection closed until now. */
    for (int e = 0; e < ENDPOINT_COUNT; e++)
        s_drain_monitor (self, (endpoint_t) e);
    zmq_send (control, "OK", 2, 0);
    return strcmp (command, "STOP") != 0;
}

static void *
s_run (void *arg)
{
    zap_t *self = arg;
    void *ctx = self->options.ctx;
    void *control = zmq_socket (ctx, ZMQ_PAIR);
    void *handler = NULL;
    const char *failed = NULL;
    if (!control || zmq_connect (control, self->control_endpoint) != 0)
        failed = "control socket";
    if (!failed && self->options.curve) {
        handler = zmq_socket (ctx, ZMQ_REP);
        if (!handler || zmq_bind (handler, S_ZAP_ENDPOINT) != 0)
            failed = "bind " S_ZAP_ENDPOINT;
    }
    for (int e = 0; !failed && e < ENDPOINT_COUNT; e++) {
        if (!self->options.monitors[e])
            continue;
        void *socket = zmq_socket (ctx, ZMQ_PAIR);
        int unlimited = 0;
        if (!socket || zmq_setsockopt (socket, ZMQ_RCVHWM, &unlimited, sizeof unlimited) != 0
        ||  zmq_connect (socket, self->options.monitors[e]) != 0)
            failed = "monitor socket";
        self->monitors[e].socket = socket;
    }
    if (failed) {
        snprintf (self->error, sizeof self->error, "security thread: %s: %s", failed, zmq_strerror (errno));
        if (control)
            zmq_send (control, "ERROR", 5, 0);
    }
    else
        zmq_send (control, "READY", 5, 0);

    while (!failed) {
        zmq_pollitem_t items[2 + ENDPOINT_COUNT];
        endpoint_t endpoints[ENDPOINT_COUNT];
        int count = 0;
        items[count++] = (zmq_pollitem_t) { control, 0, ZMQ_POLLIN, 0 };
        if (handler)
            items[count++] = (zmq_pollitem_t) { handler, 0, ZMQ_POLLIN, 0 };
        int first_monitor = count;
        for (int e = 0; e < ENDPOINT_COUNT; e++)
            if (self->monitors[e].socket) {
                endpoints[count - first_monitor] = (endpoint_t) e;
                items[count++] = (zmq_pollitem_t) { self->monitors[e].socket, 0, ZMQ_POLLIN, 0 };
            }
        int64_t timeout = refusals_tick (self->options.refusals, herald_clock_mono_ms ());
        if (zmq_poll (items, count, timeout > 1000? 1000: (long) timeout) < 0) {
            if (errno == EINTR)
                continue;
            herald_error ("security thread: poll failed", "error=\"%s\"", zmq_strerror (errno));
            break;
        }
        for (int i = first_monitor; i < count; i++)
            if (items[i].revents & ZMQ_POLLIN)
                s_drain_monitor (self, endpoints[i - first_monitor]);
        if (handler && (items[1].revents & ZMQ_POLLIN))
            for (int n = 0; n < 256 && (zmq_poll (&items[1], 1, 0) > 0); n++)
                s_handle_zap (self, handler);
        if ((items[0].revents & ZMQ_POLLIN) && !s_on_control (self, control))
            break;
    }
    for (int e = 0; e < ENDPOINT_COUNT; e++)
        self->monitors[e].socket = s_close (self->monitors[e].socket);
    s_close (handler);
    s_close (control);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/*  The broker's side                                                        */

/*  Sends a one-frame command and waits for the answer. 0 / -1. */
static int
s_request (zap_t *self, const char *command)
{
    if (zmq_send (self->control, command, strlen (command), 0) == -1)
        return -1;
    char answer[8];
    int rc;
    do
        rc = zmq_recv (self->control, answer, sizeof answer, 0);
    while (rc == -1 && errno == EINTR);
    return rc == 2 && memcmp (answer, "OK", 2) == 0? 0: -1;
}

zap_t *
zap_new (const zap_options_t *options, allowlist_t **allowlist_p, char *err, size_t errlen)
{
    zap_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "security thread: out of memory");
        return NULL;
    }
    self->options = *options;
    self->allowlist = allowlist_p? *allowlist_p: NULL;
    if (allowlist_p)
        *allowlist_p = NULL;
    snprintf (self->control_endpoint, sizeof self->control_endpoint, "inproc://herald-zap-control-%p",
              (void *) self);
    self->control = zmq_socket (options->ctx, ZMQ_PAIR);
    if (!self->control || zmq_bind (self->control, self->control_endpoint) != 0) {
        snprintf (err, errlen, "security thread: control socket: %s", zmq_strerror (errno));
        zap_destroy (&self);
        return NULL;
    }
    /*  The thread takes no signals: SIGTERM and SIGHUP go to the broker's
        loop, where they interrupt zmq_poll. */
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_BLOCK, &all, &old);
    int rc = pthread_create (&self->thread, NULL, s_run, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf (err, errlen, "security thread: cannot start: %s", strerror (rc));
        zap_destroy (&self);
        return NULL;
    }
    pthread_setname_np (self->thread, "herald-zap");
    self->started = true;
    char answer[8] = "";
    do
        rc = zmq_recv (self->control, answer, sizeof answer, 0);
    while (rc == -1 && errno == EINTR);
    if (rc != 5 || memcmp (answer, "READY", 5) != 0) {
        snprintf (err, errlen, "%s", self->error[0]? self->error: "security thread: did not start");
        zap_destroy (&self);
        return NULL;
    }
    return self;
}

void
zap_destroy (zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zap_t *self = *self_p;
    if (self->started) {
        s_request (self, "STOP");
        pthread_join (self->thread, NULL);
    }
    s_close (self->control);
    allowlist_destroy (&self->allowlist);
    free (self->conns);
    free (self);
    *self_p = NULL;
}

int
zap_reload (zap_t *self, allowlist_t **allowlist_p)
{
    allowlist_t *allowlist = *allowlist_p;
    *allowlist_p = NULL;
    if (zmq_send (self->control, "RELOAD", 6, ZMQ_SNDMORE) == -1) {
        allowlist_destroy (&allowlist);
        return -1;
    }
    /*  From here the thread owns the list (a half-sent message is dropped
        whole, which would leak it: the thread is then not answering anyway). */
    if (zmq_send (self->control, &allowlist, sizeof allowlist, 0) == -1)
        return -1;
    char answer[8];
    int rc;
    do
        rc = zmq_recv (self->control, answer, sizeof answer, 0);
    while (rc == -1 && errno == EINTR);
    return rc == 2 && memcmp (answer, "OK", 2) == 0? 0: -1;
}

int
zap_connections (zap_t *self, endpoint_t endpoint)
{
    if (!self || (int) endpoint < 0 || endpoint >= ENDPOINT_COUNT)
        return 0;
    int open = atomic_load (&self->open[endpoint]);
    return open > 0? open: 0;
}
