/*  bench_util: what the benchmark programs share: a monotonic clock,
    percentiles of timed samples, the order event they publish, and a file
    written in full before a run writes over it. */
#ifndef HERALD_BENCH_UTIL_H
#define HERALD_BENCH_UTIL_H

#include <stddef.h>

/*  Monotonic time in milliseconds. */
double
    bench_now_ms (void);

/*  Sorts n samples ascending, in place. */
void
    bench_sort (double *samples, long n);

/*  The q-quantile (0 < q <= 1) of n sorted samples, by nearest rank. */
double
    bench_percentile (const double *sorted, long n, double q);

/*  Renders an order.confirmed CloudEvents envelope of about 520 bytes into
    buf: order is its order_id (the idempotency key, so a new value makes a
    new event) and part of its id; time is an RFC 3339 text. Returns the
    length, or -1 if size is too small. */
int
    bench_order_event (char *buf, size_t size, unsigned long long order, const char *time);

/*  The mount holding path, from /proc/self/mounts, into out: "device on
    mountpoint (type)", or "unknown". */
void
    bench_describe_disk (const char *path, char *out, size_t size);

/*  Writes bytes (a multiple of 1 MiB) at the start of fd and fsyncs, so
    that later writes overwrite allocated blocks. 0, or -1 (errno). */
int
    bench_fill_file (int fd, long bytes);

#endif
