/*  server_helper: starts and stops the real test servers (tests/servers/:
    smtp_server.py, http_server.py) and other children from Criterion tests. Header-only.
    Servers listen on 127.0.0.1 port 0 and write their port to a file; we
    wait for that file with a deadline, never a fixed sleep, and stop them
    by PID. Children get PR_SET_PDEATHSIG so a crashed test leaves none. */
#ifndef HERALD_SERVER_HELPER_H
#define HERALD_SERVER_HELPER_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SRV_PYTHON          "/usr/bin/python3"
#define SRV_START_TIMEOUT   15000       /* ms for a server to write its port file */
#define SRV_MAX_ARGS        32

static inline int64_t
srv_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  A short pause between two checks of a condition (never a synchronisation
    by itself: callers loop until the condition or a deadline). */
static inline void
srv_pause (void)
{
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    nanosleep (&ts, NULL);
}

/*  Creates a fresh directory /tmp/herald-test-XXXXXX into buf. 0 / -1. */
static inline int
srv_make_dir (char *buf, size_t size)
{
    snprintf (buf, size, "/tmp/herald-test-XXXXXX");
    return mkdtemp (buf) ? 0 : -1;
}

static inline int
srv_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove (path);
    return 0;
}

/*  Removes dir and everything below it. */
static inline void
srv_remove_dir (const char *dir)
{
    if (dir && dir [0])
        nftw (dir, srv_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*  Starts argv [0] (a full path) with argv. stdout goes to /dev/null, and
    stderr too when quiet. Returns the child's pid or -1. */
static inline pid_t
srv_spawn (char *const argv [], bool quiet)
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid != 0)
        return pid;
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        _exit (127);
    int null = open ("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2 (null, STDIN_FILENO);
        dup2 (null, STDOUT_FILENO);
        if (quiet)
            dup2 (null, STDERR_FILENO);
    }
    execv (argv [0], argv);
    _exit (127);
}

/*  Runs argv to completion within timeout_ms. Returns its exit status, or -1. */
static inline int
srv_run (char *const argv [], int timeout_ms)
{
    pid_t pid = srv_spawn (argv, true);
    if (pid < 0)
        return -1;
    int64_t deadline = srv_now_ms () + timeout_ms;
    int status;
    while (waitpid (pid, &status, WNOHANG) == 0) {
        if (srv_now_ms () > deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            return -1;
        }
        srv_pause ();
    }
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

/*  Reads a whole file (NUL-terminated). Caller frees. NULL if unreadable. */
static inline char *
srv_read_file (const char *path, size_t *len_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    size_t cap = 4096, len = 0;
    char *data = malloc (cap);
    while (data) {
        if (len + 1 >= cap) {
            char *grown = realloc (data, cap * 2);
            if (!grown) {
                free (data);
                data = NULL;
                break;
            }
            data = grown;
            cap *= 2;
        }
        size_t got = fread (data + len, 1, cap - len - 1, file);
        len += got;
        if (got == 0)
            break;
    }
    fclose (file);
    if (data) {
        data [len] = '\0';
        if (len_p)
            *len_p = len;
    }
    return data;
}

static inline int
srv_write_file (const char *path, const char *text)
{
    FILE *file = fopen (path, "wb");
    if (!file)
        return -1;
    size_t len = strlen (text);
    int rc = fwrite (text, 1, len, file) == len ? 0 : -1;
    return fclose (file) == 0 ? rc : -1;
}

/*  Waits until path exists or timeout_ms passes. 0 / -1. */
static inline int
srv_wait_file (const char *path, int timeout_ms)
{
    int64_t deadline = srv_now_ms () + timeout_ms;
    while (access (path, F_OK) != 0) {
        if (srv_now_ms () > deadline)
            return -1;
        srv_pause ();
    }
    return 0;
}

/*  Stops a child: SIGTERM, then SIGKILL if it is not gone within 5 s. */
static inline void
srv_stop (pid_t pid)
{
    if (pid <= 0)
        return;
    kill (pid, SIGTERM);
    int64_t deadline = srv_now_ms () + 5000;
    int status;
    while (waitpid (pid, &status, WNOHANG) == 0) {
        if (srv_now_ms () > deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            return;
        }
        srv_pause ();
    }
}

/*  Starts tests/servers/SCRIPT with "--port 0 --port-file PORT_FILE" and
    extra arguments (NULL-terminated), waits for the port. Returns the pid
    with *port set, or -1 (the server exited or never wrote its port). */
static inline pid_t
srv_start (const char *script, const char *port_file, const char *const extra [], int *port)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/tests/servers/%s", HERALD_SOURCE_DIR, script);
    const char *argv [SRV_MAX_ARGS] = { SRV_PYTHON, path, "--port", "0", "--port-file", port_file };
    int argc = 6;
    for (int i = 0; extra && extra [i] && argc < SRV_MAX_ARGS - 1; i++)
        argv [argc++] = extra [i];
    argv [argc] = NULL;
    unlink (port_file);
    pid_t pid = srv_spawn ((char *const *) argv, false);
    if (pid < 0)
        return -1;
    int64_t deadline = srv_now_ms () + SRV_START_TIMEOUT;
    while (true) {
        char *text = srv_read_file (port_file, NULL);
        if (text) {
            long value = strtol (text, NULL, 10);
            *port = value > 0 && value < 65536 ? (int) value : 0;
            free (text);
            if (*port > 0)
                return pid;
        }
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid)
            return -1;
        if (srv_now_ms () > deadline) {
            srv_stop (pid);
            return -1;
        }
        srv_pause ();
    }
}

/*  A TCP port on 127.0.0.1 nobody listens on (bound, then released). */
static inline int
srv_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0,
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0
    &&  getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
        port = ntohs (addr.sin_port);
    if (fd >= 0)
        close (fd);
    return port;
}

/*  Writes a self-signed certificate for 127.0.0.1/localhost into dir
    (cert.pem, key.pem) with the openssl command. 0 / -1. */
static inline int
srv_make_cert (const char *dir, char *cert, char *key, size_t size)
{
    snprintf (cert, size, "%s/cert.pem", dir);
    snprintf (key, size, "%s/key.pem", dir);
    const char *argv [] = {
        "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-days", "1", "-keyout", key, "-out", cert, NULL
    };
    return srv_run ((char *const *) argv, 30000) == 0 ? 0 : -1;
}

#endif
