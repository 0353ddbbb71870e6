/*  test_peers_proc: herald_bench_peers's ports and child processes
    (bench/peers_proc.c). */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peers_proc.h"

static int
s_ephemeral_low (void)
{
    int low = 32768;
    FILE *f = fopen ("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf (f, "%d", &low) != 1)
            low = 32768;
        fclose (f);
    }
    return low;
}

static bool
s_bindable (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    bool ok = fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
    if (fd >= 0)
        close (fd);
    return ok;
}

/*  A port in the ephemeral range can be taken by any outgoing connection
    between the bench choosing it and its server binding it (a CI run saw
    "herald-broker exited at start" with tests connecting beside it). */
Test (peers_proc, free_ports_are_distinct_free_and_below_the_ephemeral_range)
{
    int low = s_ephemeral_low ();
    int ports[100];
    for (int i = 0; i < 100; i++) {
        ports[i] = peers_free_port ();
        cr_assert_gt (ports[i], 0, "a port is found");
        cr_expect_lt (ports[i], low, "port %d lies below the ephemeral range (from %d)", ports[i], low);
        cr_expect (s_bindable (ports[i]), "port %d can be bound", ports[i]);
        for (int j = 0; j < i; j++)
            cr_assert_neq (ports[i], ports[j], "port %d given twice", ports[i]);
    }
}

Test (peers_proc, a_log_tail_gives_the_last_lines)
{
    char dir[] = "/tmp/test-peers-proc-XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    char log[128];
    snprintf (log, sizeof log, "%s/child.log", dir);
    char *argv[] = { "/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo line $i; done; exit 3", NULL };
    peers_proc_t *proc = peers_proc_start ("child", argv, log, false);
    cr_assert_not_null (proc);
    peers_proc_wait (proc, 5000);
    cr_assert_not (peers_proc_running (proc), "the child ended");
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    peers_proc_print_log_tail (proc, out, 5);
    fclose (out);
    cr_expect_str_eq (text, "    line 4\n    line 5\n    line 6\n    line 7\n    line 8\n");
    free (text);
    out = open_memstream (&text, &size);
    peers_proc_print_log_tail (proc, out, 20);
    fclose (out);
    cr_expect_str_eq (text, "    line 1\n    line 2\n    line 3\n    line 4\n    line 5\n    line 6\n"
                            "    line 7\n    line 8\n", "fewer lines than asked: all of them");
    free (text);
    peers_proc_stop (&proc, 100);
    unlink (log);
    rmdir (dir);
}
