/*  herald_config: the schema table, walked once over the node tree that
    config_yaml.c builds from the YAML text, fills herald_config_t. Every key
    the configuration accepts is one row of s_schema: its path, type, bounds,
    default and target field. The compiled-in defaults are those rows' default
    texts, converted by the same code that reads YAML, so there is one source
    of truth for both. herald_config_explain lives in config_explain.c.

    YAML is external input: nothing here asserts on it. Errors read
    "FILE:LINE: key.path: what is wrong" and parsing stops at the first one. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"
#include "herald_keys.h"
#include "herald_store_url.h"

#define S_MAX_FILE      (4 * 1024 * 1024)

#define S_MS_SECOND     INT64_C (1000)
#define S_MS_MINUTE     (60 * S_MS_SECOND)
#define S_MS_HOUR       (60 * S_MS_MINUTE)
#define S_MS_DAY        (24 * S_MS_HOUR)

/* ------------------------------------------------------------------------ */
/*  Schema                                                                   */

typedef enum {
    /* containers */
    S_MAP,              /* mapping with the keys the schema lists */
    S_DICT,             /* mapping with user-chosen keys, each read by row "PATTERN.*" */
    S_CHANNEL,          /* channels.NAME: creates a channel, then a S_MAP */
    S_EVENT,            /* events.NAME: creates an event type, then a S_MAP */
    S_WORKERS,          /* workers.NAME: process count of a known channel */
    S_HEADER,           /* http.headers.NAME: "value" or {env: VAR} */
    S_PATHLIST,         /* sequence of dotted paths (events.*.required) */
    S_FANOUT,           /* sequence of channel names (events.*.fanout) */
    S_KEYLIST,          /* sequence of .public key files granting row.role (security.*) */
    /* scalars */
    S_STR,              /* text without control characters; choices restrict it */
    S_PATH,             /* dotted path into the event data */
    S_ENVNAME,          /* environment variable name */
    S_ENDPOINT,         /* tcp:// ipc:// inproc:// */
    S_HOSTPORT,         /* HOST:PORT of the HTTP endpoint, "" = none */
    S_URL,              /* choices are the allowed schemes */
    S_STORE,            /* a path (the embedded store) or a database URL (herald_store_url.h) */
    S_INT,              /* int, min..max */
    S_SIZE,             /* size_t, "256KiB" */
    S_DURATION,         /* int64_t ms, "500ms" */
    S_BACKOFF,          /* "MIN..MAX": two int64_t ms at offset and offset2 */
    S_RATE,             /* double per second, "10/s" */
    S_BOOL,             /* bool, true | false */
    S_ENUM              /* int-sized enum: index in choices */
} s_type_t;

typedef enum {
    S_IN_CONFIG,        /* offsets into herald_config_t */
    S_IN_BROKER,        /* herald_broker_config_t */
    S_IN_CHANNEL,       /* herald_channel_t of the channel being read */
    S_IN_EVENT,         /* herald_event_type_t of the event type being read */
    S_IN_SECURITY       /* herald_security_config_t */
} s_scope_t;

typedef struct {
    const char *pattern;            /* key path, "*" for a user-chosen key */
    s_type_t type;
    s_scope_t scope;
    size_t offset;                  /* target field */
    size_t size;                    /* target field size (string capacity) */
    size_t offset2;                 /* second field (S_BACKOFF maximum) */
    int64_t min;                    /* bounds for S_INT, S_SIZE, S_DURATION, S_BACKOFF */
    int64_t max;
    const char *fallback;           /* compiled-in default as YAML text, NULL for none */
    const char *const *choices;     /* S_ENUM names, S_STR allowed values, S_URL schemes */
    bool nonempty;                  /* "" is refused */
    unsigned role;                  /* S_KEYLIST: the herald_role_t its keys get */
} s_row_t;

/*  Designated initializers naming a row's target field. */
#define S_FIELD(type, field) .offset = offsetof (type, field), .size = sizeof (((type *) 0)->field)
#define S_BROKER(field)  .scope = S_IN_BROKER, S_FIELD (herald_broker_config_t, field)
#define S_CHAN(field)    .scope = S_IN_CHANNEL, S_FIELD (herald_channel_t, field)
#define S_EVT(field)     .scope = S_IN_EVENT, S_FIELD (herald_event_type_t, field)
#define S_SEC(field)     .scope = S_IN_SECURITY, S_FIELD (herald_security_config_t, field)

static const char *const s_endpoint_schemes[] = { "tcp://", "ipc://", "inproc://", NULL };
static const char *const s_driver_names[] = { "file", "noop", "smtp", "http", NULL };
static const char *const s_tls_names[] = { "starttls", "implicit", "none", NULL };
static const char *const s_smtp_schemes[] = { "smtp://", "smtps://", NULL };
static const char *const s_http_schemes[] = { "http://", "https://", NULL };
static const char *const s_methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE", NULL };

static const s_row_t s_schema[] = {
    /* Root keys, in the order they are read: channels before events and workers,
       which name channels. */
    { .pattern = "broker", .type = S_MAP },
    { .pattern = "broker.listen", .type = S_MAP },
    { .pattern = "broker.listen.producers", .type = S_ENDPOINT, S_BROKER (producers), .fallback = "tcp://127.0.0.1:5570" },
    { .pattern = "broker.listen.workers", .type = S_ENDPOINT, S_BROKER (workers), .fallback = "tcp://127.0.0.1:5571" },
    { .pattern = "broker.listen.admin", .type = S_ENDPOINT, S_BROKER (admin), .fallback = "tcp://127.0.0.1:5572" },
    { .pattern = "broker.listen.http", .type = S_HOSTPORT, S_BROKER (http) },
    { .pattern = "broker.store", .type = S_STORE, S_BROKER (store), .fallback = "var/herald.db", .nonempty = true },
    { .pattern = "broker.max_event_bytes", .type = S_SIZE, S_BROKER (max_event_bytes),
      .min = 1024, .max = 16 * 1024 * 1024, .fallback = "256KiB" },
    { .pattern = "broker.batch_max", .type = S_INT, S_BROKER (batch_max), .min = 1, .max = 65536, .fallback = "2048" },
    { .pattern = "broker.dedup_retention", .type = S_DURATION, S_BROKER (dedup_retention_ms),
      .min = S_MS_MINUTE, .max = 3650 * S_MS_DAY, .fallback = "7d" },
    { .pattern = "broker.heartbeat", .type = S_DURATION, S_BROKER (heartbeat_ms), .min = 10, .max = 60 * S_MS_SECOND,
      .fallback = "1s" },
    { .pattern = "broker.heartbeat_liveness", .type = S_INT, S_BROKER (heartbeat_liveness), .min = 1, .max = 100,
      .fallback = "3" },
    { .pattern = "broker.shutdown_timeout", .type = S_DURATION, S_BROKER (shutdown_timeout_ms), .min = 0,
      .max = S_MS_HOUR, .fallback = "10s" },
    { .pattern = "broker.queue_window", .type = S_INT, S_BROKER (queue_window), .min = 100, .max = 10000000,
      .fallback = "100000" },
    { .pattern = "broker.max_pending_events", .type = S_INT, S_BROKER (max_pending_events), .min = 0, .max = 1000000000,
      .fallback = "1000000" },
    { .pattern = "broker.hwm", .type = S_INT, S_BROKER (hwm), .min = 0, .max = 10000000, .fallback = "10000" },
    { .pattern = "broker.journal_segment", .type = S_SIZE, S_BROKER (journal_segment_bytes),
      .min = 1024 * 1024, .max = 1024 * 1024 * 1024, .fallback = "32MiB" },
    { .pattern = "broker.journal_max", .type = S_SIZE, S_BROKER (journal_max_bytes),
      .min = 64 * 1024 * 1024, .max = (long long) 1 << 50, .fallback = "4GiB" },
    { .pattern = "broker.max_unread_replies", .type = S_INT, S_BROKER (max_unread_replies), .min = 1,
      .max = 10000000, .fallback = "10000" },
    { .pattern = "broker.max_connections", .type = S_INT, S_BROKER (max_connections), .min = 1, .max = 1000000,
      .fallback = "1024" },
    { .pattern = "broker.handshake_timeout", .type = S_DURATION, S_BROKER (handshake_timeout_ms), .min = 100,
      .max = 60 * S_MS_SECOND, .fallback = "5s" },
    { .pattern = "broker.http_max_connections", .type = S_INT, S_BROKER (http_max_connections), .min = 1,
      .max = 100000, .fallback = "256" },
    { .pattern = "broker.http_timeout", .type = S_DURATION, S_BROKER (http_timeout_ms), .min = S_MS_SECOND,
      .max = S_MS_HOUR, .fallback = "10s" },
    { .pattern = "broker.takeover_timeout", .type = S_DURATION, S_BROKER (takeover_timeout_ms), .min = S_MS_SECOND,
      .max = S_MS_HOUR, .fallback = "10s" },

    { .pattern = "channels", .type = S_DICT },
    { .pattern = "channels.*", .type = S_CHANNEL },
    { .pattern = "channels.*.driver", .type = S_ENUM, S_CHAN (driver), .choices = s_driver_names },
    { .pattern = "channels.*.capacity", .type = S_INT, S_CHAN (capacity), .min = 1, .max = 10000, .fallback = "32" },
    { .pattern = "channels.*.prefetch", .type = S_INT, S_CHAN (prefetch), .min = 0, .max = 10000 },
    { .pattern = "channels.*.max_workers", .type = S_INT, S_CHAN (max_workers), .min = 1, .max = 1024,
      .fallback = "64" },
    /*  Issue wording for the http driver: concurrent requests per worker. */
    { .pattern = "channels.*.concurrency", .type = S_INT, S_CHAN (capacity), .min = 1, .max = 10000 },
    { .pattern = "channels.*.retry", .type = S_MAP },
    { .pattern = "channels.*.retry.max_attempts", .type = S_INT, S_CHAN (max_attempts), .min = 1, .max = 1000,
      .fallback = "8" },
    { .pattern = "channels.*.retry.max_throttled", .type = S_INT, S_CHAN (max_throttled), .min = 1,
      .max = 1000000, .fallback = "200" },
    { .pattern = "channels.*.retry.backoff", .type = S_BACKOFF, S_CHAN (backoff_min_ms),
      .offset2 = offsetof (herald_channel_t, backoff_max_ms),
      .min = 1, .max = 30 * S_MS_DAY, .fallback = "500ms..10m" },
    { .pattern = "channels.*.lease", .type = S_DURATION, S_CHAN (lease_ms), .min = S_MS_SECOND, .max = S_MS_DAY,
      .fallback = "60s" },
    { .pattern = "channels.*.max_in_flight", .type = S_INT, S_CHAN (max_in_flight), .min = 0, .max = INT_MAX,
      .fallback = "0" },
    { .pattern = "channels.*.rate", .type = S_RATE, S_CHAN (rate_per_sec), .fallback = "0" },
    { .pattern = "channels.*.burst", .type = S_INT, S_CHAN (burst), .min = 1, .max = 10000000 },
    { .pattern = "channels.*.dir", .type = S_STR, S_CHAN (dir), .nonempty = true },
    { .pattern = "channels.*.smtp", .type = S_MAP },
    { .pattern = "channels.*.smtp.url", .type = S_URL, S_CHAN (smtp.url), .choices = s_smtp_schemes },
    { .pattern = "channels.*.smtp.tls", .type = S_ENUM, S_CHAN (smtp.tls), .choices = s_tls_names, .fallback = "starttls" },
    { .pattern = "channels.*.smtp.from", .type = S_STR, S_CHAN (smtp.from), .nonempty = true },
    { .pattern = "channels.*.smtp.to", .type = S_STR, S_CHAN (smtp.to), .nonempty = true },
    { .pattern = "channels.*.smtp.subject", .type = S_STR, S_CHAN (smtp.subject), .nonempty = true },
    { .pattern = "channels.*.smtp.text_template", .type = S_STR, S_CHAN (smtp.text_template), .nonempty = true },
    { .pattern = "channels.*.smtp.html_template", .type = S_STR, S_CHAN (smtp.html_template), .nonempty = true },
    { .pattern = "channels.*.smtp.username", .type = S_STR, S_CHAN (smtp.username) },
    { .pattern = "channels.*.smtp.password_env", .type = S_ENVNAME, S_CHAN (smtp.password_env) },
    { .pattern = "channels.*.smtp.ca_file", .type = S_STR, S_CHAN (smtp.ca_file) },
    { .pattern = "channels.*.smtp.verify_peer", .type = S_BOOL, S_CHAN (smtp.verify_peer), .fallback = "true" },
    { .pattern = "channels.*.smtp.timeout", .type = S_DURATION, S_CHAN (smtp.timeout_ms), .min = S_MS_SECOND,
      .max = S_MS_HOUR, .fallback = "30s" },
    { .pattern = "channels.*.http", .type = S_MAP },
    { .pattern = "channels.*.http.method", .type = S_STR, S_CHAN (http.method), .choices = s_methods, .fallback = "POST" },
    { .pattern = "channels.*.http.url", .type = S_URL, S_CHAN (http.url), .choices = s_http_schemes },
    { .pattern = "channels.*.http.headers", .type = S_DICT },
    { .pattern = "channels.*.http.headers.*", .type = S_HEADER },
    { .pattern = "channels.*.http.body_template", .type = S_STR, S_CHAN (http.body_template) },
    { .pattern = "channels.*.http.connect_timeout", .type = S_DURATION, S_CHAN (http.connect_timeout_ms), .min = 1,
      .max = S_MS_HOUR, .fallback = "5s" },
    { .pattern = "channels.*.http.timeout", .type = S_DURATION, S_CHAN (http.timeout_ms), .min = 1, .max = S_MS_HOUR,
      .fallback = "30s" },
    { .pattern = "channels.*.http.follow_redirects", .type = S_BOOL, S_CHAN (http.follow_redirects), .fallback = "false" },
    { .pattern = "channels.*.http.ca_file", .type = S_STR, S_CHAN (http.ca_file) },
    { .pattern = "channels.*.http.verify_peer", .type = S_BOOL, S_CHAN (http.verify_peer), .fallback = "true" },

    { .pattern = "events", .type = S_DICT },
    { .pattern = "events.*", .type = S_EVENT },
    { .pattern = "events.*.key", .type = S_PATH, S_EVT (key) },
    { .pattern = "events.*.required", .type = S_PATHLIST },
    { .pattern = "events.*.fanout", .type = S_FANOUT },

    { .pattern = "workers", .type = S_DICT },
    { .pattern = "workers.*", .type = S_WORKERS, .min = 0, .max = 64 },

    /*  After channels: security.workers names them. Checked as a whole by
        s_finish_security once the tree is read. */
    { .pattern = "security", .type = S_MAP },
    { .pattern = "security.broker_key", .type = S_STR, S_SEC (broker_key), .nonempty = true },
    { .pattern = "security.plaintext", .type = S_BOOL, S_SEC (plaintext) },
    { .pattern = "security.producers", .type = S_KEYLIST, .role = HERALD_ROLE_PRODUCER },
    { .pattern = "security.workers", .type = S_DICT },
    { .pattern = "security.workers.*", .type = S_KEYLIST, .role = HERALD_ROLE_WORKER },
    { .pattern = "security.admin_read", .type = S_KEYLIST, .role = HERALD_ROLE_ADMIN_READ },
    { .pattern = "security.admin_operate", .type = S_KEYLIST, .role = HERALD_ROLE_ADMIN_OPERATE },
    { .pattern = "security.tokens_file", .type = S_STR, S_SEC (tokens_file), .nonempty = true },
    { .pattern = "security.tls_cert", .type = S_STR, S_SEC (tls_cert), .nonempty = true },
    { .pattern = "security.tls_key", .type = S_STR, S_SEC (tls_key), .nonempty = true },
};

#define S_SCHEMA_ROWS (sizeof s_schema / sizeof s_schema[0])

/* ------------------------------------------------------------------------ */
/*  Loader state                                                             */

typedef struct {
    const char *name;               /* file name for messages */
    char *err;                      /* first error, "FILE:LINE: path: what" */
    size_t errlen;
    herald_config_t *cfg;           /* being filled */
    herald_channel_t *channel;      /* channel being read, or NULL */
    herald_event_type_t *event;     /* event type being read, or NULL */
} s_loader_t;

static int
s_apply (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path);

static int
s_fail (s_loader_t *self, int line, const char *path, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
s_fail (s_loader_t *self, int line, const char *path, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    config_vfail (self->name, self->err, self->errlen, line, path, fmt, args);
    va_end (args);
    return -1;
}

/*  Copies text into buf for a message: printable ASCII kept, the rest shown
    as '?', cut at 60 characters. */
static const char *
s_show (const char *text, char *buf, size_t size)
{
    size_t o = 0;
    for (const char *p = text; *p && o + 4 < size && o < 60; p++) {
        unsigned char c = (unsigned char) *p;
        buf[o++] = c >= 0x20 && c < 0x7f? (char) c: '?';
    }
    if (*text && strlen (text) > o && o + 4 <= size) {
        memcpy (buf + o, "...", 3);
        o += 3;
    }
    buf[o < size? o: size - 1] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------ */
/*  Scalar conversions                                                       */

static bool
s_is_digit (char c)
{
    return c >= '0' && c <= '9';
}

/*  Reads the leading decimal digits of text as a non-negative int64. Sets *end
    past them. -1 on no digits or overflow. */
static int
s_parse_digits (const char *text, int64_t *value, const char **end)
{
    if (!s_is_digit (*text))
        return -1;
    errno = 0;
    char *stop = NULL;
    long long v = strtoll (text, &stop, 10);
    if (errno == ERANGE || stop == text || v < 0)
        return -1;
    *value = (int64_t) v;
    *end = stop;
    return 0;
}

int
herald_parse_duration (const char *text, int64_t *ms)
{
    if (!text || !ms)
        return -1;
    int64_t value;
    const char *unit;
    if (s_parse_digits (text, &value, &unit))
        return -1;
    int64_t scale;
    if (*unit == '\0' || strcmp (unit, "ms") == 0)
        scale = 1;
    else
    if (strcmp (unit, "s") == 0)
        scale = S_MS_SECOND;
    else
    if (strcmp (unit, "m") == 0)
        scale = S_MS_MINUTE;
    else
    if (strcmp (unit, "h") == 0)
        scale = S_MS_HOUR;
    else
    if (strcmp (unit, "d") == 0)
        scale = S_MS_DAY;
    else
        return -1;
    if (value > INT64_MAX / scale)
        return -1;
    *ms = value * scale;
    return 0;
}

int
herald_parse_size (const char *text, size_t *bytes)
{
    if (!text || !bytes)
        return -1;
    int64_t value;
    const char *unit;
    if (s_parse_digits (text, &value, &unit))
        return -1;
    uint64_t scale;
    if (*unit == '\0')
        scale = 1;
    else
    if (strcmp (unit, "KiB") == 0)
        scale = UINT64_C (1) << 10;
    else
    if (strcmp (unit, "MiB") == 0)
        scale = UINT64_C (1) << 20;
    else
    if (strcmp (unit, "GiB") == 0)
        scale = UINT64_C (1) << 30;
    else
        return -1;
    if ((uint64_t) value > SIZE_MAX / scale)
        return -1;
    *bytes = (size_t) ((uint64_t) value * scale);
    return 0;
}

/*  "10/s", "600/m", "36000/h" or a plain number per second; 0..1e6 per second. */
static int
s_parse_rate (const char *text, double *per_sec)
{
    if (!s_is_digit (*text))
        return -1;
    errno = 0;
    char *end = NULL;
    double value = strtod (text, &end);
    if (errno == ERANGE || end == text || !isfinite (value) || value < 0)
        return -1;
    /* strtod also reads hex and exponents: only digits and one '.' are a rate */
    for (const char *p = text; p < end; p++)
        if (!s_is_digit (*p) && *p != '.')
            return -1;
    if (*end == '\0' || strcmp (end, "/s") == 0)
        ;
    else
    if (strcmp (end, "/m") == 0)
        value /= 60.0;
    else
    if (strcmp (end, "/h") == 0)
        value /= 3600.0;
    else
        return -1;
    if (value > 1e6)
        return -1;
    *per_sec = value;
    return 0;
}

/*  Inverse of herald_parse_duration, for messages and check-config. */
const char *
config_format_duration (int64_t ms, char *buf, size_t size)
{
    if (ms != 0 && ms % S_MS_DAY == 0)
        snprintf (buf, size, "%" PRId64 "d", ms / S_MS_DAY);
    else
    if (ms != 0 && ms % S_MS_HOUR == 0)
        snprintf (buf, size, "%" PRId64 "h", ms / S_MS_HOUR);
    else
    if (ms != 0 && ms % S_MS_MINUTE == 0)
        snprintf (buf, size, "%" PRId64 "m", ms / S_MS_MINUTE);
    else
    if (ms != 0 && ms % S_MS_SECOND == 0)
        snprintf (buf, size, "%" PRId64 "s", ms / S_MS_SECOND);
    else
        snprintf (buf, size, "%" PRId64 "ms", ms);
    return buf;
}

/*  Inverse of herald_parse_size, for messages and check-config. */
const char *
config_format_size (uint64_t bytes, char *buf, size_t size)
{
    if (bytes != 0 && bytes % (UINT64_C (1) << 30) == 0)
        snprintf (buf, size, "%" PRIu64 "GiB", bytes >> 30);
    else
    if (bytes != 0 && bytes % (UINT64_C (1) << 20) == 0)
        snprintf (buf, size, "%" PRIu64 "MiB", bytes >> 20);
    else
    if (bytes != 0 && bytes % (UINT64_C (1) << 10) == 0)
        snprintf (buf, size, "%" PRIu64 "KiB", bytes >> 10);
    else
        snprintf (buf, size, "%" PRIu64, bytes);
    return buf;
}

static bool
s_has_control (const char *text)
{
    for (const char *p = text; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/*  Channel names: 1..63 of [A-Za-z0-9_-]. */
static bool
s_valid_channel_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len >= HERALD_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!(s_is_digit (*p) || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || *p == '_' || *p == '-'))
            return false;
    return true;
}

/*  Event type names: 1..63 of [A-Za-z0-9._:/-] (CloudEvents types are
    reverse-DNS like "com.shop.order.confirmed"). */
static bool
s_valid_event_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len >= HERALD_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!(s_is_digit (*p) || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || *p == '_' || *p == '-' || *p == '.' || *p == ':' || *p == '/'))
            return false;
    return true;
}

/*  Dotted paths into the event data: non-empty segments, no control characters. */
static bool
s_valid_dotted (const char *path)
{
    if (*path == '\0' || *path == '.' || s_has_control (path))
        return false;
    size_t len = strlen (path);
    if (path[len - 1] == '.' || strstr (path, ".."))
        return false;
    return true;
}

static bool
s_valid_env_name (const char *name)
{
    if (*name == '\0' || s_is_digit (*name))
        return false;
    for (const char *p = name; *p; p++)
        if (!(s_is_digit (*p) || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
            return false;
    return true;
}

/*  HTTP header names are RFC 9110 tokens. */
static bool
s_valid_header_name (const char *name)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (!(s_is_digit (*p) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c && strchr ("!#$%&'*+-.^_`|~", c))))
            return false;
    }
    return true;
}

static const char *
s_type_desc (s_type_t type)
{
    switch (type) {
        case S_MAP: case S_DICT: case S_CHANNEL: case S_EVENT:
            return "a mapping";
        case S_PATHLIST: case S_FANOUT: case S_KEYLIST:
            return "a list";
        case S_INT: case S_WORKERS:
            return "an integer";
        case S_SIZE:
            return "a size";
        case S_DURATION:
            return "a duration";
        case S_BACKOFF:
            return "a MIN..MAX range of durations";
        case S_RATE:
            return "a rate";
        case S_BOOL:
            return "true or false";
        case S_HEADER:
            return "a string or {env: NAME}";
        default:
            return "a string";
    }
}

static const char *
s_kind_desc (config_kind_t kind)
{
    return kind == CONFIG_NODE_MAP? "a mapping": kind == CONFIG_NODE_SEQ? "a list": "a scalar";
}

static void
s_store (void *base, size_t offset, const void *value, size_t size)
{
    memcpy ((char *) base + offset, value, size);
}

static int
s_check_range (s_loader_t *self, const s_row_t *row, int line, const char *path, int64_t value)
{
    if (value >= row->min && value <= row->max)
        return 0;
    if (row->max == INT_MAX || row->max == INT64_MAX)
        return s_fail (self, line, path, "must be at least %" PRId64 ", got %" PRId64, row->min, value);
    return s_fail (self, line, path, "must be between %" PRId64 " and %" PRId64 ", got %" PRId64,
                   row->min, row->max, value);
}

static int
s_check_duration_range (s_loader_t *self, const s_row_t *row, int line, const char *path,
                        int64_t value)
{
    if (value >= row->min && value <= row->max)
        return 0;
    char lo[32], hi[32], got[32];
    return s_fail (self, line, path, "must be between %s and %s, got %s",
                   config_format_duration (row->min, lo, sizeof lo),
                   config_format_duration (row->max, hi, sizeof hi),
                   config_format_duration (value, got, sizeof got));
}

/*  Converts one scalar text per the row's type into the field at base. */
static int
s_set_scalar (s_loader_t *self, const s_row_t *row, const char *text, int line,
              const char *path, void *base)
{
    char shown[80];
    s_show (text, shown, sizeof shown);
    if (row->nonempty && *text == '\0')
        return s_fail (self, line, path, "must not be empty");
    switch (row->type) {
        case S_STR:
        case S_PATH:
        case S_ENVNAME:
        case S_ENDPOINT:
        case S_HOSTPORT:
        case S_STORE:
        case S_URL: {
            if (s_has_control (text))
                return s_fail (self, line, path, "must not contain control characters (newlines, tabs)");
            if (strlen (text) >= row->size)
                return s_fail (self, line, path, "too long (at most %zu characters)", row->size - 1);
            if (row->type == S_PATH && *text && !s_valid_dotted (text))
                return s_fail (self, line, path,
                               "must be a dotted path into the event data like customer.email, got '%s'",
                               shown);
            if (row->type == S_ENVNAME && *text && !s_valid_env_name (text))
                return s_fail (self, line, path,
                               "must be an environment variable name like HERALD_SMTP_PASSWORD, got '%s'",
                               shown);
            if (row->type == S_ENDPOINT || row->type == S_URL) {
                const char *const *schemes = row->type == S_ENDPOINT? s_endpoint_schemes: row->choices;
                bool ok = false;
                for (int i = 0; schemes[i]; i++)
                    if (strncmp (text, schemes[i], strlen (schemes[i])) == 0
                    &&  text[strlen (schemes[i])] != '\0')
                        ok = true;
                if (!ok) {
                    char list[128] = "";
                    for (int i = 0; schemes[i]; i++) {
                        size_t used = strlen (list);
                        snprintf (list + used, sizeof list - used, "%s%s",
                                  i == 0? "": schemes[i + 1]? ", ": " or ", schemes[i]);
                    }
                    return s_fail (self, line, path, "must start with %s, got '%s'", list, shown);
                }
            }
            if (row->type == S_STORE && herald_store_is_url (text)) {
                char why[300];
                if (herald_store_url_check (text, why, sizeof why) != 0)
                    return s_fail (self, line, path, "%s", why);
            }
            if (row->type == S_HOSTPORT && *text) {
                struct sockaddr_storage addr;
                socklen_t addr_len;
                char why[160];
                if (herald_http_address_parse (text, &addr, &addr_len, why, sizeof why) != 0)
                    return s_fail (self, line, path, "%s", why);
            }
            if (row->type == S_STR && row->choices) {
                bool ok = false;
                for (int i = 0; row->choices[i]; i++)
                    if (strcmp (text, row->choices[i]) == 0)
                        ok = true;
                if (!ok)
                    return s_fail (self, line, path, "must be one of GET, POST, PUT, PATCH, DELETE, got '%s'",
                                   shown);
            }
            memcpy ((char *) base + row->offset, text, strlen (text) + 1);
            return 0;
        }
        case S_INT: {
            const char *digits = *text == '-' || *text == '+'? text + 1: text;
            int64_t value;
            const char *end;
            if (s_parse_digits (digits, &value, &end) || *end != '\0')
                return s_fail (self, line, path, "must be an integer, got '%s'", shown);
            if (*text == '-')
                value = -value;
            if (s_check_range (self, row, line, path, value))
                return -1;
            int v = (int) value;
            s_store (base, row->offset, &v, sizeof v);
            return 0;
        }
        case S_SIZE: {
            size_t bytes;
            if (herald_parse_size (text, &bytes))
                return s_fail (self, line, path,
                               "must be a size like 4096, 256KiB, 1MiB or 1GiB, got '%s'", shown);
            if ((uint64_t) bytes < (uint64_t) row->min || (uint64_t) bytes > (uint64_t) row->max) {
                char lo[32], hi[32], got[32];
                return s_fail (self, line, path, "must be between %s and %s, got %s",
                               config_format_size ((uint64_t) row->min, lo, sizeof lo),
                               config_format_size ((uint64_t) row->max, hi, sizeof hi),
                               config_format_size ((uint64_t) bytes, got, sizeof got));
            }
            s_store (base, row->offset, &bytes, sizeof bytes);
            return 0;
        }
        case S_DURATION: {
            int64_t ms;
            if (herald_parse_duration (text, &ms))
                return s_fail (self, line, path,
                               "must be a duration like 250ms, 2s, 10m, 1h or 7d, got '%s'", shown);
            if (s_check_duration_range (self, row, line, path, ms))
                return -1;
            s_store (base, row->offset, &ms, sizeof ms);
            return 0;
        }
        case S_BACKOFF: {
            const char *dots = strstr (text, "..");
            char lo_text[64];
            int64_t lo, hi;
            if (!dots || (size_t) (dots - text) >= sizeof lo_text)
                return s_fail (self, line, path, "must be MIN..MAX durations like 500ms..10m, got '%s'",
                               shown);
            memcpy (lo_text, text, (size_t) (dots - text));
            lo_text[dots - text] = '\0';
            if (herald_parse_duration (lo_text, &lo) || herald_parse_duration (dots + 2, &hi))
                return s_fail (self, line, path, "must be MIN..MAX durations like 500ms..10m, got '%s'",
                               shown);
            if (s_check_duration_range (self, row, line, path, lo)
            ||  s_check_duration_range (self, row, line, path, hi))
                return -1;
            if (lo > hi) {
                char a[32], b[32];
                return s_fail (self, line, path, "minimum %s is greater than maximum %s",
                               config_format_duration (lo, a, sizeof a), config_format_duration (hi, b, sizeof b));
            }
            s_store (base, row->offset, &lo, sizeof lo);
            s_store (base, row->offset2, &hi, sizeof hi);
            return 0;
        }
        case S_RATE: {
            double rate;
            if (s_parse_rate (text, &rate))
                return s_fail (self, line, path,
                               "must be a rate like 10/s, 600/m or 36000/h (0 = unlimited, at most "
                               "1000000/s), got '%s'", shown);
            s_store (base, row->offset, &rate, sizeof rate);
            return 0;
        }
        case S_BOOL: {
            bool value;
            if (strcmp (text, "true") == 0 || strcmp (text, "True") == 0 || strcmp (text, "TRUE") == 0)
                value = true;
            else
            if (strcmp (text, "false") == 0 || strcmp (text, "False") == 0 || strcmp (text, "FALSE") == 0)
                value = false;
            else
                return s_fail (self, line, path, "must be true or false, got '%s'", shown);
            s_store (base, row->offset, &value, sizeof value);
            return 0;
        }
        case S_ENUM: {
            char list[128] = "";
            for (int i = 0; row->choices[i]; i++) {
                if (strcmp (text, row->choices[i]) == 0) {
                    assert (row->size == sizeof (int));
                    s_store (base, row->offset, &i, sizeof i);
                    return 0;
                }
                size_t used = strlen (list);
                snprintf (list + used, sizeof list - used, "%s%s", i? ", ": "", row->choices[i]);
            }
            if (*text == '\0')
                return s_fail (self, line, path, "must be one of %s", list);
            return s_fail (self, line, path, "must be one of %s, got '%s'", list, shown);
        }
        default:
            assert (false);
            return -1;
    }
}

static void *
s_base (s_loader_t *self, s_scope_t scope)
{
    switch (scope) {
        case S_IN_BROKER:
            return &self->cfg->broker;
        case S_IN_CHANNEL:
            return self->channel;
        case S_IN_EVENT:
            return self->event;
        case S_IN_SECURITY:
            return &self->cfg->security;
        default:
            return self->cfg;
    }
}

/*  Applies the compiled-in default of every row in scope. */
static void
s_apply_defaults (s_loader_t *self, s_scope_t scope)
{
    for (size_t i = 0; i < S_SCHEMA_ROWS; i++) {
        const s_row_t *row = &s_schema[i];
        if (row->scope == scope && row->fallback) {
            int rc = s_set_scalar (self, row, row->fallback, 0, row->pattern, s_base (self, scope));
            assert (rc == 0);
            (void) rc;
        }
    }
}

/* ------------------------------------------------------------------------ */
/*  Walking the tree with the schema                                         */

static const s_row_t *
s_row_find (const char *pattern)
{
    for (size_t i = 0; i < S_SCHEMA_ROWS; i++)
        if (strcmp (s_schema[i].pattern, pattern) == 0)
            return &s_schema[i];
    return NULL;
}

/*  Name of row's key when row is a direct, named child of parent, else NULL. */
static const char *
s_row_child_name (const s_row_t *row, const char *parent)
{
    size_t n = strlen (parent);
    const char *rest = row->pattern;
    if (n > 0) {
        if (strncmp (row->pattern, parent, n) != 0 || row->pattern[n] != '.')
            return NULL;
        rest = row->pattern + n + 1;
    }
    if (strchr (rest, '.') || strcmp (rest, "*") == 0)
        return NULL;
    return rest;
}

static int
s_unknown_key (s_loader_t *self, const config_node_t *child, const char *pattern, const char *path)
{
    char child_path[CONFIG_PATH_LEN];
    config_path_join (child_path, sizeof child_path, path, child->key);
    if (strcmp (child->key, "password") == 0 || strcmp (child->key, "pass") == 0)
        return s_fail (self, child->line, child_path,
                       "passwords are never accepted in the configuration file: put it in an "
                       "environment variable and name that variable with password_env");
    char known[256] = "";
    for (size_t i = 0; i < S_SCHEMA_ROWS; i++) {
        const char *name = s_row_child_name (&s_schema[i], pattern);
        if (name) {
            size_t used = strlen (known);
            snprintf (known + used, sizeof known - used, "%s%s", used? ", ": "", name);
        }
    }
    return s_fail (self, child->line, child_path, "unknown key (known keys: %s)", known);
}

/*  Reads a mapping with schema-listed keys: refuses unknown keys, then applies
    the rows in table order. */
static int
s_walk_map (s_loader_t *self, const config_node_t *node, const char *pattern, const char *path)
{
    for (const config_node_t *child = node->first; child; child = child->next) {
        char child_pattern[CONFIG_PATH_LEN];
        config_path_join (child_pattern, sizeof child_pattern, pattern, child->key);
        const s_row_t *row = s_row_find (child_pattern);
        if (!row || strcmp (child->key, "*") == 0)
            return s_unknown_key (self, child, pattern, path);
    }
    for (size_t i = 0; i < S_SCHEMA_ROWS; i++) {
        const char *name = s_row_child_name (&s_schema[i], pattern);
        const config_node_t *child = name? config_node_child (node, name): NULL;
        if (!child)
            continue;
        char child_path[CONFIG_PATH_LEN];
        config_path_join (child_path, sizeof child_path, path, name);
        if (s_apply (self, &s_schema[i], child, child_path))
            return -1;
    }
    return 0;
}

static int
s_require_kind (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path,
                config_kind_t kind)
{
    if (node->kind == kind)
        return 0;
    if (kind == CONFIG_NODE_MAP && node->kind == CONFIG_NODE_SCALAR && node->len == 0)
        return s_fail (self, node->line, path, "must be a mapping, got an empty value");
    return s_fail (self, node->line, path, "must be %s, got %s", s_type_desc (row->type),
                   s_kind_desc (node->kind));
}

/*  Checks driver-specific requirements and computes derived values. */
static int
s_finish_channel (s_loader_t *self, const config_node_t *node, const char *path)
{
    herald_channel_t *channel = self->channel;
    char key[CONFIG_PATH_LEN];
    if (!config_node_child (node, "driver")) {
        config_path_join (key, sizeof key, path, "driver");
        return s_fail (self, node->line, key, "is required (file, noop, smtp or http)");
    }
    const config_node_t *smtp = config_node_child (node, "smtp");
    const config_node_t *http = config_node_child (node, "http");
    int smtp_line = smtp? smtp->line: node->line;
    int http_line = http? http->line: node->line;
    if (channel->driver == HERALD_DRIVER_FILE && channel->dir[0] == '\0') {
        config_path_join (key, sizeof key, path, "dir");
        return s_fail (self, node->line, key, "is required for driver file");
    }
    if (channel->driver == HERALD_DRIVER_SMTP) {
        static const char *const required[] = {
            "url", "from", "to", "subject", "text_template", "html_template", NULL
        };
        for (int i = 0; required[i]; i++) {
            if (!config_node_child (smtp, required[i])) {
                snprintf (key, sizeof key, "%s.smtp.%s", path, required[i]);
                return s_fail (self, smtp_line, key, "is required for driver smtp");
            }
        }
    }
    if (smtp) {
        const herald_smtp_config_t *cfg = &channel->smtp;
        const config_node_t *tls = config_node_child (smtp, "tls");
        const config_node_t *url = config_node_child (smtp, "url");
        bool smtps = strncmp (cfg->url, "smtps://", 8) == 0;
        if (!tls && smtps)
            channel->smtp.tls = HERALD_TLS_IMPLICIT;    /* smtps:// says it */
        if (tls && url && cfg->tls == HERALD_TLS_IMPLICIT && !smtps) {
            snprintf (key, sizeof key, "%s.smtp.tls", path);
            return s_fail (self, tls->line, key, "implicit TLS requires an smtps:// url, got '%.64s'",
                           cfg->url);
        }
        if (tls && url && cfg->tls != HERALD_TLS_IMPLICIT && smtps) {
            snprintf (key, sizeof key, "%s.smtp.tls", path);
            return s_fail (self, tls->line, key, "an smtps:// url means tls: implicit, got %s",
                           s_tls_names[cfg->tls]);
        }
        if (cfg->username[0] && cfg->password_env[0] == '\0') {
            snprintf (key, sizeof key, "%s.smtp.password_env", path);
            return s_fail (self, smtp_line, key,
                           "is required with username: name the environment variable holding the password");
        }
    }
    if (channel->driver == HERALD_DRIVER_HTTP && !config_node_child (http, "url")) {
        snprintf (key, sizeof key, "%s.http.url", path);
        return s_fail (self, http_line, key, "is required for driver http");
    }
    if (!config_node_child (node, "prefetch"))
        /*  noop and file finish each delivery within the round it
            arrives in: the credit only decides how many tasks one round
            trip to the broker carries, and it must cover that round trip
            at the rate they finish tasks (~100,000/s x 1-2 ms here;
            BENCHMARKS.md measured 128 short of the floor, 288 at it).
            smtp and http run capacity deliveries at once: a task waiting
            in a busy worker could run at once in an idle one, so they hold
            nothing extra unless told. */
        channel->prefetch = channel->driver == HERALD_DRIVER_NOOP || channel->driver == HERALD_DRIVER_FILE
                          ? HERALD_SYNC_PREFETCH: 0;
    if (channel->burst == 0) {
        double burst = ceil (channel->rate_per_sec);
        channel->burst = burst < 1? 1: (int) burst;
    }
    return 0;
}

static int
s_apply_channel (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path)
{
    herald_config_t *cfg = self->cfg;
    char shown[80];
    if (!s_valid_channel_name (node->key))
        return s_fail (self, node->line, path,
                       "bad channel name '%s': use 1 to 63 letters, digits, '_' or '-'",
                       s_show (node->key, shown, sizeof shown));
    if (cfg->channel_count >= HERALD_MAX_CHANNELS)
        return s_fail (self, node->line, path, "too many channels (at most %d)", HERALD_MAX_CHANNELS);
    if (s_require_kind (self, row, node, path, CONFIG_NODE_MAP))
        return -1;
    herald_channel_t *channel = &cfg->channels[cfg->channel_count];
    memset (channel, 0, sizeof *channel);
    snprintf (channel->name, sizeof channel->name, "%s", node->key);
    self->channel = channel;
    s_apply_defaults (self, S_IN_CHANNEL);
    int rc = s_walk_map (self, node, row->pattern, path);
    if (rc == 0)
        rc = s_finish_channel (self, node, path);
    self->channel = NULL;
    if (rc == 0)
        cfg->channel_count++;
    return rc;
}

static int
s_apply_event (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path)
{
    herald_config_t *cfg = self->cfg;
    char shown[80];
    if (!s_valid_event_name (node->key))
        return s_fail (self, node->line, path,
                       "bad event type name '%s': use 1 to 63 letters, digits, '.', '_', '-', ':' or '/'",
                       s_show (node->key, shown, sizeof shown));
    if (cfg->event_count >= HERALD_MAX_EVENT_TYPES)
        return s_fail (self, node->line, path, "too many event types (at most %d)",
                       HERALD_MAX_EVENT_TYPES);
    if (s_require_kind (self, row, node, path, CONFIG_NODE_MAP))
        return -1;
    herald_event_type_t *event = &cfg->events[cfg->event_count];
    memset (event, 0, sizeof *event);
    snprintf (event->name, sizeof event->name, "%s", node->key);
    self->event = event;
    int rc = s_walk_map (self, node, row->pattern, path);
    self->event = NULL;
    if (rc)
        return -1;
    if (!config_node_child (node, "fanout")) {
        char key[CONFIG_PATH_LEN];
        config_path_join (key, sizeof key, path, "fanout");
        return s_fail (self, node->line, key, "is required: list the channels this event goes to");
    }
    cfg->event_count++;
    return 0;
}

static int
s_apply_list (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path)
{
    herald_event_type_t *event = self->event;
    if (s_require_kind (self, row, node, path, CONFIG_NODE_SEQ))
        return -1;
    if (row->type == S_FANOUT && node->count == 0)
        return s_fail (self, node->line, path, "must list at least one channel");
    int max = row->type == S_FANOUT? HERALD_MAX_CHANNELS: HERALD_MAX_REQUIRED;
    if (node->count > max)
        return s_fail (self, node->line, path, "too many entries (at most %d)", max);
    for (const config_node_t *item = node->first; item; item = item->next) {
        char shown[80];
        /*  A required field may carry a type: `customer.email: email` (a
            mapping of one pair inside the list). */
        unsigned types = 0;
        const config_node_t *entry = item;
        if (row->type == S_PATHLIST && item->kind == CONFIG_NODE_MAP) {
            const config_node_t *pair = item->first;
            if (!pair || pair->next || pair->kind != CONFIG_NODE_SCALAR)
                return s_fail (self, item->line, path, "entries are a path, or `path: type` like"
                               " `items: array`");
            char why[200];
            if (herald_field_types_parse (pair->text, &types, why, sizeof why) != 0)
                return s_fail (self, pair->line, path, "%s: %s",
                               s_show (pair->key, shown, sizeof shown), why);
            entry = pair;
        }
        else
        if (item->kind != CONFIG_NODE_SCALAR)
            return s_fail (self, item->line, path, "entries must be strings, got %s",
                           s_kind_desc (item->kind));
        const char *text = entry != item? entry->key: entry->text;
        size_t text_len = strlen (text);
        s_show (text, shown, sizeof shown);
        if (row->type == S_FANOUT) {
            int index = herald_config_channel_index (self->cfg, item->text);
            if (index < 0)
                return s_fail (self, item->line, path, "unknown channel '%s'", shown);
            for (int i = 0; i < event->fanout_count; i++)
                if (event->fanout[i] == index)
                    return s_fail (self, item->line, path, "lists channel '%s' twice", shown);
            event->fanout[event->fanout_count++] = index;
        }
        else {
            if (!s_valid_dotted (text))
                return s_fail (self, entry->line, path,
                               "must list dotted paths into the event data like customer.email, got '%s'",
                               shown);
            if (text_len >= sizeof event->required[0])
                return s_fail (self, item->line, path, "path too long (at most %zu characters)",
                               sizeof event->required[0] - 1);
            for (int i = 0; i < event->required_count; i++)
                if (strcmp (event->required[i], text) == 0)
                    return s_fail (self, item->line, path, "lists '%s' twice", shown);
            event->required_types[event->required_count] = types;
            memcpy (event->required[event->required_count++], text, text_len + 1);
        }
    }
    return 0;
}

static int
s_apply_header (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path)
{
    herald_http_config_t *http = &self->channel->http;
    char shown[80];
    if (!s_valid_header_name (node->key) || strlen (node->key) >= sizeof http->headers[0].name)
        return s_fail (self, node->line, path, "bad HTTP header name '%s'",
                       s_show (node->key, shown, sizeof shown));
    for (int i = 0; i < http->header_count; i++)
        if (strcasecmp (http->headers[i].name, node->key) == 0)
            return s_fail (self, node->line, path,
                           "duplicate header (header names are case-insensitive)");
    if (http->header_count >= HERALD_MAX_HEADERS)
        return s_fail (self, node->line, path, "too many headers (at most %d)", HERALD_MAX_HEADERS);
    herald_header_t header;
    memset (&header, 0, sizeof header);
    snprintf (header.name, sizeof header.name, "%s", node->key);
    if (node->kind == CONFIG_NODE_SCALAR) {
        if (s_has_control (node->text))
            return s_fail (self, node->line, path, "must not contain control characters");
        if (node->len >= sizeof header.value)
            return s_fail (self, node->line, path, "too long (at most %zu characters)",
                           sizeof header.value - 1);
        memcpy (header.value, node->text, node->len + 1);
    }
    else
    if (node->kind == CONFIG_NODE_MAP) {
        const config_node_t *env = config_node_child (node, "env");
        for (const config_node_t *child = node->first; child; child = child->next)
            if (child != env) {
                char key[CONFIG_PATH_LEN];
                config_path_join (key, sizeof key, path, child->key);
                return s_fail (self, child->line, key, "unknown key (known keys: env)");
            }
        if (!env || env->kind != CONFIG_NODE_SCALAR || !s_valid_env_name (env->text)
        ||  env->len >= sizeof header.value_env)
            return s_fail (self, node->line, path,
                           "must be {env: NAME} with NAME an environment variable name");
        memcpy (header.value_env, env->text, env->len + 1);
    }
    else
        return s_fail (self, node->line, path, "must be %s, got a list", s_type_desc (row->type));
    http->headers[http->header_count++] = header;
    return 0;
}

static int
s_apply_workers (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path)
{
    char shown[80];
    int index = herald_config_channel_index (self->cfg, node->key);
    if (index < 0)
        return s_fail (self, node->line, path, "unknown channel '%s'",
                       s_show (node->key, shown, sizeof shown));
    if (s_require_kind (self, row, node, path, CONFIG_NODE_SCALAR))
        return -1;
    s_row_t count = *row;
    count.type = S_INT;
    count.scope = S_IN_CONFIG;
    count.offset = offsetof (herald_config_t, workers) + (size_t) index * sizeof (int);
    count.size = sizeof (int);
    return s_set_scalar (self, &count, node->text, node->line, path, self->cfg);
}

/*  The file of the first key a list names, kept for the default-key
    convention (the .secret beside it). */
static char *
s_first_key_file (herald_security_config_t *sec, unsigned role, int channel)
{
    switch (role) {
        case HERALD_ROLE_PRODUCER:      return sec->producer_file;
        case HERALD_ROLE_ADMIN_READ:    return sec->admin_read_file;
        case HERALD_ROLE_ADMIN_OPERATE: return sec->admin_operate_file;
        default:                        return sec->worker_file[channel];
    }
}

/*  security.producers, security.workers.CHANNEL, security.admin_read and
    security.admin_operate: lists of .public files. Each file is read here, so
    a missing or malformed key is a configuration error naming both files; a
    key listed in several places gets the union of the roles. */
static int
s_apply_keys (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path)
{
    herald_security_config_t *sec = &self->cfg->security;
    char shown[80];
    int channel = 0;
    if (row->role == HERALD_ROLE_WORKER) {
        channel = herald_config_channel_index (self->cfg, node->key);
        if (channel < 0)
            return s_fail (self, node->line, path, "unknown channel '%s'",
                           s_show (node->key, shown, sizeof shown));
    }
    if (s_require_kind (self, row, node, path, CONFIG_NODE_SEQ))
        return -1;
    for (const config_node_t *item = node->first; item; item = item->next) {
        if (item->kind != CONFIG_NODE_SCALAR)
            return s_fail (self, item->line, path, "entries must be .public key files, got %s",
                           s_kind_desc (item->kind));
        s_show (item->text, shown, sizeof shown);
        if (strlen (item->text) != item->len || s_has_control (item->text))
            return s_fail (self, item->line, path, "must not contain control characters or NUL bytes");
        if (item->len >= HERALD_PATH_MAX)
            return s_fail (self, item->line, path, "path too long (at most %d characters)", HERALD_PATH_MAX - 1);
        if (item->len <= 7 || strcmp (item->text + item->len - 7, ".public") != 0)
            return s_fail (self, item->line, path,
                           "must list .public key files (made by herald keygen NAME), got '%s'", shown);
        for (const config_node_t *earlier = node->first; earlier != item; earlier = earlier->next)
            if (strcmp (earlier->text, item->text) == 0)
                return s_fail (self, item->line, path, "lists '%s' twice", shown);
        char key[HERALD_KEY_TEXT];
        char key_err[HERALD_ERR_MAX];
        if (herald_keys_load_public (item->text, key, key_err, sizeof key_err) != 0)
            return s_fail (self, item->line, path, "%s", key_err);
        herald_client_key_t *entry = NULL;
        for (int i = 0; i < sec->key_count && !entry; i++)
            if (strcmp (sec->keys[i].key, key) == 0)
                entry = &sec->keys[i];
        if (!entry) {
            if (sec->key_count >= HERALD_MAX_KEYS)
                return s_fail (self, item->line, path, "too many keys (at most %d in all lists)",
                               HERALD_MAX_KEYS);
            entry = &sec->keys[sec->key_count++];
            memset (entry, 0, sizeof *entry);
            const char *base = strrchr (item->text, '/');
            base = base? base + 1: item->text;
            snprintf (entry->name, sizeof entry->name, "%.*s", (int) (strlen (base) - 7), base);
            memcpy (entry->key, key, sizeof entry->key);
            entry->line = item->line;
        }
        entry->roles |= row->role;
        if (row->role == HERALD_ROLE_WORKER)
            entry->channels |= UINT32_C (1) << channel;
        char *first = s_first_key_file (sec, row->role, channel);
        if (!*first)
            memcpy (first, item->text, item->len + 1);
    }
    return 0;
}

static int
s_apply (s_loader_t *self, const s_row_t *row, const config_node_t *node, const char *path)
{
    switch (row->type) {
        case S_MAP:
            if (s_require_kind (self, row, node, path, CONFIG_NODE_MAP))
                return -1;
            return s_walk_map (self, node, row->pattern, path);
        case S_DICT: {
            if (s_require_kind (self, row, node, path, CONFIG_NODE_MAP))
                return -1;
            char entry_pattern[CONFIG_PATH_LEN];
            config_path_join (entry_pattern, sizeof entry_pattern, row->pattern, "*");
            const s_row_t *entry = s_row_find (entry_pattern);
            assert (entry);
            if (node->count == 0 && strcmp (row->pattern, "channels") == 0)
                return s_fail (self, node->line, path, "at least one channel is required");
            if (node->count == 0 && strcmp (row->pattern, "events") == 0)
                return s_fail (self, node->line, path, "at least one event type is required");
            for (const config_node_t *child = node->first; child; child = child->next) {
                char child_path[CONFIG_PATH_LEN];
                config_path_join (child_path, sizeof child_path, path, child->key);
                if (s_apply (self, entry, child, child_path))
                    return -1;
            }
            return 0;
        }
        case S_CHANNEL:
            return s_apply_channel (self, row, node, path);
        case S_EVENT:
            return s_apply_event (self, row, node, path);
        case S_WORKERS:
            return s_apply_workers (self, row, node, path);
        case S_HEADER:
            return s_apply_header (self, row, node, path);
        case S_PATHLIST:
        case S_FANOUT:
            return s_apply_list (self, row, node, path);
        case S_KEYLIST:
            return s_apply_keys (self, row, node, path);
        default:
            if (s_require_kind (self, row, node, path, CONFIG_NODE_SCALAR))
                return -1;
            if (strlen (node->text) != node->len)
                return s_fail (self, node->line, path, "must not contain NUL bytes");
            return s_set_scalar (self, row, node->text, node->line, path, s_base (self, row->scope));
    }
}

/*  The HTTP endpoint's binding rules, like the ZeroMQ endpoints': loopback
    always; another address needs TLS and tokens (an HTTP client proves who
    it is with a token, and the token must not cross the network in clear),
    or security.plaintext: true, which accepts that anyone who can connect
    may do what the tokens allow (everything, without tokens_file). */
static int
s_finish_http (s_loader_t *self, const config_node_t *root)
{
    herald_security_config_t *sec = &self->cfg->security;
    const config_node_t *node = config_node_child (root, "security");
    if (!sec->tls_cert[0] != !sec->tls_key[0]) {
        const config_node_t *at = config_node_child (node, sec->tls_cert[0]? "tls_cert": "tls_key");
        return s_fail (self, at? at->line: 0, sec->tls_cert[0]? "security.tls_key": "security.tls_cert",
                       "is required with %s: the HTTP endpoint's TLS needs both the certificate (PEM) "
                       "and its private key (PEM)", sec->tls_cert[0]? "security.tls_cert": "security.tls_key");
    }
    const char *http = self->cfg->broker.http;
    if (!http[0] || sec->plaintext)
        return 0;
    char endpoint[300];
    snprintf (endpoint, sizeof endpoint, "tcp://%s", http);
    if (herald_endpoint_is_local (endpoint))
        return 0;
    const config_node_t *at = config_node_child (config_node_child (config_node_child (root, "broker"), "listen"),
                                                 "http");
    char shown[80];
    s_show (http, shown, sizeof shown);
    if (!sec->tls_cert[0])
        return s_fail (self, at? at->line: 0, "broker.listen.http",
                       "%s is reachable from the network: it needs TLS (security.tls_cert and "
                       "security.tls_key, PEM files) and tokens (security.tokens_file), or "
                       "security: { plaintext: true } to serve it in clear", shown);
    if (!sec->tokens_file[0])
        return s_fail (self, at? at->line: 0, "broker.listen.http",
                       "%s is reachable from the network: it needs security.tokens_file (herald token "
                       "new), or anyone who can connect could publish", shown);
    return 0;
}

/*  The security section as a whole, and fail closed without it: no
    non-loopback tcp endpoint unless CURVE is on or plaintext is chosen. */
static int
s_finish_security (s_loader_t *self, const config_node_t *root)
{
    herald_security_config_t *sec = &self->cfg->security;
    const config_node_t *node = config_node_child (root, "security");
    char shown[80];
    if (node) {
        sec->present = true;
        const config_node_t *key = config_node_child (node, "broker_key");
        const config_node_t *plain = config_node_child (node, "plaintext");
        if (key && sec->plaintext)
            return s_fail (self, plain->line, "security.plaintext",
                           "true turns CURVE off, but broker_key turns it on: keep only one of them");
        /*  A section with only HTTP settings (tokens, TLS) leaves the
            ZeroMQ endpoints as without one: loopback and ipc only. */
        bool http_only = !sec->plaintext && (sec->tokens_file[0] || sec->tls_cert[0] || sec->tls_key[0])
                      && !config_node_child (node, "producers") && !config_node_child (node, "workers")
                      && !config_node_child (node, "admin_read") && !config_node_child (node, "admin_operate");
        if (!key && !sec->plaintext && !http_only)
            return s_fail (self, node->line, "security.broker_key",
                           "is required: the broker's .secret key file (herald keygen etc/keys/broker); "
                           "or plaintext: true to accept anyone without CURVE");
        static const char *const lists[] = { "producers", "workers", "admin_read", "admin_operate", NULL };
        for (int i = 0; sec->plaintext && lists[i]; i++) {
            const config_node_t *list = config_node_child (node, lists[i]);
            char list_path[CONFIG_PATH_LEN];
            config_path_join (list_path, sizeof list_path, "security", lists[i]);
            if (list)
                return s_fail (self, list->line, list_path,
                               "needs broker_key: with plaintext: true anyone may connect, so a key list "
                               "would protect nothing");
        }
        if (key) {
            s_show (sec->broker_key, shown, sizeof shown);
            if (herald_keys_sibling (sec->broker_key, ".secret", ".public", sec->broker_public,
                                     sizeof sec->broker_public) != 0)
                return s_fail (self, key->line, "security.broker_key",
                               "must name a .secret file (made by herald keygen NAME), got '%s'", shown);
            char key_err[HERALD_ERR_MAX];
            if (herald_keys_load_public (sec->broker_public, sec->broker_public_key, key_err,
                                         sizeof key_err) != 0)
                return s_fail (self, key->line, "security.broker_key",
                               "the broker's public key beside it: %s", key_err);
            sec->curve = true;
        }
    }
    if (s_finish_http (self, root) != 0)
        return -1;
    if (sec->curve || sec->plaintext)
        return 0;
    const config_node_t *listen = config_node_child (config_node_child (root, "broker"), "listen");
    const herald_broker_config_t *broker = &self->cfg->broker;
    const char *names[] = { "producers", "workers", "admin" };
    const char *values[] = { broker->producers, broker->workers, broker->admin };
    for (int i = 0; i < 3; i++) {
        if (herald_endpoint_is_local (values[i]))
            continue;
        const config_node_t *at = config_node_child (listen, names[i]);
        char key_path[CONFIG_PATH_LEN];
        config_path_join (key_path, sizeof key_path, "broker.listen", names[i]);
        return s_fail (self, at? at->line: 0, key_path,
                       "%s is reachable from the network: without a security section Herald binds only "
                       "loopback (127.0.0.1, ::1, localhost) and ipc:// endpoints; add a security section "
                       "with CURVE keys (README, \"Security\") or security: { plaintext: true }",
                       s_show (values[i], shown, sizeof shown));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/*  Public API                                                               */

void
herald_config_defaults (herald_config_t *self)
{
    assert (self);
    memset (self, 0, sizeof *self);
    s_loader_t loader = { .name = "(defaults)", .cfg = self };
    s_apply_defaults (&loader, S_IN_BROKER);
    for (int i = 0; i < HERALD_MAX_CHANNELS; i++)
        self->workers[i] = 1;
}

int
herald_config_parse (herald_config_t *self, const char *text, size_t len,
                     const char *name, char *err, size_t errlen)
{
    char spare[HERALD_ERR_MAX];
    if (!err || errlen == 0) {
        err = spare;
        errlen = sizeof spare;
    }
    err[0] = '\0';
    if (!name)
        name = "(config)";
    if (!self || !text)
        return snprintf (err, errlen, "%s: no configuration text", name), -1;

    herald_config_t *cfg = malloc (sizeof *cfg);
    if (!cfg)
        return snprintf (err, errlen, "%s: out of memory", name), -1;
    herald_config_defaults (cfg);
    snprintf (cfg->path, sizeof cfg->path, "%s", name);

    s_loader_t loader = { .name = name, .err = err, .errlen = errlen, .cfg = cfg };
    config_node_t *root = NULL;
    int rc = config_yaml_parse (text, len, name, err, errlen, &root);
    if (rc == 0 && root && root->kind != CONFIG_NODE_MAP)
        rc = s_fail (&loader, root->line, "", "must be a mapping with broker, channels, events and "
                     "workers, got %s", s_kind_desc (root->kind));
    if (rc == 0 && !config_node_child (root, "channels"))
        rc = s_fail (&loader, 1, "channels", "at least one channel is required");
    if (rc == 0 && !config_node_child (root, "events"))
        rc = s_fail (&loader, 1, "events", "at least one event type is required");
    if (rc == 0)
        rc = s_walk_map (&loader, root, "", "");
    if (rc == 0)
        rc = config_check_endpoints (cfg, root, name, err, errlen);
    if (rc == 0)
        rc = s_finish_security (&loader, root);
    config_node_destroy (&root);
    if (rc == 0)
        memcpy (self, cfg, sizeof *cfg);
    free (cfg);
    return rc;
}

int
herald_config_load (herald_config_t *self, const char *file, char *err, size_t errlen)
{
    char spare[HERALD_ERR_MAX];
    if (!err || errlen == 0) {
        err = spare;
        errlen = sizeof spare;
    }
    if (!file)
        return snprintf (err, errlen, "(config): no file name"), -1;
    FILE *handle = fopen (file, "rb");
    if (!handle)
        return snprintf (err, errlen, "%s: cannot open: %s", file, strerror (errno)), -1;
    char *text = malloc (S_MAX_FILE + 1);
    if (!text) {
        fclose (handle);
        return snprintf (err, errlen, "%s: out of memory", file), -1;
    }
    size_t len = fread (text, 1, S_MAX_FILE + 1, handle);
    int read_error = ferror (handle);
    int saved = errno;
    fclose (handle);
    int rc = -1;
    if (read_error)
        snprintf (err, errlen, "%s: cannot read: %s", file, strerror (saved));
    else
    if (len > S_MAX_FILE)
        snprintf (err, errlen, "%s: too large (more than %d bytes)", file, S_MAX_FILE);
    else
        rc = herald_config_parse (self, text, len, file, err, errlen);
    free (text);
    return rc;
}

int
herald_config_channel_index (const herald_config_t *self, const char *name)
{
    if (!self || !name)
        return -1;
    for (int i = 0; i < self->channel_count; i++)
        if (strcmp (self->channels[i].name, name) == 0)
            return i;
    return -1;
}

int
herald_config_event_index (const herald_config_t *self, const char *name)
{
    if (!self || !name)
        return -1;
    for (int i = 0; i < self->event_count; i++)
        if (strcmp (self->events[i].name, name) == 0)
            return i;
    return -1;
}

uint32_t
herald_channel_credit (const herald_channel_t *channel)
{
    int64_t credit = (int64_t) channel->capacity + (channel->prefetch > 0? channel->prefetch: 0);
    return (uint32_t) (credit < 1? 1: credit > 65535? 65535: credit);
}

const char *
herald_driver_name (herald_driver_kind_t kind)
{
    if ((int) kind < 0 || (size_t) kind >= sizeof s_driver_names / sizeof s_driver_names[0] - 1)
        return "unknown";
    return s_driver_names[kind];
}

const char *
config_tls_name (herald_tls_mode_t mode)
{
    if ((int) mode < 0 || (size_t) mode >= sizeof s_tls_names / sizeof s_tls_names[0] - 1)
        return "unknown";
    return s_tls_names[mode];
}

bool
herald_endpoint_is_local (const char *endpoint)
{
    if (!endpoint)
        return false;
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr (host, ':');
    char buf[64];
    size_t len = colon? (size_t) (colon - host): 0;
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy (buf, host, len);
    buf[len] = '\0';
    if (strcmp (buf, "localhost") == 0)
        return true;
    struct in_addr v4;
    if (inet_pton (AF_INET, buf, &v4) == 1)
        return (ntohl (v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    if (len > 2 && buf[0] == '[' && buf[len - 1] == ']') {
        buf[len - 1] = '\0';
        if (inet_pton (AF_INET6, buf + 1, &v6) == 1)
            return IN6_IS_ADDR_LOOPBACK (&v6) || (IN6_IS_ADDR_V4MAPPED (&v6) && v6.s6_addr[12] == 127);
    }
    return false;       /* *, 0.0.0.0, interface names, other hosts and addresses */
}

int
herald_http_address_parse (const char *text, struct sockaddr_storage *addr, socklen_t *addr_len,
                           char *err, size_t errlen)
{
    memset (addr, 0, sizeof *addr);
    const char *colon = text? strrchr (text, ':'): NULL;
    if (!colon || colon == text) {
        snprintf (err, errlen, "must be HOST:PORT like 127.0.0.1:8470, [::1]:8470 or *:8470");
        return -1;
    }
    const char *port_text = colon + 1;
    int64_t port;
    const char *end;
    if (s_parse_digits (port_text, &port, &end) != 0 || *end || port < 1 || port > 65535) {
        snprintf (err, errlen, "the port must be a number from 1 to 65535 (HOST:PORT like 127.0.0.1:8470)");
        return -1;
    }
    char host[80];
    size_t len = (size_t) (colon - text);
    if (len >= sizeof host) {
        snprintf (err, errlen, "the host is too long (HOST:PORT like 127.0.0.1:8470)");
        return -1;
    }
    memcpy (host, text, len);
    host[len] = '\0';
    struct sockaddr_in *v4 = (struct sockaddr_in *) addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) addr;
    if (strcmp (host, "*") == 0 || strcmp (host, "localhost") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl (host[0] == '*'? INADDR_ANY: INADDR_LOOPBACK);
        v4->sin_port = htons ((uint16_t) port);
        *addr_len = sizeof *v4;
        return 0;
    }
    if (inet_pton (AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons ((uint16_t) port);
        *addr_len = sizeof *v4;
        return 0;
    }
    if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
        host[len - 1] = '\0';
        if (inet_pton (AF_INET6, host + 1, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons ((uint16_t) port);
            *addr_len = sizeof *v6;
            return 0;
        }
    }
    snprintf (err, errlen, "the host must be an IPv4 address, [IPv6 address], localhost or * "
              "(HOST:PORT like 127.0.0.1:8470)");
    return -1;
}

const herald_client_key_t *
herald_config_find_key (const herald_config_t *self, const char *z85)
{
    if (!self || !z85)
        return NULL;
    for (int i = 0; i < self->security.key_count; i++)
        if (strcmp (self->security.keys[i].key, z85) == 0)
            return &self->security.keys[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/*  The schema, for the reload's comparison (config_reload.c)                */

int
config_schema_key (size_t index, config_key_t *key)
{
    if (index >= S_SCHEMA_ROWS)
        return -1;
    const s_row_t *row = &s_schema[index];
    static const config_value_t values[] = {
        [S_STR] = CONFIG_VALUE_STRING, [S_PATH] = CONFIG_VALUE_STRING, [S_ENVNAME] = CONFIG_VALUE_STRING,
        [S_ENDPOINT] = CONFIG_VALUE_STRING, [S_HOSTPORT] = CONFIG_VALUE_STRING, [S_URL] = CONFIG_VALUE_STRING,
        [S_STORE] = CONFIG_VALUE_STRING,
        [S_INT] = CONFIG_VALUE_INT, [S_SIZE] = CONFIG_VALUE_SIZE, [S_DURATION] = CONFIG_VALUE_DURATION,
        [S_BACKOFF] = CONFIG_VALUE_BACKOFF, [S_RATE] = CONFIG_VALUE_RATE, [S_BOOL] = CONFIG_VALUE_BOOL,
        [S_ENUM] = CONFIG_VALUE_ENUM,
    };
    static const config_scope_t scopes[] = {
        [S_IN_CONFIG] = CONFIG_SCOPE_CONFIG, [S_IN_BROKER] = CONFIG_SCOPE_BROKER,
        [S_IN_CHANNEL] = CONFIG_SCOPE_CHANNEL, [S_IN_EVENT] = CONFIG_SCOPE_EVENT,
        [S_IN_SECURITY] = CONFIG_SCOPE_SECURITY,
    };
    *key = (config_key_t) {
        .pattern = row->pattern,
        .value = (size_t) row->type < sizeof values / sizeof values[0]? values[row->type]: CONFIG_VALUE_NONE,
        .scope = scopes[row->scope],
        .offset = row->offset, .size = row->size, .offset2 = row->offset2,
        .choices = row->choices,
    };
    /*  Rows with a target of their own only: the others (containers,
        lists, workers.*) are read by code that compares them itself. */
    if (row->size == 0)
        key->value = CONFIG_VALUE_NONE;
    return 0;
}
