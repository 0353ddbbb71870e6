/*  http_metrics: the metrics verb's JSON as Prometheus text (see http_metrics.h).
    Names follow the Prometheus conventions: herald_ prefix, base units
    (seconds, bytes), _total for counters; label values are escaped. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herald_metrics.h"
#include "herald_proto.h"
#include "herald_text.h"
#include "http_metrics.h"

static void
s_head (herald_text_t *out, const char *name, const char *type, const char *help)
{
    herald_text_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*  A label value: backslash, double quote and newline escaped. */
static void
s_label (herald_text_t *out, const char *value)
{
    for (const char *p = value? value: ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            herald_text_putc (out, '\\');
        if (*p == '\n')
            herald_text_puts (out, "\\n");
        else
            herald_text_putc (out, *p);
    }
}

static long long
s_int (json_t *object, const char *key)
{
    return (long long) json_integer_value (json_object_get (object, key));
}

/*  A histogram from {"le": [...], "buckets": [...], "count": N, "sum": S}. */
static int
s_histogram (herald_text_t *out, const char *name, const char *help, json_t *histogram)
{
    json_t *le = json_object_get (histogram, "le"), *buckets = json_object_get (histogram, "buckets");
    if (!json_is_array (le) || !json_is_array (buckets) || json_array_size (le) != json_array_size (buckets))
        return -1;
    s_head (out, name, "histogram", help);
    for (size_t i = 0; i < json_array_size (le); i++)
        herald_text_printf (out, "%s_bucket{le=\"%g\"} %lld\n", name, json_number_value (json_array_get (le, i)),
                            (long long) json_integer_value (json_array_get (buckets, i)));
    herald_text_printf (out, "%s_bucket{le=\"+Inf\"} %lld\n", name, s_int (histogram, "count"));
    herald_text_printf (out, "%s_sum %.6f\n", name, json_number_value (json_object_get (histogram, "sum")));
    herald_text_printf (out, "%s_count %lld\n", name, s_int (histogram, "count"));
    return 0;
}

char *
http_metrics_render (const char *json, size_t len, const http_process_t *process, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb (json, len, 0, &jerr);
    json_t *metrics = json_object_get (root, "metrics");
    json_t *channels = json_object_get (root, "channels");
    json_t *broker = json_object_get (root, "broker");
    if (!json_is_object (metrics) || !json_is_array (channels) || !json_is_object (broker)) {
        snprintf (err, errlen, "the metrics answer lacks %s", !root? jerr.text: !json_is_object (metrics)? "metrics"
                  : !json_is_array (channels)? "channels": "broker");
        json_decref (root);
        return NULL;
    }
    herald_text_t out = { 0 };
    s_head (&out, "herald_events_received_total", "counter",
            "Publish requests received (ZeroMQ and HTTP), refused ones included.");
    herald_text_printf (&out, "herald_events_received_total %lld\n", s_int (metrics, "received"));

    json_t *acked = json_object_get (metrics, "acked");
    s_head (&out, "herald_events_acked_total", "counter",
            "Events acknowledged after their durable write, by status.");
    herald_text_printf (&out, "herald_events_acked_total{status=\"new\"} %lld\n", s_int (acked, "new"));
    herald_text_printf (&out, "herald_events_acked_total{status=\"duplicate\"} %lld\n", s_int (acked, "duplicate"));

    s_head (&out, "herald_events_refused_total", "counter", "Events refused (NACK), by code.");
    const char *key;
    json_t *value;
    json_object_foreach (json_object_get (metrics, "refused"), key, value) {
        int code = (int) strtol (key, NULL, 10);    /* digits, written by herald_metrics_json */
        herald_text_printf (&out, "herald_events_refused_total{code=\"%d\",reason=\"%s\"} %lld\n", code,
                            hp_code_name (code), (long long) json_integer_value (value));
    }
    int rc = s_histogram (&out, "herald_ack_latency_seconds",
                          "Time from a publish request's arrival to its ACK (after the durable write).",
                          json_object_get (metrics, "ack_latency"));
    if (rc == 0)
        rc = s_histogram (&out, "herald_journal_sync_seconds", "Time one fdatasync of the journal took.",
                          json_object_get (metrics, "journal_sync"));

    static const char *const states[] = { "pending", "in_flight", "retrying", "dead" };
    s_head (&out, "herald_tasks", "gauge", "Tasks per channel and state (pending includes those in the store).");
    size_t i;
    json_t *channel;
    json_array_foreach (channels, i, channel) {
        for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
            herald_text_puts (&out, "herald_tasks{channel=\"");
            s_label (&out, json_string_value (json_object_get (channel, "name")));
            herald_text_printf (&out, "\",state=\"%s\"} %lld\n", states[s], s_int (channel, states[s]));
        }
    }
    s_head (&out, "herald_deliveries_total", "counter", "Delivery attempts per channel, by how they ended.");
    json_t *deliveries = json_object_get (metrics, "deliveries");
    json_array_foreach (channels, i, channel) {
        json_t *counts = json_array_get (deliveries, i);
        for (int o = 0; o < HERALD_DELIVERY_OUTCOMES; o++) {
            const char *outcome = herald_delivery_name ((herald_delivery_t) o);
            herald_text_puts (&out, "herald_deliveries_total{channel=\"");
            s_label (&out, json_string_value (json_object_get (channel, "name")));
            herald_text_printf (&out, "\",outcome=\"%s\"} %lld\n", outcome, s_int (counts, outcome));
        }
    }
    s_head (&out, "herald_oldest_pending_age_seconds", "gauge",
            "Age of the channel's oldest unfinished task (0 when none).");
    json_array_foreach (channels, i, channel) {
        herald_text_puts (&out, "herald_oldest_pending_age_seconds{channel=\"");
        s_label (&out, json_string_value (json_object_get (channel, "name")));
        herald_text_printf (&out, "\"} %.3f\n", (double) s_int (channel, "oldest_pending_age_ms") / 1000.0);
    }
    s_head (&out, "herald_workers", "gauge", "Workers connected per channel.");
    json_array_foreach (channels, i, channel) {
        herald_text_puts (&out, "herald_workers{channel=\"");
        s_label (&out, json_string_value (json_object_get (channel, "name")));
        herald_text_printf (&out, "\"} %lld\n", s_int (channel, "workers"));
    }
    s_head (&out, "herald_store_bytes", "gauge", "Bytes of the store on disk: the journal and the index.");
    herald_text_printf (&out, "herald_store_bytes %lld\n", s_int (broker, "journal_bytes") + s_int (broker, "index_bytes"));
    s_head (&out, "herald_build_info", "gauge", "The broker's version, as a label.");
    herald_text_puts (&out, "herald_build_info{version=\"");
    s_label (&out, json_string_value (json_object_get (broker, "version")));
    herald_text_puts (&out, "\"} 1\n");
    if (process && process->resident_bytes >= 0) {
        s_head (&out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        herald_text_printf (&out, "process_resident_memory_bytes %lld\n", (long long) process->resident_bytes);
    }
    if (process && process->start_time >= 0) {
        s_head (&out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
        herald_text_printf (&out, "process_start_time_seconds %.2f\n", process->start_time);
    }
    json_decref (root);
    if (rc != 0 || out.failed) {
        snprintf (err, errlen, rc != 0? "the metrics answer has a malformed histogram": "out of memory");
        free (out.data);
        return NULL;
    }
    return out.data;
}

void
http_process_read (http_process_t *process)
{
    process->resident_bytes = -1;
    process->start_time = -1;
    FILE *statm = fopen ("/proc/self/statm", "r");
    if (statm) {
        long long size, resident;
        if (fscanf (statm, "%lld %lld", &size, &resident) == 2)
            process->resident_bytes = resident * sysconf (_SC_PAGESIZE);
        fclose (statm);
    }
    /*  Field 22 of /proc/self/stat: start time in clock ticks after boot
        (read after the command name, which may hold spaces). */
    char line[1024];
    FILE *stat = fopen ("/proc/self/stat", "r");
    unsigned long long start_ticks = 0;
    bool have_start = false;
    if (stat) {
        if (fgets (line, sizeof line, stat)) {
            char *p = strrchr (line, ')');
            if (p && sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                             &start_ticks) == 1)
                have_start = true;
        }
        fclose (stat);
    }
    FILE *boot = have_start? fopen ("/proc/stat", "r"): NULL;
    if (boot) {
        while (fgets (line, sizeof line, boot)) {
            unsigned long long btime;
            if (sscanf (line, "btime %llu", &btime) == 1) {
                process->start_time = (double) btime + (double) start_ticks / (double) sysconf (_SC_CLK_TCK);
                break;
            }
        }
        fclose (boot);
    }
}
