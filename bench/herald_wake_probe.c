/*  herald_wake_probe: what a memory access costs a thread that has just
    woken up. For each pause it sleeps (so the CPU may idle, as the broker's
    loop does in poll and fdatasync), then times three reads: a random
    page of a region it touched before, another line of that page, and the
    page after it; --samples times. Prints the median and p90 of each, for
    a region in 4 KiB pages and one asked for in huge pages (MADV_HUGEPAGE).

    On a virtual machine whose host runs other work while a vCPU idles, a
    page first touched after the pause costs a page walk through cold
    caches (microseconds, not the ~100 ns of a cache miss): the broker
    pays it for each distinct page an event touches after the loop slept.
    A program to run by hand (see BENCHMARKS.md), not a test. */

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_util.h"


#define PROBE_HUGE      (2UL << 20)

static void
s_usage (FILE *out, const char *prog)
{
    fprintf (out,
        "usage: %s [options]\n"
        "\n"
        "Times reads of memory just after sleeping 0, 0.05, 0.2 and 1 ms (or --pause): the\n"
        "first read of a random page, a second line of that page, and the next page, in\n"
        "4 KiB pages and in huge pages. Prints the median and p90 of each, in ns.\n"
        "\n"
        "options:\n"
        "  --mib N          size of each region, MiB (default 8)\n"
        "  --samples N      reads per pause (default 3000)\n"
        "  --pause MS       one pause only, in milliseconds (e.g. 0.2)\n"
        "  --help           this text\n", prog);
}

//  A region of bytes, every page written once, in huge pages if asked.
static volatile unsigned char *
s_region (size_t bytes, bool huge)
{
    void *p = mmap (NULL, bytes + PROBE_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    unsigned char *aligned = (unsigned char *) (((uintptr_t) p + PROBE_HUGE - 1) & ~(PROBE_HUGE - 1));
    (void) madvise (aligned, bytes, huge? MADV_HUGEPAGE: MADV_NOHUGEPAGE);
    for (size_t i = 0; i < bytes; i += 4096)
        aligned[i] = 1;
    return aligned;
}

static void
s_probe (volatile unsigned char *region, size_t bytes, const char *name, double pause_ms, long samples,
         double *t[3])
{
    uint64_t x = 88172645463325252ULL;
    struct timespec pause = { 0, (long) (pause_ms * 1e6) };
    for (long i = 0; i < samples; i++) {
        if (pause.tv_nsec > 0)
            nanosleep (&pause, NULL);
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t at = (size_t) (x % (bytes / 4096 - 1)) * 4096 + (size_t) (x >> 58) * 32;
        double a = bench_now_ms ();
        (void) region[at];
        double b = bench_now_ms ();
        (void) region[at + 2048];
        double c = bench_now_ms ();
        (void) region[at + 4096];
        double d = bench_now_ms ();
        t[0][i] = (b - a) * 1e6;
        t[1][i] = (c - b) * 1e6;
        t[2][i] = (d - c) * 1e6;
    }
    printf ("%-9s %6.2f ms", name, pause_ms);
    for (int k = 0; k < 3; k++) {
        bench_sort (t[k], samples);
        printf ("   %9.0f %6.0f", bench_percentile (t[k], samples, 0.5), bench_percentile (t[k], samples, 0.9));
    }
    printf ("\n");
    fflush (stdout);
}

int
main (int argc, char **argv)
{
    long mib = 8, samples = 3000;
    double one_pause = -1;
    static const struct option options[] = {
        { "mib", required_argument, NULL, 'm' }, { "samples", required_argument, NULL, 's' },
        { "pause", required_argument, NULL, 'p' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
    };
    int opt;
    while ((opt = getopt_long (argc, argv, "", options, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
            case 'm': mib = strtol (optarg, &end, 10); break;
            case 's': samples = strtol (optarg, &end, 10); break;
            case 'p': one_pause = strtod (optarg, &end); break;
            case 'h': s_usage (stdout, argv[0]); return 0;
            default: s_usage (stderr, argv[0]); return 2;
        }
        if (!end || *end || (opt == 'm' && (mib < 1 || mib > 4096)) || (opt == 's' && (samples < 10 || samples > 10000000))
        ||  (opt == 'p' && (one_pause < 0 || one_pause > 1000))) {
            fprintf (stderr, "%s: --%s: '%s' is not in range (see --help)\n", argv[0],
                     opt == 'm'? "mib": opt == 's'? "samples": "pause", optarg);
            return 2;
        }
    }
    size_t bytes = (size_t) mib << 20;
    volatile unsigned char *small = s_region (bytes, false), *huge = s_region (bytes, true);
    double *t[3];
    for (int k = 0; k < 3; k++)
        t[k] = malloc ((size_t) samples * sizeof (double));
    if (!small || !huge || !t[0] || !t[1] || !t[2]) {
        fprintf (stderr, "%s: out of memory for two regions of %ld MiB\n", argv[0], mib);
        return 1;
    }
    printf ("herald_wake_probe: %ld reads per pause over %ld MiB, ns (median, p90)\n", samples, mib);
    printf ("pages     pause        first page        same page        next page\n");
    double pauses[] = { 0, 0.05, 0.2, 1 };
    int count = one_pause >= 0? 1: 4;
    for (int i = 0; i < count; i++) {
        double pause = one_pause >= 0? one_pause: pauses[i];
        s_probe (small, bytes, "4 KiB", pause, samples, t);
        s_probe (huge, bytes, "huge", pause, samples, t);
    }
    for (int k = 0; k < 3; k++)
        free (t[k]);
    return 0;
}
