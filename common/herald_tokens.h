/*  herald_tokens: the HTTP endpoint's bearer tokens, in the file named by
    security.tokens_file. A token is 32 random bytes (getrandom) shown once
    as "herald_" and 64 hex digits; the file keeps only its SHA-256
    (libsodium), with a name, a role and when it was made, one per line:

        # herald tokens: NAME ROLE SHA256 CREATED_MS
        shop-web producer 9f86d081884c7d65...  1764470000000

    `herald token` writes it (whole, atomically: temporary file, fsync,
    rename, mode 0600); the broker reads it again when it changes. A fast
    hash is right here: the secret has 256 random bits, nothing to guess. */
#ifndef HERALD_TOKENS_H
#define HERALD_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HERALD_TOKEN_PREFIX     "herald_"
#define HERALD_TOKEN_TEXT       72      /* "herald_" + 64 hex digits + NUL */
#define HERALD_TOKEN_NAME_MAX   64      /* names: 1..63 of A-Z a-z 0-9 _ . - */
#define HERALD_TOKENS_MAX       1024    /* tokens in one file */

typedef struct {
    char name[HERALD_TOKEN_NAME_MAX];
    unsigned role;                      /* one herald_role_t: PRODUCER, ADMIN_READ or ADMIN_OPERATE */
    unsigned char hash[32];             /* SHA-256 of the token text */
    int64_t created_ms;                 /* wall clock, Unix ms */
} herald_token_t;

typedef struct herald_tokens herald_tokens_t;

/*  An empty set. NULL on OOM. */
herald_tokens_t *
    herald_tokens_new (void);

/*  NULL-safe; nulls *self_p. */
void
    herald_tokens_destroy (herald_tokens_t **self_p);

/*  Replaces the set with the file's tokens. A missing file is an empty set.
    0, or -1 with "FILE:LINE: what" in err (the set is then unchanged). */
int
    herald_tokens_load (herald_tokens_t *self, const char *path, char *err, size_t errlen);

/*  Writes the set to path atomically (PATH.tmp, fsync, rename, directory
    fsync), mode 0600. 0, or -1 with err. */
int
    herald_tokens_save (const herald_tokens_t *self, const char *path, char *err, size_t errlen);

/*  Adds a token named name with role, made now (wall ms): writes its text
    into token (HERALD_TOKEN_TEXT bytes; show it once, it is kept nowhere).
    0, or -1 with err (bad name, name taken, full, no randomness). */
int
    herald_tokens_add (herald_tokens_t *self, const char *name, unsigned role, int64_t now_ms,
                       char *token, char *err, size_t errlen);

/*  Removes the token named name. 0, or -1 if there is none. */
int
    herald_tokens_revoke (herald_tokens_t *self, const char *name);

size_t
    herald_tokens_count (const herald_tokens_t *self);

/*  The i-th token (no secret in it), or NULL past the end. */
const herald_token_t *
    herald_tokens_at (const herald_tokens_t *self, size_t i);

/*  The token whose text is token (len bytes), compared by hash in
    constant time, or NULL. */
const herald_token_t *
    herald_tokens_check (const herald_tokens_t *self, const char *token, size_t len);

/*  "producer", "admin_read", "admin_operate"; "?" for anything else. */
const char *
    herald_token_role_name (unsigned role);

/*  Parses a role name. 0 with *role, or -1. */
int
    herald_token_role_parse (const char *text, unsigned *role);

/*  True for a valid token name. */
bool
    herald_token_name_valid (const char *name);

#endif
