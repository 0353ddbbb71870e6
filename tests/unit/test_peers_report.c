/*  Unit tests: bench/peers_report — herald_bench_peers's verdicts on issue
    9's targets. A target that is a multiple of Redis above the floor
    measured in the same run is "out of reach", not "MISSED"; a target below
    the floor that Herald misses is still MISSED. Figures are made up (the
    first set is BENCHMARKS.md's older run), nothing is measured. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peers_report.h"

static void
s_rate (peers_result_t *results, double redis, double floor, double herald)
{
    double v[PEERS_SYSTEMS] = { [PEERS_REDIS] = redis, [PEERS_FLOOR] = floor,
                                [PEERS_HERALD] = herald };
    for (int s = 0; s < PEERS_SYSTEMS; s++) {
        results[s].measured = v[s] > 0;
        results[s].rate = v[s];
        results[s].count = (long) v[s];
        results[s].wall_s = 1.0;
    }
}

//  Shape 1: 4x Redis = 278,224 > floor 247,400. Shape 2: 1.2x Redis =
//  14,309 > floor 13,650, and Herald below 0.9x floor. Shape 4: floor
//  e2e given by the caller.
static void
s_report (peers_report_t *rep, double e2e_floor)
{
    memset (rep, 0, sizeof *rep);
    rep->window = 1000;
    rep->producer_count = 8;
    rep->events = 100000;
    rep->queue_window = 100000;
    rep->event_bytes = 520;
    rep->rounds = 3;
    rep->rounds_end_to_end = 2;
    rep->seconds = 10;
    snprintf (rep->disk, sizeof rep->disk, "/dev/vda on / (ext4)");
    snprintf (rep->redis_version, sizeof rep->redis_version, "7.0.15");
    s_rate (rep->pipelined, 69556, 247400, 37827);
    s_rate (rep->producers, 11924, 13650, 6527);
    for (int s = 0; s < PEERS_SYSTEMS; s++) {
        rep->latency[s].measured = true;
        rep->latency[s].p50_us = 300 + 50 * s;
        rep->latency[s].p99_us = 1000 + 100 * s;
        rep->latency[s].p999_us = 2000 + 100 * s;
        rep->latency[s].wall_s = 1.0;
    }
    s_rate (rep->end_to_end, 45000, e2e_floor, 60000);
}

//  The printed report, as a string (the caller frees).
static char *
s_print (const peers_report_t *rep)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    cr_assert_not_null (out);
    peers_report_print (rep, out);
    fclose (out);
    return text;
}

//  The table line that starts with label, as a string (the caller frees).
static char *
s_line (const char *text, const char *label)
{
    const char *at = strstr (text, label);
    cr_assert_not_null (at, "row '%s' printed in:\n%s", label, text);
    size_t len = strcspn (at, "\n");
    char *line = strndup (at, len);
    cr_assert_not_null (line);
    return line;
}

Test (peers_report, a_multiple_of_redis_above_the_floor_is_out_of_reach_not_missed)
{
    peers_report_t rep;
    s_report (&rep, 150000);
    char *text = s_print (&rep);
    char *one = s_line (text, "1. ACKed events/s, 1,000 outstanding");
    cr_expect (strstr (one, ">= 4x Redis: out of reach: 4x Redis = 278,224 > floor 247,400"), "%s", one);
    cr_expect_null (strstr (one, "MISSED"), "%s", one);
    char *two = s_line (text, "2. 8 processes x 1 outstanding");
    cr_expect (strstr (two, ">= 0.9x floor and >= 1.2x Redis: MISSED: 0.9x floor missed;"
                            " 1.2x Redis out of reach (1.2x Redis = 14,309 > floor 13,650)"),
               "the half within reach is missed, so is the target: %s", two);
    char *four = s_line (text, "4. end to end, 3 channels, events/s");
    cr_expect (strstr (four, "45,000    150,000     60,000"), "the floor's figure: %s", four);
    cr_expect (strstr (four, "0.40x"), "Herald/floor: %s", four);
    cr_expect (strstr (four, "out of reach: 4x Redis = 180,000 > floor 150,000"), "%s", four);
    cr_expect (strstr (text, "Verdicts: 2 met, 1 MISSED, 2 out of reach."),
               "the closing count does not hide the missed half of shape 2: %s", text);
    cr_expect (strstr (text, "1. ACKed events/s, 1,000 outstanding: 4x Redis = 278,224 > floor "
                             "247,400 (Herald/floor 0.15x)"), "the closing note lists it: %s", text);
    free (one);
    free (two);
    free (four);
    free (text);
}

Test (peers_report, a_compound_target_whose_reachable_half_is_met_is_out_of_reach)
{
    peers_report_t rep;
    s_report (&rep, 150000);
    s_rate (rep.producers, 11924, 13650, 12500);     /* 0.92x the floor */
    char *text = s_print (&rep);
    char *two = s_line (text, "2. 8 processes x 1 outstanding");
    cr_expect (strstr (two, ">= 0.9x floor and >= 1.2x Redis: out of reach: 1.2x Redis = 14,309 > floor"
                            " 13,650; 0.9x floor: met"), "%s", two);
    cr_expect (strstr (text, "Verdicts: 2 met, 0 MISSED, 3 out of reach."), "%s", text);
    free (two);
    free (text);
}

Test (peers_report, a_multiple_of_redis_below_the_floor_is_missed)
{
    peers_report_t rep;
    s_report (&rep, 400000);
    char *text = s_print (&rep);
    char *four = s_line (text, "4. end to end, 3 channels, events/s");
    cr_expect (strstr (four, ">= 4x Redis: MISSED"), "%s", four);
    cr_expect_null (strstr (four, "out of reach"), "%s", four);
    cr_expect (strstr (text, "Verdicts: 2 met, 2 MISSED, 1 out of reach."), "%s", text);
    free (four);
    free (text);
}

Test (peers_report, without_the_floor_there_is_no_out_of_reach)
{
    peers_report_t rep;
    s_report (&rep, 0);
    char *text = s_print (&rep);
    char *four = s_line (text, "4. end to end, 3 channels, events/s");
    cr_expect (strstr (four, ">= 4x Redis: MISSED"), "%s", four);
    free (four);
    free (text);
}

Test (peers_report, json_gives_each_verdict_and_its_reason)
{
    peers_report_t rep;
    s_report (&rep, 150000);
    char path[] = "/tmp/test-peers-report-XXXXXX";
    int fd = mkstemp (path);
    cr_assert_geq (fd, 0);
    close (fd);
    cr_assert_eq (peers_report_json (&rep, path), 0);
    json_error_t err;
    json_t *root = json_load_file (path, 0, &err);
    unlink (path);
    cr_assert_not_null (root, "%s", err.text);
    json_t *table = json_object_get (root, "table");
    cr_assert_eq (json_array_size (table), 8);
    json_t *first = json_array_get (table, 0), *e2e = json_array_get (table, 5);
    cr_expect_str_eq (json_string_value (json_object_get (first, "verdict")), "out of reach");
    cr_expect (json_is_false (json_object_get (first, "met")));
    cr_expect_str_eq (json_string_value (json_object_get (first, "note")),
                      "4x Redis = 278,224 > floor 247,400");
    cr_expect_str_eq (json_string_value (json_object_get (e2e, "verdict")), "out of reach");
    cr_expect (json_real_value (json_object_get (e2e, "floor")) == 150000.0);
    json_t *p50 = json_array_get (table, 2);
    cr_expect_str_eq (json_string_value (json_object_get (p50, "verdict")), "met");
    json_decref (root);
}

//  Shape 4 again with Herald at the floor's credit: a row of its own with
//  Redis's figure of shape 4, no verdict of its own, and the ratio named
//  under the out-of-reach end to end. Not run: no row.
Test (peers_report, the_floors_credit_row_says_what_of_the_gap_is_the_credit)
{
    peers_report_t rep;
    s_report (&rep, 150000);
    rep.floor_credit = 1024;
    char *text = s_print (&rep);
    cr_expect_null (strstr (text, "4. the same"), "no row when not run:\n%s", text);
    free (text);

    rep.end_to_end_equal[PEERS_FLOOR] = (peers_result_t) { .measured = true, .rate = 140000, .count = 140000,
                                                           .wall_s = 1.0 };
    rep.end_to_end_equal[PEERS_HERALD] = (peers_result_t) { .measured = true, .rate = 154000, .count = 154000,
                                                            .wall_s = 1.0 };
    text = s_print (&rep);
    char *line = s_line (text, "4. the same, Herald at credit 1024 too");
    cr_expect (strstr (line, "45,000") && strstr (line, "140,000") && strstr (line, "154,000"), "%s", line);
    cr_expect (strstr (line, "3.42x") && strstr (line, "1.10x"), "Herald/Redis and Herald/floor: %s", line);
    cr_expect_null (strstr (line, "met"), "no verdict of its own: %s", line);
    cr_expect_null (strstr (line, "MISSED"), "%s", line);
    cr_expect (strstr (text, "Verdicts: 2 met, 1 MISSED, 2 out of reach."), "the count is unchanged:\n%s", text);
    cr_expect (strstr (text, "Herald's workers at the floor's credit too: Herald/floor 1.10x, Herald/Redis 3.42x"),
               "%s", text);
    free (line);
    free (text);
}
