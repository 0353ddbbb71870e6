/*  dedup: the idempotency keys of the events the store still holds, in
    memory, so that telling a new event from a duplicate costs no storage
    read on the ACK path. A key is kept as a 128-bit SipHash fingerprint
    under a key chosen at random when the table is made (an attacker cannot
    aim two keys at one fingerprint; by chance it takes some 2^64 keys),
    with the sequence number of its event: 24 bytes a key, in a table at
    most 3/4 full. A table that grows moves its keys to one twice its size
    a few at a time, in the calls that follow, so no call takes long (the
    old table is let go when the last key has moved). The store fills it at start and after each insert; the
    pruning of old events takes their keys out. */
#ifndef HERALD_DEDUP_H
#define HERALD_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct dedup dedup_t;

/*  A table for about `expected` keys (it grows as needed). NULL on OOM. */
dedup_t *
    dedup_new (size_t expected);

void
    dedup_destroy (dedup_t **self_p);

/*  The event holding key, or 0. */
uint64_t
    dedup_find (dedup_t *self, const char *key, size_t len);

/*  Adds key for event seq (seq > 0) unless it is there: returns the seq
    already holding it, 0 when added, or UINT64_MAX when out of memory. */
uint64_t
    dedup_add (dedup_t *self, const char *key, size_t len, uint64_t seq);

/*  Takes key out if it belongs to event seq. */
void
    dedup_remove (dedup_t *self, const char *key, size_t len, uint64_t seq);

/*  Keys the last call moved to a grown table (a table grows a few keys
    at a time, so that no call takes long): for tests. */
size_t
    dedup_moved (dedup_t *self);

/*  Keys held, and the bytes of the table. */
size_t
    dedup_count (dedup_t *self);
size_t
    dedup_bytes (dedup_t *self);

/*  SipHash-2-4 with a 128-bit result (Aumasson and Bernstein). */
void
    dedup_siphash128 (const void *data, size_t len, const uint8_t key[16], uint64_t out[2]);

#endif
