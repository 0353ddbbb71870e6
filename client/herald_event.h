/*  herald_event.h: private to client/: envelope building with a structured
    error, for callers that report positions themselves (herald publish). */
#ifndef HERALD_EVENT_H
#define HERALD_EVENT_H

#include <stddef.h>

typedef struct {
    int line;               /* JSON syntax error: 1-based line; 0 for other errors */
    int column;             /* JSON syntax error: 1-based column */
    char text[256];         /* what is wrong */
} herald_event_error_t;

/*  herald_event_build on json[0..len). Returns the envelope (caller frees),
    or NULL with error filled. */
char *
    herald_event_buildn (const char *type, const char *source, const char *json,
                         size_t len, herald_event_error_t *error);

/*  Writes a random UUID v4 into buf (>= 37 bytes). 0 / -1 (errno). */
int
    herald_uuid4 (char *buf, size_t size);

#endif
