/*  herald_ratelimit: a fixed-window counter (see herald_ratelimit.h). */
#include "herald_ratelimit.h"

herald_ratelimit_t
herald_ratelimit (int burst, int64_t interval_ms)
{
    return (herald_ratelimit_t) { .interval_ms = interval_ms > 0? interval_ms: 1000,
                                  .burst = burst > 0? burst: 1, .started = INT64_MIN };
}

bool
herald_ratelimit_allow (herald_ratelimit_t *self, int64_t now)
{
    self->suppressed = 0;
    if (self->started == INT64_MIN || now - self->started >= self->interval_ms) {
        self->suppressed = self->held;
        self->held = 0;
        self->count = 0;
        self->started = now;
    }
    if (self->count < self->burst) {
        self->count++;
        return true;
    }
    self->held++;
    return false;
}
