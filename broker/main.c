/*  herald-broker: runs the broker with a configuration file. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "herald_config.h"
#include "herald_log.h"

/*  sysexits */
#define EXIT_USAGE      64
#define EXIT_UNAVAILABLE 69
#define EXIT_SOFTWARE   70
#define EXIT_OSERR      71
#define EXIT_IOERR      74
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
        "Usage: herald-broker -c FILE [--log-level LEVEL]\n"
        "\n"
        "Runs the Herald broker: receives events from producers, stores each one\n"
        "durably (fsync) before acknowledging it, and dispatches one task per\n"
        "channel to the worker pools, with retries and dead letters.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE     configuration (YAML), e.g. etc/herald.yaml\n"
        "      --log-level L     debug | info | warn | error (default info; also HERALD_LOG_LEVEL)\n"
        "  -h, --help            this help\n"
        "  -V, --version         print the version\n"
        "\n"
        "SIGTERM or SIGINT stops it gracefully: no new events, the commit in hand\n"
        "is finished and acknowledged, deliveries in flight are awaited for up to\n"
        "broker.shutdown_timeout.\n"
        "\n"
        "SIGHUP re-reads the configuration's security section: client keys added\n"
        "to or removed from its lists take effect without a restart; connections\n"
        "of removed keys are closed, the others stay. An invalid file is refused\n"
        "(logged) and the running lists are kept.\n"
        "\n"
        "Exit status: 0 stopped cleanly, 64 usage, 71 an endpoint could not be\n"
        "bound, 74 store unusable or failed (corrupt file, fsync error), 78\n"
        "configuration error (also: the broker's secret key open to others or\n"
        "unreadable, CURVE asked for on a libzmq without it), 70 internal error.\n");
}

int
main (int argc, char **argv)
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *config_file = NULL;
    herald_log_level_t level = HERALD_LOG_INFO;
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
    herald_log_init ("broker", level);
    static herald_config_t config;
    char err[HERALD_ERR_MAX];
    if (herald_config_load (&config, config_file, err, sizeof err) != 0) {
        fprintf (stderr, "herald-broker: %s\n", err);
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

    broker_status_t status;
    broker_t *broker = broker_new (&config, &status, err, sizeof err);
    if (!broker) {
        herald_error ("broker cannot start", "error=\"%s\"", err);
        fprintf (stderr, "herald-broker: %s\n", err);
        return status == BROKER_ERR_BIND? EXIT_OSERR
             : status == BROKER_ERR_STORE? EXIT_IOERR
             : status == BROKER_ERR_CONFIG? EXIT_CONFIG: EXIT_SOFTWARE;
    }
    broker_watch_reload (broker, &s_reload);
    status = broker_run (broker, &s_stop);
    broker_destroy (&broker);
    return status == BROKER_OK? 0: status == BROKER_ERR_IO? EXIT_IOERR: EXIT_SOFTWARE;
}
