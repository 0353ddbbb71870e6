/*  cli_main.c: the `herald` command: dispatches to its subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run) (int argc, char **argv);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    { "publish",      cli_publish,      "publish events and wait for their ACK" },
    { "status",       cli_status,       "per channel: pending, in flight, retrying, done, dead, workers" },
    { "dead",         cli_dead,         "list, show, retry or purge dead tasks" },
    { "track",        cli_track,        "where one event is, channel by channel" },
    { "check-config", cli_check_config, "validate and explain a configuration file" },
    { "up",           cli_up,           "run the broker and the workers, restart crashed ones" },
    { "keygen",       cli_keygen,       "make a CURVE key pair: NAME.public and NAME.secret (mode 0600)" },
    { "token",        cli_token,        "make, list or revoke bearer tokens of the HTTP endpoint" },
};

static void
s_help (FILE *out)
{
    fprintf (out,
        "Usage: herald COMMAND [OPTIONS]\n"
        "       herald COMMAND --help\n"
        "\n"
        "Herald: publish events to the Herald notification dispatcher and operate it.\n"
        "\n"
        "Commands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf (out, "  %-13s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf (out,
        "\n"
        "Configuration: -c FILE, else $HERALD_CONFIG, else ./etc/herald.yaml. Endpoints\n"
        "come from it (broker.listen.*); --endpoint overrides (then no file is needed).\n"
        "\n"
        "Security: with security.broker_key in the configuration every endpoint uses\n"
        "CURVE; publish and the admin commands then take this client's key with\n"
        "--key FILE or $HERALD_KEY (a NAME.secret from `herald keygen`), else the\n"
        "NAME.secret beside the first key the configuration lists for their role.\n"
        "\n"
        "Exit status (sysexits):\n"
        "  0   success\n"
        "  64  usage error (bad option or argument)\n"
        "  65  bad input: the broker refused it (NACK 4xx), invalid JSON, not found\n"
        "  69  broker unavailable (no connection or no answer)\n"
        "  73  keygen: a key file exists or cannot be created\n"
        "  75  temporary failure (timeout, busy or storage NACK): try again\n"
        "  77  not allowed: the broker refused this client's key, or its role\n"
        "  78  configuration error (FILE:LINE: key: what)\n");
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        s_help (stderr);
        return EX_USAGE;
    }
    const char *name = argv[1];
    if (strcmp (name, "--help") == 0 || strcmp (name, "-h") == 0 || strcmp (name, "help") == 0) {
        s_help (stdout);
        return 0;
    }
    if (strcmp (name, "--version") == 0 || strcmp (name, "-V") == 0 || strcmp (name, "version") == 0)
        return cli_version ();
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (strcmp (name, s_commands[i].name) == 0)
            return s_commands[i].run (argc - 1, argv + 1);
    fprintf (stderr, "herald: unknown command '%s'\nTry 'herald --help'.\n", name);
    return EX_USAGE;
}
