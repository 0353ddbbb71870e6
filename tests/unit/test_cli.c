/*  test_cli.c: the `herald` command, run as a process (HERALD_BIN_DIR/herald):
    help, version, usage errors, check-config, and publish / status / dead
    against a fake broker (a ROUTER on ipc:// served by a thread). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "herald.h"
#include "herald_clock.h"
#include "herald_proto.h"
#include "herald_wire.h"

#define S_HERALD HERALD_BIN_DIR "/herald"

typedef struct {
    int status;             /* exit code, or 128 + signal */
    char out[65536];
    char err[65536];
} run_t;

static char s_dir[64];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-test-cli-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    char command[128];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    cr_expect_eq (system (command), 0);
}

static void
s_slurp (const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    size_t n = fread (buf, 1, size - 1, file);
    buf[n] = '\0';
    fclose (file);
}

//  Runs herald with args (NULL-terminated), stdin from input (or /dev/null),
//  in directory cwd (or the current one). Fills run and returns it.
static run_t *
s_run (const char *input, const char *cwd, ...)
{
    const char *args[32];
    int count = 0;
    args[count++] = "herald";
    va_list list;
    va_start (list, cwd);
    const char *arg;
    while ((arg = va_arg (list, const char *)) && count < 31)
        args[count++] = arg;
    va_end (list);
    args[count] = NULL;

    char out_path[128];
    char err_path[128];
    snprintf (out_path, sizeof out_path, "%s/stdout", s_dir);
    snprintf (err_path, sizeof err_path, "%s/stderr", s_dir);
    fflush (NULL);
    pid_t pid = fork ();
    cr_assert (pid >= 0);
    if (pid == 0) {
        int in = open (input? input: "/dev/null", O_RDONLY);
        int out = open (out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open (err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || (cwd && chdir (cwd) != 0))
            _exit (127);
        dup2 (in, 0);
        dup2 (out, 1);
        dup2 (err, 2);
        execv (S_HERALD, (char **) args);
        _exit (127);
    }
    int status;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    run_t *run = calloc (1, sizeof *run);
    run->status = WIFEXITED (status)? WEXITSTATUS (status): 128 + WTERMSIG (status);
    s_slurp (out_path, run->out, sizeof run->out);
    s_slurp (err_path, run->err, sizeof run->err);
    return run;
}

static void
s_write (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fputs (text, file);
    fclose (file);
}

#define EXPECT_RUN(run, code, stream, text) do { \
    cr_expect_eq ((run)->status, (code), "exit %d, stderr: %s", (run)->status, (run)->err); \
    cr_expect_not_null (strstr ((run)->stream, (text)), #stream " lacks \"%s\": %s", (text), (run)->stream); \
} while (0)

TestSuite (cli, .init = s_setup, .fini = s_teardown);

Test (cli, help_and_version)
{
    run_t *run = s_run (NULL, NULL, "--help", NULL);
    EXPECT_RUN (run, 0, out, "Exit status");
    free (run);
    run = s_run (NULL, NULL, "--version", NULL);
    EXPECT_RUN (run, 0, out, "herald " HERALD_VERSION "\n");
    free (run);
    const char *commands[] = { "publish", "status", "dead", "track", "check-config", "up" };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        run = s_run (NULL, NULL, commands[i], "--help", NULL);
        EXPECT_RUN (run, 0, out, "Usage: herald ");
        cr_expect_not_null (strstr (run->out, "xit status"), "%s --help documents exit codes", commands[i]);
        free (run);
        run = s_run (NULL, NULL, commands[i], "--version", NULL);
        EXPECT_RUN (run, 0, out, HERALD_VERSION);
        free (run);
    }
    run = s_run (NULL, NULL, "dead", "list", "--help", NULL);
    EXPECT_RUN (run, 0, out, "herald dead list");
    free (run);
}

Test (cli, usage_errors_exit_64)
{
    run_t *run = s_run (NULL, NULL, NULL);
    cr_expect_eq (run->status, 64);
    free (run);
    run = s_run (NULL, NULL, "frobnicate", NULL);
    EXPECT_RUN (run, 64, err, "unknown command 'frobnicate'");
    free (run);
    run = s_run (NULL, NULL, "publish", "--type", "t", NULL);
    EXPECT_RUN (run, 64, err, "--data JSON, --file F or -");
    free (run);
    run = s_run (NULL, NULL, "publish", "--data", "{}", "--file", "x", NULL);
    EXPECT_RUN (run, 64, err, "only one of");
    free (run);
    run = s_run (NULL, NULL, "publish", "--window", "0", "--data", "{}", NULL);
    EXPECT_RUN (run, 64, err, "--window");
    free (run);
    run = s_run (NULL, NULL, "publish", "--timeout", "soon", "--data", "{}", NULL);
    EXPECT_RUN (run, 64, err, "--timeout");
    free (run);
    run = s_run (NULL, NULL, "publish", "--bogus", NULL);
    EXPECT_RUN (run, 64, err, "unknown option '--bogus'");
    free (run);
    run = s_run (NULL, NULL, "status", "extra", NULL);
    EXPECT_RUN (run, 64, err, "unexpected argument 'extra'");
    free (run);
    run = s_run (NULL, NULL, "track", NULL);
    EXPECT_RUN (run, 64, err, "missing the id");
    free (run);
    run = s_run (NULL, NULL, "dead", NULL);
    EXPECT_RUN (run, 64, err, "missing the subcommand");
    free (run);
    run = s_run (NULL, NULL, "dead", "purge", "--endpoint", "ipc:///nowhere", NULL);
    EXPECT_RUN (run, 64, err, "exactly one of TASK_ID, --channel C and --all");
    free (run);
    run = s_run (NULL, NULL, "dead", "list", "--all", NULL);
    EXPECT_RUN (run, 64, err, "--all does not apply");
    free (run);
}

Test (cli, check_config)
{
    char path[128];
    snprintf (path, sizeof path, "%s/broken.yaml", s_dir);
    s_write (path,
             "events:\n"
             "  order.confirmed: { fanout: [email] }\n"
             "channels:\n"
             "  email: { driver: file, dir: /tmp/x }\n"
             "broker:\n"
             "  batch_max: lots\n");
    run_t *run = s_run (NULL, NULL, "check-config", "-c", path, NULL);
    char expected[160];
    snprintf (expected, sizeof expected, "%s:6: broker.batch_max", path);
    EXPECT_RUN (run, 78, err, expected);
    free (run);

    run = s_run (NULL, NULL, "check-config", "-c", "/nonexistent/herald.yaml", NULL);
    EXPECT_RUN (run, 78, err, "/nonexistent/herald.yaml");
    free (run);

    //  publish and status read their endpoints from the same file
    run = s_run (NULL, NULL, "status", "-c", path, NULL);
    EXPECT_RUN (run, 78, err, expected);
    free (run);

    run = s_run (NULL, HERALD_SOURCE_DIR, "check-config", "-c", "etc/herald.yaml", NULL);
    EXPECT_RUN (run, 0, out, "order.confirmed");
    free (run);
}

//  ---------------------------------------------------------------------
//  Fake broker: ACKs publishes as "ev-CORR", except events holding "reject"
//  (NACK 422), "busy" (NACK 503) or "silent" (no answer). Admin: status,
//  and 404 for everything else.

typedef struct {
    void *ctx;
    void *router;
    void *pipe;
    void *server_pipe;
    pthread_t thread;
    char endpoint[128];
} fake_broker_t;

static bool
s_contains (hp_str_t s, const char *needle)
{
    return s.ptr && memmem (s.ptr, s.len, needle, strlen (needle)) != NULL;
}

static void
s_answer (fake_broker_t *self, hp_str_t identity, const hp_msg_t *msg)
{
    hp_msg_t out;
    memset (&out, 0, sizeof out);
    out.corr = msg->corr;
    char event_id[HP_MAX_ID];
    char corr[HP_MAX_CORR + 1];
    hp_str_copy (msg->corr, corr, sizeof corr);
    snprintf (event_id, sizeof event_id, "ev-%s", corr);
    if (msg->command == HP_ADMIN) {
        out.command = HP_ADMIN_REPLY;
        if (hp_str_eq (msg->verb, "status")) {
            out.code = 200;
            out.body = hp_str (
                "{\"broker\":{\"version\":\"0.1.0\",\"uptime_ms\":3723000,\"events\":1042,"
                "\"store\":\"var/herald.db\"},\"channels\":[{\"name\":\"email\",\"driver\":\"file\","
                "\"pending\":1,\"in_flight\":2,\"retrying\":3,\"done\":1000,\"dead\":4,\"workers\":2}]}");
        }
        else {
            out.code = 404;
            out.body = hp_str ("{\"error\":\"not found\"}");
        }
    }
    else
    if (s_contains (msg->body, "silent"))
        return;
    else
    if (s_contains (msg->body, "reject")) {
        out.command = HP_NACK;
        out.code = 422;
        out.text = hp_str ("data.bad: not allowed");
    }
    else
    if (s_contains (msg->body, "busy")) {
        out.command = HP_NACK;
        out.code = 503;
        out.text = hp_str ("busy: try later");
    }
    else {
        out.command = HP_ACK;
        out.event_id = hp_str (event_id);
        out.duplicate = s_contains (msg->body, "again");
        out.durability = hp_str ("fsync");
    }
    hw_send (self->router, identity, &out, 0);
}

static void *
s_fake_broker_run (void *arg)
{
    fake_broker_t *self = arg;
    for (;;) {
        zmq_pollitem_t items[] = {
            { self->router, 0, ZMQ_POLLIN, 0 },
            { self->server_pipe, 0, ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 2, -1) < 0 || (items[1].revents & ZMQ_POLLIN))
            break;
        hw_msg_t in;
        hp_msg_t msg;
        hp_error_t err;
        if (hw_recv (self->router, true, &in, 0) == 0 && hw_decode (&in, &msg, &err) == 0)
            s_answer (self, in.identity, &msg);
        hw_msg_close (&in);
    }
    return NULL;
}

static fake_broker_t *
s_fake_broker_new (void)
{
    fake_broker_t *self = calloc (1, sizeof *self);
    snprintf (self->endpoint, sizeof self->endpoint, "ipc://%s/p.sock", s_dir);
    self->ctx = zmq_ctx_new ();
    char err[256];
    self->router = hw_socket_new (self->ctx, HW_PRODUCER_ROUTER, self->endpoint, NULL, err, sizeof err);
    cr_assert_not_null (self->router, "%s", err);
    self->pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    self->server_pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    cr_assert_eq (zmq_bind (self->server_pipe, "inproc://stop"), 0);
    cr_assert_eq (zmq_connect (self->pipe, "inproc://stop"), 0);
    cr_assert_eq (pthread_create (&self->thread, NULL, s_fake_broker_run, self), 0);
    return self;
}

static void
s_fake_broker_destroy (fake_broker_t **self_p)
{
    fake_broker_t *self = *self_p;
    zmq_send (self->pipe, "stop", 4, 0);
    pthread_join (self->thread, NULL);
    int linger = 0;
    zmq_setsockopt (self->pipe, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->server_pipe, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (self->router);
    zmq_close (self->pipe);
    zmq_close (self->server_pipe);
    zmq_ctx_term (self->ctx);
    free (self);
    *self_p = NULL;
}

Test (cli, publish_one_event)
{
    fake_broker_t *broker = s_fake_broker_new ();
    const char *ep = broker->endpoint;
    run_t *run = s_run (NULL, NULL, "publish", "-e", ep, "--type", "order.confirmed",
                        "--data", "{\"order_id\":\"1\"}", NULL);
    cr_expect_eq (run->status, 0, "%s", run->err);
    cr_expect_str_eq (run->out, "ev-1\n");
    free (run);

    run = s_run (NULL, NULL, "publish", "-e", ep, "--type", "t", "--json",
                 "--data", "{\"order_id\":\"again\"}", NULL);
    cr_expect_eq (run->status, 0, "%s", run->err);
    cr_expect_str_eq (run->out, "{\"event_id\":\"ev-1\",\"duplicate\":true,\"durability\":\"fsync\"}\n");
    cr_expect_not_null (strstr (run->err, "duplicate"), "%s", run->err);
    free (run);

    run = s_run (NULL, NULL, "publish", "-e", ep, "--type", "t", "--data", "{\"reject\":1}", NULL);
    EXPECT_RUN (run, 65, err, "NACK 422 invalid-event: data.bad: not allowed");
    free (run);

    run = s_run (NULL, NULL, "publish", "-e", ep, "--type", "t", "--data", "{\"busy\":1}", NULL);
    EXPECT_RUN (run, 75, err, "NACK 503");
    free (run);

    run = s_run (NULL, NULL, "publish", "-e", ep, "--type", "t", "--timeout", "200",
                 "--data", "{\"silent\":1}", NULL);
    EXPECT_RUN (run, 75, err, "no answer within 200 ms");
    free (run);

    run = s_run (NULL, NULL, "publish", "-e", ep, "--type", "t", "--data", "{\"a\": }", NULL);
    EXPECT_RUN (run, 65, err, "invalid JSON at line 1 column");
    free (run);

    run = s_run (NULL, NULL, "publish", "-e", ep, "--type", "t", "--data", "[1]", NULL);
    EXPECT_RUN (run, 65, err, "JSON object");
    free (run);
    s_fake_broker_destroy (&broker);

    char nowhere[128];
    snprintf (nowhere, sizeof nowhere, "ipc://%s/nobody.sock", s_dir);
    run = s_run (NULL, NULL, "publish", "-e", nowhere, "--type", "t", "--timeout", "200",
                 "--data", "{}", NULL);
    EXPECT_RUN (run, 69, err, "not reachable within 200 ms");
    free (run);
}

Test (cli, publish_lines)
{
    fake_broker_t *broker = s_fake_broker_new ();
    char path[128];
    snprintf (path, sizeof path, "%s/orders.jsonl", s_dir);
    s_write (path,
             "{\"order_id\":\"1\"}\n"
             "\n"
             "{\"order_id\": oops}\n"
             "{\"order_id\":\"2\",\"reject\":true}\n"
             "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\",\"data\":{\"order_id\":\"3\"}}\n"
             "{\"order_id\":\"4\"}");
    run_t *run = s_run (NULL, NULL, "publish", "-e", broker->endpoint, "--type", "t",
                        "--window", "2", "--file", path, NULL);
    cr_expect_eq (run->status, 65, "%s", run->err);
    cr_expect_str_eq (run->out, "ev-1\nev-3\nev-4\n", "acked ids in input order");
    cr_expect_not_null (strstr (run->err, "line 3: invalid JSON at column 17: invalid token near 'oops'"), "%s", run->err);
    cr_expect_not_null (strstr (run->err, "line 4: NACK 422 invalid-event: data.bad: not allowed"),
                        "%s", run->err);
    cr_expect_not_null (strstr (run->err,
        "published 5 events: 3 acked (0 duplicates), 1 nacked, 0 timed out, 1 invalid"), "%s", run->err);
    free (run);

    //  all good, from stdin, --quiet: exit 0 and no ids
    s_write (path, "{\"order_id\":\"1\"}\n{\"order_id\":\"again\"}\n");
    run = s_run (path, NULL, "publish", "-e", broker->endpoint, "--type", "t", "-q", "-", NULL);
    cr_expect_eq (run->status, 0, "%s", run->err);
    cr_expect_str_eq (run->out, "");
    cr_expect_not_null (strstr (run->err, "published 2 events: 2 acked (1 duplicate), 0 nacked"),
                        "%s", run->err);
    free (run);

    //  timeouts and busy: temporary failure
    s_write (path, "{\"order_id\":\"1\"}\n{\"silent\":1}\n{\"busy\":1}\n{\"order_id\":\"2\"}\n");
    run = s_run (NULL, NULL, "publish", "-e", broker->endpoint, "--type", "t", "--timeout", "300",
                 "--json", "--file", path, NULL);
    cr_expect_eq (run->status, 75, "%s", run->err);
    cr_expect_str_eq (run->out,
        "{\"line\":1,\"event_id\":\"ev-1\",\"duplicate\":false,\"durability\":\"fsync\"}\n"
        "{\"line\":4,\"event_id\":\"ev-4\",\"duplicate\":false,\"durability\":\"fsync\"}\n");
    cr_expect_not_null (strstr (run->err, "line 2: no answer within 300 ms"), "%s", run->err);
    cr_expect_not_null (strstr (run->err, "2 acked (0 duplicates), 1 nacked, 1 timed out"), "%s", run->err);
    free (run);
    s_fake_broker_destroy (&broker);

    //  nothing there: the broker was never reachable
    char nowhere[128];
    snprintf (nowhere, sizeof nowhere, "ipc://%s/nobody.sock", s_dir);
    run = s_run (NULL, NULL, "publish", "-e", nowhere, "--type", "t", "--timeout", "200",
                 "--file", path, NULL);
    EXPECT_RUN (run, 69, err, "not reachable within 200 ms");
    free (run);
}

Test (cli, admin_commands)
{
    fake_broker_t *broker = s_fake_broker_new ();
    const char *ep = broker->endpoint;
    run_t *run = s_run (NULL, NULL, "status", "-e", ep, NULL);
    EXPECT_RUN (run, 0, out, "CHANNEL");
    cr_expect_not_null (strstr (run->out, "RETRYING"), "%s", run->out);
    cr_expect_not_null (strstr (run->out, "1000"), "%s", run->out);
    cr_expect_not_null (strstr (run->out, "up 1h 2m 3s, 1042 events"), "%s", run->out);
    free (run);

    run = s_run (NULL, NULL, "status", "-e", ep, "--json", NULL);
    EXPECT_RUN (run, 0, out, "\"uptime_ms\":3723000");
    free (run);

    run = s_run (NULL, NULL, "dead", "show", "T-1", "-e", ep, NULL);
    EXPECT_RUN (run, 65, err, "no dead task T-1");
    free (run);

    //  options may come before the subcommand word
    run = s_run (NULL, NULL, "dead", "-e", ep, "--timeout", "2000", "show", "T-2", NULL);
    EXPECT_RUN (run, 65, err, "no dead task T-2");
    free (run);

    run = s_run (NULL, NULL, "track", "E-1", "-e", ep, NULL);
    EXPECT_RUN (run, 65, err, "no event E-1");
    free (run);
    s_fake_broker_destroy (&broker);

    char nowhere[128];
    snprintf (nowhere, sizeof nowhere, "ipc://%s/nobody.sock", s_dir);
    run = s_run (NULL, NULL, "status", "-e", nowhere, "--timeout", "200", NULL);
    char expected[200];
    snprintf (expected, sizeof expected, "broker at %s: no answer within 200 ms", nowhere);
    EXPECT_RUN (run, 69, err, expected);
    free (run);
}

Test (cli, up_reports_a_broker_that_cannot_start)
{
    char config[128];
    snprintf (config, sizeof config, "%s/herald.yaml", s_dir);
    char ipc[128];
    snprintf (ipc, sizeof ipc, "ipc://%s/admin.sock", s_dir);
    char text[1024];
    snprintf (text, sizeof text,
              "broker:\n"
              "  listen: { admin: \"%s\" }\n"
              "  store: %s/herald.db\n"
              "events:\n"
              "  order.confirmed: { fanout: [email] }\n"
              "channels:\n"
              "  email: { driver: file, dir: %s/out }\n"
              "workers: { email: 1 }\n", ipc, s_dir, s_dir);
    s_write (config, text);

    //  No binaries where it looks: 69
    run_t *run = s_run (NULL, NULL, "up", "-c", config, "--bin-dir", s_dir, NULL);
    EXPECT_RUN (run, 69, err, "herald-broker");
    free (run);

    //  A broker that exits at once with 78 (configuration): up says so and exits 78
    char path[160];
    snprintf (path, sizeof path, "%s/herald-broker", s_dir);
    s_write (path, "#!/bin/sh\necho 'fake broker: bad config' >&2\nexit 78\n");
    chmod (path, 0755);
    snprintf (path, sizeof path, "%s/herald-worker", s_dir);
    s_write (path, "#!/bin/sh\nexit 0\n");
    chmod (path, 0755);
    run = s_run (NULL, NULL, "up", "-c", config, "--bin-dir", s_dir, NULL);
    EXPECT_RUN (run, 78, err, "broker exited with status 78 during start-up: fake broker: bad config");
    cr_expect_not_null (strstr (run->err, "fake broker: bad config\n"), "the child's stderr is relayed");
    cr_expect_not_null (strstr (run->err, "msg=started child=broker"), "%s", run->err);
    cr_expect_null (strstr (run->err, "restart scheduled"), "%s", run->err);
    free (run);

    //  A broker killed by a signal: 69
    snprintf (path, sizeof path, "%s/herald-broker", s_dir);
    s_write (path, "#!/bin/sh\nkill -9 $$\n");
    run = s_run (NULL, NULL, "up", "-c", config, "--bin-dir", s_dir, NULL);
    EXPECT_RUN (run, 69, err, "killed by signal 9");
    free (run);
}

//  ---------------------------------------------------------------------
//  herald up with the real broker and workers: start, restart, stop.

typedef struct {
    pid_t pid;
    int fd;                 /* the child's stderr */
    char buf[1 << 20];
    size_t len;
    size_t seen;            /* s_expect searches from here */
} watched_t;

//  Reads the child's stderr until needle appears after what was already
//  matched, or timeout_ms passes (poll on the pipe: no sleeps). Returns
//  the start of the line holding it, or NULL.
static const char *
s_expect (watched_t *self, const char *needle, int timeout_ms)
{
    int64_t deadline = herald_clock_mono_ms () + timeout_ms;
    for (;;) {
        self->buf[self->len] = '\0';
        char *hit = strstr (self->buf + self->seen, needle);
        if (hit) {
            char *eol = strchr (hit, '\n');
            if (eol) {
                self->seen = (size_t) (eol + 1 - self->buf);
                while (hit > self->buf && hit[-1] != '\n')
                    hit--;
                return hit;
            }
        }
        int64_t left = deadline - herald_clock_mono_ms ();
        if (left <= 0 || self->len + 1 >= sizeof self->buf)
            return NULL;
        struct pollfd item = { .fd = self->fd, .events = POLLIN };
        if (poll (&item, 1, (int) left) <= 0)
            continue;
        ssize_t n = read (self->fd, self->buf + self->len, sizeof self->buf - 1 - self->len);
        if (n <= 0)
            return NULL;
        self->len += (size_t) n;
    }
}

static pid_t
s_pid_in (const char *line)
{
    const char *at = line? strstr (line, "child_pid="): NULL;
    return at? (pid_t) strtol (at + 10, NULL, 10): 0;
}

Test (cli, up_starts_restarts_and_stops_the_real_processes, .timeout = 60)
{
    if (access (HERALD_BIN_DIR "/herald-broker", X_OK) || access (HERALD_BIN_DIR "/herald-worker", X_OK))
        cr_skip_test ("herald-broker / herald-worker not built");
    char config[128];
    snprintf (config, sizeof config, "%s/herald.yaml", s_dir);
    char text[2048];
    snprintf (text, sizeof text,
              "broker:\n"
              "  listen: { producers: \"ipc://%s/p.sock\", workers: \"ipc://%s/w.sock\",\n"
              "            admin: \"ipc://%s/a.sock\" }\n"
              "  store: %s/herald.db\n"
              "  shutdown_timeout: 5s\n"
              "events:\n"
              "  order.confirmed: { key: order_id, required: [order_id], fanout: [inventory, courier] }\n"
              "channels:\n"
              "  inventory: { driver: file, dir: %s/inventory }\n"
              "  courier: { driver: file, dir: %s/courier }\n"
              "workers: { inventory: 2, courier: 1 }\n",
              s_dir, s_dir, s_dir, s_dir, s_dir, s_dir);
    s_write (config, text);

    static watched_t up;
    memset (&up, 0, sizeof up);
    int fds[2];
    cr_assert_eq (pipe (fds), 0);
    fflush (NULL);
    up.pid = fork ();
    cr_assert (up.pid >= 0);
    if (up.pid == 0) {
        int null = open ("/dev/null", O_RDWR);
        dup2 (null, 0);
        dup2 (null, 1);
        dup2 (fds[1], 2);
        close (fds[0]);
        execl (S_HERALD, "herald", "up", "-c", config, (char *) NULL);
        _exit (127);
    }
    close (fds[1]);
    up.fd = fds[0];

    cr_assert_not_null (s_expect (&up, "proc=up", 10000), "%s", up.buf);
    cr_assert_not_null (s_expect (&up, "msg=\"broker ready\"", 15000), "%s", up.buf);
    pid_t inventory = s_pid_in (s_expect (&up, "msg=started child=worker channel=inventory", 5000));
    cr_assert_not_null (s_expect (&up, "msg=started child=worker channel=inventory", 5000), "%s", up.buf);
    pid_t courier = s_pid_in (s_expect (&up, "msg=started child=worker channel=courier", 5000));
    cr_assert (inventory > 0 && courier > 0, "%s", up.buf);

    //  The broker answers producers
    char endpoint[128];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/p.sock", s_dir);
    herald_client_t *client = herald_client_new (endpoint);
    char err[256];
    char *event = herald_event_build ("order.confirmed", NULL, "{\"order_id\":\"42\"}", err, sizeof err);
    herald_reply_t reply;
    cr_expect_eq (herald_publish (client, event, 5000, &reply), HERALD_OK, "%s", reply.reason);
    free (event);
    herald_client_destroy (&client);

    //  A worker killed is restarted after the first backoff (1 s)
    cr_assert_eq (kill (courier, SIGKILL), 0);
    char exited[128];
    snprintf (exited, sizeof exited, "msg=exited child=worker channel=courier child_pid=%d signal=SIGKILL",
              (int) courier);
    cr_expect_not_null (s_expect (&up, exited, 5000), "%s", up.buf + up.seen);
    cr_expect_not_null (s_expect (&up, "msg=\"restart scheduled\" child=worker channel=courier in_ms=1000", 1000),
                        "%s", up.buf + up.seen);
    pid_t restarted = s_pid_in (s_expect (&up, "msg=started child=worker channel=courier", 5000));
    cr_expect (restarted > 0 && restarted != courier, "%s", up.buf + up.seen);

    //  SIGTERM: everything stops, up exits 0
    cr_assert_eq (kill (up.pid, SIGTERM), 0);
    cr_expect_not_null (s_expect (&up, "proc=up", 1000));
    cr_expect_not_null (s_expect (&up, "msg=stopped", 20000), "%s", up.buf + up.seen);
    int status;
    cr_assert_eq (waitpid (up.pid, &status, 0), up.pid);
    cr_expect (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
    cr_expect_eq (kill (inventory, 0), -1, "worker %d still running", (int) inventory);
    cr_expect_eq (kill (restarted, 0), -1, "worker %d still running", (int) restarted);
    close (up.fd);
}
