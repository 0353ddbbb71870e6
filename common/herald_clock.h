/*  herald_clock: the two clocks. Every timer (lease, heartbeat, retry, rate)
    runs on the monotonic clock; the wall clock is only for what is stored or
    shown (timestamps, a retry's not-before across restarts). */
#ifndef HERALD_CLOCK_H
#define HERALD_CLOCK_H

#include <stdint.h>

/*  Milliseconds on CLOCK_MONOTONIC. */
int64_t
    herald_clock_mono_ms (void);

/*  Microseconds on CLOCK_MONOTONIC. */
int64_t
    herald_clock_mono_us (void);

/*  Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t
    herald_clock_wall_ms (void);

/*  Formats wall-clock ms as RFC 3339 UTC with milliseconds into buf (>= 25 bytes). */
const char *
    herald_clock_format (int64_t wall_ms, char *buf, size_t size);

#endif
