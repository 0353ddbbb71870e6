/*  config_check: what loading a configuration cannot see alone, checked
    before the processes start, so that a mistake is an error at
    `herald check-config` (the systemd unit's ExecStartPre) instead of a
    worker that exits 78 and is restarted for ever:

    - config_check_endpoints (called by the loader): no two endpoints the
      broker binds share an address (same tcp host:port, a wildcard host and
      any host on the same port, the same ipc path or inproc name);
    - herald_config_check: files the processes read are readable (templates,
      CA bundles), environment variables they read are set (SMTP password,
      HTTP header values), directories they write can be created and written
      (the store's, the file driver's), ipc socket directories exist.

    Each problem reads "FILE:LINE: key.path: what" like the loader's errors;
    the lines come from parsing the file again. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config_internal.h"
#include "herald_text.h"

#define S_MAX_FILE          (4 * 1024 * 1024)   /* as herald_config_load */
#define S_MAX_KEYS          8                   /* segments of a key path */

/* ------------------------------------------------------------------------ */
/*  Key paths and their lines                                                */

/*  Line of the deepest node present along keys (NULL-terminated), so a
    default value is reported at its parent's line; 0 without a tree. */
static int
s_line (const config_node_t *root, const char *const *keys)
{
    int line = root? 1: 0;
    const config_node_t *node = root;
    for (size_t i = 0; node && keys[i]; i++) {
        node = config_node_child (node, keys[i]);
        if (node)
            line = node->line;
    }
    return line;
}

static bool
s_present (const config_node_t *root, const char *const *keys)
{
    const config_node_t *node = root;
    for (size_t i = 0; node && keys[i]; i++)
        node = config_node_child (node, keys[i]);
    return node != NULL;
}

static void
s_join (char *out, size_t size, const char *const *keys)
{
    out[0] = '\0';
    for (size_t i = 0; keys[i]; i++) {
        char part[CONFIG_PATH_LEN];
        config_path_join (part, sizeof part, out, keys[i]);
        snprintf (out, size, "%s", part);
    }
}

/* ------------------------------------------------------------------------ */
/*  Endpoints                                                                */

typedef struct {
    const char *key;            /* broker.listen.KEY */
    const char *value;
} s_endpoint_t;

static bool
s_wildcard_host (const char *host, size_t len)
{
    static const char *const any[] = { "*", "0.0.0.0", "::", "[::]", NULL };
    for (int i = 0; any[i]; i++)
        if (strlen (any[i]) == len && memcmp (any[i], host, len) == 0)
            return true;
    return false;
}

static bool
s_same_host (const char *a, size_t a_len, const char *b, size_t b_len)
{
    static const char *const local[] = { "localhost", "127.0.0.1", NULL };
    bool a_local = false, b_local = false;
    for (int i = 0; local[i]; i++) {
        a_local |= strlen (local[i]) == a_len && strncasecmp (local[i], a, a_len) == 0;
        b_local |= strlen (local[i]) == b_len && strncasecmp (local[i], b, b_len) == 0;
    }
    if (a_local && b_local)
        return true;
    return a_len == b_len && strncasecmp (a, b, a_len) == 0;
}

/*  True when binding a and b would compete for one address. */
static bool
s_endpoints_clash (const char *a, const char *b)
{
    if (strncmp (a, "tcp://", 6) == 0 && strncmp (b, "tcp://", 6) == 0) {
        a += 6;
        b += 6;
        const char *a_colon = strrchr (a, ':');
        const char *b_colon = strrchr (b, ':');
        if (!a_colon || !b_colon)
            return strcmp (a, b) == 0;
        const char *a_port = a_colon + 1;
        const char *b_port = b_colon + 1;
        //  "*" and "!" ask the system for a free port: never the same one
        if (strcmp (a_port, b_port) != 0 || strchr ("*!", *a_port))
            return false;
        size_t a_len = (size_t) (a_colon - a);
        size_t b_len = (size_t) (b_colon - b);
        //  tcp://eth0;192.168.1.1:5570 names a source: compare what is bound
        const char *semi = memchr (a, ';', a_len);
        if (semi) {
            a_len -= (size_t) (semi + 1 - a);
            a = semi + 1;
        }
        semi = memchr (b, ';', b_len);
        if (semi) {
            b_len -= (size_t) (semi + 1 - b);
            b = semi + 1;
        }
        return s_wildcard_host (a, a_len) || s_wildcard_host (b, b_len)
            || s_same_host (a, a_len, b, b_len);
    }
    return strcmp (a, b) == 0;      //  ipc:// and inproc://: the same path or name
}

int
config_check_endpoints (const herald_config_t *cfg, const config_node_t *root, const char *name,
                        char *err, size_t errlen)
{
    //  The HTTP endpoint is a TCP socket too
    char http[300];
    snprintf (http, sizeof http, "tcp://%s", cfg->broker.http);
    const s_endpoint_t endpoints[] = {
        { "producers", cfg->broker.producers },
        { "workers", cfg->broker.workers },
        { "admin", cfg->broker.admin },
        { "http", http },
    };
    size_t count = sizeof endpoints / sizeof endpoints[0] - (cfg->broker.http[0]? 0: 1);
    for (size_t i = 0; i < count; i++) {
        for (size_t j = i + 1; j < count; j++) {
            if (!s_endpoints_clash (endpoints[i].value, endpoints[j].value))
                continue;
            //  Report at the one the file sets (the other may be a default)
            const char *keys_j[] = { "broker", "listen", endpoints[j].key, NULL };
            const s_endpoint_t *at = s_present (root, keys_j)? &endpoints[j]: &endpoints[i];
            const s_endpoint_t *other = at == &endpoints[j]? &endpoints[i]: &endpoints[j];
            const char *keys[] = { "broker", "listen", at->key, NULL };
            const char *other_keys[] = { "broker", "listen", other->key, NULL };
            char path[CONFIG_PATH_LEN];
            s_join (path, sizeof path, keys);
            char where[64] = " (default)";
            if (s_present (root, other_keys))
                snprintf (where, sizeof where, " (line %d)", s_line (root, other_keys));
            snprintf (err, errlen, "%s:%d: %s: '%.200s' is the address of broker.listen.%s%s too: "
                      "each endpoint needs its own (another port or path)",
                      name, s_line (root, keys), path, at->value, other->key, where);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/*  Environment checks                                                       */

typedef struct {
    const herald_config_t *cfg;
    config_node_t *root;        /* the file parsed again, for lines; NULL if it could not be */
    herald_text_t report;
    int problems;
} s_check_t;

static void
s_problem (s_check_t *self, const char *const *keys, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_problem (s_check_t *self, const char *const *keys, const char *fmt, ...)
{
    char path[CONFIG_PATH_LEN];
    s_join (path, sizeof path, keys);
    int line = s_line (self->root, keys);
    if (line > 0)
        herald_text_printf (&self->report, "%s:%d: %s: ", self->cfg->path, line, path);
    else
        herald_text_printf (&self->report, "%s: %s: ", self->cfg->path, path);
    char text[1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (text, sizeof text, fmt, args);
    va_end (args);
    herald_text_printf (&self->report, "%s\n", text);
    self->problems++;
}

/*  " (relative to DIR)" for a relative path, so an operator sees where a
    process started elsewhere (systemd's WorkingDirectory) would look. */
static const char *
s_relative_hint (const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    char cwd[PATH_MAX];
    if (path[0] != '/' && getcwd (cwd, sizeof cwd))
        snprintf (buf, size, " (relative paths resolve against the working directory, %s)", cwd);
    return buf;
}

/*  A file a process opens for reading at start. */
static void
s_check_readable (s_check_t *self, const char *const *keys, const char *path)
{
    char hint[PATH_MAX + 80];
    struct stat st;
    if (stat (path, &st) != 0) {
        int saved = errno;
        s_problem (self, keys, "cannot read %s: %s%s", path, strerror (saved),
                   saved == ENOENT? s_relative_hint (path, hint, sizeof hint): "");
        return;
    }
    if (S_ISDIR (st.st_mode)) {
        s_problem (self, keys, "%s is a directory, not a file", path);
        return;
    }
    if (!S_ISREG (st.st_mode)) {
        s_problem (self, keys, "%s is not a regular file", path);
        return;
    }
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        s_problem (self, keys, "cannot read %s: %s", path, strerror (errno));
        return;
    }
    close (fd);
}

static bool
s_can_write_dir (const char *dir)
{
    return faccessat (AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0;
}

/*  A directory a process creates if missing (mkdir -p) and writes into. */
static void
s_check_writable_dir (s_check_t *self, const char *const *keys, const char *dir, const char *what)
{
    struct stat st;
    if (stat (dir, &st) == 0) {
        if (!S_ISDIR (st.st_mode))
            s_problem (self, keys, "%s %s exists and is not a directory", what, dir);
        else
        if (!s_can_write_dir (dir))
            s_problem (self, keys, "%s %s is not writable: %s", what, dir, strerror (errno));
        return;
    }
    if (errno != ENOENT && errno != ENOTDIR) {
        s_problem (self, keys, "%s %s: %s", what, dir, strerror (errno));
        return;
    }
    //  Missing: the nearest existing ancestor must take a new directory
    char parent[PATH_MAX];
    snprintf (parent, sizeof parent, "%s", dir);
    for (;;) {
        size_t len = strlen (parent);
        while (len > 1 && parent[len - 1] == '/')
            parent[--len] = '\0';
        char *slash = strrchr (parent, '/');
        if (!slash)
            snprintf (parent, sizeof parent, ".");
        else
        if (slash == parent)
            parent[1] = '\0';
        else
            *slash = '\0';
        if (stat (parent, &st) == 0) {
            if (!S_ISDIR (st.st_mode))
                s_problem (self, keys, "cannot create %s %s: %s is not a directory", what, dir, parent);
            else
            if (!s_can_write_dir (parent))
                s_problem (self, keys, "cannot create %s %s: %s is not writable: %s",
                           what, dir, parent, strerror (errno));
            return;
        }
        if (errno != ENOENT && errno != ENOTDIR) {
            s_problem (self, keys, "cannot create %s %s: %s: %s", what, dir, parent, strerror (errno));
            return;
        }
        if (strcmp (parent, ".") == 0 || strcmp (parent, "/") == 0)
            return;
    }
}

/*  Writes the directory part of path into dir ("." when it has none). */
static void
s_dirname (const char *path, char *dir, size_t size)
{
    snprintf (dir, size, "%s", path);
    char *slash = strrchr (dir, '/');
    if (!slash)
        snprintf (dir, size, ".");
    else
    if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
}

static void
s_check_store (s_check_t *self)
{
    const char *store = self->cfg->broker.store;
    const char *keys[] = { "broker", "store", NULL };
    if (strstr (store, "://"))
        return;             //  a database URL: nothing on this machine to check
    char dir[PATH_MAX];
    s_dirname (store, dir, sizeof dir);
    struct stat st;
    if (stat (store, &st) == 0) {
        if (S_ISDIR (st.st_mode)) {
            if (!s_can_write_dir (store))
                s_problem (self, keys, "store %s is not writable: %s", store, strerror (errno));
        }
        else
        if (faccessat (AT_FDCWD, store, R_OK | W_OK, AT_EACCESS) != 0)
            s_problem (self, keys, "store %s cannot be read and written: %s", store, strerror (errno));
        //  SQLite's WAL and the lock file are created beside it
        if (!s_can_write_dir (dir))
            s_problem (self, keys, "the store's directory %s is not writable (the write-ahead log "
                       "and the lock file go there): %s", dir, strerror (errno));
    }
    else
        s_check_writable_dir (self, keys, dir, "the store's directory");
    char lock[PATH_MAX];
    snprintf (lock, sizeof lock, "%s.lock", store);
    if (stat (lock, &st) == 0 && faccessat (AT_FDCWD, lock, R_OK | W_OK, AT_EACCESS) != 0)
        s_problem (self, keys, "the store's lock file %s cannot be opened for writing: %s",
                   lock, strerror (errno));
}

static void
s_check_ipc (s_check_t *self, const char *key, const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) != 0)
        return;
    const char *path = endpoint + 6;
    const char *keys[] = { "broker", "listen", key, NULL };
    if (*path == '@')
        return;             //  Linux abstract namespace: no file
    struct sockaddr_un addr;
    if (strlen (path) >= sizeof addr.sun_path) {
        s_problem (self, keys, "ipc path %s is too long for a socket (at most %zu characters)",
                   path, sizeof addr.sun_path - 1);
        return;
    }
    char dir[PATH_MAX];
    s_dirname (path, dir, sizeof dir);
    struct stat st;
    if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode))
        s_problem (self, keys, "directory %s of the ipc socket does not exist", dir);
    else
    if (!s_can_write_dir (dir))
        s_problem (self, keys, "directory %s of the ipc socket is not writable: %s", dir, strerror (errno));
}

static void
s_check_channel (s_check_t *self, const herald_channel_t *ch)
{
    const char *name = ch->name;
    if (ch->driver == HERALD_DRIVER_FILE) {
        const char *keys[] = { "channels", name, "dir", NULL };
        s_check_writable_dir (self, keys, ch->dir, "directory");
    }
    //  Every file the configuration names must be there, whichever driver
    //  reads it: a path set and missing is a mistake either way.
    const struct {
        const char *section;
        const char *key;
        const char *path;
    } files[] = {
        { "smtp", "text_template", ch->smtp.text_template },
        { "smtp", "html_template", ch->smtp.html_template },
        { "smtp", "ca_file", ch->smtp.ca_file },
        { "http", "body_template", ch->http.body_template },
        { "http", "ca_file", ch->http.ca_file },
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i].path[0]) {
            const char *keys[] = { "channels", name, files[i].section, files[i].key, NULL };
            s_check_readable (self, keys, files[i].path);
        }
    if (ch->driver == HERALD_DRIVER_SMTP && ch->smtp.username[0] && ch->smtp.password_env[0]
    &&  !getenv (ch->smtp.password_env)) {
        const char *keys[] = { "channels", name, "smtp", "password_env", NULL };
        s_problem (self, keys, "environment variable %s is not set (the %s workers read the SMTP "
                   "password from it at start)", ch->smtp.password_env, name);
    }
    if (ch->driver != HERALD_DRIVER_HTTP)
        return;
    for (int i = 0; i < ch->http.header_count && i < HERALD_MAX_HEADERS; i++) {
        const herald_header_t *header = &ch->http.headers[i];
        const char *keys[] = { "channels", name, "http", "headers", header->name, NULL };
        if (strcasecmp (header->name, "Idempotency-Key") == 0
        ||  strcasecmp (header->name, "X-Herald-Attempt") == 0) {
            s_problem (self, keys, "Herald sets this header itself (the task id and attempt); "
                       "remove it");
            continue;
        }
        if (!header->value_env[0])
            continue;
        const char *value = getenv (header->value_env);
        if (!value) {
            s_problem (self, keys, "environment variable %s is not set (the %s workers read this "
                       "header's value from it at start)", header->value_env, name);
            continue;
        }
        for (const char *p = value; *p; p++)
            if ((unsigned char) *p < 0x20 && *p != '\t') {
                //  never show the value: it is a secret
                s_problem (self, keys, "the value of %s holds a control character (a newline?)",
                           header->value_env);
                break;
            }
    }
}

/*  The file parsed again, for line numbers; NULL if it cannot be. */
static config_node_t *
s_parse_again (const char *path)
{
    FILE *handle = path && *path? fopen (path, "rb"): NULL;
    if (!handle)
        return NULL;
    char *text = malloc (S_MAX_FILE + 1);
    size_t len = text? fread (text, 1, S_MAX_FILE + 1, handle): 0;
    fclose (handle);
    config_node_t *root = NULL;
    char err[HERALD_ERR_MAX];
    if (text && len <= S_MAX_FILE && config_yaml_parse (text, len, path, err, sizeof err, &root) != 0)
        root = NULL;
    free (text);
    return root;
}

/*  The HTTP endpoint's files: the token file may be missing (the broker
    then knows no token, and `herald token new` creates it), but its
    directory must be there; the TLS files must be readable. */
static void
s_check_http (s_check_t *self)
{
    const herald_security_config_t *sec = &self->cfg->security;
    if (sec->tokens_file[0]) {
        const char *keys[] = { "security", "tokens_file", NULL };
        struct stat st;
        if (stat (sec->tokens_file, &st) == 0)
            s_check_readable (self, keys, sec->tokens_file);
        else {
            char dir[PATH_MAX];
            s_dirname (sec->tokens_file, dir, sizeof dir);
            if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode))
                s_problem (self, keys, "directory %s of the token file does not exist", dir);
        }
    }
    if (sec->tls_cert[0]) {
        const char *keys[] = { "security", "tls_cert", NULL };
        s_check_readable (self, keys, sec->tls_cert);
    }
    if (sec->tls_key[0]) {
        const char *keys[] = { "security", "tls_key", NULL };
        s_check_readable (self, keys, sec->tls_key);
    }
}

int
herald_config_check (const herald_config_t *self, char **report)
{
    *report = NULL;
    s_check_t check = { .cfg = self };
    check.root = s_parse_again (self->path);
    s_check_store (&check);
    s_check_ipc (&check, "producers", self->broker.producers);
    s_check_ipc (&check, "workers", self->broker.workers);
    s_check_ipc (&check, "admin", self->broker.admin);
    s_check_http (&check);
    for (int i = 0; i < self->channel_count && i < HERALD_MAX_CHANNELS; i++)
        s_check_channel (&check, &self->channels[i]);
    config_node_destroy (&check.root);
    if (check.report.failed) {
        free (check.report.data);
        return -1;
    }
    *report = check.report.data;
    return check.problems;
}
