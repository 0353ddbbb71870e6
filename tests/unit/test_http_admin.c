/*  test_http_admin: the admin page's rules (http_admin), driven as http.c
    drives it: a request in, a verb out, the reply in, a response out.

    Without tokens: pages open, Host checked (DNS rebinding), forms still
    need the page's CSRF token. With tokens: no session -> the login form
    (pages) or 401 (API, POST); the login sets a session cookie (HttpOnly,
    SameSite=Strict, Path=/admin) and refuses unknown and producer tokens;
    a revoked token's session ends at its next request; logout ends it.
    Write actions: admin_read gets no button and 403 on a forged POST (with
    its own valid CSRF token); a POST without the CSRF token, or with
    another session's, gets 403; a Bearer header needs none; a foreign
    Origin gets 403. The verbs asked and their arguments; paging; purge
    needs its confirmation; every response carries the CSP. Values from
    events (<script>, quotes) come out escaped on every page. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald_config.h"
#include "http_admin.h"
#include "http_session.h"

static herald_config_t s_cfg;
static char s_err[256];

/*  A request's headers and query arguments. */
typedef struct {
    const char *names[8], *values[8];
    size_t count;
    const char *arg_names[8], *arg_values[8];
    size_t arg_count;
} s_fake_t;

static const char *
s_fake_header (void *ctx, const char *name)
{
    s_fake_t *fake = ctx;
    for (size_t i = 0; i < fake->count; i++)
        if (strcasecmp (fake->names[i], name) == 0)
            return fake->values[i];
    return NULL;
}

static const char *
s_fake_arg (void *ctx, const char *name)
{
    s_fake_t *fake = ctx;
    for (size_t i = 0; i < fake->arg_count; i++)
        if (strcmp (fake->arg_names[i], name) == 0)
            return fake->arg_values[i];
    return NULL;
}

static void
s_set (s_fake_t *fake, const char *name, const char *value)
{
    fake->names[fake->count] = name;
    fake->values[fake->count++] = value;
}

static void
s_arg (s_fake_t *fake, const char *name, const char *value)
{
    fake->arg_names[fake->arg_count] = name;
    fake->arg_values[fake->arg_count++] = value;
}

static void
s_config (bool tokens)
{
    herald_config_defaults (&s_cfg);
    snprintf (s_cfg.broker.http, sizeof s_cfg.broker.http, "127.0.0.1:8470");
    snprintf (s_cfg.channels[0].name, sizeof s_cfg.channels[0].name, "email");
    snprintf (s_cfg.channels[1].name, sizeof s_cfg.channels[1].name, "courier");
    s_cfg.channel_count = 2;
    if (tokens)
        snprintf (s_cfg.security.tokens_file, sizeof s_cfg.security.tokens_file, "herald.tokens");
}

/*  One request: method, path, optional cookie, bearer token, body and
    extra fake (headers, args). Host is 127.0.0.1:8470 unless fake sets it. */
typedef struct {
    http_admin_call_t *call;
    http_admin_response_t response;
} s_exchange_t;

static void
s_begin (http_admin_t *admin, const herald_tokens_t *tokens, const char *method, const char *path, const char *cookie,
         const char *bearer, const char *body, s_fake_t *extra, s_exchange_t *out)
{
    s_fake_t fake = { 0 };
    if (extra)
        fake = *extra;
    if (!s_fake_header (&fake, "Host"))
        s_set (&fake, "Host", "127.0.0.1:8470");
    char cookie_header[200], authorization[120];
    if (cookie) {
        snprintf (cookie_header, sizeof cookie_header, "%s=%s", HTTP_SESSION_COOKIE, cookie);
        s_set (&fake, "Cookie", cookie_header);
    }
    if (bearer) {
        snprintf (authorization, sizeof authorization, "Bearer %s", bearer);
        s_set (&fake, "Authorization", authorization);
    }
    http_admin_request_t request = { .method = method, .path = path, .arg = s_fake_arg, .header = s_fake_header,
                                     .ctx = &fake, .body = body, .body_len = body? strlen (body): 0 };
    memset (out, 0, sizeof *out);
    http_admin_begin (admin, tokens, &request, 1000, &out->call, &out->response);
}

static void
s_answer (http_admin_t *admin, s_exchange_t *exchange, int code, const char *body)
{
    cr_assert_not_null (exchange->call, "no verb was asked");
    http_admin_answer (admin, exchange->call, code, body, &exchange->response);
}

static void
s_done (s_exchange_t *exchange)
{
    http_admin_call_destroy (&exchange->call);
    http_admin_response_clear (&exchange->response);
}

static const char *
s_header_of (const http_admin_response_t *response, const char *name)
{
    for (size_t i = 0; i < response->header_count; i++)
        if (strcasecmp (response->headers[i].name, name) == 0)
            return response->headers[i].value;
    return NULL;
}

/*  The session id a login response's Set-Cookie holds, into id. */
static void
s_cookie_of (const http_admin_response_t *response, char *id)
{
    const char *cookie = s_header_of (response, "Set-Cookie");
    cr_assert_not_null (cookie);
    cr_assert_eq (sscanf (cookie, HTTP_SESSION_COOKIE "=%64[0-9a-f];", id), 1, "%s", cookie);
}

/*  The value of the csrf field a page holds, into csrf. */
static void
s_csrf_of (const char *page, char *csrf)
{
    const char *field = strstr (page, "name=\"csrf\" value=\"");
    cr_assert_not_null (field, "no CSRF field in the page");
    cr_assert_eq (sscanf (field, "name=\"csrf\" value=\"%64[0-9a-f]\"", csrf), 1);
}

/*  Logs in with token: the session id. */
static void
s_login (http_admin_t *admin, const herald_tokens_t *tokens, const char *token, char *id)
{
    char body[200];
    snprintf (body, sizeof body, "token=%s", token);
    s_exchange_t x;
    s_begin (admin, tokens, "POST", "/admin/login", NULL, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 303, "login: %d %s", x.response.status, x.response.body);
    cr_assert_str_eq (s_header_of (&x.response, "Location"), "/admin");
    s_cookie_of (&x.response, id);
    s_done (&x);
}

static const char *s_metrics =
    "{\"broker\":{\"version\":\"0.1.0\",\"uptime_ms\":65000,\"events\":7,\"store\":\"var/herald.db\","
    "\"store_full\":false,\"journal_bytes\":1048576,\"index_bytes\":4096,\"index_lag_bytes\":0},"
    "\"channels\":[{\"name\":\"email\",\"driver\":\"file\",\"pending\":3,\"in_flight\":1,\"retrying\":2,\"done\":40,"
    "\"dead\":1,\"workers\":2,\"oldest_pending_age_ms\":1500},{\"name\":\"courier\",\"driver\":\"http\",\"pending\":0,"
    "\"in_flight\":0,\"retrying\":0,\"done\":44,\"dead\":0,\"workers\":0,\"oldest_pending_age_ms\":0}],"
    "\"metrics\":{\"received\":50,\"acked\":{\"new\":44,\"duplicate\":3},\"refused\":{},\"deliveries\":"
    "[{\"done\":40,\"failed\":1},{\"done\":44,\"failed\":0}]}}";

/*  A dead task whose every field tries to run a script. */
static const char *s_hostile_show =
    "{\"task\":{\"task_id\":\"7.email\",\"event_id\":\"<script>alert('id')</script>\",\"channel\":\"email\","
    "\"attempts\":1,\"last_error\":\"POST http://x/: HTTP 400: <script>alert(\\\"err\\\")</script>\","
    "\"dead_at\":1764511387000,\"event\":{\"id\":\"e1\",\"data\":{\"customer\":{\"name\":\"\\\"><img src=x "
    "onerror=alert(1)>\",\"note\":\"</pre><script>alert('data')</script>\"}}},\"history\":[{\"attempt\":1,"
    "\"at\":1764511387000,\"outcome\":\"failed\",\"error\":\"<b onmouseover='alert(2)'>x</b>\"}]}}";

static void
s_assert_inert (const char *page)
{
    cr_assert_null (strstr (page, "<script>alert"), "a script from the data runs:\n%s", page);
    cr_assert_null (strstr (page, "<img"), "an element from the data:\n%s", page);
    cr_assert_null (strstr (page, "<b "), "an element from the data:\n%s", page);
    cr_assert_null (strstr (page, "</pre><script"), "the data closes an element:\n%s", page);
    cr_assert_null (strstr (page, "onmouseover='"), "an attribute from the data:\n%s", page);
    /*  The one script a page loads is ours. */
    const char *script = strstr (page, "<script");
    cr_assert_not_null (script);
    cr_assert_eq (strncmp (script, "<script src=\"/admin/static/admin.js\" defer></script>", 52), 0);
    cr_assert_null (strstr (script + 1, "<script"));
}

//  --------------------------------------------------------------------------

Test (http_admin, open_dashboard_asks_metrics_and_renders_counts)
{
    s_config (false);
    http_admin_t *admin = http_admin_new (&s_cfg);
    cr_assert_not_null (admin);
    s_exchange_t x;
    s_begin (admin, NULL, "GET", "/admin", NULL, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 0);
    cr_assert_str_eq (x.response.verb, "metrics");
    cr_assert_str_eq (x.response.args, "{}");
    s_answer (admin, &x, 200, s_metrics);
    cr_assert_eq (x.response.status, 200);
    cr_assert_str_eq (x.response.content_type, "text/html; charset=utf-8");
    const char *csp = s_header_of (&x.response, "Content-Security-Policy");
    cr_assert (csp && strstr (csp, "default-src 'none'") && strstr (csp, "script-src 'self'")
               && strstr (csp, "connect-src 'self'") && !strstr (csp, "unsafe"), "%s", csp);
    cr_assert_str_eq (s_header_of (&x.response, "X-Content-Type-Options"), "nosniff");
    const char *page = x.response.body;
    cr_assert_not_null (strstr (page, "<td data-k=\"ch.email.pending\" class=\"num\">3</td>"), "%s", page);
    cr_assert_not_null (strstr (page, "<td data-k=\"ch.email.dead\" class=\"num bad\">1</td>"));
    cr_assert_not_null (strstr (page, "<td data-k=\"ch.courier.done\" class=\"num\">44</td>"));
    cr_assert_not_null (strstr (page, "<td data-k=\"ch.courier.workers\" class=\"num bad\">0</td>"));
    cr_assert_not_null (strstr (page, "<td data-k=\"ch.email.oldest\" class=\"num\">1.5 s</td>"));
    cr_assert_not_null (strstr (page, "data-k=\"broker.uptime\">1 min 05 s<"));
    cr_assert_not_null (strstr (page, "data-k=\"broker.journal\" class=\"good\">taking events<"));
    cr_assert_not_null (strstr (page, "data-k=\"deliveries.done\">84<"));
    cr_assert_null (strstr (page, "Log out"), "no session: no logout");
    s_done (&x);
    /*  The JSON for the refresh, as the verb gave it. */
    s_begin (admin, NULL, "GET", "/admin/api/metrics", NULL, NULL, NULL, NULL, &x);
    cr_assert_str_eq (x.response.verb, "metrics");
    s_answer (admin, &x, 200, s_metrics);
    cr_assert_eq (x.response.status, 200);
    cr_assert_str_eq (x.response.content_type, "application/json");
    cr_assert_str_eq (x.response.body, s_metrics);
    s_done (&x);
    /*  The broker did not answer in time. */
    s_begin (admin, NULL, "GET", "/admin", NULL, NULL, NULL, NULL, &x);
    s_answer (admin, &x, 0, NULL);
    cr_assert_eq (x.response.status, 503);
    s_done (&x);
    http_admin_destroy (&admin);
    cr_assert_null (admin);
}

Test (http_admin, static_files_are_served_to_anyone)
{
    s_config (true);
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    s_exchange_t x;
    s_begin (admin, tokens, "GET", "/admin/static/admin.js", NULL, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 200);
    cr_assert_null (x.call);
    cr_assert_str_eq (x.response.content_type, "text/javascript; charset=utf-8");
    cr_assert_not_null (strstr (x.response.body, "/admin/api/metrics"));
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/static/admin.css", NULL, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 200);
    cr_assert_str_eq (x.response.content_type, "text/css; charset=utf-8");
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/static/nothing.js", NULL, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 303, "not a file: like any page, to the login");
    s_done (&x);
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, open_page_refuses_foreign_host_names)
{
    s_config (false);
    http_admin_t *admin = http_admin_new (&s_cfg);
    s_fake_t fake = { 0 };
    s_set (&fake, "Host", "rebind.evil.example:8470");
    s_exchange_t x;
    s_begin (admin, NULL, "GET", "/admin", NULL, NULL, NULL, &fake, &x);
    cr_assert_eq (x.response.status, 403);
    cr_assert_null (x.call);
    cr_assert_not_null (strstr (x.response.body, "DNS rebinding"));
    s_done (&x);
    fake = (s_fake_t) { 0 };
    s_set (&fake, "Host", "localhost:8470");
    s_begin (admin, NULL, "GET", "/admin", NULL, NULL, NULL, &fake, &x);
    cr_assert_str_eq (x.response.verb, "metrics");
    s_done (&x);
    http_admin_destroy (&admin);
}

Test (http_admin, open_page_forms_still_need_the_csrf_token)
{
    s_config (false);
    http_admin_t *admin = http_admin_new (&s_cfg);
    s_exchange_t x;
    s_begin (admin, NULL, "POST", "/admin/dead/retry", NULL, NULL, "task_id=7.email", NULL, &x);
    cr_assert_eq (x.response.status, 403, "a form of any web page could post this");
    cr_assert_null (x.call);
    s_done (&x);
    /*  The page's token, as the dead list gives it. */
    s_begin (admin, NULL, "GET", "/admin/dead", NULL, NULL, NULL, NULL, &x);
    s_answer (admin, &x, 200, "{\"tasks\":[{\"task_id\":\"7.email\",\"event_id\":\"e7\",\"channel\":\"email\"}]}");
    char csrf[HTTP_SESSION_TEXT], body[200];
    s_csrf_of (x.response.body, csrf);
    s_done (&x);
    snprintf (body, sizeof body, "csrf=%s&task_id=7.email", csrf);
    s_begin (admin, NULL, "POST", "/admin/dead/retry", NULL, NULL, body, NULL, &x);
    cr_assert_str_eq (x.response.verb, "dead.retry");
    cr_assert_str_eq (x.response.args, "{\"task_id\":\"7.email\"}");
    s_answer (admin, &x, 200, "{\"retried\":1}");
    cr_assert_eq (x.response.status, 303);
    cr_assert_str_eq (s_header_of (&x.response, "Location"), "/admin/dead?notice=retried&n=1");
    s_done (&x);
    http_admin_destroy (&admin);
}

Test (http_admin, without_session_pages_go_to_login_and_the_rest_gets_401)
{
    s_config (true);
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    s_exchange_t x;
    s_begin (admin, tokens, "GET", "/admin/dead", NULL, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 303);
    cr_assert_str_eq (s_header_of (&x.response, "Location"), "/admin/login");
    cr_assert_null (x.call);
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/api/metrics", NULL, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 401);
    cr_assert_str_eq (x.response.content_type, "application/json");
    s_done (&x);
    s_begin (admin, tokens, "POST", "/admin/dead/retry", NULL, NULL, "task_id=x", NULL, &x);
    cr_assert_eq (x.response.status, 401);
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/login", NULL, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 200);
    cr_assert_not_null (strstr (x.response.body, "<form method=\"post\" action=\"/admin/login\""));
    cr_assert_not_null (strstr (x.response.body, "type=\"password\" name=\"token\""));
    s_done (&x);
    /*  A foreign Host is fine with tokens: the cookie is the proof. */
    s_fake_t fake = { 0 };
    s_set (&fake, "Host", "herald.example:8470");
    s_begin (admin, tokens, "GET", "/admin", NULL, NULL, NULL, &fake, &x);
    cr_assert_eq (x.response.status, 303);
    s_done (&x);
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, login_sets_a_session_cookie_and_refuses_other_tokens)
{
    s_config (true);
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    char ops[HERALD_TOKEN_TEXT], shop[HERALD_TOKEN_TEXT];
    cr_assert_eq (herald_tokens_add (tokens, "ops", HERALD_ROLE_ADMIN_OPERATE, 1, ops, s_err, sizeof s_err), 0);
    cr_assert_eq (herald_tokens_add (tokens, "shop", HERALD_ROLE_PRODUCER, 1, shop, s_err, sizeof s_err), 0);
    s_exchange_t x;
    char body[200];
    /*  Pasted with a newline: still the token. */
    snprintf (body, sizeof body, "token=%s%%0A", ops);
    s_begin (admin, tokens, "POST", "/admin/login", NULL, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 303, "%s", x.response.body);
    const char *cookie = s_header_of (&x.response, "Set-Cookie");
    cr_assert_not_null (cookie);
    cr_assert_not_null (strstr (cookie, "; Path=/admin; HttpOnly; SameSite=Strict"), "%s", cookie);
    cr_assert_null (strstr (cookie, "Secure"), "no TLS: no Secure");
    cr_assert_null (strstr (cookie, ops + 7), "the cookie holds a session id, not the token");
    char id[HTTP_SESSION_TEXT];
    s_cookie_of (&x.response, id);
    cr_assert_eq (http_admin_sessions (admin), 1);
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin", id, NULL, NULL, NULL, &x);
    cr_assert_str_eq (x.response.verb, "metrics");
    s_answer (admin, &x, 200, s_metrics);
    cr_assert_not_null (strstr (x.response.body, "ops (admin_operate)"));
    cr_assert_not_null (strstr (x.response.body, "Log out"));
    s_done (&x);
    /*  Logged in already: the form sends to the dashboard. */
    s_begin (admin, tokens, "GET", "/admin/login", id, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 303);
    s_done (&x);
    /*  Unknown, empty, producer. */
    s_begin (admin, tokens, "POST", "/admin/login", NULL, NULL, "token=herald_0000", NULL, &x);
    cr_assert_eq (x.response.status, 401);
    cr_assert_null (s_header_of (&x.response, "Set-Cookie"));
    cr_assert_not_null (strstr (x.response.body, "not known"));
    s_done (&x);
    s_begin (admin, tokens, "POST", "/admin/login", NULL, NULL, "token=", NULL, &x);
    cr_assert_eq (x.response.status, 401);
    s_done (&x);
    snprintf (body, sizeof body, "token=%s", shop);
    s_begin (admin, tokens, "POST", "/admin/login", NULL, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 403);
    cr_assert_null (s_header_of (&x.response, "Set-Cookie"));
    cr_assert_not_null (strstr (x.response.body, "role producer"));
    s_done (&x);
    cr_assert_eq (http_admin_sessions (admin), 1);
    /*  A login form of another site. */
    s_fake_t fake = { 0 };
    s_set (&fake, "Origin", "http://evil.example");
    snprintf (body, sizeof body, "token=%s", ops);
    s_begin (admin, tokens, "POST", "/admin/login", NULL, NULL, body, &fake, &x);
    cr_assert_eq (x.response.status, 403);
    cr_assert_null (s_header_of (&x.response, "Set-Cookie"));
    s_done (&x);
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, tls_cookie_is_secure)
{
    s_config (true);
    snprintf (s_cfg.security.tls_cert, sizeof s_cfg.security.tls_cert, "cert.pem");
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    char ops[HERALD_TOKEN_TEXT], body[200];
    cr_assert_eq (herald_tokens_add (tokens, "ops", HERALD_ROLE_ADMIN_READ, 1, ops, s_err, sizeof s_err), 0);
    snprintf (body, sizeof body, "token=%s", ops);
    s_exchange_t x;
    s_fake_t fake = { 0 };
    s_set (&fake, "Origin", "https://127.0.0.1:8470");
    s_begin (admin, tokens, "POST", "/admin/login", NULL, NULL, body, &fake, &x);
    cr_assert_eq (x.response.status, 303);
    cr_assert_not_null (strstr (s_header_of (&x.response, "Set-Cookie"), "; Secure"));
    s_done (&x);
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, admin_read_sees_no_write_action_and_is_refused_one)
{
    s_config (true);
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    char dash[HERALD_TOKEN_TEXT], id[HTTP_SESSION_TEXT], csrf[HTTP_SESSION_TEXT], body[300];
    cr_assert_eq (herald_tokens_add (tokens, "dash", HERALD_ROLE_ADMIN_READ, 1, dash, s_err, sizeof s_err), 0);
    s_login (admin, tokens, dash, id);
    s_exchange_t x;
    s_fake_t fake = { 0 };
    s_arg (&fake, "channel", "email");
    s_begin (admin, tokens, "GET", "/admin/dead", id, NULL, NULL, &fake, &x);
    cr_assert_str_eq (x.response.verb, "dead.list");
    s_answer (admin, &x, 200, "{\"tasks\":[{\"task_id\":\"7.email\",\"event_id\":\"e7\",\"channel\":\"email\","
                              "\"attempts\":1,\"last_error\":\"HTTP 400\",\"dead_at\":1}]}");
    cr_assert_eq (x.response.status, 200);
    const char *page = x.response.body;
    cr_assert_not_null (strstr (page, "7.email"));
    cr_assert_null (strstr (page, "/admin/dead/retry"), "no retry form for admin_read");
    cr_assert_null (strstr (page, "/admin/dead/purge"), "no purge form for admin_read");
    cr_assert_null (strstr (page, "href=\"/admin/dead/7.email\""), "no link to the event's data");
    s_csrf_of (page, csrf);         /* the logout form's */
    s_done (&x);
    /*  Forged, with this session's own valid CSRF token: the role decides. */
    snprintf (body, sizeof body, "csrf=%s&task_id=7.email", csrf);
    s_begin (admin, tokens, "POST", "/admin/dead/retry", id, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 403);
    cr_assert_null (x.call);
    cr_assert_str_eq (x.response.verb, "");
    s_done (&x);
    snprintf (body, sizeof body, "csrf=%s&channel=email&confirm=yes", csrf);
    s_begin (admin, tokens, "POST", "/admin/dead/purge", id, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 403);
    s_done (&x);
    /*  The event's data (dead.show) needs admin_operate, as over ZeroMQ. */
    s_begin (admin, tokens, "GET", "/admin/dead/7.email", id, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 403);
    s_done (&x);
    /*  Track and the dashboard are for admin_read. */
    fake = (s_fake_t) { 0 };
    s_arg (&fake, "id", "e7");
    s_begin (admin, tokens, "GET", "/admin/track", id, NULL, NULL, &fake, &x);
    cr_assert_str_eq (x.response.verb, "track");
    cr_assert_str_eq (x.response.args, "{\"event_id\":\"e7\"}");
    s_done (&x);
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, operate_forms_need_their_session_csrf_token)
{
    s_config (true);
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    char ops[HERALD_TOKEN_TEXT], id[HTTP_SESSION_TEXT], other[HTTP_SESSION_TEXT];
    char csrf[HTTP_SESSION_TEXT], other_csrf[HTTP_SESSION_TEXT], body[300];
    cr_assert_eq (herald_tokens_add (tokens, "ops", HERALD_ROLE_ADMIN_OPERATE, 1, ops, s_err, sizeof s_err), 0);
    s_login (admin, tokens, ops, id);
    s_login (admin, tokens, ops, other);
    s_exchange_t x;
    const char *list = "{\"tasks\":[{\"task_id\":\"7.email\",\"event_id\":\"e7\",\"channel\":\"email\"}]}";
    s_begin (admin, tokens, "GET", "/admin/dead", id, NULL, NULL, NULL, &x);
    s_answer (admin, &x, 200, list);
    cr_assert_not_null (strstr (x.response.body, "action=\"/admin/dead/retry\""), "operate: a retry button");
    cr_assert_not_null (strstr (x.response.body, "href=\"/admin/dead/7.email\""));
    s_csrf_of (x.response.body, csrf);
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/dead", other, NULL, NULL, NULL, &x);
    s_answer (admin, &x, 200, list);
    s_csrf_of (x.response.body, other_csrf);
    s_done (&x);
    cr_assert_str_neq (csrf, other_csrf, "each session has its own CSRF token");
    /*  Without the token, with another session's, with a wrong one. */
    const char *bodies[3] = { "task_id=7.email", NULL, "csrf=0000&task_id=7.email" };
    snprintf (body, sizeof body, "csrf=%s&task_id=7.email", other_csrf);
    bodies[1] = body;
    for (size_t i = 0; i < 3; i++) {
        s_begin (admin, tokens, "POST", "/admin/dead/retry", id, NULL, bodies[i], NULL, &x);
        cr_assert_eq (x.response.status, 403, "%s", bodies[i]);
        cr_assert_null (x.call);
        s_done (&x);
    }
    /*  Right: the verb with the task, then back to the event's track. */
    snprintf (body, sizeof body, "csrf=%s&task_id=7.email&event_id=e%%2F7", csrf);
    s_begin (admin, tokens, "POST", "/admin/dead/retry", id, NULL, body, NULL, &x);
    cr_assert_str_eq (x.response.verb, "dead.retry");
    cr_assert_str_eq (x.response.args, "{\"task_id\":\"7.email\"}");
    s_answer (admin, &x, 200, "{\"retried\":1}");
    cr_assert_eq (x.response.status, 303);
    cr_assert_str_eq (s_header_of (&x.response, "Location"), "/admin/track?id=e%2F7&notice=retried&n=1");
    s_done (&x);
    /*  A channel: purge needs "I am sure". */
    snprintf (body, sizeof body, "csrf=%s&channel=email", csrf);
    s_begin (admin, tokens, "POST", "/admin/dead/purge", id, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 400);
    s_done (&x);
    snprintf (body, sizeof body, "csrf=%s&channel=email&confirm=yes", csrf);
    s_begin (admin, tokens, "POST", "/admin/dead/purge", id, NULL, body, NULL, &x);
    cr_assert_str_eq (x.response.verb, "dead.purge");
    cr_assert_str_eq (x.response.args, "{\"channel\":\"email\"}");
    s_answer (admin, &x, 200, "{\"purged\":4}");
    cr_assert_str_eq (s_header_of (&x.response, "Location"), "/admin/dead?channel=email&notice=purged&n=4");
    s_done (&x);
    snprintf (body, sizeof body, "csrf=%s&channel=nope", csrf);
    s_begin (admin, tokens, "POST", "/admin/dead/retry", id, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 404);
    s_done (&x);
    /*  A foreign Origin, even with the right token. */
    s_fake_t fake = { 0 };
    s_set (&fake, "Origin", "http://evil.example");
    snprintf (body, sizeof body, "csrf=%s&task_id=7.email", csrf);
    s_begin (admin, tokens, "POST", "/admin/dead/retry", id, NULL, body, &fake, &x);
    cr_assert_eq (x.response.status, 403);
    s_done (&x);
    /*  GET is not a way to retry. */
    s_begin (admin, tokens, "GET", "/admin/dead/retry", id, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 405);
    s_done (&x);
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, bearer_header_works_without_csrf)
{
    s_config (true);
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    char ops[HERALD_TOKEN_TEXT], dash[HERALD_TOKEN_TEXT];
    cr_assert_eq (herald_tokens_add (tokens, "ops", HERALD_ROLE_ADMIN_OPERATE, 1, ops, s_err, sizeof s_err), 0);
    cr_assert_eq (herald_tokens_add (tokens, "dash", HERALD_ROLE_ADMIN_READ, 1, dash, s_err, sizeof s_err), 0);
    s_exchange_t x;
    s_begin (admin, tokens, "POST", "/admin/dead/retry", NULL, ops, "task_id=7.email", NULL, &x);
    cr_assert_str_eq (x.response.verb, "dead.retry");
    s_done (&x);
    s_begin (admin, tokens, "POST", "/admin/dead/retry", NULL, dash, "task_id=7.email", NULL, &x);
    cr_assert_eq (x.response.status, 403);
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/api/metrics", NULL, "herald_nope", NULL, NULL, &x);
    cr_assert_eq (x.response.status, 401);
    cr_assert_not_null (s_header_of (&x.response, "WWW-Authenticate"));
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/api/metrics", NULL, dash, NULL, NULL, &x);
    cr_assert_str_eq (x.response.verb, "metrics");
    s_done (&x);
    cr_assert_eq (http_admin_sessions (admin), 0, "a Bearer request opens no session");
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, revoked_token_and_logout_end_the_session)
{
    s_config (true);
    http_admin_t *admin = http_admin_new (&s_cfg);
    herald_tokens_t *tokens = herald_tokens_new ();
    char ops[HERALD_TOKEN_TEXT], dash[HERALD_TOKEN_TEXT], id[HTTP_SESSION_TEXT], dash_id[HTTP_SESSION_TEXT];
    char csrf[HTTP_SESSION_TEXT], body[200];
    cr_assert_eq (herald_tokens_add (tokens, "ops", HERALD_ROLE_ADMIN_OPERATE, 1, ops, s_err, sizeof s_err), 0);
    cr_assert_eq (herald_tokens_add (tokens, "dash", HERALD_ROLE_ADMIN_READ, 1, dash, s_err, sizeof s_err), 0);
    s_login (admin, tokens, ops, id);
    s_login (admin, tokens, dash, dash_id);
    s_exchange_t x;
    s_begin (admin, tokens, "GET", "/admin", id, NULL, NULL, NULL, &x);
    cr_assert_str_eq (x.response.verb, "metrics");
    s_done (&x);
    cr_assert_eq (herald_tokens_revoke (tokens, "ops"), 0);
    s_begin (admin, tokens, "GET", "/admin", id, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 303, "revoked: to the login form");
    cr_assert_str_eq (s_header_of (&x.response, "Location"), "/admin/login");
    s_done (&x);
    s_begin (admin, tokens, "GET", "/admin/api/metrics", id, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 401);
    s_done (&x);
    cr_assert_eq (http_admin_sessions (admin), 1);
    /*  Logout: the cookie is removed and the session is gone. */
    s_begin (admin, tokens, "GET", "/admin", dash_id, NULL, NULL, NULL, &x);
    s_answer (admin, &x, 200, s_metrics);
    s_csrf_of (x.response.body, csrf);
    s_done (&x);
    s_begin (admin, tokens, "POST", "/admin/logout", dash_id, NULL, "csrf=wrong", NULL, &x);
    cr_assert_eq (x.response.status, 403, "a logout needs the CSRF token too");
    s_done (&x);
    snprintf (body, sizeof body, "csrf=%s", csrf);
    s_begin (admin, tokens, "POST", "/admin/logout", dash_id, NULL, body, NULL, &x);
    cr_assert_eq (x.response.status, 303);
    cr_assert_str_eq (s_header_of (&x.response, "Location"), "/admin/login");
    cr_assert_not_null (strstr (s_header_of (&x.response, "Set-Cookie"), "Max-Age=0"));
    s_done (&x);
    cr_assert_eq (http_admin_sessions (admin), 0);
    s_begin (admin, tokens, "GET", "/admin", dash_id, NULL, NULL, NULL, &x);
    cr_assert_eq (x.response.status, 303);
    s_done (&x);
    herald_tokens_destroy (&tokens);
    http_admin_destroy (&admin);
}

Test (http_admin, dead_list_pages_and_filters)
{
    s_config (false);
    http_admin_t *admin = http_admin_new (&s_cfg);
    s_fake_t fake = { 0 };
    s_arg (&fake, "channel", "email");
    s_arg (&fake, "page", "2");
    s_exchange_t x;
    s_begin (admin, NULL, "GET", "/admin/dead", NULL, NULL, NULL, &fake, &x);
    cr_assert_str_eq (x.response.verb, "dead.list");
    json_t *args = json_loads (x.response.args, 0, NULL);
    cr_assert_eq (json_integer_value (json_object_get (args, "limit")), 2 * HTTP_ADMIN_PAGE_SIZE + 1);
    cr_assert_str_eq (json_string_value (json_object_get (args, "channel")), "email");
    json_decref (args);
    /*  120 tasks: page 2 shows 51..100 and a next link. */
    json_t *tasks = json_array ();
    for (int i = 1; i <= 120; i++) {
        char task_id[32];
        snprintf (task_id, sizeof task_id, "task-%03d.email", i);
        json_array_append_new (tasks, json_pack ("{s:s, s:s, s:s}", "task_id", task_id, "event_id", "e",
                                                 "channel", "email"));
    }
    json_t *reply = json_pack ("{s:o}", "tasks", tasks);
    char *text = json_dumps (reply, JSON_COMPACT);
    json_decref (reply);
    s_answer (admin, &x, 200, text);
    const char *page = x.response.body;
    cr_assert_null (strstr (page, "task-050.email"));
    cr_assert_not_null (strstr (page, "task-051.email"));
    cr_assert_not_null (strstr (page, "task-100.email"));
    cr_assert_null (strstr (page, "task-101.email"));
    cr_assert_not_null (strstr (page, "href=\"/admin/dead?channel=email&amp;page=3\""), "%s", page);
    cr_assert_not_null (strstr (page, "href=\"/admin/dead?channel=email&amp;page=1\""));
    cr_assert_not_null (strstr (page, "<option value=\"email\" selected>"));
    s_done (&x);
    free (text);
    /*  Bad filters. */
    fake = (s_fake_t) { 0 };
    s_arg (&fake, "channel", "<nope>");
    s_begin (admin, NULL, "GET", "/admin/dead", NULL, NULL, NULL, &fake, &x);
    cr_assert_eq (x.response.status, 404);
    cr_assert_not_null (strstr (x.response.body, "&lt;nope&gt;"));
    s_done (&x);
    const char *pages[] = { "0", "-1", "x", "2x", "2000" };
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        fake = (s_fake_t) { 0 };
        s_arg (&fake, "page", pages[i]);
        s_begin (admin, NULL, "GET", "/admin/dead", NULL, NULL, NULL, &fake, &x);
        cr_assert_eq (x.response.status, 400, "page=%s", pages[i]);
        s_done (&x);
    }
    http_admin_destroy (&admin);
}

Test (http_admin, values_from_events_render_inert)
{
    s_config (false);
    http_admin_t *admin = http_admin_new (&s_cfg);
    s_exchange_t x;
    s_begin (admin, NULL, "GET", "/admin/dead/7.email", NULL, NULL, NULL, NULL, &x);
    cr_assert_str_eq (x.response.verb, "dead.show");
    cr_assert_str_eq (x.response.args, "{\"task_id\":\"7.email\"}");
    s_answer (admin, &x, 200, s_hostile_show);
    cr_assert_eq (x.response.status, 200);
    s_assert_inert (x.response.body);
    cr_assert_not_null (strstr (x.response.body, "HTTP 400: &lt;script&gt;alert(&quot;err&quot;)&lt;/script&gt;"));
    cr_assert_not_null (strstr (x.response.body, "&lt;b onmouseover=&#39;alert(2)&#39;&gt;"));
    cr_assert_not_null (strstr (x.response.body, "href=\"/admin/track?id=%3Cscript%3Ealert%28%27id%27%29%3C%2Fscript%3E\""),
                        "%s", x.response.body);
    s_done (&x);
    /*  The list and the track of the same. */
    s_begin (admin, NULL, "GET", "/admin/dead", NULL, NULL, NULL, NULL, &x);
    s_answer (admin, &x, 200, "{\"tasks\":[{\"task_id\":\"\\\"><script>alert(3)</script>\",\"event_id\":"
                              "\"<script>alert(4)</script>\",\"channel\":\"email\",\"last_error\":\"<img src=x>\"}]}");
    s_assert_inert (x.response.body);
    s_done (&x);
    s_fake_t fake = { 0 };
    s_arg (&fake, "id", "\"><script>alert(5)</script>");
    s_begin (admin, NULL, "GET", "/admin/track", NULL, NULL, NULL, &fake, &x);
    s_answer (admin, &x, 200, "{\"events\":[{\"event_id\":\"<script>alert(6)</script>\",\"source\":\"<img src=x>\","
                              "\"type\":\"t\",\"channels\":[{\"channel\":\"email\",\"task_id\":\"<b onmouseover='x'>\","
                              "\"state\":\"dead\\\"><script>alert(7)</script>\",\"last_error\":\"</td><script>alert(8)"
                              "</script>\"}]}]}");
    s_assert_inert (x.response.body);
    s_done (&x);
    s_begin (admin, NULL, "GET", "/admin/track", NULL, NULL, NULL, &fake, &x);
    s_answer (admin, &x, 404, "{\"error\":\"no event\"}");
    cr_assert_eq (x.response.status, 404);
    s_assert_inert (x.response.body);
    s_done (&x);
    /*  An error text of the broker. */
    s_begin (admin, NULL, "GET", "/admin/dead", NULL, NULL, NULL, NULL, &x);
    s_answer (admin, &x, 400, "{\"error\":\"<script>alert(9)</script>\"}");
    cr_assert_eq (x.response.status, 400);
    s_assert_inert (x.response.body);
    s_done (&x);
    http_admin_destroy (&admin);
}
