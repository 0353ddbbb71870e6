/*  Unit tests: broker/dedup - idempotency keys in memory. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dedup.h"

Test (dedup, add_find_remove)
{
    dedup_t *d = dedup_new (0);
    cr_assert_eq (dedup_add (d, "a", 1, 7), 0);
    cr_assert_eq (dedup_add (d, "a", 1, 9), 7, "a key already held gives its event");
    cr_assert_eq (dedup_find (d, "a", 1), 7);
    cr_assert_eq (dedup_find (d, "b", 1), 0);
    dedup_remove (d, "a", 1, 8);            /* not its event: kept */
    cr_assert_eq (dedup_find (d, "a", 1), 7);
    dedup_remove (d, "a", 1, 7);
    cr_assert_eq (dedup_find (d, "a", 1), 0);
    cr_assert_eq (dedup_count (d), 0);
    dedup_destroy (&d);
    cr_assert_null (d);
}

/*  The hash of the last key looked at is remembered (a publish finds its
    key, then adds it): keys of the same length that differ in one byte,
    looked at in turns, and a key longer than what is remembered, are each
    their own. */
Test (dedup, remembered_hash_is_the_keys_own)
{
    dedup_t *d = dedup_new (0);
    cr_assert_eq (dedup_find (d, "order-1", 7), 0);
    cr_assert_eq (dedup_add (d, "order-2", 7, 2), 0);
    cr_assert_eq (dedup_find (d, "order-1", 7), 0, "order-2's hash answered for order-1");
    cr_assert_eq (dedup_add (d, "order-1", 7, 1), 0);
    cr_assert_eq (dedup_find (d, "order-2", 7), 2);
    cr_assert_eq (dedup_find (d, "order-1", 7), 1);
    cr_assert_eq (dedup_find (d, "order-3", 7), 0);
    char a[400], b[400];
    memset (a, 'k', sizeof a);
    memcpy (b, a, sizeof b);
    b[sizeof b - 1] = 'l';
    cr_assert_eq (dedup_add (d, a, sizeof a, 3), 0);
    cr_assert_eq (dedup_find (d, b, sizeof b), 0);
    cr_assert_eq (dedup_find (d, a, sizeof a), 3);
    dedup_remove (d, "order-1", 7, 1);
    cr_assert_eq (dedup_find (d, "order-1", 7), 0);
    cr_assert_eq (dedup_count (d), 2);
    dedup_destroy (&d);
}

/*  Growth and deletion keep every other key findable (backward shift). */
Test (dedup, many_keys_survive_growth_and_removal)
{
    dedup_t *d = dedup_new (16);
    char key[32];
    for (uint64_t i = 1; i <= 200000; i++) {
        int n = snprintf (key, sizeof key, "order-%llu", (unsigned long long) i);
        cr_assert_eq (dedup_add (d, key, (size_t) n, i), 0);
    }
    cr_assert_eq (dedup_count (d), 200000);
    for (uint64_t i = 1; i <= 200000; i += 2) {
        int n = snprintf (key, sizeof key, "order-%llu", (unsigned long long) i);
        dedup_remove (d, key, (size_t) n, i);
    }
    for (uint64_t i = 1; i <= 200000; i++) {
        int n = snprintf (key, sizeof key, "order-%llu", (unsigned long long) i);
        cr_assert_eq (dedup_find (d, key, (size_t) n), i % 2? 0: i, "key %llu", (unsigned long long) i);
    }
    cr_assert_leq (dedup_bytes (d), 24u * 512 * 1024, "24 bytes a slot, at most 3/4 full");
    dedup_destroy (&d);
}

/*  A table that grows does not stop its caller for a rehash of every key:
    no call moves more than a bounded number of keys (a rehash of 3 million
    keys held the broker's loop for 0.4 s), and every key stays findable
    while the keys move, through adds, finds and removes in any order. */
Test (dedup, growth_moves_keys_a_few_at_a_time)
{
    dedup_t *d = dedup_new (16);
    enum { KEYS = 300000 };
    static uint64_t held[KEYS + 1];            /* the reference: the seq holding key i, or 0 */
    char key[32];
    uint64_t rng = 88172645463325252ULL, seq = 0;
    size_t most = 0;
    for (int op = 0; op < 3 * KEYS; op++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        uint64_t i = 1 + rng % KEYS;
        int n = snprintf (key, sizeof key, "order-%llu", (unsigned long long) i);
        switch ((rng >> 40) % 4) {
            case 0:
            case 1: {
                uint64_t got = dedup_add (d, key, (size_t) n, ++seq);
                cr_assert_eq (got, held[i], "add of key %llu at op %d", (unsigned long long) i, op);
                if (!held[i])
                    held[i] = seq;
                break;
            }
            case 2:
                if (!held[i])
                    break;
                dedup_remove (d, key, (size_t) n, held[i] + 1);     /* another event's: kept */
                cr_assert_eq (dedup_find (d, key, (size_t) n), held[i]);
                dedup_remove (d, key, (size_t) n, held[i]);
                held[i] = 0;
                break;
            default:
                cr_assert_eq (dedup_find (d, key, (size_t) n), held[i], "find of key %llu at op %d",
                              (unsigned long long) i, op);
        }
        if (dedup_moved (d) > most)
            most = dedup_moved (d);
    }
    size_t count = 0;
    for (uint64_t i = 1; i <= KEYS; i++) {
        int n = snprintf (key, sizeof key, "order-%llu", (unsigned long long) i);
        cr_assert_eq (dedup_find (d, key, (size_t) n), held[i], "key %llu at the end", (unsigned long long) i);
        count += held[i] != 0;
    }
    cr_assert_eq (dedup_count (d), count);
    cr_assert_gt (dedup_bytes (d), 24u * 65536, "the table grew past 65,536 slots");
    cr_assert_leq (most, 4096, "one call moved %zu keys", most);
    dedup_destroy (&d);
}

/*  Reference vector: SipHash-2-4-128, key 00..0f, message 00..0e
    (the vectors of the reference implementation, vectors_sip128[15]). */
Test (dedup, siphash128_reference_vector)
{
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t) i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t) i;
    uint64_t out[2];
    dedup_siphash128 (msg, 0, key, out);
    static const uint8_t empty[16] = { 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                       0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93 };
    uint8_t bytes[16];
    for (int i = 0; i < 8; i++) {
        bytes[i] = (uint8_t) (out[0] >> (8 * i));
        bytes[8 + i] = (uint8_t) (out[1] >> (8 * i));
    }
    cr_assert (memcmp (bytes, empty, 16) == 0, "siphash128 of the empty message");
}
