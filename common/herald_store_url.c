/*  herald_store_url: the form of a database store URL (see herald_store_url.h). */
#include <stdio.h>
#include <string.h>

#include "herald_store_url.h"

bool
herald_store_is_url (const char *text)
{
    return text && strstr (text, "://") != NULL;
}

/*  A port: 1..65535, digits only. */
static bool
s_port_ok (const char *p, size_t len)
{
    if (len == 0 || len > 5)
        return false;
    long value = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        value = value * 10 + (p[i] - '0');
    }
    return value >= 1 && value <= 65535;
}

/*  One host of the list: host, host:port, [v6], [v6]:port, or :port. */
static int
s_host_check (const char *p, size_t len, char *why, size_t size)
{
    const char *port = NULL;
    if (len > 0 && p[0] == '[') {
        const char *close = memchr (p, ']', len);
        if (!close) {
            snprintf (why, size, "an IPv6 host must be closed by ']': '%.*s'", (int) len, p);
            return -1;
        }
        if ((size_t) (close - p) + 1 < len) {
            if (close[1] != ':') {
                snprintf (why, size, "unexpected text after the IPv6 host: '%.*s'", (int) len, p);
                return -1;
            }
            port = close + 2;
        }
    }
    else {
        const char *colon = memchr (p, ':', len);
        if (colon)
            port = colon + 1;
        for (const char *c = p; c < (colon? colon: p + len); c++)
            if (*c == '/' || *c == ' ' || *c == '@') {
                snprintf (why, size, "'%.*s' is not a host name", (int) len, p);
                return -1;
            }
    }
    if (port && !s_port_ok (port, (size_t) (p + len - port))) {
        snprintf (why, size, "port '%.*s' must be a number between 1 and 65535", (int) (p + len - port), port);
        return -1;
    }
    return 0;
}

int
herald_store_url_check (const char *text, char *why, size_t size)
{
    const char *rest = NULL;
    if (strncmp (text, "postgresql://", 13) == 0)
        rest = text + 13;
    else
    if (strncmp (text, "postgres://", 11) == 0)
        rest = text + 11;
    else {
        snprintf (why, size, "a store URL must start with postgresql:// (or postgres://); a path names the"
                  " embedded store");
        return -1;
    }
    /*  authority = [user@]hosts, up to the first '/' or '?' */
    size_t authority = strcspn (rest, "/?");
    const char *at = NULL;
    for (const char *p = rest; p < rest + authority; p++)
        if (*p == '@')
            at = p;
    const char *hosts = rest;
    if (at) {
        if (memchr (rest, ':', (size_t) (at - rest))) {
            snprintf (why, size, "the URL holds a password: remove it (keep 'user@') and give the password in"
                      " the environment, PGPASSWORD or a PGPASSFILE entry (~/.pgpass)");
            return -1;
        }
        if (at == rest) {
            snprintf (why, size, "an empty user name before '@'");
            return -1;
        }
        hosts = at + 1;
    }
    const char *end = rest + authority;
    for (const char *p = hosts; p < end; ) {
        const char *comma = memchr (p, ',', (size_t) (end - p));
        const char *stop = comma? comma: end;
        if (comma && stop == p) {
            snprintf (why, size, "an empty host in the host list");
            return -1;
        }
        if (s_host_check (p, (size_t) (stop - p), why, size) != 0)
            return -1;
        p = comma? comma + 1: end;
    }
    const char *query = strchr (end, '?');
    const char *db = *end == '/'? end + 1: NULL;
    if (db && strchr (db, '/') && (!query || strchr (db, '/') < query)) {
        snprintf (why, size, "a database name cannot hold '/'");
        return -1;
    }
    for (const char *p = query? query + 1: NULL; p && *p; ) {
        size_t len = strcspn (p, "&");
        const char *eq = memchr (p, '=', len);
        if (!eq || eq == p) {
            snprintf (why, size, "parameter '%.*s' must be key=value", (int) len, p);
            return -1;
        }
        if ((size_t) (eq - p) == 8 && strncmp (p, "password", 8) == 0) {
            snprintf (why, size, "the URL holds a password parameter: remove it and give the password in the"
                      " environment, PGPASSWORD or a PGPASSFILE entry (~/.pgpass)");
            return -1;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return 0;
}
