/*  peers_proc: the processes herald_bench_peers starts (servers, workers,
    load processes): started by fork + exec at once, stopped by their PID,
    and read from /proc for their CPU time and memory. */
#ifndef HERALD_PEERS_PROC_H
#define HERALD_PEERS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct peers_proc peers_proc_t;

/*  Starts argv[0] (a path) with argv. Its stderr, and its stdout unless
    piped, go to log (appended). With piped, its stdin and stdout are pipes
    to this process (peers_proc_write, peers_proc_read_line). NULL on failure,
    with the reason on stderr. */
peers_proc_t *
    peers_proc_start (const char *name, char *const argv[], const char *log, bool piped);

/*  SIGTERM, then SIGKILL if still running after grace_ms; reaps it and
    frees; NULL-safe, nulls the pointer. */
void
    peers_proc_stop (peers_proc_t **self_p, int grace_ms);

const char *
    peers_proc_name (peers_proc_t *self);
pid_t
    peers_proc_pid (peers_proc_t *self);
const char *
    peers_proc_log (peers_proc_t *self);

/*  true while it runs; false once it has exited (then reaped). */
bool
    peers_proc_running (peers_proc_t *self);

/*  Waits up to timeout_ms for it to exit. Its exit status (0..255, or 128 +
    signal), or -1 if it still runs. */
int
    peers_proc_wait (peers_proc_t *self, int timeout_ms);

/*  CPU seconds (user + system, every thread) used so far, or in all once it
    has exited; -1 if unknown. */
double
    peers_proc_cpu (peers_proc_t *self);

/*  VmRSS and VmHWM in KiB from /proc. 0, or -1 (gone). */
int
    peers_proc_memory (peers_proc_t *self, long *rss_kib, long *hwm_kib);

/*  Reads one line of its stdout (piped) into buf, without the newline,
    waiting up to timeout_ms. 0, or -1 (timeout, end of file, not piped). */
int
    peers_proc_read_line (peers_proc_t *self, char *buf, size_t size, int timeout_ms);

/*  Writes text to its stdin (piped). 0, or -1. */
int
    peers_proc_write (peers_proc_t *self, const char *text);

/*  A TCP port on 127.0.0.1 that nothing is bound to now, or -1: picked at
    random below the kernel's range of ephemeral ports (the local ports of
    outgoing connections, which could otherwise take it before a server
    binds it), and never one this process was given before. Another server
    could still take it; the bench's servers fail loudly if so. */
int
    peers_free_port (void);

/*  Writes the last `lines` lines of its log to out, each indented. */
void
    peers_proc_print_log_tail (peers_proc_t *self, FILE *out, int lines);

#endif
