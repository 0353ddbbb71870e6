/*  peers: which client key each open connection of the broker authenticated
    with, by file descriptor, so that a reload that removes a key can close
    that key's connections (libzmq cannot drop one peer of a ROUTER, so the
    connection's socket is shut down under it, and libzmq closes it). The
    broker's loop notes a connection at its messages (ZMQ_SRCFD and User-Id);
    the monitor thread forgets it when libzmq reports it closed. A connection
    that has sent nothing is not known here: it is refused at its first
    message instead. Thread-safe (one mutex). */
#ifndef HERALD_PEERS_H
#define HERALD_PEERS_H

#include <stdbool.h>

#include "refusals.h"

typedef struct peers peers_t;

/*  Decides whether a connection of endpoint using key may stay open. */
typedef bool (peers_keep_fn) (void *arg, endpoint_t endpoint, const char *key);

peers_t *
    peers_new (void);

void
    peers_destroy (peers_t **self_p);

/*  Notes that connection fd of endpoint uses key (Z85). fd < 0 or beyond
    the table's cap is ignored. */
void
    peers_note (peers_t *self, int fd, endpoint_t endpoint, const char *key);

/*  Forgets connection fd (closed or accepted anew). */
void
    peers_forget (peers_t *self, int fd);

/*  Shuts down (shutdown (2), both ways) every known connection that keep
    refuses, and forgets it. on_close (may be NULL) is told each one, with
    the lock released. Returns how many were shut down. */
int
    peers_close_unless (peers_t *self, peers_keep_fn *keep, void *arg,
                        void (*on_close) (void *arg, int fd, endpoint_t endpoint, const char *key));

#endif
