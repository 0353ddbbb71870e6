/*  driver_set: current and retiring driver instances (contract in
    driver_set.h). Instance 0 is the current one. */
#include <stdlib.h>
#include <string.h>

#include "driver_set.h"

#define S_MAX   8               /* the current instance and up to 7 retiring */

typedef struct {
    const hd_driver_ops_t *ops;
    void *instance;
    herald_config_t *config;    /* what the instance borrows; freed with it if own */
    bool own;
    int first_item, item_count; /* its poll items in the last driver_set_poll_items */
} s_slot_t;

struct driver_set {
    s_slot_t slots[S_MAX];
    int count;
};

static void
s_close (s_slot_t *slot)
{
    if (slot->instance)
        slot->ops->close (&slot->instance);
    if (slot->own)
        free (slot->config);
    memset (slot, 0, sizeof *slot);
}

driver_set_t *
driver_set_new (const hd_driver_ops_t *ops, void *instance, herald_config_t *config, bool own)
{
    driver_set_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_slot_t slot = { .ops = ops, .instance = instance, .config = config, .own = own };
        s_close (&slot);
        return NULL;
    }
    self->slots[0] = (s_slot_t) { .ops = ops, .instance = instance, .config = config, .own = own };
    self->count = 1;
    return self;
}

void
driver_set_destroy (driver_set_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    driver_set_t *self = *self_p;
    for (int i = 0; i < self->count; i++)
        s_close (&self->slots[i]);
    free (self);
    *self_p = NULL;
}

int
driver_set_replace (driver_set_t *self, const hd_driver_ops_t *ops, void *instance, herald_config_t *config)
{
    if (self->count >= S_MAX)
        return -1;
    memmove (&self->slots[1], &self->slots[0], (size_t) self->count * sizeof self->slots[0]);
    self->slots[0] = (s_slot_t) { .ops = ops, .instance = instance, .config = config, .own = true };
    self->count++;
    return 0;
}

const hd_driver_ops_t *
driver_set_ops (driver_set_t *self)
{
    return self->slots[0].ops;
}

void *
driver_set_current (driver_set_t *self)
{
    return self->slots[0].instance;
}

int
driver_set_current_in_progress (driver_set_t *self)
{
    return self->slots[0].ops->in_progress (self->slots[0].instance);
}

int
driver_set_in_progress (driver_set_t *self)
{
    int total = 0;
    for (int i = 0; i < self->count; i++)
        total += self->slots[i].ops->in_progress (self->slots[i].instance);
    return total;
}

int
driver_set_count (driver_set_t *self)
{
    return self->count;
}

static bool
s_async (const s_slot_t *slot)
{
    return slot->ops->poll_items && slot->ops->progress;
}

int
driver_set_poll_items (driver_set_t *self, zmq_pollitem_t *items, int max, long *timeout_ms)
{
    int async = 0;
    for (int i = 0; i < self->count; i++)
        async += s_async (&self->slots[i]);
    int share = async? max / async: 0;
    int used = 0;
    for (int i = 0; i < self->count; i++) {
        s_slot_t *slot = &self->slots[i];
        slot->first_item = used;
        slot->item_count = 0;
        if (!s_async (slot))
            continue;
        slot->item_count = slot->ops->poll_items (slot->instance, items + used, share, timeout_ms);
        used += slot->item_count;
    }
    return used;
}

void
driver_set_progress (driver_set_t *self, const zmq_pollitem_t *items, int count)
{
    for (int i = 0; i < self->count; i++) {
        s_slot_t *slot = &self->slots[i];
        if (s_async (slot) && slot->first_item + slot->item_count <= count)
            slot->ops->progress (slot->instance, items + slot->first_item, slot->item_count);
    }
}

void
driver_set_flush (driver_set_t *self)
{
    for (int i = 0; i < self->count; i++)
        if (self->slots[i].ops->flush)
            self->slots[i].ops->flush (self->slots[i].instance);
}

int
driver_set_reap (driver_set_t *self)
{
    for (int i = 1; i < self->count; ) {
        s_slot_t *slot = &self->slots[i];
        if (slot->ops->in_progress (slot->instance) > 0) {
            i++;
            continue;
        }
        s_close (slot);
        memmove (&self->slots[i], &self->slots[i + 1], (size_t) (self->count - i - 1) * sizeof self->slots[0]);
        self->count--;
        memset (&self->slots[self->count], 0, sizeof self->slots[0]);
    }
    return self->count - 1;
}
