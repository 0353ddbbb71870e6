/*  herald_keys: CURVE key files (ZeroMQ CurveZMQ keys as Z85 text).

        NAME.public   the public key on its first line; comment lines (#) after
        NAME.secret   mode 0600, "public-key = Z85" and "secret-key = Z85" lines

    Every process that reads a secret key goes through here, so every one
    refuses a secret file that group or others may read or write. Errors name
    the file and, for malformed content, the line: "FILE:LINE: what". */
#ifndef HERALD_KEYS_H
#define HERALD_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define HERALD_KEY_LEN  40              /* Z85 text of a 32-byte CURVE key */

typedef struct {
    char public_key[HERALD_KEY_LEN + 1];    /* Z85, NUL-terminated */
    char secret_key[HERALD_KEY_LEN + 1];    /* Z85, NUL-terminated */
} herald_keypair_t;

/*  True if text is exactly one Z85-encoded 32-byte key (40 characters). */
bool
    herald_keys_valid (const char *text);

/*  Reads the public key on the first line of file into key. 0, or -1 with
    "FILE:LINE: what" in err. A file others may write is refused (anyone
    could swap the key). */
int
    herald_keys_load_public (const char *file, char key[HERALD_KEY_LEN + 1],
                             char *err, size_t errlen);

/*  Reads a key pair from a secret file. Refuses a file that is not a regular
    file or whose mode gives group or others any access ("FILE: mode 0644 is
    readable by group and others; chmod 600 it"), and a public key that does
    not belong to the secret key. 0, or -1 with the reason in err. */
int
    herald_keys_load_secret (const char *file, herald_keypair_t *pair, char *err, size_t errlen);

/*  Makes a new key pair and writes NAME.public (mode 0644) and NAME.secret
    (created with O_EXCL and mode 0600, never chmod-ed afterwards). Never
    overwrites a file: an existing one is an error. The paths written are
    copied to public_path and secret_path (may be NULL). 0 / -1 with err. */
int
    herald_keys_generate (const char *name, char *public_path, size_t public_size,
                          char *secret_path, size_t secret_size, char *err, size_t errlen);

/*  Writes path with its ending from_ext replaced by to_ext into out
    (".secret" -> ".public"). -1 if path does not end in from_ext or out is
    too small. */
int
    herald_keys_sibling (const char *path, const char *from_ext, const char *to_ext,
                         char *out, size_t size);

#endif
