/*  herald_metrics: counters and histograms of relaxed atomics (see herald_metrics.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "herald_clock.h"
#include "herald_config.h"
#include "herald_metrics.h"

#define S_CODES 1000                    /* NACK codes 100..999, by value */

/*  Bucket bounds in microseconds: 100 us .. 10 s. The same for the ACK
    latency and the journal's fdatasync, so the two read side by side. */
static const int64_t s_bounds_us[HERALD_METRICS_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};

typedef struct {
    _Atomic uint64_t buckets[HERALD_METRICS_BUCKETS + 1];      /* not cumulative; the last is +Inf */
    _Atomic uint64_t sum_us;
} s_histogram_t;

struct herald_metrics {
    _Atomic uint64_t received;
    _Atomic uint64_t acked_new, acked_duplicate;
    _Atomic uint64_t refused[S_CODES];
    _Atomic uint64_t deliveries[HERALD_MAX_CHANNELS][HERALD_DELIVERY_OUTCOMES];
    s_histogram_t ack_latency;
    s_histogram_t journal_sync;
};

static const char *const s_outcomes[HERALD_DELIVERY_OUTCOMES] = {
    "done", "retry", "throttled", "failed", "lease_expired", "worker_lost", "released"
};

herald_metrics_t *
herald_metrics_new (void)
{
    herald_metrics_t *self = calloc (1, sizeof *self);
    return self;
}

void
herald_metrics_destroy (herald_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

static void
s_add (_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit (counter, n, memory_order_relaxed);
}

static uint64_t
s_get (const _Atomic uint64_t *counter)
{
    return atomic_load_explicit ((_Atomic uint64_t *) counter, memory_order_relaxed);
}

static void
s_observe (s_histogram_t *histogram, int64_t micros)
{
    if (micros < 0)
        micros = 0;
    size_t i = 0;
    while (i < HERALD_METRICS_BUCKETS && micros > s_bounds_us[i])
        i++;
    s_add (&histogram->buckets[i], 1);
    s_add (&histogram->sum_us, (uint64_t) micros);
}

void
herald_metrics_received (herald_metrics_t *self)
{
    if (self)
        s_add (&self->received, 1);
}

void
herald_metrics_acked (herald_metrics_t *self, bool duplicate, int64_t received_us)
{
    if (!self)
        return;
    s_add (duplicate? &self->acked_duplicate: &self->acked_new, 1);
    if (received_us > 0)
        s_observe (&self->ack_latency, herald_clock_mono_us () - received_us);
}

void
herald_metrics_refused (herald_metrics_t *self, int code)
{
    if (self && code >= 100 && code < S_CODES)
        s_add (&self->refused[code], 1);
}

void
herald_metrics_delivery (herald_metrics_t *self, int channel, herald_delivery_t outcome)
{
    if (self && channel >= 0 && channel < HERALD_MAX_CHANNELS && (int) outcome >= 0
    &&  outcome < HERALD_DELIVERY_OUTCOMES)
        s_add (&self->deliveries[channel][outcome], 1);
}

void
herald_metrics_journal_sync (herald_metrics_t *self, int64_t micros)
{
    if (self)
        s_observe (&self->journal_sync, micros);
}

const char *
herald_delivery_name (herald_delivery_t outcome)
{
    return (int) outcome >= 0 && outcome < HERALD_DELIVERY_OUTCOMES? s_outcomes[outcome]: "?";
}

/*  Cumulative buckets; the count is their total, so a reader never sees a
    count that disagrees with the buckets while a writer is between two adds. */
static json_t *
s_histogram_json (const s_histogram_t *histogram)
{
    json_t *le = json_array ();
    json_t *buckets = json_array ();
    uint64_t total = 0;
    for (size_t i = 0; i <= HERALD_METRICS_BUCKETS; i++) {
        total += s_get (&histogram->buckets[i]);
        if (i < HERALD_METRICS_BUCKETS) {
            json_array_append_new (le, json_real ((double) s_bounds_us[i] / 1e6));
            json_array_append_new (buckets, json_integer ((json_int_t) total));
        }
    }
    return json_pack ("{s:o, s:o, s:I, s:f}", "le", le, "buckets", buckets, "count", (json_int_t) total,
                      "sum", (double) s_get (&histogram->sum_us) / 1e6);
}

json_t *
herald_metrics_json (const herald_metrics_t *self, int channel_count)
{
    if (!self)
        return NULL;
    json_t *refused = json_object ();
    for (int code = 100; code < S_CODES; code++) {
        uint64_t n = s_get (&self->refused[code]);
        if (n) {
            char key[8];
            snprintf (key, sizeof key, "%d", code);
            json_object_set_new (refused, key, json_integer ((json_int_t) n));
        }
    }
    json_t *deliveries = json_array ();
    for (int c = 0; c < channel_count && c < HERALD_MAX_CHANNELS; c++) {
        json_t *outcomes = json_object ();
        for (int o = 0; o < HERALD_DELIVERY_OUTCOMES; o++)
            json_object_set_new (outcomes, s_outcomes[o], json_integer ((json_int_t) s_get (&self->deliveries[c][o])));
        json_array_append_new (deliveries, outcomes);
    }
    return json_pack ("{s:I, s:{s:I, s:I}, s:o, s:o, s:o, s:o}",
                      "received", (json_int_t) s_get (&self->received),
                      "acked", "new", (json_int_t) s_get (&self->acked_new),
                      "duplicate", (json_int_t) s_get (&self->acked_duplicate),
                      "refused", refused,
                      "ack_latency", s_histogram_json (&self->ack_latency),
                      "journal_sync", s_histogram_json (&self->journal_sync),
                      "deliveries", deliveries);
}
