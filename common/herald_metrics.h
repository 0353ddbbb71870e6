/*  herald_metrics: the broker's counters and histograms, for GET /metrics.
    Written by the loop (events, deliveries) and by the journal's writer
    thread (fdatasync time), read by the loop when it answers the `metrics`
    admin verb: every value is a relaxed atomic, so no writer ever waits.
    Every function accepts a NULL metrics and then does nothing, so a core
    or a journal without metrics (unit tests, benchmarks) costs nothing. */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct herald_metrics herald_metrics_t;

/*  How one delivery attempt of a task ended, for herald_deliveries_total. */
typedef enum {
    HERALD_DELIVERY_DONE = 0,
    HERALD_DELIVERY_RETRY,
    HERALD_DELIVERY_THROTTLED,
    HERALD_DELIVERY_FAILED,
    HERALD_DELIVERY_LEASE_EXPIRED,
    HERALD_DELIVERY_WORKER_LOST,
    HERALD_DELIVERY_RELEASED,           /* given back unstarted by its worker: no attempt spent */
    HERALD_DELIVERY_OUTCOMES
} herald_delivery_t;

#define HERALD_METRICS_BUCKETS  16      /* histogram buckets, +Inf not counted */

/*  New metrics, all zero. NULL on OOM. */
herald_metrics_t *
    herald_metrics_new (void);

/*  NULL-safe; nulls *self_p. */
void
    herald_metrics_destroy (herald_metrics_t **self_p);

/*  A PUBLISH reached the broker's rules. */
void
    herald_metrics_received (herald_metrics_t *self);

/*  An ACK was sent; received_us is herald_clock_mono_us () when its PUBLISH
    arrived (0: not known, no latency observed). */
void
    herald_metrics_acked (herald_metrics_t *self, bool duplicate, int64_t received_us);

/*  A NACK with code (100..999) was sent. */
void
    herald_metrics_refused (herald_metrics_t *self, int code);

/*  A delivery attempt on channel (its index in the configuration) ended. */
void
    herald_metrics_delivery (herald_metrics_t *self, int channel, herald_delivery_t outcome);

/*  One fdatasync of the journal took micros. */
void
    herald_metrics_journal_sync (herald_metrics_t *self, int64_t micros);

/*  The values now, as the `metrics` verb carries them:
    {"received": N, "acked": {"new": N, "duplicate": N}, "refused": {"422": N, ...},
     "ack_latency": HISTOGRAM, "journal_sync": HISTOGRAM,
     "deliveries": [{"done": N, "retry": N, ...}, ...one per channel index]}
    where HISTOGRAM is {"le": [seconds...], "buckets": [cumulative counts...],
    "count": N, "sum": seconds}. New reference; NULL for NULL metrics. */
json_t *
    herald_metrics_json (const herald_metrics_t *self, int channel_count);

/*  "done", "retry", "throttled", "failed", "lease_expired", "worker_lost",
    "released". */
const char *
    herald_delivery_name (herald_delivery_t outcome);

#endif
