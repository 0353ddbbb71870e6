/*  http_session: browser sessions, CSRF tokens, Origin and Host checks (see http_session.h). */
#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "http_session.h"

typedef struct {
    bool used;
    http_session_t session;
} s_slot_t;

struct http_sessions {
    s_slot_t *slots;
    size_t max;
    size_t count;
    int64_t idle_ms;
    int64_t max_age_ms;
};

http_sessions_t *
http_sessions_new (size_t max, int64_t idle_ms, int64_t max_age_ms)
{
    http_sessions_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max = max? max: 1;
    self->slots = calloc (self->max, sizeof *self->slots);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->idle_ms = idle_ms;
    self->max_age_ms = max_age_ms;
    return self;
}

void
http_sessions_destroy (http_sessions_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_sessions_t *self = *self_p;
    sodium_memzero (self->slots, self->max * sizeof *self->slots);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

int
http_random_text (char *out)
{
    unsigned char bytes[32];
    if (getrandom (bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes)
        return -1;
    sodium_bin2hex (out, HTTP_SESSION_TEXT, bytes, sizeof bytes);
    sodium_memzero (bytes, sizeof bytes);
    return 0;
}

static void
s_end (http_sessions_t *self, s_slot_t *slot)
{
    sodium_memzero (slot, sizeof *slot);
    self->count--;
}

const http_session_t *
http_sessions_open (http_sessions_t *self, const herald_token_t *token, int64_t now)
{
    s_slot_t *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < self->max; i++) {
        s_slot_t *slot = &self->slots[i];
        if (slot->used && (now - slot->session.last_seen >= self->idle_ms
                       ||  now - slot->session.opened >= self->max_age_ms))
            s_end (self, slot);
        if (!slot->used) {
            if (!free_slot)
                free_slot = slot;
        }
        else
        if (!oldest || slot->session.last_seen < oldest->session.last_seen)
            oldest = slot;
    }
    if (!free_slot) {
        s_end (self, oldest);
        free_slot = oldest;
    }
    http_session_t *session = &free_slot->session;
    if (http_random_text (session->id) != 0 || http_random_text (session->csrf) != 0) {
        sodium_memzero (free_slot, sizeof *free_slot);
        return NULL;
    }
    memcpy (session->token_hash, token->hash, sizeof session->token_hash);
    snprintf (session->token_name, sizeof session->token_name, "%s", token->name);
    session->role = token->role;
    session->opened = now;
    session->last_seen = now;
    free_slot->used = true;
    self->count++;
    return session;
}

/*  The slot holding id (HTTP_SESSION_TEXT - 1 hex digits), compared with
    every slot in constant time, or NULL. */
static s_slot_t *
s_slot_of (http_sessions_t *self, const char *id, size_t len)
{
    if (len != HTTP_SESSION_TEXT - 1)
        return NULL;
    s_slot_t *found = NULL;
    for (size_t i = 0; i < self->max; i++)
        if (self->slots[i].used && sodium_memcmp (self->slots[i].session.id, id, len) == 0)
            found = &self->slots[i];
    return found;
}

/*  Whether tokens still holds the session's token, with its role. */
static bool
s_token_holds (const http_session_t *session, const herald_tokens_t *tokens)
{
    bool holds = false;
    const herald_token_t *token;
    for (size_t i = 0; (token = herald_tokens_at (tokens, i)); i++)
        if (sodium_memcmp (token->hash, session->token_hash, sizeof token->hash) == 0 && token->role == session->role)
            holds = true;
    return holds;
}

const http_session_t *
http_sessions_find (http_sessions_t *self, const char *cookie_header, const herald_tokens_t *tokens, int64_t now)
{
    static const char name[] = HTTP_SESSION_COOKIE;
    for (const char *p = cookie_header; p && *p; ) {
        while (*p == ' ' || *p == ';' || *p == '\t')
            p++;
        size_t len = strcspn (p, ";");
        const char *eq = memchr (p, '=', len);
        if (eq && (size_t) (eq - p) == sizeof name - 1 && memcmp (p, name, sizeof name - 1) == 0) {
            const char *value = eq + 1;
            size_t value_len = len - (size_t) (value - p);
            while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
                value_len--;
            s_slot_t *slot = s_slot_of (self, value, value_len);
            if (slot) {
                http_session_t *session = &slot->session;
                if (now - session->last_seen >= self->idle_ms || now - session->opened >= self->max_age_ms
                ||  !s_token_holds (session, tokens))
                    s_end (self, slot);
                else {
                    session->last_seen = now;
                    return session;
                }
            }
        }
        p += len;
    }
    return NULL;
}

void
http_sessions_close (http_sessions_t *self, const char *id)
{
    s_slot_t *slot = id? s_slot_of (self, id, strlen (id)): NULL;
    if (slot)
        s_end (self, slot);
}

size_t
http_sessions_count (const http_sessions_t *self)
{
    return self? self->count: 0;
}

void
http_session_cookie (const char *id, bool tls, char *out, size_t outlen)
{
    snprintf (out, outlen, "%s=%s; Path=/admin; HttpOnly; SameSite=Strict%s%s", HTTP_SESSION_COOKIE, id? id: "",
              tls? "; Secure": "", id? "": "; Max-Age=0");
}

bool
http_csrf_equal (const char *expected, const char *given)
{
    if (!expected || !given || !*expected)
        return false;
    size_t len = strlen (expected);
    if (strlen (given) != len)
        return false;
    return sodium_memcmp (expected, given, len) == 0;
}

bool
http_origin_ok (const char *origin, const char *host, bool tls)
{
    if (!origin)
        return true;
    if (!host)
        return false;
    const char *scheme = tls? "https://": "http://";
    size_t scheme_len = strlen (scheme);
    return strncasecmp (origin, scheme, scheme_len) == 0 && strcasecmp (origin + scheme_len, host) == 0;
}

/*  Whether text (len bytes) is a port: 1 to 5 digits. */
static bool
s_port (const char *text, size_t len)
{
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++)
        if (text[i] < '0' || text[i] > '9')
            return false;
    return true;
}

bool
http_host_ok (const char *host, const char *listen_host)
{
    if (!host || !*host)
        return false;
    char name[256];
    size_t len = strlen (host);
    if (host[0] == '[') {
        const char *close = strchr (host, ']');
        if (!close || (size_t) (close - host - 1) >= sizeof name)
            return false;
        size_t name_len = (size_t) (close - host - 1);
        memcpy (name, host + 1, name_len);
        name[name_len] = '\0';
        const char *rest = close + 1;
        if (*rest && (*rest != ':' || !s_port (rest + 1, strlen (rest + 1))))
            return false;
        unsigned char addr[16];
        return inet_pton (AF_INET6, name, addr) == 1;
    }
    const char *colon = strchr (host, ':');
    size_t name_len = colon? (size_t) (colon - host): len;
    if (name_len == 0 || name_len >= sizeof name || (colon && !s_port (colon + 1, strlen (colon + 1))))
        return false;
    memcpy (name, host, name_len);
    name[name_len] = '\0';
    unsigned char addr[4];
    if (inet_pton (AF_INET, name, addr) == 1 || strcasecmp (name, "localhost") == 0)
        return true;
    return listen_host && *listen_host && strcasecmp (name, listen_host) == 0;
}
