/*  cli_keygen.c: `herald keygen NAME`: a new CURVE key pair, NAME.public and
    NAME.secret (mode 0600), for the broker or for one client. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "herald_keys.h"

#define S_CMD   "keygen"

static void
s_help (FILE *out)
{
    fprintf (out,
        "Usage: herald keygen NAME\n"
        "\n"
        "Makes a new CURVE key pair (ZeroMQ CurveZMQ, Z85 text) and writes\n"
        "  NAME.public   the public key on its first line: list it in the broker's\n"
        "                security section (producers, workers.CHANNEL, admin_read,\n"
        "                admin_operate), or, for the broker's own key, give it to clients\n"
        "  NAME.secret   the key pair, created with mode 0600: keep it on the host that\n"
        "                uses it; every Herald process refuses it if group or others\n"
        "                may read it\n"
        "Existing files are never overwritten. The directory must exist.\n"
        "\n"
        "Example:\n"
        "  mkdir -p etc/keys && herald keygen etc/keys/broker && herald keygen etc/keys/mailer\n"
        "\n"
        "  -h, --help           this help\n"
        "  -V, --version        the version\n"
        "\n"
        "Exit status: 0 written; 64 usage; 73 a file exists or cannot be created.\n");
}

int
cli_keygen (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help",    no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    cli_getopt_reset ();
    int c;
    while ((c = getopt_long (argc, argv, ":hV", longopts, NULL)) != -1) {
        switch (c) {
            case 'h': s_help (stdout); return 0;
            case 'V': return cli_version ();
            default:  return cli_bad_option (S_CMD, argv, c);
        }
    }
    if (optind >= argc)
        return cli_usage_error (S_CMD, "missing NAME (e.g. etc/keys/mailer)");
    if (optind + 1 < argc)
        return cli_usage_error (S_CMD, "unexpected argument '%s'", argv[optind + 1]);
    const char *name = argv[optind];
    char public_path[1024], secret_path[1024], err[HERALD_ERR_MAX];
    if (herald_keys_generate (name, public_path, sizeof public_path, secret_path, sizeof secret_path,
                              err, sizeof err) != 0) {
        bool usage = strstr (err, "give the name") || strstr (err, "give a file name") || strstr (err, "no name");
        return cli_fail (S_CMD, usage? EX_USAGE: EX_CANTCREAT, "%s", err);
    }
    char key[HERALD_KEY_LEN + 1];
    if (herald_keys_load_public (public_path, key, err, sizeof err) != 0)
        return cli_fail (S_CMD, EX_SOFTWARE, "%s", err);
    printf ("wrote %s (public: list it in the broker's security section, or give it to clients)\n"
            "wrote %s (secret, mode 0600: keep it on the host that uses it)\n"
            "public key %s\n", public_path, secret_path, key);
    return 0;
}
