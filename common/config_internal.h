/*  config_internal: private to common/, shared by the three files of the
    configuration module. config_yaml.c turns YAML text into the node tree
    below; herald_config.c walks that tree with the schema; config_explain.c
    describes a loaded herald_config_t. No other folder includes this. */
#ifndef CONFIG_INTERNAL_H_INCLUDED
#define CONFIG_INTERNAL_H_INCLUDED

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_config.h"

#define CONFIG_PATH_LEN 512             /* key paths in messages and schema patterns */

/* ------------------------------------------------------------------------ */
/*  Node tree                                                                */

typedef enum {
    CONFIG_NODE_SCALAR,
    CONFIG_NODE_MAP,
    CONFIG_NODE_SEQ
} config_kind_t;

typedef struct config_node_t config_node_t;
struct config_node_t {
    config_kind_t kind;
    int line;                       /* 1-based line of the key, or of the value when it has no key */
    char *key;                      /* key when this is a mapping value, else NULL */
    char *text;                     /* scalar text, NUL-terminated ("" for YAML null) */
    size_t len;                     /* scalar length in bytes */
    config_node_t *first;           /* children: mapping values or sequence items */
    config_node_t *last;
    config_node_t *next;            /* next sibling */
    int count;                      /* number of children */
};

/*  Parses the whole YAML text into *root (NULL for an empty document). Returns
    0, or -1 with "NAME:LINE: path: what" in err; *root is then NULL. The
    caller owns *root and frees it with config_node_destroy. */
int
config_yaml_parse (const char *text, size_t len, const char *name, char *err, size_t errlen,
                   config_node_t **root);

/*  Frees a node and its children; accepts NULL and nulls the caller's pointer. */
void
config_node_destroy (config_node_t **self_p);

/*  The value of key in mapping map, or NULL (also when map is NULL or no mapping).
    Borrowed from map. */
const config_node_t *
config_node_child (const config_node_t *map, const char *key);

/* ------------------------------------------------------------------------ */
/*  Messages                                                                 */

/*  Writes "NAME:LINE: path: " and the formatted text to err (nothing when
    errlen is 0). Always returns -1. */
int
config_vfail (const char *name, char *err, size_t errlen, int line, const char *path,
              const char *fmt, va_list args) __attribute__ ((format (printf, 6, 0)));

/*  Writes "parent.key" (or "key" when parent is "") to out. */
void
config_path_join (char *out, size_t size, const char *parent, const char *key);

/*  Writes ms as the largest whole unit ("7d", "10m", "250ms") to buf; returns buf. */
const char *
config_format_duration (int64_t ms, char *buf, size_t size);

/*  Writes bytes as the largest whole unit ("256KiB", "4096") to buf; returns buf. */
const char *
config_format_size (uint64_t bytes, char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/*  Checks beyond the schema (config_check.c)                                */

/*  Refuses two broker endpoints that would bind the same address. root is
    the parsed file (for lines; may be NULL). 0, or -1 with
    "NAME:LINE: broker.listen.KEY: what" in err. */
int
config_check_endpoints (const herald_config_t *cfg, const config_node_t *root, const char *name,
                        char *err, size_t errlen);

/*  Configuration name of a TLS mode ("starttls", "implicit", "none"), or
    "unknown". Static string. */
const char *
config_tls_name (herald_tls_mode_t mode);

/* ------------------------------------------------------------------------ */
/*  The schema's rows, for what a reload compares (config_reload.c)          */

typedef enum {
    CONFIG_VALUE_NONE = 0,          /* a container or a list, compared by code of its own */
    CONFIG_VALUE_STRING,            /* char[size] */
    CONFIG_VALUE_INT,               /* int */
    CONFIG_VALUE_SIZE,              /* size_t */
    CONFIG_VALUE_DURATION,          /* int64_t ms */
    CONFIG_VALUE_BACKOFF,           /* two int64_t ms, at offset and offset2 */
    CONFIG_VALUE_RATE,              /* double per second */
    CONFIG_VALUE_BOOL,              /* bool */
    CONFIG_VALUE_ENUM               /* int, an index into choices */
} config_value_t;

typedef enum {
    CONFIG_SCOPE_CONFIG,            /* herald_config_t */
    CONFIG_SCOPE_BROKER,            /* herald_broker_config_t */
    CONFIG_SCOPE_CHANNEL,           /* herald_channel_t */
    CONFIG_SCOPE_EVENT,             /* herald_event_type_t */
    CONFIG_SCOPE_SECURITY           /* herald_security_config_t */
} config_scope_t;

typedef struct {
    const char *pattern;            /* "channels.*.retry.max_attempts" (static) */
    config_value_t value;
    config_scope_t scope;
    size_t offset, size, offset2;   /* the target field(s) in the scope's struct */
    const char *const *choices;     /* CONFIG_VALUE_ENUM names */
} config_key_t;

/*  Row index of the schema table into *key: 0, or -1 past the last row. */
int
config_schema_key (size_t index, config_key_t *key);

#endif
