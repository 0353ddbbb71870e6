/*  herald_config: the deployment, loaded from YAML and validated in one place.
    No other module sees YAML. Defaults are compiled in (herald_config_defaults),
    so tests need no file. Errors read "FILE:LINE: key.path: what is wrong". */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HERALD_MAX_CHANNELS     16
#define HERALD_MAX_EVENT_TYPES  32
#define HERALD_MAX_REQUIRED     32
#define HERALD_MAX_HEADERS      16
#define HERALD_NAME_MAX         64      /* channel and event type names, incl. NUL */
#define HERALD_PATH_MAX         1024
#define HERALD_ERR_MAX          512
#define HERALD_MAX_KEYS         128     /* distinct client keys in the security section */
#define HERALD_SYNC_PREFETCH    256     /* channels.*.prefetch's default for noop and file */
#define HERALD_KEY_TEXT         41      /* a Z85 CURVE key (40 characters) and its NUL */

typedef enum {
    HERALD_DRIVER_FILE = 0,     /* writes each delivery as a file */
    HERALD_DRIVER_NOOP,         /* accepts and drops: for benchmarks */
    HERALD_DRIVER_SMTP,         /* email through an SMTP relay (libcurl) */
    HERALD_DRIVER_HTTP          /* HTTP API call (libcurl multi) */
} herald_driver_kind_t;

typedef enum {
    HERALD_TLS_STARTTLS = 0,    /* smtp:// upgraded with STARTTLS, required */
    HERALD_TLS_IMPLICIT,        /* smtps:// */
    HERALD_TLS_NONE             /* plaintext: only when the config says so explicitly */
} herald_tls_mode_t;

typedef struct {
    char name[128];                 /* header name */
    char value[512];                /* literal value, or "" when value_env is set */
    char value_env[128];            /* environment variable holding the value (secrets) */
} herald_header_t;

typedef struct {
    char url[512];                  /* smtp://host:port or smtps://host:port */
    herald_tls_mode_t tls;          /* tls: starttls | implicit | none */
    char from[256];                 /* envelope and header From */
    char to[256];                   /* template, e.g. "{{data.customer.email}}" */
    char subject[512];              /* template */
    char text_template[HERALD_PATH_MAX]; /* path of the text/plain template file */
    char html_template[HERALD_PATH_MAX]; /* path of the text/html template file */
    char username[128];             /* AUTH user, "" for no AUTH */
    char password_env[128];         /* environment variable holding the password */
    char ca_file[HERALD_PATH_MAX];  /* extra CA bundle, "" for the system store */
    bool verify_peer;               /* certificate verification, default true */
    int64_t timeout_ms;             /* whole-transaction timeout */
} herald_smtp_config_t;

typedef struct {
    char method[16];                /* GET POST PUT PATCH DELETE, default POST */
    char url[1024];                 /* http:// or https:// only */
    herald_header_t headers[HERALD_MAX_HEADERS];
    int header_count;
    char body_template[HERALD_PATH_MAX]; /* "" sends the event's data as is */
    int64_t connect_timeout_ms;     /* default 5s */
    int64_t timeout_ms;             /* whole request, default 30s */
    bool follow_redirects;          /* default false */
    char ca_file[HERALD_PATH_MAX];  /* extra CA bundle, "" for the system store */
    bool verify_peer;               /* default true */
} herald_http_config_t;

typedef struct {
    char name[HERALD_NAME_MAX];     /* channel name, e.g. "email" */
    herald_driver_kind_t driver;
    int capacity;                   /* deliveries each worker runs at once (a synchronous driver: in one round),
                                       default 32; YAML capacity or concurrency */
    int prefetch;                   /* tasks a worker may hold waiting beyond capacity, 0..10000; default 256 for
                                       noop and file, 0 for smtp and http. Its credit, capacity + prefetch, is the
                                       most the broker gives it, whatever it announces (herald_channel_credit) */
    int max_workers;                /* worker registrations the broker accepts for the channel, default 64 */
    /* retry policy, owned by the broker */
    int max_attempts;               /* default 8; then the task is dead */
    int max_throttled;              /* THROTTLED answers (not counted as attempts) before the task is dead, default 200 */
    int64_t backoff_min_ms;         /* first retry delay cap, default 500ms */
    int64_t backoff_max_ms;         /* delay cap, default 10m */
    int64_t lease_ms;               /* a delivery not answered by then goes elsewhere, default 60s */
    /* limits across all workers of the channel, enforced by the broker */
    int max_in_flight;              /* 0 = bounded only by worker credit */
    double rate_per_sec;            /* token bucket rate, 0 = unlimited */
    int burst;                      /* token bucket size, default max(1, rate) */
    /* drivers */
    char dir[HERALD_PATH_MAX];      /* file driver: output directory */
    herald_smtp_config_t smtp;
    herald_http_config_t http;
} herald_channel_t;

/*  What a required field may be (events.*.required: `path: string|number`);
    0 = anything that is not empty. */
typedef enum {
    HERALD_FIELD_STRING  = 1 << 0,
    HERALD_FIELD_NUMBER  = 1 << 1,  /* integer or real */
    HERALD_FIELD_INTEGER = 1 << 2,
    HERALD_FIELD_BOOLEAN = 1 << 3,
    HERALD_FIELD_OBJECT  = 1 << 4,
    HERALD_FIELD_ARRAY   = 1 << 5,
    HERALD_FIELD_EMAIL   = 1 << 6   /* a string holding one plain address: local@domain */
} herald_field_type_t;

typedef struct {
    char name[HERALD_NAME_MAX];     /* CloudEvents type, e.g. "order.confirmed" */
    char key[128];                  /* data field (dotted path) giving the idempotency key, "" = source+id */
    char required[HERALD_MAX_REQUIRED][128]; /* dotted paths that must exist in data, not null nor empty */
    unsigned required_types[HERALD_MAX_REQUIRED]; /* herald_field_type_t flags per path, 0 = any */
    int required_count;
    int fanout[HERALD_MAX_CHANNELS];/* indexes into herald_config_t.channels */
    int fanout_count;
} herald_event_type_t;

typedef struct {
    char producers[256];            /* endpoint producers connect to */
    char workers[256];              /* endpoint workers connect to */
    char admin[256];                /* endpoint for herald status / dead / track */
    char store[HERALD_PATH_MAX];    /* the index (SQLite file); the journal is STORE.journal/ */
    size_t journal_segment_bytes;   /* journal segment size, default 32 MiB */
    size_t journal_max_bytes;       /* journal bytes kept before new events get 503 busy (the index is behind), default 4 GiB */
    size_t max_event_bytes;         /* larger events get NACK 413, default 256 KiB */
    int batch_max;                  /* most publishes read per turn; two batches may wait for the disk, then producers wait; default 2048 */
    int64_t dedup_retention_ms;     /* idempotency window, default 7 days */
    int64_t heartbeat_ms;           /* heartbeat interval both ways, default 1s */
    int heartbeat_liveness;         /* missed heartbeats before a peer is dead, default 3 */
    int64_t shutdown_timeout_ms;    /* graceful stop budget on SIGTERM, default 10s */
    int queue_window;               /* tasks per channel held in memory, default 100000 */
    int max_pending_events;         /* undelivered tasks a channel may hold; above: NACK 503 busy, default 1000000, 0 = no limit */
    int hwm;                        /* ZeroMQ send/receive high-water marks per peer, default 10000 */
    int max_unread_replies;         /* replies parked for one producer whose pipe is full; above it the producer is dropped, default 10000 */
    int max_connections;            /* open connections per endpoint; above, new ones are closed, default 1024 */
    int64_t handshake_timeout_ms;   /* a peer must finish the ZeroMQ (and CURVE) handshake by then, default 5s */
    char http[256];                 /* HOST:PORT of the HTTP endpoint (broker.listen.http), "" = none */
    int http_max_connections;       /* open HTTP connections; above, new ones are refused, default 256 */
    int64_t http_timeout_ms;        /* an HTTP connection idle this long is closed, default 10s */
    int64_t takeover_timeout_ms;    /* PostgreSQL store: a broker silent this long has its tasks taken over, default 10s */
} herald_broker_config_t;

/*  What a client key may do: bits of herald_client_key_t.roles. */
typedef enum {
    HERALD_ROLE_PRODUCER      = 1,  /* security.producers: may publish */
    HERALD_ROLE_WORKER        = 2,  /* security.workers.CHANNEL: may serve the channels in .channels */
    HERALD_ROLE_ADMIN_READ    = 4,  /* security.admin_read: status, track, dead list */
    HERALD_ROLE_ADMIN_OPERATE = 8   /* security.admin_operate: also dead show, retry, purge */
} herald_role_t;

typedef struct {
    char name[HERALD_NAME_MAX];     /* key file name without directory and .public: the client in logs */
    char key[HERALD_KEY_TEXT];      /* Z85 CURVE public key, read from the file at load */
    unsigned roles;                 /* herald_role_t bits, from every list naming this key */
    uint32_t channels;              /* HERALD_ROLE_WORKER: bit i allows channels[i] */
    int line;                       /* configuration line that first listed it */
} herald_client_key_t;

/*  security: CURVE on every endpoint with per-role allowlists, or an explicit
    plaintext: true. Without the section only loopback and ipc are bound. */
typedef struct {
    bool present;                   /* the file has a security section */
    bool curve;                     /* broker_key set: CURVE and ZAP on every endpoint */
    bool plaintext;                 /* plaintext: true: non-loopback tcp without CURVE, by choice */
    char broker_key[HERALD_PATH_MAX];       /* the broker's .secret file (only the broker reads it) */
    char broker_public[HERALD_PATH_MAX];    /* the .public beside it, what clients use */
    char broker_public_key[HERALD_KEY_TEXT];/* read from broker_public at load */
    herald_client_key_t keys[HERALD_MAX_KEYS]; /* every listed key once, roles merged */
    int key_count;
    char producer_file[HERALD_PATH_MAX];    /* first producers entry, "" if none */
    char admin_read_file[HERALD_PATH_MAX];  /* first admin_read entry */
    char admin_operate_file[HERALD_PATH_MAX]; /* first admin_operate entry */
    char worker_file[HERALD_MAX_CHANNELS][HERALD_PATH_MAX]; /* first security.workers.C entry, by channel */
    char tokens_file[HERALD_PATH_MAX];      /* HTTP bearer tokens (herald token), "" = HTTP without tokens */
    char tls_cert[HERALD_PATH_MAX];         /* HTTP endpoint's certificate chain (PEM), "" = no TLS */
    char tls_key[HERALD_PATH_MAX];          /* its private key (PEM) */
} herald_security_config_t;

typedef struct {
    char path[HERALD_PATH_MAX];     /* file this was loaded from, "" for defaults */
    herald_broker_config_t broker;
    herald_event_type_t events[HERALD_MAX_EVENT_TYPES];
    int event_count;
    herald_channel_t channels[HERALD_MAX_CHANNELS];
    int channel_count;
    int workers[HERALD_MAX_CHANNELS]; /* processes `herald up` starts, by channel index */
    herald_security_config_t security;
} herald_config_t;

/*  Fills self with compiled-in defaults: no events, no channels. */
void
    herald_config_defaults (herald_config_t *self);

/*  Loads and validates FILE into self (defaults first). Returns 0, or -1 with
    a message "FILE:LINE: key.path: what" in err. */
int
    herald_config_load (herald_config_t *self, const char *file, char *err, size_t errlen);

/*  Same from a string; name stands in for the file name in messages. */
int
    herald_config_parse (herald_config_t *self, const char *text, size_t len,
                         const char *name, char *err, size_t errlen);

/*  Index of the channel or event type with that name, or -1. */
int
    herald_config_channel_index (const herald_config_t *self, const char *name);
int
    herald_config_event_index (const herald_config_t *self, const char *name);

/*  Human explanation of a loaded config (check-config): endpoints, store,
    event types and their fan-out, channels and policies. Caller frees. */
char *
    herald_config_explain (const herald_config_t *self);

/*  Checks what the processes will need at start beyond what loading checks:
    files they read (templates, CA bundles) readable, environment variables
    they read (smtp.password_env, http header env) set, directories they write
    (the store's, the file driver's) creatable and writable, ipc socket
    directories present. Returns the number of problems, each a line
    "FILE:LINE: key.path: what" in *report (caller frees; NULL when none), or
    -1 when out of memory. Reads self->path again for the line numbers. */
int
    herald_config_check (const herald_config_t *self, char **report);

/*  Parses "500ms", "2s", "10m", "1h", "7d" (bare numbers are ms). 0 / -1. */
int
    herald_parse_duration (const char *text, int64_t *ms);

/*  Parses "256KiB", "1MiB", "1024" (bytes). 0 / -1. */
int
    herald_parse_size (const char *text, size_t *bytes);

const char *
    herald_driver_name (herald_driver_kind_t kind);

/*  A worker's credit on channel: capacity + prefetch, the most unfinished
    tasks the broker gives one worker of it (at most 65535, READY's bound). */
uint32_t
    herald_channel_credit (const herald_channel_t *channel);

/*  Parses a field type list like "string|number" into herald_field_type_t
    flags. 0, or -1 naming the unknown word in err. */
int
    herald_field_types_parse (const char *text, unsigned *types, char *err, size_t errlen);

/*  "a string or a number": the types in words, for error messages. */
const char *
    herald_field_types_describe (unsigned types, char *buf, size_t size);
/*  True for endpoints only this host can reach: ipc://, inproc://, and tcp://
    on 127.0.0.0/8, ::1 or localhost. Anything else (*, 0.0.0.0, interface
    names, other addresses) is reachable from the network. */
bool
    herald_endpoint_is_local (const char *endpoint);

/*  Parses the HTTP endpoint's "HOST:PORT" (HOST: an IPv4 address, [IPv6],
    localhost, or * for every address; PORT 1..65535) into addr (a struct
    sockaddr_in or sockaddr_in6, *addr_len set). 0, or -1 with what is wrong
    in err. */
int
    herald_http_address_parse (const char *text, struct sockaddr_storage *addr, socklen_t *addr_len,
                               char *err, size_t errlen);

/*  The key in self->security.keys with that Z85 text, or NULL. */
const herald_client_key_t *
    herald_config_find_key (const herald_config_t *self, const char *z85);

#endif
