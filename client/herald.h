/*  herald.h: libherald, the client library for publishing events to Herald
    and querying its admin endpoint.

    The library owns no threads, no signal handlers and never exits the
    process. Blocking calls take a timeout; callers with their own loop can
    poll herald_client_socket() and use herald_send / herald_recv. */
#ifndef HERALD_H
#define HERALD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  libherald.so exports exactly the functions marked HERALD_EXPORT here;
    everything else in it is compiled hidden. */
#if defined (__GNUC__)
#   define HERALD_EXPORT __attribute__ ((visibility ("default")))
#else
#   define HERALD_EXPORT
#endif

typedef enum {
    HERALD_OK = 0,
    HERALD_E_INVALID,       /* bad argument or unusable event JSON (nothing sent) */
    HERALD_E_NACK,          /* the broker refused the event: reply.code and reply.reason say why */
    HERALD_E_BUSY,          /* the broker refused for now (busy, storage): publish again later */
    HERALD_E_TIMEOUT,       /* sent, but no answer in time: it may be stored. Publish the same
                               envelope again (same id): a duplicate if it was stored. A new
                               herald_event_build makes a new id, safe only with the type's key */
    HERALD_E_UNAVAILABLE,   /* no connection to the broker within the timeout */
    HERALD_E_PROTOCOL,      /* the broker's reply was malformed */
    HERALD_E_NOMEM,
    HERALD_E_SYSTEM,        /* socket error: errno says which */
    HERALD_E_DENIED         /* the broker's security refused this client (its CURVE key, or no key):
                               herald_client_error says why */
} herald_status_t;

typedef struct herald_client herald_client_t;

typedef struct {
    uint64_t corr;          /* correlation id of the publish this answers */
    bool acked;             /* true: ACK; false: NACK */
    bool duplicate;         /* ACK: the idempotency key was already stored */
    char event_id[129];     /* ACK: the stored event's id */
    char durability[16];    /* ACK: what was reached: "fsync" (embedded store), "commit", "commit-standby",
                               "commit-async" (PostgreSQL); see PROTOCOL.md */
    int code;               /* NACK: 400 413 422 424 503 507 ... */
    char reason[1024];      /* NACK: what was wrong and where */
} herald_reply_t;

/*  Connects to a broker endpoint ("tcp://127.0.0.1:5570"). Returns a client,
    or NULL (errno set). Connection happens in the background.
    Brokers sharing a store may be given as a list, comma or semicolon
    separated ("tcp://a:5570,tcp://b:5570", each piece scheme://...): the
    client talks to the first, and herald_publish moves to the next on a
    timeout, an unreachable broker or a busy NACK (503), publishing the same
    envelope again (the same idempotency key: stored at most once). */
HERALD_EXPORT herald_client_t *
    herald_client_new (const char *endpoint);

/*  Connects with CURVE, for a broker with a security section: this client's
    key pair comes from secret_file (NAME.secret made by `herald keygen`;
    refused if group or others may read it), the broker's public key from
    server_key_file (the broker.public beside security.broker_key). Returns
    a client, or NULL with the reason in err (errno set). */
herald_client_t *
    herald_client_new_curve (const char *endpoint, const char *secret_file,
                             const char *server_key_file, char *err, size_t errlen);

/*  Same with the keys themselves: Z85 text, 40 characters each. */
herald_client_t *
    herald_client_new_curve_keys (const char *endpoint, const char *public_key,
                                  const char *secret_key, const char *server_key,
                                  char *err, size_t errlen);

/*  Why the last call failed, when more is known than its status (the
    broker refused the key, the broker's key is wrong); "" otherwise. */
const char *
    herald_client_error (herald_client_t *self);

/*  Closes the connection; NULL-safe, nulls the pointer. */
HERALD_EXPORT void
    herald_client_destroy (herald_client_t **self_p);

/*  The endpoint the client talks to now (borrowed). */
HERALD_EXPORT const char *
    herald_client_endpoint (herald_client_t *self);

/*  Moves to the next endpoint of the list (after the last: the first), for
    callers pipelining with herald_send: the sends not answered yet are
    abandoned (herald_outstanding is 0 after); publish them again, with the
    same envelopes. HERALD_E_INVALID with a single endpoint. */
HERALD_EXPORT herald_status_t
    herald_client_failover (herald_client_t *self);

/*  Builds a CloudEvents 1.0 JSON envelope. json is either the event's data
    (any JSON object) or a whole envelope (an object with "specversion").
    Fills specversion, id (a UUID v7: time-ordered), time (now, RFC 3339) and
    source ("herald-client" unless given) when missing; type overrides the
    envelope's when not NULL. Returns a string the caller frees, or NULL
    with err filled ("invalid JSON at line 1 column 7: ..."). */
HERALD_EXPORT char *
    herald_event_build (const char *type, const char *source, const char *json,
                        char *err, size_t errlen);

/*  Publishes one envelope and waits up to timeout_ms for its ACK or NACK.
    HERALD_OK means ACKed (reply->duplicate tells if it was already stored).
    With several endpoints, each broker tried gets an equal share of the time
    left, in turn (see herald_client_new). */
HERALD_EXPORT herald_status_t
    herald_publish (herald_client_t *self, const char *event_json, int timeout_ms,
                    herald_reply_t *reply);

/*  Pipelined publishing: sends without waiting, returns its correlation id. */
HERALD_EXPORT herald_status_t
    herald_send (herald_client_t *self, const char *event_json, int timeout_ms,
                 uint64_t *corr);

/*  Waits up to timeout_ms for the next ACK or NACK of any outstanding send.
    HERALD_OK with reply->acked telling which; HERALD_E_TIMEOUT if none came. */
HERALD_EXPORT herald_status_t
    herald_recv (herald_client_t *self, int timeout_ms, herald_reply_t *reply);

/*  Sends not yet answered. */
HERALD_EXPORT size_t
    herald_outstanding (herald_client_t *self);

/*  The ZeroMQ socket, to poll for ZMQ_POLLIN in the caller's own loop. */
HERALD_EXPORT void *
    herald_client_socket (herald_client_t *self);

/*  Admin request to the broker's admin endpoint (a client connected to it).
    On HERALD_OK, *code is the reply code (200, 404, ...) and *body the JSON
    reply, which the caller frees. */
HERALD_EXPORT herald_status_t
    herald_admin (herald_client_t *self, const char *verb, const char *args_json,
                  int timeout_ms, int *code, char **body);

/*  Text for a status. */
HERALD_EXPORT const char *
    herald_strerror (herald_status_t status);

#ifdef __cplusplus
}
#endif
#endif
