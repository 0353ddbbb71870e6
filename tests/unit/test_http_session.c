/*  test_http_session: the admin page's sessions and request checks
    (http_session). A session opened for a token is found again from a
    Cookie header (among other cookies), touched, and ends: at logout, when
    idle too long, when too old, when its token is revoked or its role
    changed (and stays ended if the token comes back), or when the set is
    full and it is the least recently used. The cookie is HttpOnly,
    SameSite=Strict, Path=/admin, Secure with TLS. CSRF tokens compare
    exactly; Origin must be this endpoint; Host must not be a foreign name. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "herald_config.h"
#include "http_session.h"

static char s_err[256];

/*  A token set holding one token named name with role; its text in text. */
static herald_tokens_t *
s_tokens (const char *name, unsigned role, char *text)
{
    herald_tokens_t *tokens = herald_tokens_new ();
    cr_assert_not_null (tokens);
    cr_assert_eq (herald_tokens_add (tokens, name, role, 1000, text, s_err, sizeof s_err), 0, "%s", s_err);
    return tokens;
}

static const herald_token_t *
s_token (const herald_tokens_t *tokens, const char *text)
{
    const herald_token_t *token = herald_tokens_check (tokens, text, strlen (text));
    cr_assert_not_null (token);
    return token;
}

static void
s_cookie_header (char *out, size_t size, const char *id)
{
    snprintf (out, size, "theme=dark; %s=%s; other=1", HTTP_SESSION_COOKIE, id);
}

Test (http_session, opened_session_is_found_from_its_cookie)
{
    char text[HERALD_TOKEN_TEXT];
    herald_tokens_t *tokens = s_tokens ("ops", HERALD_ROLE_ADMIN_OPERATE, text);
    http_sessions_t *sessions = http_sessions_new (8, 1000, 10000);
    const http_session_t *opened = http_sessions_open (sessions, s_token (tokens, text), 100);
    cr_assert_not_null (opened);
    cr_assert_eq (strlen (opened->id), 64);
    cr_assert_eq (strlen (opened->csrf), 64);
    cr_assert_str_neq (opened->id, opened->csrf);
    cr_assert_str_eq (opened->token_name, "ops");
    cr_assert_eq (opened->role, HERALD_ROLE_ADMIN_OPERATE);
    char id[HTTP_SESSION_TEXT], cookie[256];
    snprintf (id, sizeof id, "%s", opened->id);
    s_cookie_header (cookie, sizeof cookie, id);
    const http_session_t *found = http_sessions_find (sessions, cookie, tokens, 500);
    cr_assert_not_null (found);
    cr_assert_str_eq (found->id, id);
    cr_assert_eq (found->last_seen, 500);
    /*  The session id is the whole secret: a near miss, a prefix, the CSRF
        token or no cookie find nothing. */
    char near[HTTP_SESSION_TEXT];
    snprintf (near, sizeof near, "%s", id);
    near[10] = near[10] == 'a'? 'b': 'a';
    s_cookie_header (cookie, sizeof cookie, near);
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 500));
    snprintf (cookie, sizeof cookie, "%s=%.63s", HTTP_SESSION_COOKIE, id);
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 500));
    s_cookie_header (cookie, sizeof cookie, found->csrf);
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 500));
    cr_assert_null (http_sessions_find (sessions, NULL, tokens, 500));
    cr_assert_null (http_sessions_find (sessions, "herald_session_x=1", tokens, 500));
    /*  A stale cookie beside the live one: the live one is found. */
    snprintf (cookie, sizeof cookie, "%s=%s; %s=%s", HTTP_SESSION_COOKIE, near, HTTP_SESSION_COOKIE, id);
    cr_assert_not_null (http_sessions_find (sessions, cookie, tokens, 600));
    cr_assert_eq (http_sessions_count (sessions), 1);
    /*  Two sessions of one token are two ids. */
    const http_session_t *second = http_sessions_open (sessions, s_token (tokens, text), 700);
    cr_assert_str_neq (second->id, id);
    cr_assert_eq (http_sessions_count (sessions), 2);
    http_sessions_destroy (&sessions);
    cr_assert_null (sessions);
    http_sessions_destroy (&sessions);
    herald_tokens_destroy (&tokens);
}

Test (http_session, revoked_token_ends_its_sessions_at_once)
{
    char text[HERALD_TOKEN_TEXT], other[HERALD_TOKEN_TEXT];
    herald_tokens_t *tokens = s_tokens ("ops", HERALD_ROLE_ADMIN_OPERATE, text);
    cr_assert_eq (herald_tokens_add (tokens, "dash", HERALD_ROLE_ADMIN_READ, 1000, other, s_err, sizeof s_err), 0);
    http_sessions_t *sessions = http_sessions_new (8, 100000, 100000);
    char id[HTTP_SESSION_TEXT], kept[HTTP_SESSION_TEXT], cookie[256];
    snprintf (id, sizeof id, "%s", http_sessions_open (sessions, s_token (tokens, text), 0)->id);
    snprintf (kept, sizeof kept, "%s", http_sessions_open (sessions, s_token (tokens, other), 0)->id);
    s_cookie_header (cookie, sizeof cookie, id);
    cr_assert_not_null (http_sessions_find (sessions, cookie, tokens, 10));
    /*  The token file, read again, no longer holds "ops": its session ends
        at its next request, the other token's stays. */
    cr_assert_eq (herald_tokens_revoke (tokens, "ops"), 0);
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 20));
    cr_assert_eq (http_sessions_count (sessions), 1);
    char kept_cookie[256];
    s_cookie_header (kept_cookie, sizeof kept_cookie, kept);
    cr_assert_not_null (http_sessions_find (sessions, kept_cookie, tokens, 20));
    /*  Ended means ended: a file that holds the token again does not revive it. */
    herald_tokens_t *again = herald_tokens_new ();
    cr_assert_not_null (again);
    char third[HERALD_TOKEN_TEXT];
    cr_assert_eq (herald_tokens_add (again, "ops", HERALD_ROLE_ADMIN_OPERATE, 1000, third, s_err, sizeof s_err), 0);
    cr_assert_null (http_sessions_find (sessions, cookie, again, 30));
    /*  No token file at all (unreadable: every token refused) ends every session. */
    herald_tokens_t *empty = herald_tokens_new ();
    cr_assert_null (http_sessions_find (sessions, kept_cookie, empty, 40));
    cr_assert_eq (http_sessions_count (sessions), 0);
    herald_tokens_destroy (&again);
    herald_tokens_destroy (&empty);
    http_sessions_destroy (&sessions);
    herald_tokens_destroy (&tokens);
}

Test (http_session, changed_role_ends_the_session)
{
    char text[HERALD_TOKEN_TEXT];
    herald_tokens_t *tokens = s_tokens ("ops", HERALD_ROLE_ADMIN_READ, text);
    http_sessions_t *sessions = http_sessions_new (8, 100000, 100000);
    /*  The session was opened when the token (same secret) had the operate role. */
    herald_token_t was = *s_token (tokens, text);
    was.role = HERALD_ROLE_ADMIN_OPERATE;
    char cookie[256];
    s_cookie_header (cookie, sizeof cookie, http_sessions_open (sessions, &was, 0)->id);
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 10));
    cr_assert_eq (http_sessions_count (sessions), 0);
    http_sessions_destroy (&sessions);
    herald_tokens_destroy (&tokens);
}

Test (http_session, sessions_end_when_idle_or_old)
{
    char text[HERALD_TOKEN_TEXT];
    herald_tokens_t *tokens = s_tokens ("ops", HERALD_ROLE_ADMIN_READ, text);
    http_sessions_t *sessions = http_sessions_new (8, 1000, 5000);
    char cookie[256];
    s_cookie_header (cookie, sizeof cookie, http_sessions_open (sessions, s_token (tokens, text), 0)->id);
    /*  Used every 900 ms: alive until its 5 s of age, never idle. */
    for (int64_t now = 900; now < 5000; now += 900)
        cr_assert_not_null (http_sessions_find (sessions, cookie, tokens, now), "at %lld", (long long) now);
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 5000));
    /*  Unused for 1 s: gone. */
    s_cookie_header (cookie, sizeof cookie, http_sessions_open (sessions, s_token (tokens, text), 10000)->id);
    cr_assert_not_null (http_sessions_find (sessions, cookie, tokens, 10999));
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 11999));
    cr_assert_eq (http_sessions_count (sessions), 0);
    http_sessions_destroy (&sessions);
    herald_tokens_destroy (&tokens);
}

Test (http_session, full_set_drops_the_least_recently_used)
{
    char text[HERALD_TOKEN_TEXT];
    herald_tokens_t *tokens = s_tokens ("ops", HERALD_ROLE_ADMIN_READ, text);
    http_sessions_t *sessions = http_sessions_new (2, 100000, 100000);
    char a[256], b[256], c[256];
    s_cookie_header (a, sizeof a, http_sessions_open (sessions, s_token (tokens, text), 0)->id);
    s_cookie_header (b, sizeof b, http_sessions_open (sessions, s_token (tokens, text), 1)->id);
    cr_assert_not_null (http_sessions_find (sessions, a, tokens, 2));     /* a used after b */
    s_cookie_header (c, sizeof c, http_sessions_open (sessions, s_token (tokens, text), 3)->id);
    cr_assert_eq (http_sessions_count (sessions), 2);
    cr_assert_null (http_sessions_find (sessions, b, tokens, 4));
    cr_assert_not_null (http_sessions_find (sessions, a, tokens, 4));
    cr_assert_not_null (http_sessions_find (sessions, c, tokens, 4));
    http_sessions_destroy (&sessions);
    herald_tokens_destroy (&tokens);
}

Test (http_session, close_ends_one_session)
{
    char text[HERALD_TOKEN_TEXT];
    herald_tokens_t *tokens = s_tokens ("ops", HERALD_ROLE_ADMIN_READ, text);
    http_sessions_t *sessions = http_sessions_new (8, 100000, 100000);
    char id[HTTP_SESSION_TEXT], cookie[256], other[256];
    snprintf (id, sizeof id, "%s", http_sessions_open (sessions, s_token (tokens, text), 0)->id);
    s_cookie_header (cookie, sizeof cookie, id);
    s_cookie_header (other, sizeof other, http_sessions_open (sessions, s_token (tokens, text), 0)->id);
    http_sessions_close (sessions, "not-a-session");
    http_sessions_close (sessions, NULL);
    cr_assert_eq (http_sessions_count (sessions), 2);
    http_sessions_close (sessions, id);
    cr_assert_null (http_sessions_find (sessions, cookie, tokens, 1));
    cr_assert_not_null (http_sessions_find (sessions, other, tokens, 1));
    http_sessions_destroy (&sessions);
    herald_tokens_destroy (&tokens);
}

Test (http_session, cookie_attributes)
{
    char out[200];
    http_session_cookie ("abc", false, out, sizeof out);
    cr_assert_str_eq (out, "herald_session=abc; Path=/admin; HttpOnly; SameSite=Strict");
    http_session_cookie ("abc", true, out, sizeof out);
    cr_assert_str_eq (out, "herald_session=abc; Path=/admin; HttpOnly; SameSite=Strict; Secure");
    http_session_cookie (NULL, true, out, sizeof out);
    cr_assert_str_eq (out, "herald_session=; Path=/admin; HttpOnly; SameSite=Strict; Secure; Max-Age=0");
}

Test (http_session, csrf_compares_exactly)
{
    char a[HTTP_SESSION_TEXT], b[HTTP_SESSION_TEXT];
    cr_assert_eq (http_random_text (a), 0);
    cr_assert_eq (http_random_text (b), 0);
    cr_assert_eq (strlen (a), 64);
    cr_assert_eq (strspn (a, "0123456789abcdef"), 64);
    cr_assert_str_neq (a, b);
    cr_assert (http_csrf_equal (a, a));
    char copy[HTTP_SESSION_TEXT];
    snprintf (copy, sizeof copy, "%s", a);
    cr_assert (http_csrf_equal (a, copy));
    cr_assert_not (http_csrf_equal (a, b));
    copy[63] = copy[63] == '0'? '1': '0';
    cr_assert_not (http_csrf_equal (a, copy));
    copy[63] = '\0';
    cr_assert_not (http_csrf_equal (a, copy));          /* a prefix */
    cr_assert_not (http_csrf_equal (a, ""));
    cr_assert_not (http_csrf_equal (a, NULL));
    cr_assert_not (http_csrf_equal ("", ""));           /* no token expected: nothing matches */
    cr_assert_not (http_csrf_equal (NULL, a));
}

Test (http_session, origin_must_be_this_endpoint)
{
    cr_assert (http_origin_ok (NULL, "127.0.0.1:8470", false));
    cr_assert (http_origin_ok ("http://127.0.0.1:8470", "127.0.0.1:8470", false));
    cr_assert (http_origin_ok ("https://herald.example:8470", "herald.example:8470", true));
    cr_assert_not (http_origin_ok ("http://herald.example:8470", "herald.example:8470", true));
    cr_assert_not (http_origin_ok ("http://evil.example", "127.0.0.1:8470", false));
    cr_assert_not (http_origin_ok ("http://127.0.0.1:8471", "127.0.0.1:8470", false));
    cr_assert_not (http_origin_ok ("http://127.0.0.1:8470.evil.example", "127.0.0.1:8470", false));
    cr_assert_not (http_origin_ok ("null", "127.0.0.1:8470", false));
    cr_assert_not (http_origin_ok ("http://127.0.0.1:8470", NULL, false));
}

Test (http_session, host_must_not_be_a_foreign_name)
{
    cr_assert (http_host_ok ("127.0.0.1:8470", "127.0.0.1"));
    cr_assert (http_host_ok ("127.0.0.1", "127.0.0.1"));
    cr_assert (http_host_ok ("10.1.2.3:8470", "0.0.0.0"));
    cr_assert (http_host_ok ("localhost:8470", "127.0.0.1"));
    cr_assert (http_host_ok ("LocalHost", "127.0.0.1"));
    cr_assert (http_host_ok ("[::1]:8470", "::1"));
    cr_assert (http_host_ok ("[::1]", "::1"));
    cr_assert (http_host_ok ("herald.internal:8470", "herald.internal"));
    cr_assert_not (http_host_ok ("rebind.evil.example:8470", "127.0.0.1"));
    cr_assert_not (http_host_ok ("127.0.0.1.evil.example:8470", "127.0.0.1"));
    cr_assert_not (http_host_ok ("localhost.evil.example", "127.0.0.1"));
    cr_assert_not (http_host_ok ("127.0.0.1:84x0", "127.0.0.1"));
    cr_assert_not (http_host_ok ("[::1]x", "::1"));
    cr_assert_not (http_host_ok ("[not-v6]:80", "::1"));
    cr_assert_not (http_host_ok ("", "127.0.0.1"));
    cr_assert_not (http_host_ok (NULL, "127.0.0.1"));
    cr_assert_not (http_host_ok (":8470", ""));
}
