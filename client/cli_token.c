/*  cli_token.c: `herald token new|list|revoke`: the HTTP endpoint's bearer
    tokens, in the file named by security.tokens_file (herald_tokens.h). The
    broker reads the file again when it changes: no restart, no SIGHUP. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli.h"
#include "herald_clock.h"
#include "herald_tokens.h"

#define S_CMD   "token"

static void
s_help (FILE *out)
{
    fprintf (out,
        "Usage: herald token new -c FILE --role ROLE NAME\n"
        "       herald token list -c FILE [--json]\n"
        "       herald token revoke -c FILE NAME\n"
        "\n"
        "Bearer tokens for the broker's HTTP endpoint (broker.listen.http), kept in the\n"
        "file named by security.tokens_file of the configuration.\n"
        "\n"
        "  new      makes a token NAME with ROLE and prints it, alone on one line, once:\n"
        "           the file keeps only its SHA-256. ROLE is one of\n"
        "             producer        POST /events\n"
        "             admin_read      GET /metrics (and the admin verbs that read)\n"
        "             admin_operate   also the admin verbs that change things\n"
        "  list     the tokens: name, role, created (no secret)\n"
        "  revoke   removes the token NAME: the broker refuses it within half a second\n"
        "\n"
        "The file is rewritten whole (temporary file, fsync, rename), mode 0600; the\n"
        "broker notices the change by itself.\n"
        "\n"
        "  -c, --config FILE    the configuration file ($HERALD_CONFIG, else etc/herald.yaml)\n"
        "  -r, --role ROLE      new: producer, admin_read or admin_operate\n"
        "      --json           list: one JSON object per token\n"
        "  -h, --help           this help\n"
        "  -V, --version        the version\n"
        "\n"
        "Exit status: 0 done; 64 usage; 65 revoke: no such token, new: the name is taken;\n"
        "73 the file cannot be written; 78 configuration (no security.tokens_file, or the\n"
        "token file is malformed: FILE:LINE: what).\n");
}

/*  Holds PATH.lock for the read-modify-write of the token file, so two
    `herald token new` at once both land. The fd, or -1 with a message. */
static int
s_lock (const char *path)
{
    char lock[HERALD_PATH_MAX + 8];
    snprintf (lock, sizeof lock, "%s.lock", path);
    int fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        cli_fail (S_CMD, EX_CANTCREAT, "%s: cannot open: %s", lock, strerror (errno));
        return -1;
    }
    if (flock (fd, LOCK_EX) != 0) {
        cli_fail (S_CMD, EX_CANTCREAT, "%s: cannot lock: %s", lock, strerror (errno));
        close (fd);
        return -1;
    }
    return fd;
}

static int
s_list (herald_tokens_t *tokens, bool json)
{
    for (size_t i = 0; i < herald_tokens_count (tokens); i++) {
        const herald_token_t *token = herald_tokens_at (tokens, i);
        char when[40];
        cli_format_time (token->created_ms, when, sizeof when);
        if (json) {
            json_t *obj = json_pack ("{s:s, s:s, s:I, s:s}", "name", token->name,
                                     "role", herald_token_role_name (token->role),
                                     "created_ms", (json_int_t) token->created_ms, "created", when);
            char *line = json_dumps (obj, JSON_COMPACT);
            json_decref (obj);
            if (line)
                puts (line);
            free (line);
        }
        else
            printf ("%-24s %-14s %s\n", token->name, herald_token_role_name (token->role), when);
    }
    if (!json && herald_tokens_count (tokens) == 0)
        fprintf (stderr, "herald token: no tokens\n");
    return 0;
}

int
cli_token (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config",  required_argument, NULL, 'c' },
        { "role",    required_argument, NULL, 'r' },
        { "json",    no_argument,       NULL, 'j' },
        { "help",    no_argument,       NULL, 'h' },
        { "version", no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *file = NULL, *role_text = NULL;
    bool json = false;
    cli_getopt_reset ();
    int c;
    /*  The action comes first (herald token new ...): getopt skips it. */
    while ((c = getopt_long (argc, argv, ":c:r:hV", longopts, NULL)) != -1) {
        switch (c) {
            case 'c': file = optarg; break;
            case 'r': role_text = optarg; break;
            case 'j': json = true; break;
            case 'h': s_help (stdout); return 0;
            case 'V': return cli_version ();
            default:  return cli_bad_option (S_CMD, argv, c);
        }
    }
    if (optind >= argc)
        return cli_usage_error (S_CMD, "say new, list or revoke");
    const char *action = argv[optind++];
    bool is_new = strcmp (action, "new") == 0, is_list = strcmp (action, "list") == 0,
         is_revoke = strcmp (action, "revoke") == 0;
    if (!is_new && !is_list && !is_revoke)
        return cli_usage_error (S_CMD, "unknown action '%s' (new, list or revoke)", action);
    const char *name = NULL;
    if (!is_list) {
        if (optind >= argc)
            return cli_usage_error (S_CMD, "%s: missing NAME", action);
        name = argv[optind++];
    }
    if (optind < argc)
        return cli_usage_error (S_CMD, "unexpected argument '%s'", argv[optind]);
    unsigned role = 0;
    if (is_new) {
        if (!role_text)
            return cli_usage_error (S_CMD, "new: --role producer|admin_read|admin_operate is required");
        if (herald_token_role_parse (role_text, &role) != 0)
            return cli_usage_error (S_CMD, "--role: '%s' is not producer, admin_read or admin_operate", role_text);
        if (!herald_token_name_valid (name))
            return cli_usage_error (S_CMD, "'%s': a token name is 1 to 63 of A-Z a-z 0-9 _ . -", name);
    }
    else
    if (role_text)
        return cli_usage_error (S_CMD, "--role is for new only");
    herald_config_t *config = cli_config_load (S_CMD, file);
    if (!config)
        return EX_CONFIG;
    char path[HERALD_PATH_MAX];
    snprintf (path, sizeof path, "%s", config->security.tokens_file);
    free (config);
    if (!path[0])
        return cli_fail (S_CMD, EX_CONFIG, "%s: security.tokens_file is not set: name the file that keeps the "
                         "HTTP tokens (e.g. tokens_file: etc/herald.tokens)", cli_config_path (file));
    herald_tokens_t *tokens = herald_tokens_new ();
    if (!tokens)
        return cli_fail (S_CMD, EX_OSERR, "out of memory");
    int lock = is_list? -1: s_lock (path);
    int rc = 0;
    char err[HERALD_ERR_MAX];
    if (!is_list && lock < 0)
        rc = EX_CANTCREAT;
    else
    if (herald_tokens_load (tokens, path, err, sizeof err) != 0)
        rc = cli_fail (S_CMD, EX_CONFIG, "%s", err);
    else
    if (is_list)
        rc = s_list (tokens, json);
    else
    if (is_revoke) {
        if (herald_tokens_revoke (tokens, name) != 0)
            rc = cli_fail (S_CMD, EX_DATAERR, "no token named '%s' in %s", name, path);
        else
        if (herald_tokens_save (tokens, path, err, sizeof err) != 0)
            rc = cli_fail (S_CMD, EX_CANTCREAT, "%s", err);
        else
            fprintf (stderr, "herald token: revoked '%s': the broker refuses it from now on\n", name);
    }
    else {
        char token[HERALD_TOKEN_TEXT];
        if (herald_tokens_add (tokens, name, role, herald_clock_wall_ms (), token, err, sizeof err) != 0)
            rc = cli_fail (S_CMD, strstr (err, "exists")? EX_DATAERR: EX_SOFTWARE, "%s", err);
        else
        if (herald_tokens_save (tokens, path, err, sizeof err) != 0)
            rc = cli_fail (S_CMD, EX_CANTCREAT, "%s", err);
        else {
            /*  The token alone on stdout, for scripts; the advice on stderr. */
            printf ("%s\n", token);
            fflush (stdout);
            fprintf (stderr, "herald token: '%s' (%s) saved in %s as a hash: this is the only time the token "
                     "is shown; send it as \"Authorization: Bearer TOKEN\"\n", name, role_text, path);
        }
        explicit_bzero (token, sizeof token);
    }
    if (lock >= 0)
        close (lock);
    herald_tokens_destroy (&tokens);
    return rc;
}
