/*  http: the broker's HTTP endpoint (broker.listen.http), on a thread of its
    own with libmicrohttpd. It never touches the broker's state: it speaks
    HERALD/2 PUBLISH and ADMIN over a DEALER to the broker's internal ROUTER
    (inproc, this process only), so an event sent over HTTP takes exactly
    the ZeroMQ path (validation, idempotency, the ACK after fdatasync,
    back-pressure), and the loop never waits for HTTP clients.

    Routes (one table in http.c):
      POST /events    CloudEvents structured, binary or batch mode; the answer
                      comes after the durable write (201 new, 200 duplicate)
      GET  /metrics   Prometheus text 0.0.4 (the `metrics` admin verb, rendered)
      GET  /healthz   200 while the process answers
      GET  /readyz    200 when the broker answers, its store takes events and
                      every channel has a worker; else 503 naming what fails
      /admin...       the admin page (http_admin.h), which checks its own
                      access: a Bearer token or the session cookie of its
                      login form

    Tokens: with security.tokens_file every route but /healthz and /readyz
    needs "Authorization: Bearer TOKEN" of a role that may use it; the file
    is read again as soon as it changes (inotify on its directory, and a
    stat every 500 ms), so a revoked token is refused at once. Without it,
    every request is allowed (the configuration then binds only loopback,
    or says plaintext: true). */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stddef.h>

#include "herald_config.h"

typedef struct http http_t;

/*  Binds config->broker.http (with TLS when security.tls_cert is set),
    reads the token file, and starts the thread, whose DEALER connects to
    internal (the broker's internal ROUTER, in ctx). config is borrowed for
    the lifetime of the result. NULL with err on failure (the address cannot
    be bound, a TLS file or the token file cannot be read). */
http_t *
    http_new (void *ctx, const herald_config_t *config, const char *internal, char *err, size_t errlen);

/*  The largest event accepted from now on (broker.max_event_bytes changed
    by a reload; the only setting the thread reads after its start, through
    an atomic). NULL-safe. */
void
    http_set_event_max (http_t *self, size_t bytes);

/*  Answers what still waits with 503, stops the thread and the daemon.
    NULL-safe; nulls *self_p. Call before the context is terminated. */
void
    http_destroy (http_t **self_p);

#endif
