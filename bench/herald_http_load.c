/*  herald_http_load: one HTTP producer for bench/bench_http.py, the HTTP
    twin of `herald_bench_load one`: a keep-alive connection with one
    POST /events outstanding.

        herald_http_load --port PORT [--id-base N]

    Connects, warms up, prints "ready", waits for "go END_MS" on stdin
    (CLOCK_MONOTONIC, ms), then publishes one order, reads the answer,
    publishes the next, until END_MS; prints "count ACKED REFUSED". A small
    client in C, so that the load measures the broker, not the client. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_WARMUP    20

static long long
s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  Sends one order and reads its answer: the HTTP status, or -1. */
static int
s_round_trip (int fd, unsigned long long order)
{
    char body[512], request[1024];
    int body_len = snprintf (body, sizeof body,
        "{\"specversion\":\"1.0\",\"id\":\"h-%llu\",\"source\":\"bench/http\",\"type\":\"order.confirmed\","
        "\"data\":{\"order_id\":%llu,\"customer\":{\"email\":\"c%llu@example.com\"},\"items\":[{\"sku\":\"A\",\"qty\":1}]}}",
        order, order, order);
    int len = snprintf (request, sizeof request, "POST /events HTTP/1.1\r\nHost: bench\r\n"
                        "Content-Type: application/cloudevents+json\r\nContent-Length: %d\r\n\r\n%s", body_len, body);
    for (int done = 0; done < len; ) {
        ssize_t n = write (fd, request + done, (size_t) (len - done));
        if (n <= 0)
            return -1;
        done += (int) n;
    }
    char buf[4096];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n = read (fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            return -1;
        got += (size_t) n;
        buf[got] = '\0';
        end = strstr (buf, "\r\n\r\n");
        if (!end && got >= sizeof buf - 1)
            return -1;
    }
    const char *cl = strcasestr (buf, "\r\nContent-Length:");
    size_t want = (size_t) (end + 4 - buf) + (cl? strtoul (cl + 17, NULL, 10): 0);
    while (got < want) {
        ssize_t n = read (fd, buf, sizeof buf < want - got? sizeof buf: want - got);
        if (n <= 0)
            return -1;
        got += (size_t) n;
    }
    return (int) strtol (buf + 9, NULL, 10);
}

int
main (int argc, char **argv)
{
    int port = 0;
    unsigned long long order = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp (argv[i], "--port") == 0)
            port = (int) strtol (argv[i + 1], NULL, 10);
        else
        if (strcmp (argv[i], "--id-base") == 0)
            order = strtoull (argv[i + 1], NULL, 10);
    }
    if (port <= 0 || port > 65535) {
        fprintf (stderr, "usage: herald_http_load --port PORT [--id-base N]\n");
        return 64;
    }
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0) {
        perror ("herald_http_load: connect");
        return 69;
    }
    for (int i = 0; i < S_WARMUP; i++)
        if (s_round_trip (fd, ++order) < 0) {
            fprintf (stderr, "herald_http_load: warm-up failed\n");
            return 69;
        }
    printf ("ready\n");
    fflush (stdout);
    long long end_ms;
    if (scanf ("go %lld", &end_ms) != 1)
        return 64;
    long long acked = 0, refused = 0;
    while (s_mono_ms () < end_ms) {
        int status = s_round_trip (fd, ++order);
        if (status < 0) {
            fprintf (stderr, "herald_http_load: connection lost: %s\n", strerror (errno));
            break;
        }
        if (s_mono_ms () > end_ms)
            break;
        if (status == 200 || status == 201)
            acked++;
        else
            refused++;
    }
    printf ("count %lld %lld\n", acked, refused);
    close (fd);
    return 0;
}
