/*  faultinject: an LD_PRELOAD library for Herald's fault tests.

    Loaded into herald-broker or herald-worker with LD_PRELOAD, it wraps a
    few libc calls and injects faults that a test switches on and off at run
    time by creating or removing files (so the test needs no channel into the
    process). Every fault is off unless its environment variable is set; with
    none set, each wrapper is one pointer check and the real call.

    HERALD_FAULT_FSYNC_BLOCK=F     fsync/fdatasync while F exists: create
    HERALD_FAULT_FSYNC_REACHED=R   R (once per blocked call), then wait until
                                   F is removed, then do the real call; if F
                                   holds "dir" or "file", only fsyncs of a
                                   directory or of a regular file block
    HERALD_FAULT_FSYNC_FAIL=F      fsync/fdatasync while F exists: -1 EIO,
                                   without calling the real one
    HERALD_FAULT_FSYNC_DELAY_MS=N  every fsync/fdatasync takes N ms more (a
                                   slow disk: caps what a broker can commit)
    HERALD_FAULT_FSYNC_MATCH=S     the three above only for descriptors whose
                                   path contains S (default: every file)
    HERALD_FAULT_PREAD_MS_PER_MIB=N  a pread/pread64 of a regular file takes
    HERALD_FAULT_PREAD_MATCH=S     N ms more per MiB asked for if its path
                                   contains S (default: every regular file):
                                   a slow reader, e.g. the index applying
                                   the journal slowly
    HERALD_FAULT_ENOSPC=F          write/pwrite/pwrite64 to a regular file
    HERALD_FAULT_ENOSPC_MATCH=S    whose path contains S (default: every
                                   regular file) while F exists: -1 ENOSPC
    HERALD_FAULT_CRASH_ON=M        write/pwrite of a buffer holding the bytes
                                   M to a regular file: abort() (no core)
    HERALD_FAULT_RENAME_LOG=L      after each successful rename whose target
                                   name does not start with '.', append
                                   "<pid> <target>\n" to L (one O_APPEND
                                   write: lines never interleave)
    HERALD_FAULT_WRITE_LOG=L       for regular files whose path contains
    HERALD_FAULT_WRITE_LOG_MATCH=S S (default: every regular file), append
                                   "W <path> <offset> <length>" to L for each
                                   write/pwrite before doing it, and
                                   "S <path>" after each successful
                                   fsync/fdatasync: what a power cut at that
                                   moment could lose is every write of a file
                                   after its last S line (the test then
                                   undoes them to simulate one)
    HERALD_FAULT_NO_CURVE=1        zmq_has ("curve") answers 0: a libzmq built
                                   without libsodium, for the broker's refusal
    HERALD_FAULT_CLOCK_OFFSET_FILE=F   CLOCK_REALTIME (clock_gettime,
                                   gettimeofday, time) shifted by the number
                                   of seconds in F (may be negative or
                                   fractional), re-read every 10 ms

    This is test machinery: it may poll with nanosleep, and it writes to
    the files the test named. It never changes CLOCK_MONOTONIC. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define S_POLL_NS           5000000L    /* 5 ms between two looks at a block file */
#define S_CLOCK_REREAD_NS   10000000LL  /* 10 ms between two reads of the offset file */

typedef int s_fsync_fn (int);
typedef ssize_t s_write_fn (int, const void *, size_t);
typedef ssize_t s_pwrite_fn (int, const void *, size_t, off_t);
typedef ssize_t s_pwrite64_fn (int, const void *, size_t, off64_t);
typedef ssize_t s_pread_fn (int, void *, size_t, off_t);
typedef ssize_t s_pread64_fn (int, void *, size_t, off64_t);
typedef int s_rename_fn (const char *, const char *);
typedef int s_clock_gettime_fn (clockid_t, struct timespec *);
typedef int s_gettimeofday_fn (struct timeval *, void *);

/*  The configuration, read once from the environment at load time. */
static const char *s_fsync_block;
static const char *s_fsync_reached;
static const char *s_fsync_fail;
static const char *s_fsync_match;
static long s_fsync_delay_ms;
static long s_pread_ms_per_mib;
static const char *s_pread_match;
static const char *s_enospc;
static const char *s_enospc_match;
static const char *s_crash_on;
static size_t s_crash_on_len;
static const char *s_rename_log;
static const char *s_clock_file;
static const char *s_write_log;
static const char *s_write_log_match;
static int s_write_log_fd = -1;

static const char *
s_env (const char *name)
{
    const char *value = getenv (name);
    return value && *value? value: NULL;
}

__attribute__ ((constructor)) static void
s_init (void)
{
    s_fsync_block = s_env ("HERALD_FAULT_FSYNC_BLOCK");
    s_fsync_reached = s_env ("HERALD_FAULT_FSYNC_REACHED");
    s_fsync_fail = s_env ("HERALD_FAULT_FSYNC_FAIL");
    s_fsync_match = s_env ("HERALD_FAULT_FSYNC_MATCH");
    const char *delay = s_env ("HERALD_FAULT_FSYNC_DELAY_MS");
    s_fsync_delay_ms = delay? strtol (delay, NULL, 10): 0;
    const char *pread_delay = s_env ("HERALD_FAULT_PREAD_MS_PER_MIB");
    s_pread_ms_per_mib = pread_delay? strtol (pread_delay, NULL, 10): 0;
    s_pread_match = s_env ("HERALD_FAULT_PREAD_MATCH");
    s_enospc = s_env ("HERALD_FAULT_ENOSPC");
    s_enospc_match = s_env ("HERALD_FAULT_ENOSPC_MATCH");
    s_crash_on = s_env ("HERALD_FAULT_CRASH_ON");
    s_crash_on_len = s_crash_on? strlen (s_crash_on): 0;
    s_rename_log = s_env ("HERALD_FAULT_RENAME_LOG");
    s_clock_file = s_env ("HERALD_FAULT_CLOCK_OFFSET_FILE");
    s_write_log = s_env ("HERALD_FAULT_WRITE_LOG");
    s_write_log_match = s_env ("HERALD_FAULT_WRITE_LOG_MATCH");
    if (s_write_log)
        s_write_log_fd = open (s_write_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/*  The next definition of a symbol, resolved once (races resolve to the
    same address, so a plain atomic store is enough). */
static void *
s_real (void **slot, const char *name)
{
    void *fn = __atomic_load_n (slot, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = dlsym (RTLD_NEXT, name);
        if (!fn)
            abort ();       /* no next definition: nothing sane to do */
        __atomic_store_n (slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

#define S_REAL(type, name) \
    static void *name##_slot; \
    type *real_##name = (type *) s_real (&name##_slot, #name)

static int
s_exists (const char *path)
{
    struct stat st;
    return path && stat (path, &st) == 0;
}

/*  True if fd is a regular file (or, with dirs, a directory) whose path
    contains match (NULL: any). */
static int
s_fd_matches_kind (int fd, const char *match, int files, int dirs)
{
    struct stat st;
    if (fstat (fd, &st) != 0)
        return 0;
    if (!(files && S_ISREG (st.st_mode)) && !(dirs && S_ISDIR (st.st_mode)))
        return 0;
    if (!match)
        return 1;
    char link[64], path[4096];
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink (link, path, sizeof path - 1);
    if (len <= 0)
        return 0;
    path[len] = '\0';
    return strstr (path, match) != NULL;
}

static int
s_fd_matches (int fd, const char *match)
{
    return s_fd_matches_kind (fd, match, 1, 0);
}

/*  The kind of descriptor a block file asks to block: its first bytes
    "dir" or "file", else both. */
static int
s_block_applies (int fd)
{
    char kind[8] = "";
    int file = open (s_fsync_block, O_RDONLY | O_CLOEXEC);
    if (file < 0)
        return 0;                       /* gone meanwhile: no block */
    ssize_t len = read (file, kind, sizeof kind - 1);
    close (file);
    kind[len > 0? len: 0] = '\0';
    int dirs = strncmp (kind, "file", 4) != 0;
    int files = strncmp (kind, "dir", 3) != 0;
    return s_fd_matches_kind (fd, s_fsync_match, files, dirs);
}

static void
s_touch (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close (fd);
}

static void
s_nap (void)
{
    struct timespec ts = { 0, S_POLL_NS };
    while (nanosleep (&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*  Sleeps us microseconds, signals or not (errno may change). */
static void
s_sleep_us (long long us)
{
    struct timespec ts = { (time_t) (us / 1000000), (long) (us % 1000000) * 1000L };
    while (nanosleep (&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*  The fsync faults: 0 go on with the real call, -1 fail it (errno set). */
static int
s_fsync_fault (int fd)
{
    if (!s_fsync_block && !s_fsync_fail && s_fsync_delay_ms <= 0)
        return 0;
    int saved = errno;
    if (s_fsync_delay_ms > 0 && s_fd_matches_kind (fd, s_fsync_match, 1, 1))
        s_sleep_us ((long long) s_fsync_delay_ms * 1000);
    if (s_fsync_fail && s_exists (s_fsync_fail)
    &&  s_fd_matches_kind (fd, s_fsync_match, 1, 1)) {
        errno = EIO;
        return -1;
    }
    if (s_fsync_block && s_block_applies (fd)) {
        if (s_fsync_reached)
            s_touch (s_fsync_reached);
        while (s_exists (s_fsync_block))
            s_nap ();
    }
    errno = saved;
    return 0;
}

/*  The write log: one O_APPEND write per line (lines never interleave).
    kind 'W' with the range, or 'S' (synced). offset < 0: the file's
    position (a plain write). */
static void
s_log_write (int fd, char kind, long long offset, size_t len)
{
    if (s_write_log_fd < 0)
        return;
    int saved = errno;
    struct stat st;
    char link[64], path[4096];
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t plen = fstat (fd, &st) == 0 && S_ISREG (st.st_mode)? readlink (link, path, sizeof path - 1): -1;
    if (plen > 0) {
        path[plen] = '\0';
        if (!s_write_log_match || strstr (path, s_write_log_match)) {
            if (kind == 'W' && offset < 0)
                offset = (long long) lseek (fd, 0, SEEK_CUR);
            char line[4200];
            int n = kind == 'W'? snprintf (line, sizeof line, "W %s %lld %zu\n", path, offset, len)
                               : snprintf (line, sizeof line, "S %s\n", path);
            if (n > 0 && (size_t) n < sizeof line) {
                S_REAL (s_write_fn, write);
                ssize_t ignored = real_write (s_write_log_fd, line, (size_t) n);
                (void) ignored;
            }
        }
    }
    errno = saved;
}

int
fsync (int fd)
{
    S_REAL (s_fsync_fn, fsync);
    if (s_fsync_fault (fd) != 0)
        return -1;
    int rc = real_fsync (fd);
    if (rc == 0)
        s_log_write (fd, 'S', 0, 0);
    return rc;
}

int
fdatasync (int fd)
{
    S_REAL (s_fsync_fn, fdatasync);
    if (s_fsync_fault (fd) != 0)
        return -1;
    int rc = real_fdatasync (fd);
    if (rc == 0)
        s_log_write (fd, 'S', 0, 0);
    return rc;
}

/*  The write faults: 0 go on with the real call, -1 fail it (errno set). */
static int
s_write_fault (int fd, const void *buf, size_t len)
{
    if (!s_enospc && !s_crash_on)
        return 0;
    int saved = errno;
    if (s_crash_on && len >= s_crash_on_len && memmem (buf, len, s_crash_on, s_crash_on_len)
    &&  s_fd_matches (fd, NULL)) {
        struct rlimit none = { 0, 0 };
        setrlimit (RLIMIT_CORE, &none);
        abort ();
    }
    if (s_enospc && s_exists (s_enospc) && s_fd_matches (fd, s_enospc_match)) {
        errno = ENOSPC;
        return -1;
    }
    errno = saved;
    return 0;
}

ssize_t
write (int fd, const void *buf, size_t len)
{
    S_REAL (s_write_fn, write);
    if (s_write_fault (fd, buf, len) != 0)
        return -1;
    if (fd != s_write_log_fd)
        s_log_write (fd, 'W', -1, len);
    return real_write (fd, buf, len);
}

ssize_t
pwrite (int fd, const void *buf, size_t len, off_t offset)
{
    S_REAL (s_pwrite_fn, pwrite);
    if (s_write_fault (fd, buf, len) != 0)
        return -1;
    s_log_write (fd, 'W', (long long) offset, len);
    return real_pwrite (fd, buf, len, offset);
}

ssize_t
pwrite64 (int fd, const void *buf, size_t len, off64_t offset)
{
    S_REAL (s_pwrite64_fn, pwrite64);
    if (s_write_fault (fd, buf, len) != 0)
        return -1;
    s_log_write (fd, 'W', (long long) offset, len);
    return real_pwrite64 (fd, buf, len, offset);
}

/*  A read of len bytes of a matching file made slower by s_pread_ms_per_mib. */
static void
s_pread_fault (int fd, size_t len)
{
    if (s_pread_ms_per_mib <= 0)
        return;
    int saved = errno;
    if (s_fd_matches (fd, s_pread_match))
        s_sleep_us ((long long) s_pread_ms_per_mib * 1000 * (long long) len / (1 << 20));
    errno = saved;
}

ssize_t
pread (int fd, void *buf, size_t len, off_t offset)
{
    S_REAL (s_pread_fn, pread);
    s_pread_fault (fd, len);
    return real_pread (fd, buf, len, offset);
}

ssize_t
pread64 (int fd, void *buf, size_t len, off64_t offset)
{
    S_REAL (s_pread64_fn, pread64);
    s_pread_fault (fd, len);
    return real_pread64 (fd, buf, len, offset);
}

int
rename (const char *from, const char *to)
{
    S_REAL (s_rename_fn, rename);
    int rc = real_rename (from, to);
    if (rc != 0 || !s_rename_log)
        return rc;
    const char *base = strrchr (to, '/');
    base = base? base + 1: to;
    if (*base == '.')
        return rc;
    int saved = errno;
    char line[4200];
    int n = snprintf (line, sizeof line, "%ld %s\n", (long) getpid (), to);
    int fd = open (s_rename_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0 && n > 0 && (size_t) n < sizeof line) {
        S_REAL (s_write_fn, write);
        ssize_t ignored = real_write (fd, line, (size_t) n);
        (void) ignored;
    }
    if (fd >= 0)
        close (fd);
    errno = saved;
    return rc;
}

/*  The wall clock offset, in nanoseconds, re-read from its file at most
    every S_CLOCK_REREAD_NS of monotonic time. */
static int64_t
s_clock_offset_ns (void)
{
    static int64_t offset_ns;
    static int64_t next_read_ns;
    S_REAL (s_clock_gettime_fn, clock_gettime);
    struct timespec mono;
    real_clock_gettime (CLOCK_MONOTONIC, &mono);
    int64_t now = (int64_t) mono.tv_sec * 1000000000LL + mono.tv_nsec;
    if (now < __atomic_load_n (&next_read_ns, __ATOMIC_RELAXED))
        return __atomic_load_n (&offset_ns, __ATOMIC_RELAXED);
    __atomic_store_n (&next_read_ns, now + S_CLOCK_REREAD_NS, __ATOMIC_RELAXED);
    int saved = errno;
    int64_t value = 0;
    int fd = open (s_clock_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char text[64];
        ssize_t len = read (fd, text, sizeof text - 1);
        close (fd);
        if (len > 0) {
            text[len] = '\0';
            char *end = NULL;
            double seconds = strtod (text, &end);
            if (end != text)
                value = (int64_t) (seconds * 1e9);
        }
    }
    errno = saved;
    __atomic_store_n (&offset_ns, value, __ATOMIC_RELAXED);
    return value;
}

static void
s_shift (struct timespec *ts, int64_t offset_ns)
{
    int64_t ns = (int64_t) ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
    ts->tv_sec = (time_t) (ns / 1000000000LL);
    ts->tv_nsec = (long) (ns % 1000000000LL);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000L;
        ts->tv_sec--;
    }
}

int
clock_gettime (clockid_t clock, struct timespec *ts)
{
    S_REAL (s_clock_gettime_fn, clock_gettime);
    int rc = real_clock_gettime (clock, ts);
    if (rc == 0 && s_clock_file && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        s_shift (ts, s_clock_offset_ns ());
    return rc;
}

int
gettimeofday (struct timeval *tv, void *tz)
{
    S_REAL (s_gettimeofday_fn, gettimeofday);
    int rc = real_gettimeofday (tv, tz);
    if (rc == 0 && s_clock_file) {
        struct timespec ts = { tv->tv_sec, (long) tv->tv_usec * 1000 };
        s_shift (&ts, s_clock_offset_ns ());
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t
time (time_t *out)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}

/*  libzmq's capability query, answered "no CURVE" on request. */
typedef int s_zmq_has_fn (const char *);

int
zmq_has (const char *capability)
{
    const char *no_curve = getenv ("HERALD_FAULT_NO_CURVE");
    if (no_curve && *no_curve && strcmp (no_curve, "0") != 0 && capability && strcmp (capability, "curve") == 0)
        return 0;
    s_zmq_has_fn *real = (s_zmq_has_fn *) dlsym (RTLD_NEXT, "zmq_has");
    return real? real (capability): 0;
}
