/*  http_admin: the admin page under /admin on the broker's HTTP endpoint:
    who may see what, which admin verb each page asks, and the page made of
    the answer. No I/O: http.c gives it a request and sends the broker the
    verb it names (over the same internal socket as /metrics), then gives
    it the reply; the result is a complete HTTP response.

    Pages (server-rendered HTML; one stylesheet and one script, served from
    here; a Content-Security-Policy allows nothing else):
      GET  /admin                 dashboard (the metrics verb; its script
                                  fetches /admin/api/metrics every 2 s and
                                  computes the rates between two samples)
      GET  /admin/api/metrics     the metrics verb's JSON
      GET  /admin/dead            dead letters: ?channel=NAME&page=N (dead.list)
      GET  /admin/dead/TASK_ID    one dead task: event, history (dead.show; admin_operate)
      POST /admin/dead/retry      task_id, or channel (dead.retry; admin_operate)
      POST /admin/dead/purge      task_id, or channel, and confirm (dead.purge; admin_operate)
      GET  /admin/track?id=ID     where an event is, per channel (track)
      GET  /admin/login, POST /admin/login (token), POST /admin/logout
      GET  /admin/static/...      the stylesheet, the script, the icon

    Access: without security.tokens_file every page is open (admin_operate),
    like the rest of the loopback endpoint, provided the Host header is not
    a foreign name (DNS rebinding, see http_session.h). With it, a request
    carries "Authorization: Bearer TOKEN" (scripts, curl) or the session
    cookie set by the login form (browsers); admin_read sees the dashboard,
    dead letters and tracks, admin_operate also a dead task's event
    (customer data) and the retry and purge buttons. Every POST but the
    login's must carry the page's CSRF token (a field named csrf), unless it
    is authorized by a Bearer header (which a browser never adds on its
    own); a POST whose Origin is not this endpoint is refused. */
#ifndef HERALD_HTTP_ADMIN_H
#define HERALD_HTTP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_config.h"
#include "herald_tokens.h"

#define HTTP_ADMIN_BODY_MAX     16384   /* a POST body (form) of the admin page */
#define HTTP_ADMIN_HEADERS      10      /* response headers, at most */
#define HTTP_ADMIN_PAGE_SIZE    50      /* dead letters on one page */

typedef struct http_admin http_admin_t;

/*  What one request wants until its answer is made. */
typedef struct http_admin_call http_admin_call_t;

/*  A request, as the HTTP thread sees it. Strings are borrowed for the call. */
typedef struct {
    const char *method;                 /* "GET" (HEAD too) or "POST" */
    const char *path;                   /* decoded, starting with /admin */
    const char *(*arg) (void *ctx, const char *name);     /* a query argument, decoded, or NULL */
    const char *(*header) (void *ctx, const char *name);  /* a request header, or NULL */
    void *ctx;                          /* for arg and header */
    const char *body;                   /* a POST's body (a form), body_len bytes */
    size_t body_len;
} http_admin_request_t;

typedef struct {
    const char *name;                   /* static */
    char value[700];
} http_admin_header_t;

/*  An answer to send, or a verb to ask first. */
typedef struct {
    int status;                         /* HTTP status; 0 while a verb is to be asked */
    const char *content_type;           /* static */
    char *body;                         /* NUL-terminated; the caller may take it (and free it) */
    http_admin_header_t headers[HTTP_ADMIN_HEADERS];
    size_t header_count;
    char verb[32];                      /* "" or the admin verb to ask the broker, with args */
    char *args;                         /* the verb's JSON arguments */
} http_admin_response_t;

/*  The page for config (borrowed for the result's lifetime: tokens_file,
    TLS and broker.listen.http decide access and cookies). NULL on OOM or
    without randomness. */
http_admin_t *
    http_admin_new (const herald_config_t *config);

/*  NULL-safe; nulls *self_p. */
void
    http_admin_destroy (http_admin_t **self_p);

/*  Starts answering request at now (monotonic ms); tokens is the token
    file as now read (NULL without security.tokens_file). Fills *response
    (cleared first): an answer (status set), or a verb to ask (verb set),
    whose reply then goes to http_admin_answer with *call_p, which this
    sets (NULL when no verb is asked). */
void
    http_admin_begin (http_admin_t *self, const herald_tokens_t *tokens, const http_admin_request_t *request,
                      int64_t now, http_admin_call_t **call_p, http_admin_response_t *response);

/*  The broker's reply to the verb: code (0 when it did not answer in
    time) and its JSON body (may be NULL). Fills *response with the answer. */
void
    http_admin_answer (http_admin_t *self, http_admin_call_t *call, int code, const char *body,
                       http_admin_response_t *response);

/*  NULL-safe; nulls *call_p. */
void
    http_admin_call_destroy (http_admin_call_t **call_p);

/*  Frees what response holds and zeroes it. */
void
    http_admin_response_clear (http_admin_response_t *response);

/*  Sessions held (for tests and logs). */
size_t
    http_admin_sessions (const http_admin_t *self);

#endif
