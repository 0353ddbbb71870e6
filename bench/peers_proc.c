/*  peers_proc: see peers_proc.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "peers_proc.h"

#define PROC_LINE_MAX   4096        /* buffered output of a piped child */

struct peers_proc {
    char name[64];
    char log[512];
    pid_t pid;
    bool exited;                    /* reaped */
    int status;                     /* exit status once reaped */
    double cpu_at_exit;             /* seconds, from wait4 */
    int in_fd;                      /* its stdin, or -1 */
    int out_fd;                     /* its stdout, or -1 */
    char line[PROC_LINE_MAX];       /* read but not yet returned */
    size_t line_len;
};

peers_proc_t *
peers_proc_start (const char *name, char *const argv[], const char *log, bool piped)
{
    peers_proc_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->name, sizeof self->name, "%s", name);
    snprintf (self->log, sizeof self->log, "%s", log);
    self->in_fd = self->out_fd = -1;
    int to_child[2] = { -1, -1 }, from_child[2] = { -1, -1 };
    if (piped && (pipe2 (to_child, O_CLOEXEC) != 0 || pipe2 (from_child, O_CLOEXEC) != 0)) {
        fprintf (stderr, "herald_bench_peers: pipe: %s\n", strerror (errno));
        free (self);
        return NULL;
    }
    fflush (stdout);
    fflush (stderr);
    pid_t parent = getpid ();
    self->pid = fork ();
    if (self->pid < 0) {
        fprintf (stderr, "herald_bench_peers: fork: %s\n", strerror (errno));
        free (self);
        return NULL;
    }
    if (self->pid == 0) {
        //  Its own process group: a terminal's Ctrl-C reaches only the
        //  bench, which stops its children in order. If the bench itself is
        //  killed, its children get SIGTERM instead of running on.
        setpgid (0, 0);
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (127);
        signal (SIGINT, SIG_DFL);
        signal (SIGTERM, SIG_DFL);
        signal (SIGPIPE, SIG_DFL);
        int fd = open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || null < 0)
            _exit (127);
        dup2 (piped? to_child[0]: null, STDIN_FILENO);
        dup2 (piped? from_child[1]: fd, STDOUT_FILENO);
        dup2 (fd, STDERR_FILENO);
        execv (argv[0], argv);
        dprintf (fd, "herald_bench_peers: exec %s: %s\n", argv[0], strerror (errno));
        _exit (127);
    }
    if (piped) {
        close (to_child[0]);
        close (from_child[1]);
        self->in_fd = to_child[1];
        self->out_fd = from_child[0];
    }
    return self;
}

static void
s_reaped (peers_proc_t *self, int status, const struct rusage *ru)
{
    self->exited = true;
    self->status = WIFEXITED (status)? WEXITSTATUS (status): 128 + WTERMSIG (status);
    self->cpu_at_exit = (double) ru->ru_utime.tv_sec + (double) ru->ru_utime.tv_usec / 1e6
                      + (double) ru->ru_stime.tv_sec + (double) ru->ru_stime.tv_usec / 1e6;
}

bool
peers_proc_running (peers_proc_t *self)
{
    if (self->exited)
        return false;
    int status;
    struct rusage ru;
    if (wait4 (self->pid, &status, WNOHANG, &ru) == self->pid)
        s_reaped (self, status, &ru);
    return !self->exited;
}

int
peers_proc_wait (peers_proc_t *self, int timeout_ms)
{
    double deadline = bench_now_ms () + timeout_ms;
    while (peers_proc_running (self)) {
        if (bench_now_ms () >= deadline)
            return -1;
        struct timespec pause = { 0, 2000000 };
        nanosleep (&pause, NULL);
    }
    return self->status;
}

void
peers_proc_stop (peers_proc_t **self_p, int grace_ms)
{
    if (!self_p || !*self_p)
        return;
    peers_proc_t *self = *self_p;
    if (peers_proc_running (self)) {
        kill (self->pid, SIGTERM);
        if (peers_proc_wait (self, grace_ms) < 0) {
            fprintf (stderr, "herald_bench_peers: %s (pid %d) still running %d ms after "
                     "SIGTERM: SIGKILL\n", self->name, (int) self->pid, grace_ms);
            kill (self->pid, SIGKILL);
            int status;
            struct rusage ru;
            if (wait4 (self->pid, &status, 0, &ru) == self->pid)
                s_reaped (self, status, &ru);
        }
    }
    if (self->in_fd >= 0)
        close (self->in_fd);
    if (self->out_fd >= 0)
        close (self->out_fd);
    free (self);
    *self_p = NULL;
}

const char *
peers_proc_name (peers_proc_t *self)
{
    return self->name;
}

pid_t
peers_proc_pid (peers_proc_t *self)
{
    return self->pid;
}

const char *
peers_proc_log (peers_proc_t *self)
{
    return self->log;
}

double
peers_proc_cpu (peers_proc_t *self)
{
    if (self->exited || !peers_proc_running (self))
        return self->cpu_at_exit;
    char path[64], buf[2048];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) self->pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf[n] = '\0';
    char *p = strrchr (buf, ')');
    //  After the command: state(3) ppid pgrp session tty tpgid flags minflt
    //  cminflt majflt cmajflt utime(14) stime(15), in clock ticks.
    unsigned long utime = 0, stime = 0;
    if (!p || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                      &utime, &stime) != 2)
        return -1;
    long hz = sysconf (_SC_CLK_TCK);
    return hz > 0? (double) (utime + stime) / (double) hz: -1;
}

int
peers_proc_memory (peers_proc_t *self, long *rss_kib, long *hwm_kib)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) self->pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    *rss_kib = *hwm_kib = -1;
    while (fgets (line, sizeof line, f)) {
        long kib;
        if (sscanf (line, "VmRSS: %ld kB", &kib) == 1)
            *rss_kib = kib;
        else
        if (sscanf (line, "VmHWM: %ld kB", &kib) == 1)
            *hwm_kib = kib;
    }
    fclose (f);
    return *rss_kib >= 0 && *hwm_kib >= 0? 0: -1;
}

int
peers_proc_read_line (peers_proc_t *self, char *buf, size_t size, int timeout_ms)
{
    if (self->out_fd < 0)
        return -1;
    double deadline = bench_now_ms () + timeout_ms;
    for (;;) {
        char *newline = memchr (self->line, '\n', self->line_len);
        if (newline) {
            size_t len = (size_t) (newline - self->line);
            snprintf (buf, size, "%.*s", (int) len, self->line);
            self->line_len -= len + 1;
            memmove (self->line, newline + 1, self->line_len);
            return 0;
        }
        if (self->line_len == sizeof self->line)
            self->line_len = 0;         //  a line longer than the buffer: dropped
        int left = (int) (deadline - bench_now_ms ());
        if (left <= 0)
            return -1;
        struct pollfd pfd = { self->out_fd, POLLIN, 0 };
        int ready = poll (&pfd, 1, left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            return -1;
        ssize_t n = read (self->out_fd, self->line + self->line_len,
                          sizeof self->line - self->line_len);
        if (n <= 0)
            return -1;
        self->line_len += (size_t) n;
    }
}

int
peers_proc_write (peers_proc_t *self, const char *text)
{
    size_t len = strlen (text);
    return self->in_fd >= 0 && write (self->in_fd, text, len) == (ssize_t) len? 0: -1;
}

/*  Binds port on 127.0.0.1 (0: the kernel's choice); the port bound, or -1. */
static int
s_try_port (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = htons ((uint16_t) port);
    socklen_t len = sizeof addr;
    int bound = -1;
    if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0
    &&  getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
        bound = ntohs (addr.sin_port);
    close (fd);
    return bound;
}

int
peers_free_port (void)
{
    static int given[256];
    static size_t given_count;
    static unsigned int seed;
    if (!seed)
        seed = (unsigned int) getpid () ^ (unsigned int) (bench_now_ms () * 1000);
    /*  Below the ephemeral range (32768 by default), not under 10000. */
    int low = 32768;
    FILE *f = fopen ("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf (f, "%d", &low) != 1)
            low = 32768;
        fclose (f);
    }
    int port = -1;
    for (int attempt = 0; attempt < 200 && port < 0 && low > 11000; attempt++) {
        int candidate = 10000 + (int) (rand_r (&seed) % (unsigned int) (low - 10000));
        bool seen = false;
        for (size_t i = 0; i < given_count && !seen; i++)
            seen = given[i] == candidate;
        if (!seen)
            port = s_try_port (candidate);
    }
    if (port < 0)
        port = s_try_port (0);
    if (port > 0 && given_count < sizeof given / sizeof given[0])
        given[given_count++] = port;
    return port;
}

void
peers_proc_print_log_tail (peers_proc_t *self, FILE *out, int lines)
{
    FILE *f = fopen (self->log, "r");
    if (!f)
        return;
    char buf[16384];
    if (fseek (f, 0, SEEK_END) == 0) {
        long size = ftell (f);
        if (size > (long) sizeof buf - 1)
            (void) fseek (f, size - (long) sizeof buf + 1, SEEK_SET);
        else
            rewind (f);
    }
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    char *start = buf + n;
    for (int seen = 0; start > buf && seen < lines; ) {
        start--;
        if (*start == '\n' && ++seen == lines)
            start++;
    }
    for (char *line = start; *line; ) {
        char *end = strchr (line, '\n');
        size_t len = end? (size_t) (end - line): strlen (line);
        fprintf (out, "    %.*s\n", (int) len, line);
        line += len + (end? 1: 0);
    }
}
