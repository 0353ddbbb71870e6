/*  herald-worker: runs one worker process for one channel.
    Exit codes (sysexits): 0 stopped cleanly, 64 usage, 70 internal error,
    78 configuration error (config file, driver settings, secrets).
    Start-up errors after the command line is read are log lines (logfmt or
    json), so a supervisor and a log shipper read them like any other. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald_config.h"
#include "herald_keys.h"
#include "herald_log.h"
#include "worker.h"

#define EXIT_USAGE    64
#define EXIT_SOFTWARE 70
#define EXIT_CONFIG   78

static volatile sig_atomic_t s_interrupted = 0;
static volatile sig_atomic_t s_reload = 0;

//  Whatever thread takes the signal (ours, ZeroMQ's, libcurl's), it only
//  sets a flag: the worker's loop looks at both at least every 100 ms.
static void
s_on_signal (int signum)
{
    if (signum == SIGHUP)
        s_reload = 1;
    else
        s_interrupted = 1;
}

//  A start-up error as a log line. Returns code.
static int
s_fail (int code, const char *msg, const char *error)
{
    char quoted[HERALD_ERR_MAX + 8];
    herald_error (msg, "error=%s", herald_log_quote (error, quoted, sizeof quoted));
    return code;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: herald-worker -c FILE --channel NAME [--endpoint EP] [--key FILE]\n"
        "                     [--server-key FILE] [--log-level L] [--log-format F]\n"
        "\n"
        "Runs one worker process for a channel: registers with the broker, delivers\n"
        "the channel's tasks through its driver (file, noop, smtp, http) and reports\n"
        "each outcome. SIGTERM or SIGINT stops it after in-progress deliveries finish.\n"
        "SIGHUP re-reads FILE: the channel's driver settings (SMTP or HTTP settings,\n"
        "templates read again from disk, credentials from the environment), its\n"
        "capacity and the heartbeat apply without a restart; deliveries in progress\n"
        "finish with the settings they started with; a new capacity is announced in\n"
        "a new session once none is in progress. An invalid file, or one the driver\n"
        "cannot open, is logged and the running settings stay. What needs a restart\n"
        "(the broker's endpoint, keys) keeps its running value.\n"
        "\n"
        "  -c, --config FILE     configuration file (herald.yaml)\n"
        "  -n, --channel NAME    channel to serve, as named under channels:\n"
        "  -e, --endpoint EP     broker endpoint (default: broker.listen.workers)\n"
        "  -k, --key FILE        this worker's CURVE key (NAME.secret from herald keygen, mode\n"
        "                        0600), for a broker with security.broker_key; default: the\n"
        "                        .secret beside the channel's first key in security.workers\n"
        "                        (what herald up passes). The key must be listed for this\n"
        "                        channel, or the broker refuses the worker (logged here)\n"
        "      --server-key FILE the broker's public key (default: the .public beside\n"
        "                        security.broker_key)\n"
        "  -l, --log-level L     debug | info | warn | error (default info,\n"
        "                        or HERALD_LOG_LEVEL)\n"
        "      --log-format F    logfmt | json (default logfmt, or HERALD_LOG_FORMAT)\n"
        "  -h, --help            this help\n"
        "  -V, --version         print the version\n"
        "\n"
        "Exit codes: 0 stopped, 64 usage, 70 internal error, 78 configuration error\n"
        "(the log line says which file, key or variable; also: the key missing, or\n"
        "readable by group or others).\n");
}

static int
s_usage_error (void)
{
    fprintf (stderr, "usage: herald-worker -c FILE --channel NAME [--endpoint EP] [--key FILE] [--log-level L]\n"
                     "Try 'herald-worker --help' for more information.\n");
    return EXIT_USAGE;
}

static int
s_install_signals (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    action.sa_flags = 0;    //  no SA_RESTART: zmq_poll returns EINTR at once
    if (sigaction (SIGTERM, &action, NULL) || sigaction (SIGINT, &action, NULL)
    ||  sigaction (SIGHUP, &action, NULL))
        return -1;
    struct sigaction ignore;
    memset (&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset (&ignore.sa_mask);
    return sigaction (SIGPIPE, &ignore, NULL);
}

int
main (int argc, char **argv)
{
    herald_log_init ("worker", HERALD_LOG_INFO);
    const char *config_file = NULL;
    const char *channel_name = NULL;
    const char *endpoint = NULL;
    const char *level_text = NULL;
    const char *format_text = NULL;
    const char *key_file = NULL;
    const char *server_key_file = NULL;

    static const struct option options[] = {
        { "config",    required_argument, NULL, 'c' },
        { "channel",   required_argument, NULL, 'n' },
        { "endpoint",  required_argument, NULL, 'e' },
        { "log-level", required_argument, NULL, 'l' },
        { "log-format", required_argument, NULL, 'F' },
        { "key",       required_argument, NULL, 'k' },
        { "server-key", required_argument, NULL, 'S' },
        { "help",      no_argument,       NULL, 'h' },
        { "version",   no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    int opt;
    while ((opt = getopt_long (argc, argv, "c:n:e:l:k:hV", options, NULL)) != -1) {
        switch (opt) {
            case 'c': config_file = optarg; break;
            case 'n': channel_name = optarg; break;
            case 'e': endpoint = optarg; break;
            case 'l': level_text = optarg; break;
            case 'F': format_text = optarg; break;
            case 'k': key_file = optarg; break;
            case 'S': server_key_file = optarg; break;
            case 'h':
                s_usage (stdout);
                return 0;
            case 'V':
                printf ("herald-worker %s\n", HERALD_VERSION);
                return 0;
            default:
                return s_usage_error ();
        }
    }
    if (optind < argc) {
        fprintf (stderr, "herald-worker: unexpected argument '%s'\n", argv[optind]);
        return s_usage_error ();
    }
    if (!config_file || !channel_name) {
        fprintf (stderr, "herald-worker: %s is required\n",
                 !config_file? "-c FILE": "--channel NAME");
        return s_usage_error ();
    }
    if (level_text) {
        herald_log_level_t level;
        if (herald_log_level_parse (level_text, &level) != 0) {
            fprintf (stderr, "herald-worker: --log-level '%s': expected debug, info, warn or error\n",
                     level_text);
            return EXIT_USAGE;
        }
        //  The command line wins over an inherited HERALD_LOG_LEVEL.
        setenv ("HERALD_LOG_LEVEL", level_text, 1);
        herald_log_init ("worker", level);
    }
    if (format_text) {
        herald_log_format_t format;
        if (herald_log_format_parse (format_text, &format) != 0) {
            fprintf (stderr, "herald-worker: --log-format '%s': expected logfmt or json\n", format_text);
            return EXIT_USAGE;
        }
        herald_log_set_format (format);
    }

    herald_config_t *config = calloc (1, sizeof *config);
    if (!config)
        return s_fail (EXIT_SOFTWARE, "worker cannot start", "out of memory");
    char err[HERALD_ERR_MAX];
    if (herald_config_load (config, config_file, err, sizeof err) != 0) {
        free (config);
        return s_fail (EXIT_CONFIG, "configuration error", err);
    }
    int channel_index = herald_config_channel_index (config, channel_name);
    if (channel_index < 0) {
        int n = snprintf (err, sizeof err, "unknown channel '%s': %s defines", channel_name, config_file);
        for (int i = 0; i < config->channel_count && n > 0 && (size_t) n < sizeof err; i++)
            n += snprintf (err + n, sizeof err - (size_t) n, "%s %s", i? ",": "", config->channels[i].name);
        if (config->channel_count == 0 && n > 0 && (size_t) n < sizeof err)
            snprintf (err + n, sizeof err - (size_t) n, " none");
        free (config);
        return s_fail (EXIT_USAGE, "worker cannot start", err);
    }
    if (s_install_signals () != 0) {
        free (config);
        return s_fail (EXIT_SOFTWARE, "worker cannot start", "cannot install signal handlers");
    }
    /*  CURVE: this worker's key pair and the broker's public key. */
    herald_keypair_t keys;
    char server_key[HERALD_KEY_LEN + 1] = "";
    char conventional[HERALD_PATH_MAX];
    const herald_security_config_t *sec = &config->security;
    if (!key_file && sec->curve) {
        if (!sec->worker_file[channel_index][0]
        ||  herald_keys_sibling (sec->worker_file[channel_index], ".public", ".secret", conventional,
                                 sizeof conventional) != 0) {
            snprintf (err, sizeof err, "%s has CURVE on but security.workers.%s lists no key: give --key FILE",
                      config_file, channel_name);
            free (config);
            return s_fail (EXIT_CONFIG, "configuration error", err);
        }
        key_file = conventional;
    }
    if (key_file) {
        if (herald_keys_load_secret (key_file, &keys, err, sizeof err) != 0) {
            free (config);
            return s_fail (EXIT_CONFIG, "configuration error: --key", err);
        }
        if (server_key_file) {
            if (herald_keys_load_public (server_key_file, server_key, err, sizeof err) != 0) {
                free (config);
                return s_fail (EXIT_CONFIG, "configuration error: --server-key", err);
            }
        }
        else
        if (sec->curve)
            snprintf (server_key, sizeof server_key, "%s", sec->broker_public_key);
        else {
            free (config);
            return s_fail (EXIT_USAGE, "worker cannot start", "--key needs the broker's public key: "
                           "--server-key FILE, or a configuration with security.broker_key");
        }
    }
    herald_worker_t *worker = key_file
        ? herald_worker_new_curve (config, channel_index, endpoint, &keys, server_key, err, sizeof err)
        : herald_worker_new (config, channel_index, endpoint, err, sizeof err);
    explicit_bzero (&keys, sizeof keys);
    if (!worker) {
        free (config);
        return s_fail (EXIT_CONFIG, "configuration error", err);
    }
    herald_worker_watch_reload (worker, &s_reload);
    int rc = herald_worker_run (worker, &s_interrupted);
    herald_worker_destroy (&worker);
    free (config);
    return rc == 0? 0: EXIT_SOFTWARE;
}
