/*  http_session: the admin page's browser sessions, CSRF tokens and the
    request checks that go with them. No I/O but getrandom; the HTTP thread
    owns the set (no lock).

    A login with a token (admin_read or admin_operate) opens a session: a
    random 256-bit id, which is all the cookie holds, mapped here to the
    token's SHA-256 (as the token file has it), its name and role, a CSRF
    token of its own, and two deadlines (idle and absolute). Why not the
    token itself in the cookie: a token lives until it is revoked, is
    often shared by scripts, and would sit in every browser profile that
    ever logged in; a session id dies with logout, with its deadlines, and
    with the broker process, and is worth nothing elsewhere. The mapping
    keeps the token's hash, so every request checks that the token file
    still holds that token with that role: a revoked token's sessions end
    at its next request, at once. */
#ifndef HERALD_HTTP_SESSION_H
#define HERALD_HTTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_tokens.h"

#define HTTP_SESSION_COOKIE     "herald_session"
#define HTTP_SESSION_TEXT       65                      /* 64 hex digits + NUL: ids and CSRF tokens */
#define HTTP_SESSIONS_MAX       1024                    /* sessions kept; the least recently used goes */
#define HTTP_SESSION_IDLE_MS    (60LL * 60 * 1000)      /* a session unused this long ends */
#define HTTP_SESSION_MAX_AGE_MS (12LL * 60 * 60 * 1000) /* and any session ends this long after login */

typedef struct {
    char id[HTTP_SESSION_TEXT];         /* the cookie's value */
    char csrf[HTTP_SESSION_TEXT];       /* what this session's forms must send back */
    unsigned char token_hash[32];       /* SHA-256 of the token that logged in */
    char token_name[HERALD_TOKEN_NAME_MAX];
    unsigned role;                      /* the token's role at login (herald_role_t) */
    int64_t opened;                     /* monotonic ms */
    int64_t last_seen;                  /* monotonic ms of its last request */
} http_session_t;

typedef struct http_sessions http_sessions_t;

/*  An empty set of at most max sessions, each ending after idle_ms unused
    or max_age_ms after login. NULL on OOM. */
http_sessions_t *
    http_sessions_new (size_t max, int64_t idle_ms, int64_t max_age_ms);

/*  NULL-safe; nulls *self_p. Wipes the ids. */
void
    http_sessions_destroy (http_sessions_t **self_p);

/*  Opens a session for token at now (monotonic ms); when the set is full
    the least recently used session ends. Returns it (borrowed, valid until
    the next call on the set), or NULL when no randomness is available. */
const http_session_t *
    http_sessions_open (http_sessions_t *self, const herald_token_t *token, int64_t now);

/*  The session a Cookie header names (its herald_session values, each
    tried), if it is within its deadlines and tokens still holds its token
    with the same role; touches it. A session found past its deadlines or
    without its token is ended. NULL when none. */
const http_session_t *
    http_sessions_find (http_sessions_t *self, const char *cookie_header, const herald_tokens_t *tokens,
                        int64_t now);

/*  Ends the session with that id, if any. */
void
    http_sessions_close (http_sessions_t *self, const char *id);

/*  Sessions held. */
size_t
    http_sessions_count (const http_sessions_t *self);

/*  The Set-Cookie value for session id (HttpOnly, SameSite=Strict,
    Path=/admin, Secure when tls), or, with id NULL, one that removes the
    cookie. Written into out (outlen >= 160). */
void
    http_session_cookie (const char *id, bool tls, char *out, size_t outlen);

/*  True when given equals expected (both NUL-terminated; NULL or empty
    given never matches), compared in constant time. */
bool
    http_csrf_equal (const char *expected, const char *given);

/*  Writes 32 random bytes as 64 hex digits into out (HTTP_SESSION_TEXT
    bytes). 0, or -1 when getrandom fails. */
int
    http_random_text (char *out);

/*  A POST's Origin header against the request's Host: true when there is
    no Origin (a client that is not a browser) or it is exactly
    http(s)://HOST; false for any other origin, "null" included. */
bool
    http_origin_ok (const char *origin, const char *host, bool tls);

/*  Without tokens, the page trusts whoever reaches the port; a web page
    the operator visits could reach it too through DNS rebinding (a name
    of the attacker's that resolves to 127.0.0.1). So a request must name
    the host as an IP literal ("127.0.0.1:8470", "[::1]:8470"), as
    "localhost", or as listen_host (the host of broker.listen.http):
    true then, false for any other name or a missing Host. */
bool
    http_host_ok (const char *host, const char *listen_host);

#endif
