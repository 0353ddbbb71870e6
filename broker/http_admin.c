/*  http_admin: the admin page's access rules, routes and verbs (contract in
    http_admin.h; the HTML is http_admin_render.c's, the sessions
    http_session.c's).

    Order of the checks for every request: static files (public); the Host
    header when there are no tokens (DNS rebinding); a POST's Origin; the
    login form; who asks (a Bearer header, else the session cookie, else
    nobody: to the login form); their role for the route; a POST's CSRF
    token. Only then is a verb asked. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald_log.h"
#include "http_admin.h"
#include "http_admin_render.h"
#include "http_html.h"
#include "http_session.h"

/*  The files of broker/admin_page/, embedded at build time (NUL-terminated). */
extern const char herald_admin_css[];
extern const char herald_admin_js[];
extern const char herald_admin_icon_svg[];

#define S_ID_MAX        128             /* a task or event id, as the protocol bounds them */
#define S_PAGE_MAX      1999            /* dead.list returns at most 100,000 tasks */
#define S_HTML          "text/html; charset=utf-8"
#define S_JSON          "application/json"

/*  Allows what the broker serves, and nothing else: no inline script or
    style, no other origin, no framing. */
#define S_CSP           "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " \
                        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

typedef enum {
    S_DASHBOARD, S_API_METRICS, S_DEAD_LIST, S_DEAD_SHOW, S_TRACK, S_RETRY, S_PURGE
} s_page_t;

/*  Who asks, once known. */
typedef struct {
    unsigned role;                      /* HERALD_ROLE_ADMIN_READ or _OPERATE */
    bool session;                       /* through the login form's cookie */
    bool bearer;                        /* through an Authorization header: no CSRF possible */
    char who[HERALD_TOKEN_NAME_MAX + 24];   /* "NAME (role)", "" when open */
    char name[HERALD_TOKEN_NAME_MAX];       /* the token's name, "" when open */
    char csrf[HTTP_SESSION_TEXT];
} s_who_t;

struct http_admin_call {
    s_page_t page;
    s_who_t who;
    char channel[HERALD_NAME_MAX];      /* dead list filter; retry/purge of a channel */
    long page_number;                   /* dead list page, from 1 */
    char id[S_ID_MAX + 1];              /* task id (show, retry, purge) or event id (track) */
    char event_id[S_ID_MAX + 1];        /* retry of one task from its page: show the event's track after */
    const char *notice;                 /* "retried", "purged" (from the query), or NULL */
    long count;
};

struct http_admin {
    const herald_config_t *config;
    bool tokens_on;                     /* security.tokens_file is set */
    bool tls;                           /* HTTPS: cookies are Secure, origins https:// */
    char listen_host[256];              /* broker.listen.http's host, for the Host check */
    char open_csrf[HTTP_SESSION_TEXT];  /* the CSRF token of the pages without tokens */
    http_sessions_t *sessions;
};

http_admin_t *
http_admin_new (const herald_config_t *config)
{
    http_admin_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->config = config;
    self->tokens_on = config->security.tokens_file[0] != '\0';
    self->tls = config->security.tls_cert[0] != '\0';
    /*  "HOST:PORT" or "[V6]:PORT" */
    const char *listen = config->broker.http;
    const char *start = listen[0] == '['? listen + 1: listen;
    const char *end = listen[0] == '['? strchr (start, ']'): strrchr (start, ':');
    size_t len = end? (size_t) (end - start): strlen (start);
    if (len < sizeof self->listen_host) {
        memcpy (self->listen_host, start, len);
        self->listen_host[len] = '\0';
    }
    self->sessions = http_sessions_new (HTTP_SESSIONS_MAX, HTTP_SESSION_IDLE_MS, HTTP_SESSION_MAX_AGE_MS);
    if (!self->sessions || http_random_text (self->open_csrf) != 0)
        http_admin_destroy (&self);
    return self;
}

void
http_admin_destroy (http_admin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_admin_t *self = *self_p;
    http_sessions_destroy (&self->sessions);
    free (self);
    *self_p = NULL;
}

void
http_admin_call_destroy (http_admin_call_t **call_p)
{
    if (!call_p || !*call_p)
        return;
    free (*call_p);
    *call_p = NULL;
}

void
http_admin_response_clear (http_admin_response_t *response)
{
    free (response->body);
    free (response->args);
    memset (response, 0, sizeof *response);
}

size_t
http_admin_sessions (const http_admin_t *self)
{
    return http_sessions_count (self->sessions);
}

//  --------------------------------------------------------------------------
//  Responses

static void
s_header (http_admin_response_t *response, const char *name, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
s_header (http_admin_response_t *response, const char *name, const char *fmt, ...)
{
    if (response->header_count >= HTTP_ADMIN_HEADERS)
        return;
    http_admin_header_t *header = &response->headers[response->header_count++];
    header->name = name;
    va_list args;
    va_start (args, fmt);
    vsnprintf (header->value, sizeof header->value, fmt, args);
    va_end (args);
}

/*  Sets the answer: status, type, body (taken; NULL is a 500), and the
    headers every admin response carries. */
static void
s_answer (http_admin_response_t *response, int status, const char *content_type, char *body)
{
    free (response->body);
    response->body = body;
    response->status = body? status: 500;
    response->content_type = body? content_type: "text/plain; charset=utf-8";
    if (!body)
        response->body = strdup ("out of memory");
    s_header (response, "Content-Security-Policy", "%s", S_CSP);
    s_header (response, "X-Content-Type-Options", "nosniff");
    s_header (response, "X-Frame-Options", "DENY");
    s_header (response, "Referrer-Policy", "same-origin");   /* not no-referrer: it makes form POSTs send "Origin: null" */
    s_header (response, "Cross-Origin-Opener-Policy", "same-origin");
    s_header (response, "Cross-Origin-Resource-Policy", "same-origin");
}

static void
s_message (http_admin_response_t *response, const s_who_t *who, const http_admin_t *self, int status,
           const char *title, const char *fmt, ...) __attribute__ ((format (printf, 6, 7)));

/*  An HTML page saying what went wrong, with the navigation when who is known. */
static void
s_message (http_admin_response_t *response, const s_who_t *who, const http_admin_t *self, int status,
           const char *title, const char *fmt, ...)
{
    char text[1200];
    va_list args;
    va_start (args, fmt);
    vsnprintf (text, sizeof text, fmt, args);
    va_end (args);
    http_admin_view_t view = { .config = self->config };
    if (who) {
        view.who = who->who;
        view.csrf = who->csrf;
        view.operate = who->role == HERALD_ROLE_ADMIN_OPERATE;
        view.session = who->session;
    }
    s_answer (response, status, S_HTML, http_admin_render_message (who? &view: NULL, title, text));
}

static void
s_json_error (http_admin_response_t *response, int status, const char *text)
{
    json_t *body = json_pack ("{s:s, s:i}", "error", text, "code", status);
    s_answer (response, status, S_JSON, json_dumps (body, JSON_COMPACT));
    json_decref (body);
}

/*  303 See Other to location (a path of ours, already encoded). */
static void
s_redirect (http_admin_response_t *response, const char *location)
{
    s_header (response, "Location", "%s", location);
    s_answer (response, 303, S_HTML, strdup (""));
}

static void
s_ask (http_admin_response_t *response, const char *verb, json_t *args)
{
    snprintf (response->verb, sizeof response->verb, "%s", verb);
    response->args = json_dumps (args, JSON_COMPACT);
    json_decref (args);
}

//  --------------------------------------------------------------------------
//  Static files

static bool
s_asset (const char *path, http_admin_response_t *response)
{
    static const struct {
        const char *path, *type;
        const char *data;
    } assets[] = {
        { "/admin/static/admin.css", "text/css; charset=utf-8", herald_admin_css },
        { "/admin/static/admin.js",  "text/javascript; charset=utf-8", herald_admin_js },
        { "/admin/static/icon.svg",  "image/svg+xml", herald_admin_icon_svg },
    };
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (strcmp (path, assets[i].path) == 0) {
            s_answer (response, 200, assets[i].type, strdup (assets[i].data));
            return true;
        }
    return false;
}

//  --------------------------------------------------------------------------
//  Who asks

static const char *
s_header_of (const http_admin_request_t *request, const char *name)
{
    return request->header? request->header (request->ctx, name): NULL;
}

static const char *
s_arg_of (const http_admin_request_t *request, const char *name)
{
    const char *value = request->arg? request->arg (request->ctx, name): NULL;
    return value? value: "";
}

static void
s_who_of_token (s_who_t *who, const herald_token_t *token)
{
    who->role = token->role;
    snprintf (who->name, sizeof who->name, "%s", token->name);
    snprintf (who->who, sizeof who->who, "%s (%s)", token->name, herald_token_role_name (token->role));
}

/*  Whether the token of a valid login has an admin role. */
static bool
s_admin_role (unsigned role)
{
    return role == HERALD_ROLE_ADMIN_READ || role == HERALD_ROLE_ADMIN_OPERATE;
}

/*  Fills who for the request: 0, or -1 with the response set (to the
    login form, 401, 403). api: answer in JSON. */
static int
s_identify (http_admin_t *self, const herald_tokens_t *tokens, const http_admin_request_t *request, int64_t now,
            bool api, s_who_t *who, http_admin_response_t *response)
{
    memset (who, 0, sizeof *who);
    if (!self->tokens_on) {
        who->role = HERALD_ROLE_ADMIN_OPERATE;
        snprintf (who->csrf, sizeof who->csrf, "%s", self->open_csrf);
        return 0;
    }
    const char *authorization = s_header_of (request, "Authorization");
    if (authorization) {
        const herald_token_t *token = NULL;
        if (strncasecmp (authorization, "Bearer ", 7) == 0) {
            const char *text = authorization + 7;
            while (*text == ' ')
                text++;
            size_t len = strlen (text);
            while (len > 0 && text[len - 1] == ' ')
                len--;
            token = herald_tokens_check (tokens, text, len);
        }
        if (!token) {
            s_header (response, "WWW-Authenticate", "Bearer realm=\"herald\", error=\"invalid_token\"");
            if (api)
                s_json_error (response, 401, "the Authorization header holds no valid Bearer token");
            else
                s_message (response, NULL, self, 401, "Not allowed",
                           "The Authorization header holds no valid Bearer token (unknown or revoked).");
            return -1;
        }
        s_who_of_token (who, token);
        who->bearer = true;
    }
    else {
        const http_session_t *session = http_sessions_find (self->sessions, s_header_of (request, "Cookie"),
                                                            tokens, now);
        if (!session) {
            if (api || strcmp (request->method, "POST") == 0) {
                if (api)
                    s_json_error (response, 401, "log in at /admin/login, or send Authorization: Bearer TOKEN");
                else
                    s_message (response, NULL, self, 401, "Not logged in",
                               "Your session has ended (logged out, expired, or its token revoked): log in again "
                               "at /admin/login.");
                s_header (response, "WWW-Authenticate", "Bearer realm=\"herald\"");
            }
            else
                s_redirect (response, "/admin/login");
            return -1;
        }
        who->role = session->role;
        who->session = true;
        snprintf (who->name, sizeof who->name, "%s", session->token_name);
        snprintf (who->who, sizeof who->who, "%s (%s)", session->token_name, herald_token_role_name (session->role));
        snprintf (who->csrf, sizeof who->csrf, "%s", session->csrf);
    }
    if (!s_admin_role (who->role)) {
        if (api)
            s_json_error (response, 403, "this token's role may not use the admin page (admin_read or admin_operate)");
        else
            s_message (response, NULL, self, 403, "Not allowed", "The token %s may not use the admin page: it needs "
                       "the role admin_read or admin_operate.", who->who);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Login and logout

static void
s_login (http_admin_t *self, const herald_tokens_t *tokens, const http_admin_request_t *request, int64_t now,
         http_admin_response_t *response)
{
    if (!self->tokens_on) {
        s_redirect (response, "/admin");            /* open: nothing to log into */
        return;
    }
    if (strcmp (request->method, "POST") != 0) {
        if (http_sessions_find (self->sessions, s_header_of (request, "Cookie"), tokens, now))
            s_redirect (response, "/admin");
        else
            s_answer (response, 200, S_HTML, http_admin_render_login (NULL));
        return;
    }
    char token[HERALD_TOKEN_TEXT + 64];
    int len = http_form_value (request->body, request->body_len, "token", token, sizeof token);
    const char *text = token;
    while (len > 0 && (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r' || text[len - 1] == '\n'))
        len--;
    const herald_token_t *found = len > 0? herald_tokens_check (tokens, text, (size_t) len): NULL;
    explicit_bzero (token, sizeof token);
    if (!found) {
        s_answer (response, 401, S_HTML, http_admin_render_login ("This token is not known (mistyped, or revoked)."));
        return;
    }
    if (!s_admin_role (found->role)) {
        char message[200];
        snprintf (message, sizeof message, "The token %s has the role %s: the admin page needs admin_read or "
                  "admin_operate.", found->name, herald_token_role_name (found->role));
        s_answer (response, 403, S_HTML, http_admin_render_login (message));
        return;
    }
    const http_session_t *session = http_sessions_open (self->sessions, found, now);
    if (!session) {
        s_message (response, NULL, self, 500, "Cannot log in", "No randomness for a session id (getrandom failed).");
        return;
    }
    herald_info ("http: admin login", "token=%s role=%s sessions=%zu", found->name,
                 herald_token_role_name (found->role), http_sessions_count (self->sessions));
    char cookie[200];
    http_session_cookie (session->id, self->tls, cookie, sizeof cookie);
    s_header (response, "Set-Cookie", "%s", cookie);
    s_redirect (response, "/admin");
}

static void
s_logout (http_admin_t *self, const herald_tokens_t *tokens, const http_admin_request_t *request, int64_t now,
          http_admin_response_t *response)
{
    const http_session_t *session = self->tokens_on?
        http_sessions_find (self->sessions, s_header_of (request, "Cookie"), tokens, now): NULL;
    if (session) {
        char csrf[HTTP_SESSION_TEXT + 8];
        if (http_form_value (request->body, request->body_len, "csrf", csrf, sizeof csrf) < 0
        ||  !http_csrf_equal (session->csrf, csrf)) {
            s_message (response, NULL, self, 403, "Not allowed", "The form's CSRF token is missing or stale: reload "
                       "the page and try again.");
            return;
        }
        herald_info ("http: admin logout", "token=%s", session->token_name);
        char id[HTTP_SESSION_TEXT];
        snprintf (id, sizeof id, "%s", session->id);
        http_sessions_close (self->sessions, id);
    }
    char cookie[200];
    http_session_cookie (NULL, self->tls, cookie, sizeof cookie);
    s_header (response, "Set-Cookie", "%s", cookie);
    s_redirect (response, self->tokens_on? "/admin/login": "/admin");
}

//  --------------------------------------------------------------------------
//  Routes

/*  Copies a query or form value into out if it fits: 0, or -1. */
static int
s_copy (char *out, size_t size, const char *value)
{
    size_t len = strlen (value);
    if (len >= size)
        return -1;
    memcpy (out, value, len + 1);
    return 0;
}

/*  The notice of a redirect after retry or purge (?notice=retried&n=3). */
static void
s_notice_args (const http_admin_request_t *request, http_admin_call_t *call)
{
    const char *notice = s_arg_of (request, "notice");
    if (strcmp (notice, "retried") == 0 || strcmp (notice, "purged") == 0) {
        call->notice = strcmp (notice, "retried") == 0? "retried": "purged";
        call->count = strtol (s_arg_of (request, "n"), NULL, 10);
    }
}

/*  A retry or purge form: who may, its CSRF token, its selector. 0 with
    the verb asked, or -1 with the response set. */
static int
s_action (http_admin_t *self, const http_admin_request_t *request, http_admin_call_t *call,
          http_admin_response_t *response)
{
    const char *what = call->page == S_RETRY? "retry": "purge";
    if (call->who.role != HERALD_ROLE_ADMIN_OPERATE) {
        s_message (response, &call->who, self, 403, "Not allowed", "Only an admin_operate token may %s dead tasks; "
                   "you are %s.", what, call->who.who);
        return -1;
    }
    char csrf[HTTP_SESSION_TEXT + 8];
    if (!call->who.bearer
    &&  (http_form_value (request->body, request->body_len, "csrf", csrf, sizeof csrf) < 0
    ||   !http_csrf_equal (call->who.csrf, csrf))) {
        s_message (response, &call->who, self, 403, "Not allowed", "The form's CSRF token is missing or stale: "
                   "reload the page and try again.");
        return -1;
    }
    const char *body = request->body;
    size_t len = request->body_len;
    int task_len = http_form_value (body, len, "task_id", call->id, sizeof call->id);
    int channel_len = http_form_value (body, len, "channel", call->channel, sizeof call->channel);
    if (http_form_value (body, len, "event_id", call->event_id, sizeof call->event_id) < 0)
        call->event_id[0] = '\0';
    if (task_len <= 0 && channel_len <= 0) {
        s_message (response, &call->who, self, 400, "Which tasks?", "The form names no task_id and no channel.");
        return -1;
    }
    if (task_len <= 0)
        call->id[0] = '\0';
    if (channel_len <= 0)
        call->channel[0] = '\0';
    if (task_len <= 0 && herald_config_channel_index (self->config, call->channel) < 0) {
        s_message (response, &call->who, self, 404, "No such channel", "There is no channel %s.", call->channel);
        return -1;
    }
    char confirm[8];
    if (call->page == S_PURGE && (http_form_value (body, len, "confirm", confirm, sizeof confirm) < 0
                              ||  strcmp (confirm, "yes") != 0)) {
        s_message (response, &call->who, self, 400, "Not purged", "Purging cannot be undone: tick \"I am sure\" "
                   "and press Purge again.");
        return -1;
    }
    char task[3 * S_ID_MAX + 3];
    herald_info (call->page == S_RETRY? "http: admin dead retry": "http: admin dead purge",
                 "token=%s role=%s task=%s channel=%s", call->who.name[0]? call->who.name: "-",
                 self->tokens_on? herald_token_role_name (call->who.role): "open",
                 herald_log_quote (call->id[0]? call->id: "-", task, sizeof task),
                 call->id[0] || !call->channel[0]? "-": call->channel);
    s_ask (response, call->page == S_RETRY? "dead.retry": "dead.purge",
           call->id[0]? json_pack ("{s:s}", "task_id", call->id): json_pack ("{s:s}", "channel", call->channel));
    return 0;
}

/*  Routes a request from someone known; 0 with the verb asked (call
    filled), or -1 with the response set. */
static int
s_route (http_admin_t *self, const http_admin_request_t *request, http_admin_call_t *call,
         http_admin_response_t *response)
{
    const char *path = request->path;
    bool post = strcmp (request->method, "POST") == 0;
    static const char dead_prefix[] = "/admin/dead/";
    if (strcmp (path, "/admin/dead/retry") == 0 || strcmp (path, "/admin/dead/purge") == 0) {
        if (!post) {
            s_header (response, "Allow", "POST");
            s_message (response, &call->who, self, 405, "Use the buttons", "%s takes a POST (the Retry and Purge "
                       "buttons of the dead letters).", path);
            return -1;
        }
        call->page = strcmp (path, "/admin/dead/retry") == 0? S_RETRY: S_PURGE;
        return s_action (self, request, call, response);
    }
    if (post) {
        s_header (response, "Allow", "GET");
        s_message (response, &call->who, self, 405, "Method not allowed", "%s takes a GET.", path);
        return -1;
    }
    if (strcmp (path, "/admin") == 0 || strcmp (path, "/admin/") == 0) {
        call->page = S_DASHBOARD;
        s_ask (response, "metrics", json_object ());
        return 0;
    }
    if (strcmp (path, "/admin/api/metrics") == 0) {
        call->page = S_API_METRICS;
        s_ask (response, "metrics", json_object ());
        return 0;
    }
    if (strcmp (path, "/admin/dead") == 0 || strcmp (path, "/admin/dead/") == 0) {
        call->page = S_DEAD_LIST;
        const char *channel = s_arg_of (request, "channel");
        if (*channel && herald_config_channel_index (self->config, channel) < 0) {
            s_message (response, &call->who, self, 404, "No such channel", "There is no channel %s.", channel);
            return -1;
        }
        s_copy (call->channel, sizeof call->channel, channel);
        char *end = NULL;
        const char *page = s_arg_of (request, "page");
        errno = 0;
        call->page_number = *page? strtol (page, &end, 10): 1;
        if ((*page && (errno || *end)) || call->page_number < 1 || call->page_number > S_PAGE_MAX) {
            s_message (response, &call->who, self, 400, "No such page", "page must be a number from 1 to %d.",
                       S_PAGE_MAX);
            return -1;
        }
        s_notice_args (request, call);
        json_t *args = json_pack ("{s:I}", "limit", (json_int_t) (call->page_number * HTTP_ADMIN_PAGE_SIZE + 1));
        if (*channel)
            json_object_set_new (args, "channel", json_string (channel));
        s_ask (response, "dead.list", args);
        return 0;
    }
    if (strncmp (path, dead_prefix, sizeof dead_prefix - 1) == 0) {
        const char *task_id = path + sizeof dead_prefix - 1;
        if (call->who.role != HERALD_ROLE_ADMIN_OPERATE) {
            s_message (response, &call->who, self, 403, "Not allowed", "A dead task's page shows its event (customer "
                       "data): only an admin_operate token may open it; you are %s.", call->who.who);
            return -1;
        }
        if (s_copy (call->id, sizeof call->id, task_id) != 0) {
            s_message (response, &call->who, self, 404, "No such task", "A task id has at most %d bytes.", S_ID_MAX);
            return -1;
        }
        call->page = S_DEAD_SHOW;
        s_ask (response, "dead.show", json_pack ("{s:s}", "task_id", call->id));
        return 0;
    }
    if (strcmp (path, "/admin/track") == 0) {
        call->page = S_TRACK;
        s_notice_args (request, call);
        if (s_copy (call->id, sizeof call->id, s_arg_of (request, "id")) != 0) {
            s_message (response, &call->who, self, 400, "No such event", "An event id has at most %d bytes.", S_ID_MAX);
            return -1;
        }
        if (!call->id[0]) {
            http_admin_view_t view = { self->config, call->who.who, call->who.csrf,
                                       call->who.role == HERALD_ROLE_ADMIN_OPERATE, call->who.session };
            s_answer (response, 200, S_HTML, http_admin_render_track (&view, "", NULL, true, NULL, 0));
            return -1;
        }
        s_ask (response, "track", json_pack ("{s:s}", "event_id", call->id));
        return 0;
    }
    s_message (response, &call->who, self, 404, "Not found", "There is no page %s.", path);
    return -1;
}

void
http_admin_begin (http_admin_t *self, const herald_tokens_t *tokens, const http_admin_request_t *request,
                  int64_t now, http_admin_call_t **call_p, http_admin_response_t *response)
{
    http_admin_response_clear (response);
    *call_p = NULL;
    const char *path = request->path;
    bool post = strcmp (request->method, "POST") == 0;
    if (!post && s_asset (path, response))
        return;
    const char *host = s_header_of (request, "Host");
    if (!self->tokens_on && !http_host_ok (host, self->listen_host)) {
        s_message (response, NULL, self, 403, "Not allowed", "Host %s: without security.tokens_file the admin page "
                   "answers only to an IP address, localhost or %s (a foreign name may be a DNS rebinding attack).",
                   host? host: "(none)", self->listen_host);
        return;
    }
    if (post && !http_origin_ok (s_header_of (request, "Origin"), host, self->tls)) {
        s_message (response, NULL, self, 403, "Not allowed", "A form of another site (Origin %s) may not post here.",
                   s_header_of (request, "Origin"));
        return;
    }
    if (strcmp (path, "/admin/login") == 0) {
        s_login (self, tokens, request, now, response);
        return;
    }
    if (strcmp (path, "/admin/logout") == 0) {
        if (post)
            s_logout (self, tokens, request, now, response);
        else {
            s_header (response, "Allow", "POST");
            s_message (response, NULL, self, 405, "Use the button", "Log out with the Log out button (a POST).");
        }
        return;
    }
    http_admin_call_t *call = calloc (1, sizeof *call);
    if (!call) {
        s_answer (response, 500, S_HTML, NULL);
        return;
    }
    bool api = strncmp (path, "/admin/api/", 11) == 0;
    if (s_identify (self, tokens, request, now, api, &call->who, response) != 0
    ||  s_route (self, request, call, response) != 0
    ||  !response->args) {
        if (!response->status)
            s_answer (response, 500, S_HTML, NULL);
        free (call);
        return;
    }
    *call_p = call;
}

//  --------------------------------------------------------------------------
//  Answers

/*  An admin reply's error text. */
static const char *
s_error_text (json_t *reply, const char *otherwise)
{
    const char *text = json_string_value (json_object_get (reply, "error"));
    return text? text: otherwise;
}

/*  A failed verb as a page: its code mapped to an HTTP status. */
static void
s_failed (http_admin_t *self, http_admin_call_t *call, int code, json_t *reply, http_admin_response_t *response)
{
    if (code == 0) {
        s_message (response, &call->who, self, 503, "No answer", "The broker did not answer in time; try again.");
        return;
    }
    int status = code == 404 || code == 400 || code == 403 || code == 503 || code == 507? code: 502;
    if (code == 503 || code == 507)
        s_header (response, "Retry-After", code == 503? "1": "10");
    s_message (response, &call->who, self, status, "The broker refused", "%s (code %d)",
               s_error_text (reply, "no reason given"), code);
}

void
http_admin_answer (http_admin_t *self, http_admin_call_t *call, int code, const char *body,
                   http_admin_response_t *response)
{
    http_admin_response_clear (response);
    json_t *reply = body? json_loads (body, 0, NULL): NULL;
    http_admin_view_t view = { self->config, call->who.who, call->who.csrf, call->who.role == HERALD_ROLE_ADMIN_OPERATE,
                               call->who.session };
    if (call->page == S_API_METRICS) {
        if (code == 200 && body)
            s_answer (response, 200, S_JSON, strdup (body));
        else
            s_json_error (response, 503, code? s_error_text (reply, "the broker refused"): "no answer from the broker");
    }
    else
    if (call->page == S_TRACK && (code == 200 || code == 404))
        s_answer (response, code, S_HTML, http_admin_render_track (&view, call->id, code == 200? reply: NULL,
                                                                   code == 200, call->notice, call->count));
    else
    if (call->page == S_DEAD_SHOW && code == 404)
        s_message (response, &call->who, self, 404, "No such dead task", "No dead task %s: retried or purged "
                   "already, or never dead.", call->id);
    else
    if (code != 200 || !reply)
        s_failed (self, call, code, reply, response);
    else
    if (call->page == S_DASHBOARD)
        s_answer (response, 200, S_HTML, http_admin_render_dashboard (&view, reply));
    else
    if (call->page == S_DEAD_LIST)
        s_answer (response, 200, S_HTML, http_admin_render_dead_list (&view, reply, call->channel, call->page_number,
                                                                      call->notice, call->count));
    else
    if (call->page == S_DEAD_SHOW)
        s_answer (response, 200, S_HTML, http_admin_render_dead_show (&view, reply));
    else {
        /*  retry, purge: back to where the operator looks, saying how many. */
        bool retry = call->page == S_RETRY;
        long long count = (long long) json_integer_value (json_object_get (reply, retry? "retried": "purged"));
        herald_text_t location = { 0 };
        if (retry && call->event_id[0]) {
            herald_text_puts (&location, "/admin/track?id=");
            http_url_encode (&location, call->event_id);
            herald_text_puts (&location, "&");
        }
        else {
            herald_text_puts (&location, "/admin/dead?");
            if (call->channel[0]) {
                herald_text_puts (&location, "channel=");
                http_url_encode (&location, call->channel);
                herald_text_puts (&location, "&");
            }
        }
        herald_text_printf (&location, "notice=%s&n=%lld", retry? "retried": "purged", count);
        if (location.failed)
            s_answer (response, 500, S_HTML, NULL);
        else
            s_redirect (response, location.data);
        free (location.data);
    }
    json_decref (reply);
}
