/*  herald_bench: measures Herald against a real broker and noop workers it
    starts itself, in a temporary directory with ipc:// endpoints:
      (0) the floor on this machine and disk with no Herald code: a ZeroMQ
          round trip alone, and one with a write + fdatasync in it, the
          latter in blocks taken turn about with (a) (bench_floor.c);
      (a) ACK latency with one publish outstanding (p50, p99, p99.9);
      (b) ACK throughput with a pipelined window of publishes outstanding;
      (c) end-to-end throughput: from the first publish of (b) until the
          broker's status counts every task done on all three channels.
    A program to run by hand (see BENCHMARKS.md), not a test. */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_floor.h"
#include "bench_util.h"
#include "herald.h"

#define BENCH_CHANNELS      3
#define BENCH_MAX_CHILDREN  (1 + BENCH_CHANNELS)
#define BENCH_EVENT_MAX     2048
#define BENCH_READY_MS      15000   /* broker and workers must be up by then */
#define BENCH_REPLY_MS      10000   /* an ACK not back by then: the run is stuck */

static const char *const s_channels[BENCH_CHANNELS] = { "email", "inventory", "courier" };

static volatile sig_atomic_t s_interrupted = 0;

typedef struct {
    long events;                    /* pipelined run: events to ACK */
    long window;                    /* pipelined run: most outstanding publishes */
    long latency_samples;           /* one-outstanding run: timed publishes */
    long warmup;                    /* untimed publishes before the latency run */
    char bin_dir[PATH_MAX];         /* where herald-broker and herald-worker are */
    char base_dir[80];              /* where the temp dir is made (ipc:// paths are short) */
    bool keep;                      /* keep the temp dir */
} bench_options_t;

typedef struct {
    pid_t pid;                      /* 0 once reaped */
    char name[32];                  /* "broker", "worker-email", ... */
    char log[256];                  /* its stdout and stderr */
    long cpu_ticks_start;           /* utime + stime when the measurement began */
} bench_child_t;

typedef struct {
    double p50, p99, p999, max, mean;   /* milliseconds */
    long samples;
} bench_latency_t;

typedef struct {
    bench_options_t opt;
    char dir[128];                  /* the temp dir */
    char config[160];               /* herald.yaml in it */
    char producers[160];            /* endpoints */
    char workers[160];
    char admin[160];
    bench_child_t children[BENCH_MAX_CHILDREN];
    int child_count;
    herald_client_t *client;        /* producer connection */
    herald_client_t *admin_client;  /* admin connection */
    uint64_t next_order;            /* last order_id used: every event is new */
    bench_floor_t *floor;           /* (0): its server runs until (a) is over */
    bench_latency_t floor_plain;    /* (0): ZeroMQ round trip */
    bench_latency_t floor_durable;  /* (0): with write + fdatasync, beside (a) */
    char now_text[40];              /* RFC 3339 time put in every event */
} bench_t;


typedef struct {
    long acked, duplicates, busy, nacked;
    double ack_seconds;             /* first send to last ACK */
    double e2e_seconds;             /* first send to every task done (0: not reached) */
} bench_throughput_t;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_interrupted = 1;
}

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
s_pause_ms (long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

static void
s_usage (FILE *out, const char *prog)
{
    fprintf (out,
        "usage: %s [options]\n"
        "\n"
        "Starts herald-broker and one noop herald-worker per channel (email, inventory,\n"
        "courier) in a temporary directory, and measures:\n"
        "  (0) the floor, no Herald code: a ZeroMQ round trip alone, and with a\n"
        "      write + fdatasync before each reply, in blocks turn about with (a)\n"
        "  (a) ACK latency with one publish outstanding (p50, p99, p99.9)\n"
        "  (b) ACK throughput with a window of publishes outstanding\n"
        "  (c) end-to-end throughput: first publish of (b) until every task is done\n"
        "\n"
        "options:\n"
        "  --events N           events in the pipelined run (default 200000)\n"
        "  --window N           publishes outstanding in the pipelined run (default 1000)\n"
        "  --latency-samples N  timed publishes at one outstanding (default 20000)\n"
        "  --warmup N           untimed publishes before them (default 2000)\n"
        "  --bin-dir DIR        where herald-broker and herald-worker are\n"
        "                       (default: this program's directory)\n"
        "  --tmp DIR            where to make the temp dir (default $TMPDIR or /tmp);\n"
        "                       the store lives there, so its disk's fsync matters\n"
        "  --keep               keep the temp dir (config, store, logs)\n"
        "  --help               this text\n"
        "  --version            the version\n", prog);
}

static int
s_parse_count (const char *text, const char *name, long min, long *value)
{
    char *end = NULL;
    errno = 0;
    long v = strtol (text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min) {
        fprintf (stderr, "herald_bench: %s: expected an integer >= %ld, got '%s'\n", name, min, text);
        return -1;
    }
    *value = v;
    return 0;
}

//  Parses the command line. 0 to run, 1 to exit 0 (help), -1 usage error.
static int
s_options (bench_options_t *opt, int argc, char **argv)
{
    enum { O_EVENTS = 1, O_WINDOW, O_SAMPLES, O_WARMUP, O_BIN, O_TMP, O_KEEP, O_HELP, O_VERSION };
    static const struct option longopts[] = {
        { "events", required_argument, NULL, O_EVENTS },
        { "window", required_argument, NULL, O_WINDOW },
        { "latency-samples", required_argument, NULL, O_SAMPLES },
        { "warmup", required_argument, NULL, O_WARMUP },
        { "bin-dir", required_argument, NULL, O_BIN },
        { "tmp", required_argument, NULL, O_TMP },
        { "keep", no_argument, NULL, O_KEEP },
        { "help", no_argument, NULL, O_HELP },
        { "version", no_argument, NULL, O_VERSION },
        { NULL, 0, NULL, 0 }
    };
    opt->events = 200000;
    opt->window = 1000;
    opt->latency_samples = 20000;
    opt->warmup = 2000;
    opt->keep = false;
    const char *tmp = getenv ("TMPDIR");
    if (!tmp || !*tmp || strlen (tmp) >= sizeof opt->base_dir)
        tmp = "/tmp";
    snprintf (opt->base_dir, sizeof opt->base_dir, "%s", tmp);

    char exe[PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr (exe, '/');
        if (slash)
            *slash = '\0';
        snprintf (opt->bin_dir, sizeof opt->bin_dir, "%s", exe);
    }
    else
        snprintf (opt->bin_dir, sizeof opt->bin_dir, ".");

    int c;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
            case O_EVENTS:  if (s_parse_count (optarg, "--events", 1, &opt->events)) return -1; break;
            case O_WINDOW:  if (s_parse_count (optarg, "--window", 1, &opt->window)) return -1; break;
            case O_SAMPLES: if (s_parse_count (optarg, "--latency-samples", 0, &opt->latency_samples)) return -1; break;
            case O_WARMUP:  if (s_parse_count (optarg, "--warmup", 0, &opt->warmup)) return -1; break;
            case O_BIN:     snprintf (opt->bin_dir, sizeof opt->bin_dir, "%s", optarg); break;
            case O_TMP:
                if (strlen (optarg) >= sizeof opt->base_dir) {
                    fprintf (stderr, "herald_bench: --tmp: longer than %zu characters: too long "
                             "for ipc:// socket paths\n", sizeof opt->base_dir - 1);
                    return -1;
                }
                snprintf (opt->base_dir, sizeof opt->base_dir, "%s", optarg);
                break;
            case O_KEEP:    opt->keep = true; break;
            case 'h':
            case O_HELP:    s_usage (stdout, argv[0]); return 1;
            case O_VERSION: printf ("herald_bench %s\n", HERALD_VERSION); return 1;
            default:        s_usage (stderr, argv[0]); return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "herald_bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int
s_write_config (bench_t *self)
{
    snprintf (self->config, sizeof self->config, "%s/herald.yaml", self->dir);
    snprintf (self->producers, sizeof self->producers, "ipc://%s/producers.sock", self->dir);
    snprintf (self->workers, sizeof self->workers, "ipc://%s/workers.sock", self->dir);
    snprintf (self->admin, sizeof self->admin, "ipc://%s/admin.sock", self->dir);
    FILE *f = fopen (self->config, "w");
    if (!f) {
        fprintf (stderr, "herald_bench: %s: %s\n", self->config, strerror (errno));
        return -1;
    }
    fprintf (f,
        "# written by herald_bench\n"
        "broker:\n"
        "  listen:\n"
        "    producers: \"%s\"\n"
        "    workers: \"%s\"\n"
        "    admin: \"%s\"\n"
        "  store: \"%s/herald.db\"\n"
        "events:\n"
        "  order.confirmed:\n"
        "    key: order_id\n"
        "    required: [order_id, customer.email, items]\n"
        "    fanout: [email, inventory, courier]\n"
        "channels:\n"
        "  email:     { driver: noop }\n"
        "  inventory: { driver: noop }\n"
        "  courier:   { driver: noop }\n"
        "workers: { email: 1, inventory: 1, courier: 1 }\n",
        self->producers, self->workers, self->admin, self->dir);
    if (fclose (f) != 0) {
        fprintf (stderr, "herald_bench: %s: %s\n", self->config, strerror (errno));
        return -1;
    }
    return 0;
}

//  Starts bin_dir/program with args, output to a log in the temp dir.
static int
s_spawn (bench_t *self, const char *name, const char *program, char *const extra[])
{
    if (self->child_count >= BENCH_MAX_CHILDREN)
        return -1;
    bench_child_t *child = &self->children[self->child_count];
    memset (child, 0, sizeof *child);
    snprintf (child->name, sizeof child->name, "%s", name);
    snprintf (child->log, sizeof child->log, "%s/%s.log", self->dir, name);
    char path[PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s", self->opt.bin_dir, program);
    if (access (path, X_OK) != 0) {
        fprintf (stderr, "herald_bench: %s: %s (use --bin-dir)\n", path, strerror (errno));
        return -1;
    }
    char *argv[16];
    int argc = 0;
    argv[argc++] = path;
    argv[argc++] = "-c";
    argv[argc++] = self->config;
    for (int i = 0; extra && extra[i] && argc < 15; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;

    pid_t pid = fork ();
    if (pid < 0) {
        fprintf (stderr, "herald_bench: fork: %s\n", strerror (errno));
        return -1;
    }
    if (pid == 0) {
        //  Own process group: a terminal's Ctrl-C reaches only the bench,
        //  which then stops its children in order.
        setpgid (0, 0);
        signal (SIGINT, SIG_DFL);
        signal (SIGTERM, SIG_DFL);
        int fd = open (child->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || null < 0)
            _exit (127);
        dup2 (null, STDIN_FILENO);
        dup2 (fd, STDOUT_FILENO);
        dup2 (fd, STDERR_FILENO);
        execv (path, argv);
        _exit (127);
    }
    child->pid = pid;
    self->child_count++;
    return 0;
}

//  0 while every child runs; -1 (and a message) if one has exited.
static int
s_children_alive (bench_t *self)
{
    for (int i = 0; i < self->child_count; i++) {
        bench_child_t *child = &self->children[i];
        if (child->pid <= 0)
            continue;
        int status;
        pid_t rc = waitpid (child->pid, &status, WNOHANG);
        if (rc == child->pid) {
            fprintf (stderr, "herald_bench: %s (pid %d) exited (%s %d); see %s\n", child->name,
                     (int) child->pid, WIFSIGNALED (status)? "signal": "status",
                     WIFSIGNALED (status)? WTERMSIG (status): WEXITSTATUS (status), child->log);
            child->pid = 0;
            return -1;
        }
    }
    return 0;
}

//  SIGTERM to every child (workers first, then the broker), then SIGKILL to
//  those still running after a few seconds.
static void
s_stop_children (bench_t *self)
{
    for (int i = self->child_count - 1; i >= 0; i--)
        if (self->children[i].pid > 0)
            kill (self->children[i].pid, SIGTERM);
    double deadline = s_now () + 5.0;
    for (;;) {
        bool running = false;
        for (int i = 0; i < self->child_count; i++) {
            bench_child_t *child = &self->children[i];
            if (child->pid <= 0)
                continue;
            if (waitpid (child->pid, NULL, WNOHANG) == child->pid)
                child->pid = 0;
            else
                running = true;
        }
        if (!running)
            return;
        if (s_now () > deadline)
            break;
        s_pause_ms (10);
    }
    for (int i = 0; i < self->child_count; i++) {
        bench_child_t *child = &self->children[i];
        if (child->pid > 0) {
            fprintf (stderr, "herald_bench: %s (pid %d) ignored SIGTERM for 5s: SIGKILL\n",
                     child->name, (int) child->pid);
            kill (child->pid, SIGKILL);
            waitpid (child->pid, NULL, 0);
            child->pid = 0;
        }
    }
}

//  utime + stime of pid in clock ticks, or -1.
static long
s_cpu_ticks (pid_t pid)
{
    char path[64], buf[2048];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf[n] = '\0';
    char *p = strrchr (buf, ')');
    if (!p)
        return -1;
    //  fields after the comm: state(3) ppid pgrp session tty tpgid flags minflt
    //  cminflt majflt cmajflt utime(14) stime(15)
    long utime = 0, stime = 0;
    if (sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
        return -1;
    return utime + stime;
}

//  Machine-wide CPU time from /proc/stat, in clock ticks: busy (neither
//  idle nor iowait), iowait, and total. 0, or -1.
typedef struct {
    unsigned long long busy, iowait, total;
} bench_cpu_t;

static int
s_machine_cpu (bench_cpu_t *out)
{
    memset (out, 0, sizeof *out);
    FILE *f = fopen ("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = { 0 };
    int n = fscanf (f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
                    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose (f);
    if (n < 5)
        return -1;
    for (int i = 0; i < 8; i++)
        out->total += v[i];
    out->iowait = v[4];
    out->busy = out->total - v[3] - v[4];
    return 0;
}

//  This process's user + system CPU seconds.
static double
s_self_cpu (void)
{
    struct rusage ru;
    if (getrusage (RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
         + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

//  Peak resident memory of pid in KiB (VmHWM), or -1.
static long
s_peak_rss_kib (pid_t pid)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets (line, sizeof line, f))
        if (sscanf (line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose (f);
    return kib;
}

//  Asks the broker's status; fills done[] and workers[] per channel.
//  0, or -1 if the broker did not answer usably.
static int
s_status (bench_t *self, long done[BENCH_CHANNELS], long workers[BENCH_CHANNELS],
          long pending[BENCH_CHANNELS])
{
    int code = 0;
    char *body = NULL;
    herald_status_t st = herald_admin (self->admin_client, "status", "{}", 2000, &code, &body);
    if (st != HERALD_OK || code != 200 || !body) {
        free (body);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loads (body, 0, &jerr);
    free (body);
    if (!root)
        return -1;
    for (int i = 0; i < BENCH_CHANNELS; i++)
        done[i] = workers[i] = pending[i] = -1;
    json_t *channels = json_object_get (root, "channels");
    size_t index;
    json_t *ch;
    json_array_foreach (channels, index, ch) {
        const char *name = json_string_value (json_object_get (ch, "name"));
        for (int i = 0; name && i < BENCH_CHANNELS; i++) {
            if (strcmp (name, s_channels[i]) == 0) {
                done[i] = (long) json_integer_value (json_object_get (ch, "done"));
                workers[i] = (long) json_integer_value (json_object_get (ch, "workers"));
                pending[i] = (long) json_integer_value (json_object_get (ch, "pending"));
            }
        }
    }
    json_decref (root);
    return 0;
}

static void
    s_event (bench_t *self, char *buf, size_t size);

//  Percentiles of n samples (sorted in place) into out.
static void
s_summarize (double *samples, long n, bench_latency_t *out);

//  (0), first part: the floor's server is started while nothing of Herald
//  runs yet, and the plain ZeroMQ round trip is measured. The durable one
//  is measured beside (a).
static int
s_start_floor (bench_t *self)
{
    long total = self->opt.warmup + self->opt.latency_samples;
    printf ("\n(0) the floor, no Herald code: a ZeroMQ round trip over ipc://, one message "
            "outstanding: %ld + %ld ...\n", self->opt.warmup, self->opt.latency_samples);
    fflush (stdout);
    self->floor = bench_floor_start (self->dir);
    double *samples = calloc ((size_t) self->opt.latency_samples + 1, sizeof (double));
    if (!self->floor || !samples) {
        fprintf (stderr, "herald_bench: cannot start the floor's server: %s\n", strerror (errno));
        free (samples);
        return -1;
    }
    char event[BENCH_EVENT_MAX];
    s_event (self, event, sizeof event);
    self->next_order = 0;
    long n = 0;
    for (long i = 0; i < total && !s_interrupted; i++) {
        double ms = bench_floor_round_trip (self->floor, event, false);
        if (ms < 0) {
            fprintf (stderr, "herald_bench: the floor's server did not answer\n");
            free (samples);
            return -1;
        }
        if (i >= self->opt.warmup)
            samples[n++] = ms;
    }
    s_summarize (samples, n, &self->floor_plain);
    free (samples);
    printf ("    round trip: p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms\n", self->floor_plain.p50,
            self->floor_plain.p99, self->floor_plain.p999);
    return s_interrupted? -1: 0;
}

static int
s_start (bench_t *self)
{
    char templ[128];
    snprintf (templ, sizeof templ, "%s/herald-bench-XXXXXX", self->opt.base_dir);
    if (!mkdtemp (templ)) {
        fprintf (stderr, "herald_bench: mkdtemp %s: %s\n", templ, strerror (errno));
        return -1;
    }
    snprintf (self->dir, sizeof self->dir, "%s", templ);
    if (strlen (self->dir) + sizeof "/producers.sock" > 100) {
        fprintf (stderr, "herald_bench: %s: path too long for ipc:// sockets (use --tmp)\n",
                 self->dir);
        return -1;
    }
    char disk[600];
    bench_describe_disk (self->dir, disk, sizeof disk);
    printf ("temp dir   %s\n", self->dir);
    printf ("store on   %s\n", disk);
    printf ("binaries   %s\n", self->opt.bin_dir);
    if (s_write_config (self) != 0)
        return -1;
    if (self->opt.latency_samples > 0 && s_start_floor (self) != 0)
        return -1;

    printf ("starting   herald-broker and 3 noop workers ...\n");
    fflush (stdout);
    if (s_spawn (self, "broker", "herald-broker", NULL) != 0)
        return -1;
    for (int i = 0; i < BENCH_CHANNELS; i++) {
        char name[32];
        snprintf (name, sizeof name, "worker-%s", s_channels[i]);
        char *extra[] = { "--channel", (char *) s_channels[i], NULL };
        if (s_spawn (self, name, "herald-worker", extra) != 0)
            return -1;
    }
    self->client = herald_client_new (self->producers);
    self->admin_client = herald_client_new (self->admin);
    if (!self->client || !self->admin_client) {
        fprintf (stderr, "herald_bench: cannot create clients: %s\n", strerror (errno));
        return -1;
    }
    double deadline = s_now () + BENCH_READY_MS / 1000.0;
    for (;;) {
        if (s_interrupted || s_children_alive (self) != 0)
            return -1;
        long done[BENCH_CHANNELS], workers[BENCH_CHANNELS], pending[BENCH_CHANNELS];
        if (s_status (self, done, workers, pending) == 0
            &&  workers[0] >= 1 && workers[1] >= 1 && workers[2] >= 1)
            break;
        if (s_now () > deadline) {
            fprintf (stderr, "herald_bench: broker and workers not ready after %ds; logs in %s\n",
                     BENCH_READY_MS / 1000, self->dir);
            return -1;
        }
        s_pause_ms (20);
    }
    printf ("ready      broker pid %d, workers", (int) self->children[0].pid);
    for (int i = 1; i < self->child_count; i++)
        printf (" %s=%d", self->children[i].name + 7, (int) self->children[i].pid);
    printf ("\n");
    fflush (stdout);
    return 0;
}

//  Renders the next event (a new order_id each time) into buf.
static void
s_event (bench_t *self, char *buf, size_t size)
{
    bench_order_event (buf, size, (unsigned long long) ++self->next_order, self->now_text);
}

static void
s_summarize (double *samples, long n, bench_latency_t *out)
{
    memset (out, 0, sizeof *out);
    if (n <= 0)
        return;
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += samples[i];
    bench_sort (samples, n);
    out->samples = n;
    out->p50 = bench_percentile (samples, n, 0.50);
    out->p99 = bench_percentile (samples, n, 0.99);
    out->p999 = bench_percentile (samples, n, 0.999);
    out->max = samples[n - 1];
    out->mean = sum / (double) n;
}

#define BENCH_FLOOR_BLOCK   500     /* (a) and the durable floor take turns this long */

//  (a): warmup, then samples publishes one at a time, each timed. In turn
//  with each block of BENCH_FLOOR_BLOCK publishes, as many durable round
//  trips to the floor's server, so both see the disk at the same moments.
static int
s_run_latency (bench_t *self, bench_latency_t *out)
{
    memset (out, 0, sizeof *out);
    long total = self->opt.warmup + self->opt.latency_samples;
    if (total == 0)
        return 0;
    double *samples = calloc ((size_t) (self->opt.latency_samples + 1), sizeof (double));
    double *floor = calloc ((size_t) (self->opt.latency_samples + 1), sizeof (double));
    if (!samples || !floor) {
        free (samples);
        free (floor);
        return -1;
    }
    printf ("\n(a) ACK latency, one publish outstanding: %ld warm-up + %ld timed publishes,\n"
            "    taking turns every %d with the floor's round trip + %d-byte write + fdatasync ...\n",
            self->opt.warmup, self->opt.latency_samples, BENCH_FLOOR_BLOCK, BENCH_FLOOR_WRITE);
    fflush (stdout);
    char event[BENCH_EVENT_MAX];
    herald_reply_t reply;
    long n = 0, f = 0;
    int rc = 0;
    for (long i = 0; i < total && !s_interrupted && rc == 0; i++) {
        s_event (self, event, sizeof event);
        double t0 = s_now ();
        herald_status_t st = herald_publish (self->client, event, BENCH_REPLY_MS, &reply);
        double ms = (s_now () - t0) * 1000.0;
        if (st != HERALD_OK && s_interrupted)
            break;
        if (st != HERALD_OK) {
            fprintf (stderr, "herald_bench: publish %ld: %s%s%s\n", i, herald_strerror (st),
                     st == HERALD_E_NACK? ": ": "", st == HERALD_E_NACK? reply.reason: "");
            rc = -1;
            break;
        }
        if (i >= self->opt.warmup)
            samples[n++] = ms;
        bool block_end = (i + 1) % BENCH_FLOOR_BLOCK == 0 || i + 1 == total;
        for (long k = 0; block_end && self->floor && k < BENCH_FLOOR_BLOCK && !s_interrupted; k++) {
            double fms = bench_floor_round_trip (self->floor, event, true);
            if (fms < 0) {
                fprintf (stderr, "herald_bench: the floor's server did not answer\n");
                rc = -1;
                break;
            }
            if (i >= self->opt.warmup && f < self->opt.latency_samples)
                floor[f++] = fms;
        }
    }
    bench_floor_stop (&self->floor);
    if (rc == 0 && n > 0) {
        s_summarize (samples, n, out);
        s_summarize (floor, f, &self->floor_durable);
        printf ("    Herald: p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  mean %.3f ms\n",
                out->p50, out->p99, out->p999, out->max, out->mean);
        if (f > 0)
            printf ("    floor:  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  mean %.3f ms"
                    " (round trip + write + fdatasync, no Herald code)\n",
                    self->floor_durable.p50, self->floor_durable.p99, self->floor_durable.p999,
                    self->floor_durable.max, self->floor_durable.mean);
    }
    free (samples);
    free (floor);
    return s_interrupted? -1: rc;
}

//  (b) and (c): events publishes with up to window outstanding, then waits
//  until the broker counts every task done.
static int
s_run_throughput (bench_t *self, bench_throughput_t *out)
{
    memset (out, 0, sizeof *out);
    long done0[BENCH_CHANNELS], workers[BENCH_CHANNELS], pending[BENCH_CHANNELS];
    if (s_status (self, done0, workers, pending) != 0) {
        fprintf (stderr, "herald_bench: status failed before the pipelined run\n");
        return -1;
    }
    printf ("\n(b) ACK throughput: %ld events, window %ld outstanding ...\n",
            self->opt.events, self->opt.window);
    fflush (stdout);
    for (int i = 0; i < self->child_count; i++)
        self->children[i].cpu_ticks_start = s_cpu_ticks (self->children[i].pid);

    char event[BENCH_EVENT_MAX];
    herald_reply_t reply;
    long sent = 0, answered = 0, target = self->opt.events;
    double t0 = s_now (), next_report = t0 + 1.0, last_time = t0;
    long last_acked = 0;
    while (out->acked < target && !s_interrupted) {
        while (sent - answered < self->opt.window && out->acked + (sent - answered) < target) {
            s_event (self, event, sizeof event);
            uint64_t corr;
            herald_status_t st = herald_send (self->client, event, BENCH_REPLY_MS, &corr);
            if (st != HERALD_OK) {
                fprintf (stderr, "herald_bench: send: %s\n", herald_strerror (st));
                return -1;
            }
            sent++;
        }
        herald_status_t st = herald_recv (self->client, BENCH_REPLY_MS, &reply);
        if (st != HERALD_OK && s_interrupted)
            break;
        if (st != HERALD_OK) {
            fprintf (stderr, "herald_bench: no ACK within %d ms (%ld sent, %ld answered): %s\n",
                     BENCH_REPLY_MS, sent, answered, herald_strerror (st));
            return -1;
        }
        answered++;
        if (reply.acked) {
            out->acked++;
            if (reply.duplicate)
                out->duplicates++;
        }
        else if (reply.code == 503 || reply.code == 507) {
            if (out->busy++ == 0)
                fprintf (stderr, "herald_bench: NACK %d (%s): publishing a new event instead\n",
                         reply.code, reply.reason);
        }
        else {
            if (out->nacked++ == 0)
                fprintf (stderr, "herald_bench: NACK %d: %s\n", reply.code, reply.reason);
            target--;               //  not retried: one fewer to wait for
        }
        double now = s_now ();
        if (now >= next_report) {
            printf ("    %5.1fs  %ld ACKed  (%.0f/s overall, %.0f/s in the last %.1f s)\n",
                    now - t0, out->acked, (double) out->acked / (now - t0),
                    (double) (out->acked - last_acked) / (now - last_time), now - last_time);
            fflush (stdout);
            next_report = now + 1.0;
            last_acked = out->acked;
            last_time = now;
        }
    }
    double t_acked = s_now ();
    out->ack_seconds = t_acked - t0;
    if (s_interrupted)
        return -1;
    printf ("    %ld ACKed in %.3f s: %.0f ACKed/s (%ld duplicates, %ld busy, %ld refused)\n",
            out->acked, out->ack_seconds, (double) out->acked / out->ack_seconds,
            out->duplicates, out->busy, out->nacked);
    long hz = sysconf (_SC_CLK_TCK);
    bench_child_t *broker = &self->children[0];
    long ticks = broker->pid > 0? s_cpu_ticks (broker->pid): -1;
    if (ticks >= 0 && broker->cpu_ticks_start >= 0 && hz > 0)
        printf ("    broker CPU while publishing: %.0f%%\n", 100.0 * (double) (ticks
                - broker->cpu_ticks_start) / (double) hz / out->ack_seconds);
    long done_now[BENCH_CHANNELS];
    if (s_status (self, done_now, workers, pending) == 0)
        printf ("    tasks done at the last ACK: email %ld, inventory %ld, courier %ld "
                "(of %ld each)\n", done_now[0] - done0[0], done_now[1] - done0[1],
                done_now[2] - done0[2], out->acked - out->duplicates);

    printf ("\n(c) end to end: waiting until %ld tasks are done on each channel ...\n",
            out->acked - out->duplicates);
    fflush (stdout);
    long want = out->acked - out->duplicates;
    double deadline = s_now () + 120.0 + (double) want / 1000.0;
    double last_report = s_now ();
    for (;;) {
        long done[BENCH_CHANNELS];
        if (s_interrupted || s_children_alive (self) != 0)
            return -1;
        if (s_status (self, done, workers, pending) == 0) {
            bool all = true;
            for (int i = 0; i < BENCH_CHANNELS; i++)
                if (done[i] - done0[i] < want)
                    all = false;
            double now = s_now ();
            if (all) {
                out->e2e_seconds = now - t0;
                break;
            }
            if (now - last_report >= 1.0) {
                printf ("    %5.1fs  done email %ld, inventory %ld, courier %ld\n", now - t0,
                        done[0] - done0[0], done[1] - done0[1], done[2] - done0[2]);
                fflush (stdout);
                last_report = now;
            }
        }
        if (s_now () > deadline) {
            fprintf (stderr, "herald_bench: tasks not all done after %.0f s\n", deadline - t0);
            return -1;
        }
        s_pause_ms (10);
    }
    printf ("    every task done %.3f s after the first publish: %.0f events/s end to end "
            "(%.0f deliveries/s)\n", out->e2e_seconds, (double) want / out->e2e_seconds,
            3.0 * (double) want / out->e2e_seconds);
    return 0;
}

static void
s_report (bench_t *self, const bench_latency_t *lat, const bench_throughput_t *thr,
          double cpu_wall, double self_cpu, const bench_cpu_t *machine)
{
    double ack_rate = thr->ack_seconds > 0? (double) thr->acked / thr->ack_seconds: 0;
    long want = thr->acked - thr->duplicates;
    double e2e_rate = thr->e2e_seconds > 0? (double) want / thr->e2e_seconds: 0;
    printf ("\n%-38s %14s  %-12s %s\n", "measure", "Herald", "target", "Redis streams, fsync always");
    printf ("%-38s %14s  %-12s %s\n", "--------------------------------------", "--------------",
            "------------", "---------------------------");
    if (lat->samples > 0) {
        printf ("%-38s %11.3f ms  %-12s %s\n", "ACK latency p50, 1 outstanding", lat->p50, "", "0.19 ms");
        printf ("%-38s %11.3f ms  %-12s %s\n", "ACK latency p99, 1 outstanding", lat->p99, "< 0.5 ms", "0.37 ms");
        printf ("%-38s %11.3f ms  %-12s %s\n", "ACK latency p99.9, 1 outstanding", lat->p999, "", "");
        printf ("%-38s %11.3f ms  %-12s %s\n", "ACK latency max, 1 outstanding", lat->max, "", "");
    }
    const bench_latency_t *floor = &self->floor_durable;
    if (lat->samples > 0 && floor->samples > 0)
        printf ("%-38s %11.3f ms  %-12s %s\n%-38s %11.3f ms  %-12s %s\n%-38s %11.1fx\n%-38s %11.1fx\n",
                "floor p50 (round trip + fdatasync)", floor->p50, "", "",
                "floor p99 (round trip + fdatasync)", floor->p99, "", "",
                "ACK latency p50 / floor p50", lat->p50 / floor->p50,
                "ACK latency p99 / floor p99", lat->p99 / floor->p99);
    char label[64];
    snprintf (label, sizeof label, "ACK throughput, window %ld", self->opt.window);
    printf ("%-38s %12.0f/s  %-12s %s\n", label, ack_rate, ">= 30,000/s", "~27,000/s");
    printf ("%-38s %12.0f/s  %-12s %s\n", "end to end, 3 channels (noop)", e2e_rate, ">= 15,000/s",
            "~13,500/s (RabbitMQ 5-8,000/s)");
    printf ("\n%ld events ACKed in %.3f s, all %ld tasks done in %.3f s\n", thr->acked,
            thr->ack_seconds, 3 * want, thr->e2e_seconds);
    long hz = sysconf (_SC_CLK_TCK);
    printf ("CPU during (b)+(c), %.2f s wall:", cpu_wall);
    for (int i = 0; i < self->child_count; i++) {
        bench_child_t *child = &self->children[i];
        long end = child->pid > 0? s_cpu_ticks (child->pid): -1;
        if (end >= 0 && child->cpu_ticks_start >= 0 && hz > 0 && cpu_wall > 0)
            printf ("  %s %.0f%%", child->name,
                    100.0 * (double) (end - child->cpu_ticks_start) / (double) hz / cpu_wall);
    }
    if (cpu_wall > 0)
        printf ("  herald_bench %.0f%%", 100.0 * self_cpu / cpu_wall);
    if (machine->total > 0)
        printf ("\nmachine CPU during (b)+(c): %.0f%% busy, %.0f%% iowait (of %ld CPUs)",
                100.0 * (double) machine->busy / (double) machine->total,
                100.0 * (double) machine->iowait / (double) machine->total,
                sysconf (_SC_NPROCESSORS_ONLN));
    long rss = self->children[0].pid > 0? s_peak_rss_kib (self->children[0].pid): -1;
    if (rss >= 0)
        printf ("\nbroker peak RSS %.1f MiB", (double) rss / 1024.0);
    printf ("\n");
    fflush (stdout);
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    remove (path);
    return 0;
}

int
main (int argc, char **argv)
{
    bench_t self;
    memset (&self, 0, sizeof self);
    int rc = s_options (&self.opt, argc, argv);
    if (rc != 0)
        return rc > 0? 0: 64;

    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);

    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (self.now_text, sizeof self.now_text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf ("herald_bench %s: %ld events, window %ld, %ld latency samples, %ld CPUs online\n",
            HERALD_VERSION, self.opt.events, self.opt.window, self.opt.latency_samples,
            sysconf (_SC_NPROCESSORS_ONLN));
    double load[3];
    if (getloadavg (load, 3) == 3)
        printf ("load avg   %.2f %.2f %.2f before starting (other work on the machine skews "
                "the figures)\n", load[0], load[1], load[2]);

    int exit_code = 1;
    bench_latency_t lat;
    bench_throughput_t thr;
    memset (&lat, 0, sizeof lat);
    memset (&thr, 0, sizeof thr);
    if (s_start (&self) == 0 && s_run_latency (&self, &lat) == 0) {
        double t0 = s_now (), cpu0 = s_self_cpu ();
        bench_cpu_t m0, m1;
        s_machine_cpu (&m0);
        if (s_run_throughput (&self, &thr) == 0) {
            s_machine_cpu (&m1);
            bench_cpu_t machine = { m1.busy - m0.busy, m1.iowait - m0.iowait, m1.total - m0.total };
            s_report (&self, &lat, &thr, s_now () - t0, s_self_cpu () - cpu0, &machine);
            exit_code = 0;
        }
    }
    if (s_interrupted)
        fprintf (stderr, "herald_bench: interrupted\n");
    bench_floor_stop (&self.floor);
    herald_client_destroy (&self.client);
    herald_client_destroy (&self.admin_client);
    s_stop_children (&self);
    if (self.dir[0]) {
        if (self.opt.keep || (exit_code != 0 && !s_interrupted))
            printf ("kept       %s (config, store, logs)\n", self.dir);
        else
            nftw (self.dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return exit_code;
}
