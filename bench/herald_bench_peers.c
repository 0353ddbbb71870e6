/*  herald_bench_peers: Herald side by side with Redis streams and the
    machine's floor, on the same load shapes, the same event and the same
    disk (scripts/bench-peers.sh builds it and runs it; see BENCHMARKS.md).

    It starts, in a temporary directory, Debian's redis-server (appendonly,
    appendfsync always, no RDB), herald_floor_server and herald-broker (and
    for end to end three noop herald-workers), all on tcp://127.0.0.1, runs
      1. pipelined: one producer, 1,000 publishes outstanding;
      2. 8 producer processes with one publish outstanding each;
      3. ACK latency at one outstanding (blocks taken turn about);
      4. end to end over three channels (Redis: three consumer groups);
      5. Herald's broker RSS with a 1,000,000-task backlog;
    and prints one table with the ratios and the targets. Every
    process it starts it stops by PID, at the end, on error and on Ctrl-C. */

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "herald_config.h"
#include "peers_proc.h"
#include "peers_report.h"
#include "peers_shapes.h"

#define PEERS_PROCS_MAX     16
#define PEERS_START_MS      15000   /* a server must answer by then */
#define PEERS_STOP_MS       10000   /* SIGTERM, then SIGKILL after this */
#define PEERS_QUEUE_WINDOW  100000  /* broker.queue_window in Herald's config (its default) */
#define PEERS_BACKLOG_TASKS 1000000
#define PEERS_FLOOR_CREDIT  1024    /* each floor worker's credit in shape 4: HERALD/2's
                                       largest batch, so the floor is not held back by it */
#define PEERS_CAPACITY      32      /* Herald's channels.*.capacity in shape 4: its default */
#define PEERS_MAX_PENDING   100000000   /* the ingest shapes queue all they publish (no
                                           workers): no busy NACK from the backlog cap */

static volatile sig_atomic_t s_interrupted = 0;

static const char *const s_channels[PEERS_CHANNELS] = { "email", "inventory", "courier" };

typedef struct {
    bool quick;
    double seconds;                 /* per system per shape, shapes 1 to 3 */
    long events;                    /* per end-to-end run */
    long backlog_events;            /* shape 5 */
    int rounds;
    bool shape[6];                  /* shape[1..5]: run it */
    char json[PATH_MAX];            /* --json FILE, or "" */
    char bin_dir[PATH_MAX];
    char base_dir[512];             /* where the temp dir is made */
    bool keep;
    long capacity;                  /* Herald's channels.*.capacity in 4 */
    long prefetch;                  /* Herald's channels.*.prefetch in 4, -1: its default */
    long floor_credit;              /* the floor's workers' credit in 4 */
} peers_options_t;

typedef struct {
    peers_options_t opt;
    char dir[PATH_MAX];             /* the run's temp dir */
    peers_proc_t *procs[PEERS_PROCS_MAX];   /* every process started and not yet stopped */
    peers_env_t env;
    char now_text[40];
    peers_side_t sides[PEERS_SYSTEMS];  /* by system */
    peers_proc_t *broker;           /* the running herald-broker */
    peers_report_t report;
} peers_run_t;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_interrupted = 1;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: herald_bench_peers [options]      (or: scripts/bench-peers.sh [options])\n"
        "\n"
        "Herald side by side with Redis 7 streams (XADD, appendfsync always) and the machine's\n"
        "floor, all on tcp://127.0.0.1, the same ~500-byte order event, stores on the same disk:\n"
        "  1. ACKed events/s, one producer with 1,000 publishes outstanding\n"
        "  2. 8 producer processes x 1 outstanding: total events/s (the checkout shape)\n"
        "  3. ACK latency p50 / p99 / p99.9 at 1 outstanding\n"
        "  4. end to end over three channels, first publish to last acknowledgement (Herald:\n"
        "     noop workers; Redis: three consumer groups, XREADGROUP COUNT 100 + XACK)\n"
        "  5. Herald's broker RSS with a 1,000,000-task backlog (no workers)\n"
        "The floor is no Herald code, only the work any broker must do: for 1 to 3\n"
        "herald_floor_server, a ZeroMQ ROUTER that appends each batch of events to a file with\n"
        "one write + fdatasync before it ACKs; for 4 herald_floor_e2e, the same, then each\n"
        "durable event sent to three workers (credit 1024, batched like HERALD/2's TASKS and\n"
        "RESULTS) whose answers are written the same way before they count. When Herald's\n"
        "credit differs from the floor's, shape 4 runs once more, the floor and Herald taking\n"
        "turns with Herald's workers at the floor's credit: like for like.\n"
        "The systems take turns within each shape; the table gives Herald/Redis and\n"
        "Herald/floor with issue 9's targets (a target of k x Redis above the floor of the same\n"
        "run is reported \"out of reach\", not MISSED), and the CPU each process used.\n"
        "\n"
        "options:\n"
        "  --quick             small counts for CI: the whole run in well under a minute\n"
        "  --seconds S         seconds per system per shape for 1 to 3 (default 10; quick 1)\n"
        "  --events N          events per end-to-end run (default 100000; quick 3000)\n"
        "  --backlog-tasks N   tasks queued in 5 (default 1000000; quick 30000)\n"
        "  --rounds R          turns per system in 1, 2 and 4 (default 3, 2 for 4; quick 1)\n"
        "  --shapes LIST       run only these shapes, e.g. 2,3 (default 1,2,3,4,5)\n"
        "  --capacity N        Herald's channels.*.capacity in 4 (default 32, Herald's default)\n"
        "  --prefetch N        Herald's channels.*.prefetch in 4 (default: Herald's, 256 for\n"
        "                      noop). Each worker's credit is capacity + prefetch: 288 by\n"
        "                      default; the floor's workers take 1024\n"
        "  --floor-credit N    the floor's workers' credit in 4 (default 1024; give Herald's\n"
        "                      credit to see what the floor itself does at that credit)\n"
        "  --json FILE         also write the results as JSON\n"
        "  --tmp DIR           where the temp dir (every store) goes (default $TMPDIR or /tmp)\n"
        "  --bin-dir DIR       where the Herald and bench binaries are (default: this one's)\n"
        "  --keep              keep the temp dir (configs, stores, logs)\n"
        "  --help, --version\n");
}

static int
s_parse_long (const char *text, const char *name, long min, long max, long *value)
{
    char *end = NULL;
    errno = 0;
    long v = strtol (text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max) {
        fprintf (stderr, "herald_bench_peers: %s: expected an integer from %ld to %ld, got '%s'\n",
                 name, min, max, text);
        return -1;
    }
    *value = v;
    return 0;
}

//  "2,3" into shape[]: true for each listed. 0, or -1 (and a message).
static int
s_parse_shapes (const char *text, bool shape[6])
{
    memset (shape, 0, 6 * sizeof (bool));
    bool any = false;
    for (const char *at = text; *at; at++) {
        if (*at >= '1' && *at <= '5' && (at[1] == ',' || at[1] == '\0'))
            shape[*at - '0'] = any = true;
        else
        if (*at != ',' || at == text) {
            any = false;
            break;
        }
    }
    if (!any)
        fprintf (stderr, "herald_bench_peers: --shapes: expected numbers from 1 to 5 separated "
                 "by commas, e.g. 2,3; got '%s'\n", text);
    return any? 0: -1;
}

//  0 to run, 1 to exit 0 (help, version), -1 usage error.
static int
s_options (peers_options_t *opt, int argc, char **argv)
{
    enum { O_QUICK = 1, O_SHAPES, O_SECONDS, O_EVENTS, O_BACKLOG, O_ROUNDS, O_JSON, O_TMP, O_BIN, O_KEEP, O_CAPACITY, O_PREFETCH,
           O_FLOOR_CREDIT, O_HELP, O_VERSION };
    static const struct option longopts[] = {
        { "quick", no_argument, NULL, O_QUICK },
        { "shapes", required_argument, NULL, O_SHAPES },
        { "seconds", required_argument, NULL, O_SECONDS },
        { "events", required_argument, NULL, O_EVENTS },
        { "backlog-tasks", required_argument, NULL, O_BACKLOG },
        { "rounds", required_argument, NULL, O_ROUNDS },
        { "json", required_argument, NULL, O_JSON },
        { "tmp", required_argument, NULL, O_TMP },
        { "bin-dir", required_argument, NULL, O_BIN },
        { "keep", no_argument, NULL, O_KEEP },
        { "capacity", required_argument, NULL, O_CAPACITY },
        { "prefetch", required_argument, NULL, O_PREFETCH },
        { "floor-credit", required_argument, NULL, O_FLOOR_CREDIT },
        { "help", no_argument, NULL, O_HELP },
        { "version", no_argument, NULL, O_VERSION },
        { NULL, 0, NULL, 0 }
    };
    memset (opt, 0, sizeof *opt);
    opt->capacity = PEERS_CAPACITY;
    opt->prefetch = -1;
    opt->floor_credit = PEERS_FLOOR_CREDIT;
    for (int s = 1; s <= 5; s++)
        opt->shape[s] = true;
    long seconds = -1, events = -1, backlog = -1, rounds = -1;
    const char *tmp = getenv ("TMPDIR");
    if (!tmp || !*tmp || strlen (tmp) >= sizeof opt->base_dir)
        tmp = "/tmp";
    snprintf (opt->base_dir, sizeof opt->base_dir, "%s", tmp);
    char exe[PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    exe[len > 0? len: 0] = '\0';
    char *slash = strrchr (exe, '/');
    if (slash)
        *slash = '\0';
    snprintf (opt->bin_dir, sizeof opt->bin_dir, "%s", len > 0? exe: ".");
    int c;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
            case O_QUICK:   opt->quick = true; break;
            case O_SHAPES:  if (s_parse_shapes (optarg, opt->shape)) return -1; break;
            case O_SECONDS: if (s_parse_long (optarg, "--seconds", 1, 3600, &seconds)) return -1; break;
            case O_EVENTS:  if (s_parse_long (optarg, "--events", 100, 100000000, &events)) return -1; break;
            case O_BACKLOG: if (s_parse_long (optarg, "--backlog-tasks", 3, 100000000, &backlog)) return -1; break;
            case O_ROUNDS:  if (s_parse_long (optarg, "--rounds", 1, 100, &rounds)) return -1; break;
            case O_JSON:    snprintf (opt->json, sizeof opt->json, "%s", optarg); break;
            case O_TMP:
                if (strlen (optarg) >= sizeof opt->base_dir) {
                    fprintf (stderr, "herald_bench_peers: --tmp: longer than %zu characters\n",
                             sizeof opt->base_dir - 1);
                    return -1;
                }
                snprintf (opt->base_dir, sizeof opt->base_dir, "%s", optarg);
                break;
            case O_BIN:     snprintf (opt->bin_dir, sizeof opt->bin_dir, "%s", optarg); break;
            case O_KEEP:    opt->keep = true; break;
            case O_CAPACITY: if (s_parse_long (optarg, "--capacity", 1, 10000, &opt->capacity)) return -1; break;
            case O_PREFETCH: if (s_parse_long (optarg, "--prefetch", 0, 10000, &opt->prefetch)) return -1; break;
            case O_FLOOR_CREDIT:
                if (s_parse_long (optarg, "--floor-credit", 1, PEERS_FLOOR_CREDIT, &opt->floor_credit))
                    return -1;
                break;
            case 'h':
            case O_HELP:    s_usage (stdout); return 1;
            case O_VERSION: printf ("herald_bench_peers %s\n", HERALD_VERSION); return 1;
            default:        s_usage (stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "herald_bench_peers: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    opt->seconds = seconds > 0? (double) seconds: opt->quick? 1.0: 10.0;
    opt->events = events > 0? events: opt->quick? 3000: 100000;
    long tasks = backlog > 0? backlog: opt->quick? 30000: PEERS_BACKLOG_TASKS;
    opt->backlog_events = (tasks + PEERS_CHANNELS - 1) / PEERS_CHANNELS;
    opt->rounds = rounds > 0? (int) rounds: opt->quick? 1: 3;
    return 0;
}

//  ---------------------------------------------------------------- processes

//  Starts argv as name (how the tables call it), its output to
//  dir/log_name.log in the run's temp dir.
static peers_proc_t *
s_start (peers_run_t *self, const char *name, const char *log_name, char *const argv[])
{
    int slot = -1;
    for (int i = 0; i < PEERS_PROCS_MAX && slot < 0; i++)
        if (!self->procs[i])
            slot = i;
    if (slot < 0)
        return NULL;
    char log[PATH_MAX + 64];
    snprintf (log, sizeof log, "%s/%s.log", self->dir, log_name);
    self->procs[slot] = peers_proc_start (name, argv, log, false);
    return self->procs[slot];
}

static void
s_stop (peers_run_t *self, peers_proc_t **proc_p)
{
    for (int i = 0; i < PEERS_PROCS_MAX; i++)
        if (*proc_p && self->procs[i] == *proc_p)
            self->procs[i] = NULL;
    peers_proc_stop (proc_p, PEERS_STOP_MS);
}

//  Workers first, servers last, so nothing reconnects in between.
static void
s_stop_all (peers_run_t *self)
{
    for (int i = PEERS_PROCS_MAX - 1; i >= 0; i--)
        if (self->procs[i])
            peers_proc_stop (&self->procs[i], PEERS_STOP_MS);
}

static void
s_pause_ms (long ms)
{
    struct timespec pause = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep (&pause, NULL);
}

//  Polls ready (0 when ready) until PEERS_START_MS; fails if proc exits.
static int
s_wait_ready (peers_proc_t *proc, int (*ready) (peers_run_t *, peers_side_t *),
              peers_run_t *self, peers_side_t *side)
{
    double deadline = bench_now_ms () + PEERS_START_MS;
    while (ready (self, side) != 0) {
        if (!peers_proc_running (proc)) {
            fprintf (stderr, "herald_bench_peers: %s exited at start; see %s, which ends:\n",
                     peers_proc_name (proc), peers_proc_log (proc));
            peers_proc_print_log_tail (proc, stderr, 5);
            return -1;
        }
        if (bench_now_ms () > deadline || s_interrupted) {
            fprintf (stderr, "herald_bench_peers: %s not ready after %d s; see %s\n",
                     peers_proc_name (proc), PEERS_START_MS / 1000, peers_proc_log (proc));
            return -1;
        }
        s_pause_ms (20);
    }
    return 0;
}

//  ---------------------------------------------------------------- Redis

static int
s_redis_ready (peers_run_t *self, peers_side_t *side)
{
    char host[64];
    int port;
    if (peers_endpoint_split (side->endpoint, host, sizeof host, &port) != 0)
        return -1;
    struct timeval timeout = { 1, 0 };
    redisContext *redis = redisConnectWithTimeout (host, port, timeout);
    redisReply *reply = redis && !redis->err? redisCommand (redis, "INFO server"): NULL;
    int rc = reply && reply->type == REDIS_REPLY_STRING? 0: -1;
    const char *version = rc == 0? strstr (reply->str, "redis_version:"): NULL;
    if (version)
        sscanf (version + 14, "%31[^\r\n]", self->report.redis_version);
    if (reply)
        freeReplyObject (reply);
    if (redis)
        redisFree (redis);
    return rc;
}

//  Reads back from the running server the settings the comparison rests
//  on, into text; -1 if it is not fsyncing every write.
static int
s_redis_settings (peers_side_t *side, char *text, size_t size)
{
    static const char *const keys[] = { "appendonly", "appendfsync", "save",
                                        "auto-aof-rewrite-percentage" };
    char host[64];
    int port;
    snprintf (text, size, "?");
    if (peers_endpoint_split (side->endpoint, host, sizeof host, &port) != 0)
        return -1;
    redisContext *redis = redisConnect (host, port);
    size_t at = 0;
    int rc = redis && !redis->err? 0: -1;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && rc == 0; k++) {
        redisReply *reply = redisCommand (redis, "CONFIG GET %s", keys[k]);
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
            const char *value = reply->element[1]->str? reply->element[1]->str: "";
            at += (size_t) snprintf (text + at, at < size? size - at: 0, "%s%s '%s'",
                                     k? ", ": "", keys[k], value);
            if ((k == 0 && strcmp (value, "yes") != 0) || (k == 1 && strcmp (value, "always") != 0))
                rc = -1;
        }
        else
            rc = -1;
        if (reply)
            freeReplyObject (reply);
    }
    if (redis)
        redisFree (redis);
    return rc;
}

//  Debian's redis-server: appendonly with an fsync per write, no RDB
//  snapshots, no automatic AOF rewrite (a background rewrite would load
//  the disk while another system takes its turn); its dir beside Herald's.
static int
s_start_redis (peers_run_t *self)
{
    const char *path = NULL;
    static const char *const candidates[] = { "/usr/bin/redis-server", "/usr/local/bin/redis-server",
                                              "/usr/sbin/redis-server" };
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && !path; i++)
        if (access (candidates[i], X_OK) == 0)
            path = candidates[i];
    if (!path) {
        fprintf (stderr, "herald_bench_peers: redis-server not found (scripts/deps.sh installs "
                 "Debian's redis-server)\n");
        return -1;
    }
    char dir[PATH_MAX + 16], conf[PATH_MAX + 32];
    snprintf (dir, sizeof dir, "%s/redis", self->dir);
    snprintf (conf, sizeof conf, "%s/redis.conf", self->dir);
    int port = peers_free_port ();
    FILE *f = mkdir (dir, 0700) == 0? fopen (conf, "w"): NULL;
    if (!f || port < 0) {
        fprintf (stderr, "herald_bench_peers: %s: %s\n", conf, strerror (errno));
        if (f)
            fclose (f);
        return -1;
    }
    fprintf (f, "# written by herald_bench_peers\n"
             "bind 127.0.0.1\nport %d\ndir \"%s\"\ndaemonize no\nlogfile \"\"\n"
             "appendonly yes\nappendfsync always\nsave \"\"\n"
             "auto-aof-rewrite-percentage 0\n", port, dir);
    if (fclose (f) != 0)
        return -1;
    peers_side_t *side = &self->sides[PEERS_REDIS];
    side->system = PEERS_REDIS;
    snprintf (side->endpoint, sizeof side->endpoint, "tcp://127.0.0.1:%d", port);
    snprintf (side->stream, sizeof side->stream, "orders");
    char *argv[] = { (char *) path, conf, NULL };
    peers_proc_t *proc = s_start (self, "redis-server", "redis-server", argv);
    if (!proc || s_wait_ready (proc, s_redis_ready, self, side) != 0)
        return -1;
    side->servers[0] = proc;
    side->server_count = 1;
    char settings[256];
    if (s_redis_settings (side, settings, sizeof settings) != 0) {
        fprintf (stderr, "herald_bench_peers: redis-server does not fsync every write: %s\n",
                 settings);
        return -1;
    }
    printf ("started    redis-server %s, pid %d, %s, dir %s\n           %s\n",
            self->report.redis_version, (int) peers_proc_pid (proc), side->endpoint, dir,
            settings);
    return 0;
}

//  ---------------------------------------------------------------- floor

static int
s_floor_ready (peers_run_t *self, peers_side_t *side)
{
    char err[256], event[2048];
    peers_target_t *target = peers_target_new (PEERS_FLOOR, side->endpoint, NULL, err, sizeof err);
    int len = bench_order_event (event, sizeof event, 1, self->now_text);
    int rc = target && peers_target_send (target, event, (size_t) len) == 0
          && peers_target_recv (target, 1000) == 0? 0: -1;
    peers_target_destroy (&target);
    return rc;
}

static int
s_start_floor (peers_run_t *self)
{
    peers_side_t *side = &self->sides[PEERS_FLOOR];
    side->system = PEERS_FLOOR;
    int port = peers_free_port ();
    snprintf (side->endpoint, sizeof side->endpoint, "tcp://127.0.0.1:%d", port);
    char program[PATH_MAX + 32], file[PATH_MAX + 32];
    snprintf (program, sizeof program, "%s/herald_floor_server", self->opt.bin_dir);
    snprintf (file, sizeof file, "%s/floor.data", self->dir);
    char *argv[] = { program, "--endpoint", side->endpoint, "--file", file, NULL };
    peers_proc_t *proc = port > 0? s_start (self, "herald_floor_server", "herald_floor_server", argv): NULL;
    if (!proc || s_wait_ready (proc, s_floor_ready, self, side) != 0)
        return -1;
    side->servers[0] = proc;
    side->server_count = 1;
    printf ("started    herald_floor_server, pid %d, %s, file %s\n", (int) peers_proc_pid (proc),
            side->endpoint, file);
    return 0;
}

//  Ready when STATUS answers with every channel's worker connected.
static int
s_floor_e2e_ready (peers_run_t *self, peers_side_t *side)
{
    (void) self;
    long values[1 + PEERS_CHANNELS];
    return side->status
        && peers_target_floor_status (side->status, values, 1 + PEERS_CHANNELS, 1000)
           == 1 + PEERS_CHANNELS && values[0] >= PEERS_CHANNELS? 0: -1;
}

//  The floor for end to end: herald_floor_e2e's server and one of its
//  workers per channel (credit --floor-credit each, default 1024).
static int
s_start_floor_e2e (peers_run_t *self)
{
    peers_side_t *side = &self->sides[PEERS_FLOOR];
    memset (side, 0, sizeof *side);
    side->system = PEERS_FLOOR;
    int ports[2] = { peers_free_port (), peers_free_port () };
    if (ports[0] < 0 || ports[1] < 0)
        return -1;
    char workers[64], program[PATH_MAX + 32], file[PATH_MAX + 32], log_name[64];
    snprintf (side->endpoint, sizeof side->endpoint, "tcp://127.0.0.1:%d", ports[0]);
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", ports[1]);
    snprintf (program, sizeof program, "%s/herald_floor_e2e", self->opt.bin_dir);
    snprintf (file, sizeof file, "%s/floor-e2e.data", self->dir);
    char *argv[] = { program, "server", "--producers", side->endpoint, "--workers", workers,
                     "--file", file, NULL };
    peers_proc_t *proc = s_start (self, "herald_floor_e2e", "herald_floor_e2e", argv);
    if (!proc)
        return -1;
    side->servers[side->server_count++] = proc;
    for (int c = 0; c < PEERS_CHANNELS; c++) {
        char credit[16];
        snprintf (credit, sizeof credit, "%ld", self->opt.floor_credit);
        char *wargv[] = { program, "worker", "--endpoint", workers, "--channel",
                          (char *) s_channels[c], "--credit", credit, NULL };
        char worker_name[40];
        snprintf (worker_name, sizeof worker_name, "floor-worker-%s", s_channels[c]);
        snprintf (log_name, sizeof log_name, "%s", worker_name);
        peers_proc_t *worker = s_start (self, worker_name, log_name, wargv);
        if (!worker)
            return -1;
        side->servers[side->server_count++] = worker;
    }
    char err[256];
    side->status = peers_target_new (PEERS_FLOOR, side->endpoint, NULL, err, sizeof err);
    if (!side->status || s_wait_ready (proc, s_floor_e2e_ready, self, side) != 0)
        return -1;
    printf ("started    herald_floor_e2e, pid %d, %s, with 3 workers (credit %ld), file %s\n",
            (int) peers_proc_pid (proc), side->endpoint, self->opt.floor_credit, file);
    return 0;
}

static void
s_stop_floor (peers_run_t *self)
{
    peers_side_t *side = &self->sides[PEERS_FLOOR];
    peers_target_destroy (&side->status);
    for (int i = side->server_count - 1; i >= 0; i--)
        s_stop (self, &side->servers[i]);
    side->server_count = 0;
}

//  ---------------------------------------------------------------- Herald

//  Ready when the status verb answers and, if workers were started, every
//  channel counts one.
static int
s_herald_ready (peers_run_t *self, peers_side_t *side)
{
    (void) self;
    int code = 0;
    char *body = NULL;
    herald_status_t st = herald_admin (side->admin, "status", "{}", 500, &code, &body);
    json_t *root = st == HERALD_OK && code == 200 && body? json_loads (body, 0, NULL): NULL;
    free (body);
    if (!root)
        return -1;
    json_t *channels = json_object_get (root, "channels");
    int connected = 0;
    for (size_t c = 0; c < json_array_size (channels); c++)
        connected += json_integer_value (json_object_get (json_array_get (channels, c),
                                                          "workers")) > 0;
    json_decref (root);
    return side->server_count == 1 || connected >= PEERS_CHANNELS? 0: -1;
}

//  A fresh broker (its own store under dir/name), and with workers one
//  noop herald-worker per channel; capacity and prefetch: channels.*'s
//  (prefetch -1: not written, Herald's default). *credit (if not NULL):
//  each worker's credit, as Herald reads the configuration written.
static int
s_start_herald (peers_run_t *self, const char *name, bool workers, long capacity, long prefetch, long *credit)
{
    peers_side_t *side = &self->sides[PEERS_HERALD];
    memset (side, 0, sizeof *side);
    side->system = PEERS_HERALD;
    char dir[PATH_MAX + 32], config[PATH_MAX + 64], admin[64];
    snprintf (dir, sizeof dir, "%s/%s", self->dir, name);
    snprintf (config, sizeof config, "%s/herald.yaml", dir);
    int ports[3] = { peers_free_port (), peers_free_port (), peers_free_port () };
    snprintf (side->endpoint, sizeof side->endpoint, "tcp://127.0.0.1:%d", ports[0]);
    snprintf (admin, sizeof admin, "tcp://127.0.0.1:%d", ports[2]);
    FILE *f = mkdir (dir, 0700) == 0? fopen (config, "w"): NULL;
    if (!f || ports[0] < 0 || ports[1] < 0 || ports[2] < 0) {
        fprintf (stderr, "herald_bench_peers: %s: %s\n", config, strerror (errno));
        if (f)
            fclose (f);
        return -1;
    }
    fprintf (f, "# written by herald_bench_peers\n"
             "broker:\n"
             "  listen: { producers: \"%s\", workers: \"tcp://127.0.0.1:%d\", admin: \"%s\" }\n"
             "  store: \"%s/herald.db\"\n"
             "  queue_window: %d\n"
             "  max_pending_events: %d\n"
             "events:\n"
             "  order.confirmed:\n"
             "    key: order_id\n"
             "    required: [order_id, customer.email, items]\n"
             "    fanout: [email, inventory, courier]\n"
             "channels:\n",
             side->endpoint, ports[1], admin, dir, PEERS_QUEUE_WINDOW, PEERS_MAX_PENDING);
    for (int c = 0; c < PEERS_CHANNELS; c++) {
        fprintf (f, "  %s: { driver: noop, capacity: %ld", s_channels[c], capacity);
        if (prefetch >= 0)
            fprintf (f, ", prefetch: %ld", prefetch);
        fprintf (f, " }\n");
    }
    fprintf (f, "workers: { email: 1, inventory: 1, courier: 1 }\n");
    if (fclose (f) != 0)
        return -1;
    herald_config_t *loaded = malloc (sizeof *loaded);
    char err[HERALD_ERR_MAX];
    if (!loaded || herald_config_load (loaded, config, err, sizeof err) != 0) {
        fprintf (stderr, "herald_bench_peers: %s: %s\n", config, loaded? err: "out of memory");
        free (loaded);
        return -1;
    }
    long worker_credit = (long) herald_channel_credit (&loaded->channels[0]);
    free (loaded);
    if (credit)
        *credit = worker_credit;
    char program[PATH_MAX + 32], log_name[64];
    snprintf (program, sizeof program, "%s/herald-broker", self->opt.bin_dir);
    char *argv[] = { program, "-c", config, NULL };
    snprintf (log_name, sizeof log_name, "%s/broker", name);
    self->broker = s_start (self, "herald-broker", log_name, argv);
    if (!self->broker)
        return -1;
    side->servers[side->server_count++] = self->broker;
    for (int c = 0; workers && c < PEERS_CHANNELS; c++) {
        snprintf (program, sizeof program, "%s/herald-worker", self->opt.bin_dir);
        char *wargv[] = { program, "-c", config, "--channel", (char *) s_channels[c], NULL };
        char worker_name[32];
        snprintf (worker_name, sizeof worker_name, "worker-%s", s_channels[c]);
        snprintf (log_name, sizeof log_name, "%s/%s", name, worker_name);
        peers_proc_t *worker = s_start (self, worker_name, log_name, wargv);
        if (!worker)
            return -1;
        side->servers[side->server_count++] = worker;
    }
    side->admin = herald_client_new (admin);
    if (!side->admin || s_wait_ready (self->broker, s_herald_ready, self, side) != 0)
        return -1;
    printf ("started    herald-broker (%s), pid %d, %s, %s, store %s/herald.db\n", name,
            (int) peers_proc_pid (self->broker), side->endpoint,
            workers? "with 3 noop workers": "no workers", dir);
    if (workers)
        printf ("           channels.*.capacity %ld, prefetch %s: each worker's credit %ld\n", capacity,
                prefetch >= 0? "as given": "Herald's default", worker_credit);
    return 0;
}

static void
s_stop_herald (peers_run_t *self)
{
    peers_side_t *side = &self->sides[PEERS_HERALD];
    herald_client_destroy (&side->admin);
    for (int i = side->server_count - 1; i >= 0; i--)
        s_stop (self, &side->servers[i]);
    side->server_count = 0;
    self->broker = NULL;
}

//  ---------------------------------------------------------------- phases

//  Shapes 1 to 3: Redis, the floor and Herald (no workers: ingest alone,
//  as Redis has no consumers here).
static int
s_phase_ingest (peers_run_t *self)
{
    peers_options_t *opt = &self->opt;
    peers_report_t *rep = &self->report;
    if (!opt->shape[1] && !opt->shape[2] && !opt->shape[3])
        return 0;
    if (s_start_floor (self) != 0
    ||  s_start_herald (self, "herald-ingest", false, opt->capacity, opt->prefetch, NULL) != 0)
        return -1;
    peers_side_t *sides[PEERS_SYSTEMS] = { &self->sides[PEERS_REDIS], &self->sides[PEERS_FLOOR],
                                           &self->sides[PEERS_HERALD] };
    int rc = 0;
    if (opt->shape[1]) {
        printf ("\n== 1. one producer, %ld outstanding: %d round(s) x 3 systems, %.1f s each\n",
                rep->window, opt->rounds, opt->seconds / opt->rounds);
        rc = peers_shape_pipelined (&self->env, sides, PEERS_SYSTEMS, opt->rounds, opt->seconds,
                                    rep->window, rep->pipelined);
    }
    if (rc == 0 && opt->shape[2]) {
        printf ("\n== 2. %d producer processes x 1 outstanding: %d round(s) x 3 systems, "
                "%.1f s each\n", rep->producer_count, opt->rounds, opt->seconds / opt->rounds);
        rc = peers_shape_producers (&self->env, sides, PEERS_SYSTEMS, opt->rounds, opt->seconds,
                                    rep->producer_count, rep->producers);
    }
    if (rc == 0 && opt->shape[3]) {
        printf ("\n== 3. ACK latency, 1 outstanding: blocks of 200 round trips taken turn "
                "about, %.0f s per system\n", opt->seconds);
        rc = peers_shape_latency (&self->env, sides, PEERS_SYSTEMS, opt->seconds, rep->latency);
    }
    if (rc != 0)
        return -1;
    s_stop_floor (self);
    s_stop_herald (self);
    return 0;
}

//  Shape 4: Redis (three consumer groups), the floor's end-to-end server
//  with its workers, and a fresh Herald with workers.
static int
s_phase_end_to_end (peers_run_t *self)
{
    peers_options_t *opt = &self->opt;
    peers_report_t *rep = &self->report;
    if (!opt->shape[4])
        return 0;
    long credit = 0;
    if (s_start_floor_e2e (self) != 0
    ||  s_start_herald (self, "herald-e2e", true, opt->capacity, opt->prefetch, &credit) != 0)
        return -1;
    rep->herald_credit = credit;
    int rounds = opt->quick? 1: opt->rounds > 1? opt->rounds - 1: 1;
    printf ("\n== 4. end to end, 3 channels: %d round(s) x 3 systems, %ld events each, "
            "%ld outstanding\n", rounds, opt->events, rep->window);
    fflush (stdout);
    peers_side_t *sides[PEERS_SYSTEMS] = { &self->sides[PEERS_REDIS], &self->sides[PEERS_FLOOR],
                                           &self->sides[PEERS_HERALD] };
    int rc = peers_shape_end_to_end (&self->env, sides, PEERS_SYSTEMS, rounds, opt->events,
                                     rep->window, rep->end_to_end);
    rep->rounds_end_to_end = rounds;
    s_stop_herald (self);
    if (rc == 0 && credit != opt->floor_credit && !s_interrupted) {
        /*  Like for like: the floor again, taking turns with a fresh
            Herald whose workers have the floor's credit. */
        rc = s_start_herald (self, "herald-e2e-credit", true, opt->floor_credit, 0, NULL);
        if (rc == 0) {
            printf ("\n== 4. the same, Herald's workers at the floor's credit (%ld): %d round(s) x "
                    "the floor and Herald\n", opt->floor_credit, rounds);
            peers_side_t *pair[2] = { &self->sides[PEERS_FLOOR], &self->sides[PEERS_HERALD] };
            peers_result_t out[2];
            rc = peers_shape_end_to_end (&self->env, pair, 2, rounds, opt->events, rep->window, out);
            rep->end_to_end_equal[PEERS_FLOOR] = out[0];
            rep->end_to_end_equal[PEERS_HERALD] = out[1];
        }
        s_stop_herald (self);
    }
    s_stop_floor (self);
    return rc;
}

//  Shape 5: a fresh Herald broker, no workers, filled with the backlog.
static int
s_phase_backlog (peers_run_t *self)
{
    peers_report_t *rep = &self->report;
    if (!self->opt.shape[5])
        return 0;
    if (s_start_herald (self, "herald-backlog", false, self->opt.capacity, self->opt.prefetch, NULL) != 0)
        return -1;
    printf ("\n== 5. Herald's broker RSS: %ld events x 3 channels = %ld tasks queued, "
            "no workers ...\n", self->opt.backlog_events, self->opt.backlog_events * PEERS_CHANNELS);
    fflush (stdout);
    int rc = peers_backlog (&self->env, &self->sides[PEERS_HERALD], self->broker,
                            self->opt.backlog_events, rep->window, &rep->backlog);
    if (rc == 0) {
        rep->backlog_measured = true;
        printf ("    %ld tasks queued (%.0f ACKed/s): VmRSS %.0f MiB, VmHWM %.0f MiB\n",
                rep->backlog.tasks, rep->backlog.rate, (double) rep->backlog.rss_kib / 1024.0,
                (double) rep->backlog.hwm_kib / 1024.0);
    }
    s_stop_herald (self);
    return rc;
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
    static peers_run_t self;
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
    snprintf (self.dir, sizeof self.dir, "%s/herald-peers-XXXXXX", self.opt.base_dir);
    if (!mkdtemp (self.dir)) {
        fprintf (stderr, "herald_bench_peers: mkdtemp %s: %s\n", self.dir, strerror (errno));
        return 1;
    }
    peers_report_t *rep = &self.report;
    rep->quick = self.opt.quick;
    rep->seconds = self.opt.seconds;
    rep->rounds = self.opt.rounds;
    rep->window = 1000;
    rep->producer_count = 8;
    rep->events = self.opt.events;
    rep->queue_window = PEERS_QUEUE_WINDOW;
    rep->floor_credit = (int) self.opt.floor_credit;
    char event[2048];
    rep->event_bytes = bench_order_event (event, sizeof event, 1000000000ULL, self.now_text);
    bench_describe_disk (self.dir, rep->disk, sizeof rep->disk);
    self.env.bin_dir = self.opt.bin_dir;
    self.env.log_dir = self.dir;
    self.env.now_text = self.now_text;
    self.env.interrupted = &s_interrupted;

    double load[3] = { 0 };
    getloadavg (load, 3);
    printf ("herald_bench_peers %s%s: %ld CPUs, load average %.2f %.2f %.2f before starting\n",
            HERALD_VERSION, self.opt.quick? " --quick": "", sysconf (_SC_NPROCESSORS_ONLN),
            load[0], load[1], load[2]);
    printf ("temp dir   %s on %s (every store: Redis's AOF, the floor's file, Herald's store)\n",
            self.dir, rep->disk);
    printf ("event      %d bytes of CloudEvents JSON, a new order_id each time\n", rep->event_bytes);
    fflush (stdout);

    double t0 = bench_now_ms ();
    rc = s_start_redis (&self) == 0 && s_phase_ingest (&self) == 0
      && s_phase_end_to_end (&self) == 0 && s_phase_backlog (&self) == 0? 0: 1;
    s_stop_floor (&self);
    s_stop_herald (&self);
    s_stop_all (&self);
    if (rc == 0) {
        peers_report_print (rep, stdout);
        printf ("\nwhole run %.0f s\n", (bench_now_ms () - t0) / 1000.0);
        if (self.opt.json[0] && peers_report_json (rep, self.opt.json) != 0)
            rc = 1;
    }
    if (s_interrupted)
        fprintf (stderr, "herald_bench_peers: interrupted\n");
    if (self.opt.keep || (rc != 0 && !s_interrupted))
        printf ("kept       %s (configs, stores, logs)\n", self.dir);
    else
        nftw (self.dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
