/*  herald_worker: the worker runtime. One DEALER to the broker, one zmq_poll
    loop on one thread, no sleeps (a driver may keep threads of its own
    behind a descriptor the loop polls, driver.h): it registers (READY
    channel capacity name), starts each TASK in the channel's driver,
    reports DONE / RETRY / THROTTLED / FAILED (texts redacted), heartbeats,
    re-registers when the broker restarts or goes silent, and on stop lets
    in-progress deliveries finish before it says DISCONNECT. */
#ifndef HERALD_WORKER_H
#define HERALD_WORKER_H

#include <signal.h>
#include <stddef.h>

#include "driver.h"
#include "herald_config.h"
#include "herald_keys.h"

typedef struct _herald_worker_t herald_worker_t;

/*  Creates a worker for config->channels[channel_index]: opens the channel's
    driver and connects to endpoint (NULL = config->broker.workers). config is
    borrowed and must outlive the worker. Returns the worker, or NULL with a
    message in err (driver open failure such as a missing secret variable or
    an unwritable directory, a bad endpoint, an out-of-range channel index). */
herald_worker_t *
    herald_worker_new (const herald_config_t *config, int channel_index,
                       const char *endpoint, char *err, size_t errlen);

/*  Same over CURVE, for a broker with security.broker_key: keys is this
    worker's key pair, server_key the broker's public key (Z85); both are
    copied. */
herald_worker_t *
    herald_worker_new_curve (const herald_config_t *config, int channel_index,
                             const char *endpoint, const herald_keypair_t *keys,
                             const char *server_key, char *err, size_t errlen);

/*  Same with an explicit driver (tests inject fake drivers through this). */
herald_worker_t *
    herald_worker_new_with_driver (const herald_config_t *config, int channel_index,
                                   const char *endpoint, const hd_driver_ops_t *ops,
                                   char *err, size_t errlen);

/*  Runs until *stop becomes non-zero, then drains in-progress deliveries
    (bounded by broker.shutdown_timeout_ms), sends DISCONNECT and returns 0.
    Returns -1 on an unrecoverable ZeroMQ error (logged). */
int
    herald_worker_run (herald_worker_t *self, volatile sig_atomic_t *stop);

/*  herald_worker_run reads the configuration file (config->path) again
    whenever *reload becomes non-zero (SIGHUP), and clears it: the
    channel's driver is opened anew with the new settings (templates read
    again), deliveries in progress finish with the settings they started
    with, heartbeats follow at once, and a new capacity or message cap is
    announced in a new session once nothing is in progress. An invalid
    file, or one the driver cannot open, is logged and changes nothing. */
void
    herald_worker_watch_reload (herald_worker_t *self, volatile sig_atomic_t *reload);

/*  Closes the driver and the socket. NULL-safe, nulls *self_p. */
void
    herald_worker_destroy (herald_worker_t **self_p);

#endif
