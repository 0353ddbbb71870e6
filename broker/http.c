/*  http: the broker's HTTP endpoint (contract in http.h).

    One thread runs libmicrohttpd in its external mode with epoll: it waits
    (zmq_poll) on MHD's epoll descriptor, on its DEALER to the broker's
    internal ROUTER, on an inotify watch of the token file's directory and on
    a stop eventfd, then lets MHD work. A request that needs the broker
    (POST /events, /metrics, /readyz) sends its PUBLISH or ADMIN messages,
    each with a correlation id "SLOT.ID.INDEX" naming the waiting request,
    and suspends its connection; the replies resume it. So neither side
    ever blocks the other: the broker loop sends its replies without
    waiting (through an outbox), this thread sends with ZMQ_DONTWAIT.

    Slow clients: every socket is non-blocking in one epoll set, so a
    client that trickles its headers or never finishes its body holds one
    connection and nothing else, until broker.http_timeout closes it; at
    most broker.http_max_connections are open at once. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "herald_clock.h"
#include "herald_log.h"
#include "herald_ratelimit.h"
#include "herald_tokens.h"
#include "herald_wire.h"
#include "http.h"
#include "http_admin.h"
#include "http_metrics.h"

#define S_BATCH_MAX         1000        /* events in one batch request */
#define S_BATCH_FACTOR      64          /* a batch body is at most max_event_bytes times this */
#define S_PUBLISH_WAIT_MS   60000       /* no answer from the loop by then: 503 (it always answers) */
#define S_ADMIN_WAIT_MS     5000        /* /metrics and /readyz wait this long for the loop */
#define S_TOKENS_STAT_MS    500         /* the token file is looked at this often besides inotify */
#define S_POLL_MAX_MS       500

#define S_JSON              "application/json"

typedef enum {
    S_PUBLIC = 0,                       /* no token needed */
    S_NEEDS_PRODUCER,
    S_NEEDS_ADMIN_READ,                 /* admin_read or admin_operate */
    S_PAGE                              /* the admin page decides (session cookie or token: http_admin.c) */
} s_access_t;

typedef struct s_request s_request_t;

/*  A route: method and exact path (or, with prefix, the path and what is
    under it), who may use it, and its handler, called once the request's
    body is read. */
typedef struct {
    const char *method;
    const char *path;
    s_access_t access;
    void (*handle) (http_t *self, s_request_t *request);
    bool prefix;
} s_route_t;

/*  What one event of a request became. */
typedef struct {
    int status;                         /* HTTP status of this event alone; 0 = waiting */
    char *id;                           /* the stored event's id (ACK) */
    bool duplicate;
    char *error;                        /* the refusal's reason (NACK) */
    int code;                           /* the NACK's code */
} s_result_t;

typedef enum {
    S_MODE_STRUCTURED, S_MODE_BINARY, S_MODE_BATCH
} s_mode_t;

struct s_request {
    http_t *owner;
    struct MHD_Connection *connection;
    const s_route_t *route;
    uint64_t id;                        /* unique; with slot, the correlation id */
    size_t slot;                        /* index in owner->slots while waiting, SIZE_MAX otherwise */
    s_mode_t mode;
    char *body;                         /* the request body, read so far */
    size_t len, cap, limit;
    bool too_large;                     /* the body passed limit: 413, the rest is not read */
    bool suspended;
    bool started;                       /* handle () ran */
    int64_t deadline;                   /* monotonic ms: no answer from the loop by then gives 503 */
    /*  Events of a POST /events */
    s_result_t *results;
    size_t count, waiting;
    /*  An admin verb's answer */
    int admin_code;
    char *admin_body;
    bool admin_done;
    void (*admin_then) (http_t *self, s_request_t *request);
    /*  The response, once known */
    int status;
    char *response;
    const char *content_type;
    char retry_after[16];
    char www_authenticate[120];
    /*  The admin page's */
    char *path;                         /* the decoded path */
    http_admin_call_t *page;
    http_admin_response_t page_response;
};

struct http {
    const herald_config_t *config;      /* as at start: the thread reads only what needs a restart */
    _Atomic size_t event_max;           /* broker.max_event_bytes, which a reload may change */
    void *ctx;
    char internal[96];
    void *dealer;                       /* to the broker's internal ROUTER; the thread's own */
    struct MHD_Daemon *daemon;
    int epoll_fd;                       /* MHD's */
    int stop_fd;                        /* eventfd: http_destroy asks the thread to end */
    pthread_t thread;
    bool running;
    char *tls_cert, *tls_key;           /* PEM text, for MHD */
    /*  Tokens */
    herald_tokens_t *tokens;
    bool tokens_on;                     /* security.tokens_file is set */
    int inotify_fd;                     /* watch on the token file's directory, -1 = none */
    char tokens_name[HERALD_PATH_MAX];  /* the file's base name, for inotify events */
    struct stat tokens_stat;            /* as last read (st_ino 0: missing) */
    int64_t tokens_checked;             /* monotonic ms of the last stat */
    /*  Requests waiting for the broker */
    s_request_t **slots;
    size_t slot_count;
    uint64_t next_id;
    http_process_t process;
    herald_ratelimit_t log_limit;
    http_admin_t *admin;                /* the admin page: routes, sessions */
};

static void s_events (http_t *self, s_request_t *request);
static void s_metrics (http_t *self, s_request_t *request);
static void s_healthz (http_t *self, s_request_t *request);
static void s_readyz (http_t *self, s_request_t *request);
static void s_page (http_t *self, s_request_t *request);

static const s_route_t s_routes[] = {
    { "POST", "/events",  S_NEEDS_PRODUCER,   s_events,  false },
    { "GET",  "/metrics", S_NEEDS_ADMIN_READ, s_metrics, false },
    { "GET",  "/healthz", S_PUBLIC,           s_healthz, false },
    { "GET",  "/readyz",  S_PUBLIC,           s_readyz,  false },
    { "GET",  "/admin",   S_PAGE,             s_page,    true },
    { "POST", "/admin",   S_PAGE,             s_page,    true },
};

#define S_ROUTES (sizeof s_routes / sizeof s_routes[0])

//  --------------------------------------------------------------------------
//  Responses

/*  Sets the response: status and a body (taken). */
static void
s_set_response (s_request_t *request, int status, const char *content_type, char *body)
{
    free (request->response);
    request->status = status;
    request->content_type = content_type;
    request->response = body;
}

/*  A JSON error {"error": text, "code": code} with status. */
static void
s_error (s_request_t *request, int status, int code, const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

static void
s_error (s_request_t *request, int status, int code, const char *fmt, ...)
{
    char text[HP_MAX_TEXT + 1];
    va_list args;
    va_start (args, fmt);
    vsnprintf (text, sizeof text, fmt, args);
    va_end (args);
    json_t *body = json_pack ("{s:s, s:i}", "error", text, "code", code);
    s_set_response (request, status, S_JSON, json_dumps (body, JSON_COMPACT));
    json_decref (body);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        snprintf (request->retry_after, sizeof request->retry_after, "1");
    if (status == MHD_HTTP_INSUFFICIENT_STORAGE)
        snprintf (request->retry_after, sizeof request->retry_after, "10");
}

static enum MHD_Result
s_queue (struct MHD_Connection *connection, s_request_t *request)
{
    const char *body = request->response? request->response: "";
    struct MHD_Response *response = MHD_create_response_from_buffer (strlen (body), (void *) body,
                                                                     MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             request->content_type? request->content_type: S_JSON);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (request->retry_after[0])
        MHD_add_response_header (response, MHD_HTTP_HEADER_RETRY_AFTER, request->retry_after);
    if (request->www_authenticate[0])
        MHD_add_response_header (response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, request->www_authenticate);
    if (request->status == MHD_HTTP_METHOD_NOT_ALLOWED && request->route && request->route->access != S_PAGE)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, request->route->method);
    else
    if (request->status == MHD_HTTP_METHOD_NOT_ALLOWED && request->route && !request->page_response.header_count)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, POST");
    for (size_t i = 0; i < request->page_response.header_count; i++)
        MHD_add_response_header (response, request->page_response.headers[i].name,
                                 request->page_response.headers[i].value);
    enum MHD_Result rc = MHD_queue_response (connection, (unsigned) request->status, response);
    MHD_destroy_response (response);
    return rc;
}

/*  HTTP status for a NACK code (PROTOCOL.md, "HTTP binding"). */
static int
s_status_of (int code)
{
    switch (code) {
        case HP_CODE_BAD_REQUEST:
        case HP_CODE_UNAUTHORIZED:
        case HP_CODE_FORBIDDEN:
        case HP_CODE_NOT_FOUND:
        case HP_CODE_TOO_LARGE:
        case HP_CODE_INVALID_EVENT:
        case HP_CODE_UNKNOWN_TYPE:
        case HP_CODE_BUSY:
        case HP_CODE_STORAGE:
            return code;
        default:
            return code >= 400 && code < 500? 400: 500;
    }
}

//  --------------------------------------------------------------------------
//  Tokens

static void
s_tokens_reload (http_t *self, const char *why)
{
    char err[HERALD_ERR_MAX];
    struct stat st;
    if (stat (self->config->security.tokens_file, &st) != 0)
        memset (&st, 0, sizeof st);
    if (herald_tokens_load (self->tokens, self->config->security.tokens_file, err, sizeof err) != 0) {
        /*  Fail closed: a file that cannot be read lets no token in. */
        herald_tokens_t *empty = herald_tokens_new ();
        if (empty) {
            herald_tokens_destroy (&self->tokens);
            self->tokens = empty;
        }
        char quoted[HERALD_ERR_MAX + 16];
        herald_error ("http: token file unreadable: every token refused until it is fixed", "error=%s",
                      herald_log_quote (err, quoted, sizeof quoted));
    }
    else
        herald_info ("http: tokens read", "file=%s tokens=%zu why=%s", self->config->security.tokens_file,
                     herald_tokens_count (self->tokens), why);
    self->tokens_stat = st;
}

/*  Reads the token file again if it changed since last read. */
static void
s_tokens_check (http_t *self, int64_t now, bool force)
{
    if (!self->tokens_on || (!force && now - self->tokens_checked < S_TOKENS_STAT_MS))
        return;
    self->tokens_checked = now;
    struct stat st;
    if (stat (self->config->security.tokens_file, &st) != 0)
        memset (&st, 0, sizeof st);
    const struct stat *old = &self->tokens_stat;
    if (force || st.st_ino != old->st_ino || st.st_dev != old->st_dev || st.st_size != old->st_size
    ||  st.st_mtim.tv_sec != old->st_mtim.tv_sec || st.st_mtim.tv_nsec != old->st_mtim.tv_nsec
    ||  st.st_ctim.tv_sec != old->st_ctim.tv_sec || st.st_ctim.tv_nsec != old->st_ctim.tv_nsec)
        s_tokens_reload (self, force? "changed": "stat");
}

/*  Drains inotify: a change to the token file's name reads it again now. */
static void
s_tokens_notified (http_t *self)
{
    char buf[4096] __attribute__ ((aligned (__alignof__ (struct inotify_event))));
    bool changed = false;
    for (;;) {
        ssize_t n = read (self->inotify_fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n; ) {
            const struct inotify_event *event = (const struct inotify_event *) p;
            if (event->len && strcmp (event->name, self->tokens_name) == 0)
                changed = true;
            if (event->mask & IN_Q_OVERFLOW)
                changed = true;
            p += sizeof *event + event->len;
        }
    }
    if (changed)
        s_tokens_check (self, herald_clock_mono_ms (), true);
}

/*  Whether the request may use its route: 0, or sets a 401/403 response. */
static int
s_authorize (http_t *self, s_request_t *request)
{
    if (request->route->access == S_PUBLIC || request->route->access == S_PAGE || !self->tokens_on)
        return 0;
    s_tokens_check (self, herald_clock_mono_ms (), false);
    const char *header = MHD_lookup_connection_value (request->connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_AUTHORIZATION);
    if (!header || strncasecmp (header, "Bearer ", 7) != 0) {
        snprintf (request->www_authenticate, sizeof request->www_authenticate, "Bearer realm=\"herald\"");
        s_error (request, MHD_HTTP_UNAUTHORIZED, HP_CODE_UNAUTHORIZED,
                 "%s: send \"Authorization: Bearer TOKEN\" (a token made by herald token new)",
                 header? "the Authorization header is not a Bearer token": "no token");
        return -1;
    }
    const char *token = header + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen (token);
    while (len > 0 && token[len - 1] == ' ')
        len--;
    const herald_token_t *found = herald_tokens_check (self->tokens, token, len);
    if (!found) {
        snprintf (request->www_authenticate, sizeof request->www_authenticate,
                  "Bearer realm=\"herald\", error=\"invalid_token\"");
        s_error (request, MHD_HTTP_UNAUTHORIZED, HP_CODE_UNAUTHORIZED,
                 "the token is not valid (unknown or revoked)");
        return -1;
    }
    bool allowed = request->route->access == S_NEEDS_PRODUCER? found->role == HERALD_ROLE_PRODUCER
                 : (found->role & (HERALD_ROLE_ADMIN_READ | HERALD_ROLE_ADMIN_OPERATE)) != 0;
    if (!allowed) {
        s_error (request, MHD_HTTP_FORBIDDEN, HP_CODE_FORBIDDEN, "token '%s' (%s) may not use %s %s: it needs %s",
                 found->name, herald_token_role_name (found->role), request->route->method, request->route->path,
                 request->route->access == S_NEEDS_PRODUCER? "the producer role"
                                                             : "the admin_read or admin_operate role");
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Talking to the broker loop

/*  Puts the request in a slot while it waits. -1 when none is free. */
static int
s_park (http_t *self, s_request_t *request, int64_t wait_ms)
{
    for (size_t i = 0; i < self->slot_count; i++)
        if (!self->slots[i]) {
            self->slots[i] = request;
            request->slot = i;
            request->id = ++self->next_id;
            request->deadline = herald_clock_mono_ms () + wait_ms;
            return 0;
        }
    return -1;
}

static void
s_unpark (http_t *self, s_request_t *request)
{
    if (request->slot != SIZE_MAX && request->slot < self->slot_count && self->slots[request->slot] == request)
        self->slots[request->slot] = NULL;
    request->slot = SIZE_MAX;
}

static void
s_corr (const s_request_t *request, size_t index, char *corr, size_t size)
{
    snprintf (corr, size, "%zu.%" PRIu64 ".%zu", request->slot, request->id, index);
}

/*  Sends one message to the loop. 0, or -1 (its pipe is full: busy). */
static int
s_send (http_t *self, const hp_msg_t *msg)
{
    return hw_send (self->dealer, (hp_str_t) { NULL, 0 }, msg, ZMQ_DONTWAIT);
}

/*  Asks the loop an admin verb with args (JSON); then (self, request) runs
    with the answer in request->admin_code / admin_body (admin_code 0: no
    answer in time). */
static bool
s_admin_with (http_t *self, s_request_t *request, const char *verb, const char *args,
              void (*then) (http_t *, s_request_t *))
{
    if (s_park (self, request, S_ADMIN_WAIT_MS) != 0) {
        s_error (request, MHD_HTTP_SERVICE_UNAVAILABLE, HP_CODE_BUSY, "busy: too many requests wait for the broker");
        return false;
    }
    char corr[64];
    s_corr (request, 0, corr, sizeof corr);
    hp_msg_t msg = { .command = HP_ADMIN, .corr = hp_str (corr), .verb = hp_str (verb), .body = hp_str (args) };
    request->admin_then = then;
    if (s_send (self, &msg) != 0) {
        s_unpark (self, request);
        s_error (request, MHD_HTTP_SERVICE_UNAVAILABLE, HP_CODE_BUSY, "busy: the broker's queue is full");
        return false;
    }
    return true;
}

static bool
s_admin (http_t *self, s_request_t *request, const char *verb, void (*then) (http_t *, s_request_t *))
{
    return s_admin_with (self, request, verb, "{}", then);
}

/*  Resumes a request whose answer is complete. */
static void
s_resume (http_t *self, s_request_t *request)
{
    s_unpark (self, request);
    if (request->suspended) {
        request->suspended = false;
        MHD_resume_connection (request->connection);
    }
}

/*  The batch or single answer of a POST /events, once every event has its result. */
static void
s_events_answer (http_t *self, s_request_t *request)
{
    if (request->mode != S_MODE_BATCH) {
        s_result_t *result = &request->results[0];
        if (result->id) {
            json_t *body = json_pack ("{s:s, s:s}", "id", result->id, "status", result->duplicate? "duplicate": "new");
            s_set_response (request, result->status, S_JSON, json_dumps (body, JSON_COMPACT));
            json_decref (body);
        }
        else
            s_error (request, result->status, result->code, "%s", result->error? result->error: "refused");
        return;
    }
    json_t *results = json_array ();
    size_t stored = 0;
    for (size_t i = 0; i < request->count; i++) {
        s_result_t *result = &request->results[i];
        if (result->id) {
            stored++;
            json_array_append_new (results, json_pack ("{s:s, s:s, s:i}", "id", result->id, "status",
                                                       result->duplicate? "duplicate": "new", "code", result->status));
        }
        else
            json_array_append_new (results, json_pack ("{s:s, s:i}", "error", result->error? result->error: "refused",
                                                       "code", result->code));
    }
    json_t *body = json_pack ("{s:o, s:I, s:I}", "results", results, "stored", (json_int_t) stored,
                              "refused", (json_int_t) (request->count - stored));
    s_set_response (request, MHD_HTTP_OK, S_JSON, json_dumps (body, JSON_COMPACT));
    json_decref (body);
    (void) self;
}

static void
s_result_set (s_request_t *request, size_t index, int status, const char *id, bool duplicate, int code,
              const char *error)
{
    s_result_t *result = &request->results[index];
    if (result->status)
        return;
    result->status = status;
    result->id = id? strdup (id): NULL;
    result->duplicate = duplicate;
    result->code = code;
    result->error = error? strdup (error): NULL;
    request->waiting--;
}

/*  A reply from the loop: ACK, NACK or ADMIN-REPLY for "SLOT.ID.INDEX". */
static void
s_reply (http_t *self, const hp_msg_t *msg)
{
    char corr[HP_MAX_CORR + 1];
    hp_str_copy (msg->corr, corr, sizeof corr);
    size_t slot, index;
    uint64_t id;
    char tail;
    if (sscanf (corr, "%zu.%" SCNu64 ".%zu%c", &slot, &id, &index, &tail) != 3 || slot >= self->slot_count)
        return;
    s_request_t *request = self->slots[slot];
    if (!request || request->id != id)
        return;                 /* answered already (timed out): the event, if stored, stays stored */
    if (msg->command == HP_ADMIN_REPLY) {
        request->admin_code = msg->code;
        free (request->admin_body);
        request->admin_body = strndup (msg->body.ptr? msg->body.ptr: "", msg->body.len);
        request->admin_done = true;
        request->admin_then (self, request);
        s_resume (self, request);
        return;
    }
    if (index >= request->count)
        return;
    if (msg->command == HP_ACK) {
        char event_id[HP_MAX_ID + 1];
        hp_str_copy (msg->event_id, event_id, sizeof event_id);
        s_result_set (request, index, msg->duplicate? MHD_HTTP_OK: MHD_HTTP_CREATED, event_id, msg->duplicate, 0, NULL);
    }
    else
    if (msg->command == HP_NACK) {
        char text[HP_MAX_TEXT + 1];
        hp_str_copy (msg->text, text, sizeof text);
        s_result_set (request, index, s_status_of (msg->code), NULL, false, msg->code, text);
    }
    if (request->waiting == 0) {
        s_events_answer (self, request);
        s_resume (self, request);
    }
}

/*  Requests the loop has not answered in time (it always answers; this
    is for a loop stuck on a disk that never returns). */
static void
s_expire (http_t *self, int64_t now)
{
    for (size_t i = 0; i < self->slot_count; i++) {
        s_request_t *request = self->slots[i];
        if (!request || now < request->deadline)
            continue;
        if (request->admin_then) {
            request->admin_code = 0;
            request->admin_then (self, request);
        }
        else {
            for (size_t e = 0; e < request->count; e++)
                s_result_set (request, e, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, false, HP_CODE_BUSY,
                              "no answer from the broker in time: the event may or may not be stored; "
                              "publish it again with the same id or key");
            s_events_answer (self, request);
        }
        s_resume (self, request);
    }
}

//  --------------------------------------------------------------------------
//  POST /events

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char) (c | 0x20);
    return c >= 'a' && c <= 'f'? c - 'a' + 10: -1;
}

/*  Percent-decodes a ce-* header value (CloudEvents HTTP binding, 3.1.3.2). */
static char *
s_percent_decode (const char *text)
{
    size_t len = strlen (text);
    char *out = malloc (len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi = text[i] == '%' && i + 2 < len + 1? s_hex (text[i + 1]): -1;
        int lo = hi >= 0? s_hex (text[i + 2]): -1;
        if (lo >= 0) {
            out[o++] = (char) (hi << 4 | lo);
            i += 2;
        }
        else
            out[o++] = text[i];
    }
    out[o] = '\0';
    return out;
}

typedef struct {
    json_t *envelope;
    char error[200];
} s_binary_t;

static enum MHD_Result
s_binary_header (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    s_binary_t *binary = cls;
    (void) kind;
    if (strncasecmp (key, "ce-", 3) != 0 || !key[3])
        return MHD_YES;
    char name[64];
    size_t n = 0;
    for (const char *p = key + 3; *p && n + 1 < sizeof name; p++)
        name[n++] = (char) ((*p >= 'A' && *p <= 'Z')? *p + 32: *p);
    name[n] = '\0';
    if (strcmp (name, "data") == 0 || strcmp (name, "data_base64") == 0 || strcmp (name, "datacontenttype") == 0) {
        snprintf (binary->error, sizeof binary->error, "header %s: not a CloudEvents attribute header (the body "
                  "is the data; Content-Type says its type)", key);
        return MHD_NO;
    }
    char *decoded = s_percent_decode (value? value: "");
    if (!decoded || json_object_set_new (binary->envelope, name, json_string (decoded)) != 0) {
        snprintf (binary->error, sizeof binary->error, "header %s: its value is not valid UTF-8", key);
        free (decoded);
        return MHD_NO;
    }
    free (decoded);
    return MHD_YES;
}

static bool
s_json_type (const char *content_type)
{
    if (!content_type)
        return false;
    size_t len = strcspn (content_type, ";");
    while (len > 0 && content_type[len - 1] == ' ')
        len--;
    return (len == 16 && strncasecmp (content_type, "application/json", 16) == 0)
        || (len == 9 && strncasecmp (content_type, "text/json", 9) == 0)
        || (len > 5 && strncasecmp (content_type + len - 5, "+json", 5) == 0);
}

/*  Binary mode: the ce-* headers are the attributes, the body the data.
    The envelope, or NULL with a 400 response set. */
static char *
s_binary_envelope (s_request_t *request)
{
    s_binary_t binary = { .envelope = json_object () };
    MHD_get_connection_values (request->connection, MHD_HEADER_KIND, s_binary_header, &binary);
    if (binary.error[0]) {
        json_decref (binary.envelope);
        s_error (request, MHD_HTTP_BAD_REQUEST, HP_CODE_BAD_REQUEST, "%s", binary.error);
        return NULL;
    }
    const char *content_type = MHD_lookup_connection_value (request->connection, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_CONTENT_TYPE);
    if (content_type)
        json_object_set_new (binary.envelope, "datacontenttype", json_string (content_type));
    if (request->len > 0) {
        json_t *data = NULL;
        if (s_json_type (content_type)) {
            json_error_t jerr;
            data = json_loadb (request->body, request->len, JSON_DECODE_ANY, &jerr);
            if (!data) {
                json_decref (binary.envelope);
                s_error (request, MHD_HTTP_BAD_REQUEST, HP_CODE_BAD_REQUEST,
                         "body: not valid JSON (Content-Type %s): %s at line %d column %d", content_type, jerr.text,
                         jerr.line, jerr.column);
                return NULL;
            }
            json_object_set_new (binary.envelope, "data", data);
        }
        else {
            data = json_stringn (request->body, request->len);
            if (data)
                json_object_set_new (binary.envelope, "data", data);
            else {
                /*  Not text: data_base64 (CloudEvents JSON format, 3.1). */
                size_t out_len = ((request->len + 2) / 3) * 4 + 1;
                char *b64 = malloc (out_len);
                static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                size_t o = 0;
                const unsigned char *in = (const unsigned char *) request->body;
                for (size_t i = 0; b64 && i < request->len; i += 3) {
                    uint32_t v = (uint32_t) in[i] << 16 | (i + 1 < request->len? (uint32_t) in[i + 1] << 8: 0)
                               | (i + 2 < request->len? in[i + 2]: 0);
                    b64[o++] = table[v >> 18 & 63];
                    b64[o++] = table[v >> 12 & 63];
                    b64[o++] = i + 1 < request->len? table[v >> 6 & 63]: '=';
                    b64[o++] = i + 2 < request->len? table[v & 63]: '=';
                }
                if (b64) {
                    b64[o] = '\0';
                    json_object_set_new (binary.envelope, "data_base64", json_string (b64));
                }
                free (b64);
            }
        }
    }
    char *text = json_dumps (binary.envelope, JSON_COMPACT);
    json_decref (binary.envelope);
    if (!text)
        s_error (request, MHD_HTTP_INTERNAL_SERVER_ERROR, HP_CODE_INTERNAL, "out of memory");
    return text;
}

/*  Sends event number index (text, len) as a PUBLISH. */
static void
s_publish (http_t *self, s_request_t *request, size_t index, const char *text, size_t len)
{
    char corr[64];
    s_corr (request, index, corr, sizeof corr);
    hp_msg_t msg = { .command = HP_PUBLISH, .corr = hp_str (corr), .body = hp_strn (text, len) };
    if (len == 0)
        s_result_set (request, index, MHD_HTTP_BAD_REQUEST, NULL, false, HP_CODE_BAD_REQUEST, "empty event");
    else
    if (s_send (self, &msg) != 0)
        s_result_set (request, index, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, false, HP_CODE_BUSY,
                      "busy: the broker's queue is full; publish again later");
}

static void
s_events (http_t *self, s_request_t *request)
{
    if (request->too_large)
        return;
    json_t *batch = NULL;
    char *binary = NULL;
    if (request->mode == S_MODE_BATCH) {
        json_error_t jerr;
        batch = json_loadb (request->body, request->len, 0, &jerr);
        if (!json_is_array (batch)) {
            if (batch)
                s_error (request, MHD_HTTP_BAD_REQUEST, HP_CODE_BAD_REQUEST, "a batch is a JSON array of events");
            else
                s_error (request, MHD_HTTP_BAD_REQUEST, HP_CODE_BAD_REQUEST, "body: not valid JSON: %s at line %d "
                         "column %d", jerr.text, jerr.line, jerr.column);
            json_decref (batch);
            return;
        }
        request->count = json_array_size (batch);
        if (request->count == 0 || request->count > S_BATCH_MAX) {
            s_error (request, request->count? MHD_HTTP_CONTENT_TOO_LARGE: MHD_HTTP_BAD_REQUEST,
                     request->count? HP_CODE_TOO_LARGE: HP_CODE_BAD_REQUEST,
                     "a batch holds 1 to %d events, this one %zu", S_BATCH_MAX, request->count);
            json_decref (batch);
            return;
        }
    }
    else {
        if (request->mode == S_MODE_BINARY && !(binary = s_binary_envelope (request)))
            return;
        request->count = 1;
    }
    request->results = calloc (request->count, sizeof *request->results);
    if (!request->results || s_park (self, request, S_PUBLISH_WAIT_MS) != 0) {
        json_decref (batch);
        free (binary);
        if (request->results)
            s_error (request, MHD_HTTP_SERVICE_UNAVAILABLE, HP_CODE_BUSY, "busy: too many requests wait for the broker");
        else
            s_error (request, MHD_HTTP_INTERNAL_SERVER_ERROR, HP_CODE_INTERNAL, "out of memory");
        return;
    }
    request->waiting = request->count;
    if (batch) {
        for (size_t i = 0; i < request->count; i++) {
            json_t *event = json_array_get (batch, i);
            if (!json_is_object (event)) {
                s_result_set (request, i, MHD_HTTP_BAD_REQUEST, NULL, false, HP_CODE_BAD_REQUEST,
                              "a batch's entries are events (JSON objects)");
                continue;
            }
            char *text = json_dumps (event, JSON_COMPACT);
            s_publish (self, request, i, text? text: "", text? strlen (text): 0);
            free (text);
        }
        json_decref (batch);
    }
    else
    if (binary) {
        s_publish (self, request, 0, binary, strlen (binary));
        free (binary);
    }
    else
        s_publish (self, request, 0, request->body, request->len);
    if (request->waiting == 0) {
        s_unpark (self, request);
        s_events_answer (self, request);
    }
}

//  --------------------------------------------------------------------------
//  GET /metrics, /healthz, /readyz

static void
s_metrics_answered (http_t *self, s_request_t *request)
{
    if (request->admin_code != HP_CODE_OK) {
        s_error (request, MHD_HTTP_SERVICE_UNAVAILABLE, HP_CODE_BUSY, "the broker did not answer the metrics request%s",
                 request->admin_code? "": " in time");
        return;
    }
    char err[200];
    http_process_read (&self->process);
    char *text = http_metrics_render (request->admin_body, strlen (request->admin_body), &self->process, err,
                                      sizeof err);
    if (!text)
        s_error (request, MHD_HTTP_INTERNAL_SERVER_ERROR, HP_CODE_INTERNAL, "%s", err);
    else
        s_set_response (request, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
}

static void
s_metrics (http_t *self, s_request_t *request)
{
    s_admin (self, request, "metrics", s_metrics_answered);
}

static void
s_healthz (http_t *self, s_request_t *request)
{
    s_set_response (request, MHD_HTTP_OK, S_JSON, strdup ("{\"status\":\"ok\"}"));
    (void) self;
}

static void
s_readyz_answered (http_t *self, s_request_t *request)
{
    json_t *failing = json_array ();
    json_t *status = request->admin_code == HP_CODE_OK? json_loads (request->admin_body, 0, NULL): NULL;
    if (!status)
        json_array_append_new (failing, json_string (request->admin_code? "broker: its status answer is unreadable"
                                                     : "broker: the loop did not answer in time"));
    else {
        json_t *broker = json_object_get (status, "broker");
        if (json_is_true (json_object_get (broker, "store_full")))
            json_array_append_new (failing, json_string ("store: full, new events are refused"));
        size_t i;
        json_t *channel;
        json_array_foreach (json_object_get (status, "channels"), i, channel)
            if (json_integer_value (json_object_get (channel, "workers")) < 1) {
                char text[200];
                snprintf (text, sizeof text, "channel %s: no worker connected",
                          json_string_value (json_object_get (channel, "name")));
                json_array_append_new (failing, json_string (text));
            }
    }
    json_decref (status);
    bool ready = json_array_size (failing) == 0;
    json_t *body = json_pack ("{s:s, s:o}", "status", ready? "ready": "not ready", "failing", failing);
    s_set_response (request, ready? MHD_HTTP_OK: MHD_HTTP_SERVICE_UNAVAILABLE, S_JSON, json_dumps (body, JSON_COMPACT));
    json_decref (body);
    (void) self;
}

static void
s_readyz (http_t *self, s_request_t *request)
{
    s_admin (self, request, "status", s_readyz_answered);
}

//  --------------------------------------------------------------------------
//  /admin: the admin page (http_admin.c); here only what MHD knows

static const char *
s_page_arg (void *ctx, const char *name)
{
    return MHD_lookup_connection_value (((s_request_t *) ctx)->connection, MHD_GET_ARGUMENT_KIND, name);
}

static const char *
s_page_header (void *ctx, const char *name)
{
    return MHD_lookup_connection_value (((s_request_t *) ctx)->connection, MHD_HEADER_KIND, name);
}

/*  The page's answer becomes the response (its headers go out in s_queue). */
static void
s_page_respond (s_request_t *request)
{
    http_admin_response_t *page = &request->page_response;
    s_set_response (request, page->status, page->content_type, page->body);
    page->body = NULL;
}

static void
s_page_answered (http_t *self, s_request_t *request)
{
    http_admin_answer (self->admin, request->page, request->admin_code, request->admin_body, &request->page_response);
    s_page_respond (request);
}

static void
s_page (http_t *self, s_request_t *request)
{
    int64_t now = herald_clock_mono_ms ();
    s_tokens_check (self, now, false);
    http_admin_request_t in = { .method = request->route->method, .path = request->path, .arg = s_page_arg,
                                .header = s_page_header, .ctx = request, .body = request->body,
                                .body_len = request->len };
    http_admin_begin (self->admin, self->tokens_on? self->tokens: NULL, &in, now, &request->page,
                      &request->page_response);
    if (request->page_response.verb[0])
        s_admin_with (self, request, request->page_response.verb, request->page_response.args, s_page_answered);
    else
        s_page_respond (request);
}

//  --------------------------------------------------------------------------
//  MHD callbacks

static bool
s_path_matches (const s_route_t *route, const char *url)
{
    size_t len = strlen (route->path);
    return strcmp (url, route->path) == 0 || (route->prefix && strncmp (url, route->path, len) == 0 && url[len] == '/');
}

static const s_route_t *
s_route (const char *method, const char *url, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < S_ROUTES; i++)
        if (s_path_matches (&s_routes[i], url)) {
            *path_known = true;
            if (strcmp (method, s_routes[i].method) == 0
            ||  (strcmp (method, "HEAD") == 0 && strcmp (s_routes[i].method, "GET") == 0))
                return &s_routes[i];
        }
    return NULL;
}

/*  Headers are in: route, method, token, content type and length. 0 to
    read the body, -1 with a response set. */
static int
s_begin (http_t *self, s_request_t *request, const char *method, const char *url)
{
    bool path_known;
    request->route = s_route (method, url, &path_known);
    if (!request->route) {
        if (path_known) {
            for (size_t i = 0; i < S_ROUTES; i++)
                if (s_path_matches (&s_routes[i], url))
                    request->route = &s_routes[i];
            s_error (request, MHD_HTTP_METHOD_NOT_ALLOWED, 405, "%s %s: use %s", method, url, request->route->method);
        }
        else
            s_error (request, MHD_HTTP_NOT_FOUND, HP_CODE_NOT_FOUND, "no route %s (POST /events, GET /metrics, "
                     "/healthz, /readyz, /admin)", url);
        return -1;
    }
    if (s_authorize (self, request) != 0)
        return -1;
    if (request->route->handle == s_page) {
        request->limit = HTTP_ADMIN_BODY_MAX;
        request->path = strdup (url);
        if (!request->path) {
            s_error (request, MHD_HTTP_INTERNAL_SERVER_ERROR, HP_CODE_INTERNAL, "out of memory");
            return -1;
        }
        return 0;
    }
    if (request->route->handle != s_events)
        return 0;
    const char *content_type = MHD_lookup_connection_value (request->connection, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t type_len = content_type? strcspn (content_type, ";"): 0;
    while (type_len > 0 && content_type[type_len - 1] == ' ')
        type_len--;
    size_t event_max = atomic_load_explicit (&self->event_max, memory_order_relaxed);
    static const char structured[] = "application/cloudevents+json", batch[] = "application/cloudevents-batch+json";
    if (type_len == sizeof structured - 1 && strncasecmp (content_type, structured, type_len) == 0)
        request->mode = S_MODE_STRUCTURED;
    else
    if (type_len == sizeof batch - 1 && strncasecmp (content_type, batch, type_len) == 0)
        request->mode = S_MODE_BATCH;
    else
    if (MHD_lookup_connection_value (request->connection, MHD_HEADER_KIND, "ce-specversion"))
        request->mode = S_MODE_BINARY;
    else {
        s_error (request, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, 415,
                 "Content-Type %s: send application/cloudevents+json (one event), "
                 "application/cloudevents-batch+json (a JSON array of events), or the data with ce-specversion, "
                 "ce-id, ce-source and ce-type headers (binary mode)", content_type? content_type: "missing");
        return -1;
    }
    request->limit = request->mode == S_MODE_BATCH? event_max * S_BATCH_FACTOR: event_max;
    const char *length = MHD_lookup_connection_value (request->connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end = NULL;
        errno = 0;
        unsigned long long declared = strtoull (length, &end, 10);
        if (errno == 0 && end && *end == '\0' && declared > request->limit) {
            request->too_large = true;
            s_error (request, MHD_HTTP_CONTENT_TOO_LARGE, HP_CODE_TOO_LARGE,
                     "body of %llu bytes: above %zu (broker.max_event_bytes%s)", declared, request->limit,
                     request->mode == S_MODE_BATCH? " x 64 for a batch": "");
            return -1;
        }
    }
    return 0;
}

static enum MHD_Result
s_handler (void *cls, struct MHD_Connection *connection, const char *url, const char *method, const char *version,
           const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    http_t *self = cls;
    s_request_t *request = *con_cls;
    (void) version;
    if (!request) {
        request = calloc (1, sizeof *request);
        if (!request)
            return MHD_NO;
        request->owner = self;
        request->connection = connection;
        request->slot = SIZE_MAX;
        *con_cls = request;
        if (s_begin (self, request, method, url) != 0)
            return s_queue (connection, request);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (request->too_large || request->response)
            return MHD_YES;
        if (request->len + n > request->limit) {
            /*  A body without a length that grows past the limit: answer
                now and read no more of it (MHD closes the connection). */
            request->too_large = true;
            s_error (request, MHD_HTTP_CONTENT_TOO_LARGE, HP_CODE_TOO_LARGE, "body above %zu bytes "
                     "(broker.max_event_bytes%s)", request->limit, request->mode == S_MODE_BATCH? " x 64 for a batch": "");
            return s_queue (connection, request) == MHD_YES? MHD_YES: MHD_NO;
        }
        if (request->len + n + 1 > request->cap) {
            size_t cap = request->cap? request->cap: 4096;
            while (cap < request->len + n + 1)
                cap *= 2;
            char *grown = realloc (request->body, cap);
            if (!grown)
                return MHD_NO;
            request->body = grown;
            request->cap = cap;
        }
        memcpy (request->body + request->len, upload_data, n);
        request->len += n;
        request->body[request->len] = '\0';
        return MHD_YES;
    }
    /*  The whole request is in (or we are resumed with the answer). */
    if (!request->started && !request->response) {
        request->started = true;
        request->route->handle (self, request);
        if (!request->response) {
            MHD_suspend_connection (connection);
            request->suspended = true;
            return MHD_YES;
        }
    }
    if (!request->response)
        s_error (request, MHD_HTTP_INTERNAL_SERVER_ERROR, HP_CODE_INTERNAL, "no answer");
    return s_queue (connection, request);
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    http_t *self = cls;
    s_request_t *request = *con_cls;
    (void) connection;
    if (!request)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && request->count > 0
    &&  herald_ratelimit_allow (&self->log_limit, herald_clock_mono_ms ()))
        herald_info ("http: client gone before its answer (what was ACKed stays stored)", "code=%d events=%zu",
                     (int) toe, request->count);
    s_unpark (self, request);
    for (size_t i = 0; i < request->count && request->results; i++) {
        free (request->results[i].id);
        free (request->results[i].error);
    }
    free (request->results);
    free (request->body);
    free (request->admin_body);
    free (request->response);
    free (request->path);
    http_admin_call_destroy (&request->page);
    http_admin_response_clear (&request->page_response);
    free (request);
    *con_cls = NULL;
}

/*  libmicrohttpd's own log lines: its format, its arguments. */
static void
s_mhd_log (void *cls, const char *fmt, va_list args) __attribute__ ((format (printf, 2, 0)));

static void
s_mhd_log (void *cls, const char *fmt, va_list args)
{
    http_t *self = cls;
    if (!herald_ratelimit_allow (&self->log_limit, herald_clock_mono_ms ()))
        return;
    char text[512];
    vsnprintf (text, sizeof text, fmt, args);
    size_t len = strlen (text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    char quoted[600];
    herald_info ("http: libmicrohttpd", "detail=%s", herald_log_quote (text, quoted, sizeof quoted));
}

//  --------------------------------------------------------------------------
//  The thread

static void
s_drain_dealer (http_t *self)
{
    for (int i = 0; i < 10000; i++) {
        hw_msg_t in;
        if (hw_recv (self->dealer, false, &in, ZMQ_DONTWAIT) != 0) {
            hw_msg_close (&in);
            break;
        }
        hp_msg_t msg;
        hp_error_t err;
        if (hw_decode (&in, &msg, &err) == 0)
            s_reply (self, &msg);
        hw_msg_close (&in);
    }
}

static void *
s_run (void *arg)
{
    http_t *self = arg;
    for (;;) {
        MHD_UNSIGNED_LONG_LONG mhd_timeout = 0;
        long timeout = S_POLL_MAX_MS;
        if (MHD_get_timeout (self->daemon, &mhd_timeout) == MHD_YES && (long long) mhd_timeout < timeout)
            timeout = (long) mhd_timeout;
        for (size_t i = 0; i < self->slot_count; i++)
            if (self->slots[i]) {
                int64_t left = self->slots[i]->deadline - herald_clock_mono_ms ();
                if (left < timeout)
                    timeout = left > 0? (long) left: 0;
            }
        zmq_pollitem_t items[] = {
            { NULL, self->stop_fd, ZMQ_POLLIN, 0 },
            { self->dealer, 0, ZMQ_POLLIN, 0 },
            { NULL, self->epoll_fd, ZMQ_POLLIN, 0 },
            { NULL, self->inotify_fd, ZMQ_POLLIN, 0 },
        };
        int count = self->inotify_fd >= 0? 4: 3;
        if (zmq_poll (items, count, timeout) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            break;
        if (count == 4 && (items[3].revents & ZMQ_POLLIN))
            s_tokens_notified (self);
        s_drain_dealer (self);
        s_expire (self, herald_clock_mono_ms ());
        MHD_run (self->daemon);
    }
    /*  Stopping: the answers the loop sent are given; whoever still waits
        gets 503 (its event, if ACKed later, stays stored). */
    s_drain_dealer (self);
    for (size_t i = 0; i < self->slot_count; i++) {
        s_request_t *request = self->slots[i];
        if (!request)
            continue;
        request->deadline = 0;
    }
    s_expire (self, herald_clock_mono_ms ());
    for (int i = 0; i < 5; i++)
        MHD_run (self->daemon);
    return NULL;
}

static char *
s_read_file (const char *path, const char *key, char *err, size_t errlen)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        snprintf (err, errlen, "%s: %s: cannot open: %s", key, path, strerror (errno));
        return NULL;
    }
    char *text = malloc (1 << 20);
    size_t len = text? fread (text, 1, (1 << 20) - 1, file): 0;
    fclose (file);
    if (!text || len == 0) {
        snprintf (err, errlen, "%s: %s: %s", key, path, text? "empty": "out of memory");
        free (text);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

http_t *
http_new (void *ctx, const herald_config_t *config, const char *internal, char *err, size_t errlen)
{
    http_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "http: out of memory");
        return NULL;
    }
    self->config = config;
    atomic_init (&self->event_max, config->broker.max_event_bytes);
    self->ctx = ctx;
    self->stop_fd = -1;
    self->inotify_fd = -1;
    self->log_limit = herald_ratelimit (20, 60000);
    snprintf (self->internal, sizeof self->internal, "%s", internal);
    const herald_security_config_t *sec = &config->security;
    self->slot_count = (size_t) config->broker.http_max_connections + 16;
    self->slots = calloc (self->slot_count, sizeof *self->slots);
    self->tokens = herald_tokens_new ();
    self->stop_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    self->admin = http_admin_new (config);
    if (!self->slots || !self->tokens || self->stop_fd < 0 || !self->admin) {
        snprintf (err, errlen, "http: out of memory");
        http_destroy (&self);
        return NULL;
    }
    if (sec->tokens_file[0]) {
        self->tokens_on = true;
        if (herald_tokens_load (self->tokens, sec->tokens_file, err, errlen) != 0) {
            http_destroy (&self);
            return NULL;
        }
        if (stat (sec->tokens_file, &self->tokens_stat) != 0)
            memset (&self->tokens_stat, 0, sizeof self->tokens_stat);
        self->tokens_checked = herald_clock_mono_ms ();
        char dir[HERALD_PATH_MAX];
        snprintf (dir, sizeof dir, "%s", sec->tokens_file);
        char *slash = strrchr (dir, '/');
        snprintf (self->tokens_name, sizeof self->tokens_name, "%s", slash? slash + 1: dir);
        if (slash)
            *(slash == dir? slash + 1: slash) = '\0';
        else
            snprintf (dir, sizeof dir, ".");
        self->inotify_fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
        if (self->inotify_fd >= 0
        &&  inotify_add_watch (self->inotify_fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE
                                                      | IN_CREATE | IN_ATTRIB) < 0) {
            close (self->inotify_fd);
            self->inotify_fd = -1;      /* the stat every 500 ms still sees changes */
        }
    }
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char why[200];
    if (herald_http_address_parse (config->broker.http, &addr, &addr_len, why, sizeof why) != 0) {
        snprintf (err, errlen, "broker.listen.http: %s", why);
        http_destroy (&self);
        return NULL;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (sec->tls_cert[0]) {
        if (MHD_is_feature_supported (MHD_FEATURE_TLS) != MHD_YES) {
            snprintf (err, errlen, "security.tls_cert: this libmicrohttpd has no TLS support");
            http_destroy (&self);
            return NULL;
        }
        self->tls_cert = s_read_file (sec->tls_cert, "security.tls_cert", err, errlen);
        self->tls_key = self->tls_cert? s_read_file (sec->tls_key, "security.tls_key", err, errlen): NULL;
        if (!self->tls_key) {
            http_destroy (&self);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    unsigned timeout_s = (unsigned) ((config->broker.http_timeout_ms + 999) / 1000);
    if (self->tls_cert)
        self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_handler, self,
            MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned) config->broker.http_max_connections,
            MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
            MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
            MHD_OPTION_HTTPS_MEM_CERT, self->tls_cert,
            MHD_OPTION_HTTPS_MEM_KEY, self->tls_key,
            MHD_OPTION_END);
    else
        self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_handler, self,
            MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned) config->broker.http_max_connections,
            MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
            MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
            MHD_OPTION_END);
    if (!self->daemon) {
        snprintf (err, errlen, "broker.listen.http: cannot serve HTTP on %s: %s%s", config->broker.http,
                  errno? strerror (errno): "libmicrohttpd refused to start",
                  self->tls_cert? " (or the TLS certificate and key do not load)": "");
        http_destroy (&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    self->epoll_fd = info? info->epoll_fd: -1;
    hw_options_t options = { .hwm = 100000, .max_msg_size = -1, .linger_ms = 0 };
    self->dealer = self->epoll_fd >= 0? hw_socket_new (ctx, HW_CLIENT_DEALER, internal, &options, err, errlen): NULL;
    if (!self->dealer) {
        if (self->epoll_fd < 0)
            snprintf (err, errlen, "http: libmicrohttpd gave no epoll descriptor");
        http_destroy (&self);
        return NULL;
    }
    if (pthread_create (&self->thread, NULL, s_run, self) != 0) {
        snprintf (err, errlen, "http: cannot start a thread: %s", strerror (errno));
        http_destroy (&self);
        return NULL;
    }
    self->running = true;
    herald_info ("http: serving", "address=%s tls=%s tokens=%s max_connections=%d timeout_ms=%lld", config->broker.http,
                 self->tls_cert? "on": "off", self->tokens_on? sec->tokens_file: "off (every request allowed)",
                 config->broker.http_max_connections, (long long) config->broker.http_timeout_ms);
    return self;
}

void
http_destroy (http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_t *self = *self_p;
    if (self->running) {
        uint64_t one = 1;
        ssize_t n = write (self->stop_fd, &one, sizeof one);
        (void) n;
        pthread_join (self->thread, NULL);
    }
    if (self->daemon)
        MHD_stop_daemon (self->daemon);
    if (self->dealer)
        zmq_close (self->dealer);
    if (self->stop_fd >= 0)
        close (self->stop_fd);
    if (self->inotify_fd >= 0)
        close (self->inotify_fd);
    herald_tokens_destroy (&self->tokens);
    http_admin_destroy (&self->admin);
    free (self->slots);
    if (self->tls_key)
        explicit_bzero (self->tls_key, strlen (self->tls_key));
    free (self->tls_key);
    free (self->tls_cert);
    free (self);
    *self_p = NULL;
}

void
http_set_event_max (http_t *self, size_t bytes)
{
    if (self)
        atomic_store_explicit (&self->event_max, bytes, memory_order_relaxed);
}
