/*  herald_lockfile: flock(2) on a pid file; see herald_lockfile.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_lockfile.h"

struct _herald_lockfile_t {
    int fd;                     /* open and flock'ed for our lifetime */
    char *path;
};

//  Creates the directories above path (mkdir -p of its dirname). 0 / -1 (errno).
static int
s_mkdir_parents (const char *path)
{
    char *dir = strdup (path);
    if (!dir)
        return -1;
    int rc = 0;
    char *slash = strrchr (dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; rc == 0; p++) {
            if (*p != '/' && *p != '\0')
                continue;
            char saved = *p;
            *p = '\0';
            if (mkdir (dir, 0755) != 0 && errno != EEXIST)
                rc = -1;
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    int saved_errno = errno;
    free (dir);
    errno = saved_errno;
    return rc;
}

static pid_t
s_read_pid (int fd)
{
    char text[32];
    ssize_t n = pread (fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    char *end = NULL;
    errno = 0;
    long pid = strtol (text, &end, 10);
    if (errno != 0 || end == text || pid <= 0 || pid > 0x3fffffff)
        return 0;
    return (pid_t) pid;
}

herald_lockfile_t *
herald_lockfile_new (const char *path, pid_t *holder, char *err, size_t errlen)
{
    pid_t spare;
    if (!holder)
        holder = &spare;
    *holder = 0;
    if (!path || !*path) {
        snprintf (err, errlen, "lock file: no path");
        errno = EINVAL;
        return NULL;
    }
    if (s_mkdir_parents (path) != 0) {
        int saved = errno;
        snprintf (err, errlen, "lock file %s: cannot create its directory: %s", path, strerror (saved));
        errno = saved;
        return NULL;
    }
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0) {
        int saved = errno;
        snprintf (err, errlen, "lock file %s: cannot open: %s", path, strerror (saved));
        errno = saved;
        return NULL;
    }
    int rc;
    while ((rc = flock (fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        int saved = errno;
        if (saved == EWOULDBLOCK) {
            *holder = s_read_pid (fd);
            if (*holder > 0)
                snprintf (err, errlen, "%s is locked by process %d", path, (int) *holder);
            else
                snprintf (err, errlen, "%s is locked by another process", path);
        }
        else
            snprintf (err, errlen, "lock file %s: cannot lock: %s", path, strerror (saved));
        close (fd);
        errno = saved;
        return NULL;
    }
    char text[32];
    int len = snprintf (text, sizeof text, "%d\n", (int) getpid ());
    if (ftruncate (fd, 0) != 0 || pwrite (fd, text, (size_t) len, 0) != len) {
        int saved = errno;
        snprintf (err, errlen, "lock file %s: cannot write our pid: %s", path, strerror (saved));
        close (fd);
        errno = saved;
        return NULL;
    }
    herald_lockfile_t *self = calloc (1, sizeof *self);
    if (self)
        self->path = strdup (path);
    if (!self || !self->path) {
        snprintf (err, errlen, "lock file %s: out of memory", path);
        free (self);
        close (fd);
        errno = ENOMEM;
        return NULL;
    }
    self->fd = fd;
    return self;
}

void
herald_lockfile_destroy (herald_lockfile_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herald_lockfile_t *self = *self_p;
    //  An empty file tells a reader nobody holds it any more
    int rc = ftruncate (self->fd, 0);
    (void) rc;                  //  if not, the lock is released all the same
    close (self->fd);
    free (self->path);
    free (self);
    *self_p = NULL;
}

pid_t
herald_lockfile_pid (const char *path)
{
    int fd = path? open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY): -1;
    if (fd < 0)
        return 0;
    pid_t pid = s_read_pid (fd);
    close (fd);
    return pid;
}

const char *
herald_lockfile_path (const herald_lockfile_t *self)
{
    return self? self->path: NULL;
}
