/*  herald_tokens: bearer tokens for the HTTP endpoint (see herald_tokens.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_config.h"
#include "herald_tokens.h"

#define S_FILE_MAX      (4 * 1024 * 1024)
#define S_HEADER        "# herald tokens (herald token new|list|revoke): NAME ROLE SHA256 CREATED_MS\n" \
                        "# Only hashes: a token is shown once, when it is made. Mode 0600.\n"

struct herald_tokens {
    herald_token_t *tokens;
    size_t count, cap;
};

static int
s_fail (char *err, size_t errlen, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static int
s_fail (char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list args;
        va_start (args, fmt);
        vsnprintf (err, errlen, fmt, args);
        va_end (args);
    }
    return -1;
}

herald_tokens_t *
herald_tokens_new (void)
{
    if (sodium_init () < 0)
        return NULL;
    return calloc (1, sizeof (herald_tokens_t));
}

void
herald_tokens_destroy (herald_tokens_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herald_tokens_t *self = *self_p;
    free (self->tokens);
    free (self);
    *self_p = NULL;
}

bool
herald_token_name_valid (const char *name)
{
    size_t len = name? strlen (name): 0;
    if (len == 0 || len >= HERALD_TOKEN_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
              || *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

const char *
herald_token_role_name (unsigned role)
{
    switch (role) {
        case HERALD_ROLE_PRODUCER:      return "producer";
        case HERALD_ROLE_ADMIN_READ:    return "admin_read";
        case HERALD_ROLE_ADMIN_OPERATE: return "admin_operate";
        default:                        return "?";
    }
}

int
herald_token_role_parse (const char *text, unsigned *role)
{
    static const unsigned roles[] = { HERALD_ROLE_PRODUCER, HERALD_ROLE_ADMIN_READ, HERALD_ROLE_ADMIN_OPERATE };
    for (size_t i = 0; text && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp (text, herald_token_role_name (roles[i])) == 0) {
            *role = roles[i];
            return 0;
        }
    return -1;
}

static int
s_push (herald_tokens_t *self, const herald_token_t *token)
{
    if (self->count == self->cap) {
        size_t cap = self->cap? self->cap * 2: 16;
        herald_token_t *grown = realloc (self->tokens, cap * sizeof *grown);
        if (!grown)
            return -1;
        self->tokens = grown;
        self->cap = cap;
    }
    self->tokens[self->count++] = *token;
    return 0;
}

static int
s_hex_value (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*  One line "NAME ROLE SHA256 CREATED_MS" into token. NULL, or what is wrong. */
static const char *
s_parse_line (char *line, herald_token_t *token)
{
    char *fields[4];
    size_t count = 0;
    char *p = line;
    while (*p && count < 4) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        fields[count++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (count != 4 || *p)
        return "expected NAME ROLE SHA256 CREATED_MS";
    if (!herald_token_name_valid (fields[0]))
        return "the name must be 1 to 63 of A-Z a-z 0-9 _ . -";
    memset (token, 0, sizeof *token);
    snprintf (token->name, sizeof token->name, "%s", fields[0]);
    if (herald_token_role_parse (fields[1], &token->role) != 0)
        return "the role must be producer, admin_read or admin_operate";
    if (strlen (fields[2]) != 64)
        return "the hash must be 64 lower-case hex digits";
    for (int i = 0; i < 32; i++) {
        int hi = s_hex_value (fields[2][2 * i]), lo = s_hex_value (fields[2][2 * i + 1]);
        if (hi < 0 || lo < 0)
            return "the hash must be 64 lower-case hex digits";
        token->hash[i] = (unsigned char) (hi << 4 | lo);
    }
    char *end = NULL;
    errno = 0;
    long long created = strtoll (fields[3], &end, 10);
    if (errno || !end || *end || created < 0 || fields[3][0] < '0' || fields[3][0] > '9')
        return "CREATED_MS must be a number of milliseconds";
    token->created_ms = created;
    return NULL;
}

int
herald_tokens_load (herald_tokens_t *self, const char *path, char *err, size_t errlen)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        if (errno == ENOENT) {
            self->count = 0;
            return 0;
        }
        return s_fail (err, errlen, "%s: cannot open: %s", path, strerror (errno));
    }
    herald_tokens_t fresh = { 0 };
    char line[512];
    int number = 0, rc = 0;
    size_t total = 0;
    while (rc == 0 && fgets (line, sizeof line, file)) {
        number++;
        size_t len = strlen (line);
        total += len;
        if (total > S_FILE_MAX) {
            rc = s_fail (err, errlen, "%s: too large (more than %d bytes)", path, S_FILE_MAX);
            break;
        }
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = s_fail (err, errlen, "%s:%d: line too long", path, number);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        const char *start = line;
        while (*start == ' ' || *start == '\t')
            start++;
        if (!*start || *start == '#')
            continue;
        herald_token_t token;
        const char *why = s_parse_line (line, &token);
        if (why)
            rc = s_fail (err, errlen, "%s:%d: %s", path, number, why);
        else
        if (fresh.count >= HERALD_TOKENS_MAX)
            rc = s_fail (err, errlen, "%s:%d: too many tokens (at most %d)", path, number, HERALD_TOKENS_MAX);
        else {
            for (size_t i = 0; i < fresh.count && rc == 0; i++)
                if (strcmp (fresh.tokens[i].name, token.name) == 0)
                    rc = s_fail (err, errlen, "%s:%d: the name '%s' is there twice", path, number, token.name);
            if (rc == 0 && s_push (&fresh, &token) != 0)
                rc = s_fail (err, errlen, "%s: out of memory", path);
        }
    }
    if (rc == 0 && ferror (file))
        rc = s_fail (err, errlen, "%s: cannot read: %s", path, strerror (errno));
    fclose (file);
    if (rc != 0) {
        free (fresh.tokens);
        return -1;
    }
    free (self->tokens);
    *self = fresh;
    return 0;
}

int
herald_tokens_save (const herald_tokens_t *self, const char *path, char *err, size_t errlen)
{
    char tmp[HERALD_PATH_MAX + 16];
    if (snprintf (tmp, sizeof tmp, "%s.tmp", path) >= (int) sizeof tmp)
        return s_fail (err, errlen, "%s: path too long", path);
    unlink (tmp);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return s_fail (err, errlen, "%s: cannot create: %s", tmp, strerror (errno));
    FILE *file = fdopen (fd, "w");
    if (!file) {
        close (fd);
        unlink (tmp);
        return s_fail (err, errlen, "%s: out of memory", tmp);
    }
    fputs (S_HEADER, file);
    for (size_t i = 0; i < self->count; i++) {
        const herald_token_t *token = &self->tokens[i];
        char hex[65];
        sodium_bin2hex (hex, sizeof hex, token->hash, sizeof token->hash);
        fprintf (file, "%s %s %s %" PRId64 "\n", token->name, herald_token_role_name (token->role), hex,
                 token->created_ms);
    }
    int rc = 0;
    if (fflush (file) != 0 || ferror (file))
        rc = s_fail (err, errlen, "%s: cannot write: %s", tmp, strerror (errno));
    else
    if (fsync (fd) != 0)
        rc = s_fail (err, errlen, "%s: cannot sync: %s", tmp, strerror (errno));
    if (fclose (file) != 0 && rc == 0)
        rc = s_fail (err, errlen, "%s: cannot close: %s", tmp, strerror (errno));
    if (rc == 0 && rename (tmp, path) != 0)
        rc = s_fail (err, errlen, "%s: cannot rename %s to it: %s", path, tmp, strerror (errno));
    if (rc != 0) {
        unlink (tmp);
        return -1;
    }
    /*  The rename is durable once the directory is synced. */
    char dir[HERALD_PATH_MAX];
    snprintf (dir, sizeof dir, "%s", path);
    int dir_fd = open (dirname (dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        fsync (dir_fd);
        close (dir_fd);
    }
    return 0;
}

int
herald_tokens_add (herald_tokens_t *self, const char *name, unsigned role, int64_t now_ms, char *token,
                   char *err, size_t errlen)
{
    if (!herald_token_name_valid (name))
        return s_fail (err, errlen, "'%.80s': a token name is 1 to 63 of A-Z a-z 0-9 _ . -", name? name: "");
    if (strcmp (herald_token_role_name (role), "?") == 0)
        return s_fail (err, errlen, "the role must be producer, admin_read or admin_operate");
    for (size_t i = 0; i < self->count; i++)
        if (strcmp (self->tokens[i].name, name) == 0)
            return s_fail (err, errlen, "a token named '%s' exists: revoke it first, or choose another name",
                           name);
    if (self->count >= HERALD_TOKENS_MAX)
        return s_fail (err, errlen, "too many tokens (at most %d)", HERALD_TOKENS_MAX);
    unsigned char secret[32];
    if (getrandom (secret, sizeof secret, 0) != (ssize_t) sizeof secret)
        return s_fail (err, errlen, "cannot get random bytes: %s", strerror (errno));
    char hex[65];
    sodium_bin2hex (hex, sizeof hex, secret, sizeof secret);
    sodium_memzero (secret, sizeof secret);
    herald_token_t entry = { .role = role, .created_ms = now_ms };
    snprintf (entry.name, sizeof entry.name, "%s", name);
    snprintf (token, HERALD_TOKEN_TEXT, HERALD_TOKEN_PREFIX "%s", hex);
    sodium_memzero (hex, sizeof hex);
    crypto_hash_sha256 (entry.hash, (const unsigned char *) token, strlen (token));
    if (s_push (self, &entry) != 0) {
        sodium_memzero (token, HERALD_TOKEN_TEXT);
        return s_fail (err, errlen, "out of memory");
    }
    return 0;
}

int
herald_tokens_revoke (herald_tokens_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp (self->tokens[i].name, name) == 0) {
            memmove (&self->tokens[i], &self->tokens[i + 1], (self->count - i - 1) * sizeof self->tokens[0]);
            self->count--;
            return 0;
        }
    return -1;
}

size_t
herald_tokens_count (const herald_tokens_t *self)
{
    return self? self->count: 0;
}

const herald_token_t *
herald_tokens_at (const herald_tokens_t *self, size_t i)
{
    return self && i < self->count? &self->tokens[i]: NULL;
}

const herald_token_t *
herald_tokens_check (const herald_tokens_t *self, const char *token, size_t len)
{
    if (!self || !token)
        return NULL;
    unsigned char hash[32];
    crypto_hash_sha256 (hash, (const unsigned char *) token, len);
    /*  Every entry is compared, each in constant time: the time taken says
        nothing about which hash matched, or how much of it. */
    const herald_token_t *found = NULL;
    for (size_t i = 0; i < self->count; i++)
        if (sodium_memcmp (hash, self->tokens[i].hash, sizeof hash) == 0)
            found = &self->tokens[i];
    return found;
}
