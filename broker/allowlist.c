/*  allowlist: entries sorted by key for bsearch; removed keys in a bounded
    array, newest last. */
#include <stdlib.h>
#include <string.h>

#include "allowlist.h"

typedef struct {
    char key[HERALD_KEY_TEXT];
    char name[HERALD_NAME_MAX];
} s_removed_t;

struct allowlist {
    allowlist_entry_t *entries;     /* sorted by key */
    int count;
    s_removed_t *removed;           /* keys removed by reloads, oldest first */
    int removed_count;
};

static int
s_compare (const void *a, const void *b)
{
    return strcmp (((const allowlist_entry_t *) a)->key, ((const allowlist_entry_t *) b)->key);
}

const allowlist_entry_t *
allowlist_find (const allowlist_t *self, const char *key)
{
    if (!self || !key || self->count == 0)
        return NULL;
    allowlist_entry_t probe;
    size_t len = strlen (key);
    if (len >= sizeof probe.key)
        return NULL;
    memcpy (probe.key, key, len + 1);
    return bsearch (&probe, self->entries, (size_t) self->count, sizeof *self->entries, s_compare);
}

const char *
allowlist_removed_name (const allowlist_t *self, const char *key)
{
    if (!self || !key)
        return NULL;
    for (int i = self->removed_count - 1; i >= 0; i--)
        if (strcmp (self->removed[i].key, key) == 0)
            return self->removed[i].name;
    return NULL;
}

int
allowlist_size (const allowlist_t *self)
{
    return self? self->count: 0;
}

int
allowlist_removed_since (const allowlist_t *self, const allowlist_t *previous)
{
    int n = 0;
    for (int i = 0; previous && i < previous->count; i++)
        if (!allowlist_find (self, previous->entries[i].key))
            n++;
    return n;
}

int
allowlist_added_since (const allowlist_t *self, const allowlist_t *previous)
{
    return allowlist_removed_since (previous, self);
}

bool
allowlist_permits (const allowlist_entry_t *entry, endpoint_t endpoint)
{
    if (!entry)
        return false;
    switch (endpoint) {
        case ENDPOINT_PRODUCERS:
            return entry->roles & HERALD_ROLE_PRODUCER;
        case ENDPOINT_WORKERS:
            return entry->roles & HERALD_ROLE_WORKER;
        case ENDPOINT_ADMIN:
            return entry->roles & (HERALD_ROLE_ADMIN_READ | HERALD_ROLE_ADMIN_OPERATE);
        default:
            return false;
    }
}

/*  Appends a removed key, forgetting the oldest when full. */
static void
s_remember_removed (allowlist_t *self, const char *key, const char *name)
{
    for (int i = 0; i < self->removed_count; i++)
        if (strcmp (self->removed[i].key, key) == 0)
            return;
    if (self->removed_count == ALLOWLIST_REMOVED_MAX) {
        memmove (self->removed, self->removed + 1, (ALLOWLIST_REMOVED_MAX - 1) * sizeof *self->removed);
        self->removed_count--;
    }
    s_removed_t *slot = &self->removed[self->removed_count++];
    memcpy (slot->key, key, sizeof slot->key);
    memcpy (slot->name, name, sizeof slot->name);
}

allowlist_t *
allowlist_new (const herald_config_t *source, const herald_config_t *running, const allowlist_t *previous)
{
    allowlist_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    const herald_security_config_t *sec = &source->security;
    self->entries = calloc ((size_t) (sec->key_count > 0? sec->key_count: 1), sizeof *self->entries);
    self->removed = calloc (ALLOWLIST_REMOVED_MAX, sizeof *self->removed);
    if (!self->entries || !self->removed) {
        allowlist_destroy (&self);
        return NULL;
    }
    for (int i = 0; i < sec->key_count; i++) {
        const herald_client_key_t *key = &sec->keys[i];
        allowlist_entry_t *entry = &self->entries[self->count++];
        memcpy (entry->key, key->key, sizeof entry->key);
        memcpy (entry->name, key->name, sizeof entry->name);
        entry->roles = key->roles;
        entry->channels = 0;
        for (int c = 0; c < source->channel_count && c < 32; c++) {
            if (!(key->channels & (UINT32_C (1) << c)))
                continue;
            int index = herald_config_channel_index (running, source->channels[c].name);
            if (index >= 0 && index < 32)
                entry->channels |= UINT32_C (1) << index;
        }
    }
    qsort (self->entries, (size_t) self->count, sizeof *self->entries, s_compare);

    if (previous) {
        /*  Still removed: what was removed before and is not listed again;
            newly removed: what previous listed and this does not. */
        for (int i = 0; i < previous->removed_count; i++)
            if (!allowlist_find (self, previous->removed[i].key))
                s_remember_removed (self, previous->removed[i].key, previous->removed[i].name);
        for (int i = 0; i < previous->count; i++)
            if (!allowlist_find (self, previous->entries[i].key))
                s_remember_removed (self, previous->entries[i].key, previous->entries[i].name);
    }
    return self;
}

allowlist_t *
allowlist_copy (const allowlist_t *self)
{
    if (!self)
        return NULL;
    allowlist_t *copy = calloc (1, sizeof *copy);
    if (!copy)
        return NULL;
    copy->entries = calloc ((size_t) (self->count > 0? self->count: 1), sizeof *copy->entries);
    copy->removed = calloc (ALLOWLIST_REMOVED_MAX, sizeof *copy->removed);
    if (!copy->entries || !copy->removed) {
        allowlist_destroy (&copy);
        return NULL;
    }
    memcpy (copy->entries, self->entries, (size_t) self->count * sizeof *self->entries);
    memcpy (copy->removed, self->removed, (size_t) self->removed_count * sizeof *self->removed);
    copy->count = self->count;
    copy->removed_count = self->removed_count;
    return copy;
}

void
allowlist_destroy (allowlist_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    allowlist_t *self = *self_p;
    free (self->entries);
    free (self->removed);
    free (self);
    *self_p = NULL;
}
