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

/*  A table that grows moves its keys to the new one a run at a time (a run:
    slots between two empty ones), a few runs at each call, as Redis's
    dictionaries rehash, rather than all at once: a run holds every key
    whose home slot lies in it, so a run moved whole leaves the old table
    right for the keys still in it. Meanwhile a key is looked for in the new
    table, then the old; new keys go to the new one. */
typedef struct {
    slot_t *slots;
    size_t mask;                    /* capacity - 1 (a power of two) */
} table_t;

#define S_LAST_MAX      256         /* keys this long or shorter have their hash remembered */

struct dedup {
    table_t now;                    /* where keys are added */
    table_t old;                    /* being moved out (slots NULL if none) */
    size_t old_at;                  /* the old table's next slot to move */
    size_t old_left;                /* and how many of its slots are left */
    size_t count;                   /* keys in both */
    size_t moved;                   /* keys the last call moved */
    uint8_t key[16];                /* SipHash key */
    /*  The last key hashed and its hash: a publish looks its key up, then
        adds it once it is staged (hashing it twice was a twentieth of the
        loop's own instructions per publish). */
    char last[S_LAST_MAX];
    size_t last_len;                /* 0: none */
    uint64_t last_h[2];
};

#define S_MOVE_SLOTS    256         /* old slots looked at per call (at least) */
#define S_HUGE_BYTES    (2u << 20)  /* a table this size or larger is mapped in huge pages */

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
    if (bytes < S_HUGE_BYTES)
        return calloc (capacity, sizeof (slot_t));
    void *p = mmap (NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise (p, bytes, MADV_HUGEPAGE);
    return p;
}

/*  Lets a table's slots go (as s_slots_new made them); slots NULL after. */
static void
s_table_free (table_t *t)
{
    size_t bytes = (t->mask + 1) * sizeof (slot_t);
    if (bytes < S_HUGE_BYTES)
        free (t->slots);
    else
    if (t->slots)
        munmap (t->slots, bytes);
    t->slots = NULL;
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
    self->now.slots = s_slots_new (capacity);
    if (!self->now.slots) {
        free (self);
        return NULL;
    }
    self->now.mask = capacity - 1;
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
    dedup_t *self = *self_p;
    s_table_free (&self->now);
    s_table_free (&self->old);
    free (self);
    *self_p = NULL;
}

/*  The slot holding the fingerprint, or the empty slot where it would go. */
static size_t
s_probe (const table_t *t, uint64_t h1, uint64_t h2)
{
    size_t i = (size_t) h1 & t->mask;
    while (t->slots[i].seq && (t->slots[i].h1 != h1 || t->slots[i].h2 != h2))
        i = (i + 1) & t->mask;
    return i;
}

/*  Moves whole runs of the old table to the new one until `slots` old
    slots were looked at (or all were), then lets the old table go. */
static void
s_move (dedup_t *self, size_t slots)
{
    table_t *old = &self->old;
    while (old->slots && self->old_left > 0 && slots > 0) {
        /*  A run ends at an empty slot (the one the move began after is
            one), so it is moved whole before the budget is looked at. */
        while (old->slots[self->old_at].seq) {
            slot_t *from = &old->slots[self->old_at];
            self->now.slots[s_probe (&self->now, from->h1, from->h2)] = *from;
            *from = (slot_t) { 0, 0, 0 };
            self->moved++;
            self->old_at = (self->old_at + 1) & old->mask;
            self->old_left--;
            slots -= slots > 0;
        }
        self->old_at = (self->old_at + 1) & old->mask;     /* the empty slot ending it */
        self->old_left--;
        slots -= slots > 0;
    }
    if (old->slots && self->old_left == 0)
        s_table_free (old);
}

/*  A table twice the size becomes the one keys go to; the keys move over
    in the calls that follow. A table still moving is finished first (it
    cannot be: the new table is at most 3/8 full when a move begins, and a
    move ends long before it is 3/4 full). */
static int
s_grow (dedup_t *self)
{
    s_move (self, SIZE_MAX);
    size_t capacity = (self->now.mask + 1) * 2;
    slot_t *slots = s_slots_new (capacity);
    if (!slots)
        return -1;
    self->old = self->now;
    self->now = (table_t) { slots, capacity - 1 };
    /*  Begin after an empty slot: no run crosses it (at most 3/4 full). */
    size_t empty = 0;
    while (self->old.slots[empty].seq)
        empty++;
    self->old_at = (empty + 1) & self->old.mask;
    self->old_left = self->old.mask + 1;
    return 0;
}

/*  Where the fingerprint is: its table and slot, or false. */
static bool
s_locate (dedup_t *self, uint64_t h1, uint64_t h2, table_t **table, size_t *slot)
{
    *table = &self->now;
    *slot = s_probe (*table, h1, h2);
    if (self->now.slots[*slot].seq)
        return true;
    if (!self->old.slots)
        return false;
    *table = &self->old;
    *slot = s_probe (*table, h1, h2);
    return self->old.slots[*slot].seq != 0;
}

/*  key's hash, from the memo when it is the last key hashed. */
static void
s_hash (dedup_t *self, const char *key, size_t len, uint64_t h[2])
{
    if (len > 0 && len == self->last_len && memcmp (key, self->last, len) == 0) {
        h[0] = self->last_h[0];
        h[1] = self->last_h[1];
        return;
    }
    dedup_siphash128 (key, len, self->key, h);
    if (len > 0 && len <= S_LAST_MAX) {
        memcpy (self->last, key, len);
        self->last_len = len;
        self->last_h[0] = h[0];
        self->last_h[1] = h[1];
    }
    else
        self->last_len = 0;
}

uint64_t
dedup_find (dedup_t *self, const char *key, size_t len)
{
    self->moved = 0;
    s_move (self, S_MOVE_SLOTS);
    uint64_t h[2];
    s_hash (self, key, len, h);
    table_t *table;
    size_t slot;
    return s_locate (self, h[0], h[1], &table, &slot)? table->slots[slot].seq: 0;
}

uint64_t
dedup_add (dedup_t *self, const char *key, size_t len, uint64_t seq)
{
    self->moved = 0;
    s_move (self, S_MOVE_SLOTS);
    uint64_t h[2];
    s_hash (self, key, len, h);
    table_t *table;
    size_t i;
    if (s_locate (self, h[0], h[1], &table, &i))
        return table->slots[i].seq;
    /*  The new table holds at most `count` keys: grown when they would
        fill 3/4 of it. */
    if ((self->count + 1) * 4 > (self->now.mask + 1) * 3) {
        if (s_grow (self) != 0)
            return UINT64_MAX;
    }
    i = s_probe (&self->now, h[0], h[1]);
    self->now.slots[i] = (slot_t) { h[0], h[1], seq };
    self->count++;
    return 0;
}

void
dedup_remove (dedup_t *self, const char *key, size_t len, uint64_t seq)
{
    self->moved = 0;
    uint64_t h[2];
    s_hash (self, key, len, h);
    table_t *t;
    size_t i;
    if (!s_locate (self, h[0], h[1], &t, &i) || t->slots[i].seq != seq)
        return;
    /*  Backward shift: later members of the run move up into the hole
        unless they already sit at or after their home slot. The run stays
        where it was: in the old table, one not moved yet. */
    size_t hole = i;
    size_t j = i;
    while (true) {
        j = (j + 1) & t->mask;
        if (!t->slots[j].seq)
            break;
        size_t home = (size_t) t->slots[j].h1 & t->mask;
        bool movable = hole <= j? (home <= hole || home > j): (home <= hole && home > j);
        if (movable) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = (slot_t) { 0, 0, 0 };
    self->count--;
}

size_t
dedup_moved (dedup_t *self)
{
    return self->moved;
}

size_t
dedup_count (dedup_t *self)
{
    return self->count;
}

size_t
dedup_bytes (dedup_t *self)
{
    return (self->now.mask + 1 + (self->old.slots? self->old.mask + 1: 0)) * sizeof (slot_t);
}
