/*  peers_shapes: see peers_shapes.h. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "peers_shapes.h"

#define SHAPE_EVENT_MAX     2048
#define SHAPE_REPLY_MS      10000       /* an answer not back by then: the run is stuck */
#define SHAPE_READY_MS      15000       /* load processes connected and warmed up by then */
#define SHAPE_WARMUP_S      0.3         /* untimed pipelined publishing before a shape */
#define SHAPE_LATENCY_BLOCK 200         /* round trips per turn in the latency shape */
#define SHAPE_ID_STRIDE     100000000ULL    /* order ids reserved for one load process */
#define SHAPE_CATCH_UP_MS   600000      /* Herald's index has applied its journal by then */

//  ---------------------------------------------------------------- CPU

typedef struct {
    double server[PEERS_SERVERS_MAX];
    double self;
} s_cpu_mark_t;

static double
s_self_cpu (void)
{
    struct rusage ru;
    if (getrusage (RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
         + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static void
s_mark (peers_side_t *side, s_cpu_mark_t *mark)
{
    for (int i = 0; i < side->server_count; i++)
        mark->server[i] = peers_proc_cpu (side->servers[i]);
    mark->self = s_self_cpu ();
}

//  Adds seconds to the entry called name (made if new).
static void
s_add_cpu (peers_result_t *r, const char *name, double seconds)
{
    if (seconds < 0)
        return;
    for (int i = 0; i < r->cpu_count; i++)
        if (strcmp (r->cpu[i].name, name) == 0) {
            r->cpu[i].seconds += seconds;
            return;
        }
    if (r->cpu_count < PEERS_CPU_MAX) {
        snprintf (r->cpu[r->cpu_count].name, sizeof r->cpu[0].name, "%s", name);
        r->cpu[r->cpu_count++].seconds = seconds;
    }
}

//  The servers' CPU since mark, and this process's as "client" if it was
//  the client.
static void
s_account (peers_result_t *r, peers_side_t *side, const s_cpu_mark_t *mark, bool client)
{
    for (int i = 0; i < side->server_count; i++)
        s_add_cpu (r, peers_proc_name (side->servers[i]),
                   peers_proc_cpu (side->servers[i]) - mark->server[i]);
    if (client)
        s_add_cpu (r, "client", s_self_cpu () - mark->self);
}

//  ---------------------------------------------------------------- helpers

static peers_target_t *
s_connect (peers_side_t *side)
{
    char err[512];
    peers_target_t *target = peers_target_new (side->system, side->endpoint, side->stream,
                                               err, sizeof err);
    if (!target)
        fprintf (stderr, "herald_bench_peers: %s\n", err);
    return target;
}

static int
s_event (peers_env_t *env, char *buf, size_t size)
{
    return bench_order_event (buf, size, ++env->next_order, env->now_text);
}

//  Order of the systems in round r: rotated, so none is always first.
static int
s_turn (int round, int i, int n)
{
    return (round + i) % n;
}

typedef struct {
    long acked, refused;
    double elapsed_s;               /* first send to last answer */
} s_flow_t;

//  One producer, window outstanding: publishes until seconds have passed
//  or limit events were sent (0: no limit), then waits for every answer.
static int
s_pipeline (peers_env_t *env, peers_target_t *target, double seconds, long limit, long window,
            s_flow_t *flow)
{
    memset (flow, 0, sizeof *flow);
    char event[SHAPE_EVENT_MAX];
    long sent = 0, answered = 0;
    double t0 = bench_now_ms (), end = t0 + seconds * 1000.0;
    for (;;) {
        bool open = bench_now_ms () < end && !*env->interrupted;
        while (open && sent - answered < window && (limit == 0 || sent < limit)) {
            int len = s_event (env, event, sizeof event);
            if (peers_target_send (target, event, (size_t) len) != 0) {
                fprintf (stderr, "herald_bench_peers: %s\n", peers_target_error (target));
                return -1;
            }
            sent++;
        }
        if (answered == sent)
            break;
        int rc = peers_target_recv (target, SHAPE_REPLY_MS);
        if (rc < 0) {
            fprintf (stderr, "herald_bench_peers: %s (%ld sent, %ld answered)\n",
                     peers_target_error (target), sent, answered);
            return -1;
        }
        answered++;
        if (rc == 0)
            flow->acked++;
        else
        if (flow->refused++ == 0)
            fprintf (stderr, "herald_bench_peers: refused: %s\n", peers_target_error (target));
    }
    flow->elapsed_s = (bench_now_ms () - t0) / 1000.0;
    return *env->interrupted? -1: 0;
}

static void
s_print_rate (const char *what, int round, int rounds, peers_side_t *side, double rate,
              const char *unit)
{
    printf ("    %s round %d/%d  %-6s %10.0f %s\n", what, round + 1, rounds,
            peers_system_label (side->system), rate, unit);
    fflush (stdout);
}

//  Herald's answer to the status verb, parsed, or NULL.
static json_t *
s_herald_status (peers_side_t *side)
{
    int code = 0;
    char *body = NULL;
    herald_status_t st = herald_admin (side->admin, "status", "{}", 2000, &code, &body);
    json_t *root = st == HERALD_OK && code == 200 && body? json_loads (body, 0, NULL): NULL;
    free (body);
    return root;
}

//  Herald's journal bytes its index has not applied yet (the status verb's
//  broker.index_lag_bytes), or -1.
static long
s_herald_index_lag (peers_side_t *side)
{
    json_t *root = s_herald_status (side);
    json_t *lag = json_object_get (json_object_get (root, "broker"), "index_lag_bytes");
    long value = json_is_integer (lag)? (long) json_integer_value (lag): -1;
    json_decref (root);
    return value;
}

//  After a Herald turn: waits until its index (SQLite, applied from the
//  journal on its own thread, off the ACK path) has caught up, so that it
//  does not go on taking CPU and disk in the next system's turn, and adds
//  the time to r->catch_up_s (r NULL: after a warm-up, not counted nor
//  printed). Other systems: nothing to wait for. 0 / -1.
static int
s_catch_up (peers_env_t *env, peers_side_t *side, const char *shape, int round, int rounds,
            peers_result_t *r)
{
    if (side->system != PEERS_HERALD || !side->admin)
        return 0;
    double start = bench_now_ms ();
    long lag = 0;
    while (!*env->interrupted && (lag = s_herald_index_lag (side)) != 0) {
        if (lag < 0 || bench_now_ms () - start > SHAPE_CATCH_UP_MS) {
            fprintf (stderr, "herald_bench_peers: Herald's index %s after %.0f s\n",
                     lag < 0? "lag is not in the status verb's answer": "had not caught up",
                     (bench_now_ms () - start) / 1000.0);
            return -1;
        }
        struct timespec pause = { 0, 20000000 };
        nanosleep (&pause, NULL);
    }
    if (*env->interrupted)
        return -1;
    double took = (bench_now_ms () - start) / 1000.0;
    if (!r)
        return 0;
    r->catch_up_s += took;
    printf ("    %s round %d/%d  Herald's index caught up %.1f s after the turn\n", shape,
            round + 1, rounds, took);
    fflush (stdout);
    return 0;
}

//  ---------------------------------------------------------------- shapes

int
peers_shape_pipelined (peers_env_t *env, peers_side_t **sides, int n, int rounds,
                       double seconds, long window, peers_result_t *out)
{
    fflush (stdout);                //  the caller's heading, before the wait
    peers_target_t *targets[PEERS_SYSTEMS] = { NULL };
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        memset (&out[i], 0, sizeof out[i]);
        targets[i] = s_connect (sides[i]);
        s_flow_t warm;
        rc = targets[i] && s_pipeline (env, targets[i], SHAPE_WARMUP_S, 0, window, &warm) == 0? 0: -1;
        if (rc == 0)
            rc = s_catch_up (env, sides[i], "1", 0, rounds, NULL);
    }
    for (int r = 0; r < rounds && rc == 0; r++)
        for (int k = 0; k < n && rc == 0; k++) {
            int i = s_turn (r, k, n);
            s_cpu_mark_t mark;
            s_mark (sides[i], &mark);
            s_flow_t flow;
            rc = s_pipeline (env, targets[i], seconds / rounds, 0, window, &flow);
            s_account (&out[i], sides[i], &mark, true);
            out[i].count += flow.acked;
            out[i].refused += flow.refused;
            out[i].wall_s += flow.elapsed_s;
            if (rc == 0)
                s_print_rate ("1", r, rounds, sides[i], (double) flow.acked / flow.elapsed_s,
                              "ACKed/s");
            if (rc == 0)
                rc = s_catch_up (env, sides[i], "1", r, rounds, &out[i]);
        }
    for (int i = 0; i < n; i++) {
        peers_target_destroy (&targets[i]);
        out[i].measured = rc == 0 && out[i].wall_s > 0;
        out[i].rate = out[i].measured? (double) out[i].count / out[i].wall_s: 0;
    }
    return rc;
}

//  Starts count load processes "one" against side; each says "ready".
static int
s_start_producers (peers_env_t *env, peers_side_t *side, int count, peers_proc_t **procs)
{
    char program[1024], log[1024], base[32];
    snprintf (program, sizeof program, "%s/herald_bench_load", env->bin_dir);
    snprintf (log, sizeof log, "%s/load-%s.log", env->log_dir, peers_system_name (side->system));
    for (int p = 0; p < count; p++) {
        snprintf (base, sizeof base, "%llu", env->next_order);
        env->next_order += SHAPE_ID_STRIDE;
        char *argv[] = { program, "one", "--system", (char *) peers_system_name (side->system),
                         "--endpoint", side->endpoint, "--stream", side->stream,
                         "--id-base", base, NULL };
        procs[p] = peers_proc_start ("producer", argv, log, true);
        if (!procs[p])
            return -1;
    }
    for (int p = 0; p < count; p++) {
        char line[64];
        if (peers_proc_read_line (procs[p], line, sizeof line, SHAPE_READY_MS) != 0
            || strcmp (line, "ready") != 0) {
            fprintf (stderr, "herald_bench_peers: a %s producer did not get ready within %d s; "
                     "see %s\n", peers_system_label (side->system), SHAPE_READY_MS / 1000, log);
            return -1;
        }
    }
    return 0;
}

int
peers_shape_producers (peers_env_t *env, peers_side_t **sides, int n, int rounds,
                       double seconds, int producers, peers_result_t *out)
{
    fflush (stdout);                //  the caller's heading, before the wait
    for (int i = 0; i < n; i++)
        memset (&out[i], 0, sizeof out[i]);
    peers_proc_t *procs[64] = { NULL };
    if (producers > 64)
        producers = 64;
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++)
        for (int k = 0; k < n && rc == 0 && !*env->interrupted; k++) {
            int i = s_turn (r, k, n);
            rc = s_start_producers (env, sides[i], producers, procs);
            s_cpu_mark_t mark;
            s_mark (sides[i], &mark);
            double start = bench_now_ms (), end = start + seconds / rounds * 1000.0;
            char go[64];
            snprintf (go, sizeof go, "go %.3f\n", end);
            for (int p = 0; p < producers && rc == 0; p++)
                rc = peers_proc_write (procs[p], go);
            long acked = 0, refused = 0;
            for (int p = 0; p < producers && rc == 0; p++) {
                char line[64];
                long a = 0, f = 0;
                if (peers_proc_read_line (procs[p], line, sizeof line,
                                          (int) (end - bench_now_ms ()) + SHAPE_READY_MS) != 0
                    || sscanf (line, "count %ld %ld", &a, &f) != 2) {
                    fprintf (stderr, "herald_bench_peers: a %s producer gave no count; see its "
                             "log %s\n", peers_system_label (sides[i]->system),
                             peers_proc_log (procs[p]));
                    rc = -1;
                }
                acked += a;
                refused += f;
            }
            s_account (&out[i], sides[i], &mark, false);
            for (int p = 0; p < producers; p++) {
                if (procs[p] && peers_proc_wait (procs[p], 5000) == 0)
                    s_add_cpu (&out[i], "producers", peers_proc_cpu (procs[p]));
                peers_proc_stop (&procs[p], 2000);
            }
            double wall = (end - start) / 1000.0;
            out[i].count += acked;
            out[i].refused += refused;
            out[i].wall_s += wall;
            if (rc == 0)
                s_print_rate ("2", r, rounds, sides[i], (double) acked / wall, "events/s");
            if (rc == 0)
                rc = s_catch_up (env, sides[i], "2", r, rounds, &out[i]);
        }
    for (int i = 0; i < n; i++) {
        out[i].measured = rc == 0 && out[i].wall_s > 0;
        out[i].rate = out[i].measured? (double) out[i].count / out[i].wall_s: 0;
    }
    return rc;
}

//  One publish and its answer, timed in microseconds; -1 if broken.
static double
s_timed_round_trip (peers_env_t *env, peers_target_t *target, char *event, size_t size)
{
    int len = s_event (env, event, size);
    double t0 = bench_now_ms ();
    if (peers_target_send (target, event, (size_t) len) != 0
    ||  peers_target_recv (target, SHAPE_REPLY_MS) < 0) {
        fprintf (stderr, "herald_bench_peers: %s\n", peers_target_error (target));
        return -1;
    }
    return (bench_now_ms () - t0) * 1000.0;
}

int
peers_shape_latency (peers_env_t *env, peers_side_t **sides, int n, double seconds,
                     peers_result_t *out)
{
    fflush (stdout);                //  the caller's heading, before the wait
    peers_target_t *targets[PEERS_SYSTEMS] = { NULL };
    double *samples[PEERS_SYSTEMS] = { NULL };
    long counts[PEERS_SYSTEMS] = { 0 }, capacity = 0;
    s_cpu_mark_t marks[PEERS_SYSTEMS];
    char event[SHAPE_EVENT_MAX];
    int rc = 0;
    //  Connected and warmed up (one untimed block each) before the clock runs.
    for (int i = 0; i < n && rc == 0; i++) {
        memset (&out[i], 0, sizeof out[i]);
        targets[i] = s_connect (sides[i]);
        rc = targets[i]? 0: -1;
        for (int k = 0; k < SHAPE_LATENCY_BLOCK && rc == 0; k++)
            rc = s_timed_round_trip (env, targets[i], event, sizeof event) < 0? -1: 0;
    }
    double start = bench_now_ms (), end = start + seconds * n * 1000.0;
    int block = 0;
    //  Whole cycles only, so that every system has as many blocks.
    while (rc == 0 && (bench_now_ms () < end || block % n != 0) && !*env->interrupted) {
        int i = block % n;
        if (counts[i] + SHAPE_LATENCY_BLOCK > capacity) {
            capacity = capacity? capacity * 2: 16 * SHAPE_LATENCY_BLOCK;
            for (int s = 0; s < n && rc == 0; s++) {
                double *grown = realloc (samples[s], (size_t) capacity * sizeof (double));
                rc = grown? 0: -1;
                if (grown)
                    samples[s] = grown;
            }
            if (rc)
                break;
        }
        s_mark (sides[i], &marks[i]);
        double t0 = bench_now_ms ();
        for (int k = 0; k < SHAPE_LATENCY_BLOCK && rc == 0; k++) {
            double us = s_timed_round_trip (env, targets[i], event, sizeof event);
            if (us < 0)
                rc = -1;
            else
                samples[i][counts[i]++] = us;
        }
        out[i].wall_s += (bench_now_ms () - t0) / 1000.0;
        s_account (&out[i], sides[i], &marks[i], true);
        block++;
    }
    for (int i = 0; i < n; i++) {
        peers_target_destroy (&targets[i]);
        if (rc == 0 && counts[i] > 0) {
            bench_sort (samples[i], counts[i]);
            out[i].measured = true;
            out[i].count = counts[i];
            out[i].p50_us = bench_percentile (samples[i], counts[i], 0.50);
            out[i].p99_us = bench_percentile (samples[i], counts[i], 0.99);
            out[i].p999_us = bench_percentile (samples[i], counts[i], 0.999);
            printf ("    3 %-6s p50 %6.0f us  p99 %6.0f us  p99.9 %6.0f us  (%ld samples in "
                    "%d blocks)\n", peers_system_label (sides[i]->system), out[i].p50_us,
                    out[i].p99_us, out[i].p999_us, counts[i], block / n);
        }
        free (samples[i]);
    }
    fflush (stdout);
    return rc;
}

//  ---------------------------------------------------------------- end to end

//  Tasks done per channel, from Herald's status verb. 0, or -1.
static int
s_herald_done (peers_side_t *side, long done[PEERS_CHANNELS])
{
    json_t *root = s_herald_status (side);
    if (!root)
        return -1;
    json_t *channels = json_object_get (root, "channels");
    int found = 0;
    for (size_t c = 0; c < json_array_size (channels) && c < PEERS_CHANNELS; c++) {
        json_t *value = json_object_get (json_array_get (channels, c), "done");
        done[c] = json_is_integer (value)? (long) json_integer_value (value): -1;
        found += done[c] >= 0;
    }
    json_decref (root);
    return found == PEERS_CHANNELS? 0: -1;
}

//  The floor's durable done counts per channel, from its STATUS. 0, or -1.
static int
s_floor_done (peers_side_t *side, long done[PEERS_CHANNELS])
{
    long values[1 + PEERS_CHANNELS];
    if (!side->status
        || peers_target_floor_status (side->status, values, 1 + PEERS_CHANNELS, 2000)
           != 1 + PEERS_CHANNELS)
        return -1;
    for (int c = 0; c < PEERS_CHANNELS; c++)
        done[c] = values[1 + c];
    return 0;
}

static int
s_done (peers_side_t *side, long done[PEERS_CHANNELS])
{
    return side->system == PEERS_FLOOR? s_floor_done (side, done): s_herald_done (side, done);
}

//  Herald and the floor: pipelined publishing, then the done counts polled
//  (only after the last ACK) until every channel has done them all.
static int
s_end_to_end_polled (peers_env_t *env, peers_side_t *side, long events, long window,
                     double *elapsed_s, long *acked)
{
    long done0[PEERS_CHANNELS], done[PEERS_CHANNELS];
    const char *label = peers_system_label (side->system);
    peers_target_t *target = s_connect (side);
    if (!target || s_done (side, done0) != 0) {
        fprintf (stderr, "herald_bench_peers: %s's done counts did not come (%s)\n", label,
                 side->system == PEERS_FLOOR? "STATUS": "the status verb");
        peers_target_destroy (&target);
        return -1;
    }
    double t0 = bench_now_ms ();
    s_flow_t flow;
    int rc = s_pipeline (env, target, 1e9, events, window, &flow);
    peers_target_destroy (&target);
    double deadline = bench_now_ms () + 120000.0 + (double) events;
    while (rc == 0) {
        bool all = s_done (side, done) == 0;
        for (int c = 0; all && c < PEERS_CHANNELS; c++)
            all = done[c] - done0[c] >= flow.acked;
        if (all)
            break;
        if (bench_now_ms () > deadline || *env->interrupted) {
            fprintf (stderr, "herald_bench_peers: %s's tasks not all done after %.0f s\n",
                     label, (bench_now_ms () - t0) / 1000.0);
            rc = -1;
        }
        struct timespec pause = { 0, 5000000 };
        nanosleep (&pause, NULL);
    }
    *elapsed_s = (bench_now_ms () - t0) / 1000.0;
    *acked = flow.acked;
    return rc;
}

//  Redis: a new stream with one consumer group per channel, created empty,
//  so each group reads every entry. 0, or -1.
static int
s_redis_groups (peers_side_t *side)
{
    char host[256];
    int port;
    if (peers_endpoint_split (side->endpoint, host, sizeof host, &port) != 0)
        return -1;
    redisContext *redis = redisConnect (host, port);
    int rc = redis && !redis->err? 0: -1;
    for (int g = 0; g < PEERS_CHANNELS && rc == 0; g++) {
        redisReply *reply = redisCommand (redis, "XGROUP CREATE %s g%d 0 MKSTREAM",
                                          side->stream, g + 1);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            fprintf (stderr, "herald_bench_peers: XGROUP CREATE %s: %s\n", side->stream,
                     reply? reply->str: redis->errstr);
            rc = -1;
        }
        if (reply)
            freeReplyObject (reply);
    }
    if (redis)
        redisFree (redis);
    return rc;
}

//  Redis: three consumer processes started and connected, then pipelined
//  XADDs; the end is the last consumer's last XACK.
static int
s_end_to_end_redis (peers_env_t *env, peers_side_t *side, long events, long window,
                    double *elapsed_s, long *acked, peers_result_t *out)
{
    if (s_redis_groups (side) != 0)
        return -1;
    char program[1024], log[1024], group[16], expect[32];
    snprintf (program, sizeof program, "%s/herald_bench_load", env->bin_dir);
    snprintf (log, sizeof log, "%s/load-consumers.log", env->log_dir);
    snprintf (expect, sizeof expect, "%ld", events);
    peers_proc_t *consumers[PEERS_CHANNELS] = { NULL };
    int rc = 0;
    for (int g = 0; g < PEERS_CHANNELS && rc == 0; g++) {
        snprintf (group, sizeof group, "g%d", g + 1);
        char *argv[] = { program, "consume", "--endpoint", side->endpoint, "--stream",
                         side->stream, "--group", group, "--expect", expect, NULL };
        consumers[g] = peers_proc_start ("consumers", argv, log, true);
        char line[64];
        rc = consumers[g] && peers_proc_read_line (consumers[g], line, sizeof line,
                                                   SHAPE_READY_MS) == 0
                          && strcmp (line, "ready") == 0? 0: -1;
    }
    peers_target_t *target = rc == 0? s_connect (side): NULL;
    double t0 = bench_now_ms (), last = t0;
    s_flow_t flow = { 0 };
    if (!target || s_pipeline (env, target, 1e9, events, window, &flow) != 0)
        rc = -1;
    if (rc == 0 && flow.acked != events) {
        fprintf (stderr, "herald_bench_peers: Redis refused %ld XADDs\n", flow.refused);
        rc = -1;
    }
    last = bench_now_ms ();
    for (int g = 0; g < PEERS_CHANNELS && rc == 0; g++) {
        char line[128];
        double at = 0;
        long n = 0;
        if (peers_proc_read_line (consumers[g], line, sizeof line, 120000 + (int) events) != 0
            || sscanf (line, "done %lf %ld", &at, &n) != 2) {
            fprintf (stderr, "herald_bench_peers: a Redis consumer did not finish; see %s\n", log);
            rc = -1;
        }
        if (at > last)
            last = at;
    }
    peers_target_destroy (&target);
    for (int g = 0; g < PEERS_CHANNELS; g++) {
        if (consumers[g] && peers_proc_wait (consumers[g], 5000) == 0)
            s_add_cpu (out, "consumers", peers_proc_cpu (consumers[g]));
        peers_proc_stop (&consumers[g], 2000);
    }
    *elapsed_s = (last - t0) / 1000.0;
    *acked = flow.acked;
    return rc;
}

int
peers_shape_end_to_end (peers_env_t *env, peers_side_t **sides, int n, int rounds,
                        long events, long window, peers_result_t *out)
{
    fflush (stdout);                //  the caller's heading, before the wait
    for (int i = 0; i < n; i++)
        memset (&out[i], 0, sizeof out[i]);
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++)
        for (int k = 0; k < n && rc == 0 && !*env->interrupted; k++) {
            int i = s_turn (r, k, n);
            peers_side_t *side = sides[i];
            s_cpu_mark_t mark;
            s_mark (side, &mark);
            double elapsed = 0;
            long acked = 0;
            if (side->system == PEERS_REDIS) {
                snprintf (side->stream, sizeof side->stream, "e2e-%d", r + 1);
                rc = s_end_to_end_redis (env, side, events, window, &elapsed, &acked, &out[i]);
            }
            else
                rc = s_end_to_end_polled (env, side, events, window, &elapsed, &acked);
            s_account (&out[i], side, &mark, true);
            out[i].count += acked;
            out[i].wall_s += elapsed;
            if (rc == 0)
                s_print_rate ("4", r, rounds, side, (double) acked / elapsed,
                              "events/s end to end");
            if (rc == 0)
                rc = s_catch_up (env, side, "4", r, rounds, &out[i]);
        }
    for (int i = 0; i < n; i++) {
        out[i].measured = rc == 0 && out[i].wall_s > 0;
        out[i].rate = out[i].measured? (double) out[i].count / out[i].wall_s: 0;
    }
    return rc;
}

//  ---------------------------------------------------------------- backlog

int
peers_backlog (peers_env_t *env, peers_side_t *herald, peers_proc_t *broker, long events,
               long window, peers_backlog_t *out)
{
    memset (out, 0, sizeof *out);
    peers_target_t *target = s_connect (herald);
    s_flow_t flow;
    int rc = target? s_pipeline (env, target, 1e9, events, window, &flow): -1;
    peers_target_destroy (&target);
    if (rc != 0)
        return -1;
    out->events = flow.acked;
    out->tasks = flow.acked * PEERS_CHANNELS;
    out->rate = (double) flow.acked / flow.elapsed_s;
    if (peers_proc_memory (broker, &out->rss_kib, &out->hwm_kib) != 0) {
        fprintf (stderr, "herald_bench_peers: cannot read the broker's memory from /proc\n");
        return -1;
    }
    return 0;
}
