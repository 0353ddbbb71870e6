/*  journal: the broker's append-only log. Everything the broker must not
    lose (an event with its fan-out, a task's outcome, an operator's dead
    retry or purge) is a record appended here first; the ACK waits only for
    the journal's fdatasync, never for the queryable index (index.h), which
    applies the records later on its own thread.

    On disk: a directory of segment files of a fixed size, named by the log
    position (LSN: a byte offset into one endless log) where each begins,
    `%016llx.seg`. Segments are zero-filled in advance by a thread of their
    own and overwritten in place, so a commit's fdatasync has no metadata to
    journal; once the index has durably applied everything in a segment, it
    is renamed to a later position and used again.

    A record is 8-byte aligned: a 24-byte header (CRC32C of everything after
    the CRC, payload length, its own LSN, and the LSN known durable when it
    was written) and the payload. A record whose LSN is not its position is
    stale data from a segment's earlier use. At open, records are checked
    from the index's position to the end: a bad record followed by nothing
    that vouches for it (the torn tail of a write that never completed) is
    cut off and logged; a bad record that a later record vouches for (it was
    durable) stops the broker with an error naming the file and the offset.
    Vouching: the first record of each written batch says everything before
    the batch is durable (it is, when the batch is written), and a writer
    that goes idle leaves an unsynced 32-byte mark at the log's end saying
    the same, so damage in the last batch before a stop is refused too (the
    mark is overwritten by the next batch; a power cut may take it).

    Threads: the owner (the broker loop) appends into a staging buffer and
    hands it to the writer thread at the end of each turn; while the writer
    writes and syncs one batch, the owner stages the next (pipelined group
    commit). The writer's progress is read with journal_durable(), and its
    eventfd (journal_fd) becomes readable when it advances. Readers
    (journal_reader_t) may run on other threads, behind the durable LSN. */
#ifndef HERALD_JOURNAL_H
#define HERALD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald_metrics.h"

typedef struct journal journal_t;

#define JOURNAL_HEADER          24
#define JOURNAL_SEGMENT_DEFAULT (32u << 20)     /* 32 MiB */

typedef enum {
    JOURNAL_OK = 0,
    JOURNAL_FULL,           /* no segment can be made (disk full): refuse new work, retry later */
    JOURNAL_BUSY,           /* the log reached its size limit (the index is behind): retry later */
    JOURNAL_IO,             /* a write or fdatasync failed: nothing more may be acknowledged */
    JOURNAL_CORRUPT,        /* a durable record is damaged: refuse to start */
    JOURNAL_UNAVAILABLE     /* a database store cannot be reached now: refuse new work, retry later */
} journal_status_t;

typedef struct {
    uint32_t segment_size;  /* bytes per segment, a multiple of 4096 (default 32 MiB) */
    uint64_t max_bytes;     /* most bytes of segments kept (0 = no limit) */
    herald_metrics_t *metrics;  /* each fdatasync's time goes there (borrowed, NULL = none) */
    int64_t here_slow_us;   /* journal_commit_here declines above this average sync (0 = JOURNAL_HERE_SLOW_US) */
} journal_options_t;

/*  One record, as read back. */
typedef struct {
    uint64_t lsn;           /* where it starts */
    uint64_t next;          /* where the next one starts */
    const unsigned char *payload;   /* borrowed until the next read */
    uint32_t len;
} journal_record_t;

/*  Opens (creating if needed) the journal in dir, checks every record from
    `from` (the position the caller has applied up to) to the end, cuts off a
    torn tail, and positions appends at the end. Returns NULL with a message
    naming the file and offset in err (status JOURNAL_CORRUPT for damage,
    JOURNAL_IO for errors). No thread runs until journal_start. */
journal_t *
    journal_open (const char *dir, const journal_options_t *options, uint64_t from,
                  journal_status_t *status, char *err, size_t errlen);

/*  Starts the writer and the segment thread. 0 / -1. */
int
    journal_start (journal_t *self, char *err, size_t errlen);

/*  True while the writer thread writes or syncs a batch (for tests). */
bool
    journal_writing (journal_t *self);

/*  Stops the threads after the staged records are written and synced (or
    not, after an error), closes the files; NULL-safe, nulls the pointer. */
void
    journal_destroy (journal_t **self_p);

/*  Owner: appends one record (payload of len bytes) to the staging buffer.
    Returns the LSN just past it (the position that must be durable for the
    record to be), or 0 when it cannot be taken now: journal_status says why
    (JOURNAL_BUSY: the staging buffer or the log is full, retry after the
    writer or the index advance; JOURNAL_FULL: the disk; JOURNAL_IO: stop). */
uint64_t
    journal_append (journal_t *self, const void *payload, uint32_t len);

/*  Owner: hands what is staged to the writer (if it is idle; otherwise the
    writer takes it when it is done with the batch in hand). */
void
    journal_flush (journal_t *self);

/*  Owner: writes and syncs what is staged on the calling thread, when that
    is cheaper than handing it to the writer: the writer is idle, the batch
    at most JOURNAL_HERE_MAX bytes, and recent syncs took at most
    JOURNAL_HERE_SLOW_US on average (or the options' here_slow_us). True
    when done: journal_durable covers everything appended (the eventfd is
    not signalled for it). False when not done (also after a failure,
    which journal_status reports): call journal_flush. The caller is blocked for one fdatasync, and saves two
    thread wake-ups (to the writer and back). Once the batch is durable,
    and before the idle writer's mark goes after it, durable (if not NULL)
    is called with arg: what waited for the batch (ACKs) leaves without
    waiting for the mark's write. It may append and flush: the writer takes
    that batch once the mark is written. */
#define JOURNAL_HERE_MAX        (16u << 10)
#define JOURNAL_HERE_SLOW_US    2000
typedef void (journal_durable_fn) (void *arg);
bool
    journal_commit_here (journal_t *self, journal_durable_fn *durable, void *arg);

/*  The LSN up to which everything is written and fdatasync'ed. Any thread. */
uint64_t
    journal_durable (journal_t *self);

/*  The LSN just past the last record appended (staged or not). Owner. */
uint64_t
    journal_end (journal_t *self);

/*  True when records are staged or being written (not yet durable). Owner. */
bool
    journal_pending (journal_t *self);

/*  A file descriptor that polls readable when durability advanced or the
    writer failed; journal_clear_fd resets it. */
int
    journal_fd (journal_t *self);
void
    journal_clear_fd (journal_t *self);

/*  The state of the journal (JOURNAL_OK, or why appends are refused) and a
    message naming what failed. */
journal_status_t
    journal_status (journal_t *self);
const char *
    journal_errstr (journal_t *self);

/*  True when the calling thread, at its nice value, may leave SCHED_IDLE
    again for SCHED_OTHER (tried by a short-lived thread that inherits both):
    that takes CAP_SYS_NICE or an RLIMIT_NICE of at least 20 - nice
    (systemd's unit sets LimitNICE=+0). The preparer and the index thread
    use SCHED_IDLE only then: a thread that could not leave it would starve
    behind a saturated loop just when it is needed. */
bool
    journal_may_leave_idle (void);

/*  Any thread: everything below lsn is applied durably elsewhere; segments
    entirely below it may be reused. */
void
    journal_release (journal_t *self, uint64_t lsn);

/*  Bytes of segments on disk, and the oldest position still kept. */
uint64_t
    journal_disk_bytes (journal_t *self);

/*  Sequential reading from a position (any thread, up to the durable LSN or
    the end found at open). */
typedef struct journal_reader journal_reader_t;

journal_reader_t *
    journal_reader_new (journal_t *journal, uint64_t from);
void
    journal_reader_destroy (journal_reader_t **self_p);

/*  Reads the next record below `until`. 1 with *record filled, 0 at `until`,
    -1 on a damaged record or I/O error (message in err). */
int
    journal_read (journal_reader_t *self, uint64_t until, journal_record_t *record,
                  char *err, size_t errlen);

/*  Where the next journal_read starts. */
uint64_t
    journal_read_position (journal_reader_t *self);

/*  CRC32C (Castagnoli) of data, continuing from crc (0 to start). */
uint32_t
    journal_crc32c (uint32_t crc, const void *data, size_t len);

#endif
