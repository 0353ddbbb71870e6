/*  peers: a table indexed by file descriptor, grown as descriptors grow. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "herald_config.h"
#include "peers.h"

#define S_MAX_FD    (1 << 20)       /* descriptors beyond are not tracked */

typedef struct {
    bool used;
    endpoint_t endpoint;
    char key[HERALD_KEY_TEXT];
} s_slot_t;

struct peers {
    pthread_mutex_t lock;
    s_slot_t *slots;                /* indexed by fd */
    int size;
};

peers_t *
peers_new (void)
{
    peers_t *self = calloc (1, sizeof *self);
    if (self)
        pthread_mutex_init (&self->lock, NULL);
    return self;
}

void
peers_destroy (peers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    peers_t *self = *self_p;
    pthread_mutex_destroy (&self->lock);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

void
peers_note (peers_t *self, int fd, endpoint_t endpoint, const char *key)
{
    if (!self || fd < 0 || fd >= S_MAX_FD || !key || strlen (key) >= HERALD_KEY_TEXT)
        return;
    pthread_mutex_lock (&self->lock);
    if (fd >= self->size) {
        int size = self->size? self->size: 256;
        while (size <= fd)
            size *= 2;
        s_slot_t *grown = realloc (self->slots, (size_t) size * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock (&self->lock);
            return;
        }
        memset (grown + self->size, 0, (size_t) (size - self->size) * sizeof *grown);
        self->slots = grown;
        self->size = size;
    }
    s_slot_t *slot = &self->slots[fd];
    if (!slot->used || slot->endpoint != endpoint || strcmp (slot->key, key) != 0) {
        slot->used = true;
        slot->endpoint = endpoint;
        snprintf (slot->key, sizeof slot->key, "%s", key);
    }
    pthread_mutex_unlock (&self->lock);
}

void
peers_forget (peers_t *self, int fd)
{
    if (!self || fd < 0)
        return;
    pthread_mutex_lock (&self->lock);
    if (fd < self->size)
        self->slots[fd].used = false;
    pthread_mutex_unlock (&self->lock);
}

int
peers_close_unless (peers_t *self, peers_keep_fn *keep, void *arg,
                    void (*on_close) (void *arg, int fd, endpoint_t endpoint, const char *key))
{
    if (!self || !keep)
        return 0;
    int closed = 0;
    pthread_mutex_lock (&self->lock);
    for (int fd = 0; fd < self->size; fd++) {
        s_slot_t *slot = &self->slots[fd];
        if (!slot->used || keep (arg, slot->endpoint, slot->key))
            continue;
        s_slot_t gone = *slot;
        slot->used = false;
        shutdown (fd, SHUT_RDWR);
        closed++;
        if (on_close) {
            pthread_mutex_unlock (&self->lock);
            on_close (arg, fd, gone.endpoint, gone.key);
            pthread_mutex_lock (&self->lock);
        }
    }
    pthread_mutex_unlock (&self->lock);
    return closed;
}
