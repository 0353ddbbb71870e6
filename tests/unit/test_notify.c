/*  test_notify: broker/notify.c sends exactly the sd_notify(3) messages its
    header promises to the datagram socket named by NOTIFY_SOCKET, and does
    nothing without it. The test binds that socket itself, as systemd does. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

static char s_dir[64];
static char s_path[96];
static int s_fd = -1;

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-notify-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    snprintf (s_path, sizeof s_path, "%.60s/notify", s_dir);
    s_fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq (s_fd, 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    snprintf (address.sun_path, sizeof address.sun_path, "%s", s_path);
    cr_assert_eq (bind (s_fd, (struct sockaddr *) &address, sizeof address), 0);
    struct timeval timeout = { .tv_sec = 5 };
    cr_assert_eq (setsockopt (s_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
    cr_assert_eq (setenv ("NOTIFY_SOCKET", s_path, 1), 0);
}

static void
s_teardown (void)
{
    unsetenv ("NOTIFY_SOCKET");
    close (s_fd);
    unlink (s_path);
    rmdir (s_dir);
}

TestSuite (notify, .init = s_setup, .fini = s_teardown);

/*  The next datagram, NUL-terminated, into buf. */
static const char *
s_receive (char *buf, size_t size)
{
    ssize_t len = recv (s_fd, buf, size - 1, 0);
    cr_assert_geq (len, 0, "no message on NOTIFY_SOCKET");
    buf[len] = '\0';
    return buf;
}

Test (notify, ready_stopping)
{
    char buf[512];
    cr_assert_eq (notify_ready (), 0);
    cr_assert_str_eq (s_receive (buf, sizeof buf), "READY=1");
    cr_assert_eq (notify_stopping (), 0);
    cr_assert_str_eq (s_receive (buf, sizeof buf), "STOPPING=1");
}

Test (notify, reloading_carries_monotonic_time)
{
    char buf[512];
    cr_assert_eq (notify_reloading (), 0);
    s_receive (buf, sizeof buf);
    unsigned long long usec = 0;
    char tail = 0;
    cr_assert_eq (sscanf (buf, "RELOADING=1\nMONOTONIC_USEC=%llu%c", &usec, &tail), 1,
                  "got '%s'", buf);
    cr_assert_gt (usec, 0);
}

Test (notify, status_is_one_line)
{
    char buf[512];
    cr_assert_eq (notify_status ("serving %d channels\nREADY=1", 3), 0);
    cr_assert_str_eq (s_receive (buf, sizeof buf), "STATUS=serving 3 channels READY=1");
}

Test (notify, status_is_capped)
{
    char buf[1024];
    char long_text[600];
    memset (long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    cr_assert_eq (notify_status ("%s", long_text), 0);
    s_receive (buf, sizeof buf);
    cr_assert_eq (strncmp (buf, "STATUS=xxx", 10), 0);
    cr_assert_eq (strlen (buf), strlen ("STATUS=") + 255);
}

Test (notify, nothing_without_notify_socket)
{
    unsetenv ("NOTIFY_SOCKET");
    cr_assert_eq (notify_ready (), 0);
    cr_assert_eq (notify_stopping (), 0);
    cr_assert_eq (notify_status ("x"), 0);
    char buf[16];
    ssize_t len = recv (s_fd, buf, sizeof buf, MSG_DONTWAIT);
    cr_assert_lt (len, 0, "a message was sent without NOTIFY_SOCKET");
}

Test (notify, unreachable_socket_is_an_error_not_a_crash)
{
    char missing[128];
    snprintf (missing, sizeof missing, "%.60s/absent", s_dir);
    cr_assert_eq (setenv ("NOTIFY_SOCKET", missing, 1), 0);
    cr_assert_eq (notify_ready (), -1);
}
