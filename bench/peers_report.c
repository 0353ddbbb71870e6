/*  peers_report: see peers_report.h. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "peers_report.h"

#define REPORT_ROWS     8
#define S_ROW_E2E       5
#define S_ROW_E2E_EQUAL 6
#define S_ROW_RSS       7

/*  The broker's documented memory bound (README.md, "How much memory the
    broker takes"): base + channels x queue_window x (event size + 200 B)
    + 72 B x idempotency keys held (here: every event of the backlog). */
#define REPORT_RSS_BASE_MIB     80.0
#define REPORT_TASK_BYTES       200.0
#define REPORT_KEY_BYTES        72.0

static double
s_queues_mib (const peers_report_t *self)
{
    return (double) self->queue_window * PEERS_CHANNELS * (self->event_bytes + REPORT_TASK_BYTES)
         / 1048576.0;
}

static double
s_keys_mib (const peers_report_t *self)
{
    return (double) self->backlog.events * REPORT_KEY_BYTES / 1048576.0;
}

static double
s_rss_bound_mib (const peers_report_t *self)
{
    return REPORT_RSS_BASE_MIB + s_queues_mib (self) + s_keys_mib (self);
}

typedef struct {
    const char *label;
    double value[PEERS_SYSTEMS];    /* NAN: not measured or not applicable */
    const char *unit;
    const char *target;             /* the target, as text */
    int verdict;                    /* S_MET, S_MISSED, S_OUT_OF_REACH, or S_NONE */
    char note[200];                 /* out of reach: why ("4x Redis = N > floor F"), and the
                                       verdict on the rest of a compound target */
} s_row_t;

#define S_NONE          -1
#define S_MISSED        0
#define S_MET           1
#define S_OUT_OF_REACH  2

static double
s_rate (const peers_result_t *r)
{
    return r->measured? r->rate: NAN;
}

static double
s_ratio (double a, double b)
{
    return isnan (a) || isnan (b) || b <= 0? NAN: a / b;
}

//  1 if every ratio given is on the right side of its bound, 0 if one is
//  not, -1 if one is unknown.
static int
s_verdict (double ratio, double bound, bool at_least)
{
    if (isnan (ratio))
        return -1;
    return at_least? ratio >= bound: ratio <= bound;
}

static int
s_both (int a, int b)
{
    return a < 0 || b < 0? -1: a && b;
}

static void
    s_number (char *buf, size_t size, double value);

static const char *
s_verdict_word (int verdict)
{
    return verdict == S_MET? "met": verdict == S_MISSED? "MISSED"
         : verdict == S_OUT_OF_REACH? "out of reach": "-";
}

//  The verdict on "Herald >= k x Redis" for a row with values v (higher is
//  better): S_OUT_OF_REACH instead of S_MISSED when k x Redis is above the
//  floor measured in the same run, with the reason in row->note.
static int
s_verdict_redis (s_row_t *row, double k)
{
    const double *v = row->value;
    int verdict = s_verdict (s_ratio (v[PEERS_HERALD], v[PEERS_REDIS]), k, true);
    double needed = k * v[PEERS_REDIS];
    if (verdict != S_MISSED || isnan (v[PEERS_FLOOR]) || needed <= v[PEERS_FLOOR])
        return verdict;
    char a[32], b[32];
    s_number (a, sizeof a, needed);
    s_number (b, sizeof b, v[PEERS_FLOOR]);
    snprintf (row->note, sizeof row->note, "%gx Redis = %s > floor %s", k, a, b);
    return S_OUT_OF_REACH;
}

//  The rows of the table, from the results.
static void
s_rows (const peers_report_t *self, s_row_t rows[REPORT_ROWS])
{
    memset (rows, 0, sizeof (s_row_t) * REPORT_ROWS);
    for (int r = 0; r < REPORT_ROWS; r++)
        for (int s = 0; s < PEERS_SYSTEMS; s++)
            rows[r].value[s] = NAN;
    static char label1[64], label2[64], label_equal[64];
    char window[32];
    s_number (window, sizeof window, (double) self->window);
    snprintf (label1, sizeof label1, "1. ACKed events/s, %s outstanding", window);
    snprintf (label2, sizeof label2, "2. %d processes x 1 outstanding, events/s", self->producer_count);
    rows[0].label = label1;
    rows[1].label = label2;
    rows[2].label = "3. ACK latency p50, 1 outstanding, us";
    rows[3].label = "3. ACK latency p99, 1 outstanding, us";
    rows[4].label = "3. ACK latency p99.9, 1 outstanding, us";
    rows[S_ROW_E2E].label = "4. end to end, 3 channels, events/s";
    snprintf (label_equal, sizeof label_equal, "4. the same, Herald at credit %d too", self->floor_credit);
    rows[S_ROW_E2E_EQUAL].label = label_equal;
    rows[S_ROW_RSS].label = "5. broker peak RSS (VmHWM) with the backlog, MiB";
    for (int s = 0; s < PEERS_SYSTEMS; s++) {
        rows[0].value[s] = s_rate (&self->pipelined[s]);
        rows[1].value[s] = s_rate (&self->producers[s]);
        const peers_result_t *lat = &self->latency[s];
        rows[2].value[s] = lat->measured? lat->p50_us: NAN;
        rows[3].value[s] = lat->measured? lat->p99_us: NAN;
        rows[4].value[s] = lat->measured? lat->p999_us: NAN;
        rows[S_ROW_E2E].value[s] = s_rate (&self->end_to_end[s]);
    }
    /*  Redis has no credit: its figure is the one of the row above. */
    if (self->end_to_end_equal[PEERS_HERALD].measured) {
        rows[S_ROW_E2E_EQUAL].value[PEERS_REDIS] = rows[S_ROW_E2E].value[PEERS_REDIS];
        rows[S_ROW_E2E_EQUAL].value[PEERS_FLOOR] = s_rate (&self->end_to_end_equal[PEERS_FLOOR]);
        rows[S_ROW_E2E_EQUAL].value[PEERS_HERALD] = s_rate (&self->end_to_end_equal[PEERS_HERALD]);
    }
    if (self->backlog_measured)
        rows[S_ROW_RSS].value[PEERS_HERALD] = (double) self->backlog.hwm_kib / 1024.0;

    const double *h = NULL;
    rows[0].target = ">= 4x Redis";
    rows[0].verdict = s_verdict_redis (&rows[0], 4.0);
    h = rows[1].value;
    rows[1].target = ">= 0.9x floor and >= 1.2x Redis";
    int of_floor = s_verdict (s_ratio (h[PEERS_HERALD], h[PEERS_FLOOR]), 0.9, true);
    rows[1].verdict = s_verdict_redis (&rows[1], 1.2);
    if (rows[1].verdict == S_OUT_OF_REACH && of_floor == S_MISSED) {
        /*  The half within reach is missed: so is the target (the
            closing count must not hide it behind the other half). */
        char reach[sizeof rows[1].note];
        snprintf (reach, sizeof reach, "%s", rows[1].note);
        snprintf (rows[1].note, sizeof rows[1].note, "0.9x floor missed; 1.2x Redis out of reach (%.150s)", reach);
        rows[1].verdict = S_MISSED;
    }
    else
    if (rows[1].verdict == S_OUT_OF_REACH) {
        size_t at = strlen (rows[1].note);
        snprintf (rows[1].note + at, sizeof rows[1].note - at, "; 0.9x floor: %s",
                  s_verdict_word (of_floor));
    }
    else
        rows[1].verdict = s_both (of_floor, rows[1].verdict);
    h = rows[2].value;
    rows[2].target = "<= 1.2x floor";
    rows[2].verdict = s_verdict (s_ratio (h[PEERS_HERALD], h[PEERS_FLOOR]), 1.2, false);
    h = rows[3].value;
    rows[3].target = "<= 1.5x floor";
    rows[3].verdict = s_verdict (s_ratio (h[PEERS_HERALD], h[PEERS_FLOOR]), 1.5, false);
    rows[4].verdict = -1;
    rows[4].target = "";
    rows[S_ROW_E2E].target = ">= 4x Redis";
    rows[S_ROW_E2E].verdict = s_verdict_redis (&rows[S_ROW_E2E], 4.0);
    /*  No target of its own: it says what of row 4's gap is the credit. */
    rows[S_ROW_E2E_EQUAL].target = "";
    rows[S_ROW_E2E_EQUAL].verdict = S_NONE;
    static char bound[96];
    double bound_mib = s_rss_bound_mib (self);
    if (isnan (bound_mib))
        snprintf (bound, sizeof bound, "within the documented bound: none documented yet");
    else
        snprintf (bound, sizeof bound, "within the documented bound, %.0f MiB", bound_mib);
    rows[S_ROW_RSS].target = bound;
    rows[S_ROW_RSS].verdict = s_verdict (s_ratio (rows[S_ROW_RSS].value[PEERS_HERALD], bound_mib), 1.0, false);
}

//  value with thousands separators and no decimals, or "-".
static void
s_number (char *buf, size_t size, double value)
{
    if (isnan (value)) {
        snprintf (buf, size, "-");
        return;
    }
    char digits[32];
    snprintf (digits, sizeof digits, "%.0f", value);
    size_t len = strlen (digits), at = 0;
    for (size_t i = 0; i < len && at + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0 && digits[i - 1] != '-')
            buf[at++] = ',';
        buf[at++] = digits[i];
    }
    buf[at] = '\0';
}

static void
s_ratio_text (char *buf, size_t size, double ratio)
{
    if (isnan (ratio))
        snprintf (buf, size, "-");
    else
        snprintf (buf, size, "%.2fx", ratio);
}

static void
s_print_cpu (FILE *out, const char *shape, const peers_result_t *results)
{
    bool any = false;
    for (int s = 0; s < PEERS_SYSTEMS; s++)
        any = any || results[s].measured;
    if (any)
        fprintf (out, "  %s\n", shape);
    for (int s = 0; s < PEERS_SYSTEMS; s++) {
        const peers_result_t *r = &results[s];
        if (!r->measured)
            continue;
        fprintf (out, "    %-7s", peers_system_label ((peers_system_t) s));
        for (int c = 0; c < r->cpu_count; c++)
            fprintf (out, "%s %s %.0f%%", c? ",": "", r->cpu[c].name,
                     100.0 * r->cpu[c].seconds / r->wall_s);
        fprintf (out, "\n");
    }
}

//  How long Herald's index took to catch up after its turns (the bench
//  waits for it before the next system's turn), and Herald's rate with
//  that time counted.
static void
s_print_catch_up (const peers_report_t *self, FILE *out)
{
    const struct { const char *shape; const peers_result_t *r; } shapes[] = {
        { "1. pipelined", &self->pipelined[PEERS_HERALD] },
        { "2. producer processes", &self->producers[PEERS_HERALD] },
        { "4. end to end", &self->end_to_end[PEERS_HERALD] },
    };
    bool any = false;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const peers_result_t *r = shapes[k].r;
        if (!r->measured)
            continue;
        if (!any)
            fprintf (out, "\nHerald's index (SQLite, applied from the journal on its own thread, off the ACK "
                     "path) caught up\nafter Herald's turns, before the next system's turn began:\n");
        any = true;
        char rate[32];
        s_number (rate, sizeof rate, (double) r->count / (r->wall_s + r->catch_up_s));
        fprintf (out, "  %-22s %6.1f s after %.1f s of turns: %s events/s with that time counted\n",
                 shapes[k].shape, r->catch_up_s, r->wall_s, rate);
    }
}

//  The closing note: how many targets were met, missed or out of reach,
//  and what "out of reach" rests on.
static void
s_print_verdicts (const s_row_t rows[REPORT_ROWS], FILE *out)
{
    int count[3] = { 0 };
    for (int r = 0; r < REPORT_ROWS; r++)
        if (rows[r].target[0] && rows[r].verdict >= 0 && rows[r].verdict <= S_OUT_OF_REACH)
            count[rows[r].verdict]++;
    fprintf (out, "\nVerdicts: %d met, %d MISSED, %d out of reach.\n", count[S_MET], count[S_MISSED],
             count[S_OUT_OF_REACH]);
    if (count[S_OUT_OF_REACH] == 0)
        return;
    fprintf (out, "Out of reach: the target, a multiple of Redis, is above the floor measured in "
             "this run. The floor\ndoes only what any broker must (for end to end: the same "
             "durable writes, fan-out to three workers\nand their answers recorded durably), with "
             "no Herald code, so no broker reaches such a target on\nthis machine: there "
             "Herald/floor is the measure.\n");
    for (int r = 0; r < REPORT_ROWS; r++)
        if (rows[r].verdict == S_OUT_OF_REACH) {
            char hf[32];
            s_ratio_text (hf, sizeof hf, s_ratio (rows[r].value[PEERS_HERALD],
                                                  rows[r].value[PEERS_FLOOR]));
            fprintf (out, "  %s: %s (Herald/floor %s)\n", rows[r].label, rows[r].note, hf);
        }
    const s_row_t *equal = &rows[S_ROW_E2E_EQUAL];
    if (rows[S_ROW_E2E].verdict == S_OUT_OF_REACH && !isnan (equal->value[PEERS_HERALD])) {
        char hf[32], hr[32];
        s_ratio_text (hf, sizeof hf, s_ratio (equal->value[PEERS_HERALD], equal->value[PEERS_FLOOR]));
        s_ratio_text (hr, sizeof hr, s_ratio (equal->value[PEERS_HERALD], equal->value[PEERS_REDIS]));
        fprintf (out, "  End to end, Herald's workers at the floor's credit too: Herald/floor %s,"
                 " Herald/Redis %s.\n", hf, hr);
    }
}

void
peers_report_print (const peers_report_t *self, FILE *out)
{
    s_row_t rows[REPORT_ROWS];
    s_rows (self, rows);
    fprintf (out, "\n== results%s: Redis %s (appendonly yes, appendfsync always), the floor "
             "(ZeroMQ ROUTER + one write + fdatasync per batch;\n   end to end: the same, fanned "
             "out to three workers, their answers written the same way), Herald %s\n",
             self->quick? " (--quick: small counts, indicative only)": "", self->redis_version,
             HERALD_VERSION);
    fprintf (out, "   stores on %s; all over tcp://127.0.0.1\n\n", self->disk);
    fprintf (out, "%-44s %10s %10s %10s %13s %13s  %s\n", "shape", "Redis", "floor", "Herald",
             "Herald/Redis", "Herald/floor", "target (issue 9)");
    fprintf (out, "%-44s %10s %10s %10s %13s %13s  %s\n", "--------------------------------------------",
             "----------", "----------", "----------", "-------------", "-------------",
             "--------------------------------------");
    for (int r = 0; r < REPORT_ROWS; r++) {
        if (r == S_ROW_E2E_EQUAL && isnan (rows[r].value[PEERS_HERALD]))
            continue;                   /* not run (the credits were equal already) */
        char v[PEERS_SYSTEMS][32], hr[32], hf[32];
        for (int s = 0; s < PEERS_SYSTEMS; s++)
            s_number (v[s], sizeof v[s], rows[r].value[s]);
        s_ratio_text (hr, sizeof hr, s_ratio (rows[r].value[PEERS_HERALD], rows[r].value[PEERS_REDIS]));
        s_ratio_text (hf, sizeof hf, s_ratio (rows[r].value[PEERS_HERALD], rows[r].value[PEERS_FLOOR]));
        fprintf (out, "%-44s %10s %10s %10s %13s %13s  %s%s%s%s%s\n", rows[r].label,
                 v[PEERS_REDIS], v[PEERS_FLOOR], v[PEERS_HERALD], hr, hf, rows[r].target,
                 rows[r].target[0] && rows[r].verdict != S_NONE? ": ": "",
                 rows[r].target[0] && rows[r].verdict != S_NONE? s_verdict_word (rows[r].verdict): "",
                 rows[r].note[0]? ": ": "", rows[r].note);
    }
    if (self->backlog_measured) {
        fprintf (out, "\n5. %ld tasks queued (%ld events x %d channels, no worker connected): "
                 "VmRSS %.0f MiB, VmHWM %.0f MiB.\n   Documented bound (README.md): base %.0f MiB"
                 " + queue_window %ld x %d channels x (%d-byte events + %.0f B) (%.0f MiB)"
                 " + %ld keys x %.0f B (%.0f MiB) = %.0f MiB.\n", self->backlog.tasks,
                 self->backlog.events, PEERS_CHANNELS, (double) self->backlog.rss_kib / 1024.0,
                 (double) self->backlog.hwm_kib / 1024.0, REPORT_RSS_BASE_MIB,
                 self->queue_window, PEERS_CHANNELS, self->event_bytes, REPORT_TASK_BYTES,
                 s_queues_mib (self), self->backlog.events, REPORT_KEY_BYTES, s_keys_mib (self),
                 s_rss_bound_mib (self));
    }
    fprintf (out, "\nCPU used, %% of one core over each system's measured time:\n");
    s_print_cpu (out, "1. pipelined", self->pipelined);
    s_print_cpu (out, "2. producer processes", self->producers);
    s_print_cpu (out, "3. latency", self->latency);
    s_print_cpu (out, "4. end to end", self->end_to_end);
    s_print_cpu (out, "4. the same, Herald at the floor's credit", self->end_to_end_equal);
    s_print_catch_up (self, out);
    fprintf (out, "\nHow: shapes 1 and 2 ran in %d round(s), shape 4 in %d, each system taking "
             "its turn in every round\n(order rotated); shape 3 in blocks of 200 round trips "
             "taken turn about; %.0f s per system per shape\nfor 1 to 3; %ld events per "
             "end-to-end run. Shapes 1 to 3: Herald without workers and Redis without\n"
             "consumers (ingest alone); shape 4: a fresh broker with one noop worker per channel "
             "(credit\n%ld), herald_floor_e2e with one worker per channel (credit %d), Redis with "
             "three consumer\ngroups (COUNT 100). Ratios are Herald's figure over the other's "
             "(for latency, lower is better).\n",
             self->rounds, self->rounds_end_to_end, self->seconds, self->events,
             self->herald_credit, self->floor_credit);
    if (self->end_to_end_equal[PEERS_HERALD].measured)
        fprintf (out, "Then shape 4 again, the floor and a fresh Herald taking turns, Herald's workers "
                 "at the floor's\ncredit (%d): what of the gap above is the credit (Redis's figure "
                 "is the one of shape 4).\n", self->floor_credit);
    s_print_verdicts (rows, out);
    fflush (out);
}

static json_t *
s_result_json (const peers_result_t *r)
{
    if (!r->measured)
        return json_null ();
    json_t *cpu = json_object ();
    for (int c = 0; c < r->cpu_count; c++)
        json_object_set_new (cpu, r->cpu[c].name, json_real (r->cpu[c].seconds));
    json_t *o = json_pack ("{s:I, s:I, s:f, s:o}", "count", (json_int_t) r->count,
                           "refused", (json_int_t) r->refused, "seconds", r->wall_s,
                           "cpu_seconds", cpu);
    if (r->rate > 0)
        json_object_set_new (o, "events_per_s", json_real (r->rate));
    if (r->catch_up_s > 0)
        json_object_set_new (o, "index_catch_up_s", json_real (r->catch_up_s));
    if (r->p50_us > 0) {
        json_object_set_new (o, "p50_us", json_real (r->p50_us));
        json_object_set_new (o, "p99_us", json_real (r->p99_us));
        json_object_set_new (o, "p999_us", json_real (r->p999_us));
    }
    return o;
}

static json_t *
s_shape_json (const peers_result_t *results)
{
    json_t *o = json_object ();
    for (int s = 0; s < PEERS_SYSTEMS; s++)
        json_object_set_new (o, peers_system_name ((peers_system_t) s),
                             s_result_json (&results[s]));
    return o;
}

static json_t *
s_number_json (double value)
{
    return isnan (value)? json_null (): json_real (value);
}

int
peers_report_json (const peers_report_t *self, const char *path)
{
    json_t *shapes = json_pack ("{s:o, s:o, s:o, s:o}",
        "pipelined", s_shape_json (self->pipelined),
        "producers", s_shape_json (self->producers),
        "latency", s_shape_json (self->latency),
        "end_to_end", s_shape_json (self->end_to_end));
    json_object_set_new (shapes, "end_to_end_at_the_floors_credit", s_shape_json (self->end_to_end_equal));
    json_object_set_new (shapes, "backlog", !self->backlog_measured? json_null ():
        json_pack ("{s:{s:I, s:I, s:I, s:I, s:f, s:o}}", "herald",
                   "events", (json_int_t) self->backlog.events,
                   "tasks", (json_int_t) self->backlog.tasks,
                   "vmrss_kib", (json_int_t) self->backlog.rss_kib,
                   "vmhwm_kib", (json_int_t) self->backlog.hwm_kib,
                   "events_per_s", self->backlog.rate,
                   "documented_bound_mib", s_number_json (s_rss_bound_mib (self))));
    s_row_t rows[REPORT_ROWS];
    s_rows (self, rows);
    json_t *table = json_array ();
    for (int r = 0; r < REPORT_ROWS; r++) {
        const double *v = rows[r].value;
        static const char *const words[] = { "missed", "met", "out of reach" };
        int verdict = rows[r].verdict;
        json_array_append_new (table, json_pack ("{s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:s}",
            "shape", rows[r].label,
            "redis", s_number_json (v[PEERS_REDIS]),
            "floor", s_number_json (v[PEERS_FLOOR]),
            "herald", s_number_json (v[PEERS_HERALD]),
            "herald_over_redis", s_number_json (s_ratio (v[PEERS_HERALD], v[PEERS_REDIS])),
            "herald_over_floor", s_number_json (s_ratio (v[PEERS_HERALD], v[PEERS_FLOOR])),
            "target", rows[r].target,
            "met", verdict < 0? json_null (): json_boolean (verdict == S_MET),
            "verdict", verdict < 0 || verdict > S_OUT_OF_REACH? json_null (): json_string (words[verdict]),
            "note", rows[r].note));
    }
    json_t *root = json_pack ("{s:s, s:s, s:b, s:f, s:i, s:I, s:i, s:I, s:I, s:I, s:i, s:s, s:o, s:o}",
        "herald_version", HERALD_VERSION,
        "redis_version", self->redis_version,
        "quick", self->quick,
        "seconds", self->seconds,
        "rounds", self->rounds,
        "window", (json_int_t) self->window,
        "producers", self->producer_count,
        "events", (json_int_t) self->events,
        "queue_window", (json_int_t) self->queue_window,
        "herald_credit", (json_int_t) self->herald_credit,
        "floor_credit", self->floor_credit,
        "disk", self->disk,
        "table", table,
        "shapes", shapes);
    int rc = root && json_dump_file (root, path, JSON_INDENT (2)) == 0? 0: -1;
    if (rc)
        fprintf (stderr, "herald_bench_peers: --json %s: cannot write: %s\n", path, strerror (errno));
    json_decref (root);
    return rc;
}
