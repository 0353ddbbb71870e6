/*  peers_target: one producer connection to one of the three systems the
    side-by-side benchmark compares, behind the same four calls, so every
    load shape is written once:
      - Herald: libherald (herald_send / herald_recv) to herald-broker;
      - the floor: a raw ZeroMQ DEALER speaking HERALD/1's PUBLISH and ACK
        frames to herald_floor_server;
      - Redis: hiredis, XADD of the event as one field to a stream.
    Every send is answered by one reply, in order; a caller keeps its own
    count of what is outstanding. */
#ifndef HERALD_PEERS_TARGET_H
#define HERALD_PEERS_TARGET_H

#include <stddef.h>

typedef enum {
    PEERS_REDIS = 0,
    PEERS_FLOOR,
    PEERS_HERALD,
    PEERS_SYSTEMS
} peers_system_t;

typedef struct peers_target peers_target_t;

/*  "redis", "floor", "herald"; the label printed for each system. */
const char *
    peers_system_name (peers_system_t system);
const char *
    peers_system_label (peers_system_t system);

/*  The system named name, or -1. */
int
    peers_system_parse (const char *name);

/*  Splits "tcp://HOST:PORT" into host (size bytes) and port. 0, or -1. */
int
    peers_endpoint_split (const char *endpoint, char *host, size_t size, int *port);

/*  Connects to endpoint ("tcp://127.0.0.1:PORT" for all three); stream is
    the Redis stream key (ignored by the others). NULL on failure, with the
    reason in err. */
peers_target_t *
    peers_target_new (peers_system_t system, const char *endpoint, const char *stream,
                      char *err, size_t errlen);

/*  Closes the connection; NULL-safe, nulls the pointer. */
void
    peers_target_destroy (peers_target_t **self_p);

/*  Sends one event (len bytes of JSON) without waiting for its answer.
    0, or -1 (see peers_target_error). */
int
    peers_target_send (peers_target_t *self, const char *event, size_t len);

/*  Waits up to timeout_ms for the next answer. 0 for an ACK (Redis: a
    stream entry id), 1 for a refusal (Herald's NACK, a Redis error reply:
    counted, the run goes on), -1 for a broken connection or no answer in
    time (see peers_target_error). */
int
    peers_target_recv (peers_target_t *self, int timeout_ms);

/*  The floor's end-to-end server only (herald_floor_e2e): asks STATUS and
    puts up to n numbers of the answer in values: the workers connected,
    then the durable done count of each channel. How many it put, or -1
    (see peers_target_error). No publish may be outstanding on self. */
int
    peers_target_floor_status (peers_target_t *self, long *values, int n, int timeout_ms);

/*  The last error or refusal, for messages. */
const char *
    peers_target_error (peers_target_t *self);

#endif
