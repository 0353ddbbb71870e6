/*  cli_admin.c: `herald status`, `herald dead list|show|retry|purge` and
    `herald track`: admin requests to the broker (proto/PROTOCOL.md,
    "Admin verbs"), shown as tables or, with --json, the reply as is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "herald_proto.h"

#define S_DEFAULT_TIMEOUT   3000

enum {
    S_ALLOW_CHANNEL    = 1,     /* --channel C */
    S_ALLOW_LIMIT      = 2,     /* --limit N */
    S_ALLOW_ALL        = 4,     /* --all */
    S_ALLOW_ID         = 8,     /* one positional id */
    S_NEED_ID          = 16     /* ... which is required */
};

typedef struct {
    const char *config;
    const char *endpoint;
    const char *channel;
    const char *id;
    const char *key;            /* --key FILE */
    const char *server_key;     /* --server-key FILE */
    long timeout_ms;
    long limit;
    bool json;
    bool all;
} s_options_t;

static void
s_help_common (FILE *out)
{
    fprintf (out,
        "Common options:\n"
        "  -c, --config FILE    configuration (default $HERALD_CONFIG, else etc/herald.yaml)\n"
        "  -e, --endpoint EP    admin endpoint, instead of the config's broker.listen.admin\n"
        "      --timeout MS     wait at most MS for the broker's answer (default %d)\n"
        "      --json           print the broker's JSON reply as is\n"
        "  -k, --key FILE       this client's CURVE key (NAME.secret from herald keygen), for a\n"
        "                       broker with security.broker_key; default $HERALD_KEY, else the\n"
        "                       .secret beside the first key of security.admin_read (status,\n"
        "                       track, dead list) or security.admin_operate (dead show, retry,\n"
        "                       purge), when it exists\n"
        "      --server-key F   the broker's public key (default: the .public beside the\n"
        "                       config's security.broker_key)\n"
        "  -h, --help           this help\n"
        "  -V, --version        the version\n"
        "\n"
        "Roles: status, track and dead list need a key in admin_read or admin_operate;\n"
        "dead show (it prints customer data), retry and purge need admin_operate.\n"
        "\n"
        "Exit status: 0 ok; 64 usage; 65 not found or refused; 69 broker not answering;\n"
        "75 broker internal error (try again); 77 not allowed (the key's role, or the\n"
        "broker refused the key); 78 configuration error (also a key file open to others).\n",
        S_DEFAULT_TIMEOUT);
}

static void
s_help_status (FILE *out)
{
    fprintf (out,
        "Usage: herald status [-c FILE] [--json]\n"
        "\n"
        "Per channel: driver, tasks pending, in flight, retrying, done and dead, and the\n"
        "workers connected; then the broker's uptime and the number of events stored.\n"
        "\n");
    s_help_common (out);
}

static void
s_help_dead (FILE *out)
{
    fprintf (out,
        "Usage: herald dead list [--channel C] [--limit N] [--json]\n"
        "       herald dead show TASK_ID [--json]\n"
        "       herald dead retry (TASK_ID | --channel C | --all)\n"
        "       herald dead purge (TASK_ID | --channel C | --all)\n"
        "\n"
        "Dead tasks failed permanently or ran out of attempts; they are kept with their\n"
        "attempt history until retried (fresh attempts, same task id and idempotency key)\n"
        "or purged. Purging everything takes --all, explicitly, and asks nothing.\n"
        "\n"
        "  --channel C          only the dead tasks of channel C\n"
        "  --limit N            list at most N tasks (default: the broker's, 100)\n"
        "  --all                retry / purge: every dead task\n"
        "\n");
    s_help_common (out);
}

static void
s_help_track (FILE *out)
{
    fprintf (out,
        "Usage: herald track EVENT_ID [--json]\n"
        "\n"
        "Where one event is, per channel: task state (pending, in_flight, retrying, done,\n"
        "dead), attempts, last update and last error.\n"
        "\n");
    s_help_common (out);
}

//  Parses the options of one admin command. Returns -1 to go on, or an
//  exit code (help, version, usage error).
static int
s_parse (const char *cmd, int argc, char **argv, unsigned allow,
         void (*help) (FILE *), s_options_t *options)
{
    static const struct option longopts[] = {
        { "config",   required_argument, NULL, 'c' },
        { "endpoint", required_argument, NULL, 'e' },
        { "timeout",  required_argument, NULL, 'T' },
        { "channel",  required_argument, NULL, 'C' },
        { "limit",    required_argument, NULL, 'l' },
        { "all",      no_argument,       NULL, 'a' },
        { "json",     no_argument,       NULL, 'j' },
        { "key",      required_argument, NULL, 'k' },
        { "server-key", required_argument, NULL, 'S' },
        { "help",     no_argument,       NULL, 'h' },
        { "version",  no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    memset (options, 0, sizeof *options);
    options->timeout_ms = S_DEFAULT_TIMEOUT;
    cli_getopt_reset ();
    int c;
    while ((c = getopt_long (argc, argv, ":c:e:k:hV", longopts, NULL)) != -1) {
        switch (c) {
            case 'c': options->config = optarg; break;
            case 'e': options->endpoint = optarg; break;
            case 'k': options->key = optarg; break;
            case 'S': options->server_key = optarg; break;
            case 'j': options->json = true; break;
            case 'h': help (stdout); return 0;
            case 'V': return cli_version ();
            case 'T':
                if (cli_parse_long (optarg, 1, 3600000, &options->timeout_ms) != 0)
                    return cli_usage_error (cmd, "--timeout: expected milliseconds (1..3600000), got '%s'", optarg);
                break;
            case 'C':
                if (!(allow & S_ALLOW_CHANNEL))
                    return cli_usage_error (cmd, "--channel does not apply here");
                options->channel = optarg;
                break;
            case 'l':
                if (!(allow & S_ALLOW_LIMIT))
                    return cli_usage_error (cmd, "--limit does not apply here");
                if (cli_parse_long (optarg, 1, 1000000, &options->limit) != 0)
                    return cli_usage_error (cmd, "--limit: expected 1..1000000, got '%s'", optarg);
                break;
            case 'a':
                if (!(allow & S_ALLOW_ALL))
                    return cli_usage_error (cmd, "--all does not apply here");
                options->all = true;
                break;
            default:
                return cli_bad_option (cmd, argv, c);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (!(allow & S_ALLOW_ID) || options->id)
            return cli_usage_error (cmd, "unexpected argument '%s'", argv[i]);
        options->id = argv[i];
    }
    if ((allow & S_NEED_ID) && !options->id)
        return cli_usage_error (cmd, "missing the id");
    if (options->id && (!*options->id || strlen (options->id) > HP_MAX_ID))
        return cli_usage_error (cmd, "id: expected 1..%d characters", HP_MAX_ID);
    return -1;
}

//  Sends verb with args (stolen) to the admin endpoint. Returns -1 and the
//  reply on a 200, else the exit code after printing why (not_found names
//  what a 404 means).
static int
s_request (const char *cmd, const s_options_t *options, const char *verb, json_t *args,
           const char *not_found, json_t **body, char **raw)
{
    *body = NULL;
    *raw = NULL;
    char *args_text = json_dumps (args, JSON_COMPACT);
    json_decref (args);
    if (!args_text)
        return cli_fail (cmd, EX_OSERR, "out of memory");
    herald_config_t *config = NULL;
    const char *endpoint = options->endpoint;
    if (!endpoint || options->config) {
        config = cli_config_load (cmd, options->config);
        if (!config) {
            free (args_text);
            return EX_CONFIG;
        }
        if (!endpoint)
            endpoint = config->broker.admin;
    }
    bool reads = strcmp (verb, "status") == 0 || strcmp (verb, "track") == 0 || strcmp (verb, "dead.list") == 0;
    cli_keys_t keys = { .key = options->key, .server_key = options->server_key,
                        .role = reads? CLI_AS_ADMIN_READ: CLI_AS_ADMIN_OPERATE };
    int code = 0;
    int rc = cli_admin_call (cmd, endpoint, config, &keys, verb, args_text, (int) options->timeout_ms,
                             &code, body, raw);
    free (args_text);
    free (config);
    if (rc != 0)
        return rc;
    if (code == HP_CODE_OK)
        return -1;

    const char *error = json_string_value (json_object_get (*body, "error"));
    if (code == HP_CODE_NOT_FOUND)
        rc = cli_fail (cmd, EX_DATAERR, "%s", not_found);
    else
    if (code == HP_CODE_FORBIDDEN)
        rc = cli_fail (cmd, EX_NOPERM, "not allowed (%d): %s", code, error? error: *raw);
    else
    if (code >= 400 && code < 500)
        rc = cli_fail (cmd, EX_DATAERR, "refused (%d): %s", code, error? error: *raw);
    else
        rc = cli_fail (cmd, EX_TEMPFAIL, "broker error (%d): %s", code, error? error: *raw);
    json_decref (*body);
    free (*raw);
    *body = NULL;
    *raw = NULL;
    return rc;
}

static long long
s_int (const json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    if (json_is_integer (value))
        return (long long) json_integer_value (value);
    if (json_is_real (value))
        return (long long) json_real_value (value);
    return 0;
}

//  A string member for a table cell: "-" when absent or empty; control
//  characters (newlines in error texts) shown as spaces, truncated to fit.
static const char *
s_cell (const json_t *object, const char *key, char *buf, size_t size)
{
    const char *text = json_string_value (json_object_get (object, key));
    if (!text || !*text)
        text = "-";
    size_t i = 0;
    for (; text[i] && i + 1 < size; i++)
        buf[i] = (unsigned char) text[i] < 0x20? ' ': text[i];
    buf[i] = '\0';
    return buf;
}

static const char *
s_time (const json_t *object, const char *key, char *buf, size_t size)
{
    return cli_format_time (s_int (object, key), buf, size);
}

static void
s_print_uptime (long long ms)
{
    long long secs = ms / 1000;
    long long days = secs / 86400;
    long long hours = secs / 3600 % 24;
    long long minutes = secs / 60 % 60;
    if (days)
        printf ("%lldd %lldh %lldm", days, hours, minutes);
    else
    if (hours)
        printf ("%lldh %lldm %llds", hours, minutes, secs % 60);
    else
        printf ("%lldm %llds", minutes, secs % 60);
}

static void
s_print_raw (const char *raw)
{
    fputs (raw, stdout);
    if (!*raw || raw[strlen (raw) - 1] != '\n')
        putchar ('\n');
}

//  The security line of `herald status`: mode, keys, connections, refusals.
static void
s_print_security (const json_t *security)
{
    if (!json_is_object (security))
        return;
    char mode[32];
    s_cell (security, "mode", mode, sizeof mode);
    if (strcmp (mode, "curve") == 0)
        printf ("security CURVE, %lld keys, %lld reloads", s_int (security, "keys"), s_int (security, "reloads"));
    else
    if (strcmp (mode, "plaintext") == 0)
        printf ("security PLAINTEXT (no CURVE, by security.plaintext)");
    else
        printf ("security local endpoints only (no CURVE)");
    json_t *connections = json_object_get (security, "connections");
    printf ("; connections producers %lld, workers %lld, admin %lld (max %lld each)",
            s_int (connections, "producers"), s_int (connections, "workers"), s_int (connections, "admin"),
            s_int (security, "max_connections"));
    json_t *refused = json_object_get (security, "refused");
    long long total = s_int (refused, "total");
    if (total == 0) {
        printf ("; refused none\n");
        return;
    }
    printf ("; refused %lld:", total);
    const char *key;
    json_t *value;
    int shown = 0;
    json_object_foreach (refused, key, value) {
        if (!json_is_integer (value) || json_integer_value (value) == 0 || strcmp (key, "total") == 0)
            continue;
        printf ("%s %s %lld", shown++? ",": "", key, (long long) json_integer_value (value));
    }
    putchar ('\n');
}

int
cli_status (int argc, char **argv)
{
    s_options_t options;
    int rc = s_parse ("status", argc, argv, 0, s_help_status, &options);
    if (rc >= 0)
        return rc;
    json_t *body;
    char *raw;
    rc = s_request ("status", &options, "status", json_object (), "not found", &body, &raw);
    if (rc >= 0)
        return rc;
    if (options.json)
        s_print_raw (raw);
    else {
        json_t *channels = json_object_get (body, "channels");
        int width = 7;
        size_t i;
        json_t *channel;
        json_array_foreach (channels, i, channel) {
            const char *name = json_string_value (json_object_get (channel, "name"));
            if (name && (int) strlen (name) > width)
                width = (int) strlen (name);
        }
        printf ("%-*s  %-6s %8s %9s %8s %10s %8s %7s\n", width, "CHANNEL", "DRIVER",
                "PENDING", "IN-FLIGHT", "RETRYING", "DONE", "DEAD", "WORKERS");
        json_array_foreach (channels, i, channel) {
            char name[HP_MAX_ID + 1];
            char driver[32];
            printf ("%-*s  %-6s %8lld %9lld %8lld %10lld %8lld %7lld\n", width,
                    s_cell (channel, "name", name, sizeof name),
                    s_cell (channel, "driver", driver, sizeof driver),
                    s_int (channel, "pending"), s_int (channel, "in_flight"),
                    s_int (channel, "retrying"), s_int (channel, "done"),
                    s_int (channel, "dead"), s_int (channel, "workers"));
        }
        json_t *broker = json_object_get (body, "broker");
        char version[32];
        char store[512];
        printf ("\nbroker %s up ", s_cell (broker, "version", version, sizeof version));
        s_print_uptime (s_int (broker, "uptime_ms"));
        printf (", %lld events stored in %s\n", s_int (broker, "events"),
                s_cell (broker, "store", store, sizeof store));
        json_t *producers = json_object_get (body, "producers");
        if (s_int (producers, "peers_not_reading") > 0 || s_int (producers, "dropped") > 0)
            printf ("producers: %lld not reading their replies (%lld replies waiting), "
                    "%lld dropped since start (%lld replies lost to them)\n",
                    s_int (producers, "peers_not_reading"), s_int (producers, "unread_replies"),
                    s_int (producers, "dropped"), s_int (producers, "replies_lost"));
        s_print_security (json_object_get (body, "security"));
    }
    json_decref (body);
    free (raw);
    return 0;
}

static int
s_dead_list (const char *cmd, const s_options_t *options)
{
    json_t *args = json_object ();
    if (options->channel)
        json_object_set_new (args, "channel", json_string (options->channel));
    if (options->limit)
        json_object_set_new (args, "limit", json_integer (options->limit));
    json_t *body;
    char *raw;
    int rc = s_request (cmd, options, "dead.list", args, "not found", &body, &raw);
    if (rc >= 0)
        return rc;
    if (options->json)
        s_print_raw (raw);
    else {
        json_t *tasks = json_object_get (body, "tasks");
        size_t i;
        json_t *task;
        if (json_array_size (tasks) == 0)
            printf ("no dead tasks%s%s\n", options->channel? " in channel ": "",
                    options->channel? options->channel: "");
        else
            printf ("%-36s  %-12s %8s  %-24s  %s\n", "TASK-ID", "CHANNEL", "ATTEMPTS",
                    "DEAD-AT", "LAST-ERROR");
        json_array_foreach (tasks, i, task) {
            char id[HP_MAX_ID + 1];
            char channel[HP_MAX_ID + 1];
            char at[40];
            char error[HP_MAX_TEXT + 1];
            printf ("%-36s  %-12s %8lld  %-24s  %s\n", s_cell (task, "task_id", id, sizeof id),
                    s_cell (task, "channel", channel, sizeof channel), s_int (task, "attempts"),
                    s_time (task, "dead_at", at, sizeof at),
                    s_cell (task, "last_error", error, sizeof error));
        }
    }
    json_decref (body);
    free (raw);
    return 0;
}

static int
s_dead_show (const char *cmd, const s_options_t *options)
{
    char not_found[HP_MAX_ID + 32];
    snprintf (not_found, sizeof not_found, "no dead task %s", options->id);
    json_t *body;
    char *raw;
    int rc = s_request (cmd, options, "dead.show",
                        json_pack ("{s:s}", "task_id", options->id), not_found, &body, &raw);
    if (rc >= 0)
        return rc;
    if (options->json)
        s_print_raw (raw);
    else {
        json_t *task = json_object_get (body, "task");
        char text[HP_MAX_TEXT + 1];
        char at[40];
        printf ("task        %s\n", s_cell (task, "task_id", text, sizeof text));
        printf ("event       %s\n", s_cell (task, "event_id", text, sizeof text));
        printf ("channel     %s\n", s_cell (task, "channel", text, sizeof text));
        printf ("attempts    %lld\n", s_int (task, "attempts"));
        printf ("dead at     %s\n", s_time (task, "dead_at", at, sizeof at));
        printf ("last error  %s\n", s_cell (task, "last_error", text, sizeof text));
        printf ("\n%-7s  %-24s  %-13s  %s\n", "ATTEMPT", "AT", "OUTCOME", "ERROR");
        size_t i;
        json_t *entry;
        json_array_foreach (json_object_get (task, "history"), i, entry) {
            char outcome[32];
            printf ("%-7lld  %-24s  %-13s  %s\n", s_int (entry, "attempt"),
                    s_time (entry, "at", at, sizeof at),
                    s_cell (entry, "outcome", outcome, sizeof outcome),
                    s_cell (entry, "error", text, sizeof text));
        }
        json_t *event = json_object_get (task, "event");
        char *pretty = event? json_dumps (event, JSON_INDENT (2)): NULL;
        if (pretty)
            printf ("\nevent:\n%s\n", pretty);
        free (pretty);
    }
    json_decref (body);
    free (raw);
    return 0;
}

//  dead retry / dead purge: one selector, then "retried N" / "purged N".
static int
s_dead_act (const char *cmd, const s_options_t *options, const char *verb,
            const char *count_key, const char *done)
{
    int selectors = (options->id != NULL) + (options->channel != NULL) + options->all;
    if (selectors != 1)
        return cli_usage_error (cmd, "give exactly one of TASK_ID, --channel C and --all");
    json_t *args = options->id? json_pack ("{s:s}", "task_id", options->id)
                 : options->channel? json_pack ("{s:s}", "channel", options->channel)
                 : json_pack ("{s:b}", "all", 1);
    char not_found[HP_MAX_ID + 32];
    snprintf (not_found, sizeof not_found, "no dead task %s", options->id? options->id: "");
    json_t *body;
    char *raw;
    int rc = s_request (cmd, options, verb, args, not_found, &body, &raw);
    if (rc >= 0)
        return rc;
    long long count = s_int (body, count_key);
    bool missing = options->id && count == 0;
    if (options->json)
        s_print_raw (raw);
    else
    if (!missing)
        printf ("%s %lld dead task%s\n", done, count, count == 1? "": "s");
    json_decref (body);
    free (raw);
    if (missing)
        return cli_fail (cmd, EX_DATAERR, "%s", not_found);
    return 0;
}

static int
s_dead_run (const char *sub, int count, char **args);

//  Index of the subcommand word in argv (options may come before it, as in
//  `herald dead -c FILE list`), or -1.
static int
s_find_subcommand (int argc, char **argv)
{
    static const char *takes_value[] = {
        "-c", "--config", "-e", "--endpoint", "--timeout", "--channel", "--limit", "-k", "--key",
        "--server-key", NULL
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0')
            return i;
        for (int k = 0; takes_value[k]; k++)
            if (strcmp (arg, takes_value[k]) == 0)
                i++;
    }
    return -1;
}

int
cli_dead (int argc, char **argv)
{
    int at = s_find_subcommand (argc, argv);
    if (at < 0) {
        for (int i = 1; i < argc; i++) {
            if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
                s_help_dead (stdout);
                return 0;
            }
            if (strcmp (argv[i], "--version") == 0 || strcmp (argv[i], "-V") == 0)
                return cli_version ();
        }
        return cli_usage_error ("dead", "missing the subcommand: list, show, retry or purge");
    }
    //  The subcommand's own argv: its name, then every other argument in order
    char **args = calloc ((size_t) argc + 1, sizeof *args);
    if (!args)
        return cli_fail ("dead", EX_OSERR, "out of memory");
    int count = 0;
    args[count++] = argv[at];
    for (int i = 1; i < argc; i++)
        if (i != at)
            args[count++] = argv[i];
    int rc = s_dead_run (argv[at], count, args);
    free (args);
    return rc;
}

static int
s_dead_run (const char *sub, int count, char **args)
{
    s_options_t options;
    int rc;
    if (strcmp (sub, "list") == 0) {
        rc = s_parse ("dead list", count, args, S_ALLOW_CHANNEL | S_ALLOW_LIMIT,
                      s_help_dead, &options);
        return rc >= 0? rc: s_dead_list ("dead list", &options);
    }
    if (strcmp (sub, "show") == 0) {
        rc = s_parse ("dead show", count, args, S_ALLOW_ID | S_NEED_ID, s_help_dead, &options);
        return rc >= 0? rc: s_dead_show ("dead show", &options);
    }
    if (strcmp (sub, "retry") == 0) {
        rc = s_parse ("dead retry", count, args, S_ALLOW_ID | S_ALLOW_CHANNEL | S_ALLOW_ALL,
                      s_help_dead, &options);
        return rc >= 0? rc: s_dead_act ("dead retry", &options, "dead.retry", "retried", "retried");
    }
    if (strcmp (sub, "purge") == 0) {
        rc = s_parse ("dead purge", count, args, S_ALLOW_ID | S_ALLOW_CHANNEL | S_ALLOW_ALL,
                      s_help_dead, &options);
        return rc >= 0? rc: s_dead_act ("dead purge", &options, "dead.purge", "purged", "purged");
    }
    return cli_usage_error ("dead", "unknown subcommand '%s' (list, show, retry, purge)", sub);
}

int
cli_track (int argc, char **argv)
{
    s_options_t options;
    int rc = s_parse ("track", argc, argv, S_ALLOW_ID | S_NEED_ID, s_help_track, &options);
    if (rc >= 0)
        return rc;
    char not_found[HP_MAX_ID + 32];
    snprintf (not_found, sizeof not_found, "no event %s", options.id);
    json_t *body;
    char *raw;
    rc = s_request ("track", &options, "track", json_pack ("{s:s}", "event_id", options.id),
                    not_found, &body, &raw);
    if (rc >= 0)
        return rc;
    if (options.json)
        s_print_raw (raw);
    else {
        size_t i;
        json_t *event;
        json_array_foreach (json_object_get (body, "events"), i, event) {
            char text[HP_MAX_TEXT + 1];
            char at[40];
            if (i > 0)
                putchar ('\n');
            printf ("event     %s\n", s_cell (event, "event_id", text, sizeof text));
            printf ("source    %s\n", s_cell (event, "source", text, sizeof text));
            printf ("type      %s\n", s_cell (event, "type", text, sizeof text));
            printf ("received  %s\n", s_time (event, "received_at", at, sizeof at));
            if (json_string_value (json_object_get (event, "duplicate_key")))
                printf ("key       %s\n", s_cell (event, "duplicate_key", text, sizeof text));
            printf ("\n%-12s  %-9s  %8s  %-24s  %s\n", "CHANNEL", "STATE", "ATTEMPTS",
                    "UPDATED", "LAST-ERROR");
            size_t j;
            json_t *channel;
            json_array_foreach (json_object_get (event, "channels"), j, channel) {
                char name[HP_MAX_ID + 1];
                char state[32];
                printf ("%-12s  %-9s  %8lld  %-24s  %s\n",
                        s_cell (channel, "channel", name, sizeof name),
                        s_cell (channel, "state", state, sizeof state),
                        s_int (channel, "attempts"), s_time (channel, "updated_at", at, sizeof at),
                        s_cell (channel, "last_error", text, sizeof text));
            }
        }
    }
    json_decref (body);
    free (raw);
    return 0;
}
