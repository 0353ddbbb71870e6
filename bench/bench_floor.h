/*  bench_floor: the cost of one durable round trip on this machine with no
    Herald code in it (see bench_floor.c). */
#ifndef HERALD_BENCH_FLOOR_H
#define HERALD_BENCH_FLOOR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bench_floor bench_floor_t;

/*  Forks the server process, its socket and file in dir (the disk under
    test), and connects to it. NULL on failure (errno). */
bench_floor_t *
    bench_floor_start (const char *dir);

/*  One round trip of message (sent as is): with durable, the server writes
    and fdatasyncs before it replies. Milliseconds, or -1 on failure. */
double
    bench_floor_round_trip (bench_floor_t *self, const char *message, bool durable);

/*  Stops the server and frees everything. */
void
    bench_floor_stop (bench_floor_t **self_p);

/*  Bytes the server writes before each durable reply. */
#define BENCH_FLOOR_WRITE   (5 * 4120)

#endif
