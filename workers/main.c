/*  herald-worker: runs one worker process for one channel.
    Exit codes (sysexits): 0 stopped cleanly, 64 usage, 70 internal error,
    78 configuration error (config file, driver settings, secrets). */
#include <getopt.h>
#include <signal.h>
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

static void
s_on_signal (int signum)
{
    s_interrupted = 1;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: herald-worker -c FILE --channel NAME [--endpoint EP] [--key FILE] [--log-level L]\n"
        "\n"
        "Runs one worker process for a channel: registers with the broker, delivers\n"
        "the channel's tasks through its driver (file, noop, smtp, http) and reports\n"
        "each outcome. SIGTERM or SIGINT stops it after in-progress deliveries finish.\n"
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
        "  -h, --help            this help\n"
        "  -V, --version         print the version\n"
        "\n"
        "Exit codes: 0 stopped, 64 usage, 70 internal error, 78 configuration error\n"
        "(also: the key missing, or readable by group or others).\n");
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
    if (sigaction (SIGTERM, &action, NULL) || sigaction (SIGINT, &action, NULL))
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
    const char *key_file = NULL;
    const char *server_key_file = NULL;

    static const struct option options[] = {
        { "config",    required_argument, NULL, 'c' },
        { "channel",   required_argument, NULL, 'n' },
        { "endpoint",  required_argument, NULL, 'e' },
        { "log-level", required_argument, NULL, 'l' },
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

    herald_config_t *config = calloc (1, sizeof *config);
    if (!config) {
        fprintf (stderr, "herald-worker: out of memory\n");
        return EXIT_SOFTWARE;
    }
    char err[HERALD_ERR_MAX];
    if (herald_config_load (config, config_file, err, sizeof err) != 0) {
        fprintf (stderr, "herald-worker: %s\n", err);
        free (config);
        return EXIT_CONFIG;
    }
    int channel_index = herald_config_channel_index (config, channel_name);
    if (channel_index < 0) {
        fprintf (stderr, "herald-worker: unknown channel '%s': %s defines", channel_name, config_file);
        for (int i = 0; i < config->channel_count; i++)
            fprintf (stderr, "%s %s", i? ",": "", config->channels[i].name);
        fprintf (stderr, "%s\n", config->channel_count? "": " none");
        free (config);
        return EXIT_USAGE;
    }
    if (s_install_signals () != 0) {
        fprintf (stderr, "herald-worker: cannot install signal handlers\n");
        free (config);
        return EXIT_SOFTWARE;
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
            fprintf (stderr, "herald-worker: %s has CURVE on but security.workers.%s lists no key: "
                     "give --key FILE\n", config_file, channel_name);
            free (config);
            return EXIT_CONFIG;
        }
        key_file = conventional;
    }
    if (key_file) {
        if (herald_keys_load_secret (key_file, &keys, err, sizeof err) != 0) {
            fprintf (stderr, "herald-worker: --key: %s\n", err);
            free (config);
            return EXIT_CONFIG;
        }
        if (server_key_file) {
            if (herald_keys_load_public (server_key_file, server_key, err, sizeof err) != 0) {
                fprintf (stderr, "herald-worker: --server-key: %s\n", err);
                free (config);
                return EXIT_CONFIG;
            }
        }
        else
        if (sec->curve)
            snprintf (server_key, sizeof server_key, "%s", sec->broker_public_key);
        else {
            fprintf (stderr, "herald-worker: --key needs the broker's public key: --server-key FILE, "
                     "or a configuration with security.broker_key\n");
            free (config);
            return EXIT_USAGE;
        }
    }
    herald_worker_t *worker = key_file
        ? herald_worker_new_curve (config, channel_index, endpoint, &keys, server_key, err, sizeof err)
        : herald_worker_new (config, channel_index, endpoint, err, sizeof err);
    explicit_bzero (&keys, sizeof keys);
    if (!worker) {
        fprintf (stderr, "herald-worker: %s\n", err);
        free (config);
        return EXIT_CONFIG;
    }
    int rc = herald_worker_run (worker, &s_interrupted);
    herald_worker_destroy (&worker);
    free (config);
    return rc == 0? 0: EXIT_SOFTWARE;
}
