/*  outbox: per-peer parked replies with caps (contract in outbox.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "herald_log.h"
#include "herald_wire.h"
#include "outbox.h"

#define S_BUCKETS       4096        /* peer hash buckets (a power of two) */
#define S_DROPPED_MAX   4096        /* dropped peers remembered; the oldest are forgotten */
#define S_IDENTITY_MAX  255         /* ZeroMQ routing ids are at most 255 bytes */

typedef struct parked {
    struct parked *next;
    size_t count;                   /* frames after the identity */
    size_t sizes[HP_MAX_FRAMES];
    char data[];                    /* the frames, one after the other */
} parked_t;

typedef struct peer {
    struct peer *chain;             /* hash bucket */
    struct peer *next, *prev;       /* waiting list, or dropped list */
    parked_t *head, *tail;
    size_t parked;
    bool dropped;
    size_t identity_len;
    unsigned char identity[S_IDENTITY_MAX];
} peer_t;

typedef struct {
    peer_t *head, *tail;
    size_t count;
} peer_list_t;

struct outbox {
    void *socket;
    char what[32];
    size_t peer_cap, total_cap;
    peer_t *buckets[S_BUCKETS];
    peer_list_t waiting;            /* peers with parked replies */
    peer_list_t dropped;            /* dropped peers, oldest first */
    size_t parked;
    uint64_t dropped_total, lost;
};

static uint32_t
s_hash (const void *identity, size_t len)
{
    const unsigned char *p = identity;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h & (S_BUCKETS - 1);
}

static const char *
s_hex (const peer_t *peer, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < peer->identity_len && n + 3 < size; i++)
        n += (size_t) snprintf (buf + n, size - n, "%02x", peer->identity[i]);
    buf[n] = '\0';
    return buf;
}

static void
s_list_add (peer_list_t *list, peer_t *peer)
{
    peer->next = NULL;
    peer->prev = list->tail;
    if (list->tail)
        list->tail->next = peer;
    else
        list->head = peer;
    list->tail = peer;
    list->count++;
}

static void
s_list_remove (peer_list_t *list, peer_t *peer)
{
    if (peer->prev)
        peer->prev->next = peer->next;
    else
        list->head = peer->next;
    if (peer->next)
        peer->next->prev = peer->prev;
    else
        list->tail = peer->prev;
    peer->next = peer->prev = NULL;
    list->count--;
}

static peer_t *
s_find (outbox_t *self, const void *identity, size_t len)
{
    for (peer_t *peer = self->buckets[s_hash (identity, len)]; peer; peer = peer->chain)
        if (peer->identity_len == len && memcmp (peer->identity, identity, len) == 0)
            return peer;
    return NULL;
}

static peer_t *
s_peer_new (outbox_t *self, const void *identity, size_t len)
{
    if (len > S_IDENTITY_MAX)
        return NULL;
    peer_t *peer = calloc (1, sizeof *peer);
    if (!peer)
        return NULL;
    memcpy (peer->identity, identity, len);
    peer->identity_len = len;
    uint32_t bucket = s_hash (identity, len);
    peer->chain = self->buckets[bucket];
    self->buckets[bucket] = peer;
    return peer;
}

/*  Discards the peer's parked replies; returns how many. */
static size_t
s_discard (outbox_t *self, peer_t *peer)
{
    size_t n = peer->parked;
    while (peer->head) {
        parked_t *next = peer->head->next;
        free (peer->head);
        peer->head = next;
    }
    peer->tail = NULL;
    self->parked -= n;
    peer->parked = 0;
    self->lost += n;
    return n;
}

/*  Forgets a peer entirely (gone, or drained and not dropped). */
static void
s_peer_forget (outbox_t *self, peer_t *peer)
{
    s_discard (self, peer);
    if (peer->dropped)
        s_list_remove (&self->dropped, peer);
    else
    if (peer->next || peer->prev || self->waiting.head == peer)
        s_list_remove (&self->waiting, peer);
    peer_t **link = &self->buckets[s_hash (peer->identity, peer->identity_len)];
    while (*link != peer)
        link = &(*link)->chain;
    *link = peer->chain;
    free (peer);
}

static void
s_drop (outbox_t *self, peer_t *peer, const char *why)
{
    char hex[2 * 16 + 1];
    size_t parked = peer->parked;
    s_discard (self, peer);
    s_list_remove (&self->waiting, peer);
    peer->dropped = true;
    s_list_add (&self->dropped, peer);
    self->dropped_total++;
    herald_warn ("producer dropped: it does not read its replies",
                 "peer=%s role=%s parked=%zu reason=\"%s\" dropped_total=%llu",
                 s_hex (peer, hex, sizeof hex), self->what, parked, why,
                 (unsigned long long) self->dropped_total);
    while (self->dropped.count > S_DROPPED_MAX)
        s_peer_forget (self, self->dropped.head);
}

/*  Sends a parked reply. 0 / -1 with errno. */
static int
s_send_parked (outbox_t *self, const peer_t *peer, const parked_t *reply)
{
    if (zmq_send (self->socket, peer->identity, peer->identity_len, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1)
        return -1;
    const char *p = reply->data;
    for (size_t i = 0; i < reply->count; i++) {
        int more = i + 1 < reply->count? ZMQ_SNDMORE: 0;
        if (zmq_send (self->socket, reply->sizes[i]? p: "", reply->sizes[i], ZMQ_DONTWAIT | more) == -1)
            return -1;
        p += reply->sizes[i];
    }
    return 0;
}

static parked_t *
s_parked_new (const hp_msg_t *msg)
{
    hp_encoded_t out;
    if (hp_encode (msg, &out) != 0)
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < out.count; i++)
        total += out.frames[i].size;
    parked_t *reply = malloc (sizeof *reply + total);
    if (!reply)
        return NULL;
    reply->next = NULL;
    reply->count = out.count;
    char *p = reply->data;
    for (size_t i = 0; i < out.count; i++) {
        reply->sizes[i] = out.frames[i].size;
        if (out.frames[i].size)
            memcpy (p, out.frames[i].data, out.frames[i].size);
        p += out.frames[i].size;
    }
    return reply;
}

outbox_t *
outbox_new (void *socket, const char *what, size_t peer_cap, size_t total_cap)
{
    outbox_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->socket = socket;
    snprintf (self->what, sizeof self->what, "%s", what);
    outbox_set_caps (self, peer_cap, total_cap);
    return self;
}

void
outbox_set_caps (outbox_t *self, size_t peer_cap, size_t total_cap)
{
    self->peer_cap = peer_cap > 0? peer_cap: 1;
    self->total_cap = total_cap >= self->peer_cap? total_cap: self->peer_cap;
}

void
outbox_destroy (outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    outbox_t *self = *self_p;
    for (size_t b = 0; b < S_BUCKETS; b++)
        while (self->buckets[b])
            s_peer_forget (self, self->buckets[b]);
    free (self);
    *self_p = NULL;
}

outbox_result_t
outbox_send (outbox_t *self, const void *identity, size_t identity_len, const hp_msg_t *msg)
{
    peer_t *peer = s_find (self, identity, identity_len);
    if (!peer || peer->parked == 0) {
        if (hw_send (self->socket, hp_strn (identity, identity_len), msg, ZMQ_DONTWAIT) == 0)
            return OUTBOX_SENT;
        if (errno != EAGAIN) {
            /*  Gone (EHOSTUNREACH): it will publish again if it cares. */
            self->lost++;
            if (peer)
                s_peer_forget (self, peer);
            return OUTBOX_LOST;
        }
        if (peer && peer->dropped) {
            self->lost++;
            return OUTBOX_LOST;
        }
    }
    if (!peer && !(peer = s_peer_new (self, identity, identity_len))) {
        self->lost++;
        herald_error ("out of memory: reply lost", "role=%s", self->what);
        return OUTBOX_LOST;
    }
    if (peer->parked >= self->peer_cap) {
        s_drop (self, peer, "its parked replies reached the per-peer cap");
        self->lost++;
        return OUTBOX_LOST;
    }
    if (self->parked >= self->total_cap) {
        peer_t *worst = peer;
        for (peer_t *p = self->waiting.head; p; p = p->next)
            if (p->parked > worst->parked)
                worst = p;
        if (worst->parked > 0)
            s_drop (self, worst, "the broker's parked replies reached their total cap");
        if (worst == peer || self->parked >= self->total_cap) {
            self->lost++;
            if (!peer->dropped && peer->parked == 0)
                s_peer_forget (self, peer);
            return OUTBOX_LOST;
        }
    }
    parked_t *reply = s_parked_new (msg);
    if (!reply) {
        self->lost++;
        if (peer->parked == 0 && !peer->dropped)
            s_peer_forget (self, peer);
        herald_error ("out of memory: reply lost", "role=%s", self->what);
        return OUTBOX_LOST;
    }
    if (peer->parked == 0 && !peer->dropped)
        s_list_add (&self->waiting, peer);
    if (peer->tail)
        peer->tail->next = reply;
    else
        peer->head = reply;
    peer->tail = reply;
    peer->parked++;
    self->parked++;
    return OUTBOX_PARKED;
}

void
outbox_flush (outbox_t *self)
{
    peer_t *peer = self->waiting.head;
    while (peer) {
        peer_t *next = peer->next;
        while (peer->head) {
            if (s_send_parked (self, peer, peer->head) != 0)
                break;
            parked_t *sent = peer->head;
            peer->head = sent->next;
            free (sent);
            peer->parked--;
            self->parked--;
        }
        if (!peer->head) {
            peer->tail = NULL;
            s_peer_forget (self, peer);
        }
        else
        if (errno != EAGAIN)
            s_peer_forget (self, peer);     /* gone: its replies cannot be delivered */
        peer = next;
    }
}

size_t
outbox_parked (outbox_t *self)
{
    return self->parked;
}

void
outbox_stats (outbox_t *self, outbox_stats_t *stats)
{
    *stats = (outbox_stats_t) {
        .parked = self->parked,
        .peers_waiting = self->waiting.count,
        .dropped = self->dropped_total,
        .lost = self->lost,
    };
}
