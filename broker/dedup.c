/*  dedup: open addressing with linear probing and backward-shift deletion
    over 128-bit fingerprints (see dedup.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mman.h>

#include "dedup.h"

typedef struct {
    uint64_t h1, h2;                /* fingerprint */
    uint64_t seq;                   /* 0: empty slot */
} slot_t;

struct dedup {
    slot_t *slots;
    size_t mask;                    /* capacity - 1 (a power of two) */
    size_t count;
    uint8_t key[16];                /* SipHash key */
};

#define S_ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))
#define S_ROUND \
    do { \
        v0 += v1; v1 = S_ROTL (v1, 13); v1 ^= v0; v0 = S_ROTL (v0, 32); \
        v2 += v3; v3 = S_ROTL (v3, 16); v3 ^= v2; \
        v0 += v3; v3 = S_ROTL (v3, 21); v3 ^= v0; \
        v2 += v1; v1 = S_ROTL (v1, 17); v1 ^= v2; v2 = S_ROTL (v2, 32); \
    } while (0)

static uint64_t
s_le64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void
dedup_siphash128 (const void *data, size_t len, const uint8_t key[16], uint64_t out[2])
{
    const uint8_t *in = data;
    uint64_t k0 = s_le64 (key), k1 = s_le64 (key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1 ^ 0xee;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    const uint8_t *end = in + len - (len % 8);
    for (; in != end; in += 8) {
        uint64_t m = s_le64 (in);
        v3 ^= m;
        S_ROUND;
        S_ROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t) len << 56;
    for (size_t i = len % 8; i > 0; i--)
        b |= (uint64_t) in[i - 1] << (8 * (i - 1));
    v3 ^= b;
    S_ROUND;
    S_ROUND;
    v0 ^= b;
    v2 ^= 0xee;
    S_ROUND; S_ROUND; S_ROUND; S_ROUND;
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    S_ROUND; S_ROUND; S_ROUND; S_ROUND;
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}

/*  A table of 2 MiB or more is asked for in huge pages: each lookup lands
    on a random slot, and with 4 KiB pages most lookups in a large table
    also missed the TLB (1,000,000 keys, 48 MiB: 395 -> 173 ns per lookup
    on this project's machine). The kernel gives them only where
    transparent huge pages are enabled for madvise or always; elsewhere
    this is an ordinary mapping. Zeroed either way, as calloc. */
static slot_t *
s_slots_new (size_t capacity)
{
    size_t bytes = capacity * sizeof (slot_t);
    if (bytes < (2u << 20))
        return calloc (capacity, sizeof (slot_t));
    void *p = mmap (NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise (p, bytes, MADV_HUGEPAGE);
    return p;
}

static void
s_slots_free (slot_t *slots, size_t capacity)
{
    size_t bytes = capacity * sizeof (slot_t);
    if (bytes < (2u << 20))
        free (slots);
    else
    if (slots)
        munmap (slots, bytes);
}

dedup_t *
dedup_new (size_t expected)
{
    dedup_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    size_t capacity = 1024;
    while (capacity / 4 * 3 < expected)
        capacity *= 2;
    self->slots = s_slots_new (capacity);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->mask = capacity - 1;
    if (getrandom (self->key, sizeof self->key, 0) != (ssize_t) sizeof self->key) {
        /*  No entropy: the table still works, it is only less hard to aim at. */
        for (size_t i = 0; i < sizeof self->key; i++)
            self->key[i] = (uint8_t) (i * 131 + (uintptr_t) self);
    }
    return self;
}

void
dedup_destroy (dedup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_slots_free ((*self_p)->slots, (*self_p)->mask + 1);
    free (*self_p);
    *self_p = NULL;
}

/*  The slot holding the fingerprint, or the empty slot where it would go. */
static size_t
s_probe (const dedup_t *self, uint64_t h1, uint64_t h2)
{
    size_t i = (size_t) h1 & self->mask;
    while (self->slots[i].seq && (self->slots[i].h1 != h1 || self->slots[i].h2 != h2))
        i = (i + 1) & self->mask;
    return i;
}

static int
s_grow (dedup_t *self)
{
    size_t capacity = (self->mask + 1) * 2;
    slot_t *slots = s_slots_new (capacity);
    if (!slots)
        return -1;
    slot_t *old = self->slots;
    size_t old_capacity = self->mask + 1;
    self->slots = slots;
    self->mask = capacity - 1;
    for (size_t i = 0; i < old_capacity; i++)
        if (old[i].seq)
            self->slots[s_probe (self, old[i].h1, old[i].h2)] = old[i];
    s_slots_free (old, old_capacity);
    return 0;
}

uint64_t
dedup_find (dedup_t *self, const char *key, size_t len)
{
    uint64_t h[2];
    dedup_siphash128 (key, len, self->key, h);
    return self->slots[s_probe (self, h[0], h[1])].seq;
}

uint64_t
dedup_add (dedup_t *self, const char *key, size_t len, uint64_t seq)
{
    uint64_t h[2];
    dedup_siphash128 (key, len, self->key, h);
    size_t i = s_probe (self, h[0], h[1]);
    if (self->slots[i].seq)
        return self->slots[i].seq;
    if ((self->count + 1) * 4 > (self->mask + 1) * 3) {
        if (s_grow (self) != 0)
            return UINT64_MAX;
        i = s_probe (self, h[0], h[1]);
    }
    self->slots[i] = (slot_t) { h[0], h[1], seq };
    self->count++;
    return 0;
}

void
dedup_remove (dedup_t *self, const char *key, size_t len, uint64_t seq)
{
    uint64_t h[2];
    dedup_siphash128 (key, len, self->key, h);
    size_t i = s_probe (self, h[0], h[1]);
    if (self->slots[i].seq != seq)
        return;
    /*  Backward shift: later members of the run move up into the hole
        unless they already sit at or after their home slot. */
    size_t hole = i;
    size_t j = i;
    while (true) {
        j = (j + 1) & self->mask;
        if (!self->slots[j].seq)
            break;
        size_t home = (size_t) self->slots[j].h1 & self->mask;
        bool movable = hole <= j? (home <= hole || home > j): (home <= hole && home > j);
        if (movable) {
            self->slots[hole] = self->slots[j];
            hole = j;
        }
    }
    self->slots[hole] = (slot_t) { 0, 0, 0 };
    self->count--;
}

size_t
dedup_count (dedup_t *self)
{
    return self->count;
}

size_t
dedup_bytes (dedup_t *self)
{
    return (self->mask + 1) * sizeof (slot_t);
}
