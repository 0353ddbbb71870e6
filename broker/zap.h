/*  zap: the broker's security thread. In the broker's ZeroMQ context it
    answers ZAP requests (RFC 27) on inproc://zeromq.zap.01 from its own
    allowlist, and reads the connection events of the three endpoints
    (socket monitors): it counts and logs handshake failures by reason,
    closes connections above broker.max_connections, and tells `peers` when
    a connection is gone. The endpoints set ZMQ_ZAP_ENFORCE_DOMAIN, so if
    this thread is not there, no CURVE client gets in.

    The thread owns its sockets; the broker talks to it over an inproc PAIR
    (reload, sync, stop). Counters are atomics readable from any thread. */
#ifndef HERALD_ZAP_H
#define HERALD_ZAP_H

#include <stdbool.h>

#include "allowlist.h"
#include "peers.h"
#include "refusals.h"

#define ZAP_DOMAIN_PRODUCERS    "producers"     /* ZAP domains, one per endpoint */
#define ZAP_DOMAIN_WORKERS      "workers"
#define ZAP_DOMAIN_ADMIN        "admin"

typedef struct zap zap_t;

typedef struct {
    void *ctx;                              /* the broker's context */
    bool curve;                             /* answer ZAP requests: CURVE is on */
    const char *monitors[ENDPOINT_COUNT];   /* inproc endpoints of the sockets' monitors */
    int max_connections;                    /* per endpoint; above, new connections are closed */
    refusals_t *refusals;                   /* shared, must outlive the zap */
    peers_t *peers;                         /* shared, must outlive the zap */
} zap_options_t;

/*  Starts the thread with *allowlist_p (taken; may be NULL without CURVE)
    and waits until its ZAP endpoint is bound: call it before binding the
    endpoints. Returns NULL with err on failure. */
zap_t *
    zap_new (const zap_options_t *options, allowlist_t **allowlist_p, char *err, size_t errlen);

/*  Stops the thread and closes its sockets (before zmq_ctx_term).
    NULL-safe, nulls the pointer. */
void
    zap_destroy (zap_t **self_p);

/*  Hands *allowlist_p (taken) to the thread, which swaps it in between two
    ZAP requests and handles every connection event queued so far. Returns
    when it is done: 0, or -1 if the thread did not answer. */
int
    zap_reload (zap_t *self, allowlist_t **allowlist_p);

/*  Open connections on endpoint, as the monitor last saw them. */
int
    zap_connections (zap_t *self, endpoint_t endpoint);

#endif
