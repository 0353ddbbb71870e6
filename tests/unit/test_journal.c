/*  Unit tests: broker/journal - the append-only log. Records come back as
    they went in, across segments and restarts; a torn tail is cut off, a
    damaged durable record refuses the open naming file and offset; released
    segments are reused and their old records never come back. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <pthread.h>

#include "journal.h"

#define SEG (64u * 1024)

static char s_dir[256];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-test-journal-XXXXXX");
    cr_assert (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    char cmd[300];
    snprintf (cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (journal, .init = s_setup, .fini = s_teardown, .timeout = 60);

static journal_t *
s_open (uint64_t from, journal_status_t *status, char *err, size_t errlen)
{
    /*  journal_commit_here is not declined for slow syncs: the tests that
        commit on their own thread expect it to be taken, whatever the disk
        does while other tests run beside them. */
    journal_options_t options = { .segment_size = SEG, .here_slow_us = 10 * 1000 * 1000 };
    journal_t *j = journal_open (s_dir, &options, from, status, err, errlen);
    if (j && journal_start (j, err, errlen) != 0)
        journal_destroy (&j);
    return j;
}

static journal_t *
s_open_ok (uint64_t from)
{
    journal_status_t status;
    char err[2048] = "";
    journal_t *j = s_open (from, &status, err, sizeof err);
    cr_assert (j, "open: %s", err);
    return j;
}

/*  Appends (retrying while the next segment is being made) and returns the LSN past it. */
static uint64_t
s_append (journal_t *j, const char *text)
{
    for (int i = 0; i < 5000; i++) {
        uint64_t end = journal_append (j, text, (uint32_t) strlen (text));
        if (end)
            return end;
        cr_assert_eq (journal_status (j), JOURNAL_BUSY, "append refused: %s", journal_errstr (j));
        journal_flush (j);
        usleep (1000);
    }
    cr_assert_fail ("append never taken");
    return 0;
}

static void
s_wait_durable (journal_t *j, uint64_t lsn)
{
    journal_flush (j);
    for (int i = 0; i < 10000 && journal_durable (j) < lsn; i++)
        usleep (500);
    cr_assert_geq (journal_durable (j), lsn, "durable %llu < %llu", (unsigned long long) journal_durable (j),
                   (unsigned long long) lsn);
}

/*  Reads every record from `from` to `until` into texts (NUL-joined). */
static int
s_read_all (journal_t *j, uint64_t from, uint64_t until, char texts[][64], int max)
{
    journal_reader_t *r = journal_reader_new (j, from);
    journal_record_t rec;
    char err[1024];
    int n = 0, rc;
    while ((rc = journal_read (r, until, &rec, err, sizeof err)) == 1) {
        cr_assert_lt (n, max);
        cr_assert_lt (rec.len, 64u);
        memcpy (texts[n], rec.payload, rec.len);
        texts[n][rec.len] = '\0';
        n++;
    }
    cr_assert_eq (rc, 0, "read: %s", err);
    journal_reader_destroy (&r);
    return n;
}

Test (journal, records_come_back_in_order)
{
    journal_t *j = s_open_ok (0);
    uint64_t first = s_append (j, "one");
    s_append (j, "two");
    uint64_t last = s_append (j, "three");
    cr_assert_gt (last, first);
    s_wait_durable (j, last);
    char texts[8][64];
    cr_assert_eq (s_read_all (j, 0, last, texts, 8), 3);
    cr_assert_str_eq (texts[0], "one");
    cr_assert_str_eq (texts[2], "three");
    /*  From the middle. */
    cr_assert_eq (s_read_all (j, first, last, texts, 8), 2);
    cr_assert_str_eq (texts[0], "two");
    journal_destroy (&j);
}

Test (journal, reopen_finds_the_end)
{
    journal_t *j = s_open_ok (0);
    uint64_t last = 0;
    for (int i = 0; i < 100; i++) {
        char text[32];
        snprintf (text, sizeof text, "record %d", i);
        last = s_append (j, text);
    }
    s_wait_durable (j, last);
    journal_destroy (&j);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), last);
    char texts[128][64];
    cr_assert_eq (s_read_all (j, 0, journal_end (j), texts, 128), 100);
    cr_assert_str_eq (texts[99], "record 99");
    uint64_t more = s_append (j, "after the restart");
    s_wait_durable (j, more);
    cr_assert_eq (s_read_all (j, 0, more, texts, 128), 101);
    journal_destroy (&j);
}

Test (journal, records_cross_segments)
{
    journal_t *j = s_open_ok (0);
    char big[40];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    uint64_t last = 0;
    int count = 4000;              /* 4000 x 64 bytes: four segments of 64 KiB */
    for (int i = 0; i < count; i++) {
        snprintf (big, sizeof big, "%06d-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
        last = s_append (j, big);
        if (i % 100 == 0)
            journal_flush (j);
    }
    s_wait_durable (j, last);
    cr_assert_gt (last, 3 * (uint64_t) SEG);
    journal_destroy (&j);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), last);
    static char texts[4000][64];
    cr_assert_eq (s_read_all (j, 0, last, texts, 4000), count);
    for (int i = 0; i < count; i++) {
        char want[16];
        snprintf (want, sizeof want, "%06d-", i);
        cr_assert (strncmp (texts[i], want, 7) == 0, "record %d is %s", i, texts[i]);
    }
    journal_destroy (&j);
}

/*  Opens the segment file beginning at base. */
static int
s_segment_open (uint64_t base, int flags)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%016llx.seg", s_dir, (unsigned long long) base);
    int fd = open (path, flags);
    cr_assert_geq (fd, 0, "%s", path);
    return fd;
}

/*  Damages the byte at `offset` of the segment file holding base. */
static void
s_damage (uint64_t base, uint64_t offset)
{
    int fd = s_segment_open (base, O_RDWR);
    unsigned char byte;
    cr_assert_eq (pread (fd, &byte, 1, (off_t) offset), 1);
    byte ^= 0x5a;
    cr_assert_eq (pwrite (fd, &byte, 1, (off_t) offset), 1);
    close (fd);
}

/*  Zeroes len bytes at `offset` of the segment file holding base. */
static void
s_zero (uint64_t base, uint64_t offset, size_t len)
{
    int fd = s_segment_open (base, O_RDWR);
    unsigned char zeros[64] = { 0 };
    cr_assert_leq (len, sizeof zeros);
    cr_assert_eq (pwrite (fd, zeros, len, (off_t) offset), (ssize_t) len);
    close (fd);
}

Test (journal, torn_tail_is_cut_off)
{
    journal_t *j = s_open_ok (0);
    uint64_t a = s_append (j, "kept");
    s_wait_durable (j, a);
    uint64_t b = s_append (j, "torn");
    uint64_t c = s_append (j, "after the tear");
    s_wait_durable (j, c);
    journal_destroy (&j);
    /*  The last write never completed: its first record lost a byte, the
        second one made it (its "synced" says only `a` was durable), and the
        mark an idle writer leaves after a synced write never came. */
    s_damage (0, a + 25);
    s_zero (0, c, 32);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), a, "end %llu", (unsigned long long) journal_end (j));
    (void) b;
    uint64_t d = s_append (j, "new");
    s_wait_durable (j, d);
    char texts[8][64];
    cr_assert_eq (s_read_all (j, 0, d, texts, 8), 2);
    cr_assert_str_eq (texts[1], "new");
    journal_destroy (&j);
    /*  The torn write's surviving record never comes back. */
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), d);
    cr_assert_eq (s_read_all (j, 0, journal_end (j), texts, 8), 2);
    journal_destroy (&j);
}

Test (journal, damaged_durable_record_refuses_the_open)
{
    journal_t *j = s_open_ok (0);
    uint64_t a = s_append (j, "first");
    s_wait_durable (j, a);
    uint64_t b = s_append (j, "second");
    s_wait_durable (j, b);
    uint64_t c = s_append (j, "third, written once the second was durable");
    s_wait_durable (j, c);
    journal_destroy (&j);
    s_damage (0, a + 26);           /* inside "second" */
    journal_status_t status;
    char err[2048] = "";
    j = s_open (0, &status, err, sizeof err);
    cr_assert_null (j);
    cr_assert_eq (status, JOURNAL_CORRUPT);
    char where[64];
    snprintf (where, sizeof where, "0000000000000000.seg offset %llu", (unsigned long long) a);
    cr_assert (strstr (err, where), "error names the file and offset: %s", err);
    cr_assert (strstr (err, "refusing to start"), "%s", err);
}

/*  The last write before a stop was synced and ACKed, and nothing came
    after it: a damaged record inside it is not a torn tail (the writer's
    mark after it says so), and the log's end is where the records end. */
Test (journal, damaged_record_in_the_last_synced_write_refuses_the_open)
{
    journal_t *j = s_open_ok (0);
    uint64_t a = s_append (j, "first");
    s_wait_durable (j, a);
    s_append (j, "second, in the last write");
    uint64_t c = s_append (j, "third, in the last write");
    s_wait_durable (j, c);
    journal_destroy (&j);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), c, "a clean log ends at its last record");
    journal_destroy (&j);
    s_damage (0, a + 26);           /* inside "second" */
    journal_status_t status;
    char err[2048] = "";
    j = s_open (0, &status, err, sizeof err);
    cr_assert_null (j, "a damaged durable record was cut off as a torn tail");
    cr_assert_eq (status, JOURNAL_CORRUPT);
    char where[64];
    snprintf (where, sizeof where, "0000000000000000.seg offset %llu", (unsigned long long) a);
    cr_assert (strstr (err, where), "error names the file and offset: %s", err);
}

/*  A write made while the one before it was syncing (pipelined): once it is
    written, everything before it is durable, and its first record says so,
    whatever was durable when it was staged. */
Test (journal, a_write_vouches_for_every_write_before_it)
{
    journal_t *j = s_open_ok (0);
    uint64_t a = 0, b = 0;
    bool caught = false;
    for (int tries = 0; tries < 200 && !caught; tries++) {
        a = s_append (j, "staged first");
        journal_flush (j);
        while (!journal_writing (j) && journal_durable (j) < a)
            ;
        if (journal_durable (j) >= a)
            continue;                       /* synced before we looked: again */
        caught = true;
        b = s_append (j, "staged while the one before was being written");
        s_wait_durable (j, b);
    }
    cr_assert (caught, "never saw the writer at work");
    journal_destroy (&j);
    int fd = s_segment_open (0, O_RDONLY);
    unsigned char header[24];
    cr_assert_eq (pread (fd, header, sizeof header, (off_t) a), 24);
    close (fd);
    uint64_t synced = 0;
    for (int i = 7; i >= 0; i--)
        synced = synced << 8 | header[16 + i];
    cr_assert_eq (synced, a, "the record written after %llu vouches for %llu only",
                  (unsigned long long) a, (unsigned long long) synced);
    (void) b;
}

Test (journal, released_segments_are_reused)
{
    journal_options_t options = { .segment_size = SEG, .max_bytes = 8 * (uint64_t) SEG };
    journal_status_t status;
    char err[1024];
    journal_t *j = journal_open (s_dir, &options, 0, &status, err, sizeof err);
    cr_assert (j, "%s", err);
    cr_assert_eq (journal_start (j, err, sizeof err), 0, "%s", err);
    char text[64];
    uint64_t last = 0;
    for (int i = 0; i < 20000; i++) {      /* 20 x the segment size */
        snprintf (text, sizeof text, "%06d-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
        for (int tries = 0; !(last = journal_append (j, text, (uint32_t) strlen (text))); tries++) {
            cr_assert_lt (tries, 5000, "append refused: %s", journal_errstr (j));
            journal_flush (j);
            /*  Everything durable is applied elsewhere: release it. */
            journal_release (j, journal_durable (j));
            usleep (1000);
        }
        if (i % 50 == 0) {
            journal_flush (j);
            journal_release (j, journal_durable (j));
        }
    }
    s_wait_durable (j, last);
    journal_release (j, last);
    cr_assert_gt (last, 18 * (uint64_t) SEG);
    cr_assert_leq (journal_disk_bytes (j), 9 * (uint64_t) SEG, "disk %llu",
                   (unsigned long long) journal_disk_bytes (j));
    uint64_t from = last - last % SEG;
    journal_destroy (&j);
    /*  Reopened from the released point: only the records after it. */
    j = s_open_ok (from);
    cr_assert_eq (journal_end (j), last);
    static char texts[2000][64];
    int n = s_read_all (j, from, last, texts, 2000);
    cr_assert_gt (n, 0);
    cr_assert (strncmp (texts[n - 1], "019999-", 7) == 0, "last %s", texts[n - 1]);
    journal_destroy (&j);
}

/*  A small batch with the writer idle is written and synced by the caller:
    durable at once, no wait for the writer; a big one is refused (it goes
    to the writer), and both come back after a restart. */
Test (journal, a_small_batch_is_committed_on_the_callers_thread)
{
    journal_t *j = s_open_ok (0);
    s_append (j, "one");
    uint64_t two = s_append (j, "two");
    cr_assert (journal_commit_here (j, NULL, NULL));
    cr_assert_eq (journal_durable (j), two, "durable as the call returns");
    cr_assert (!journal_pending (j));
    cr_assert (!journal_commit_here (j, NULL, NULL), "nothing staged: nothing done");
    /*  More than JOURNAL_HERE_MAX staged: the writer's. */
    char big[1024];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    uint64_t last = 0;
    for (size_t i = 0; i * sizeof big <= JOURNAL_HERE_MAX; i++)
        last = journal_append (j, big, (uint32_t) strlen (big));
    cr_assert_gt (last, two);
    cr_assert (!journal_commit_here (j, NULL, NULL));
    cr_assert_lt (journal_durable (j), last);
    s_wait_durable (j, last);
    uint64_t three = s_append (j, "three");
    cr_assert (journal_commit_here (j, NULL, NULL));
    cr_assert_eq (journal_durable (j), three);
    journal_destroy (&j);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), three);
    static char texts[64][64];
    journal_reader_t *r = journal_reader_new (j, 0);
    journal_record_t rec;
    char err[1024];
    int n = 0, rc;
    while ((rc = journal_read (r, three, &rec, err, sizeof err)) == 1) {
        if (rec.len < 64) {
            memcpy (texts[n], rec.payload, rec.len);
            texts[n][rec.len] = '\0';
        }
        else
            snprintf (texts[n], sizeof texts[n], "(big)");
        n++;
    }
    cr_assert_eq (rc, 0, "read: %s", err);
    journal_reader_destroy (&r);
    cr_assert_str_eq (texts[0], "one");
    cr_assert_str_eq (texts[1], "two");
    cr_assert_str_eq (texts[n - 1], "three");
    journal_destroy (&j);
}

/*  Reads the 32 octets at `offset` of the segment file holding base. */
static void
s_peek (uint64_t base, uint64_t offset, unsigned char out[32])
{
    int fd = s_segment_open (base, O_RDONLY);
    cr_assert_eq (pread (fd, out, 32, (off_t) offset), 32);
    close (fd);
}

typedef struct {
    journal_t *j;
    uint64_t end;               /* the batch's end */
    bool stage;                 /* append and flush from the callback */
    int calls;
    uint64_t durable;           /* journal_durable when called */
    unsigned char there[32];    /* where the mark goes, when called */
    uint64_t staged;
} s_here_t;

static void
s_on_durable (void *arg)
{
    s_here_t *here = arg;
    here->calls++;
    here->durable = journal_durable (here->j);
    s_peek (0, here->end, here->there);
    if (here->stage) {
        here->staged = journal_append (here->j, "staged by a waiter", 18);
        journal_flush (here->j);
    }
}

/*  A batch committed on the caller's thread is durable when its waiters
    are called, and the idle writer's mark goes after the batch only once
    they have been answered: its write is not theirs to wait for. What they
    stage meanwhile is written after the mark, not under it. */
Test (journal, a_batch_committed_here_answers_its_waiters_before_the_mark)
{
    journal_t *j = s_open_ok (0);
    s_append (j, "one");
    s_here_t here = { .j = j };
    here.end = s_append (j, "two");
    cr_assert (journal_commit_here (j, s_on_durable, &here));
    cr_assert_eq (here.calls, 1);
    cr_assert_eq (here.durable, here.end, "durable when the waiters are called");
    unsigned char zeros[32] = { 0 };
    cr_assert (memcmp (here.there, zeros, 32) == 0, "the mark was written before the waiters were called");
    unsigned char after[32];
    s_peek (0, here.end, after);
    cr_assert_eq (after[JOURNAL_HEADER], 0xfe, "no mark after the batch once the call returned");
    /*  Reopened: the mark says the last write was durable, and the log ends
        where the records end. */
    journal_destroy (&j);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), here.end);
    /*  A waiter that appends and flushes: its record is written once the
        mark is, where the mark was, and every record comes back in order. */
    here = (s_here_t) { .j = j, .stage = true };
    here.end = s_append (j, "three");
    cr_assert (journal_commit_here (j, s_on_durable, &here));
    cr_assert_eq (here.calls, 1);
    cr_assert_gt (here.staged, here.end, "the waiter's append was taken");
    s_wait_durable (j, here.staged);
    char texts[8][64];
    cr_assert_eq (s_read_all (j, 0, here.staged, texts, 8), 4);
    cr_assert_str_eq (texts[2], "three");
    cr_assert_str_eq (texts[3], "staged by a waiter");
    journal_destroy (&j);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), here.staged);
    cr_assert_eq (s_read_all (j, 0, here.staged, texts, 8), 4);
    cr_assert_str_eq (texts[3], "staged by a waiter");
    journal_destroy (&j);
}

/*  The caller and the writer thread take turns writing batches, without
    waiting for each other, the caller often right as the writer goes idle
    (when the writer writes its mark where the caller's batch begins: it
    counts as busy until the mark is written): every record comes back, in
    order, before and after a restart. */
Test (journal, the_caller_and_the_writer_take_turns)
{
    journal_t *j = s_open_ok (0);
    enum { N = 4000 };
    uint64_t last = 0;
    int here = 0;
    bool after_idle = false;
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf (text, sizeof text, "turn %d", i);
        last = s_append (j, text);
        if ((i % 2 == 0 && !after_idle) || !journal_commit_here (j, NULL, NULL))
            journal_flush (j);
        else
            here++;
        after_idle = false;
        if (i % 3 == 0) {
            /*  The writer finishes its batch (and writes its idle mark);
                the next batch is the caller's, the moment it may. */
            while (journal_writing (j))
                ;
            after_idle = true;
        }
    }
    s_wait_durable (j, last);
    cr_assert_gt (here, N / 20, "the caller committed %d batches itself", here);
    static char texts[N + 8][64];
    int n = s_read_all (j, 0, last, texts, N + 8);
    cr_assert_eq (n, N, "%d records read back", n);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf (want, sizeof want, "turn %d", i);
        cr_assert_str_eq (texts[i], want);
    }
    journal_destroy (&j);
    j = s_open_ok (0);
    cr_assert_eq (journal_end (j), last);
    cr_assert_eq (s_read_all (j, 0, last, texts, N + 8), N);
    journal_destroy (&j);
}

Test (journal, crc32c_known_values)
{
    /*  RFC 3720 B.4 test vectors. */
    unsigned char zeros[32] = { 0 };
    cr_assert_eq (journal_crc32c (0, zeros, sizeof zeros), 0x8a9136aau);
    unsigned char ones[32];
    memset (ones, 0xff, sizeof ones);
    cr_assert_eq (journal_crc32c (0, ones, sizeof ones), 0x62a8ab43u);
    cr_assert_eq (journal_crc32c (0, "123456789", 9), 0xe3069283u);
}

/*  A reader on another thread follows the writer while segments are
    released and reused under it, as the index does: every record comes
    back whole, in order, and none is ever damaged. */
typedef struct {
    journal_t *j;
    volatile int stop;
    long records;
    char error[1024];
} s_follower_t;

static void *
s_follow (void *arg)
{
    s_follower_t *f = arg;
    journal_reader_t *r = journal_reader_new (f->j, 0);
    long expect = 0;
    uint64_t applied = 0;
    unsigned step = 1;
    while (!f->stop || journal_durable (f->j) > 0) {
        /*  Like the index: at most a slice of what is durable at a time. */
        uint64_t until = journal_durable (f->j);
        step = step * 1103515245u + 12345u;
        if (until > applied + 4096 + step % 20000)
            until = applied + 4096 + step % 20000;
        journal_record_t rec;
        int rc;
        while ((rc = journal_read (r, until, &rec, f->error, sizeof f->error)) == 1) {
            long n = -1;
            if (rec.len < 8 || sscanf ((const char *) rec.payload, "%07ld", &n) != 1 || n != expect) {
                snprintf (f->error, sizeof f->error, "record %ld at %llu (len %u) came back as %.*s", expect,
                          (unsigned long long) rec.lsn, rec.len,
                          (int) (rec.len < 20? rec.len: 20), rec.payload);
                rc = -1;
                break;
            }
            expect++;
        }
        if (rc < 0) {
            f->records = expect;
            journal_reader_destroy (&r);
            return NULL;
        }
        f->records = expect;
        applied = journal_read_position (r);
        journal_release (f->j, applied - applied % SEG);
        if (f->stop && applied == journal_durable (f->j))
            break;
        usleep (200);
    }
    journal_reader_destroy (&r);
    return NULL;
}

Test (journal, reader_follows_writer_through_reused_segments)
{
    journal_options_t options = { .segment_size = SEG, .max_bytes = 6 * (uint64_t) SEG };
    journal_status_t status;
    char err[1024];
    journal_t *j = journal_open (s_dir, &options, 0, &status, err, sizeof err);
    cr_assert (j, "%s", err);
    cr_assert_eq (journal_start (j, err, sizeof err), 0, "%s", err);
    s_follower_t f = { .j = j };
    pthread_t thread;
    cr_assert_eq (pthread_create (&thread, NULL, s_follow, &f), 0);
    char text[600];
    long total = 200000;
    for (long i = 0; i < total && !f.error[0]; i++) {
        int len = snprintf (text, sizeof text, "%07ld-", i);
        int pad = (int) ((i * 7919) % 500);       /* records of many sizes */
        memset (text + len, 'x', (size_t) pad);
        len += pad;
        while (!journal_append (j, text, (uint32_t) len)) {
            cr_assert_neq (journal_status (j), JOURNAL_IO, "%s", journal_errstr (j));
            journal_flush (j);
            usleep (100);
        }
        if (i % 37 == 0)
            journal_flush (j);
    }
    journal_flush (j);
    while (journal_durable (j) < journal_end (j) && !f.error[0])
        usleep (1000);
    f.stop = 1;
    pthread_join (thread, NULL);
    cr_assert_str_empty (f.error, "after %ld records: %s", f.records, f.error);
    cr_assert_eq (f.records, total);
    journal_destroy (&j);
}
