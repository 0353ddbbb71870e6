/*  driver_noop: accepts every delivery and drops it (benchmarks, dry runs).
    Synchronous: completes HD_DONE inside start(). */
#include <stdio.h>
#include <stdlib.h>

#include "driver.h"

typedef struct {
    hd_complete_fn *complete;
    void *ctx;
} noop_driver_t;

static void *
s_open (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx,
        char *err, size_t errlen)
{
    noop_driver_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "channel %s: noop driver: out of memory", channel->name);
        return NULL;
    }
    self->complete = complete;
    self->ctx = ctx;
    return self;
}

static int
s_start (void *self_, const hd_task_t *task)
{
    noop_driver_t *self = (noop_driver_t *) self_;
    static const hd_result_t done = { .outcome = HD_DONE };
    self->complete (self->ctx, task->task_id, task->attempt, task->lease, &done);
    return 0;
}

static int
s_in_progress (void *self)
{
    return 0;
}

static void
s_close (void **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

const hd_driver_ops_t hd_noop_ops = {
    .name = "noop",
    .open = s_open,
    .start = s_start,
    .poll_items = NULL,
    .progress = NULL,
    .in_progress = s_in_progress,
    .close = s_close
};
