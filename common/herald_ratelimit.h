/*  herald_ratelimit: lets through at most `burst` occurrences of something
    per interval (log lines about refused input, above all) and counts the
    rest, so one bad peer cannot flood the log:

        if (herald_ratelimit_allow (&self->refusals, now))
            herald_info ("event refused", ...);

    At the first occurrence of a new interval, `suppressed` says how many
    were held back in the last one (report it, then it starts over). */
#ifndef HERALD_RATELIMIT_H
#define HERALD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t interval_ms;        /* length of an interval */
    int burst;                  /* occurrences let through per interval */
    int64_t started;            /* when the current interval began (ms) */
    int count;                  /* occurrences in it so far */
    uint64_t held;              /* held back in the current interval */
    uint64_t suppressed;        /* held back in the interval before: read it when allow() starts a new one */
} herald_ratelimit_t;

/*  A limiter letting `burst` through per `interval_ms`. */
herald_ratelimit_t
    herald_ratelimit (int burst, int64_t interval_ms);

/*  Counts one occurrence at monotonic time now (ms). True if it may be
    reported; then `suppressed` tells how many were held back in the
    interval that ended (0 most of the time). */
bool
    herald_ratelimit_allow (herald_ratelimit_t *self, int64_t now);

#endif
