/*  journal: segmented append-only log with a pipelined writer (see journal.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "herald_log.h"
#include "herald_clock.h"
#include "journal.h"
#include "herald_clock.h"

#define S_SKIP_TYPE     0xff            /* payload type byte of a filler record */
#define S_MARK_TYPE     0xfe            /* payload type byte of an idle writer's mark */
#define S_MIN_RECORD    32              /* header + one payload byte, aligned: the smallest record;
                                           a segment's last bytes fewer than this are never a record */
#define S_ZERO_CHUNK    (1u << 20)      /* zero-fill writes */
#define S_READ_CHUNK    (1u << 20)      /* reader's buffer */
#define S_STAGE_MAX     (16u << 20)     /* staged bytes before appends are refused (busy) */
#define S_SPARES_KEPT   2               /* released segments kept for reuse beyond the next one */
#define S_PREPARE_RETRY_MS 1000

typedef struct {
    uint64_t base;                      /* LSN of its first byte */
    int fd;
} segment_t;

typedef struct {
    unsigned char *data;
    size_t len, cap;
    uint64_t start;                     /* LSN of data[0] */
} buffer_t;

struct journal {
    char dir[1024];
    uint32_t segment_size;
    uint64_t max_bytes;
    herald_metrics_t *metrics;      /* fdatasync times, borrowed (NULL = none) */
    int dir_fd;
    int event_fd;

    /*  Segments on disk, sorted by base. Guarded by seg_lock: the writer
        looks fds up, the preparer adds and renames, release marks spares. */
    pthread_mutex_t seg_lock;
    segment_t *segments;
    size_t segment_count, segment_cap;
    uint64_t released_below;            /* segments entirely below may be reused */
    _Atomic uint64_t prepared_end;      /* segments exist up to here */
    uint64_t wanted_end;                /* the preparer should reach this */
    pthread_cond_t prepare_wake;
    int prepare_errno;                  /* last failure making a segment (ENOSPC...) */
    int prepare_urgent;                 /* the preparer's priority: -1 not set, 0 idle, 1 normal */
    bool prepare_may_idle;              /* it may go idle (journal_may_leave_idle) */

    /*  Staging (owner appends, writer takes) under lock. */
    pthread_mutex_t lock;
    pthread_cond_t write_wake;
    buffer_t staging, writing;
    bool flush_requested;
    bool writer_busy;                   /* a batch is being written (by the writer or the owner) */
    int64_t here_slow_us;               /* journal_commit_here declines above this average sync */
    _Atomic int64_t sync_us;            /* recent fdatasync time, a moving average (µs) */
    bool stopping;
    uint64_t end;                       /* next append position (owner) */
    _Atomic uint64_t durable;
    _Atomic int fatal;                  /* JOURNAL_IO once a write or sync failed (writer) */
    _Atomic int write_full;             /* the writer waits for room to write a batch */
    char write_full_errstr[1200];
    journal_status_t refusal;           /* why the last append was refused (owner) */
    char fatal_errstr[1200];            /* set once before fatal */
    char errstr[1200];                  /* journal_errstr's answer (owner) */
    char full_errstr[1200];

    pthread_t writer, preparer;
    bool threads_started;
};

//  --------------------------------------------------------------------------
//  CRC32C (Castagnoli), slicing by 8, with the SSE 4.2 instruction when the
//  processor has it.

static uint32_t s_crc_table[8][256];
static pthread_once_t s_crc_once = PTHREAD_ONCE_INIT;
static bool s_crc_hw;

static void
s_crc_init (void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int k = 0; k < 8; k++)
            crc = crc & 1? (crc >> 1) ^ 0x82f63b78u: crc >> 1;
        s_crc_table[0][i] = crc;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            s_crc_table[t][i] = (s_crc_table[t - 1][i] >> 8) ^ s_crc_table[0][s_crc_table[t - 1][i] & 0xff];
#if defined (__x86_64__)
    __builtin_cpu_init ();
    s_crc_hw = __builtin_cpu_supports ("sse4.2");
#endif
}

#if defined (__x86_64__)
__attribute__ ((target ("sse4.2")))
static uint32_t
s_crc_hw_run (uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t word;
        memcpy (&word, p, 8);
        c = __builtin_ia32_crc32di (c, word);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t) c;
    while (len--)
        c32 = __builtin_ia32_crc32qi (c32, *p++);
    return c32;
}
#endif

uint32_t
journal_crc32c (uint32_t crc, const void *data, size_t len)
{
    pthread_once (&s_crc_once, s_crc_init);
    const unsigned char *p = data;
    crc = ~crc;
#if defined (__x86_64__)
    if (s_crc_hw)
        return ~s_crc_hw_run (crc, p, len);
#endif
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
                             | (uint32_t) p[3] << 24);
        crc = s_crc_table[7][lo & 0xff] ^ s_crc_table[6][(lo >> 8) & 0xff]
            ^ s_crc_table[5][(lo >> 16) & 0xff] ^ s_crc_table[4][lo >> 24]
            ^ s_crc_table[3][p[4]] ^ s_crc_table[2][p[5]] ^ s_crc_table[1][p[6]] ^ s_crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ s_crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

//  --------------------------------------------------------------------------
//  Record headers: little-endian u32 crc, u32 len, u64 lsn, u64 synced.

static void
s_put32 (unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

static void
s_put64 (unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

static uint32_t
s_get32 (const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t
s_get64 (const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t
s_align8 (uint64_t n)
{
    return (n + 7) & ~(uint64_t) 7;
}

/*  Writes a whole record (header + payload) at out. */
static void
s_make_record (unsigned char *out, uint64_t lsn, uint64_t synced, const void *payload, uint32_t len)
{
    s_put32 (out + 4, len);
    s_put64 (out + 8, lsn);
    s_put64 (out + 16, synced);
    if (len)
        memcpy (out + JOURNAL_HEADER, payload, len);
    uint32_t crc = journal_crc32c (0, out + 4, JOURNAL_HEADER - 4 + (size_t) len);
    s_put32 (out, crc);
    size_t total = (size_t) s_align8 (JOURNAL_HEADER + (uint64_t) len);
    memset (out + JOURNAL_HEADER + len, 0, total - JOURNAL_HEADER - len);
}

typedef enum {
    S_REC_VALID,
    S_REC_FOREIGN,          /* not a record written at this position in this log */
    S_REC_DAMAGED           /* a record of ours whose length or CRC is wrong */
} s_check_t;

/*  Checks the record whose header is at p, position lsn, with `avail`
    bytes readable from p and the segment ending at seg_end. A header of
    zeros is no record: at position 0 (a log that never held one) its LSN
    would match, and each start of a new store stopped before its first
    event logged a torn tail and rewrote the segment. */
static s_check_t
s_check (const unsigned char *p, size_t avail, uint64_t lsn, uint64_t seg_end, uint32_t *len_out)
{
    if (avail < JOURNAL_HEADER || s_get64 (p + 8) != lsn)
        return S_REC_FOREIGN;
    if (lsn == 0 && s_get32 (p) == 0 && s_get32 (p + 4) == 0 && s_get64 (p + 16) == 0)
        return S_REC_FOREIGN;
    uint32_t len = s_get32 (p + 4);
    uint64_t total = s_align8 (JOURNAL_HEADER + (uint64_t) len);
    if (lsn + total > seg_end || total > avail)
        return S_REC_DAMAGED;
    if (journal_crc32c (0, p + 4, JOURNAL_HEADER - 4 + (size_t) len) != s_get32 (p))
        return S_REC_DAMAGED;
    *len_out = len;
    return S_REC_VALID;
}

//  --------------------------------------------------------------------------
//  Files and segments

static void
s_segment_path (const journal_t *self, uint64_t base, char *out, size_t size)
{
    snprintf (out, size, "%s/%016" PRIx64 ".seg", self->dir, base);
}

static int
s_pwrite_all (int fd, const void *data, size_t len, off_t offset)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = pwrite (fd, p, len, offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t) n;
        offset += n;
    }
    return 0;
}

static ssize_t
s_pread_all (int fd, void *data, size_t len, off_t offset)
{
    unsigned char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread (fd, p + done, len - done, offset + (off_t) done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        done += (size_t) n;
    }
    return (ssize_t) done;
}

/*  Index in segments[] of the segment holding lsn, or -1. seg_lock held. */
static ssize_t
s_find_locked (journal_t *self, uint64_t lsn)
{
    uint64_t base = lsn - lsn % self->segment_size;
    size_t lo = 0, hi = self->segment_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (self->segments[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < self->segment_count && self->segments[lo].base == base)
        return (ssize_t) lo;
    return -1;
}

static int
s_insert_locked (journal_t *self, uint64_t base, int fd)
{
    if (self->segment_count == self->segment_cap) {
        size_t cap = self->segment_cap? self->segment_cap * 2: 16;
        segment_t *grown = realloc (self->segments, cap * sizeof *grown);
        if (!grown)
            return -1;
        self->segments = grown;
        self->segment_cap = cap;
    }
    size_t i = self->segment_count;
    while (i > 0 && self->segments[i - 1].base > base) {
        self->segments[i] = self->segments[i - 1];
        i--;
    }
    self->segments[i] = (segment_t) { base, fd };
    self->segment_count++;
    return 0;
}

static void
s_remove_locked (journal_t *self, size_t index)
{
    memmove (&self->segments[index], &self->segments[index + 1],
             (self->segment_count - index - 1) * sizeof self->segments[0]);
    self->segment_count--;
}

static int
s_fd_for (journal_t *self, uint64_t lsn)
{
    pthread_mutex_lock (&self->seg_lock);
    ssize_t i = s_find_locked (self, lsn);
    int fd = i >= 0? self->segments[i].fd: -1;
    pthread_mutex_unlock (&self->seg_lock);
    return fd;
}

/*  The writer failed: nothing more may be acknowledged. */
static void
s_set_fatal (journal_t *self, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_set_fatal (journal_t *self, const char *fmt, ...)
{
    if (atomic_load (&self->fatal))
        return;         /* the first failure is the one to report */
    va_list args;
    va_start (args, fmt);
    vsnprintf (self->fatal_errstr, sizeof self->fatal_errstr, fmt, args);
    va_end (args);
    atomic_store (&self->fatal, 1);
}

/*  The probe: a thread that inherits its creator's nice value and policy
    goes under SCHED_IDLE and tries to come back. */
static void *
s_idle_probe (void *arg)
{
    bool *ok = arg;
    struct sched_param param = { .sched_priority = 0 };
    *ok = sched_setscheduler (0, SCHED_IDLE, &param) == 0 && sched_setscheduler (0, SCHED_OTHER, &param) == 0;
    return NULL;
}

bool
journal_may_leave_idle (void)
{
    bool ok = false;
    pthread_t probe;
    if (pthread_create (&probe, NULL, s_idle_probe, &ok) != 0)
        return false;
    pthread_join (probe, NULL);
    return ok;
}

/*  The preparer's priority. Zero-filling a segment ahead of need is
    background work: it runs under SCHED_IDLE in the idle I/O class, so its
    32 MiB of zeros and their sync do not hold the CPU or the disk queue the
    ACK path waits for (ACK p99 at 1 outstanding 1.36-1.48x -> 1.15-1.42x
    the floor, 3 alternating pairs of herald_bench_peers --shapes 3). Once
    the writer has used half the segment before the one being made, it is
    needed soon: the normal policy and class, so that a writer at full speed
    never waits for it behind the very syncs it would yield to. */
#define S_IOPRIO_CLASS_IDLE     3
#define S_IOPRIO_CLASS_SHIFT    13

static void
s_prepare_priority (journal_t *self, uint64_t base)     /* the preparer's thread only */
{
    if (!self->prepare_may_idle)
        return;                         /* could not come back from SCHED_IDLE: never goes there */
    uint64_t durable = atomic_load (&self->durable);
    int urgent = durable + self->segment_size / 2 >= base? 1: 0;
    if (urgent == self->prepare_urgent)
        return;
    self->prepare_urgent = urgent;
    struct sched_param param = { .sched_priority = 0 };
    (void) sched_setscheduler (0, urgent? SCHED_OTHER: SCHED_IDLE, &param);
    (void) syscall (SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS: this thread */, 0,
                    urgent? 0 /* the default, from the nice value */
                          : S_IOPRIO_CLASS_IDLE << S_IOPRIO_CLASS_SHIFT);
}

/*  Makes a new zero-filled segment file for base (written and synced in
    full, then renamed into place), or reuses a released one. Returns its fd
    or -1 with errno. Runs on the preparer thread, no lock held. */
static int
s_make_segment (journal_t *self, uint64_t base)
{
    char path[1100];
    s_segment_path (self, base, path, sizeof path);
    /*  A released segment: rename it to its new place. Its old records
        carry their old positions, so they can never pass for new ones. */
    pthread_mutex_lock (&self->seg_lock);
    ssize_t reuse = -1;
    if (self->segment_count > 0 && self->segments[0].base + self->segment_size <= self->released_below)
        reuse = 0;
    if (reuse >= 0) {
        segment_t old = self->segments[reuse];
        s_remove_locked (self, (size_t) reuse);
        pthread_mutex_unlock (&self->seg_lock);
        char old_path[1100];
        s_segment_path (self, old.base, old_path, sizeof old_path);
        if (rename (old_path, path) == 0) {
            fsync (self->dir_fd);
            return old.fd;
        }
        int saved = errno;
        close (old.fd);
        errno = saved;
        return -1;
    }
    pthread_mutex_unlock (&self->seg_lock);
    char tmp[1200];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = posix_fallocate (fd, 0, (off_t) self->segment_size);
    if (rc != 0) {
        close (fd);
        unlink (tmp);
        errno = rc;
        return -1;
    }
    /*  Real zeros, not just reserved blocks: a later overwrite then changes
        no extent state and its fdatasync syncs data alone. */
    static const unsigned char zeros[S_ZERO_CHUNK];
    for (uint64_t off = 0; off < self->segment_size; off += S_ZERO_CHUNK) {
        s_prepare_priority (self, base);
        size_t n = self->segment_size - off < S_ZERO_CHUNK? (size_t) (self->segment_size - off)
                                                             : S_ZERO_CHUNK;
        if (s_pwrite_all (fd, zeros, n, (off_t) off) != 0) {
            int saved = errno;
            close (fd);
            unlink (tmp);
            errno = saved;
            return -1;
        }
    }
    s_prepare_priority (self, base);
    if (fdatasync (fd) != 0 || rename (tmp, path) != 0) {
        int saved = errno;
        close (fd);
        unlink (tmp);
        errno = saved;
        return -1;
    }
    fsync (self->dir_fd);
    return fd;
}

/*  Deletes released segments beyond the spares worth keeping. seg_lock held. */
static void
s_trim_spares_locked (journal_t *self)
{
    size_t released = 0;
    while (released < self->segment_count
       &&  self->segments[released].base + self->segment_size <= self->released_below)
        released++;
    while (released > S_SPARES_KEPT) {
        char path[1100];
        s_segment_path (self, self->segments[0].base, path, sizeof path);
        unlink (path);
        close (self->segments[0].fd);
        s_remove_locked (self, 0);
        released--;
    }
}

static void *
s_preparer (void *arg)
{
    journal_t *self = arg;
    self->prepare_urgent = -1;
    self->prepare_may_idle = journal_may_leave_idle ();
    s_prepare_priority (self, UINT64_MAX);     /* idle until a segment is needed soon */
    pthread_mutex_lock (&self->seg_lock);
    while (!self->stopping) {
        uint64_t have = atomic_load (&self->prepared_end);
        if (have >= self->wanted_end) {
            s_trim_spares_locked (self);
            pthread_cond_wait (&self->prepare_wake, &self->seg_lock);
            continue;
        }
        if (s_find_locked (self, have) >= 0) {
            atomic_store (&self->prepared_end, have + self->segment_size);
            continue;
        }
        pthread_mutex_unlock (&self->seg_lock);
        int fd = s_make_segment (self, have);
        pthread_mutex_lock (&self->seg_lock);
        if (fd < 0) {
            self->prepare_errno = errno;
            snprintf (self->full_errstr, sizeof self->full_errstr,
                      "journal %s: cannot make segment %016" PRIx64 ".seg: %s", self->dir, have,
                      strerror (errno));
            herald_error ("journal cannot make a segment", "dir=%s error=\"%s\"", self->dir,
                          strerror (errno));
            struct timespec until = herald_clock_deadline (S_PREPARE_RETRY_MS);
            pthread_cond_timedwait (&self->prepare_wake, &self->seg_lock, &until);
            continue;
        }
        self->prepare_errno = 0;
        if (s_insert_locked (self, have, fd) != 0) {
            close (fd);
            continue;
        }
        atomic_store (&self->prepared_end, have + self->segment_size);
    }
    pthread_mutex_unlock (&self->seg_lock);
    return NULL;
}

/*  Asks the preparer to have segments up to lsn + one segment ahead. */
static void
s_want (journal_t *self, uint64_t lsn)
{
    uint64_t want = lsn - lsn % self->segment_size + 2 * (uint64_t) self->segment_size;
    pthread_mutex_lock (&self->seg_lock);
    if (want > self->wanted_end) {
        self->wanted_end = want;
        pthread_cond_signal (&self->prepare_wake);
    }
    pthread_mutex_unlock (&self->seg_lock);
}

//  --------------------------------------------------------------------------
//  Writer

/*  Writes buf at its LSNs (split at segment ends) and syncs each file. */
static int
s_write_batch (journal_t *self, const buffer_t *buf)
{
    int touched[8];
    size_t touched_count = 0;
    size_t done = 0;
    while (done < buf->len) {
        uint64_t lsn = buf->start + done;
        uint64_t seg_end = lsn - lsn % self->segment_size + self->segment_size;
        size_t n = buf->len - done;
        if (lsn + n > seg_end)
            n = (size_t) (seg_end - lsn);
        int fd = s_fd_for (self, lsn);
        if (fd < 0) {
            s_set_fatal (self, "journal %s: no segment for position %" PRIu64, self->dir, lsn);
            return -1;
        }
        if (s_pwrite_all (fd, buf->data + done, n, (off_t) (lsn % self->segment_size)) != 0) {
            if (errno == ENOSPC || errno == EDQUOT) {
                /*  A copy-on-write filesystem needs room even to overwrite:
                    nothing is lost, the batch is written again later. */
                snprintf (self->write_full_errstr, sizeof self->write_full_errstr,
                          "journal %s: no space to write (%s)", self->dir, strerror (errno));
                return 1;
            }
            char path[1100];
            s_segment_path (self, lsn - lsn % self->segment_size, path, sizeof path);
            s_set_fatal (self, "journal %s: write at offset %" PRIu64 " failed: %s", path,
                         lsn % self->segment_size, strerror (errno));
            return -1;
        }
        bool seen = false;
        for (size_t i = 0; i < touched_count; i++)
            seen = seen || touched[i] == fd;
        if (!seen && touched_count < sizeof touched / sizeof touched[0])
            touched[touched_count++] = fd;
        done += n;
    }
    for (size_t i = 0; i < touched_count; i++) {
        int64_t started = herald_clock_mono_us ();
        if (fdatasync (touched[i]) != 0) {
            s_set_fatal (self, "journal %s: fdatasync failed: %s", self->dir, strerror (errno));
            return -1;
        }
        int64_t took = herald_clock_mono_us () - started;
        atomic_store (&self->sync_us, (atomic_load (&self->sync_us) * 7 + took) / 8);
        if (self->metrics)
            herald_metrics_journal_sync (self->metrics, took);
    }
    return 0;
}

/*  The first record of a batch about to be written vouches for everything
    before the batch, which is durable by now (one writer, batches in
    order), whatever was durable when the record was staged: a damaged
    record in the batch before it is then known durable, not torn. */
static void
s_vouch_first (buffer_t *batch)
{
    if (batch->len < S_MIN_RECORD || s_get64 (batch->data + 8) != batch->start)
        return;                         /* begins with a short filler: rare, left as staged */
    uint32_t len = s_get32 (batch->data + 4);
    if (JOURNAL_HEADER + (uint64_t) len > batch->len)
        return;
    s_put64 (batch->data + 16, batch->start);
    s_put32 (batch->data, journal_crc32c (0, batch->data + 4, JOURNAL_HEADER - 4 + (size_t) len));
}

/*  Once a batch is durable and nothing waits to be written, a mark at the
    end of the log vouches for everything before it: the last batch before
    a stop or a crash is then known durable too, so damage inside it is
    refused at the next open instead of being cut off as a torn write. The
    mark is not synced (a power cut may take it; the next batch overwrites
    it, and its own first record vouches in its place), and it is not a
    record of the log: a reader skips it, the open ends the log before it. */
static void
s_write_mark (journal_t *self, uint64_t at)
{
    uint64_t seg_end = at - at % self->segment_size + self->segment_size;
    if (at + S_MIN_RECORD > seg_end)
        return;
    int fd = s_fd_for (self, at);
    if (fd < 0)
        return;
    unsigned char mark[S_MIN_RECORD];
    unsigned char type = S_MARK_TYPE;
    s_make_record (mark, at, at, &type, 1);
    (void) s_pwrite_all (fd, mark, sizeof mark, (off_t) (at % self->segment_size));
}

/*  Takes everything staged for a write (lock held): the owner goes on
    appending into the other buffer. */
static buffer_t
s_take_staged_locked (journal_t *self)
{
    buffer_t batch = self->staging;
    self->staging = self->writing;
    self->staging.len = 0;
    self->staging.start = batch.start + batch.len;
    self->flush_requested = false;
    self->writer_busy = true;
    return batch;
}

static void
s_signal (journal_t *self)
{
    uint64_t one = 1;
    ssize_t n = write (self->event_fd, &one, sizeof one);
    (void) n;
}

static void *
s_writer (void *arg)
{
    journal_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (true) {
        if (self->writer_busy || self->staging.len == 0 || (!self->flush_requested && !self->stopping)) {
            if (self->stopping)
                break;
            pthread_cond_wait (&self->write_wake, &self->lock);
            continue;
        }
        /*  Take everything staged: the owner goes on appending into the
            other buffer while this one is written and synced. */
        buffer_t batch = s_take_staged_locked (self);
        pthread_mutex_unlock (&self->lock);
        s_vouch_first (&batch);
        int rc = atomic_load (&self->fatal)? -1: s_write_batch (self, &batch);
        while (rc == 1 && !atomic_load (&self->fatal)) {
            if (!atomic_load (&self->write_full))
                herald_error ("journal: disk full, the batch waits for room", "dir=%s", self->dir);
            atomic_store (&self->write_full, 1);
            pthread_mutex_lock (&self->lock);
            bool stop = self->stopping;
            if (!stop) {
                struct timespec until = herald_clock_deadline (1000);
                pthread_cond_timedwait (&self->write_wake, &self->lock, &until);
            }
            stop = self->stopping;
            pthread_mutex_unlock (&self->lock);
            if (stop) {
                s_set_fatal (self, "%s", self->write_full_errstr);
                rc = -1;
                break;
            }
            rc = s_write_batch (self, &batch);
        }
        if (rc == 0 && atomic_load (&self->write_full)) {
            atomic_store (&self->write_full, 0);
            herald_info ("journal: room again, writing resumed", "dir=%s", self->dir);
        }
        pthread_mutex_lock (&self->lock);
        self->writing = batch;
        if (rc == 0)
            atomic_store (&self->durable, batch.start + batch.len);
        s_signal (self);
        /*  A batch staged meanwhile goes at once, without waiting for the
            owner's next turn (a flush was asked for when it was staged). */
        if (self->staging.len > 0)
            self->flush_requested = true;
        else
        if (rc == 0) {
            /*  Still busy while the mark is written: the owner may not
                write the next batch where the mark goes until it is. */
            pthread_mutex_unlock (&self->lock);
            s_write_mark (self, batch.start + batch.len);
            pthread_mutex_lock (&self->lock);
        }
        self->writer_busy = false;
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Opening: find the end, check what is there

typedef struct {
    journal_t *journal;
    int fd;
    uint64_t base;              /* segment in buf */
    unsigned char *buf;         /* a whole segment */
} s_scan_t;

static int
s_load_segment (s_scan_t *scan, uint64_t base)
{
    if (scan->buf && scan->base == base)
        return 0;
    int fd = s_fd_for (scan->journal, base);
    if (fd < 0)
        return 1;           /* no such segment */
    ssize_t n = s_pread_all (fd, scan->buf, scan->journal->segment_size, 0);
    if (n < 0)
        return -1;
    if ((size_t) n < scan->journal->segment_size)
        memset (scan->buf + n, 0, scan->journal->segment_size - (size_t) n);
    scan->base = base;
    return 0;
}

/*  After the chain of valid records stops at `end`: finds a record of ours
    further on. Returns its position (and *vouches = its synced LSN), or 0. */
static uint64_t
s_find_later (s_scan_t *scan, uint64_t end, uint64_t *vouches)
{
    journal_t *self = scan->journal;
    uint64_t found = 0;
    uint64_t vouch_max = 0;
    for (uint64_t pos = end + 8; ; pos += 8) {
        uint64_t base = pos - pos % self->segment_size;
        if (pos % self->segment_size == 0 || pos == end + 8) {
            int rc = s_load_segment (scan, base);
            if (rc != 0)
                break;
        }
        size_t off = (size_t) (pos - base);
        if (off + S_MIN_RECORD > self->segment_size)
            continue;
        const unsigned char *p = scan->buf + off;
        if (s_get64 (p + 8) != pos)
            continue;
        uint32_t len;
        if (s_check (p, self->segment_size - off, pos, base + self->segment_size, &len) != S_REC_VALID)
            continue;
        if (!found)
            found = pos;
        uint64_t synced = s_get64 (p + 16);
        if (synced > vouch_max)
            vouch_max = synced;
    }
    *vouches = vouch_max;
    return found;
}

static void
s_describe (const journal_t *self, uint64_t lsn, char *out, size_t size)
{
    char path[1100];
    s_segment_path (self, lsn - lsn % self->segment_size, path, sizeof path);
    snprintf (out, size, "%s offset %" PRIu64, path, lsn % self->segment_size);
}

/*  Walks the records from `from`; sets self->end. 0, or -1 with status. */
static int
s_recover (journal_t *self, uint64_t from, journal_status_t *status, char *err, size_t errlen)
{
    s_scan_t scan = { .journal = self, .buf = malloc (self->segment_size), .base = UINT64_MAX };
    if (!scan.buf) {
        snprintf (err, errlen, "journal %s: out of memory", self->dir);
        *status = JOURNAL_IO;
        return -1;
    }
    uint64_t pos = from;
    uint64_t vouched = from;
    uint64_t records = 0;
    s_check_t stop = S_REC_FOREIGN;
    while (true) {
        uint64_t base = pos - pos % self->segment_size;
        uint64_t seg_end = base + self->segment_size;
        if (pos + S_MIN_RECORD > seg_end) {
            pos = seg_end;
            continue;
        }
        int rc = s_load_segment (&scan, base);
        if (rc < 0) {
            char where[1200];
            s_describe (self, pos, where, sizeof where);
            snprintf (err, errlen, "journal %s: cannot read: %s", where, strerror (errno));
            *status = JOURNAL_IO;
            free (scan.buf);
            return -1;
        }
        if (rc > 0)
            break;          /* no segment here: the end */
        size_t off = (size_t) (pos - base);
        uint32_t len = 0;
        stop = s_check (scan.buf + off, self->segment_size - off, pos, seg_end, &len);
        if (stop != S_REC_VALID)
            break;
        const unsigned char *p = scan.buf + off;
        uint64_t synced = s_get64 (p + 16);
        if (synced > vouched)
            vouched = synced;
        if (len > 0 && p[JOURNAL_HEADER] == S_MARK_TYPE) {
            stop = S_REC_FOREIGN;       /* an idle writer's mark: the end, all before it durable */
            break;
        }
        if (len > 0 && p[JOURNAL_HEADER] == S_SKIP_TYPE)
            pos = seg_end;
        else
            pos += s_align8 (JOURNAL_HEADER + (uint64_t) len);
        records++;
    }
    uint64_t vouches = 0;
    uint64_t later = s_find_later (&scan, pos, &vouches);
    char where[1200];
    s_describe (self, pos, where, sizeof where);
    if (pos < vouched || (later && vouches > pos)) {
        char after[1200];
        s_describe (self, later? later: vouched, after, sizeof after);
        snprintf (err, errlen, "journal: damaged record at %s (%s), but records written after it was"
                  " made durable follow (%s): refusing to start; restore the store from a backup, or"
                  " move the journal away to start without it", where,
                  stop == S_REC_DAMAGED? "bad length or CRC": "no record there", after);
        *status = JOURNAL_CORRUPT;
        free (scan.buf);
        return -1;
    }
    free (scan.buf);
    if (stop == S_REC_DAMAGED || later) {
        /*  A write that never completed: nothing in it was acknowledged (no
            later record vouches for it). Cut it off for good, so none of its
            pieces can later pass for records: zero the rest of its segment
            and drop the segments after it. */
        herald_warn ("journal: torn tail cut off", "at=\"%s\" records_before=%" PRIu64, where, records);
        uint64_t base = pos - pos % self->segment_size;
        int fd = s_fd_for (self, base);
        if (fd >= 0) {
            static const unsigned char zeros[S_ZERO_CHUNK];
            for (uint64_t off = pos - base; off < self->segment_size; ) {
                size_t n = self->segment_size - off < S_ZERO_CHUNK? (size_t) (self->segment_size - off)
                                                                   : S_ZERO_CHUNK;
                if (s_pwrite_all (fd, zeros, n, (off_t) off) != 0)
                    break;
                off += n;
            }
            fdatasync (fd);
        }
        pthread_mutex_lock (&self->seg_lock);
        while (self->segment_count > 0 && self->segments[self->segment_count - 1].base > base) {
            segment_t *last = &self->segments[self->segment_count - 1];
            char path[1100];
            s_segment_path (self, last->base, path, sizeof path);
            unlink (path);
            close (last->fd);
            self->segment_count--;
        }
        pthread_mutex_unlock (&self->seg_lock);
        fsync (self->dir_fd);
    }
    self->end = pos;
    return 0;
}

/*  Opens the segment files of the directory. */
static int
s_scan_dir (journal_t *self, char *err, size_t errlen)
{
    DIR *dir = opendir (self->dir);
    if (!dir) {
        snprintf (err, errlen, "journal %s: cannot open: %s", self->dir, strerror (errno));
        return -1;
    }
    struct dirent *entry;
    int rc = 0;
    while ((entry = readdir (dir)) && rc == 0) {
        const char *name = entry->d_name;
        size_t len = strlen (name);
        if (len > 4 && strcmp (name + len - 4, ".tmp") == 0) {
            unlinkat (self->dir_fd, name, 0);      /* an unfinished segment */
            continue;
        }
        if (len != 20 || strcmp (name + 16, ".seg") != 0)
            continue;
        char *end;
        uint64_t base = strtoull (name, &end, 16);
        if (end != name + 16 || base % self->segment_size != 0) {
            snprintf (err, errlen, "journal %s: %s is not a segment of this journal (segments are %u"
                      " bytes)", self->dir, name, self->segment_size);
            rc = -1;
            break;
        }
        int fd = openat (self->dir_fd, name, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat (fd, &st) != 0) {
            snprintf (err, errlen, "journal %s/%s: cannot open: %s", self->dir, name, strerror (errno));
            if (fd >= 0)
                close (fd);
            rc = -1;
            break;
        }
        if ((uint64_t) st.st_size != self->segment_size) {
            snprintf (err, errlen, "journal %s/%s: %lld bytes, expected %u: not a segment of this"
                      " journal", self->dir, name, (long long) st.st_size, self->segment_size);
            close (fd);
            rc = -1;
            break;
        }
        if (s_insert_locked (self, base, fd) != 0) {
            close (fd);
            snprintf (err, errlen, "journal %s: out of memory", self->dir);
            rc = -1;
        }
    }
    closedir (dir);
    return rc;
}

journal_t *
journal_open (const char *dir, const journal_options_t *options, uint64_t from,
              journal_status_t *status, char *err, size_t errlen)
{
    *status = JOURNAL_IO;
    journal_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "journal %s: out of memory", dir);
        return NULL;
    }
    snprintf (self->dir, sizeof self->dir, "%s", dir);
    self->segment_size = options && options->segment_size? options->segment_size: JOURNAL_SEGMENT_DEFAULT;
    self->segment_size -= self->segment_size % 4096;
    if (self->segment_size < 65536)
        self->segment_size = 65536;
    self->max_bytes = options? options->max_bytes: 0;
    self->metrics = options? options->metrics: NULL;
    self->here_slow_us = options && options->here_slow_us > 0? options->here_slow_us: JOURNAL_HERE_SLOW_US;
    self->dir_fd = -1;
    self->event_fd = -1;
    pthread_mutex_init (&self->seg_lock, NULL);
    pthread_mutex_init (&self->lock, NULL);
    herald_cond_init_monotonic (&self->prepare_wake);
    herald_cond_init_monotonic (&self->write_wake);
    if (mkdir (dir, 0700) != 0 && errno != EEXIST) {
        snprintf (err, errlen, "journal %s: cannot create: %s", dir, strerror (errno));
        journal_destroy (&self);
        return NULL;
    }
    self->dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    self->event_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->dir_fd < 0 || self->event_fd < 0) {
        snprintf (err, errlen, "journal %s: cannot open: %s", dir, strerror (errno));
        journal_destroy (&self);
        return NULL;
    }
    if (s_scan_dir (self, err, errlen) != 0
    ||  s_recover (self, from, status, err, errlen) != 0) {
        journal_destroy (&self);
        return NULL;
    }
    atomic_store (&self->durable, self->end);
    self->staging.start = self->end;
    self->writing.start = self->end;
    uint64_t prepared = self->end - self->end % self->segment_size;
    pthread_mutex_lock (&self->seg_lock);
    while (s_find_locked (self, prepared) >= 0)
        prepared += self->segment_size;
    /*  Segments before the end that are missing (a new journal, or one whose
        old segments were recycled) are made by the preparer from here. */
    self->released_below = from - from % self->segment_size;
    pthread_mutex_unlock (&self->seg_lock);
    atomic_store (&self->prepared_end, prepared);
    *status = JOURNAL_OK;
    return self;
}

int
journal_start (journal_t *self, char *err, size_t errlen)
{
    self->wanted_end = 0;
    if (pthread_create (&self->preparer, NULL, s_preparer, self) != 0) {
        snprintf (err, errlen, "journal %s: cannot start a thread", self->dir);
        return -1;
    }
    pthread_setname_np (self->preparer, "herald-prepare");
    if (pthread_create (&self->writer, NULL, s_writer, self) != 0) {
        pthread_mutex_lock (&self->seg_lock);
        self->stopping = true;
        pthread_cond_signal (&self->prepare_wake);
        pthread_mutex_unlock (&self->seg_lock);
        pthread_join (self->preparer, NULL);
        snprintf (err, errlen, "journal %s: cannot start a thread", self->dir);
        return -1;
    }
    pthread_setname_np (self->writer, "herald-journal");
    self->threads_started = true;
    s_want (self, self->end);
    /*  The segment the first append goes to must exist before the broker
        says it is ready. */
    for (int waited = 0; atomic_load (&self->prepared_end) <= self->end; waited++) {
        pthread_mutex_lock (&self->seg_lock);
        int failed = self->prepare_errno;
        pthread_mutex_unlock (&self->seg_lock);
        if (failed || waited > 60000) {
            snprintf (err, errlen, "%s", failed? self->full_errstr: "journal: no segment after 60 s");
            return -1;
        }
        struct timespec step = { 0, 1000000 };
        nanosleep (&step, NULL);
    }
    return 0;
}

void
journal_destroy (journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    journal_t *self = *self_p;
    if (self->threads_started) {
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        pthread_cond_signal (&self->write_wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->writer, NULL);
        pthread_mutex_lock (&self->seg_lock);
        self->stopping = true;
        pthread_cond_signal (&self->prepare_wake);
        pthread_mutex_unlock (&self->seg_lock);
        pthread_join (self->preparer, NULL);
    }
    for (size_t i = 0; i < self->segment_count; i++)
        close (self->segments[i].fd);
    free (self->segments);
    free (self->staging.data);
    free (self->writing.data);
    if (self->dir_fd >= 0)
        close (self->dir_fd);
    if (self->event_fd >= 0)
        close (self->event_fd);
    pthread_mutex_destroy (&self->seg_lock);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->prepare_wake);
    pthread_cond_destroy (&self->write_wake);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Appending

static int
s_reserve (buffer_t *buf, size_t more)
{
    if (buf->len + more <= buf->cap)
        return 0;
    size_t cap = buf->cap? buf->cap: 1 << 20;
    while (cap < buf->len + more)
        cap *= 2;
    unsigned char *grown = realloc (buf->data, cap);
    if (!grown)
        return -1;
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

/*  Refuses an append: the owner learns why from journal_status. */
static uint64_t
s_refuse (journal_t *self, journal_status_t why)
{
    self->refusal = why;
    return 0;
}

uint64_t
journal_append (journal_t *self, const void *payload, uint32_t len)
{
    if (atomic_load (&self->fatal))
        return s_refuse (self, JOURNAL_IO);
    if (atomic_load (&self->write_full))
        return s_refuse (self, JOURNAL_FULL);
    uint64_t total = s_align8 (JOURNAL_HEADER + (uint64_t) len);
    if (len == 0 || total > self->segment_size)
        return s_refuse (self, JOURNAL_BUSY);
    uint64_t pos = self->end;
    uint64_t seg_end = pos - pos % self->segment_size + self->segment_size;
    uint64_t filler = 0;
    if (pos + total > seg_end) {
        filler = seg_end - pos;
        pos = seg_end;
    }
    uint64_t prepared = atomic_load (&self->prepared_end);
    if (pos + total > prepared) {
        s_want (self, pos);
        pthread_mutex_lock (&self->seg_lock);
        int failed = self->prepare_errno;
        pthread_mutex_unlock (&self->seg_lock);
        return s_refuse (self, failed == ENOSPC || failed == EDQUOT? JOURNAL_FULL: JOURNAL_BUSY);
    }
    if (self->max_bytes > 0) {
        pthread_mutex_lock (&self->seg_lock);
        uint64_t oldest = self->released_below;
        pthread_mutex_unlock (&self->seg_lock);
        if (pos + total - oldest > self->max_bytes)
            return s_refuse (self, JOURNAL_BUSY);
    }
    pthread_mutex_lock (&self->lock);
    if ((self->staging.len + filler + total > S_STAGE_MAX && self->staging.len > 0)
    ||  s_reserve (&self->staging, (size_t) (filler + total)) != 0) {
        pthread_mutex_unlock (&self->lock);
        return s_refuse (self, JOURNAL_BUSY);
    }
    uint64_t synced = atomic_load (&self->durable);
    unsigned char *out = self->staging.data + self->staging.len;
    if (filler >= S_MIN_RECORD) {
        /*  The rest of the segment is one filler record, whose length
            covers it all: a reader jumps to the next segment there. */
        memset (out, 0, (size_t) filler);
        s_put32 (out + 4, (uint32_t) (filler - JOURNAL_HEADER));
        s_put64 (out + 8, self->end);
        s_put64 (out + 16, synced);
        out[JOURNAL_HEADER] = S_SKIP_TYPE;
        s_put32 (out, journal_crc32c (0, out + 4, (size_t) (filler - 4)));
    }
    else
    if (filler > 0)
        memset (out, 0, (size_t) filler);
    self->staging.len += (size_t) filler;
    s_make_record (self->staging.data + self->staging.len, pos, synced, payload, len);
    self->staging.len += (size_t) total;
    self->end = pos + total;
    pthread_mutex_unlock (&self->lock);
    self->refusal = JOURNAL_OK;
    /*  Keep the next segment ready before it is needed. */
    if (self->end % self->segment_size > self->segment_size / 2
    &&  atomic_load (&self->prepared_end) < self->end - self->end % self->segment_size
                                            + 2 * (uint64_t) self->segment_size)
        s_want (self, self->end);
    return self->end;
}

bool
journal_writing (journal_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool busy = self->writer_busy;
    pthread_mutex_unlock (&self->lock);
    return busy;
}

void
journal_flush (journal_t *self)
{
    pthread_mutex_lock (&self->lock);
    if (self->staging.len > 0) {
        self->flush_requested = true;
        if (!self->writer_busy)
            pthread_cond_signal (&self->write_wake);
    }
    pthread_mutex_unlock (&self->lock);
}

bool
journal_commit_here (journal_t *self, journal_durable_fn *durable, void *arg)
{
    pthread_mutex_lock (&self->lock);
    if (self->staging.len == 0 || self->staging.len > JOURNAL_HERE_MAX || self->writer_busy
    ||  self->stopping || atomic_load (&self->fatal) || atomic_load (&self->write_full)
    ||  atomic_load (&self->sync_us) > self->here_slow_us) {
        pthread_mutex_unlock (&self->lock);
        return false;
    }
    buffer_t batch = s_take_staged_locked (self);
    pthread_mutex_unlock (&self->lock);
    s_vouch_first (&batch);
    int rc = s_write_batch (self, &batch);
    if (rc == 0) {
        /*  The batch's waiters first: the mark's write (a pwrite of a
            partial page, 6 % of the loop's CPU at 8 producers x 1) is not
            theirs to wait for. Still busy meanwhile: what they stage goes
            where the mark goes, after it. */
        pthread_mutex_lock (&self->lock);
        self->writing = batch;
        atomic_store (&self->durable, batch.start + batch.len);
        pthread_mutex_unlock (&self->lock);
        if (durable)
            durable (arg);
        s_write_mark (self, batch.start + batch.len);
        pthread_mutex_lock (&self->lock);
        self->writer_busy = false;
        if (self->staging.len > 0 && self->flush_requested)
            pthread_cond_signal (&self->write_wake);
        pthread_mutex_unlock (&self->lock);
        return true;
    }
    pthread_mutex_lock (&self->lock);
    self->writer_busy = false;
    if (rc == 1) {
        /*  No room to write: the batch goes back to be staged first, and the
            writer thread waits for room as it does for its own batches. */
        buffer_t spare = self->staging;
        self->staging = batch;
        self->writing = spare;
        self->writing.len = 0;
        self->flush_requested = true;
        pthread_cond_signal (&self->write_wake);
        pthread_mutex_unlock (&self->lock);
        return false;
    }
    self->writing = batch;
    s_signal (self);                    /* the owner learns of the failure as from the writer */
    pthread_mutex_unlock (&self->lock);
    return false;
}

uint64_t
journal_durable (journal_t *self)
{
    return atomic_load (&self->durable);
}

uint64_t
journal_end (journal_t *self)
{
    return self->end;
}

bool
journal_pending (journal_t *self)
{
    return atomic_load (&self->durable) < self->end;
}

int
journal_fd (journal_t *self)
{
    return self->event_fd;
}

void
journal_clear_fd (journal_t *self)
{
    uint64_t value;
    ssize_t n = read (self->event_fd, &value, sizeof value);
    (void) n;
}

journal_status_t
journal_status (journal_t *self)
{
    return atomic_load (&self->fatal)? JOURNAL_IO: self->refusal;
}

const char *
journal_errstr (journal_t *self)
{
    journal_status_t status = journal_status (self);
    if (status == JOURNAL_IO)
        snprintf (self->errstr, sizeof self->errstr, "%s", self->fatal_errstr);
    else
    if (status == JOURNAL_FULL && atomic_load (&self->write_full))
        snprintf (self->errstr, sizeof self->errstr, "%s", self->write_full_errstr);
    else
    if (status == JOURNAL_FULL) {
        pthread_mutex_lock (&self->seg_lock);
        snprintf (self->errstr, sizeof self->errstr, "%s", self->full_errstr);
        pthread_mutex_unlock (&self->seg_lock);
    }
    else
    if (status == JOURNAL_BUSY)
        snprintf (self->errstr, sizeof self->errstr, "journal %s: the log is at its size limit or"
                  " its writer is behind", self->dir);
    return self->errstr;
}

void
journal_release (journal_t *self, uint64_t lsn)
{
    pthread_mutex_lock (&self->seg_lock);
    uint64_t below = lsn - lsn % self->segment_size;
    if (below > self->released_below) {
        self->released_below = below;
        pthread_cond_signal (&self->prepare_wake);
    }
    pthread_mutex_unlock (&self->seg_lock);
}

uint64_t
journal_disk_bytes (journal_t *self)
{
    pthread_mutex_lock (&self->seg_lock);
    uint64_t bytes = (uint64_t) self->segment_count * self->segment_size;
    pthread_mutex_unlock (&self->seg_lock);
    return bytes;
}

//  --------------------------------------------------------------------------
//  Reading

struct journal_reader {
    journal_t *journal;
    uint64_t pos;
    unsigned char *buf;
    uint64_t buf_start;                 /* LSN of buf[0] */
    size_t buf_len;
};

journal_reader_t *
journal_reader_new (journal_t *journal, uint64_t from)
{
    journal_reader_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->buf = malloc (S_READ_CHUNK);
    if (!self->buf) {
        free (self);
        return NULL;
    }
    self->journal = journal;
    self->pos = from;
    return self;
}

void
journal_reader_destroy (journal_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->buf);
    free (*self_p);
    *self_p = NULL;
}

/*  Makes [pos, pos + need) available in the buffer (within one segment). */
static int
s_fill (journal_reader_t *self, uint64_t need, uint64_t until, char *err, size_t errlen)
{
    uint64_t pos = self->pos;
    if (pos >= self->buf_start && pos + need <= self->buf_start + self->buf_len)
        return 0;
    journal_t *j = self->journal;
    uint64_t base = pos - pos % j->segment_size;
    size_t want = S_READ_CHUNK;
    if (need > want) {
        unsigned char *grown = realloc (self->buf, (size_t) need);
        if (!grown) {
            snprintf (err, errlen, "journal %s: out of memory", j->dir);
            return -1;
        }
        self->buf = grown;
        want = (size_t) need;
    }
    if (pos + want > base + j->segment_size)
        want = (size_t) (base + j->segment_size - pos);
    /*  Never buffer past what is durable: beyond it the writer may be at
        work, and bytes read there would be taken for records later. */
    uint64_t durable = atomic_load (&j->durable);
    if (durable < until)
        durable = until;        /* at open, before the writer runs: the end found */
    if (pos + want > durable && durable >= pos + need)
        want = (size_t) (durable - pos);
    int fd = s_fd_for (j, pos);
    if (fd < 0) {
        char where[1200];
        s_describe (j, pos, where, sizeof where);
        snprintf (err, errlen, "journal: no segment holds %s", where);
        return -1;
    }
    ssize_t n = s_pread_all (fd, self->buf, want, (off_t) (pos - base));
    if (n < 0 || (uint64_t) n < need) {
        char where[1200];
        s_describe (j, pos, where, sizeof where);
        snprintf (err, errlen, "journal %s: read failed: %s", where, n < 0? strerror (errno): "short");
        return -1;
    }
    self->buf_start = pos;
    self->buf_len = (size_t) n;
    return 0;
}

int
journal_read (journal_reader_t *self, uint64_t until, journal_record_t *record, char *err, size_t errlen)
{
    journal_t *j = self->journal;
    while (self->pos < until) {
        uint64_t base = self->pos - self->pos % j->segment_size;
        uint64_t seg_end = base + j->segment_size;
        if (self->pos + S_MIN_RECORD > seg_end) {
            self->pos = seg_end;
            continue;
        }
        if (s_fill (self, JOURNAL_HEADER, until, err, errlen) != 0)
            return -1;
        const unsigned char *p = self->buf + (self->pos - self->buf_start);
        uint32_t len = s_get32 (p + 4);
        uint64_t total = s_align8 (JOURNAL_HEADER + (uint64_t) len);
        if (s_get64 (p + 8) != self->pos || self->pos + total > seg_end) {
            char where[1200];
            s_describe (j, self->pos, where, sizeof where);
            snprintf (err, errlen, "journal: damaged record at %s (no record header)", where);
            return -1;
        }
        if (s_fill (self, total, until, err, errlen) != 0)
            return -1;
        p = self->buf + (self->pos - self->buf_start);
        uint32_t checked;
        if (s_check (p, (size_t) total, self->pos, seg_end, &checked) != S_REC_VALID) {
            char where[1200];
            s_describe (j, self->pos, where, sizeof where);
            snprintf (err, errlen, "journal: damaged record at %s (bad CRC)", where);
            return -1;
        }
        uint64_t at = self->pos;
        if (len > 0 && p[JOURNAL_HEADER] == S_SKIP_TYPE) {
            self->pos = seg_end;
            continue;
        }
        if (len > 0 && p[JOURNAL_HEADER] == S_MARK_TYPE) {
            self->pos += total;         /* never inside what is read; skipped all the same */
            continue;
        }
        self->pos += total;
        *record = (journal_record_t) { .lsn = at, .next = self->pos, .payload = p + JOURNAL_HEADER,
                                       .len = len };
        return 1;
    }
    return 0;
}

uint64_t
journal_read_position (journal_reader_t *self)
{
    return self->pos;
}
