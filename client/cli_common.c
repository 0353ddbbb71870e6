/*  cli_common.c: helpers shared by the `herald` subcommands: messages,
    option errors, numbers, configuration, admin requests. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cli.h"
#include "herald_clock.h"
#include "herald_keys.h"

static void
s_vprint (const char *cmd, const char *format, va_list args)
{
    char text[2048];
    vsnprintf (text, sizeof text, format, args);
    fprintf (stderr, "herald %s: %s\n", cmd, text);
}

int
cli_usage_error (const char *cmd, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_vprint (cmd, format, args);
    va_end (args);
    fprintf (stderr, "Try 'herald %s --help'.\n", cmd);
    return EX_USAGE;
}

int
cli_fail (const char *cmd, int code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_vprint (cmd, format, args);
    va_end (args);
    return code;
}

int
cli_bad_option (const char *cmd, char **argv, int c)
{
    const char *arg = optind > 0? argv[optind - 1]: "?";
    if (c == ':')
        return cli_usage_error (cmd, "option '%s' needs a value", arg);
    if (optopt && optopt != '?')
        return cli_usage_error (cmd, "unknown option '-%c'", optopt);
    return cli_usage_error (cmd, "unknown option '%s'", arg);
}

int
cli_version (void)
{
    printf ("herald %s\n", HERALD_VERSION);
    return 0;
}

void
cli_getopt_reset (void)
{
    optind = 0;         //  glibc: 0 re-initialises the scan
    opterr = 0;         //  we report errors ourselves
}

int
cli_parse_long (const char *text, long min, long max, long *value)
{
    if (!text || !*text)
        return -1;
    char *end = NULL;
    errno = 0;
    long result = strtol (text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || result < min || result > max)
        return -1;
    *value = result;
    return 0;
}

const char *
cli_config_path (const char *given)
{
    if (given && *given)
        return given;
    const char *env = getenv (CLI_CONFIG_ENV);
    if (env && *env)
        return env;
    return CLI_DEFAULT_CONFIG;
}

herald_config_t *
cli_config_load (const char *cmd, const char *given)
{
    herald_config_t *config = calloc (1, sizeof *config);
    if (!config) {
        cli_fail (cmd, EX_OSERR, "out of memory");
        return NULL;
    }
    const char *path = cli_config_path (given);
    char err[HERALD_ERR_MAX];
    err[0] = '\0';
    if (herald_config_load (config, path, err, sizeof err) != 0) {
        fprintf (stderr, "herald %s: %s\n", cmd, *err? err: path);
        free (config);
        return NULL;
    }
    return config;
}

int
cli_config_check (const char *cmd, const herald_config_t *config)
{
    char *report = NULL;
    int problems = herald_config_check (config, &report);
    if (problems < 0) {
        cli_fail (cmd, EX_OSERR, "out of memory");
        return -1;
    }
    for (char *line = report; line && *line; ) {
        char *end = strchr (line, '\n');
        if (end)
            *end = '\0';
        fprintf (stderr, "herald %s: %s\n", cmd, line);
        line = end? end + 1: line + strlen (line);
    }
    if (problems > 0)
        fprintf (stderr, "herald %s: %s: %d problem%s: the processes would not start\n",
                 cmd, config->path, problems, problems == 1? "": "s");
    free (report);
    return problems;
}

int
cli_exit_code (herald_status_t status)
{
    switch (status) {
        case HERALD_OK:             return 0;
        case HERALD_E_INVALID:
        case HERALD_E_NACK:         return EX_DATAERR;
        case HERALD_E_BUSY:
        case HERALD_E_TIMEOUT:
        case HERALD_E_NOMEM:        return EX_TEMPFAIL;
        case HERALD_E_UNAVAILABLE:
        case HERALD_E_PROTOCOL:
        case HERALD_E_SYSTEM:       return EX_UNAVAILABLE;
        case HERALD_E_DENIED:       return EX_NOPERM;
    }
    return EX_SOFTWARE;
}

int
cli_default_key (const herald_config_t *config, cli_role_t role, char *out, size_t size)
{
    if (!config || !config->security.curve)
        return -1;
    const herald_security_config_t *sec = &config->security;
    const char *candidates[2] = { NULL, NULL };
    if (role == CLI_AS_PRODUCER)
        candidates[0] = sec->producer_file;
    else
    if (role == CLI_AS_ADMIN_READ) {
        candidates[0] = sec->admin_read_file;
        candidates[1] = sec->admin_operate_file;
    }
    else {
        candidates[0] = sec->admin_operate_file;
        candidates[1] = sec->admin_read_file;
    }
    for (int i = 0; i < 2; i++)
        if (candidates[i] && *candidates[i]
        &&  herald_keys_sibling (candidates[i], ".public", ".secret", out, size) == 0
        &&  access (out, F_OK) == 0)
            return 0;
    return -1;
}

static const char *
s_role_lists (cli_role_t role)
{
    return role == CLI_AS_PRODUCER? "security.producers"
         : role == CLI_AS_ADMIN_READ? "security.admin_read or admin_operate": "security.admin_operate";
}

int
cli_client_new (const char *cmd, const char *endpoint, const herald_config_t *config,
                const cli_keys_t *keys, herald_client_t **client)
{
    *client = NULL;
    cli_keys_t none = { .role = CLI_AS_PRODUCER };
    if (!keys)
        keys = &none;
    const char *key = keys->key;
    bool curve = config && config->security.curve;
    /*  $HERALD_KEY is the key for CURVE brokers: a configuration without
        CURVE ignores it (an explicit --key is still used). */
    const char *env = getenv (CLI_KEY_ENV);
    if (!key && env && *env && (curve || !config))
        key = env;
    char conventional[HERALD_PATH_MAX];
    if (!key && curve) {
        if (cli_default_key (config, keys->role, conventional, sizeof conventional) != 0)
            return cli_fail (cmd, EX_CONFIG, "%s has CURVE on (security.broker_key): give this client's key "
                             "with --key FILE or %s (the .secret of a key in %s)", config->path,
                             CLI_KEY_ENV, s_role_lists (keys->role));
        key = conventional;
    }
    if (!key) {
        *client = herald_client_new (endpoint);
        if (!*client)
            return cli_fail (cmd, EX_USAGE, "cannot use endpoint '%s': %s", endpoint, strerror (errno));
        return 0;
    }
    const char *server_key = keys->server_key;
    if (!server_key && curve)
        server_key = config->security.broker_public;
    if (!server_key)
        return cli_usage_error (cmd, "a key (%s) needs the broker's public key: --server-key FILE, or a "
                                "configuration with security.broker_key", key);
    char err[HERALD_ERR_MAX];
    *client = herald_client_new_curve (endpoint, key, server_key, err, sizeof err);
    if (!*client)
        return cli_fail (cmd, EX_CONFIG, "%s", err);
    return 0;
}

int
cli_client_fail (const char *cmd, const char *endpoint, herald_client_t *client,
                 herald_status_t status, int timeout_ms)
{
    if (status == HERALD_E_DENIED)
        return cli_fail (cmd, EX_NOPERM, "broker at %s: %s", endpoint, herald_client_error (client));
    if (status == HERALD_E_TIMEOUT || status == HERALD_E_UNAVAILABLE)
        return cli_fail (cmd, EX_UNAVAILABLE, "broker at %s: no answer within %d ms",
                         endpoint, timeout_ms);
    return cli_fail (cmd, cli_exit_code (status), "broker at %s: %s", endpoint, herald_strerror (status));
}

int
cli_admin_call (const char *cmd, const char *endpoint, const herald_config_t *config,
                const cli_keys_t *keys, const char *verb, const char *args_json,
                int timeout_ms, int *code, json_t **body, char **raw)
{
    *body = NULL;
    *raw = NULL;
    herald_client_t *client;
    int rc = cli_client_new (cmd, endpoint, config, keys, &client);
    if (rc != 0)
        return rc;
    herald_status_t status = herald_admin (client, verb, args_json, timeout_ms, code, raw);
    if (status != HERALD_OK) {
        rc = cli_client_fail (cmd, endpoint, client, status, timeout_ms);
        herald_client_destroy (&client);
        return rc;
    }
    herald_client_destroy (&client);
    json_error_t jerr;
    *body = json_loads (*raw, 0, &jerr);
    if (!*body || !json_is_object (*body)) {
        json_decref (*body);
        *body = NULL;
        free (*raw);
        *raw = NULL;
        return cli_fail (cmd, EX_UNAVAILABLE, "broker at %s: reply is not a JSON object", endpoint);
    }
    return 0;
}

const char *
cli_format_time (long long wall_ms, char *buf, size_t size)
{
    if (wall_ms <= 0) {
        snprintf (buf, size, "-");
        return buf;
    }
    return herald_clock_format ((int64_t) wall_ms, buf, size);
}
