/*  bench_util: see bench_util.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define FILL_BLOCK  (1L << 20)

double
bench_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y? 1: 0;
}

void
bench_sort (double *samples, long n)
{
    if (n > 0)
        qsort (samples, (size_t) n, sizeof (double), s_compare);
}

double
bench_percentile (const double *sorted, long n, double q)
{
    long rank = (long) ceil (q * (double) n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

int
bench_fill_file (int fd, long bytes)
{
    char *block = malloc (FILL_BLOCK);
    if (!block)
        return -1;
    memset (block, 'f', FILL_BLOCK);
    int rc = 0;
    for (long at = 0; at < bytes && rc == 0; at += FILL_BLOCK)
        if (pwrite (fd, block, FILL_BLOCK, at) != FILL_BLOCK)
            rc = -1;
    free (block);
    if (rc == 0 && fsync (fd) != 0)
        rc = -1;
    return rc;
}
