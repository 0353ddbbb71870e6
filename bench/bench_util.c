/*  bench_util: see bench_util.h. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
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
bench_order_event (char *buf, size_t size, unsigned long long order, const char *time)
{
    int len = snprintf (buf, size,
        "{\"specversion\":\"1.0\",\"id\":\"bench-%llu\",\"source\":\"herald-bench\","
        "\"type\":\"order.confirmed\",\"time\":\"%s\",\"datacontenttype\":\"application/json\","
        "\"data\":{\"order_id\":%llu,\"customer\":{\"name\":\"Bench Customer\","
        "\"email\":\"customer%llu@example.com\"},\"items\":[{\"sku\":\"SKU-1042\","
        "\"qty\":2,\"price\":\"19.90\"},{\"sku\":\"SKU-7\",\"qty\":1,\"price\":\"5.00\"}],"
        "\"total\":\"44.80\",\"currency\":\"EUR\",\"shipping\":{\"method\":\"standard\","
        "\"address\":{\"street\":\"1 Rue de la Paix\",\"city\":\"Paris\",\"zip\":\"75002\","
        "\"country\":\"FR\"}}}}", order, time, order, order);
    return len < 0 || (size_t) len >= size? -1: len;
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

void
bench_describe_disk (const char *path, char *out, size_t size)
{
    snprintf (out, size, "unknown");
    FILE *mounts = fopen ("/proc/self/mounts", "r");
    if (!mounts)
        return;
    char line[4096];
    size_t best = 0;
    while (fgets (line, sizeof line, mounts)) {
        char dev[256], dir[256], type[32];
        if (sscanf (line, "%255s %255s %31s", dev, dir, type) != 3)
            continue;
        size_t len = strlen (dir);
        bool covers = strcmp (dir, "/") == 0
            || (strncmp (path, dir, len) == 0 && (path[len] == '/' || path[len] == '\0'));
        if (covers && len >= best) {
            best = len;
            snprintf (out, size, "%s on %s (%s)", dev, dir, type);
        }
    }
    fclose (mounts);
}
