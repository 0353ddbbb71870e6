/*  allowlist: the client keys the broker accepts and what each may do,
    compiled from a configuration's security section into a sorted table.
    Immutable once made: a reload makes a new one and the holders swap
    pointers, so a lookup never sees half of an old list and half of a new
    one. It also remembers keys removed by reloads, so their refusals can say
    so. No I/O, no ZeroMQ. */
#ifndef HERALD_ALLOWLIST_H
#define HERALD_ALLOWLIST_H

#include <stdbool.h>
#include <stdint.h>

#include "herald_config.h"
#include "refusals.h"

#define ALLOWLIST_REMOVED_MAX   1024    /* removed keys remembered, oldest forgotten first */

typedef struct allowlist allowlist_t;

typedef struct {
    char key[HERALD_KEY_TEXT];      /* Z85 public key */
    char name[HERALD_NAME_MAX];     /* from the key file's name */
    unsigned roles;                 /* herald_role_t bits */
    uint32_t channels;              /* bit i: the running configuration's channel i */
} allowlist_entry_t;

/*  Compiles source's keys. Worker channels are matched by name to running's
    channels (the channels of the running broker; source may be a reloaded
    file listing them in another order), channels running does not have are
    dropped. previous (may be NULL): the list this one replaces, for the
    removed keys. Returns NULL on out of memory. */
allowlist_t *
    allowlist_new (const herald_config_t *source, const herald_config_t *running,
                   const allowlist_t *previous);

/*  A copy (for another thread). */
allowlist_t *
    allowlist_copy (const allowlist_t *self);

void
    allowlist_destroy (allowlist_t **self_p);

/*  The entry of key (Z85), or NULL. Borrowed from self. */
const allowlist_entry_t *
    allowlist_find (const allowlist_t *self, const char *key);

/*  The name a removed key had, or NULL if key was never removed (or was
    listed again). Borrowed. */
const char *
    allowlist_removed_name (const allowlist_t *self, const char *key);

/*  Keys in the list. */
int
    allowlist_size (const allowlist_t *self);

/*  Keys previous had that self has not / self has that previous had not. */
int
    allowlist_removed_since (const allowlist_t *self, const allowlist_t *previous);
int
    allowlist_added_since (const allowlist_t *self, const allowlist_t *previous);

/*  True if entry's roles use endpoint: producers need the producer role,
    workers the worker role, admin either admin role. */
bool
    allowlist_permits (const allowlist_entry_t *entry, endpoint_t endpoint);

#endif
