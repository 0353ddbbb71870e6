/*  cli_up.c: `herald up`: a small supervisor. Checks the configuration as
    `herald check-config` does, takes the stack's lock (one stack per store),
    starts herald-broker, waits until its admin endpoint answers, starts the
    workers the config asks for, restarts any child that dies and stops them
    all on SIGINT/SIGTERM: workers first, then the broker. Children's stderr
    comes through pipes and goes out line by line on ours, so their last
    error can be repeated when it stops the stack. One poll loop on a
    signalfd and those pipes; deadlines, never sleeps.

    Restart policy: a child that was healthy (the broker answered its admin
    endpoint; a worker ran S_WORKER_STABLE_MS) is restarted after
    S_BACKOFF_MIN_MS; one that dies before that waits twice as long each
    time, up to S_BACKOFF_MAX_MS, so a crash loop does not spin while a
    broker killed a few times in a minute is back within about a second each
    time. A child that exits 78 (configuration error) stops the stack.

    Reload (SIGHUP): the file is read and checked again; if it passes,
    SIGHUP goes to the broker (and herald up waits until the broker has
    applied it), then to every worker, and the number of workers per
    channel follows `workers:` (new ones started, extra ones stopped with
    SIGTERM and not restarted). A file that fails changes nothing and is
    forwarded to no one. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cli_relay.h"
#include "herald_clock.h"
#include "herald_config_reload.h"
#include "herald_keys.h"
#include "herald_lockfile.h"
#include "herald_log.h"

#define S_CMD                   "up"
#define S_READY_TIMEOUT_MS      10000   /* broker must answer `status` by then, at start */
#define S_READY_PROBE_MS        250     /* one status probe waits this long */
#define S_PROBE_INTERVAL_MS     100     /* between two probes of a broker not ready */
#define S_BACKOFF_MIN_MS        1000
#define S_BACKOFF_MAX_MS        30000
#define S_WORKER_STABLE_MS      10000   /* a worker up this long was healthy */
#define S_KILL_WAIT_MS          5000    /* after SIGKILL, reaping is near certain */

extern char **environ;

typedef enum {
    S_BROKER,
    S_WORKER
} s_kind_t;

typedef struct {
    s_kind_t kind;
    int channel;                /* worker: index into config->channels */
    pid_t pid;                  /* 0 when not running */
    int64_t started;            /* monotonic ms of the last start */
    int64_t restart_at;         /* monotonic ms of the next start, 0 = none */
    int64_t backoff_ms;         /* delay before the next restart */
    int last_status;            /* waitpid status of the last exit */
    bool ready;                 /* broker: answered on its admin endpoint since its start */
    bool retired;               /* worker: stopped by a reload, not restarted; its slot is reused once it exited */
    cli_relay_t *relay;         /* its stderr, NULL when not running */
    char last_error[1024];      /* what it said last before its last exit */
} s_child_t;

typedef struct {
    const char *config_path;
    herald_config_t *config;
    char broker_bin[PATH_MAX];
    char worker_bin[PATH_MAX];
    s_child_t *children;        /* [0] is the broker; a reload may add slots (never hold a pointer across one) */
    size_t count;
    int signal_fd;
    sigset_t old_mask;          /* restored in children */
    const char *log_format;     /* --log-format, passed on to the children; NULL if not given */
    herald_lockfile_t *lock;    /* STORE.up.lock: one stack per store */
    herald_client_t *admin;     /* probes the broker's admin endpoint */
    int64_t next_probe;         /* monotonic ms of the next probe of a broker not ready */
    bool starting;              /* waiting for the broker: an exit is fatal, not restarted */
    bool stopping;              /* SIGINT/SIGTERM seen (or a fatal exit): no more restarts */
    bool hurry;                 /* a second stop signal: kill now */
    bool hangup;                /* SIGHUP seen: reload at the next turn of the run loop */
    int fatal;                  /* exit code imposed by a child's exit (78), 0 = none */
    char admin_key[HERALD_PATH_MAX];    /* CURVE: the key of the start-up probe */
    char worker_keys[HERALD_MAX_CHANNELS][HERALD_PATH_MAX]; /* CURVE: --key for each channel's workers */
    char fatal_message[1536];
} s_up_t;

static void
s_help (FILE *out)
{
    fprintf (out,
        "Usage: herald up [-c FILE] [--bin-dir DIR] [--log-format F]\n"
        "\n"
        "Runs Herald: checks FILE as `herald check-config` does, starts herald-broker\n"
        "-c FILE, waits until it answers on its admin endpoint (up to 10 s), then starts\n"
        "`workers:` processes per channel (herald-worker -c FILE --channel NAME).\n"
        "\n"
        "Restarts: a child that dies is restarted after 1 s if it was healthy (the\n"
        "broker had answered on its admin endpoint; a worker had run 10 s); one that\n"
        "dies before that waits twice as long each time, up to 30 s. So a broker\n"
        "killed several times in a minute is back within about a second each time,\n"
        "while one that cannot start does not spin. A child that exits with 78\n"
        "(configuration error) stops the whole stack: herald up exits 78 and repeats\n"
        "the child's message (restarting would fail the same way for ever).\n"
        "\n"
        "Signals: SIGINT/SIGTERM stops the workers, then the broker, each given\n"
        "broker.shutdown_timeout before SIGKILL; a second signal kills at once.\n"
        "SIGHUP reloads the stack without stopping it: FILE is read and checked again;\n"
        "if it passes, SIGHUP goes to the broker (herald up waits until it has\n"
        "reloaded), then to each worker, and the workers per channel follow `workers:`\n"
        "(new ones started, extra ones stopped with SIGTERM, gracefully). A file that\n"
        "fails is logged and changes nothing: nothing is forwarded.\n"
        "\n"
        "One stack per store: herald up holds a lock on STORE.up.lock (beside\n"
        "broker.store, holding its pid) and refuses to start while another herald up\n"
        "holds it; the broker itself holds STORE.lock.\n"
        "\n"
        "With security.broker_key (CURVE), each worker gets --key with the .secret beside\n"
        "the first key its channel lists in security.workers, and the start-up probe uses\n"
        "the .secret beside the first admin_read (else admin_operate) key; a missing or\n"
        "unreadable one, or one group or others may read, is a configuration error (78).\n"
        "\n"
        "Logs go to stderr, the children's relayed line by line with ours.\n"
        "\n"
        "  -c, --config FILE    configuration (default $HERALD_CONFIG, else etc/herald.yaml)\n"
        "  -b, --bin-dir DIR    where herald-broker and herald-worker are\n"
        "                       (default: the directory of this herald executable)\n"
        "      --log-format F   logfmt | json, for us and the children (default logfmt,\n"
        "                       or HERALD_LOG_FORMAT, which the children inherit)\n"
        "  -h, --help           this help\n"
        "  -V, --version        the version\n"
        "\n"
        "Exit status: 0 stopped by a signal; 64 usage; 69 broker or binaries unavailable\n"
        "(the broker exited or did not answer at start); 75 another herald up runs this\n"
        "store's stack, or another broker holds the store; 73 its lock file beside the\n"
        "store cannot be created (a missing or read-only directory); 78 configuration\n"
        "error (in FILE, or a child exited with 78).\n");
}

static const char *
s_child_name (const s_up_t *self, const s_child_t *child)
{
    return child->kind == S_BROKER? "broker": self->config->channels[child->channel].name;
}

//  Log fields naming a child: "child=broker" or "child=worker channel=email".
static const char *
s_child_fields (const s_up_t *self, const s_child_t *child, char *buf, size_t size)
{
    if (child->kind == S_BROKER)
        snprintf (buf, size, "child=broker");
    else
        snprintf (buf, size, "child=worker channel=%s", s_child_name (self, child));
    return buf;
}

//  Reads what the child wrote; at its exit, keeps its last error and
//  closes the pipe.
static void
s_drain (s_child_t *child, bool exited)
{
    if (!child->relay)
        return;
    cli_relay_read (child->relay);
    if (exited) {
        snprintf (child->last_error, sizeof child->last_error, "%s",
                  cli_relay_last_error (child->relay));
        cli_relay_destroy (&child->relay);
    }
}

static int
s_spawn (s_up_t *self, s_child_t *child)
{
    const char *path = child->kind == S_BROKER? self->broker_bin: self->worker_bin;
    char *argv[11];
    int argc = 0;
    argv[argc++] = (char *) (child->kind == S_BROKER? "herald-broker": "herald-worker");
    argv[argc++] = (char *) "-c";
    argv[argc++] = (char *) self->config_path;
    if (child->kind == S_WORKER) {
        argv[argc++] = (char *) "--channel";
        argv[argc++] = self->config->channels[child->channel].name;
        if (self->worker_keys[child->channel][0]) {
            argv[argc++] = (char *) "--key";
            argv[argc++] = self->worker_keys[child->channel];
        }
    }
    if (self->log_format) {
        argv[argc++] = (char *) "--log-format";
        argv[argc++] = (char *) self->log_format;
    }
    argv[argc] = NULL;

    char fields[128];
    s_child_fields (self, child, fields, sizeof fields);
    child->started = herald_clock_mono_ms ();
    child->restart_at = 0;
    child->ready = false;
    child->pid = 0;
    cli_relay_destroy (&child->relay);
    int pipe_fds[2];
    if (pipe2 (pipe_fds, O_CLOEXEC) != 0) {
        char quoted[256];
        herald_error ("cannot start", "%s error=%s", fields,
                      herald_log_quote (strerror (errno), quoted, sizeof quoted));
        return -1;
    }
    //  SIGHUP stays ignored in the children (see cli_up: our disposition is
    //  inherited) until they install their own handler: a child that cannot
    //  reload yet must not die of a reload request.
    posix_spawnattr_t attr;
    posix_spawnattr_init (&attr);
    sigset_t defaults;
    sigemptyset (&defaults);
    sigaddset (&defaults, SIGINT);
    sigaddset (&defaults, SIGTERM);
    sigaddset (&defaults, SIGCHLD);
    sigaddset (&defaults, SIGPIPE);
    posix_spawnattr_setsigmask (&attr, &self->old_mask);
    posix_spawnattr_setsigdefault (&attr, &defaults);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, pipe_fds[1], STDERR_FILENO);
    pid_t pid;
    int rc = posix_spawn (&pid, path, &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    posix_spawnattr_destroy (&attr);
    close (pipe_fds[1]);
    if (rc != 0) {
        close (pipe_fds[0]);
        char quoted[256];
        herald_error ("cannot start", "%s path=%s error=%s", fields, path,
                      herald_log_quote (strerror (rc), quoted, sizeof quoted));
        return -1;
    }
    child->pid = pid;
    child->relay = cli_relay_new (pipe_fds[0], STDERR_FILENO);
    herald_info ("started", "%s child_pid=%d", fields, (int) pid);
    return 0;
}

//  Plans the next start of a child that died (or failed to start).
static void
s_schedule_restart (s_up_t *self, s_child_t *child, int64_t now)
{
    bool healthy = child->kind == S_BROKER? child->ready
                                          : now - child->started >= S_WORKER_STABLE_MS;
    if (healthy)
        child->backoff_ms = S_BACKOFF_MIN_MS;
    child->restart_at = now + child->backoff_ms;
    char fields[128];
    herald_info ("restart scheduled", "%s in_ms=%lld was_healthy=%s",
                 s_child_fields (self, child, fields, sizeof fields), (long long) child->backoff_ms,
                 healthy? "true": "false");
    child->backoff_ms *= 2;
    if (child->backoff_ms > S_BACKOFF_MAX_MS)
        child->backoff_ms = S_BACKOFF_MAX_MS;
}

static s_child_t *
s_find (s_up_t *self, pid_t pid)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->children[i].pid == pid)
            return &self->children[i];
    return NULL;
}

//  A child exited 78: its configuration cannot work, and restarting it
//  would fail the same way for ever. Stop everything and say why.
static void
s_fatal (s_up_t *self, const s_child_t *child, pid_t pid)
{
    char fields[128];
    char said[1024];
    char quoted[1100];
    cli_relay_describe (child->last_error, said, sizeof said);
    herald_error ("a child exited with a configuration error: stopping the stack",
                  "%s child_pid=%d status=%d child_error=%s",
                  s_child_fields (self, child, fields, sizeof fields), (int) pid, EX_CONFIG,
                  herald_log_quote (said, quoted, sizeof quoted));
    self->fatal = EX_CONFIG;
    char who[128] = "the broker";
    if (child->kind == S_WORKER)
        snprintf (who, sizeof who, "a worker of channel %s", s_child_name (self, child));
    snprintf (self->fatal_message, sizeof self->fatal_message,
              "%s exited with status 78 (configuration error): %s",
              who, said[0]? said: "(it said nothing)");
    self->stopping = true;
}

//  Reaps every child that exited; restarts them later unless stopping.
static void
s_reap (s_up_t *self)
{
    for (;;) {
        int status;
        pid_t pid = waitpid (-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        s_child_t *child = s_find (self, pid);
        if (!child)
            continue;
        s_drain (child, true);
        int64_t now = herald_clock_mono_ms ();
        char how[64];
        if (WIFSIGNALED (status)) {
            const char *name = sigabbrev_np (WTERMSIG (status));
            snprintf (how, sizeof how, "signal=SIG%s", name? name: "?");
        }
        else
            snprintf (how, sizeof how, "status=%d", WEXITSTATUS (status));
        char fields[128];
        herald_log (self->stopping || child->retired? HERALD_LOG_INFO: HERALD_LOG_WARN, "exited",
                    "%s child_pid=%d %s uptime_ms=%lld",
                    s_child_fields (self, child, fields, sizeof fields),
                    (int) pid, how, (long long) (now - child->started));
        child->pid = 0;
        child->last_status = status;
        if (self->stopping || self->starting || child->retired)
            continue;
        if (WIFEXITED (status) && WEXITSTATUS (status) == EX_CONFIG)
            s_fatal (self, child, pid);
        else
            s_schedule_restart (self, child, now);
    }
}

static size_t
s_running (const s_up_t *self, s_kind_t kind)
{
    size_t running = 0;
    for (size_t i = 0; i < self->count; i++)
        if (self->children[i].kind == kind && self->children[i].pid > 0)
            running++;
    return running;
}

static bool s_probe (s_up_t *self);

//  SIGHUP for the broker first, then the workers. The broker applies a
//  reload at the top of a turn of its loop and answers an admin request
//  within a turn: the answer to a second `status`, asked once the first
//  was answered, comes from a turn that began after the signal arrived.
//  So a worker that registers again with a new capacity meets a broker
//  that already knows it. A broker that does not answer (restarting) is
//  not waited for.
static void
s_forward_hangup (s_up_t *self)
{
    int sent = 0;
    s_child_t *broker = &self->children[0];
    if (broker->pid > 0 && kill (broker->pid, SIGHUP) == 0) {
        sent++;
        if (broker->ready && s_probe (self))
            s_probe (self);
    }
    for (size_t i = 1; i < self->count; i++)
        if (self->children[i].pid > 0 && !self->children[i].retired && kill (self->children[i].pid, SIGHUP) == 0)
            sent++;
    herald_info ("reload requested: SIGHUP forwarded to the broker and the workers",
                 "signal=SIGHUP children=%d", sent);
}

//  Reads pending signals: a stop signal sets stopping (a second one,
//  hurry); SIGHUP is forwarded; SIGCHLD reaps. Stop signals are taken
//  first, so children that died of the same Ctrl-C are not restarted.
static void
s_handle_signals (s_up_t *self)
{
    struct signalfd_siginfo info[16];
    bool reap = false;
    bool hangup = false;
    for (;;) {
        ssize_t n = read (self->signal_fd, info, sizeof info);
        if (n <= 0)
            break;
        for (size_t i = 0; i < (size_t) n / sizeof info[0]; i++) {
            if (info[i].ssi_signo == SIGCHLD) {
                reap = true;
                continue;
            }
            if (info[i].ssi_signo == SIGHUP) {
                hangup = true;
                continue;
            }
            if (self->stopping)
                self->hurry = true;
            else {
                const char *name = sigabbrev_np ((int) info[i].ssi_signo);
                herald_info ("stopping", "signal=SIG%s", name? name: "?");
                self->stopping = true;
            }
        }
    }
    if (reap)
        s_reap (self);
    if (hangup && !self->stopping)
        self->hangup = true;
}

//  Waits for a signal or a child's output until deadline (monotonic ms,
//  -1 = forever), and handles what came.
static void
s_wait (s_up_t *self, int64_t deadline)
{
    int timeout = -1;
    if (deadline >= 0) {
        int64_t left = deadline - herald_clock_mono_ms ();
        timeout = left > 0? (int) (left < INT_MAX? left: INT_MAX): 0;
    }
    struct pollfd items[1 + self->count];
    s_child_t *owners[1 + self->count];
    nfds_t count = 0;
    items[count++] = (struct pollfd) { .fd = self->signal_fd, .events = POLLIN };
    for (size_t i = 0; i < self->count; i++) {
        int fd = cli_relay_fd (self->children[i].relay);
        if (fd >= 0) {
            owners[count] = &self->children[i];
            items[count++] = (struct pollfd) { .fd = fd, .events = POLLIN };
        }
    }
    if (poll (items, count, timeout) <= 0)
        return;
    //  Output first: a child's last words are read before its exit is handled
    for (nfds_t i = 1; i < count; i++)
        if (items[i].revents)
            s_drain (owners[i], false);
    if (items[0].revents)
        s_handle_signals (self);
}

//  SIGTERM to every child of kind, SIGKILL to those left at the deadline.
static void
s_stop_kind (s_up_t *self, s_kind_t kind)
{
    for (size_t i = 0; i < self->count; i++) {
        s_child_t *child = &self->children[i];
        child->restart_at = 0;
        if (child->kind == kind && child->pid > 0)
            kill (child->pid, SIGTERM);
    }
    int64_t deadline = herald_clock_mono_ms () + self->config->broker.shutdown_timeout_ms;
    while (s_running (self, kind) > 0 && !self->hurry && herald_clock_mono_ms () < deadline)
        s_wait (self, deadline);
    if (s_running (self, kind) == 0)
        return;
    for (size_t i = 0; i < self->count; i++) {
        s_child_t *child = &self->children[i];
        if (child->kind == kind && child->pid > 0) {
            char fields[128];
            herald_warn ("killing", "%s child_pid=%d",
                         s_child_fields (self, child, fields, sizeof fields), (int) child->pid);
            kill (child->pid, SIGKILL);
        }
    }
    deadline = herald_clock_mono_ms () + S_KILL_WAIT_MS;
    while (s_running (self, kind) > 0 && herald_clock_mono_ms () < deadline)
        s_wait (self, deadline);
}

//  Asks the broker for its status once: true if it answered, and it is
//  ours (a broker of another store answering on the same endpoint is not).
static bool
s_probe (s_up_t *self)
{
    int code = 0;
    char *body = NULL;
    herald_status_t status = herald_admin (self->admin, "status", "{}", S_READY_PROBE_MS, &code, &body);
    self->next_probe = herald_clock_mono_ms () + S_PROBE_INTERVAL_MS;
    if (status != HERALD_OK) {
        free (body);
        return false;
    }
    json_t *root = json_loads (body, 0, NULL);
    const char *store = json_string_value (json_object_get (json_object_get (root, "broker"), "store"));
    bool ours = !store || strcmp (store, self->config->broker.store) == 0;
    if (!ours) {
        char quoted[HERALD_PATH_MAX + 8];
        herald_warn ("the admin endpoint is answered by a broker of another store", "admin=%s store=%s",
                     self->config->broker.admin, herald_log_quote (store, quoted, sizeof quoted));
    }
    json_decref (root);
    free (body);
    return ours;
}

//  The broker answered: it is healthy, its next restart will be quick.
static void
s_broker_ready (s_up_t *self)
{
    s_child_t *broker = &self->children[0];
    broker->ready = true;
    broker->backoff_ms = S_BACKOFF_MIN_MS;
    herald_info ("broker ready", "admin=%s child_pid=%d startup_ms=%lld", self->config->broker.admin,
                 (int) broker->pid, (long long) (herald_clock_mono_ms () - broker->started));
}

//  Starts the broker and waits for it to answer `status`. -1 when it is
//  ready, else the exit code (0 if stopped by a signal meanwhile).
static int
s_start_broker (s_up_t *self)
{
    s_child_t *broker = &self->children[0];
    self->starting = true;
    if (s_spawn (self, broker) != 0) {
        self->starting = false;
        return EX_UNAVAILABLE;
    }
    int64_t deadline = herald_clock_mono_ms () + S_READY_TIMEOUT_MS;
    int rc = EX_UNAVAILABLE;
    self->next_probe = herald_clock_mono_ms ();
    for (;;) {
        s_wait (self, self->next_probe);
        if (broker->pid == 0) {
            int status = broker->last_status;
            char said[1024];
            cli_relay_describe (broker->last_error, said, sizeof said);
            if (WIFEXITED (status) && (WEXITSTATUS (status) == EX_CONFIG || WEXITSTATUS (status) == EX_TEMPFAIL))
                rc = WEXITSTATUS (status);
            if (WIFEXITED (status))
                fprintf (stderr, "herald up: the broker exited with status %d during start-up%s%s\n",
                         WEXITSTATUS (status), said[0]? ": ": "", said);
            else
                fprintf (stderr, "herald up: the broker was killed by signal %d during start-up\n",
                         WTERMSIG (status));
            break;
        }
        if (self->stopping) {
            rc = 0;
            break;
        }
        if (herald_clock_mono_ms () >= deadline) {
            fprintf (stderr, "herald up: broker at %s: no answer within %d ms\n",
                     self->config->broker.admin, S_READY_TIMEOUT_MS);
            break;
        }
        if (herald_clock_mono_ms () >= self->next_probe && s_probe (self)) {
            s_broker_ready (self);
            rc = -1;
            break;
        }
    }
    self->starting = false;
    return rc;
}

//  Finds the broker and worker executables. 0 / -1 (message printed).
static int
s_find_binaries (s_up_t *self, const char *bin_dir)
{
    char dir[PATH_MAX];
    if (bin_dir)
        snprintf (dir, sizeof dir, "%s", bin_dir);
    else {
        ssize_t n = readlink ("/proc/self/exe", dir, sizeof dir - 1);
        if (n <= 0) {
            fprintf (stderr, "herald up: cannot find my own executable: %s (use --bin-dir)\n",
                     strerror (errno));
            return -1;
        }
        dir[n] = '\0';
        char *slash = strrchr (dir, '/');
        if (slash)
            *slash = '\0';
    }
    int a = snprintf (self->broker_bin, sizeof self->broker_bin, "%s/herald-broker", dir);
    int b = snprintf (self->worker_bin, sizeof self->worker_bin, "%s/herald-worker", dir);
    if (a < 0 || b < 0 || (size_t) a >= sizeof self->broker_bin || (size_t) b >= sizeof self->worker_bin) {
        fprintf (stderr, "herald up: --bin-dir: path too long\n");
        return -1;
    }
    const char *missing = access (self->broker_bin, X_OK) != 0? self->broker_bin
                        : access (self->worker_bin, X_OK) != 0? self->worker_bin: NULL;
    if (missing) {
        fprintf (stderr, "herald up: %s: %s (use --bin-dir DIR)\n", missing, strerror (errno));
        return -1;
    }
    return 0;
}

//  CURVE: the --key of each channel's workers (the .secret beside the
//  first key of security.workers.CHANNEL), checked, into keys. 0, or -1
//  with why in err.
static int
s_worker_keys (const s_up_t *self, const herald_config_t *config, char keys[][HERALD_PATH_MAX],
               char *err, size_t errlen)
{
    const herald_security_config_t *sec = &config->security;
    char why[HERALD_ERR_MAX];
    herald_keypair_t pair;
    int rc = 0;
    for (int c = 0; c < config->channel_count && rc == 0 && sec->curve; c++) {
        keys[c][0] = '\0';
        if (config->workers[c] <= 0)
            continue;
        const char *name = config->channels[c].name;
        if (!sec->worker_file[c][0]) {
            snprintf (err, errlen, "%s: security.workers.%s lists no key, so %s's %d worker(s) cannot connect: "
                      "add one (herald keygen) or set workers.%s: 0", self->config_path, name, name,
                      config->workers[c], name);
            rc = -1;
            continue;
        }
        herald_keys_sibling (sec->worker_file[c], ".public", ".secret", keys[c], HERALD_PATH_MAX);
        if (herald_keys_load_secret (keys[c], &pair, why, sizeof why) != 0) {
            snprintf (err, errlen, "the %s workers' key (the .secret beside %.200s, the first key of "
                      "security.workers.%s): %.200s", name, sec->worker_file[c], name, why);
            rc = -1;
        }
    }
    explicit_bzero (&pair, sizeof pair);
    return rc;
}

//  CURVE: finds and checks the keys of the probe and of every channel's
//  workers before anything starts. 0, or prints why and returns 78.
static int
s_find_keys (s_up_t *self)
{
    const herald_security_config_t *sec = &self->config->security;
    if (!sec->curve)
        return 0;
    char err[HERALD_ERR_MAX];
    herald_keypair_t pair;
    if (cli_default_key (self->config, CLI_AS_ADMIN_READ, self->admin_key, sizeof self->admin_key) != 0)
        return cli_fail (S_CMD, EX_CONFIG, "%s has CURVE on: herald up needs an admin key to see the broker "
                         "start: put the .secret beside the first key of security.admin_read (or "
                         "admin_operate) there", self->config_path);
    if (herald_keys_load_secret (self->admin_key, &pair, err, sizeof err) != 0)
        return cli_fail (S_CMD, EX_CONFIG, "%s", err);
    explicit_bzero (&pair, sizeof pair);
    if (s_worker_keys (self, self->config, self->worker_keys, err, sizeof err) != 0)
        return cli_fail (S_CMD, EX_CONFIG, "%s", err);
    return 0;
}

//  One stack per store: a second herald up on the same store would take
//  the first one's broker for its own and attach more workers to it. 0, or
//  the exit code (message printed).
static int
s_lock_stack (s_up_t *self)
{
    const char *store = self->config->broker.store;
    if (strstr (store, "://"))
        return 0;           //  a database server: no file to lock beside it
    char path[HERALD_PATH_MAX + 16];
    snprintf (path, sizeof path, "%s.up.lock", store);
    char err[HERALD_ERR_MAX];
    pid_t holder = 0;
    self->lock = herald_lockfile_new (path, &holder, err, sizeof err);
    if (self->lock)
        return 0;
    if (errno == EWOULDBLOCK) {
        char pid[32] = "";
        if (holder > 0)
            snprintf (pid, sizeof pid, " (pid %d)", (int) holder);
        return cli_fail (S_CMD, EX_TEMPFAIL, "another herald up%s already runs the stack of store %s: "
                         "it holds %s; stop it first (or give this stack its own broker.store)",
                         pid, store, path);
    }
    return cli_fail (S_CMD, EX_CANTCREAT, "%s", err);
}

//  The next deadline of the run loop: a restart or a probe. -1 = none.
static int64_t
s_next_deadline (const s_up_t *self)
{
    int64_t next = -1;
    for (size_t i = 0; i < self->count; i++) {
        int64_t at = self->children[i].restart_at;
        if (at > 0 && (next < 0 || at < next))
            next = at;
    }
    const s_child_t *broker = &self->children[0];
    if (broker->pid > 0 && !broker->ready && (next < 0 || self->next_probe < next))
        next = self->next_probe;
    return next;
}

//  ----------------------------------------------------------------------
//  Reload

//  Workers of channel that a reload has not retired.
static int
s_workers_of (const s_up_t *self, int channel)
{
    int count = 0;
    for (size_t i = 1; i < self->count; i++)
        count += self->children[i].kind == S_WORKER && self->children[i].channel == channel
              && !self->children[i].retired;
    return count;
}

//  A new worker of channel, in a retired slot that has exited or a new
//  one. 0 / -1 (out of memory).
static int
s_add_worker (s_up_t *self, int channel)
{
    size_t slot = self->count;
    for (size_t i = 1; i < self->count && slot == self->count; i++)
        if (self->children[i].retired && self->children[i].pid == 0)
            slot = i;
    if (slot == self->count) {
        s_child_t *grown = realloc (self->children, (self->count + 1) * sizeof *grown);
        if (!grown)
            return -1;
        self->children = grown;
        self->count++;
    }
    s_child_t *child = &self->children[slot];
    cli_relay_destroy (&child->relay);
    *child = (s_child_t) { .kind = S_WORKER, .channel = channel, .backoff_ms = S_BACKOFF_MIN_MS };
    if (s_spawn (self, child) != 0)
        s_schedule_restart (self, child, herald_clock_mono_ms ());
    return 0;
}

//  Stops the newest worker of channel (SIGTERM: it finishes its
//  deliveries) and does not restart it.
static void
s_retire_worker (s_up_t *self, int channel)
{
    for (size_t i = self->count - 1; i >= 1; i--) {
        s_child_t *child = &self->children[i];
        if (child->kind != S_WORKER || child->channel != channel || child->retired)
            continue;
        child->retired = true;
        child->restart_at = 0;
        char fields[128];
        herald_info ("stopping a worker: fewer asked for", "%s child_pid=%d",
                     s_child_fields (self, child, fields, sizeof fields), (int) child->pid);
        if (child->pid > 0)
            kill (child->pid, SIGTERM);
        return;
    }
}

//  Reads and checks the configuration file again into *fresh. 0, or -1
//  with the reason logged.
static int
s_reload_read (s_up_t *self, herald_config_t *fresh)
{
    char err[HERALD_ERR_MAX], quoted[2 * HERALD_ERR_MAX], qpath[HERALD_PATH_MAX + 8];
    herald_log_quote (self->config_path, qpath, sizeof qpath);
    if (herald_config_load (fresh, self->config_path, err, sizeof err) != 0) {
        herald_error ("reload refused: keeping the running configuration", "file=%s error=%s", qpath,
                      herald_log_quote (err, quoted, sizeof quoted));
        return -1;
    }
    char *report = NULL;
    int problems = herald_config_check (fresh, &report);
    if (problems != 0) {
        for (char *p = report; p && *p; p++)
            if (*p == '\n')
                *p = p[1]? ';': '\0';
        herald_error ("reload refused: keeping the running configuration", "file=%s problems=%d error=%s", qpath,
                      problems, herald_log_quote (report? report: "out of memory", quoted, sizeof quoted));
        free (report);
        return -1;
    }
    return 0;
}

//  SIGHUP: the file read and checked again; if it passes, forwarded to
//  the broker then to the workers, and the workers per channel made what
//  `workers:` asks. Channels are those running (adding or removing one
//  needs a restart, as for the broker).
static void
s_reload (s_up_t *self)
{
    herald_config_t *fresh = malloc (sizeof *fresh);
    herald_config_t *merged = malloc (sizeof *merged);
    herald_config_diff_t *diff = malloc (sizeof *diff);
    char (*keys)[HERALD_PATH_MAX] = calloc (HERALD_MAX_CHANNELS, HERALD_PATH_MAX);
    char err[HERALD_ERR_MAX], quoted[2 * HERALD_ERR_MAX];
    if (!fresh || !merged || !diff || !keys)
        herald_error ("reload refused: out of memory", NULL);
    else
    if (s_reload_read (self, fresh) == 0) {
        herald_config_merge (self->config, fresh, merged, diff);
        if (s_worker_keys (self, merged, keys, err, sizeof err) != 0)
            herald_error ("reload refused: keeping the running configuration", "error=%s",
                          herald_log_quote (err, quoted, sizeof quoted));
        else {
            s_forward_hangup (self);
            memcpy (self->config, merged, sizeof *self->config);
            memcpy (self->worker_keys, keys, sizeof self->worker_keys);
            int started = 0, stopped = 0;
            for (int c = 0; c < self->config->channel_count; c++) {
                for (int have = s_workers_of (self, c); have < self->config->workers[c]; have++, started++)
                    if (s_add_worker (self, c) != 0) {
                        herald_error ("out of memory: a worker not started", "channel=%s",
                                      self->config->channels[c].name);
                        break;
                    }
                for (int have = s_workers_of (self, c); have > self->config->workers[c]; have--, stopped++)
                    s_retire_worker (self, c);
            }
            char changes[1024];
            herald_info ("configuration reloaded", "workers_started=%d workers_stopped=%d changes=%s", started,
                         stopped, herald_log_quote (herald_config_diff_text (diff, false, changes, sizeof changes),
                                                    quoted, sizeof quoted));
        }
    }
    free (fresh);
    free (merged);
    free (diff);
    free (keys);
}

//  Runs until stopped. Returns the exit code.
static int
s_run (s_up_t *self)
{
    int rc = s_start_broker (self);
    if (rc >= 0) {
        self->stopping = true;
        s_stop_kind (self, S_BROKER);
        return rc;
    }
    for (size_t i = 1; i < self->count; i++)
        if (s_spawn (self, &self->children[i]) != 0)
            s_schedule_restart (self, &self->children[i], herald_clock_mono_ms ());

    while (!self->stopping) {
        s_wait (self, s_next_deadline (self));
        if (self->stopping)
            break;
        if (self->hangup) {
            self->hangup = false;
            s_reload (self);
        }
        int64_t now = herald_clock_mono_ms ();
        for (size_t i = 0; i < self->count; i++) {
            s_child_t *child = &self->children[i];
            if (child->restart_at > 0 && child->restart_at <= now && child->pid == 0) {
                if (s_spawn (self, child) != 0)
                    s_schedule_restart (self, child, now);
                else
                if (i == 0)
                    self->next_probe = now;
            }
        }
        s_child_t *broker = &self->children[0];
        if (broker->pid > 0 && !broker->ready && herald_clock_mono_ms () >= self->next_probe
        &&  s_probe (self))
            s_broker_ready (self);
    }
    s_stop_kind (self, S_WORKER);
    s_stop_kind (self, S_BROKER);
    if (self->fatal) {
        fprintf (stderr, "herald up: %s\n", self->fatal_message);
        return self->fatal;
    }
    herald_info ("stopped", NULL);
    return 0;
}

int
cli_up (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config",     required_argument, NULL, 'c' },
        { "bin-dir",    required_argument, NULL, 'b' },
        { "log-format", required_argument, NULL, 'L' },
        { "help",       no_argument,       NULL, 'h' },
        { "version",    no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *config_path = NULL;
    const char *bin_dir = NULL;
    const char *log_format = NULL;
    herald_log_format_t format = HERALD_LOG_LOGFMT;
    cli_getopt_reset ();
    int c;
    while ((c = getopt_long (argc, argv, ":c:b:hV", longopts, NULL)) != -1) {
        switch (c) {
            case 'c': config_path = optarg; break;
            case 'b': bin_dir = optarg; break;
            case 'L':
                if (herald_log_format_parse (optarg, &format) != 0)
                    return cli_usage_error (S_CMD, "--log-format: expected logfmt or json, got '%s'", optarg);
                log_format = herald_log_format_name (format);
                break;
            case 'h': s_help (stdout); return 0;
            case 'V': return cli_version ();
            default:  return cli_bad_option (S_CMD, argv, c);
        }
    }
    if (optind < argc)
        return cli_usage_error (S_CMD, "unexpected argument '%s'", argv[optind]);

    s_up_t self;
    memset (&self, 0, sizeof self);
    self.signal_fd = -1;
    self.log_format = log_format;
    self.config_path = cli_config_path (config_path);
    self.config = cli_config_load (S_CMD, config_path);
    if (!self.config)
        return EX_CONFIG;
    if (s_find_binaries (&self, bin_dir) != 0) {
        free (self.config);
        return EX_UNAVAILABLE;
    }
    int problems = cli_config_check (S_CMD, self.config);
    if (problems != 0) {
        free (self.config);
        return problems < 0? EX_OSERR: EX_CONFIG;
    }
    int keys_rc = s_find_keys (&self);
    if (keys_rc != 0) {
        free (self.config);
        return keys_rc;
    }
    int rc = s_lock_stack (&self);
    if (rc != 0) {
        free (self.config);
        return rc;
    }
    herald_log_init ("up", HERALD_LOG_INFO);
    if (log_format)
        herald_log_set_format (format);

    size_t workers = 0;
    for (int i = 0; i < self.config->channel_count; i++)
        workers += self.config->workers[i] > 0? (size_t) self.config->workers[i]: 0;
    self.count = 1 + workers;
    self.children = calloc (self.count, sizeof *self.children);
    if (!self.children) {
        herald_lockfile_destroy (&self.lock);
        free (self.config);
        return cli_fail (S_CMD, EX_OSERR, "out of memory");
    }
    size_t next = 0;
    self.children[next++] = (s_child_t) { .kind = S_BROKER, .backoff_ms = S_BACKOFF_MIN_MS };
    for (int i = 0; i < self.config->channel_count; i++)
        for (int k = 0; k < self.config->workers[i]; k++)
            self.children[next++] = (s_child_t) {
                .kind = S_WORKER, .channel = i, .backoff_ms = S_BACKOFF_MIN_MS
            };

    //  Signals come through a signalfd, so they are blocked; SIGHUP is also
    //  set to ignored, a disposition the children inherit (s_spawn). A
    //  blocked signal is never discarded as ignored (Linux keeps it pending
    //  for the signalfd), so we still see it.
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGTERM);
    sigaddset (&mask, SIGHUP);
    sigaddset (&mask, SIGCHLD);
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    struct sigaction old_hangup = { .sa_handler = SIG_DFL };
    sigemptyset (&ignore.sa_mask);
    //  The admin client's ZeroMQ threads start after this, with the signals
    //  blocked too: none of them may take a signal meant for the signalfd.
    if (sigprocmask (SIG_BLOCK, &mask, &self.old_mask) != 0
    ||  (self.signal_fd = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0
    ||  sigaction (SIGHUP, &ignore, &old_hangup) != 0)
        rc = cli_fail (S_CMD, EX_OSERR, "cannot watch signals: %s", strerror (errno));
    else {
        cli_keys_t keys = { .key = self.admin_key[0]? self.admin_key: NULL, .role = CLI_AS_ADMIN_READ };
        rc = cli_client_new (S_CMD, self.config->broker.admin, self.config, &keys, &self.admin);
        if (rc == 0)
            rc = s_run (&self);
    }
    if (self.signal_fd >= 0)
        close (self.signal_fd);
    //  Unblocked while still ignored: a late SIGHUP is dropped, not fatal
    sigprocmask (SIG_SETMASK, &self.old_mask, NULL);
    sigaction (SIGHUP, &old_hangup, NULL);
    for (size_t i = 0; i < self.count; i++)
        cli_relay_destroy (&self.children[i].relay);
    herald_client_destroy (&self.admin);
    herald_lockfile_destroy (&self.lock);
    free (self.children);
    free (self.config);
    return rc;
}
