/*  herald_bench_load: one load process of herald_bench_peers, for the shapes
    that need several processes:
      one      a producer with one publish outstanding (the checkout shape):
               connects, warms up, prints "ready", waits for "go END_MS" on
               stdin (END_MS on CLOCK_MONOTONIC, milliseconds), then
               publishes, waits for the answer, publishes the next, until
               END_MS; prints "count ACKED REFUSED" (answers that came in
               before END_MS); with --samples FILE, also each counted
               round trip's time in microseconds, one per line, into FILE;
      pipe     a producer with --window publishes outstanding (bench_pg.py's
               shape 1 and end to end): connects, warms up (--warmup-ms of
               pipelined publishing, default 300), prints "ready", waits for
               "go END_MS", then keeps --window publishes unanswered until
               END_MS or until --limit events were sent, waits for every
               answer and prints "count ACKED REFUSED ELAPSED_MS" (first
               send to last answer);
      consume  a Redis stream consumer: XREADGROUP (COUNT 100) + XACK in its
               group until it has acknowledged --expect entries; prints
               "ready" once connected and "done MONO_MS ACKED" at the end.
    The lines on stdout are for herald_bench_peers; errors go to stderr. */

#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "peers_target.h"

#define LOAD_WARMUP         20          /* untimed publishes before "ready" */
#define LOAD_REPLY_MS       10000       /* an answer not back by then: the run is stuck */
#define LOAD_EVENT_MAX      2048
#define LOAD_READ_COUNT     100         /* entries per XREADGROUP, as a real consumer */
#define LOAD_IDLE_MS        60000       /* a consumer given nothing for this long gives up */

typedef struct {
    const char *mode;
    int system;
    const char *endpoint;
    const char *stream;
    const char *group;
    unsigned long long id_base;         /* first order_id - 1 */
    long expect;
    const char *samples;                /* one: where round-trip times go, or NULL */
    long window;                        /* pipe: publishes outstanding */
    long limit;                         /* pipe: events to send, 0: until END_MS */
    long warmup_ms;                     /* pipe: pipelined publishing before "ready" */
} load_options_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: herald_bench_load one --system redis|floor|herald --endpoint tcp://HOST:PORT\n"
        "                             [--stream KEY] [--id-base N] [--samples FILE]\n"
        "       herald_bench_load pipe --system redis|floor|herald --endpoint tcp://HOST:PORT\n"
        "                             [--window N] [--limit N] [--warmup-ms MS] [--id-base N]\n"
        "       herald_bench_load consume --endpoint tcp://HOST:PORT --stream KEY --group G\n"
        "                             --expect N\n"
        "\n"
        "A load process of herald_bench_peers and bench/bench_pg.py (see their --help),\n"
        "which start it and talk to it over stdin and stdout:\n"
        "  one      prints \"ready\", waits for \"go END_MS\" on stdin, publishes one event\n"
        "           at a time until END_MS (CLOCK_MONOTONIC, ms), prints \"count ACKED REFUSED\"\n"
        "           (--samples FILE: each counted round trip's microseconds, one a line)\n"
        "  pipe     warms up (--warmup-ms, default 300), prints \"ready\", waits for \"go END_MS\",\n"
        "           keeps --window (default 1000) publishes outstanding until END_MS or --limit\n"
        "           sent, then waits for every answer; prints \"count ACKED REFUSED ELAPSED_MS\"\n"
        "  consume  Redis consumer group member: XREADGROUP COUNT 100 + XACK until N entries\n"
        "           are acknowledged; prints \"ready\", then \"done MONO_MS ACKED\"\n");
}

static int
s_number (const char *text, const char *name, unsigned long long *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] == '-') {
        fprintf (stderr, "herald_bench_load: %s: expected a number, got '%s'\n", name, text);
        return -1;
    }
    *value = v;
    return 0;
}

/*  A number in min..max into *out, or -1 after saying what was expected. */
static int
s_ranged (const char *text, const char *name, unsigned long long min, unsigned long long max, long *out)
{
    unsigned long long value;
    if (s_number (text, name, &value) || value < min || value > max) {
        fprintf (stderr, "herald_bench_load: %s: expected %llu..%llu\n", name, min, max);
        return -1;
    }
    *out = (long) value;
    return 0;
}

//  0 to run, 1 to exit 0 (help), -1 usage error.
static int
s_options (load_options_t *opt, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "system", required_argument, NULL, 's' },
        { "endpoint", required_argument, NULL, 'e' },
        { "stream", required_argument, NULL, 'k' },
        { "group", required_argument, NULL, 'g' },
        { "id-base", required_argument, NULL, 'b' },
        { "expect", required_argument, NULL, 'n' },
        { "samples", required_argument, NULL, 'f' },
        { "window", required_argument, NULL, 'w' },
        { "limit", required_argument, NULL, 'l' },
        { "warmup-ms", required_argument, NULL, 'u' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    memset (opt, 0, sizeof *opt);
    opt->system = -1;
    opt->stream = "orders";
    opt->window = 1000;
    opt->warmup_ms = 300;
    int c;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
            case 's':
                opt->system = peers_system_parse (optarg);
                if (opt->system < 0) {
                    fprintf (stderr, "herald_bench_load: --system: expected redis, floor or "
                             "herald, got '%s'\n", optarg);
                    return -1;
                }
                break;
            case 'e': opt->endpoint = optarg; break;
            case 'k': opt->stream = optarg; break;
            case 'g': opt->group = optarg; break;
            case 'b':
                if (s_number (optarg, "--id-base", &opt->id_base))
                    return -1;
                break;
            case 'n':
                if (s_ranged (optarg, "--expect", 1, 1000000000, &opt->expect))
                    return -1;
                break;
            case 'f': opt->samples = optarg; break;
            case 'w':
                if (s_ranged (optarg, "--window", 1, 100000, &opt->window))
                    return -1;
                break;
            case 'l':
                if (s_ranged (optarg, "--limit", 0, 1000000000, &opt->limit))
                    return -1;
                break;
            case 'u':
                if (s_ranged (optarg, "--warmup-ms", 0, 600000, &opt->warmup_ms))
                    return -1;
                break;
            case 'h': s_usage (stdout); return 1;
            default:  s_usage (stderr); return -1;
        }
    }
    opt->mode = optind < argc? argv[optind++]: NULL;
    if (!opt->mode || optind < argc || !opt->endpoint) {
        fprintf (stderr, "herald_bench_load: expected a mode (one, pipe or consume) and --endpoint\n");
        s_usage (stderr);
        return -1;
    }
    if ((strcmp (opt->mode, "one") == 0 || strcmp (opt->mode, "pipe") == 0) && opt->system < 0) {
        fprintf (stderr, "herald_bench_load: %s: --system is required\n", opt->mode);
        return -1;
    }
    if (strcmp (opt->mode, "consume") == 0 && (!opt->group || opt->expect == 0)) {
        fprintf (stderr, "herald_bench_load: consume: --group and --expect are required\n");
        return -1;
    }
    if (strcmp (opt->mode, "one") != 0 && strcmp (opt->mode, "pipe") != 0
    &&  strcmp (opt->mode, "consume") != 0) {
        fprintf (stderr, "herald_bench_load: unknown mode '%s' (one, pipe, consume)\n", opt->mode);
        return -1;
    }
    return 0;
}

//  One publish and its answer: 0 ACK, 1 refused, -1 broken.
static int
s_round_trip (peers_target_t *target, const char *event, size_t len)
{
    if (peers_target_send (target, event, len) != 0)
        return -1;
    return peers_target_recv (target, LOAD_REPLY_MS);
}

static int
s_run_one (const load_options_t *opt)
{
    char err[512];
    peers_target_t *target = peers_target_new (opt->system, opt->endpoint, opt->stream,
                                               err, sizeof err);
    if (!target) {
        fprintf (stderr, "herald_bench_load: %s\n", err);
        return 1;
    }
    char now_text[40], event[LOAD_EVENT_MAX];
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (now_text, sizeof now_text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    unsigned long long order = opt->id_base;
    int rc = 0;
    for (int i = 0; i < LOAD_WARMUP && rc == 0; i++) {
        int len = bench_order_event (event, sizeof event, ++order, now_text);
        rc = s_round_trip (target, event, (size_t) len) < 0? -1: 0;
    }
    if (rc != 0) {
        fprintf (stderr, "herald_bench_load: warm-up: %s\n", peers_target_error (target));
        peers_target_destroy (&target);
        return 1;
    }
    printf ("ready\n");
    fflush (stdout);
    char line[128];
    double end_ms = 0;
    if (!fgets (line, sizeof line, stdin) || sscanf (line, "go %lf", &end_ms) != 1) {
        fprintf (stderr, "herald_bench_load: expected \"go END_MS\" on stdin\n");
        peers_target_destroy (&target);
        return 1;
    }
    FILE *samples = NULL;
    if (opt->samples && !(samples = fopen (opt->samples, "w"))) {
        fprintf (stderr, "herald_bench_load: --samples %s: %s\n", opt->samples, strerror (errno));
        peers_target_destroy (&target);
        return 1;
    }
    long acked = 0, refused = 0;
    while (bench_now_ms () < end_ms) {
        int len = bench_order_event (event, sizeof event, ++order, now_text);
        double t0 = bench_now_ms ();
        int answer = s_round_trip (target, event, (size_t) len);
        double t1 = bench_now_ms ();
        if (answer < 0) {
            fprintf (stderr, "herald_bench_load: %s\n", peers_target_error (target));
            rc = -1;
            break;
        }
        if (t1 > end_ms)
            break;                  //  answered after the end: not counted
        if (answer == 0)
            acked++;
        else
        if (refused++ == 0)
            fprintf (stderr, "herald_bench_load: refused: %s\n", peers_target_error (target));
        if (samples)
            fprintf (samples, "%.1f\n", (t1 - t0) * 1000.0);
    }
    if (samples && fclose (samples) != 0) {
        fprintf (stderr, "herald_bench_load: --samples %s: %s\n", opt->samples, strerror (errno));
        rc = -1;
    }
    printf ("count %ld %ld\n", acked, refused);
    fflush (stdout);
    peers_target_destroy (&target);
    return rc == 0? 0: 1;
}

//  Keeps window publishes outstanding until end_ms or limit sent (0: no
//  limit), then waits for every answer. 0, or -1 (said on stderr).
static int
s_pipeline (peers_target_t *target, unsigned long long *order, const char *now_text,
            long window, long limit, double end_ms, long *acked, long *refused)
{
    char event[LOAD_EVENT_MAX];
    long sent = 0, answered = 0;
    for (;;) {
        bool open = bench_now_ms () < end_ms;
        while (open && sent - answered < window && (limit == 0 || sent < limit)) {
            int len = bench_order_event (event, sizeof event, ++*order, now_text);
            if (peers_target_send (target, event, (size_t) len) != 0) {
                fprintf (stderr, "herald_bench_load: %s\n", peers_target_error (target));
                return -1;
            }
            sent++;
        }
        if (answered == sent)
            return 0;
        int rc = peers_target_recv (target, LOAD_REPLY_MS);
        if (rc < 0) {
            fprintf (stderr, "herald_bench_load: %s (%ld sent, %ld answered)\n",
                     peers_target_error (target), sent, answered);
            return -1;
        }
        answered++;
        if (rc == 0)
            ++*acked;
        else
        if ((*refused)++ == 0)
            fprintf (stderr, "herald_bench_load: refused: %s\n", peers_target_error (target));
    }
}

static int
s_run_pipe (const load_options_t *opt)
{
    char err[512];
    peers_target_t *target = peers_target_new (opt->system, opt->endpoint, opt->stream,
                                               err, sizeof err);
    if (!target) {
        fprintf (stderr, "herald_bench_load: %s\n", err);
        return 1;
    }
    char now_text[40];
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (now_text, sizeof now_text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    unsigned long long order = opt->id_base;
    long acked = 0, refused = 0;
    if (opt->warmup_ms > 0
    &&  s_pipeline (target, &order, now_text, opt->window, 0, bench_now_ms () + (double) opt->warmup_ms,
                    &acked, &refused) != 0) {
        peers_target_destroy (&target);
        return 1;
    }
    printf ("ready\n");
    fflush (stdout);
    char line[128];
    double end_ms = 0;
    if (!fgets (line, sizeof line, stdin) || sscanf (line, "go %lf", &end_ms) != 1) {
        fprintf (stderr, "herald_bench_load: expected \"go END_MS\" on stdin\n");
        peers_target_destroy (&target);
        return 1;
    }
    acked = refused = 0;
    double t0 = bench_now_ms ();
    int rc = s_pipeline (target, &order, now_text, opt->window, opt->limit, end_ms, &acked, &refused);
    printf ("count %ld %ld %.3f\n", acked, refused, bench_now_ms () - t0);
    fflush (stdout);
    peers_target_destroy (&target);
    return rc == 0? 0: 1;
}

//  XACKs the ids of one XREADGROUP reply; returns how many, or -1.
static long
s_ack_batch (redisContext *redis, const load_options_t *opt, redisReply *reply)
{
    //  [[stream, [[id, [field, value]], ...]]]
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1)
        return reply->type == REDIS_REPLY_NIL? 0: -1;
    redisReply *entries = reply->element[0]->type == REDIS_REPLY_ARRAY
                       && reply->element[0]->elements == 2? reply->element[0]->element[1]: NULL;
    if (!entries || entries->type != REDIS_REPLY_ARRAY)
        return -1;
    size_t n = entries->elements;
    if (n == 0)
        return 0;
    const char **argv = calloc (n + 3, sizeof *argv);
    size_t *argl = calloc (n + 3, sizeof *argl);
    if (!argv || !argl) {
        free (argv);
        free (argl);
        return -1;
    }
    argv[0] = "XACK";
    argv[1] = opt->stream;
    argv[2] = opt->group;
    for (size_t i = 0; i < 3; i++)
        argl[i] = strlen (argv[i]);
    for (size_t i = 0; i < n; i++) {
        redisReply *entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 1
            || entry->element[0]->type != REDIS_REPLY_STRING) {
            free (argv);
            free (argl);
            return -1;
        }
        argv[3 + i] = entry->element[0]->str;
        argl[3 + i] = entry->element[0]->len;
    }
    redisReply *ack = redisCommandArgv (redis, (int) (n + 3), argv, argl);
    free (argv);
    free (argl);
    long acked = ack && ack->type == REDIS_REPLY_INTEGER? (long) ack->integer: -1;
    if (ack)
        freeReplyObject (ack);
    return acked;
}

static int
s_run_consume (const load_options_t *opt)
{
    char host[256];
    int port = 0;
    if (peers_endpoint_split (opt->endpoint, host, sizeof host, &port) != 0) {
        fprintf (stderr, "herald_bench_load: --endpoint: expected tcp://HOST:PORT, got '%s'\n",
                 opt->endpoint);
        return 1;
    }
    redisContext *redis = redisConnect (host, port);
    if (!redis || redis->err) {
        fprintf (stderr, "herald_bench_load: cannot connect to %s: %s\n", opt->endpoint,
                 redis? redis->errstr: "out of memory");
        return 1;
    }
    printf ("ready\n");
    fflush (stdout);
    long acked = 0;
    double idle_since = bench_now_ms ();
    char consumer[32];
    snprintf (consumer, sizeof consumer, "c-%s", opt->group);
    int rc = 0;
    while (acked < opt->expect) {
        redisReply *reply = redisCommand (redis, "XREADGROUP GROUP %s %s COUNT %d BLOCK 1000 "
                                          "STREAMS %s >", opt->group, consumer, LOAD_READ_COUNT,
                                          opt->stream);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            fprintf (stderr, "herald_bench_load: XREADGROUP: %s\n",
                     reply? reply->str: redis->errstr);
            rc = 1;
            if (reply)
                freeReplyObject (reply);
            break;
        }
        long n = s_ack_batch (redis, opt, reply);
        freeReplyObject (reply);
        if (n < 0) {
            fprintf (stderr, "herald_bench_load: XACK failed or unexpected XREADGROUP reply\n");
            rc = 1;
            break;
        }
        if (n > 0)
            idle_since = bench_now_ms ();
        else
        if (bench_now_ms () - idle_since > LOAD_IDLE_MS) {
            fprintf (stderr, "herald_bench_load: nothing to read for %d s (%ld of %ld acked)\n",
                     LOAD_IDLE_MS / 1000, acked, opt->expect);
            rc = 1;
            break;
        }
        acked += n;
    }
    if (rc == 0) {
        printf ("done %.3f %ld\n", bench_now_ms (), acked);
        fflush (stdout);
    }
    redisFree (redis);
    return rc;
}

int
main (int argc, char **argv)
{
    load_options_t opt;
    int rc = s_options (&opt, argc, argv);
    if (rc != 0)
        return rc > 0? 0: 64;
    if (strcmp (opt.mode, "pipe") == 0)
        return s_run_pipe (&opt);
    return strcmp (opt.mode, "one") == 0? s_run_one (&opt): s_run_consume (&opt);
}
