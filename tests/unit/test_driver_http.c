/*  test_driver_http: the http driver (libcurl multi in a zmq_poll loop)
    against a real HTTP server (tests/servers/http_server.py) that records
    requests and answers as told through POST /_control. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "driver.h"
#include "server_helper.h"

#define S_MAX_RESULTS 16

static char s_dir [64];
static pid_t s_server = -1;
static int s_port;

typedef struct {
    int count;
    char task_id [S_MAX_RESULTS][HP_MAX_ID + 1];
    uint32_t attempt [S_MAX_RESULTS];
    uint64_t lease [S_MAX_RESULTS];
    hd_result_t result [S_MAX_RESULTS];
    int64_t at_ms [S_MAX_RESULTS];      /* when complete() was called */
} s_results_t;

static void
s_complete (void *ctx, const char *task_id, uint32_t attempt, uint64_t lease, const hd_result_t *result)
{
    s_results_t *results = ctx;
    cr_assert_lt (results->count, S_MAX_RESULTS);
    int i = results->count++;
    snprintf (results->task_id [i], sizeof results->task_id [i], "%s", task_id);
    results->attempt [i] = attempt;
    results->lease [i] = lease;
    results->result [i] = *result;
    results->at_ms [i] = srv_now_ms ();
}

static void
s_setup (void)
{
    cr_assert_eq (srv_make_dir (s_dir, sizeof s_dir), 0);
    char port_file [128], log [128];
    snprintf (port_file, sizeof port_file, "%s/http.port", s_dir);
    snprintf (log, sizeof log, "%s/requests.jsonl", s_dir);
    const char *args [] = { "--log", log, NULL };
    s_server = srv_start ("http_server.py", port_file, args, &s_port);
    cr_assert_gt (s_server, 0, "http_server.py did not start");
    setenv ("HERALD_TEST_TOKEN", "Bearer s3cret", 1);
}

static void
s_teardown (void)
{
    srv_stop (s_server);
    s_server = -1;
    srv_remove_dir (s_dir);
}

TestSuite (driver_http, .init = s_setup, .fini = s_teardown, .timeout = 60);

static size_t
s_collect (char *data, size_t size, size_t nmemb, void *userp)
{
    char **buf = userp;
    size_t old = *buf ? strlen (*buf) : 0;
    char *grown = realloc (*buf, old + size * nmemb + 1);
    cr_assert_not_null (grown);
    memcpy (grown + old, data, size * nmemb);
    grown [old + size * nmemb] = '\0';
    *buf = grown;
    return size * nmemb;
}

/*  A blocking request to the test server's control endpoints. Returns the
    response body (caller frees). */
static char *
s_server_call (const char *path, const char *body)
{
    char url [128];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", s_port, path);
    CURL *curl = curl_easy_init ();
    char *response = NULL;
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 10000L);
    if (body)
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform (curl);
    long status = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup (curl);
    cr_assert_eq (rc, CURLE_OK, "%s: %s", path, curl_easy_strerror (rc));
    cr_assert_eq (status, 200, "%s: HTTP %ld", path, status);
    return response;
}

static void
s_control (const char *json)
{
    free (s_server_call ("/_control", json));
}

/*  The requests the server recorded (caller decrefs). */
static json_t *
s_requests (void)
{
    char *text = s_server_call ("/_requests", NULL);
    json_error_t jerr;
    json_t *list = json_loads (text, 0, &jerr);
    cr_assert_not_null (list, "%s: %s", jerr.text, text);
    free (text);
    return list;
}

static const char *
s_request_header (json_t *request, const char *name)
{
    return json_string_value (json_object_get (json_object_get (request, "headers"), name));
}

static void
s_channel (herald_channel_t *channel, const char *path)
{
    memset (channel, 0, sizeof *channel);
    snprintf (channel->name, sizeof channel->name, "inventory");
    channel->driver = HERALD_DRIVER_HTTP;
    channel->capacity = 4;
    herald_http_config_t *http = &channel->http;
    snprintf (http->method, sizeof http->method, "POST");
    snprintf (http->url, sizeof http->url, "http://127.0.0.1:%d%s", s_port, path);
    http->connect_timeout_ms = 2000;
    http->timeout_ms = 10000;
    http->verify_peer = true;
}

static const char *s_event_json =
    "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"/shop\",\"type\":\"order.confirmed\","
    "\"data\":{\"order_id\":1042,\"customer\":{\"name\":\"Ada \\\"the\\\"\\nCountess\","
    "\"email\":\"ada@example.com\"},\"items\":[{\"sku\":\"A-1\",\"qty\":2}],\"total\":19.99}}";

static void *
s_open (const herald_channel_t *channel, s_results_t *results)
{
    char err [HERALD_ERR_MAX] = "";
    void *driver = hd_http_ops.open (channel, s_complete, results, err, sizeof err);
    cr_assert_not_null (driver, "open failed: %s", err);
    return driver;
}

static void
s_start (void *driver, const char *task_id, uint32_t attempt)
{
    hd_task_t task = { .task_id = task_id, .attempt = attempt, .lease = 7000 + attempt, .channel = "inventory", .event_json = s_event_json, .event_len = strlen (s_event_json) };
    cr_assert_eq (hd_http_ops.start (driver, &task), 0);
}

/*  Runs the poll loop the worker runs until want results are in, or
    timeout_ms passes. */
static void
s_run (void *driver, s_results_t *results, int want, int timeout_ms)
{
    int64_t deadline = srv_now_ms () + timeout_ms;
    while (results->count < want) {
        int64_t left = deadline - srv_now_ms ();
        cr_assert_gt (left, 0, "only %d of %d deliveries completed in time", results->count, want);
        zmq_pollitem_t items [64];
        long timeout = 1000;
        int count = hd_http_ops.poll_items (driver, items, 64, &timeout);
        if (timeout < 0 || timeout > left)
            timeout = (long) left;
        int rc = zmq_poll (items, count, timeout);
        cr_assert_geq (rc, 0, "zmq_poll: %s", zmq_strerror (zmq_errno ()));
        hd_http_ops.progress (driver, items, count);
    }
    cr_assert_eq (hd_http_ops.in_progress (driver), 0);
}

/*  Delivers one task and returns its result. */
static hd_result_t
s_deliver (const herald_channel_t *channel, const char *task_id, uint32_t attempt)
{
    s_results_t results = { 0 };
    void *driver = s_open (channel, &results);
    s_start (driver, task_id, attempt);
    s_run (driver, &results, 1, 15000);
    cr_assert_str_eq (results.task_id [0], task_id);
    cr_assert_eq (results.attempt [0], attempt);
    cr_assert_eq (results.lease [0], 7000 + attempt, "the lease is echoed");
    hd_http_ops.close (&driver);
    cr_assert_null (driver);
    cr_log_info ("%s: %s", task_id, results.result [0].text);
    return results.result [0];
}

//  --------------------------------------------------------------------------

Test (driver_http, posts_the_event_data_with_idempotency_key_and_headers)
{
    herald_channel_t channel;
    s_channel (&channel, "/orders?api_key=hidden");
    snprintf (channel.http.headers [0].name, sizeof channel.http.headers [0].name, "Authorization");
    snprintf (channel.http.headers [0].value_env, sizeof channel.http.headers [0].value_env,
              "HERALD_TEST_TOKEN");
    snprintf (channel.http.headers [1].name, sizeof channel.http.headers [1].name, "X-Shop");
    snprintf (channel.http.headers [1].value, sizeof channel.http.headers [1].value, "demo");
    channel.http.header_count = 2;
    hd_result_t result = s_deliver (&channel, "task-1", 3);
    cr_assert_eq (result.outcome, HD_DONE, "%s", result.text);
    cr_assert (strstr (result.text, "HTTP 200"), "%s", result.text);
    cr_assert_null (strstr (result.text, "hidden"), "query shown: %s", result.text);

    json_t *requests = s_requests ();
    cr_assert_eq (json_array_size (requests), 1);
    json_t *request = json_array_get (requests, 0);
    cr_assert_str_eq (json_string_value (json_object_get (request, "method")), "POST");
    cr_assert_str_eq (json_string_value (json_object_get (request, "path")), "/orders?api_key=hidden");
    cr_assert_str_eq (s_request_header (request, "idempotency-key"), "task-1");
    cr_assert_str_eq (s_request_header (request, "x-herald-attempt"), "3");
    cr_assert_str_eq (s_request_header (request, "content-type"), "application/json");
    cr_assert_str_eq (s_request_header (request, "authorization"), "Bearer s3cret");
    cr_assert_str_eq (s_request_header (request, "x-shop"), "demo");
    cr_assert_null (s_request_header (request, "expect"));

    json_error_t jerr;
    json_t *event = json_loads (s_event_json, 0, &jerr);
    json_t *body = json_loads (json_string_value (json_object_get (request, "body")), 0, &jerr);
    cr_assert_not_null (body, "%s", jerr.text);
    cr_assert (json_equal (body, json_object_get (event, "data")), "body is not the event's data");
    json_decref (body);
    json_decref (event);
    json_decref (requests);
}

Test (driver_http, renders_the_body_template_as_json)
{
    herald_channel_t channel;
    s_channel (&channel, "/stock");
    snprintf (channel.http.method, sizeof channel.http.method, "PUT");
    snprintf (channel.http.body_template, sizeof channel.http.body_template, "%s/body.json", s_dir);
    cr_assert_eq (srv_write_file (channel.http.body_template,
        "{\"order\": {{data.order_id}}, \"who\": {{ data.customer.name }},\n"
        " \"items\": {{data.items}}, \"event\": {{id}}, \"total\": {{data.total}}}\n"), 0);
    hd_result_t result = s_deliver (&channel, "task-2", 1);
    cr_assert_eq (result.outcome, HD_DONE, "%s", result.text);

    json_t *requests = s_requests ();
    json_t *request = json_array_get (requests, 0);
    cr_assert_str_eq (json_string_value (json_object_get (request, "method")), "PUT");
    json_error_t jerr;
    json_t *body = json_loads (json_string_value (json_object_get (request, "body")), 0, &jerr);
    cr_assert_not_null (body, "%s", jerr.text);
    json_t *expected = json_pack ("{s:i, s:s, s:[{s:s, s:i}], s:s, s:f}", "order", 1042,
                                  "who", "Ada \"the\"\nCountess", "items", "sku", "A-1", "qty", 2,
                                  "event", "evt-1", "total", 19.99);
    cr_assert (json_equal (body, expected), "body: %s",
               json_string_value (json_object_get (request, "body")));
    json_decref (expected);
    json_decref (body);
    json_decref (requests);
}

Test (driver_http, a_template_field_missing_fails_the_task_without_a_request)
{
    herald_channel_t channel;
    s_channel (&channel, "/stock");
    snprintf (channel.http.body_template, sizeof channel.http.body_template, "%s/body.json", s_dir);
    cr_assert_eq (srv_write_file (channel.http.body_template, "{\"x\": {{data.nope}}}"), 0);
    s_results_t results = { 0 };
    void *driver = s_open (&channel, &results);
    s_start (driver, "task-3", 1);
    cr_assert_eq (results.count, 1, "completed at once");
    cr_assert_eq (results.result [0].outcome, HD_FAILED);
    cr_assert (strstr (results.result [0].text, "{{data.nope}}: no such field"), "%s",
               results.result [0].text);
    hd_task_t bad = { .task_id = "task-4", .attempt = 1, .lease = 1, .channel = "inventory", .event_json = "{oops", .event_len = 5 };
    cr_assert_eq (hd_http_ops.start (driver, &bad), 0);
    cr_assert_eq (results.count, 2);
    cr_assert_eq (results.result [1].outcome, HD_FAILED);
    cr_assert (strstr (results.result [1].text, "invalid event JSON"), "%s", results.result [1].text);
    hd_http_ops.close (&driver);
    json_t *requests = s_requests ();
    cr_assert_eq (json_array_size (requests), 0);
    json_decref (requests);
}

Test (driver_http, server_error_is_retried_then_succeeds)
{
    s_control ("{\"mode\": \"500\", \"times\": 1}");
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    hd_result_t result = s_deliver (&channel, "task-5", 1);
    cr_assert_eq (result.outcome, HD_RETRY, "%s", result.text);
    cr_assert (strstr (result.text, "POST http://127.0.0.1:"), "%s", result.text);
    cr_assert (strstr (result.text, "/orders: HTTP 500: simulated status 500"), "%s", result.text);
    result = s_deliver (&channel, "task-5", 2);
    cr_assert_eq (result.outcome, HD_DONE, "%s", result.text);
    json_t *requests = s_requests ();
    cr_assert_eq (json_array_size (requests), 2);
    cr_assert_str_eq (s_request_header (json_array_get (requests, 1), "idempotency-key"), "task-5");
    json_decref (requests);
}

Test (driver_http, too_many_requests_is_throttled_with_retry_after)
{
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    s_control ("{\"mode\": \"429\", \"retry_after\": \"2\"}");
    hd_result_t result = s_deliver (&channel, "task-6", 1);
    cr_assert_eq (result.outcome, HD_THROTTLED, "%s", result.text);
    cr_assert_eq (result.delay_ms, 2000);

    s_control ("{\"mode\": \"429\", \"retry_after\": null}");
    result = s_deliver (&channel, "task-6", 2);
    cr_assert_eq (result.outcome, HD_THROTTLED, "%s", result.text);
    cr_assert_eq (result.delay_ms, 1000, "default delay without Retry-After");

    /*  An HTTP-date about 5 s ahead. */
    char date [64];
    time_t when = time (NULL) + 5;
    struct tm tm;
    gmtime_r (&when, &tm);
    strftime (date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    char control [160];
    snprintf (control, sizeof control, "{\"mode\": \"429\", \"retry_after\": \"%s\"}", date);
    s_control (control);
    result = s_deliver (&channel, "task-6", 3);
    cr_assert_eq (result.outcome, HD_THROTTLED, "%s", result.text);
    cr_assert (result.delay_ms > 2000 && result.delay_ms <= 5000, "delay %ld for %s",
               (long) result.delay_ms, date);
}

Test (driver_http, unavailable_with_retry_after_is_throttled_without_is_retried)
{
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    s_control ("{\"mode\": \"503\", \"retry_after\": \"3\"}");
    hd_result_t result = s_deliver (&channel, "task-7", 1);
    cr_assert_eq (result.outcome, HD_THROTTLED, "%s", result.text);
    cr_assert_eq (result.delay_ms, 3000);
    s_control ("{\"mode\": \"503\", \"retry_after\": null}");
    result = s_deliver (&channel, "task-7", 2);
    cr_assert_eq (result.outcome, HD_RETRY, "%s", result.text);
    cr_assert (strstr (result.text, "HTTP 503"), "%s", result.text);
}

Test (driver_http, client_errors_fail_permanently_but_408_is_retried)
{
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    s_control ("{\"mode\": \"400\"}");
    hd_result_t result = s_deliver (&channel, "task-8", 1);
    cr_assert_eq (result.outcome, HD_FAILED, "%s", result.text);
    cr_assert (strstr (result.text, "HTTP 400"), "%s", result.text);
    s_control ("{\"mode\": \"404\"}");
    cr_assert_eq (s_deliver (&channel, "task-8", 2).outcome, HD_FAILED);
    s_control ("{\"mode\": \"408\"}");
    cr_assert_eq (s_deliver (&channel, "task-8", 3).outcome, HD_RETRY);
}

Test (driver_http, a_hanging_server_is_cut_off_by_the_timeout)
{
    s_control ("{\"mode\": \"hang\", \"hang_seconds\": 20}");
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    channel.http.timeout_ms = 500;
    int64_t started = srv_now_ms ();
    hd_result_t result = s_deliver (&channel, "task-9", 1);
    int64_t took = srv_now_ms () - started;
    cr_assert_eq (result.outcome, HD_RETRY, "%s", result.text);
    cr_assert (strstr (result.text, "Timeout"), "%s", result.text);
    cr_assert (took >= 450 && took < 3000, "took %ld ms", (long) took);
}

Test (driver_http, runs_capacity_requests_at_once)
{
    s_control ("{\"mode\": \"hang\", \"hang_seconds\": 1}");
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    s_results_t results = { 0 };
    void *driver = s_open (&channel, &results);
    int64_t started = srv_now_ms ();
    const char *ids [] = { "c-1", "c-2", "c-3", "c-4" };
    for (int i = 0; i < 4; i++)
        s_start (driver, ids [i], 1);
    cr_assert_eq (hd_http_ops.in_progress (driver), 4);
    s_run (driver, &results, 4, 10000);
    int64_t took = srv_now_ms () - started;
    for (int i = 0; i < 4; i++)
        cr_assert_eq (results.result [i].outcome, HD_DONE, "%s", results.result [i].text);
    /*  Four one-second requests in well under four seconds, and the server
        saw all four in progress together. */
    cr_assert (took < 2500, "took %ld ms: not concurrent", (long) took);
    json_t *requests = s_requests ();
    cr_assert_eq (json_array_size (requests), 4);
    json_int_t most = 0;
    for (size_t i = 0; i < 4; i++) {
        json_int_t active = json_integer_value (json_object_get (json_array_get (requests, i),
                                                                 "active"));
        most = active > most ? active : most;
    }
    cr_assert_eq (most, 4, "at most %ld requests at once at the server", (long) most);
    json_decref (requests);
    hd_http_ops.close (&driver);
}

Test (driver_http, close_aborts_what_is_in_progress)
{
    s_control ("{\"mode\": \"hang\", \"hang_seconds\": 5}");
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    s_results_t results = { 0 };
    void *driver = s_open (&channel, &results);
    s_start (driver, "abort-1", 1);
    s_start (driver, "abort-2", 1);
    /*  Let the requests reach the server, then close. */
    int64_t deadline = srv_now_ms () + 5000;
    json_t *requests = s_requests ();
    while (json_array_size (requests) < 2 && srv_now_ms () < deadline) {
        zmq_pollitem_t items [16];
        long timeout = 50;
        int count = hd_http_ops.poll_items (driver, items, 16, &timeout);
        zmq_poll (items, count, timeout);
        hd_http_ops.progress (driver, items, count);
        json_decref (requests);
        requests = s_requests ();
    }
    cr_assert_eq (json_array_size (requests), 2);
    json_decref (requests);
    cr_assert_eq (hd_http_ops.in_progress (driver), 2);
    hd_http_ops.close (&driver);
    cr_assert_null (driver);
    cr_assert_eq (results.count, 0, "close must not call complete()");
}

Test (driver_http, redirects_are_not_followed_unless_configured)
{
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    s_control ("{\"mode\": \"redirect\", \"location\": \"/moved\", \"times\": 1}");
    hd_result_t result = s_deliver (&channel, "task-10", 1);
    cr_assert_eq (result.outcome, HD_FAILED, "%s", result.text);
    cr_assert (strstr (result.text, "redirect to http://127.0.0.1:"), "%s", result.text);
    cr_assert (strstr (result.text, "/moved not followed"), "%s", result.text);

    channel.http.follow_redirects = true;
    s_control ("{\"mode\": \"redirect\", \"location\": \"/moved\", \"times\": 1}");
    result = s_deliver (&channel, "task-10", 2);
    cr_assert_eq (result.outcome, HD_DONE, "%s", result.text);
    json_t *requests = s_requests ();
    cr_assert_eq (json_array_size (requests), 3);
    cr_assert_str_eq (json_string_value (json_object_get (json_array_get (requests, 2), "path")),
                      "/moved");
    json_decref (requests);

    /*  Never to another protocol. */
    s_control ("{\"mode\": \"redirect\", \"location\": \"ftp://127.0.0.1/x\", \"times\": 1}");
    result = s_deliver (&channel, "task-10", 3);
    cr_assert_eq (result.outcome, HD_FAILED, "%s", result.text);
}

Test (driver_http, connection_refused_is_retried)
{
    herald_channel_t channel;
    s_channel (&channel, "/orders");
    int port = srv_free_port ();
    snprintf (channel.http.url, sizeof channel.http.url, "http://127.0.0.1:%d/x", port);
    hd_result_t result = s_deliver (&channel, "task-11", 1);
    cr_assert_eq (result.outcome, HD_RETRY, "%s", result.text);
    char expected [64];
    snprintf (expected, sizeof expected, "POST http://127.0.0.1:%d/x: Couldn't connect", port);
    cr_assert (strstr (result.text, expected), "%s", result.text);
}

Test (driver_http, open_names_what_is_wrong)
{
    herald_channel_t channel;
    char err [HERALD_ERR_MAX];
    s_results_t results = { 0 };

    s_channel (&channel, "/x");
    snprintf (channel.http.headers [0].name, sizeof channel.http.headers [0].name, "Authorization");
    snprintf (channel.http.headers [0].value_env, sizeof channel.http.headers [0].value_env,
              "HERALD_TEST_UNSET_TOKEN");
    channel.http.header_count = 1;
    unsetenv ("HERALD_TEST_UNSET_TOKEN");
    cr_assert_null (hd_http_ops.open (&channel, s_complete, &results, err, sizeof err));
    cr_assert (strstr (err, "channel inventory: environment variable HERALD_TEST_UNSET_TOKEN is not set"),
               "%s", err);

    setenv ("HERALD_TEST_UNSET_TOKEN", "a\r\nX-Evil: 1", 1);
    cr_assert_null (hd_http_ops.open (&channel, s_complete, &results, err, sizeof err));
    cr_assert (strstr (err, "control character"), "%s", err);

    s_channel (&channel, "/x");
    snprintf (channel.http.url, sizeof channel.http.url, "ftp://127.0.0.1/x");
    cr_assert_null (hd_http_ops.open (&channel, s_complete, &results, err, sizeof err));
    cr_assert (strstr (err, "http.url"), "%s", err);

    s_channel (&channel, "/x");
    snprintf (channel.http.body_template, sizeof channel.http.body_template, "%s/none.json", s_dir);
    cr_assert_null (hd_http_ops.open (&channel, s_complete, &results, err, sizeof err));
    cr_assert (strstr (err, channel.http.body_template), "%s", err);
}
