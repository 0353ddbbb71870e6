/*  cli_up.c: `herald up`: a small supervisor. Starts herald-broker, waits
    until its admin endpoint answers, starts the workers the config asks
    for, restarts any child that dies (backoff 1 s doubling to 30 s, reset
    after 60 s up) and stops them all on SIGINT/SIGTERM: workers first, then
    the broker. One poll loop on a signalfd; deadlines, never sleeps. */
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
#include "herald_clock.h"
#include "herald_keys.h"
#include "herald_log.h"

#define S_CMD                   "up"
#define S_READY_TIMEOUT_MS      10000   /* broker must answer `status` by then */
#define S_READY_PROBE_MS        250     /* one status probe */
#define S_BACKOFF_MIN_MS        1000
#define S_BACKOFF_MAX_MS        30000
#define S_STABLE_MS             60000   /* up this long: backoff starts over */
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
} s_child_t;

typedef struct {
    const char *config_path;
    herald_config_t *config;
    char broker_bin[PATH_MAX];
    char worker_bin[PATH_MAX];
    s_child_t *children;        /* [0] is the broker */
    size_t count;
    int signal_fd;
    sigset_t old_mask;          /* restored in children */
    bool starting;              /* waiting for the broker: an exit is fatal, not restarted */
    bool stopping;              /* SIGINT/SIGTERM seen: no more restarts */
    bool hurry;                 /* a second stop signal: kill now */
    char admin_key[HERALD_PATH_MAX];    /* CURVE: the key of the start-up probe */
    char worker_keys[HERALD_MAX_CHANNELS][HERALD_PATH_MAX]; /* CURVE: --key for each channel's workers */
} s_up_t;

static void
s_help (FILE *out)
{
    fprintf (out,
        "Usage: herald up [-c FILE] [--bin-dir DIR]\n"
        "\n"
        "Runs Herald: starts herald-broker -c FILE, waits until it answers on its admin\n"
        "endpoint (up to 10 s), then starts `workers:` processes per channel\n"
        "(herald-worker -c FILE --channel NAME). A child that dies is restarted after\n"
        "1 s, doubling to 30 s while it keeps dying (reset once it stayed up 60 s).\n"
        "SIGINT/SIGTERM stops the workers, then the broker, each given\n"
        "broker.shutdown_timeout_ms before SIGKILL; a second signal kills at once.\n"
        "SIGHUP is passed to the broker, which reloads the security section's key lists.\n"
        "\n"
        "With security.broker_key (CURVE), each worker gets --key with the .secret beside\n"
        "the first key its channel lists in security.workers, and the start-up probe uses\n"
        "the .secret beside the first admin_read (else admin_operate) key; a missing or\n"
        "unreadable one, or one group or others may read, is a configuration error (78).\n"
        "Logs (logfmt) go to stderr, interleaved with the children's.\n"
        "\n"
        "  -c, --config FILE    configuration (default $HERALD_CONFIG, else etc/herald.yaml)\n"
        "  -b, --bin-dir DIR    where herald-broker and herald-worker are\n"
        "                       (default: the directory of this herald executable)\n"
        "  -h, --help           this help\n"
        "  -V, --version        the version\n"
        "\n"
        "Exit status: 0 stopped by a signal; 64 usage; 69 broker or binaries unavailable\n"
        "(the broker exited or did not answer at start); 78 configuration error.\n");
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

static int
s_spawn (s_up_t *self, s_child_t *child)
{
    const char *path = child->kind == S_BROKER? self->broker_bin: self->worker_bin;
    char *argv[9];
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
    argv[argc] = NULL;

    posix_spawnattr_t attr;
    posix_spawnattr_init (&attr);
    sigset_t defaults;
    sigemptyset (&defaults);
    sigaddset (&defaults, SIGINT);
    sigaddset (&defaults, SIGTERM);
    sigaddset (&defaults, SIGHUP);
    sigaddset (&defaults, SIGCHLD);
    sigaddset (&defaults, SIGPIPE);
    posix_spawnattr_setsigmask (&attr, &self->old_mask);
    posix_spawnattr_setsigdefault (&attr, &defaults);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn (&pid, path, NULL, &attr, argv, environ);
    posix_spawnattr_destroy (&attr);

    child->started = herald_clock_mono_ms ();
    child->restart_at = 0;
    char fields[128];
    s_child_fields (self, child, fields, sizeof fields);
    if (rc != 0) {
        char quoted[256];
        herald_error ("cannot start", "%s path=%s error=%s", fields, path,
                      herald_log_quote (strerror (rc), quoted, sizeof quoted));
        child->pid = 0;
        return -1;
    }
    child->pid = pid;
    herald_info ("started", "%s child_pid=%d", fields, (int) pid);
    return 0;
}

//  Plans the next start of a child that died (or failed to start).
static void
s_schedule_restart (s_up_t *self, s_child_t *child, int64_t now)
{
    if (now - child->started >= S_STABLE_MS)
        child->backoff_ms = S_BACKOFF_MIN_MS;
    child->restart_at = now + child->backoff_ms;
    char fields[128];
    herald_info ("restart scheduled", "%s in_ms=%lld",
                 s_child_fields (self, child, fields, sizeof fields), (long long) child->backoff_ms);
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
        int64_t now = herald_clock_mono_ms ();
        char how[64];
        if (WIFSIGNALED (status)) {
            const char *name = sigabbrev_np (WTERMSIG (status));
            snprintf (how, sizeof how, "signal=SIG%s", name? name: "?");
        }
        else
            snprintf (how, sizeof how, "status=%d", WEXITSTATUS (status));
        char fields[128];
        herald_log (self->stopping? HERALD_LOG_INFO: HERALD_LOG_WARN, "exited",
                    "%s child_pid=%d %s uptime_ms=%lld",
                    s_child_fields (self, child, fields, sizeof fields),
                    (int) pid, how, (long long) (now - child->started));
        child->pid = 0;
        child->last_status = status;
        if (!self->stopping && !self->starting)
            s_schedule_restart (self, child, now);
    }
}

//  Reads pending signals: a stop signal sets stopping (a second one,
//  hurry); SIGCHLD reaps. Stop signals are taken first, so children that
//  died of the same Ctrl-C are not restarted.
static void
s_handle_signals (s_up_t *self)
{
    struct signalfd_siginfo info[16];
    bool reap = false;
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
                pid_t broker = self->children[0].pid;
                herald_info ("reload: SIGHUP passed to the broker", "child_pid=%d", (int) broker);
                if (broker > 0)
                    kill (broker, SIGHUP);
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
}

//  Waits for a signal or until deadline (monotonic ms, -1 = forever).
static void
s_wait (s_up_t *self, int64_t deadline)
{
    int timeout = -1;
    if (deadline >= 0) {
        int64_t left = deadline - herald_clock_mono_ms ();
        timeout = left > 0? (int) (left < INT_MAX? left: INT_MAX): 0;
    }
    struct pollfd item = { .fd = self->signal_fd, .events = POLLIN };
    if (poll (&item, 1, timeout) > 0)
        s_handle_signals (self);
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

//  Starts the broker and waits for it to answer `status`. 0, or an exit code.
static int
s_start_broker (s_up_t *self)
{
    s_child_t *broker = &self->children[0];
    self->starting = true;
    if (s_spawn (self, broker) != 0)
        return EX_UNAVAILABLE;
    herald_client_t *admin = NULL;
    cli_keys_t keys = { .key = self->admin_key[0]? self->admin_key: NULL, .role = CLI_AS_ADMIN_READ };
    int made = cli_client_new (S_CMD, self->config->broker.admin, self->config, &keys, &admin);
    if (made != 0)
        return made;
    int64_t deadline = herald_clock_mono_ms () + S_READY_TIMEOUT_MS;
    int rc = EX_UNAVAILABLE;
    for (;;) {
        s_handle_signals (self);
        if (broker->pid == 0) {
            int status = broker->last_status;
            if (WIFEXITED (status) && WEXITSTATUS (status) == EX_CONFIG)
                rc = EX_CONFIG;
            if (WIFEXITED (status))
                fprintf (stderr, "herald up: the broker exited with status %d during start-up\n",
                         WEXITSTATUS (status));
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
        int code = 0;
        char *body = NULL;
        herald_status_t status = herald_admin (admin, "status", "{}", S_READY_PROBE_MS, &code, &body);
        free (body);
        if (status == HERALD_OK) {
            herald_info ("broker ready", "admin=%s", self->config->broker.admin);
            rc = -1;
            break;
        }
    }
    herald_client_destroy (&admin);
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
    for (int c = 0; c < self->config->channel_count; c++) {
        if (self->config->workers[c] <= 0)
            continue;
        const char *name = self->config->channels[c].name;
        if (!sec->worker_file[c][0])
            return cli_fail (S_CMD, EX_CONFIG, "%s: security.workers.%s lists no key, so %s's %d worker(s) "
                             "cannot connect: add one (herald keygen) or set workers.%s: 0",
                             self->config_path, name, name, self->config->workers[c], name);
        herald_keys_sibling (sec->worker_file[c], ".public", ".secret", self->worker_keys[c],
                             sizeof self->worker_keys[c]);
        if (herald_keys_load_secret (self->worker_keys[c], &pair, err, sizeof err) != 0)
            return cli_fail (S_CMD, EX_CONFIG, "the %s workers' key (the .secret beside %s, the first "
                             "key of security.workers.%s): %s", name, sec->worker_file[c], name, err);
    }
    explicit_bzero (&pair, sizeof pair);
    return 0;
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
        int64_t next = -1;
        for (size_t i = 0; i < self->count; i++) {
            int64_t at = self->children[i].restart_at;
            if (at > 0 && (next < 0 || at < next))
                next = at;
        }
        s_wait (self, next);
        if (self->stopping)
            break;
        int64_t now = herald_clock_mono_ms ();
        for (size_t i = 0; i < self->count; i++) {
            s_child_t *child = &self->children[i];
            if (child->restart_at > 0 && child->restart_at <= now && child->pid == 0)
                if (s_spawn (self, child) != 0)
                    s_schedule_restart (self, child, now);
        }
    }
    s_stop_kind (self, S_WORKER);
    s_stop_kind (self, S_BROKER);
    herald_info ("stopped", NULL);
    return 0;
}

int
cli_up (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config",  required_argument, NULL, 'c' },
        { "bin-dir", required_argument, NULL, 'b' },
        { "help",    no_argument,       NULL, 'h' },
        { "version", no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *config_path = NULL;
    const char *bin_dir = NULL;
    cli_getopt_reset ();
    int c;
    while ((c = getopt_long (argc, argv, ":c:b:hV", longopts, NULL)) != -1) {
        switch (c) {
            case 'c': config_path = optarg; break;
            case 'b': bin_dir = optarg; break;
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
    self.config_path = cli_config_path (config_path);
    self.config = cli_config_load (S_CMD, config_path);
    if (!self.config)
        return EX_CONFIG;
    if (s_find_binaries (&self, bin_dir) != 0) {
        free (self.config);
        return EX_UNAVAILABLE;
    }
    int keys_rc = s_find_keys (&self);
    if (keys_rc != 0) {
        free (self.config);
        return keys_rc;
    }
    herald_log_init ("up", HERALD_LOG_INFO);

    size_t workers = 0;
    for (int i = 0; i < self.config->channel_count; i++)
        workers += self.config->workers[i] > 0? (size_t) self.config->workers[i]: 0;
    self.count = 1 + workers;
    self.children = calloc (self.count, sizeof *self.children);
    if (!self.children) {
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

    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGTERM);
    sigaddset (&mask, SIGHUP);
    sigaddset (&mask, SIGCHLD);
    int rc;
    if (sigprocmask (SIG_BLOCK, &mask, &self.old_mask) != 0
    ||  (self.signal_fd = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        rc = cli_fail (S_CMD, EX_OSERR, "cannot watch signals: %s", strerror (errno));
    else {
        rc = s_run (&self);
        close (self.signal_fd);
    }
    sigprocmask (SIG_SETMASK, &self.old_mask, NULL);
    free (self.children);
    free (self.config);
    return rc;
}
