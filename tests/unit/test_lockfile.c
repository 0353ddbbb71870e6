/*  Unit tests: common/herald_lockfile — one holder at a time, its pid named
    to the others, released by exit however it happens (kill -9 too). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "herald_lockfile.h"

static char s_dir[64];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-test-lock-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    char command[128];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    cr_expect_eq (system (command), 0);
}

TestSuite (lockfile, .init = s_setup, .fini = s_teardown);

Test (lockfile, one_holder_named_to_the_others)
{
    char path[128];
    snprintf (path, sizeof path, "%s/var/lib/herald.db.lock", s_dir);
    char err[256] = "";
    pid_t holder = -1;
    herald_lockfile_t *lock = herald_lockfile_new (path, &holder, err, sizeof err);
    cr_assert_not_null (lock, "%s", err);
    cr_expect_eq (holder, 0);
    cr_expect_str_eq (herald_lockfile_path (lock), path);
    cr_expect_eq (herald_lockfile_pid (path), getpid (), "the file holds our pid");

    //  A second open file description is refused, even in this process
    herald_lockfile_t *again = herald_lockfile_new (path, &holder, err, sizeof err);
    cr_expect_null (again);
    cr_expect_eq (errno, EWOULDBLOCK);
    cr_expect_eq (holder, getpid ());
    char expected[200];
    snprintf (expected, sizeof expected, "%s is locked by process %d", path, (int) getpid ());
    cr_expect_str_eq (err, expected);

    //  and in another process, which learns our pid
    fflush (NULL);
    pid_t child = fork ();
    cr_assert_geq (child, 0);
    if (child == 0) {
        pid_t seen = 0;
        char child_err[256];
        herald_lockfile_t *theirs = herald_lockfile_new (path, &seen, child_err, sizeof child_err);
        _exit (theirs == NULL && errno == EWOULDBLOCK && seen == getppid ()? 0: 1);
    }
    int status;
    cr_assert_eq (waitpid (child, &status, 0), child);
    cr_expect (WIFEXITED (status) && WEXITSTATUS (status) == 0, "the child saw the lock held by us");

    //  Released: the file is emptied and the lock can be taken again
    herald_lockfile_destroy (&lock);
    cr_expect_null (lock);
    herald_lockfile_destroy (&lock);
    cr_expect_eq (herald_lockfile_pid (path), 0);
    lock = herald_lockfile_new (path, &holder, err, sizeof err);
    cr_expect_not_null (lock, "%s", err);
    herald_lockfile_destroy (&lock);
}

Test (lockfile, released_when_the_holder_is_killed)
{
    char path[128];
    snprintf (path, sizeof path, "%s/store.lock", s_dir);
    int ready[2];
    cr_assert_eq (pipe (ready), 0);
    fflush (NULL);
    pid_t child = fork ();
    cr_assert_geq (child, 0);
    if (child == 0) {
        char child_err[256];
        herald_lockfile_t *lock = herald_lockfile_new (path, NULL, child_err, sizeof child_err);
        char byte = lock? 'y': 'n';
        if (write (ready[1], &byte, 1) != 1)
            _exit (2);
        for (;;)
            pause ();
    }
    close (ready[1]);
    char byte = 0;
    cr_assert_eq (read (ready[0], &byte, 1), 1);
    cr_assert_eq (byte, 'y', "the child took the lock");
    close (ready[0]);

    char err[256];
    pid_t holder = 0;
    cr_expect_null (herald_lockfile_new (path, &holder, err, sizeof err));
    cr_expect_eq (holder, child, "%s", err);

    kill (child, SIGKILL);
    int status;
    cr_assert_eq (waitpid (child, &status, 0), child);
    cr_expect_eq (herald_lockfile_pid (path), child, "a killed holder leaves its pid behind...");
    herald_lockfile_t *lock = herald_lockfile_new (path, &holder, err, sizeof err);
    cr_expect_not_null (lock, "...but not its lock: %s", err);
    cr_expect_eq (herald_lockfile_pid (path), getpid ());
    herald_lockfile_destroy (&lock);
}

Test (lockfile, errors_name_the_path)
{
    char file[128];
    snprintf (file, sizeof file, "%s/plain", s_dir);
    FILE *handle = fopen (file, "w");
    cr_assert_not_null (handle);
    fclose (handle);
    char path[160];
    snprintf (path, sizeof path, "%s/under/x.lock", file);
    char err[256] = "";
    pid_t holder = -1;
    cr_expect_null (herald_lockfile_new (path, &holder, err, sizeof err));
    cr_expect_eq (holder, 0);
    cr_expect_eq (errno, ENOTDIR);
    cr_expect_not_null (strstr (err, path), "%s", err);
    cr_expect_not_null (strstr (err, "cannot create its directory"), "%s", err);

    cr_expect_null (herald_lockfile_new ("", &holder, err, sizeof err));
    cr_expect_eq (herald_lockfile_pid ("/nonexistent/x.lock"), 0);
}
