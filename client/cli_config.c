/*  cli_config.c: `herald check-config`: loads, validates and explains a
    configuration file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void
s_help (FILE *out)
{
    fprintf (out,
        "Usage: herald check-config [-c FILE]\n"
        "\n"
        "Loads and validates the configuration, then checks what the broker and the\n"
        "workers will need when they start, as they would (same working directory and\n"
        "environment): template and CA files readable, environment variables set\n"
        "(smtp.password_env, http header {env: NAME}), the store's and the file\n"
        "driver's directories creatable and writable, ipc socket directories present,\n"
        "endpoints distinct. Then explains it: endpoints, store, event types and their\n"
        "fan-out, channels, drivers, retry policies and limits.\n"
        "FILE defaults to $HERALD_CONFIG, else etc/herald.yaml.\n"
        "Every problem is reported, each as FILE:LINE: key: what.\n"
        "\n"
        "  -c, --config FILE    the configuration file\n"
        "  -h, --help           this help\n"
        "  -V, --version        the version\n"
        "\n"
        "Exit status: 0 valid; 64 usage; 78 invalid (the message names FILE:LINE: key).\n");
}

int
cli_check_config (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config",  required_argument, NULL, 'c' },
        { "help",    no_argument,       NULL, 'h' },
        { "version", no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *file = NULL;
    cli_getopt_reset ();
    int c;
    while ((c = getopt_long (argc, argv, ":c:hV", longopts, NULL)) != -1) {
        switch (c) {
            case 'c': file = optarg; break;
            case 'h': s_help (stdout); return 0;
            case 'V': return cli_version ();
            default:  return cli_bad_option ("check-config", argv, c);
        }
    }
    if (optind < argc)
        return cli_usage_error ("check-config", "unexpected argument '%s' (use -c FILE)", argv[optind]);
    herald_config_t *config = cli_config_load ("check-config", file);
    if (!config)
        return EX_CONFIG;
    int problems = cli_config_check ("check-config", config);
    if (problems != 0) {
        free (config);
        return problems < 0? EX_OSERR: EX_CONFIG;
    }
    char *text = herald_config_explain (config);
    free (config);
    if (!text)
        return cli_fail ("check-config", EX_OSERR, "out of memory");
    fputs (text, stdout);
    if (*text && text[strlen (text) - 1] != '\n')
        putchar ('\n');
    free (text);
    return 0;
}
