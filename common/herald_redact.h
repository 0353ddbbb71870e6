/*  herald_redact: makes a text safe to log and to report (a task's
    last_error, which `herald dead show` prints), whoever wrote it: a
    configured URL, a driver's error, a server's reply or a response body.

    The result is one bounded line of printable UTF-8 with the secrets it
    may carry replaced by "***":
      - in every URL (scheme://...): user:password@ -> ***@; the values of
        secret query or fragment keys (token, key, secret, signature,
        password, sig, access_token, ...) and opaque values -> ***; opaque
        path segments (20+ characters of [A-Za-z0-9_-] with a digit or an
        upper-case letter), Telegram-style bot<digits>:<token> segments and
        the last segment of a webhook URL (host hooks.*, or a path segment
        hooks / webhook / webhooks) -> ***;
      - in the rest: the value after a secret key ("token=abc",
        "\"password\": \"abc\"", "X-Api-Key: abc"), the credentials after
        Bearer / Basic (the whole word) and after "Authorization: SCHEME"
        whatever the scheme -> ***;
      - CR, LF, tabs and other control characters become spaces; C1
        controls, bidirectional overrides and bytes that are not UTF-8
        become '?'; trailing spaces go;
      - at most size - 1 bytes, cut on a character boundary and ending in
        "..." when cut. */
#ifndef HERALD_REDACT_H
#define HERALD_REDACT_H

#include <stddef.h>

#define HERALD_REDACT_MARK      "***"
#define HERALD_REDACT_SCAN_MAX  8192    /* input bytes looked at; the rest counts as cut */

/*  Writes text, made safe as above, into out (size bytes, always
    NUL-terminated when size > 0). Returns out. text may be NULL (""). */
const char *
    herald_redact (const char *text, char *out, size_t size);

/*  The same for len bytes a peer sent: not NUL-terminated, may hold NUL
    bytes (they become '?'). Returns out. */
const char *
    herald_redact_bytes (const void *data, size_t len, char *out, size_t size);

#endif
