/*  herald_fsync_probe: how long one durable write takes on a disk, and how
    that depends on the pause between writes. For each pause it writes
    --bytes into a preallocated file (over and over, as the broker's WAL is
    written once it starts over) and calls fdatasync, --samples times,
    waiting the pause (busy, so the CPU does not sleep) between one write's
    end and the next one's start. Prints p50 / p90 / p99 / p99.9 / max.

    Herald's ACK latency at one publish outstanding can be no better than
    this at the pause its own round trip leaves between commits (about
    0.1-0.2 ms). A program to run by hand (see BENCHMARKS.md), not a test. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define PROBE_FILE_BYTES    (8L * 1024 * 1024)

static void
s_usage (FILE *out, const char *prog)
{
    fprintf (out,
        "usage: %s [options]\n"
        "\n"
        "Times write + fdatasync on the disk under DIR, with a pause between writes of\n"
        "0, 0.05, 0.1, 0.2 and 0.5 ms (or --pause). Needs about 8 MiB in DIR.\n"
        "\n"
        "options:\n"
        "  --dir DIR        where the probe file goes (default $TMPDIR or /tmp)\n"
        "  --bytes N        bytes per write (default 20600: five SQLite WAL frames)\n"
        "  --samples N      writes per pause (default 5000)\n"
        "  --pause MS       one pause only, in milliseconds (e.g. 0.1)\n"
        "  --help           this text\n", prog);
}

int
main (int argc, char **argv)
{
    const char *dir = getenv ("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    long bytes = 20600, samples = 5000;
    double pauses[8] = { 0, 0.05, 0.1, 0.2, 0.5 };
    int pause_count = 5;
    static const struct option options[] = {
        { "dir", required_argument, NULL, 'd' },
        { "bytes", required_argument, NULL, 'b' },
        { "samples", required_argument, NULL, 's' },
        { "pause", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int opt;
    while ((opt = getopt_long (argc, argv, "", options, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
            case 'd': dir = optarg; break;
            case 'b': bytes = strtol (optarg, &end, 10); break;
            case 's': samples = strtol (optarg, &end, 10); break;
            case 'p': pauses[0] = strtod (optarg, &end); pause_count = 1; break;
            case 'h': s_usage (stdout, argv[0]); return 0;
            default: s_usage (stderr, argv[0]); return 64;
        }
        if (end && *end) {
            fprintf (stderr, "herald_fsync_probe: not a number: '%s'\n", optarg);
            return 64;
        }
    }
    if (optind < argc || bytes < 1 || bytes > 1 << 20 || samples < 10 || pauses[0] < 0) {
        fprintf (stderr, "herald_fsync_probe: --bytes 1..1048576, --samples >= 10, --pause >= 0"
                 " (see --help)\n");
        return 64;
    }
    char path[4096];
    snprintf (path, sizeof path, "%s/herald-fsync-probe-%d", dir, (int) getpid ());
    int fd = open (path, O_RDWR | O_CREAT | O_EXCL, 0600);
    char *block = calloc (1, (size_t) bytes);
    double *times = calloc ((size_t) samples, sizeof (double));
    if (fd < 0 || !block || !times) {
        fprintf (stderr, "herald_fsync_probe: %s: %s\n", path, strerror (errno));
        return 73;
    }
    printf ("preparing  %s (%ld MiB, written and fsynced once)\n", path, PROBE_FILE_BYTES >> 20);
    fflush (stdout);
    int rc = bench_fill_file (fd, PROBE_FILE_BYTES);
    printf ("%-9s %9s %9s %9s %9s %9s  (ms, %ld writes of %ld bytes + fdatasync each)\n",
            "pause", "p50", "p90", "p99", "p99.9", "max", samples, bytes);
    long at = 0;
    for (int p = 0; p < pause_count && rc == 0; p++) {
        for (long i = 0; i < samples && rc == 0; i++) {
            double start = bench_now_ms ();
            while (bench_now_ms () - start < pauses[p])
                ;
            if (at + bytes > PROBE_FILE_BYTES)
                at = 0;
            double t0 = bench_now_ms ();
            if (pwrite (fd, block, (size_t) bytes, at) != bytes || fdatasync (fd) != 0)
                rc = -1;
            times[i] = bench_now_ms () - t0;
            at += bytes;
        }
        if (rc != 0)
            break;
        bench_sort (times, samples);
        printf ("%6.2f ms %9.3f %9.3f %9.3f %9.3f %9.3f\n", pauses[p],
                bench_percentile (times, samples, 0.5), bench_percentile (times, samples, 0.9),
                bench_percentile (times, samples, 0.99), bench_percentile (times, samples, 0.999),
                times[samples - 1]);
        fflush (stdout);
    }
    if (rc != 0)
        fprintf (stderr, "herald_fsync_probe: %s: %s\n", path, strerror (errno));
    close (fd);
    unlink (path);
    free (block);
    free (times);
    return rc == 0? 0: 74;
}
