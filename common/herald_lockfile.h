/*  herald_lockfile: an exclusive lock held for the life of a process, so that
    two processes never share what the lock guards (a broker's store, the
    stack `herald up` runs). flock(2) on a small file that holds the holder's
    pid. The kernel releases the lock when the process ends, however it ends
    (kill -9 included): a file left behind is harmless, the next process takes
    the lock and writes its own pid. The file is never removed, since removing
    a lock file races with the next process opening it. */
#ifndef HERALD_LOCKFILE_H
#define HERALD_LOCKFILE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct _herald_lockfile_t herald_lockfile_t;

/*  Takes the lock on path without waiting: creates the file (mode 0644) and
    its missing parent directories (0755), locks it and writes our pid in it.
    Returns the lock, or NULL with err filled: when another process holds it,
    errno is EWOULDBLOCK and *holder its pid (0 if it has not written it yet);
    otherwise *holder is 0 and err says what failed (naming path). */
herald_lockfile_t *
    herald_lockfile_new (const char *path, pid_t *holder, char *err, size_t errlen);

/*  Releases the lock (and empties the file). NULL-safe, nulls *self_p. */
void
    herald_lockfile_destroy (herald_lockfile_t **self_p);

/*  The pid written in the lock file at path, 0 if none (no file, empty,
    unreadable). Says who holds a lock only while it is held. */
pid_t
    herald_lockfile_pid (const char *path);

/*  The path of a held lock. Borrowed. */
const char *
    herald_lockfile_path (const herald_lockfile_t *self);

#endif
