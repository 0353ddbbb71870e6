/*  bench_util: what the benchmark programs share: a monotonic clock,
    percentiles of timed samples, and a file written in full before a run
    writes over it. */
#ifndef HERALD_BENCH_UTIL_H
#define HERALD_BENCH_UTIL_H

/*  Monotonic time in milliseconds. */
double
    bench_now_ms (void);

/*  Sorts n samples ascending, in place. */
void
    bench_sort (double *samples, long n);

/*  The q-quantile (0 < q <= 1) of n sorted samples, by nearest rank. */
double
    bench_percentile (const double *sorted, long n, double q);

/*  Writes bytes (a multiple of 1 MiB) at the start of fd and fsyncs, so
    that later writes overwrite allocated blocks. 0, or -1 (errno). */
int
    bench_fill_file (int fd, long bytes);

#endif
