/*  driver_http: HTTP API calls with the libcurl multi interface, so one
    worker process runs up to channel.capacity requests at once inside the
    worker's zmq_poll loop: libcurl tells us its sockets and its next
    timeout (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION), poll_items() hands
    them to zmq_poll as plain file descriptors, progress() feeds back what
    was ready and completes the transfers that ended. The URL, response
    excerpts, redirect targets and libcurl's errors pass through
    herald_redact before they become a result text: no credential or token
    in a URL reaches a log or a task's last_error. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "driver.h"
#include "herald_clock.h"
#include "herald_redact.h"
#include "template.h"

#define S_BODY_SHOWN        200             /* response bytes quoted in an error */
#define S_DEFAULT_CONNECT   5000
#define S_DEFAULT_TIMEOUT   30000
#define S_DEFAULT_THROTTLE  1000            /* 429 without a usable Retry-After */
#define S_MAX_DELAY         (24LL * 3600 * 1000)  /* Retry-After is capped at a day */
#define S_MAX_REDIRECTS     5L

typedef struct hd_http_s hd_http_t;

typedef struct s_transfer_s {
    struct s_transfer_s *next;
    CURL *easy;
    char task_id [HP_MAX_ID + 1];
    uint32_t attempt;
    uint64_t lease;                 /* echoed in complete() */
    struct curl_slist *headers;
    char *body;                         /* request body, owned */
    char retry_after [64];              /* Retry-After of the last response, "" if none */
    char response [S_BODY_SHOWN + 1];   /* first bytes of the response body */
    size_t response_len;
    bool response_cut;                  /* the body was longer */
    char errbuf [CURL_ERROR_SIZE];
} s_transfer_t;

typedef struct {
    curl_socket_t fd;
    int what;                           /* CURL_POLL_IN / OUT / INOUT */
} s_socket_t;

struct hd_http_s {
    char channel [HERALD_NAME_MAX];
    herald_http_config_t cfg;           /* copy of the channel's http settings */
    char shown_url [320];               /* url without its query, redacted, for messages */
    char *body_tmpl;                    /* body template, NULL: the event's data as is */
    char *header_lines [HERALD_MAX_HEADERS];    /* "Name: value", secrets resolved */
    int header_count;
    bool custom_content_type;           /* configured Content-Type replaces ours */
    CURLM *multi;
    s_socket_t *sockets;                /* what libcurl wants us to watch */
    int socket_count;
    int socket_cap;
    int64_t timer_deadline;             /* monotonic ms when curl wants a timeout action, -1 none */
    s_transfer_t *transfers;            /* in progress */
    int in_progress;
    hd_complete_fn *complete;
    void *ctx;
};

//  --------------------------------------------------------------------------
//  libcurl callbacks

static int
s_socket_cb (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    hd_http_t *self = userp;
    int index = 0;
    while (index < self->socket_count && self->sockets [index].fd != fd)
        index++;
    if (what == CURL_POLL_REMOVE) {
        if (index < self->socket_count)
            self->sockets [index] = self->sockets [--self->socket_count];
        return 0;
    }
    if (index == self->socket_count) {
        if (self->socket_count == self->socket_cap) {
            int cap = self->socket_cap ? self->socket_cap * 2 : 16;
            s_socket_t *grown = realloc (self->sockets, (size_t) cap * sizeof *grown);
            if (!grown)
                return -1;      /* libcurl fails the transfer */
            self->sockets = grown;
            self->socket_cap = cap;
        }
        self->sockets [self->socket_count++].fd = fd;
    }
    self->sockets [index].what = what;
    return 0;
}

static int
s_timer_cb (CURLM *multi, long timeout_ms, void *userp)
{
    hd_http_t *self = userp;
    self->timer_deadline = timeout_ms < 0 ? -1 : herald_clock_mono_ms () + timeout_ms;
    return 0;
}

/*  Keeps Retry-After of the final response (a followed redirect starts a
    new header block with its status line). */
static size_t
s_header_cb (char *line, size_t size, size_t nitems, void *userp)
{
    s_transfer_t *transfer = userp;
    size_t len = size * nitems;
    static const char name [] = "Retry-After:";
    if (len >= 5 && strncmp (line, "HTTP/", 5) == 0)
        transfer->retry_after [0] = '\0';
    else
    if (len > sizeof name - 1 && strncasecmp (line, name, sizeof name - 1) == 0) {
        const char *value = line + sizeof name - 1;
        const char *end = line + len;
        while (value < end && (*value == ' ' || *value == '\t'))
            value++;
        while (end > value && isspace ((unsigned char) end [-1]))
            end--;
        size_t value_len = (size_t) (end - value);
        if (value_len >= sizeof transfer->retry_after)
            value_len = sizeof transfer->retry_after - 1;
        memcpy (transfer->retry_after, value, value_len);
        transfer->retry_after [value_len] = '\0';
    }
    return len;
}

static size_t
s_write_cb (char *data, size_t size, size_t nmemb, void *userp)
{
    s_transfer_t *transfer = userp;
    size_t len = size * nmemb;
    size_t room = S_BODY_SHOWN - transfer->response_len;
    size_t keep = len < room ? len : room;
    memcpy (transfer->response + transfer->response_len, data, keep);
    transfer->response_len += keep;
    transfer->response_cut |= keep < len;
    transfer->response [transfer->response_len] = '\0';
    return len;                 /* the rest is read and dropped */
}

//  --------------------------------------------------------------------------
//  Outcome

/*  Retry-After as milliseconds from now (delta-seconds or HTTP-date),
    or -1 if absent or unreadable. */
static int64_t
s_retry_after_ms (const char *value)
{
    size_t len = strlen (value);
    if (len == 0)
        return -1;
    if (strspn (value, "0123456789") == len) {
        if (len > 9)
            return S_MAX_DELAY;
        int64_t ms = (int64_t) strtol (value, NULL, 10) * 1000;
        return ms < S_MAX_DELAY ? ms : S_MAX_DELAY;
    }
    struct tm tm = { 0 };
    const char *rest = strptime (value, "%a, %d %b %Y %H:%M:%S", &tm);
    if (!rest)
        return -1;
    while (*rest == ' ')
        rest++;
    if (strcmp (rest, "GMT") != 0 && strcmp (rest, "UTC") != 0)
        return -1;
    time_t when = timegm (&tm);
    if (when == (time_t) -1)
        return -1;
    int64_t ms = ((int64_t) when * 1000) - herald_clock_wall_ms ();
    if (ms < 0)
        return 0;
    return ms < S_MAX_DELAY ? ms : S_MAX_DELAY;
}

static void
s_classify (hd_http_t *self, s_transfer_t *transfer, CURLcode code, hd_result_t *result)
{
    const char *method = self->cfg.method;
    const char *url = self->shown_url;
    long status = 0;
    curl_easy_getinfo (transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    result->delay_ms = 0;

    if (code != CURLE_OK) {
        /*  Refused, DNS, timeout, TLS: transient. A redirect to another
            protocol or a redirect loop will not fix itself. */
        bool permanent = code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_TOO_MANY_REDIRECTS
                      || code == CURLE_URL_MALFORMAT;
        result->outcome = permanent ? HD_FAILED : HD_RETRY;
        char shown [CURL_ERROR_SIZE];
        herald_redact (transfer->errbuf, shown, sizeof shown);
        if (shown [0] && strcmp (transfer->errbuf, curl_easy_strerror (code)) != 0)
            snprintf (result->text, sizeof result->text, "%s %s: %s (%s)", method, url,
                      curl_easy_strerror (code), shown);
        else
            snprintf (result->text, sizeof result->text, "%s %s: %s", method, url,
                      curl_easy_strerror (code));
        return;
    }
    if (status >= 200 && status <= 299) {
        result->outcome = HD_DONE;
        snprintf (result->text, sizeof result->text, "%s %s: HTTP %ld", method, url, status);
        return;
    }
    if (status >= 300 && status <= 399) {
        char *location = NULL;
        curl_easy_getinfo (transfer->easy, CURLINFO_REDIRECT_URL, &location);
        result->outcome = HD_FAILED;
        char shown [320];
        if (location && !self->cfg.follow_redirects)
            snprintf (result->text, sizeof result->text,
                      "%s %s: HTTP %ld: redirect to %s not followed "
                      "(set follow_redirects to allow)", method, url, status,
                      herald_redact (location, shown, sizeof shown));
        else
            snprintf (result->text, sizeof result->text, "%s %s: HTTP %ld", method, url, status);
        return;
    }
    int64_t retry_after = s_retry_after_ms (transfer->retry_after);
    if (status == 429 || (status == 503 && retry_after >= 0)) {
        result->outcome = HD_THROTTLED;
        result->delay_ms = retry_after >= 0 ? retry_after : S_DEFAULT_THROTTLE;
    }
    else
    if (status >= 500 || status == 408) {
        result->outcome = HD_RETRY;
        result->delay_ms = retry_after > 0 ? retry_after : 0;
    }
    else
        result->outcome = HD_FAILED;    /* other 4xx, and anything unexpected */
    /*  The server's bytes: one printable line, capped, secrets out. */
    char shown [S_BODY_SHOWN + 8];
    herald_redact_bytes (transfer->response, transfer->response_len, shown, sizeof shown);
    snprintf (result->text, sizeof result->text, "%s %s: HTTP %ld: %s%s", method, url, status,
              shown [0] ? shown : "(empty body)", transfer->response_cut ? "..." : "");
}

static void
s_transfer_destroy (s_transfer_t **transfer_p)
{
    if (!transfer_p || !*transfer_p)
        return;
    s_transfer_t *transfer = *transfer_p;
    if (transfer->easy)
        curl_easy_cleanup (transfer->easy);
    curl_slist_free_all (transfer->headers);
    free (transfer->body);
    free (transfer);
    *transfer_p = NULL;
}

/*  Completes every transfer libcurl reports as done. */
static void
s_drain (hd_http_t *self)
{
    CURLMsg *msg;
    int queued;
    while ((msg = curl_multi_info_read (self->multi, &queued))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        s_transfer_t **link = &self->transfers;
        while (*link && (*link)->easy != easy)
            link = &(*link)->next;
        if (!*link)
            continue;           /* not ours: cannot happen */
        s_transfer_t *transfer = *link;
        *link = transfer->next;
        self->in_progress--;

        hd_result_t result;
        s_classify (self, transfer, code, &result);
        curl_multi_remove_handle (self->multi, easy);
        char task_id [HP_MAX_ID + 1];
        memcpy (task_id, transfer->task_id, sizeof task_id);
        uint64_t lease = transfer->lease;
        uint32_t attempt = transfer->attempt;
        s_transfer_destroy (&transfer);
        self->complete (self->ctx, task_id, attempt, lease, &result);
    }
}

//  --------------------------------------------------------------------------
//  Starting a request

/*  The request body for event: the template rendered in JSON mode, or the
    event's data as is. Returns it (caller frees) or NULL with err. */
static char *
s_body (hd_http_t *self, const json_t *event, char *err, size_t errlen)
{
    if (!self->body_tmpl) {
        const json_t *data = json_object_get (event, "data");
        char *body = json_dumps (data ? data : json_null (), JSON_COMPACT | JSON_ENCODE_ANY);
        if (!body)
            snprintf (err, errlen, "cannot encode the event's data");
        return body;
    }
    char why [HERALD_ERR_MAX];
    char *body = hd_template_render (self->body_tmpl, event, HD_ESCAPE_JSON, why, sizeof why);
    if (!body) {
        snprintf (err, errlen, "%.300s: %s", self->cfg.body_template, why);
        return NULL;
    }
    /*  A template that is not JSON around its fields would send garbage. */
    json_error_t jerr;
    json_t *check = json_loads (body, JSON_DECODE_ANY, &jerr);
    if (!check) {
        snprintf (err, errlen, "%.300s: rendered body is not JSON: %s (line %d)",
                  self->cfg.body_template, jerr.text, jerr.line);
        free (body);
        return NULL;
    }
    json_decref (check);
    return body;
}

/*  Appends line to *list. Returns 0, or -1 after freeing the list. */
static int
s_header_add (struct curl_slist **list, const char *line)
{
    struct curl_slist *grown = curl_slist_append (*list, line);
    if (!grown) {
        curl_slist_free_all (*list);
        *list = NULL;
        return -1;
    }
    *list = grown;
    return 0;
}

/*  The request headers for task. Returns the list or NULL (out of memory). */
static struct curl_slist *
s_headers (hd_http_t *self, const hd_task_t *task)
{
    struct curl_slist *list = NULL;
    char idempotency [HP_MAX_ID + 32];
    char attempt [48];
    snprintf (idempotency, sizeof idempotency, "Idempotency-Key: %s", task->task_id);
    snprintf (attempt, sizeof attempt, "X-Herald-Attempt: %u", task->attempt);
    if (!self->custom_content_type && s_header_add (&list, "Content-Type: application/json"))
        return NULL;
    if (s_header_add (&list, "Expect:")             /* no 100-continue round trip */
    ||  s_header_add (&list, idempotency)
    ||  s_header_add (&list, attempt))
        return NULL;
    for (int i = 0; i < self->header_count; i++)
        if (s_header_add (&list, self->header_lines [i]))
            return NULL;
    return list;
}

/*  Sets up transfer's easy handle. Returns the first failing CURLcode. */
static CURLcode
s_setup (hd_http_t *self, s_transfer_t *transfer)
{
    CURL *easy = transfer->easy;
    const herald_http_config_t *cfg = &self->cfg;
    CURLcode rc = CURLE_OK;
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_URL, cfg->url);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!rc && cfg->follow_redirects) {
        rc = curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 1L);
        if (!rc) rc = curl_easy_setopt (easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        if (!rc) rc = curl_easy_setopt (easy, CURLOPT_MAXREDIRS, S_MAX_REDIRECTS);
    }
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, (long) cfg->connect_timeout_ms);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long) cfg->timeout_ms);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_SSL_VERIFYPEER, cfg->verify_peer ? 1L : 0L);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_SSL_VERIFYHOST, cfg->verify_peer ? 2L : 0L);
    if (!rc && cfg->ca_file [0])
        rc = curl_easy_setopt (easy, CURLOPT_CAINFO, cfg->ca_file);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_USERAGENT, "herald/" HERALD_VERSION);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_HTTPHEADER, transfer->headers);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_HEADERFUNCTION, s_header_cb);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_HEADERDATA, transfer);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_write_cb);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_WRITEDATA, transfer);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, transfer->errbuf);
    if (!rc) rc = curl_easy_setopt (easy, CURLOPT_PRIVATE, transfer);
    if (strcmp (cfg->method, "GET") == 0) {
        if (!rc) rc = curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
    }
    else {
        if (!rc) rc = curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                        (curl_off_t) strlen (transfer->body));
        if (!rc) rc = curl_easy_setopt (easy, CURLOPT_POSTFIELDS, transfer->body);
        if (!rc && strcmp (cfg->method, "POST") != 0)
            rc = curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, cfg->method);
    }
    return rc;
}

static void
s_fail_now (hd_http_t *self, const hd_task_t *task, const char *text)
{
    hd_result_t result = { .outcome = HD_FAILED, .delay_ms = 0 };
    snprintf (result.text, sizeof result.text, "%s", text);
    self->complete (self->ctx, task->task_id, task->attempt, task->lease, &result);
}

static int
s_start (void *self_, const hd_task_t *task)
{
    hd_http_t *self = self_;
    char err [HP_MAX_TEXT];
    if (strlen (task->task_id) > HP_MAX_ID || strpbrk (task->task_id, "\r\n")) {
        s_fail_now (self, task, "invalid task id for an Idempotency-Key");
        return 0;
    }
    json_error_t jerr;
    json_t *event = json_loadb (task->event_json, task->event_len, 0, &jerr);
    if (!event) {
        snprintf (err, sizeof err, "invalid event JSON: %s (offset %d)", jerr.text, jerr.position);
        s_fail_now (self, task, err);
        return 0;
    }
    char *body = s_body (self, event, err, sizeof err);
    json_decref (event);
    if (!body) {
        s_fail_now (self, task, err);
        return 0;
    }
    s_transfer_t *transfer = calloc (1, sizeof *transfer);
    if (!transfer) {
        free (body);
        return -1;
    }
    transfer->body = body;
    transfer->attempt = task->attempt;
    transfer->lease = task->lease;
    snprintf (transfer->task_id, sizeof transfer->task_id, "%s", task->task_id);
    transfer->headers = s_headers (self, task);
    transfer->easy = curl_easy_init ();
    if (!transfer->headers || !transfer->easy || s_setup (self, transfer) != CURLE_OK
    ||  curl_multi_add_handle (self->multi, transfer->easy) != CURLM_OK) {
        s_transfer_destroy (&transfer);
        return -1;
    }
    transfer->next = self->transfers;
    self->transfers = transfer;
    self->in_progress++;
    return 0;
}

//  --------------------------------------------------------------------------
//  Poll loop integration

static int
s_poll_items (void *self_, zmq_pollitem_t *items, int max, long *timeout_ms)
{
    hd_http_t *self = self_;
    int count = 0;
    for (int i = 0; i < self->socket_count && count < max; i++) {
        int what = self->sockets [i].what;
        items [count].socket = NULL;
        items [count].fd = self->sockets [i].fd;
        items [count].events = (short) (((what & CURL_POLL_IN) ? ZMQ_POLLIN : 0)
                                      | ((what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0));
        items [count].revents = 0;
        count++;
    }
    long wait = -1;
    if (self->timer_deadline >= 0) {
        int64_t left = self->timer_deadline - herald_clock_mono_ms ();
        wait = left > 0 ? (long) left : 0;
    }
    if (self->socket_count > max && (wait < 0 || wait > 10))
        wait = 10;              /* more sockets than slots: come back soon */
    if (wait >= 0 && (*timeout_ms < 0 || wait < *timeout_ms))
        *timeout_ms = wait;
    return count;
}

static void
s_progress (void *self_, const zmq_pollitem_t *items, int count)
{
    hd_http_t *self = self_;
    int running = 0;
    for (int i = 0; i < count; i++) {
        if (items [i].socket || !items [i].revents)
            continue;
        int mask = ((items [i].revents & ZMQ_POLLIN) ? CURL_CSELECT_IN : 0)
                 | ((items [i].revents & ZMQ_POLLOUT) ? CURL_CSELECT_OUT : 0)
                 | ((items [i].revents & ZMQ_POLLERR) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action (self->multi, items [i].fd, mask, &running);
    }
    if (self->timer_deadline >= 0 && herald_clock_mono_ms () >= self->timer_deadline) {
        self->timer_deadline = -1;      /* the action may set a new one */
        curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    s_drain (self);
}

static int
s_in_progress (void *self_)
{
    hd_http_t *self = self_;
    return self->in_progress;
}

//  --------------------------------------------------------------------------
//  Open and close

static void s_close (void **self_p);

static bool
s_valid_header_name (const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum ((unsigned char) *p) && !strchr ("!#$%&'*+-.^_`|~", *p))
            return false;
    return true;
}

/*  Resolves configured headers into "Name: value" lines. 0 or -1 with err. */
static int
s_resolve_headers (hd_http_t *self, char *err, size_t errlen)
{
    for (int i = 0; i < self->cfg.header_count && i < HERALD_MAX_HEADERS; i++) {
        const herald_header_t *header = &self->cfg.headers [i];
        if (!s_valid_header_name (header->name)) {
            snprintf (err, errlen, "channel %s: http header \"%.100s\": not a header name",
                      self->channel, header->name);
            return -1;
        }
        if (strcasecmp (header->name, "Idempotency-Key") == 0
        ||  strcasecmp (header->name, "X-Herald-Attempt") == 0) {
            snprintf (err, errlen, "channel %s: http header %s is set by Herald itself",
                      self->channel, header->name);
            return -1;
        }
        const char *value = header->value;
        if (header->value_env [0]) {
            value = getenv (header->value_env);
            if (!value) {
                snprintf (err, errlen, "channel %s: environment variable %s is not set "
                          "(http header %s)", self->channel, header->value_env, header->name);
                return -1;
            }
        }
        for (const char *p = value; *p; p++)
            if ((unsigned char) *p < 0x20 && *p != '\t') {
                snprintf (err, errlen, "channel %s: http header %s: value holds a control "
                          "character", self->channel, header->name);
                return -1;
            }
        size_t size = strlen (header->name) + strlen (value) + 3;
        char *line = malloc (size);
        if (!line) {
            snprintf (err, errlen, "channel %s: out of memory", self->channel);
            return -1;
        }
        /*  "Name;" is how libcurl sends a header with an empty value. */
        if (*value)
            snprintf (line, size, "%s: %s", header->name, value);
        else
            snprintf (line, size, "%s;", header->name);
        self->header_lines [self->header_count++] = line;
        if (strcasecmp (header->name, "Content-Type") == 0)
            self->custom_content_type = true;
    }
    return 0;
}

static void *
s_open (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx,
        char *err, size_t errlen)
{
    const herald_http_config_t *cfg = &channel->http;
    if (strncasecmp (cfg->url, "http://", 7) != 0 && strncasecmp (cfg->url, "https://", 8) != 0) {
        char shown [256];
        snprintf (err, errlen, "channel %s: http.url \"%s\" must start with http:// or https://",
                  channel->name, herald_redact (cfg->url, shown, sizeof shown));
        return NULL;
    }
    static const char *methods [] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
    bool known = !cfg->method [0];
    for (size_t i = 0; i < sizeof methods / sizeof methods [0]; i++)
        if (strcmp (cfg->method, methods [i]) == 0)
            known = true;
    if (!known) {
        snprintf (err, errlen, "channel %s: http.method \"%.20s\" is not GET, POST, PUT, PATCH "
                  "or DELETE", channel->name, cfg->method);
        return NULL;
    }
    if (cfg->ca_file [0] && access (cfg->ca_file, R_OK) != 0) {
        snprintf (err, errlen, "channel %s: http.ca_file %s cannot be read",
                  channel->name, cfg->ca_file);
        return NULL;
    }

    hd_http_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "channel %s: out of memory", channel->name);
        return NULL;
    }
    snprintf (self->channel, sizeof self->channel, "%s", channel->name);
    self->cfg = *cfg;
    if (!self->cfg.method [0])
        snprintf (self->cfg.method, sizeof self->cfg.method, "POST");
    if (self->cfg.connect_timeout_ms <= 0)
        self->cfg.connect_timeout_ms = S_DEFAULT_CONNECT;
    if (self->cfg.timeout_ms <= 0)
        self->cfg.timeout_ms = S_DEFAULT_TIMEOUT;
    char without_query [sizeof cfg->url];
    snprintf (without_query, sizeof without_query, "%.*s", (int) strcspn (cfg->url, "?#"), cfg->url);
    herald_redact (without_query, self->shown_url, sizeof self->shown_url);
    self->timer_deadline = -1;
    self->complete = complete;
    self->ctx = ctx;
    curl_global_init (CURL_GLOBAL_DEFAULT);

    char why [HERALD_ERR_MAX];
    if (s_resolve_headers (self, err, errlen))
        goto fail;
    if (cfg->body_template [0]
    && !(self->body_tmpl = hd_template_load (cfg->body_template, why, sizeof why))) {
        snprintf (err, errlen, "channel %s: http.body_template: %s", channel->name, why);
        goto fail;
    }
    if (!(self->multi = curl_multi_init ())
    ||  curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb) != CURLM_OK
    ||  curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self) != CURLM_OK
    ||  curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_timer_cb) != CURLM_OK
    ||  curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self) != CURLM_OK) {
        snprintf (err, errlen, "channel %s: cannot initialise libcurl", channel->name);
        goto fail;
    }
    return self;
fail:
    s_close ((void **) &self);
    return NULL;
}

static void
s_close (void **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_http_t *self = *self_p;
    while (self->transfers) {
        s_transfer_t *transfer = self->transfers;
        self->transfers = transfer->next;
        if (self->multi)
            curl_multi_remove_handle (self->multi, transfer->easy);
        s_transfer_destroy (&transfer);
    }
    if (self->multi)
        curl_multi_cleanup (self->multi);
    for (int i = 0; i < self->header_count; i++)
        free (self->header_lines [i]);
    free (self->sockets);
    free (self->body_tmpl);
    free (self);
    curl_global_cleanup ();
    *self_p = NULL;
}

const hd_driver_ops_t hd_http_ops = {
    .name = "http",
    .open = s_open,
    .start = s_start,
    .poll_items = s_poll_items,
    .progress = s_progress,
    .in_progress = s_in_progress,
    .close = s_close
};
