/*  herald.c: libherald's producer and admin API over one DEALER socket.
    Requests carry a correlation id (a counter rendered as ASCII decimal);
    replies are matched on it, so late answers to abandoned requests are
    recognised and dropped. Wire format: proto/PROTOCOL.md (via herald_wire).

    A client may be given several endpoints (brokers sharing a store): it
    talks to one at a time and moves to the next on a timeout, an
    unreachable broker or a 503, publishing the same envelope again (the
    same idempotency key: a duplicate if the first one was stored). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "herald.h"
#include "herald_clock.h"
#include "herald_keys.h"
#include "herald_proto.h"
#include "herald_wire.h"

#define HERALD_CLIENT_HWM       100000              /* replies may pile up while we send */
#define HERALD_CLIENT_MAX_MSG   (64LL * 1024 * 1024) /* largest reply accepted (admin lists) */
#define HERALD_CLIENT_MAX_ENDPOINTS 16

struct herald_client {
    void *ctx;                  /* this client's own ZeroMQ context */
    void *socket;               /* DEALER connected to the current broker */
    uint64_t last_corr;         /* last correlation id handed out */
    size_t outstanding;         /* publishes sent and not yet answered */
    hw_watch_t *watch;          /* CURVE: the handshakes, to say why a connection fails */
    char error[256];            /* herald_client_error */
    char *endpoints[HERALD_CLIENT_MAX_ENDPOINTS];   /* the brokers, in the order given */
    size_t endpoint_count;
    size_t current;             /* the one connected */
    bool curve;
    herald_keypair_t keys;      /* CURVE: this client's pair (wiped at destroy) */
    char server_key[HERALD_KEY_LEN + 1];
};

/*  Splits "tcp://a:5570,tcp://b:5570" (',' or ';') into the client's list.
    A text whose pieces are not all scheme://... is one endpoint (an ipc
    path may hold a comma). 0, or -1 with err filled. */
static int
s_endpoints (herald_client_t *self, const char *text, char *err, size_t errlen)
{
    bool list = false;
    const char *p = text;
    size_t pieces = 0;
    while (*p) {
        size_t len = strcspn (p, ",;");
        const char *scheme = memchr (p, ':', len);
        if (len == 0 || !scheme || (size_t) (scheme - p) + 3 > len || strncmp (scheme, "://", 3) != 0) {
            pieces = 0;
            break;
        }
        pieces++;
        p += len;
        if (*p)
            p++, list = true;
    }
    if (!list || pieces < 2) {
        self->endpoints[0] = strdup (text);
        self->endpoint_count = self->endpoints[0]? 1: 0;
        return self->endpoint_count? 0: -1;
    }
    if (pieces > HERALD_CLIENT_MAX_ENDPOINTS) {
        snprintf (err, errlen, "more than %d endpoints", HERALD_CLIENT_MAX_ENDPOINTS);
        errno = EINVAL;
        return -1;
    }
    for (p = text; *p; ) {
        size_t len = strcspn (p, ",;");
        self->endpoints[self->endpoint_count] = strndup (p, len);
        if (!self->endpoints[self->endpoint_count]) {
            snprintf (err, errlen, "out of memory");
            return -1;
        }
        self->endpoint_count++;
        p += len;
        if (*p)
            p++;
    }
    return 0;
}

/*  Connects to endpoints[index] (closing the socket there was): a new
    socket, so that late answers of the broker left never arrive. */
static int
s_connect (herald_client_t *self, size_t index, char *err, size_t errlen)
{
    hw_watch_close (&self->watch, self->socket, 0);
    self->socket = NULL;
    hw_options_t options = {
        .hwm = HERALD_CLIENT_HWM,
        .max_msg_size = HERALD_CLIENT_MAX_MSG,
        .linger_ms = 0          /* never block the caller's exit on a dead broker */
    };
    if (self->curve) {
        options.curve_public = self->keys.public_key;
        options.curve_secret = self->keys.secret_key;
        options.curve_server = self->server_key;
    }
    /*  Without keys too: a broker with CURVE refuses a client without one,
        and the watch lets us say so instead of "unavailable". */
    self->watch = hw_watch_new (self->ctx, &options);
    self->socket = hw_socket_new (self->ctx, HW_CLIENT_DEALER, self->endpoints[index], &options, err, errlen);
    if (!self->socket)
        return -1;
    self->current = index;
    self->outstanding = 0;
    return 0;
}

static void
s_client_free (herald_client_t *self)
{
    hw_watch_close (&self->watch, self->socket, 0);
    self->socket = NULL;
    if (self->ctx)
        while (zmq_ctx_term (self->ctx) == -1 && errno == EINTR)
            ;
    for (size_t i = 0; i < self->endpoint_count; i++)
        free (self->endpoints[i]);
    explicit_bzero (&self->keys, sizeof self->keys);
    free (self);
}

/*  The one constructor: keys NULL for the NULL mechanism. */
static herald_client_t *
s_client_new (const char *endpoint, const herald_keypair_t *keys, const char *server_key,
              char *err, size_t errlen)
{
    char spare[256];
    if (!err || errlen == 0)
        err = spare, errlen = sizeof spare;
    err[0] = '\0';
    if (!endpoint || !*endpoint) {
        snprintf (err, errlen, "no endpoint");
        errno = EINVAL;
        return NULL;
    }
    herald_client_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    if (keys) {
        self->curve = true;
        self->keys = *keys;
        snprintf (self->server_key, sizeof self->server_key, "%s", server_key);
    }
    self->ctx = zmq_ctx_new ();
    if (!self->ctx) {
        snprintf (err, errlen, "cannot make a ZeroMQ context: %s", zmq_strerror (errno));
        s_client_free (self);
        return NULL;
    }
    if (s_endpoints (self, endpoint, err, errlen) != 0 || s_connect (self, 0, err, errlen) != 0) {
        int saved = errno ? errno : EINVAL;
        s_client_free (self);
        errno = saved;
        return NULL;
    }
    return self;
}

herald_client_t *
herald_client_new (const char *endpoint)
{
    return s_client_new (endpoint, NULL, NULL, NULL, 0);
}

herald_client_t *
herald_client_new_curve_keys (const char *endpoint, const char *public_key, const char *secret_key,
                              const char *server_key, char *err, size_t errlen)
{
    char spare[256];
    if (!err || errlen == 0)
        err = spare, errlen = sizeof spare;
    const char *bad = !herald_keys_valid (public_key)? "the public key"
                    : !herald_keys_valid (secret_key)? "the secret key"
                    : !herald_keys_valid (server_key)? "the broker's key": NULL;
    if (bad) {
        snprintf (err, errlen, "%s is not a CURVE key (40 Z85 characters)", bad);
        errno = EINVAL;
        return NULL;
    }
    herald_keypair_t keys;
    memcpy (keys.public_key, public_key, sizeof keys.public_key);
    memcpy (keys.secret_key, secret_key, sizeof keys.secret_key);
    herald_client_t *self = s_client_new (endpoint, &keys, server_key, err, errlen);
    explicit_bzero (&keys, sizeof keys);
    return self;
}

herald_client_t *
herald_client_new_curve (const char *endpoint, const char *secret_file, const char *server_key_file,
                         char *err, size_t errlen)
{
    char spare[256];
    if (!err || errlen == 0)
        err = spare, errlen = sizeof spare;
    herald_keypair_t keys;
    char server_key[HERALD_KEY_LEN + 1];
    if (herald_keys_load_secret (secret_file, &keys, err, errlen) != 0
    ||  herald_keys_load_public (server_key_file, server_key, err, errlen) != 0) {
        explicit_bzero (&keys, sizeof keys);
        errno = EINVAL;
        return NULL;
    }
    herald_client_t *self = s_client_new (endpoint, &keys, server_key, err, errlen);
    explicit_bzero (&keys, sizeof keys);
    return self;
}

const char *
herald_client_error (herald_client_t *self)
{
    return self? self->error: "";
}

void
herald_client_destroy (herald_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_client_free (*self_p);
    *self_p = NULL;
}

const char *
herald_client_endpoint (herald_client_t *self)
{
    return self? self->endpoints[self->current]: NULL;
}

herald_status_t
herald_client_failover (herald_client_t *self)
{
    if (!self || self->endpoint_count < 2)
        return HERALD_E_INVALID;
    char err[256];
    if (s_connect (self, (self->current + 1) % self->endpoint_count, err, sizeof err) != 0) {
        snprintf (self->error, sizeof self->error, "%s", err);
        return HERALD_E_SYSTEM;
    }
    return HERALD_OK;
}

void *
herald_client_socket (herald_client_t *self)
{
    return self? self->socket: NULL;
}

size_t
herald_outstanding (herald_client_t *self)
{
    return self? self->outstanding: 0;
}

const char *
herald_strerror (herald_status_t status)
{
    switch (status) {
        case HERALD_OK:             return "ok";
        case HERALD_E_INVALID:      return "invalid argument or event";
        case HERALD_E_NACK:         return "refused by the broker";
        case HERALD_E_BUSY:         return "broker busy, publish again later";
        case HERALD_E_TIMEOUT:      return "no answer in time";
        case HERALD_E_UNAVAILABLE:  return "broker unavailable";
        case HERALD_E_PROTOCOL:     return "malformed reply from the broker";
        case HERALD_E_NOMEM:        return "out of memory";
        case HERALD_E_SYSTEM:       return "socket error";
        case HERALD_E_DENIED:       return "refused by the broker's security";
    }
    return "unknown status";
}

//  Absolute monotonic deadline for a timeout; -1 waits forever.
static int64_t
s_deadline (int timeout_ms)
{
    return timeout_ms < 0? -1: herald_clock_mono_ms () + timeout_ms;
}

//  Waits for events on the socket until deadline. 1 ready, 0 timed out,
//  -1 error (errno).
static int
s_wait (herald_client_t *self, short events, int64_t deadline)
{
    for (;;) {
        long timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - herald_clock_mono_ms ();
            timeout = left > 0? (long) left: 0;
        }
        zmq_pollitem_t item = { self->socket, 0, events, 0 };
        int rc = zmq_poll (&item, 1, timeout);
        if (rc < 0)
            return -1;
        if (rc > 0 && (item.revents & events))
            return 1;
        if (timeout == 0)
            return 0;
    }
}

//  Sends msg, waiting for a connection (ZMQ_IMMEDIATE) or HWM room until deadline.
static herald_status_t
s_send (herald_client_t *self, const hp_msg_t *msg, int64_t deadline)
{
    hp_str_t no_identity = { NULL, 0 };
    self->error[0] = '\0';
    for (;;) {
        if (hw_send (self->socket, no_identity, msg, ZMQ_DONTWAIT) == 0)
            return HERALD_OK;
        if (errno == EINVAL || errno == EMSGSIZE)
            return HERALD_E_INVALID;
        if (errno != EAGAIN)
            return HERALD_E_SYSTEM;
        int rc = s_wait (self, ZMQ_POLLOUT, deadline);
        if (rc < 0)
            return HERALD_E_SYSTEM;
        if (rc == 0)
            return hw_watch_failed (self->watch, self->error, sizeof self->error)?
                   HERALD_E_DENIED: HERALD_E_UNAVAILABLE;
    }
}

//  Receives and decodes one message until deadline. On HERALD_OK, msg
//  borrows from in; the caller closes in whatever the result.
static herald_status_t
s_recv (herald_client_t *self, int64_t deadline, hw_msg_t *in, hp_msg_t *msg)
{
    for (;;) {
        memset (in, 0, sizeof *in);
        if (hw_recv (self->socket, false, in, ZMQ_DONTWAIT) == 0)
            break;
        hw_msg_close (in);
        if (errno != EAGAIN)
            return HERALD_E_SYSTEM;
        int rc = s_wait (self, ZMQ_POLLIN, deadline);
        if (rc < 0)
            return HERALD_E_SYSTEM;
        if (rc == 0)
            return HERALD_E_TIMEOUT;
    }
    hp_error_t err;
    if (in->too_many_frames || hw_decode (in, msg, &err) != 0)
        return HERALD_E_PROTOCOL;
    return HERALD_OK;
}

//  Parses a correlation id we issued: 1 to 20 ASCII digits.
static int
s_parse_corr (hp_str_t corr, uint64_t *value)
{
    if (!corr.ptr || corr.len == 0 || corr.len > 20)
        return -1;
    uint64_t result = 0;
    for (size_t i = 0; i < corr.len; i++) {
        char c = corr.ptr[i];
        if (c < '0' || c > '9')
            return -1;
        uint64_t digit = (uint64_t) (c - '0');
        if (result > (UINT64_MAX - digit) / 10)
            return -1;
        result = result * 10 + digit;
    }
    *value = result;
    return 0;
}

//  Waits for the next ACK or NACK until deadline and fills reply.
static herald_status_t
s_recv_reply (herald_client_t *self, int64_t deadline, herald_reply_t *reply)
{
    for (;;) {
        hw_msg_t in;
        hp_msg_t msg;
        herald_status_t status = s_recv (self, deadline, &in, &msg);
        if (status != HERALD_OK) {
            hw_msg_close (&in);
            return status;
        }
        if (msg.command != HP_ACK && msg.command != HP_NACK) {
            hw_msg_close (&in);     //  a late ADMIN-REPLY, a heartbeat: not ours
            continue;
        }
        memset (reply, 0, sizeof *reply);
        if (s_parse_corr (msg.corr, &reply->corr) != 0) {
            hw_msg_close (&in);
            return HERALD_E_PROTOCOL;
        }
        reply->acked = msg.command == HP_ACK;
        if (reply->acked) {
            reply->duplicate = msg.duplicate;
            hp_str_copy (msg.event_id, reply->event_id, sizeof reply->event_id);
            hp_str_copy (msg.durability, reply->durability, sizeof reply->durability);
        }
        else {
            reply->code = msg.code;
            hp_str_copy (msg.text, reply->reason, sizeof reply->reason);
        }
        hw_msg_close (&in);
        if (self->outstanding > 0)
            self->outstanding--;
        return HERALD_OK;
    }
}

//  Renders the next correlation id into buf.
static uint64_t
s_next_corr (herald_client_t *self, char *buf, size_t size)
{
    uint64_t corr = ++self->last_corr;
    snprintf (buf, size, "%" PRIu64, corr);
    return corr;
}

static herald_status_t
s_publish_send (herald_client_t *self, const char *event_json, int64_t deadline,
                uint64_t *corr_p)
{
    if (!self || !event_json || !*event_json)
        return HERALD_E_INVALID;
    char corr_text[24];
    uint64_t corr = s_next_corr (self, corr_text, sizeof corr_text);
    hp_msg_t msg;
    memset (&msg, 0, sizeof msg);
    msg.command = HP_PUBLISH;
    msg.corr = hp_str (corr_text);
    msg.body = hp_str (event_json);
    herald_status_t status = s_send (self, &msg, deadline);
    if (status != HERALD_OK)
        return status;
    self->outstanding++;
    if (corr_p)
        *corr_p = corr;
    return HERALD_OK;
}

herald_status_t
herald_send (herald_client_t *self, const char *event_json, int timeout_ms,
             uint64_t *corr)
{
    return s_publish_send (self, event_json, s_deadline (timeout_ms), corr);
}

herald_status_t
herald_recv (herald_client_t *self, int timeout_ms, herald_reply_t *reply)
{
    if (!self || !reply)
        return HERALD_E_INVALID;
    return s_recv_reply (self, s_deadline (timeout_ms), reply);
}

/*  One attempt on the current broker until deadline. */
static herald_status_t
s_publish_once (herald_client_t *self, const char *event_json, int64_t deadline, herald_reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    uint64_t corr = 0;
    herald_status_t status = s_publish_send (self, event_json, deadline, &corr);
    if (status != HERALD_OK)
        return status;
    for (;;) {
        status = s_recv_reply (self, deadline, reply);
        if (status == HERALD_E_PROTOCOL) {
            //  Malformed: ours if nothing else is outstanding, else keep waiting
            if (self->outstanding > 1)
                continue;
            self->outstanding = 0;
            reply->corr = corr;
            return status;
        }
        if (status != HERALD_OK) {
            if (status == HERALD_E_TIMEOUT)
                reply->corr = corr;
            return status;
        }
        if (reply->corr != corr)
            continue;               //  late answer to an abandoned publish
        if (reply->acked)
            return HERALD_OK;
        if (reply->code == HP_CODE_BUSY || reply->code == HP_CODE_STORAGE)
            return HERALD_E_BUSY;
        return HERALD_E_NACK;
    }
}

herald_status_t
herald_publish (herald_client_t *self, const char *event_json, int timeout_ms,
                herald_reply_t *reply)
{
    herald_reply_t scratch;
    if (!reply)
        reply = &scratch;
    memset (reply, 0, sizeof *reply);
    if (!self)
        return HERALD_E_INVALID;
    int64_t deadline = s_deadline (timeout_ms);
    /*  With several brokers each attempt gets its share of what is left;
        a broker that does not answer, cannot be reached or is busy (503)
        passes the same envelope to the next one. */
    for (size_t tried = 1; ; tried++) {
        size_t left = self->endpoint_count - tried + 1;
        int64_t attempt = deadline;
        if (deadline >= 0 && left > 1)
            attempt = herald_clock_mono_ms () + (deadline - herald_clock_mono_ms ()) / (int64_t) left;
        herald_status_t status = s_publish_once (self, event_json, attempt, reply);
        bool again = status == HERALD_E_TIMEOUT || status == HERALD_E_UNAVAILABLE
                  || (status == HERALD_E_BUSY && reply->code == HP_CODE_BUSY);
        if (!again || tried >= self->endpoint_count
        ||  (deadline >= 0 && herald_clock_mono_ms () >= deadline))
            return status;
        if (herald_client_failover (self) != HERALD_OK)
            return status;
    }
}

herald_status_t
herald_admin (herald_client_t *self, const char *verb, const char *args_json,
              int timeout_ms, int *code, char **body)
{
    if (!self || !verb || !*verb || !code || !body)
        return HERALD_E_INVALID;
    *code = 0;
    *body = NULL;
    int64_t deadline = s_deadline (timeout_ms);
    char corr_text[24];
    uint64_t corr = s_next_corr (self, corr_text, sizeof corr_text);
    hp_msg_t msg;
    memset (&msg, 0, sizeof msg);
    msg.command = HP_ADMIN;
    msg.corr = hp_str (corr_text);
    msg.verb = hp_str (verb);
    msg.body = hp_str (args_json && *args_json? args_json: "{}");
    herald_status_t status = s_send (self, &msg, deadline);
    if (status != HERALD_OK)
        return status;
    for (;;) {
        hw_msg_t in;
        hp_msg_t reply;
        status = s_recv (self, deadline, &in, &reply);
        if (status == HERALD_E_PROTOCOL && self->outstanding > 0) {
            hw_msg_close (&in);
            continue;               //  may answer a pipelined publish: keep waiting
        }
        if (status != HERALD_OK) {
            hw_msg_close (&in);
            return status;
        }
        uint64_t reply_corr = 0;
        if (reply.command == HP_ACK || reply.command == HP_NACK) {
            if (self->outstanding > 0)
                self->outstanding--;
        }
        else
        if (reply.command == HP_ADMIN_REPLY
        &&  s_parse_corr (reply.corr, &reply_corr) == 0 && reply_corr == corr) {
            *code = reply.code;
            size_t len = reply.body.ptr? reply.body.len: 0;
            *body = malloc (len + 1);
            if (*body) {
                if (len)
                    memcpy (*body, reply.body.ptr, len);
                (*body)[len] = '\0';
            }
            hw_msg_close (&in);
            return *body? HERALD_OK: HERALD_E_NOMEM;
        }
        hw_msg_close (&in);
    }
}
