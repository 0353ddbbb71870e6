/*  herald_clock: the two clocks. Every timer (lease, heartbeat, retry, rate)
    runs on the monotonic clock; the wall clock is only for what is stored or
    shown (timestamps, a retry's not-before across restarts). */
#ifndef HERALD_CLOCK_H
#define HERALD_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/*  Milliseconds on CLOCK_MONOTONIC. */
int64_t
    herald_clock_mono_ms (void);

/*  Microseconds on CLOCK_MONOTONIC. */
int64_t
    herald_clock_mono_us (void);

/*  Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t
    herald_clock_wall_ms (void);

/*  Threads' timed waits run on the monotonic clock too, so that a wall
    clock stepped back (NTP, a resumed VM) does not stretch a 50 ms wait
    into an hour: a condition variable made for it, and the deadline `ms`
    from now to give its pthread_cond_timedwait. */
int
    herald_cond_init_monotonic (pthread_cond_t *cond);
struct timespec
    herald_clock_deadline (int64_t ms);

/*  Formats wall-clock ms as RFC 3339 UTC with milliseconds into buf (>= 25 bytes). */
const char *
    herald_clock_format (int64_t wall_ms, char *buf, size_t size);

#endif
