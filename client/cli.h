/*  cli.h: private to client/: the pieces the `herald` subcommands share.
    Exit codes follow sysexits(3); cli_main.c documents them in --help. */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdbool.h>
#include <sysexits.h>

#include "herald.h"
#include "herald_config.h"

#define CLI_DEFAULT_CONFIG      "etc/herald.yaml"
#define CLI_CONFIG_ENV          "HERALD_CONFIG"
#define CLI_KEY_ENV             "HERALD_KEY"

/*  What a command connects as, for the default-key convention. */
typedef enum {
    CLI_AS_PRODUCER,            /* security.producers */
    CLI_AS_ADMIN_READ,          /* security.admin_read, else admin_operate */
    CLI_AS_ADMIN_OPERATE        /* security.admin_operate, else admin_read */
} cli_role_t;

/*  A command's CURVE options: --key FILE and --server-key FILE. */
typedef struct {
    const char *key;            /* --key: this client's .secret, NULL = $HERALD_KEY or the convention */
    const char *server_key;     /* --server-key: the broker's .public, NULL = from the config */
    cli_role_t role;
} cli_keys_t;

/*  Subcommands: argv[0] is the subcommand name; each returns an exit code. */
int
    cli_publish (int argc, char **argv);
int
    cli_status (int argc, char **argv);
int
    cli_dead (int argc, char **argv);
int
    cli_track (int argc, char **argv);
int
    cli_check_config (int argc, char **argv);
int
    cli_up (int argc, char **argv);
int
    cli_keygen (int argc, char **argv);
int
    cli_token (int argc, char **argv);

/*  Prints "herald CMD: message" and a hint to --help on stderr.
    Returns EX_USAGE. */
int
    cli_usage_error (const char *cmd, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

/*  Prints "herald CMD: message" on stderr. Returns code. */
int
    cli_fail (const char *cmd, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  Reports the option getopt_long refused (returned '?' or ':'). Returns EX_USAGE. */
int
    cli_bad_option (const char *cmd, char **argv, int c);

/*  Prints "herald VERSION" on stdout. Returns 0. */
int
    cli_version (void);

/*  Starts a getopt_long scan of a subcommand's arguments. */
void
    cli_getopt_reset (void);

/*  Parses a decimal integer in [min, max]. 0 / -1. */
int
    cli_parse_long (const char *text, long min, long max, long *value);

/*  The config file to use: given (-c), else $HERALD_CONFIG, else
    etc/herald.yaml. Borrowed. */
const char *
    cli_config_path (const char *given);

/*  Loads the config (path as cli_config_path resolves it). On error prints
    herald_config_load's "FILE:LINE: key: what" and returns NULL. Caller
    frees the result. */
herald_config_t *
    cli_config_load (const char *cmd, const char *given);

/*  Runs herald_config_check and prints each problem ("herald CMD:
    FILE:LINE: key: what") on stderr. Returns the number of problems (0: the
    processes can start), -1 out of memory. */
int
    cli_config_check (const char *cmd, const herald_config_t *config);

/*  Exit code for a client status (sysexits): busy/timeout 75, unavailable 69... */
int
    cli_exit_code (herald_status_t status);

/*  The .secret a command uses by default when config has CURVE on and no
    --key or $HERALD_KEY is given: the one beside the first .public listed
    for role that exists. Writes it into out; -1 if there is none. */
int
    cli_default_key (const herald_config_t *config, cli_role_t role, char *out, size_t size);

/*  Connects a client to endpoint: with CURVE when keys->key, $HERALD_KEY
    (ignored when config, which may be NULL, has no CURVE) or config asks for
    it, the broker's key from --server-key or the config's
    security.broker_key (its .public). Returns 0 with *client, or prints why
    and returns the exit code (78 for key problems). */
int
    cli_client_new (const char *cmd, const char *endpoint, const herald_config_t *config,
                    const cli_keys_t *keys, herald_client_t **client);

/*  Prints why a client call failed ("broker at EP: ...") and returns the
    exit code; for a refusal by the broker's security, its reason. */
int
    cli_client_fail (const char *cmd, const char *endpoint, herald_client_t *client,
                     herald_status_t status, int timeout_ms);

/*  Sends one admin request to endpoint. On success returns 0 with *code and
    the parsed *body (caller json_decref's; NULL if the body is not JSON).
    On failure prints why and returns the exit code. */
int
    cli_admin_call (const char *cmd, const char *endpoint, const herald_config_t *config,
                    const cli_keys_t *keys, const char *verb, const char *args_json,
                    int timeout_ms, int *code, json_t **body, char **raw);

/*  Wall-clock milliseconds as RFC 3339 into buf ("-" for 0). */
const char *
    cli_format_time (long long wall_ms, char *buf, size_t size);

#endif
