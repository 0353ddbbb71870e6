/*  driver_http: placeholder until the HTTP driver lands (owned by the delivery work). */
#include <stdio.h>
#include "driver.h"

static void *
s_open (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx, char *err, size_t errlen)
{
    snprintf (err, errlen, "channel %s: driver http is not built yet", channel->name);
    return NULL;
}
static int s_start (void *self, const hd_task_t *task) { return -1; }
static int s_in_progress (void *self) { return 0; }
static void s_close (void **self_p) { *self_p = NULL; }

const hd_driver_ops_t hd_http_ops = { "http", s_open, s_start, NULL, NULL, s_in_progress, s_close };
