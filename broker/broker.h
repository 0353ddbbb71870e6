/*  broker: herald-broker's engine. One poll loop (hw_poll, herald_wire.h,
    over its ZeroMQ sockets and the store's descriptors): drain what arrived,
    validate, write one transaction, commit (fsync), then send the ACKs of
    that batch; dispatch tasks within worker credit; heartbeats, leases,
    retries and dead letters on monotonic deadlines. */
#ifndef HERALD_BROKER_H
#define HERALD_BROKER_H

#include <signal.h>

#include "herald_config.h"

typedef struct broker broker_t;

typedef enum {
    BROKER_OK = 0,
    BROKER_ERR_BIND,        /* an endpoint could not be bound */
    BROKER_ERR_STORE,       /* the store could not be opened (corrupt, unreadable) */
    BROKER_ERR_IO,          /* the store failed durably (fsync): stopped rather than pretend */
    BROKER_ERR_CONFIG,      /* security cannot start: secret key unreadable or open to others, no CURVE */
    BROKER_ERR_INTERNAL
} broker_status_t;

/*  Opens the store, recovers unfinished tasks, binds the three endpoints.
    Returns NULL with *status and err set. config is borrowed for the
    broker's lifetime. */
broker_t *
    broker_new (const herald_config_t *config, broker_status_t *status, char *err, size_t errlen);

/*  Runs until *stop becomes non-zero (then stops gracefully within
    broker.shutdown_timeout) or a fatal store error. */
broker_status_t
    broker_run (broker_t *self, volatile sig_atomic_t *stop);

void
    broker_destroy (broker_t **self_p);

/*  broker_run reloads the configuration file whenever *reload becomes
    non-zero (SIGHUP), and clears it: what can change live changes between
    two turns, the rest waits for a restart (reload.h). */
void
    broker_watch_reload (broker_t *self, volatile sig_atomic_t *reload);

#endif
