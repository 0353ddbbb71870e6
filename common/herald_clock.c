/*  herald_clock: monotonic and wall clocks. */
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "herald_clock.h"

int64_t
herald_clock_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
herald_clock_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
herald_clock_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
herald_clock_format (int64_t wall_ms, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    if (wall_ms < 0)
        wall_ms = 0;            /* before 1970: a clock error, shown as the epoch */
    time_t secs = (time_t) (wall_ms / 1000);
    struct tm tm;
    if (!gmtime_r (&secs, &tm)) {
        buf[0] = '\0';
        return buf;
    }
    snprintf (buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
              tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (wall_ms % 1000));
    return buf;
}

int
herald_cond_init_monotonic (pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init (&attr) != 0)
        return -1;
    int rc = pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init (cond, &attr);
    pthread_condattr_destroy (&attr);
    return rc == 0? 0: -1;
}

struct timespec
herald_clock_deadline (int64_t ms)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t) ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += (time_t) (ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long) (ns % 1000000000);
    return ts;
}
