/*  test_http_metrics: the metrics verb's JSON as Prometheus text. Counters
    and histograms come out under their names with their labels (refusals
    by code and hp_code_name, never free text), histograms cumulative with
    +Inf, _sum and _count; label values escaped; herald_metrics counts what
    it is told, from any thread, and NULL metrics cost nothing. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_metrics.h"
#include "http_metrics.h"

static char s_err[256];

/*  A metrics answer as core.c builds it: status plus herald_metrics_json. */
static char *
s_answer (herald_metrics_t *metrics, const char *channel_name)
{
    json_t *root = json_pack ("{s:{s:s, s:I, s:I}, s:[{s:s, s:I, s:I, s:I, s:I, s:I, s:I}]}",
                              "broker", "version", "9.9.9", "journal_bytes", (json_int_t) 1000,
                              "index_bytes", (json_int_t) 24,
                              "channels", "name", channel_name, "pending", (json_int_t) 5, "in_flight", (json_int_t) 2,
                              "retrying", (json_int_t) 1, "dead", (json_int_t) 3, "workers", (json_int_t) 2,
                              "oldest_pending_age_ms", (json_int_t) 1500);
    json_object_set_new (root, "metrics", herald_metrics_json (metrics, 1));
    char *text = json_dumps (root, JSON_COMPACT);
    json_decref (root);
    return text;
}

static bool
s_has (const char *text, const char *line)
{
    char want[512];
    snprintf (want, sizeof want, "\n%s\n", line);
    return strstr (text, want) != NULL;
}

Test (http_metrics, counters_histograms_and_gauges)
{
    herald_metrics_t *m = herald_metrics_new ();
    for (int i = 0; i < 3; i++)
        herald_metrics_received (m);
    herald_metrics_acked (m, false, 0);
    herald_metrics_acked (m, true, 0);
    herald_metrics_refused (m, 422);
    herald_metrics_refused (m, 422);
    herald_metrics_refused (m, 503);
    herald_metrics_refused (m, 7);          /* out of range: ignored */
    herald_metrics_delivery (m, 0, HERALD_DELIVERY_DONE);
    herald_metrics_delivery (m, 0, HERALD_DELIVERY_LEASE_EXPIRED);
    herald_metrics_delivery (m, 99, HERALD_DELIVERY_DONE);  /* no such channel: ignored */
    herald_metrics_journal_sync (m, 80);                    /* <= 100 us */
    herald_metrics_journal_sync (m, 3000);                  /* <= 5 ms */
    herald_metrics_journal_sync (m, 60 * 1000000);          /* +Inf */
    char *json = s_answer (m, "email");
    http_process_t process = { .resident_bytes = 4096, .start_time = 1700000000.5 };
    char *text = http_metrics_render (json, strlen (json), &process, s_err, sizeof s_err);
    cr_assert_not_null (text, "%s", s_err);
    cr_assert (s_has (text, "herald_events_received_total 3"), "%s", text);
    cr_assert (s_has (text, "herald_events_acked_total{status=\"new\"} 1"));
    cr_assert (s_has (text, "herald_events_acked_total{status=\"duplicate\"} 1"));
    cr_assert (s_has (text, "herald_events_refused_total{code=\"422\",reason=\"invalid-event\"} 2"));
    cr_assert (s_has (text, "herald_events_refused_total{code=\"503\",reason=\"busy\"} 1"));
    cr_assert_null (strstr (text, "code=\"7\""));
    cr_assert (s_has (text, "# TYPE herald_journal_sync_seconds histogram"));
    cr_assert (s_has (text, "herald_journal_sync_seconds_bucket{le=\"0.0001\"} 1"), "%s", text);
    cr_assert (s_has (text, "herald_journal_sync_seconds_bucket{le=\"0.005\"} 2"));
    cr_assert (s_has (text, "herald_journal_sync_seconds_bucket{le=\"10\"} 2"));
    cr_assert (s_has (text, "herald_journal_sync_seconds_bucket{le=\"+Inf\"} 3"));
    cr_assert (s_has (text, "herald_journal_sync_seconds_count 3"));
    cr_assert (s_has (text, "herald_journal_sync_seconds_sum 60.003080"));
    cr_assert (s_has (text, "herald_ack_latency_seconds_count 0"));
    cr_assert (s_has (text, "herald_tasks{channel=\"email\",state=\"pending\"} 5"));
    cr_assert (s_has (text, "herald_tasks{channel=\"email\",state=\"dead\"} 3"));
    cr_assert (s_has (text, "herald_deliveries_total{channel=\"email\",outcome=\"done\"} 1"));
    cr_assert (s_has (text, "herald_deliveries_total{channel=\"email\",outcome=\"lease_expired\"} 1"));
    cr_assert (s_has (text, "herald_oldest_pending_age_seconds{channel=\"email\"} 1.500"));
    cr_assert (s_has (text, "herald_workers{channel=\"email\"} 2"));
    cr_assert (s_has (text, "herald_store_bytes 1024"));
    cr_assert (s_has (text, "herald_build_info{version=\"9.9.9\"} 1"));
    cr_assert (s_has (text, "process_resident_memory_bytes 4096"));
    cr_assert (s_has (text, "process_start_time_seconds 1700000000.50"));
    free (text);
    free (json);
    herald_metrics_destroy (&m);
    cr_assert_null (m);
}

Test (http_metrics, label_values_escaped)
{
    herald_metrics_t *m = herald_metrics_new ();
    char *json = s_answer (m, "we\"ird\\na\nme");
    char *text = http_metrics_render (json, strlen (json), NULL, s_err, sizeof s_err);
    cr_assert_not_null (text);
    cr_assert (s_has (text, "herald_workers{channel=\"we\\\"ird\\\\na\\nme\"} 2"), "%s", text);
    cr_assert_null (strstr (text, "process_"), "no process figures without them");
    free (text);
    free (json);
    herald_metrics_destroy (&m);
}

Test (http_metrics, malformed_answers_refused)
{
    const char *bad[] = { "not json", "{}", "{\"metrics\": {}, \"channels\": [], \"broker\": {}}",
                          "{\"metrics\": {\"ack_latency\": {\"le\": [1], \"buckets\": []}}, \"channels\": [], \"broker\": {}}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_null (http_metrics_render (bad[i], strlen (bad[i]), NULL, s_err, sizeof s_err), "case %zu", i);
}

Test (http_metrics, null_metrics_do_nothing)
{
    herald_metrics_received (NULL);
    herald_metrics_acked (NULL, false, 1);
    herald_metrics_refused (NULL, 400);
    herald_metrics_delivery (NULL, 0, HERALD_DELIVERY_DONE);
    herald_metrics_journal_sync (NULL, 1);
    cr_assert_null (herald_metrics_json (NULL, 1));
}
