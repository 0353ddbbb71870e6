/*  herald_event.h: private to client/: envelope building with a structured
    error, for callers that report positions themselves (herald publish). */
#ifndef HERALD_EVENT_H
#define HERALD_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int line;               /* JSON syntax error: 1-based line; 0 for other errors */
    int column;             /* JSON syntax error: 1-based column */
    char text[256];         /* what is wrong */
} herald_event_error_t;

/*  What an envelope carries, as built: for messages about it. */
typedef struct {
    char id[129];           /* its "id" ("" when the envelope's is not a string) */
    char type[129];         /* its "type" */
    char source[257];       /* its "source" */
    bool own_id;            /* the id came from the caller (id or the envelope), not made here */
} herald_event_info_t;

/*  herald_event_build on json[0..len). Returns the envelope (caller frees),
    or NULL with error filled. */
char *
    herald_event_buildn (const char *type, const char *source, const char *json,
                         size_t len, herald_event_error_t *error);

/*  herald_event_buildn with an id: id (when not NULL) replaces the envelope's
    own, else the envelope's is kept, else a new UUID v7 is made. info (when
    not NULL) says what the envelope carries. */
char *
    herald_event_buildn_id (const char *type, const char *source, const char *id,
                            const char *json, size_t len, herald_event_info_t *info,
                            herald_event_error_t *error);

/*  Writes a UUID v7 (RFC 9562: unix_ms in its first 48 bits, then 74
    random bits) into buf (>= 37 bytes). 0 / -1 (errno). The ids the
    client makes: ids made later sort after (to the millisecond), so the
    broker's index on event ids grows at its end; random v4 ids put every
    new id on a random page of it (7 times the pages written per event at
    300,000 events stored, BENCHMARKS.md). */
int
    herald_uuid7 (char *buf, size_t size, int64_t unix_ms);

#endif
