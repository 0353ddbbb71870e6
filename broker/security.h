/*  security: the broker's side of CURVE, ZAP and the connection limits, as
    a few calls from its loop. With security.broker_key set, every endpoint
    is a CURVE server whose clients are checked by the ZAP thread (zap.c)
    against per-role allowlists; the loop then checks each message's User-Id
    (a key removed by a reload loses its connections), a worker's READY
    against the channels its key serves, and each admin verb against the
    key's role. Without it (loopback, ipc, or plaintext: true) only the
    connection cap and the handshake counters apply. A reload (SIGHUP,
    reload.c) applies new key lists (security_apply) without a restart. */
#ifndef HERALD_SECURITY_H
#define HERALD_SECURITY_H

#include <jansson.h>
#include <stdbool.h>

#include "herald_config.h"
#include "herald_proto.h"
#include "herald_wire.h"
#include "refusals.h"

typedef struct security security_t;

#define SECURITY_LOG_LINES      20      /* refusals logged per window, then only counted */
#define SECURITY_LOG_WINDOW_MS  60000

/*  Loads the broker's secret key (refusing a file others may read), checks
    CURVE is available, and starts the ZAP handler and the connection
    monitors in ctx. Call before binding the endpoints. config is borrowed
    for the lifetime of the result. NULL with err on failure (a
    configuration problem: exit 78). */
security_t *
    security_new (void *ctx, const herald_config_t *config, char *err, size_t errlen);

/*  Stops the thread; call before zmq_ctx_term. NULL-safe, nulls *self_p. */
void
    security_destroy (security_t **self_p);

/*  Adds what endpoint's ROUTER needs to options: CURVE server key and ZAP
    domain (CURVE on), the monitor endpoint and the handshake interval. */
void
    security_socket_options (security_t *self, endpoint_t endpoint, hw_options_t *options);

/*  A message arrived on endpoint: true to handle it. false when its
    connection's key is no longer allowed there (removed by a reload) or it
    carries no User-Id: the message is dropped, the connection shut down,
    the refusal counted and logged. Notes the connection's key for reloads. */
bool
    security_admit (security_t *self, endpoint_t endpoint, const hw_msg_t *in);

/*  READY for channel from in's connection: true if its key serves channel.
    Otherwise NACKs the READY on socket (403, naming the channels the key
    serves), counts, logs and returns false. */
bool
    security_may_serve (security_t *self, void *socket, const hw_msg_t *in, const char *channel);

/*  An ADMIN verb from in's connection: 0 when its key's role allows it;
    otherwise HP_CODE_FORBIDDEN with *body a JSON error the caller frees
    (status, track and dead.list need admin_read or admin_operate; dead.show,
    which returns customer data, and every other verb need admin_operate). */
int
    security_admin_check (security_t *self, const hw_msg_t *in, hp_str_t verb, char **body);

/*  Swaps the key lists for those of fresh (the configuration file read
    again by a reload, loaded and checked; its channels are those running,
    matched by name): connected peers whose keys are still allowed keep
    their connections, connections of removed keys are closed. A change
    only a restart can make (CURVE on or off, another broker key) keeps the
    running lists and logs why. 0 / -1. */
int
    security_apply (security_t *self, const herald_config_t *fresh);

/*  The "security" object of `herald status`. New reference. */
json_t *
    security_status (security_t *self);

#endif
