/*  herald_config_reload: what a reload (SIGHUP) may change in a running
    process, key by key. Every key of the schema is live (the processes
    that read it take the new value at a reload) or restart (what is bound,
    opened or sized at start: the running value stays in force until the
    process restarts). herald_config_merge compares the running
    configuration with the file read again and makes the one to go on with;
    the broker, the workers and `herald up` each apply their part of it. */
#ifndef HERALD_CONFIG_RELOAD_H
#define HERALD_CONFIG_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "herald_config.h"

typedef enum {
    HERALD_RELOAD_LIVE = 0,         /* applied at a reload */
    HERALD_RELOAD_RESTART           /* the running value stays until a restart */
} herald_reload_t;

#define HERALD_MAX_CHANGES  64      /* changes listed one by one; more are only counted */

typedef struct {
    char key[160];                  /* "channels.email.retry.max_attempts", "channels.sms", "events.order.paid" */
    char was[96];                   /* the running value as text ("8", "-": none; "" when not shown) */
    char now[96];                   /* the file's value, the same way */
    bool restart;                   /* needs a restart: the running value stays */
} herald_config_change_t;

typedef struct {
    herald_config_change_t changes[HERALD_MAX_CHANGES];
    int count;                      /* entries in changes */
    int unlisted;                   /* changes past HERALD_MAX_CHANGES, counted only */
    int restart;                    /* changes (listed or not) that need a restart */
    int event_map[HERALD_MAX_EVENT_TYPES]; /* running's event type i is merged's event_map[i]; -1: removed */
} herald_config_diff_t;

/*  The reload class of a schema pattern ("channels.*.rate", as in the
    schema table), or -1 for a pattern the reload table does not know. */
int
    herald_config_reload_class (const char *pattern);

/*  Writes into *merged the configuration a running process goes on with
    after reading fresh (a loaded, valid file): running's values for the
    keys that need a restart, fresh's for the others. Channels keep
    running's set and order, so their indexes stay valid; event types take
    fresh's order (diff->event_map maps the old indexes). *diff lists what
    differs. The three structs must not overlap. */
void
    herald_config_merge (const herald_config_t *running, const herald_config_t *fresh,
                         herald_config_t *merged, herald_config_diff_t *diff);

/*  "key was->now, key, ..." of the changes that apply now (restart false)
    or that need a restart (true), cut to size; "-" when none. Returns buf. */
const char *
    herald_config_diff_text (const herald_config_diff_t *diff, bool restart, char *buf, size_t size);

/*  The listed change for key, or NULL. */
const herald_config_change_t *
    herald_config_diff_find (const herald_config_diff_t *diff, const char *key);

#endif
