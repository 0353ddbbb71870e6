/*  http_metrics: the `metrics` admin verb's JSON as the Prometheus text
    exposition format 0.0.4, for GET /metrics. Pure: text in, text out. */
#ifndef HERALD_HTTP_METRICS_H
#define HERALD_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

/*  What the HTTP thread knows of its own process. */
typedef struct {
    int64_t resident_bytes;         /* resident set size, -1 = not known */
    double start_time;              /* Unix seconds the process started, < 0 = not known */
} http_process_t;

/*  Renders json (the metrics verb's reply body, len bytes) and process into
    Prometheus text. Returns a string the caller frees, or NULL when json
    is not an object of that shape (then err says what) or on OOM. */
char *
    http_metrics_render (const char *json, size_t len, const http_process_t *process, char *err, size_t errlen);

/*  The process figures, read from /proc. */
void
    http_process_read (http_process_t *process);

#endif
