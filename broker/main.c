/*  herald-broker: runs the broker with a configuration file. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "herald_config.h"
#include "herald_lockfile.h"
#include "herald_log.h"
#include "notify.h"

/*  sysexits */
#define EXIT_USAGE      64
#define EXIT_UNAVAILABLE 69
#define EXIT_SOFTWARE   70
#define EXIT_OSERR      71
#define EXIT_IOERR      74
#define EXIT_TEMPFAIL   75
#define EXIT_CONFIG     78

static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_reload = 0;

static void
s_on_signal (int signum)
{
    if (signum == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: herald-broker -c FILE [--log-level LEVEL] [--log-format FORMAT]\n"
        "       herald-broker --check-config -c FILE\n"
        "\n"
        "Runs the Herald broker: receives events from producers, stores each one\n"
        "durably (fsync) before acknowledging it, and dispatches one task per\n"
        "channel to the worker pools, with retries and dead letters.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE     configuration (YAML), e.g. etc/herald.yaml\n"
        "      --check-config    only check FILE as `herald check-config` does (files,\n"
        "                        variables, directories, endpoints) and exit 0 or 78\n"
        "      --log-level L     debug | info | warn | error (default info; also HERALD_LOG_LEVEL)\n"
        "      --log-format F    logfmt | json: one JSON object per line for log shippers\n"
        "                        (default logfmt; also HERALD_LOG_FORMAT)\n"
        "  -h, --help            this help\n"
        "  -V, --version         print the version\n"
        "\n"
        "One broker per embedded store: it holds an exclusive lock on STORE.lock\n"
        "(beside broker.store, holding its pid) while it runs; a second broker on\n"
        "the same store refuses to start, naming the first one's pid. A PostgreSQL\n"
        "store (broker.store: postgresql://USER@HOST/DB, the password from\n"
        "PGPASSWORD or PGPASSFILE, never the URL) is shared by any number of\n"
        "brokers; see herald-broker(8), POSTGRESQL STORE.\n"
        "\n"
        "SIGTERM or SIGINT stops it gracefully: no new events, the commit in hand\n"
        "is finished and acknowledged, deliveries in flight are awaited for up to\n"
        "broker.shutdown_timeout.\n"
        "\n"
        "SIGHUP re-reads the configuration and applies, between two turns of the\n"
        "loop, what can change live: channels' rate, capacity, max_workers, retry\n"
        "and lease, the broker's tunables, event types (for new events), the\n"
        "security key lists (connections of removed keys are closed). What needs\n"
        "a restart (listen endpoints, the store, journal sizes, hwm, connection\n"
        "limits, adding or removing a channel, the broker key) keeps its running\n"
        "value and is logged as \"needs a restart\". A file that does not load or\n"
        "fails the --check-config checks is refused (logged with its line and\n"
        "key) and nothing changes. herald.yaml(5) marks each key live or restart.\n"
        "\n"
        "Exit status: 0 stopped cleanly (--check-config: the configuration is\n"
        "ready), 64 usage, 71 an endpoint could not be bound, 74 store unusable or\n"
        "failed (corrupt file, fsync error; PostgreSQL: unreachable at start, or\n"
        "this broker taken over by another), 75 another broker holds the store\n"
        "(try again once it stopped), 78 configuration error (also: the broker's\n"
        "secret key open to others or unreadable, CURVE asked for on a libzmq\n"
        "without it), 70 internal error.\n"
        "Start-up errors are log lines (logfmt or json) on stderr.\n");
}

//  --check-config: what `herald check-config` checks, for ExecStartPre and
//  `nginx -t` habits. Plain messages: a person or systemd reads them.
static int
s_check_config (herald_config_t *config, const char *config_file)
{
    char err[HERALD_ERR_MAX];
    if (herald_config_load (config, config_file, err, sizeof err) != 0) {
        fprintf (stderr, "herald-broker: %s\n", err);
        return EXIT_CONFIG;
    }
    char *report = NULL;
    int problems = herald_config_check (config, &report);
    if (problems < 0) {
        fprintf (stderr, "herald-broker: out of memory\n");
        return EXIT_SOFTWARE;
    }
    for (char *line = report; line && *line; ) {
        char *end = strchr (line, '\n');
        if (end)
            *end = '\0';
        fprintf (stderr, "herald-broker: %s\n", line);
        line = end? end + 1: line + strlen (line);
    }
    free (report);
    if (problems > 0) {
        fprintf (stderr, "herald-broker: %s: %d problem%s: the processes would not start\n",
                 config_file, problems, problems == 1? "": "s");
        return EXIT_CONFIG;
    }
    fprintf (stderr, "herald-broker: %s: configuration is valid and ready\n", config_file);
    return 0;
}

//  Takes the store's lock, so that one broker only ever uses a store: a
//  second one would ACK events the first never sees, and their task ids
//  would collide. 0, or the exit code (the reason logged).
static int
s_lock_store (const herald_config_t *config, herald_lockfile_t **lock)
{
    const char *store = config->broker.store;
    if (strstr (store, "://"))
        return 0;           //  a database server arbitrates its clients itself
    char path[HERALD_PATH_MAX + 8];
    snprintf (path, sizeof path, "%s.lock", store);
    char err[HERALD_ERR_MAX];
    pid_t holder = 0;
    *lock = herald_lockfile_new (path, &holder, err, sizeof err);
    if (*lock)
        return 0;
    char qstore[HERALD_PATH_MAX + 8];
    char qpath[HERALD_PATH_MAX + 8];
    if (errno == EWOULDBLOCK) {
        if (holder > 0)
            herald_error ("store in use by another broker", "store=%s lock=%s other_pid=%d",
                          herald_log_quote (store, qstore, sizeof qstore),
                          herald_log_quote (path, qpath, sizeof qpath), (int) holder);
        else
            herald_error ("store in use by another broker", "store=%s lock=%s",
                          herald_log_quote (store, qstore, sizeof qstore),
                          herald_log_quote (path, qpath, sizeof qpath));
        return EXIT_TEMPFAIL;
    }
    char quoted[HERALD_ERR_MAX + 8];
    herald_error ("broker cannot start", "error=%s", herald_log_quote (err, quoted, sizeof quoted));
    return EXIT_IOERR;
}

int
main (int argc, char **argv)
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "log-level", required_argument, NULL, 'l' },
        { "log-format", required_argument, NULL, 'F' },
        { "check-config", no_argument, NULL, 'C' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *config_file = NULL;
    herald_log_level_t level = HERALD_LOG_INFO;
    herald_log_format_t format = HERALD_LOG_LOGFMT;
    bool format_given = false;
    bool check_only = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "c:hV", options, NULL)) != -1) {
        switch (opt) {
            case 'c':
                config_file = optarg;
                break;
            case 'l':
                if (herald_log_level_parse (optarg, &level) != 0) {
                    fprintf (stderr, "herald-broker: --log-level: unknown level '%s'\n", optarg);
                    return EXIT_USAGE;
                }
                break;
            case 'F':
                if (herald_log_format_parse (optarg, &format) != 0) {
                    fprintf (stderr, "herald-broker: --log-format: unknown format '%s' (logfmt or json)\n",
                             optarg);
                    return EXIT_USAGE;
                }
                format_given = true;
                break;
            case 'C':
                check_only = true;
                break;
            case 'h':
                s_usage (stdout);
                return 0;
            case 'V':
                printf ("herald-broker %s\n", HERALD_VERSION);
                return 0;
            default:
                s_usage (stderr);
                return EXIT_USAGE;
        }
    }
    if (!config_file || optind < argc) {
        fprintf (stderr, "herald-broker: %s\n", config_file? "unexpected argument": "-c FILE is required");
        s_usage (stderr);
        return EXIT_USAGE;
    }
    static herald_config_t config;
    char err[HERALD_ERR_MAX];
    if (check_only)
        return s_check_config (&config, config_file);
    herald_log_init ("broker", level);
    if (format_given)
        herald_log_set_format (format);
    if (herald_config_load (&config, config_file, err, sizeof err) != 0) {
        char quoted[HERALD_ERR_MAX + 8];
        herald_error ("configuration error", "error=%s", herald_log_quote (err, quoted, sizeof quoted));
        return EXIT_CONFIG;
    }
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGHUP, &action, NULL);
    signal (SIGPIPE, SIG_IGN);

    herald_lockfile_t *lock = NULL;
    int rc = s_lock_store (&config, &lock);
    if (rc != 0)
        return rc;
    broker_status_t status;
    broker_t *broker = broker_new (&config, &status, err, sizeof err);
    if (!broker) {
        char quoted[HERALD_ERR_MAX + 8];
        herald_error ("broker cannot start", "error=%s", herald_log_quote (err, quoted, sizeof quoted));
        herald_lockfile_destroy (&lock);
        return status == BROKER_ERR_BIND? EXIT_OSERR
             : status == BROKER_ERR_STORE? EXIT_IOERR
             : status == BROKER_ERR_CONFIG? EXIT_CONFIG: EXIT_SOFTWARE;
    }
    broker_watch_reload (broker, &s_reload);
    notify_ready ();        //  bound and recovered: a Type=notify unit is started
    status = broker_run (broker, &s_stop);
    broker_destroy (&broker);
    herald_lockfile_destroy (&lock);
    /*  The journal's I/O failing and the index failing (damaged, or an
        error it cannot go on after) are both "store unusable": 74. */
    return status == BROKER_OK? 0
         : status == BROKER_ERR_IO || status == BROKER_ERR_STORE? EXIT_IOERR: EXIT_SOFTWARE;
}
