/*  herald_keys: reading and writing CURVE key files (contract in herald_keys.h).
    Files are read through one descriptor (open, then fstat on it), so the mode
    checked is the mode of the file read. Secret text is wiped from buffers
    before they are released. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "herald_keys.h"

#define S_MAX_FILE      4096            /* a key file is a few lines */
#define S_PUBLIC_EXT    ".public"
#define S_SECRET_EXT    ".secret"

/*  Writes the formatted message into err. Always returns -1. */
static int
s_fail (char *err, size_t errlen, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static int
s_fail (char *err, size_t errlen, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vsnprintf (err, errlen, fmt, args);
    va_end (args);
    return -1;
}

bool
herald_keys_valid (const char *text)
{
    if (!text || strlen (text) != HERALD_KEY_LEN)
        return false;
    unsigned char decoded[32];
    bool ok = zmq_z85_decode (decoded, text) != NULL;
    explicit_bzero (decoded, sizeof decoded);
    return ok;
}

/*  "group", "others" or "group and others" for the mode bits in extra. */
static const char *
s_who (mode_t extra)
{
    if ((extra & 070) && (extra & 007))
        return "group and others";
    return (extra & 070)? "group": "others";
}

/*  "readable", "writable", "readable and writable" or "executable". */
static const char *
s_how (mode_t extra)
{
    bool r = extra & 044, w = extra & 022;
    if (r && w)
        return "readable and writable";
    return r? "readable": w? "writable": "executable";
}

/*  Reads file (at most S_MAX_FILE bytes) into buf, NUL-terminated. With
    secret, refuses any group or other permission. 0 / -1 with err. */
static int
s_read_file (const char *file, bool secret, char *buf, size_t size, char *err, size_t errlen)
{
    int fd = open (file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return s_fail (err, errlen, "%s: cannot open: %s", file, strerror (errno));
    struct stat st;
    int rc = -1;
    if (fstat (fd, &st) != 0)
        snprintf (err, errlen, "%s: cannot stat: %s", file, strerror (errno));
    else
    if (!S_ISREG (st.st_mode))
        snprintf (err, errlen, "%s: not a regular file", file);
    else
    if (secret && (st.st_mode & 077))
        snprintf (err, errlen, "%s: mode %04o is %s by %s; chmod 600 it", file,
                  (unsigned) (st.st_mode & 07777), s_how (st.st_mode & 077), s_who (st.st_mode & 077));
    else
    if (!secret && (st.st_mode & 002))
        snprintf (err, errlen, "%s: mode %04o is writable by others (anyone could replace the key); "
                  "chmod 644 it", file, (unsigned) (st.st_mode & 07777));
    else
    if (st.st_size >= (off_t) size || st.st_size > S_MAX_FILE)
        snprintf (err, errlen, "%s: too large for a key file (%lld bytes)", file, (long long) st.st_size);
    else {
        size_t len = 0;
        for (;;) {
            ssize_t n = read (fd, buf + len, size - 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                snprintf (err, errlen, "%s: cannot read: %s", file, strerror (errno));
                break;
            }
            len += (size_t) n;
            if (n == 0 || len == size - 1) {
                buf[len] = '\0';
                if (strlen (buf) != len)
                    snprintf (err, errlen, "%s: not a key file (it holds NUL bytes)", file);
                else
                    rc = 0;
                break;
            }
        }
    }
    close (fd);
    return rc;
}

/*  Splits text into lines in place: returns the next line (NUL-terminated,
    without trailing whitespace) and advances *cursor, or NULL at the end. */
static char *
s_next_line (char **cursor)
{
    char *line = *cursor;
    if (!line || !*line)
        return NULL;
    char *end = strchr (line, '\n');
    if (end) {
        *end = '\0';
        *cursor = end + 1;
    }
    else
        *cursor = line + strlen (line);
    size_t len = strlen (line);
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        line[--len] = '\0';
    return line;
}

static char *
s_skip_space (char *text)
{
    while (*text == ' ' || *text == '\t')
        text++;
    return text;
}

/*  Checks value (possibly "quoted") is a Z85 key and copies it into key.
    0 / -1 with "FILE:LINE: what". */
static int
s_take_key (const char *file, int line, const char *what, char *value,
            char key[HERALD_KEY_LEN + 1], char *err, size_t errlen)
{
    size_t len = strlen (value);
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value[len - 1] = '\0';
        value++;
        len -= 2;
    }
    if (len != HERALD_KEY_LEN)
        return s_fail (err, errlen, "%s:%d: not a CURVE %s: expected %d Z85 characters, got %zu",
                         file, line, what, HERALD_KEY_LEN, len);
    if (!herald_keys_valid (value))
        return s_fail (err, errlen, "%s:%d: not a CURVE %s: characters outside Z85",
                         file, line, what);
    memcpy (key, value, HERALD_KEY_LEN + 1);
    return 0;
}

int
herald_keys_load_public (const char *file, char key[HERALD_KEY_LEN + 1], char *err, size_t errlen)
{
    char spare[256];
    if (!err || errlen == 0)
        err = spare, errlen = sizeof spare;
    if (!file || !key)
        return s_fail (err, errlen, "(key): no file name");
    char text[S_MAX_FILE + 1];
    if (s_read_file (file, false, text, sizeof text, err, errlen) != 0)
        return -1;
    char *cursor = text;
    char *first = s_next_line (&cursor);
    if (!first || !*s_skip_space (first))
        return s_fail (err, errlen, "%s:1: empty: the first line must be the public key", file);
    first = s_skip_space (first);
    if (*first == '#')
        return s_fail (err, errlen, "%s:1: the first line must be the public key (comments come after it)",
                       file);
    /*  A comment may follow the key on its line: Z85 has no spaces. */
    char *space = strpbrk (first, " \t");
    if (space) {
        char *rest = s_skip_space (space);
        if (*rest != '#')
            return s_fail (err, errlen, "%s:1: unexpected text after the key (comments start with #)",
                             file);
        *space = '\0';
    }
    if (s_take_key (file, 1, "public key", first, key, err, errlen) != 0)
        return -1;
    char *line;
    for (int number = 2; (line = s_next_line (&cursor)); number++) {
        line = s_skip_space (line);
        if (*line && *line != '#')
            return s_fail (err, errlen, "%s:%d: unexpected text: a public key file holds the key "
                             "on line 1 and comments (#) after it", file, number);
    }
    return 0;
}

int
herald_keys_load_secret (const char *file, herald_keypair_t *pair, char *err, size_t errlen)
{
    char spare[256];
    if (!err || errlen == 0)
        err = spare, errlen = sizeof spare;
    if (!file || !pair)
        return s_fail (err, errlen, "(key): no file name");
    memset (pair, 0, sizeof *pair);
    char text[S_MAX_FILE + 1];
    int rc = s_read_file (file, true, text, sizeof text, err, errlen);
    char *cursor = text;
    char *line;
    int public_line = 0, secret_line = 0;
    for (int number = 1; rc == 0 && (line = s_next_line (&cursor)); number++) {
        line = s_skip_space (line);
        if (!*line || *line == '#')
            continue;
        bool is_public = strncmp (line, "public-key", 10) == 0;
        bool is_secret = strncmp (line, "secret-key", 10) == 0;
        char *value = s_skip_space (line + 10);
        if ((!is_public && !is_secret) || *value != '=') {
            rc = s_fail (err, errlen, "%s:%d: expected \"public-key = KEY\" or \"secret-key = KEY\"",
                           file, number);
            break;
        }
        value = s_skip_space (value + 1);
        int *seen = is_public? &public_line: &secret_line;
        if (*seen) {
            rc = s_fail (err, errlen, "%s:%d: %s given twice (first on line %d)", file, number,
                           is_public? "public-key": "secret-key", *seen);
            break;
        }
        *seen = number;
        rc = s_take_key (file, number, is_public? "public key": "secret key", value,
                         is_public? pair->public_key: pair->secret_key, err, errlen);
    }
    if (rc == 0 && !secret_line)
        rc = s_fail (err, errlen, "%s: no secret-key line: not a secret key file (made by herald keygen)",
                       file);
    if (rc == 0 && !public_line)
        rc = s_fail (err, errlen, "%s: no public-key line: not a secret key file (made by herald keygen)",
                       file);
    if (rc == 0) {
        char derived[HERALD_KEY_LEN + 1];
        if (zmq_curve_public (derived, pair->secret_key) != 0)
            rc = s_fail (err, errlen, "%s: cannot check the key pair: %s", file, zmq_strerror (errno));
        else
        if (strcmp (derived, pair->public_key) != 0)
            rc = s_fail (err, errlen, "%s:%d: public-key does not belong to the secret-key on line %d",
                           file, public_line, secret_line);
    }
    explicit_bzero (text, sizeof text);
    if (rc != 0)
        explicit_bzero (pair, sizeof *pair);
    return rc;
}

int
herald_keys_sibling (const char *path, const char *from_ext, const char *to_ext, char *out, size_t size)
{
    if (!path || !from_ext || !to_ext || !out)
        return -1;
    size_t len = strlen (path), from = strlen (from_ext);
    if (len <= from || strcmp (path + len - from, from_ext) != 0 || path[len - from - 1] == '/')
        return -1;
    int n = snprintf (out, size, "%.*s%s", (int) (len - from), path, to_ext);
    return n < 0 || (size_t) n >= size? -1: 0;
}

/*  Writes all of text to a new file (O_EXCL) with mode, fsyncs it. 0 / -1 with err. */
static int
s_write_new (const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return s_fail (err, errlen, "%s: exists; keygen never overwrites a key (move it away first)",
                           path);
        return s_fail (err, errlen, "%s: cannot create: %s", path, strerror (errno));
    }
    size_t len = strlen (text), done = 0;
    int rc = 0;
    while (done < len && rc == 0) {
        ssize_t n = write (fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = s_fail (err, errlen, "%s: cannot write: %s", path, strerror (n < 0? errno: EIO));
        else
            done += (size_t) n;
    }
    if (rc == 0 && fsync (fd) != 0)
        rc = s_fail (err, errlen, "%s: cannot sync: %s", path, strerror (errno));
    if (close (fd) != 0 && rc == 0)
        rc = s_fail (err, errlen, "%s: cannot close: %s", path, strerror (errno));
    if (rc != 0)
        unlink (path);
    return rc;
}

int
herald_keys_generate (const char *name, char *public_path, size_t public_size,
                      char *secret_path, size_t secret_size, char *err, size_t errlen)
{
    char spare[256];
    if (!err || errlen == 0)
        err = spare, errlen = sizeof spare;
    if (!name || !*name)
        return s_fail (err, errlen, "keygen: no name given");
    const char *base = strrchr (name, '/');
    base = base? base + 1: name;
    size_t len = strlen (name);
    if (!*base || strcmp (base, ".") == 0 || strcmp (base, "..") == 0)
        return s_fail (err, errlen, "%s: give a file name, e.g. etc/keys/mailer", name);
    if ((len > 7 && strcmp (name + len - 7, S_PUBLIC_EXT) == 0)
    ||  (len > 7 && strcmp (name + len - 7, S_SECRET_EXT) == 0))
        return s_fail (err, errlen, "%s: give the name without .public or .secret: both are written",
                         name);
    char pub_file[1024], sec_file[1024];
    if (snprintf (pub_file, sizeof pub_file, "%s" S_PUBLIC_EXT, name) >= (int) sizeof pub_file
    ||  snprintf (sec_file, sizeof sec_file, "%s" S_SECRET_EXT, name) >= (int) sizeof sec_file)
        return s_fail (err, errlen, "%.64s...: name too long", name);

    herald_keypair_t pair;
    if (zmq_curve_keypair (pair.public_key, pair.secret_key) != 0)
        return s_fail (err, errlen, "keygen: cannot make a CURVE key pair: %s (libzmq without CURVE?)",
                         zmq_strerror (errno));
    char text[512];
    snprintf (text, sizeof text,
              "#   Herald CURVE key pair \"%s\" (ZeroMQ CurveZMQ, Z85), made by herald keygen.\n"
              "#   SECRET: keep this file on the host that uses it, mode 0600, never copied\n"
              "#   elsewhere. Give %s" S_PUBLIC_EXT " to the broker's operator.\n"
              "public-key = %s\n"
              "secret-key = %s\n", base, base, pair.public_key, pair.secret_key);
    int rc = s_write_new (sec_file, text, 0600, err, errlen);
    explicit_bzero (text, sizeof text);
    explicit_bzero (pair.secret_key, sizeof pair.secret_key);
    if (rc != 0)
        return -1;
    snprintf (text, sizeof text,
              "%s\n"
              "#   Herald CURVE public key \"%s\" (ZeroMQ CurveZMQ, Z85), made by herald keygen.\n"
              "#   Public: list it in the broker's security section (producers, workers,\n"
              "#   admin_read or admin_operate) or, for the broker's own key, give it to clients.\n",
              pair.public_key, base);
    if (s_write_new (pub_file, text, 0644, err, errlen) != 0) {
        unlink (sec_file);
        return -1;
    }
    if (public_path)
        snprintf (public_path, public_size, "%s", pub_file);
    if (secret_path)
        snprintf (secret_path, secret_size, "%s", sec_file);
    return 0;
}
