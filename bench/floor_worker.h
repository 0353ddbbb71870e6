/*  floor_worker: the worker of herald_floor_e2e (the floor for end to end),
    doing no work: a DEALER that sends HERALD/2 READY for a channel with a
    credit (max-batch min(credit, 1024)) and answers every task of each
    TASKS message "done" at once, the results of one loop round in one
    RESULTS message, as herald-worker with the noop driver does. */
#ifndef HERALD_FLOOR_WORKER_H
#define HERALD_FLOOR_WORKER_H

#include <signal.h>

#define FLOOR_WORKER_CREDIT 32      /* the default credit: Herald's channel capacity */

/*  Runs until *stop is set (a signal) or the socket fails; prints its count
    to stderr at the end. The process's exit status: 0, or 1. */
int
    floor_worker_run (const char *endpoint, const char *channel, long credit,
                      volatile sig_atomic_t *stop);

#endif
