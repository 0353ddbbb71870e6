/*  herald_redact: safe, bounded, secret-free one-line texts (contract in
    herald_redact.h). Two passes: the input becomes printable UTF-8 in a
    scratch buffer, then that is copied to the output with the secrets
    replaced. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "herald_redact.h"

#define S_OPAQUE_MIN        20      /* shorter path segments and values are kept */
#define S_WEBHOOK_MIN       8       /* last segment of a webhook URL, at least */
#define S_BASIC_MIN         8       /* credentials after Bearer / Basic, at least */
#define S_CUT_MARK          "..."
#define S_VALUE_ENDS        " ,;&}])\"'"     /* what ends an unquoted value or credentials */

typedef struct {
    char *out;
    size_t size;                /* > 0 */
    size_t len;
    bool cut;                   /* something did not fit */
} s_writer_t;

static void
s_put (s_writer_t *w, const char *data, size_t len)
{
    if (w->cut)
        return;
    size_t room = w->size - 1 - w->len;
    if (len > room) {
        len = room;
        w->cut = true;
    }
    memcpy (w->out + w->len, data, len);
    w->len += len;
}

static void
s_puts (s_writer_t *w, const char *text)
{
    s_put (w, text, strlen (text));
}

/*  Terminates the output: trailing spaces go; when cut, the text ends on a
    whole character followed by "...". */
static void
s_finish (s_writer_t *w)
{
    if (w->cut && w->size > sizeof S_CUT_MARK) {
        size_t keep = w->size - sizeof S_CUT_MARK;
        if (w->len > keep) {
            w->len = keep;
            while (w->len > 0 && ((unsigned char) w->out [w->len] & 0xC0) == 0x80)
                w->len--;       /* out [len] continues a character: drop it whole */
        }
        while (w->len > 0 && w->out [w->len - 1] == ' ')
            w->len--;
        memcpy (w->out + w->len, S_CUT_MARK, sizeof S_CUT_MARK - 1);
        w->len += sizeof S_CUT_MARK - 1;
    }
    else {
        if (w->cut) {
            /*  No room for the mark: the text ends on a whole character,
                so a character cut at the end goes. */
            size_t start = w->len;
            while (start > 0 && ((unsigned char) w->out [start - 1] & 0xC0) == 0x80)
                start--;
            unsigned char lead = start > 0? (unsigned char) w->out [start - 1]: 0;
            size_t want = lead >= 0xF0? 4: lead >= 0xE0? 3: lead >= 0xC0? 2: 1;
            if (start > 0 && lead >= 0xC0 && w->len - (start - 1) < want)
                w->len = start - 1;
        }
        while (w->len > 0 && w->out [w->len - 1] == ' ')
            w->len--;
    }
    w->out [w->len] = '\0';
}

//  --------------------------------------------------------------------------
//  Pass 1: printable UTF-8 on one line

/*  Length of the valid UTF-8 sequence at text (len bytes left), or 0. */
static size_t
s_utf8_length (const unsigned char *text, size_t left)
{
    unsigned char c = text [0];
    size_t len;
    unsigned char low = 0x80, high = 0xBF;      /* bounds of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else
    if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            low = 0xA0;                         /* no overlongs */
        if (c == 0xED)
            high = 0x9F;                        /* no surrogates */
    }
    else
    if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            low = 0x90;
        if (c == 0xF4)
            high = 0x8F;                        /* nothing above U+10FFFF */
    }
    else
        return 0;
    if (left < len || text [1] < low || text [1] > high)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((text [i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/*  What a valid multi-byte character becomes: 0 kept, else the byte that
    replaces it (line and paragraph separators end a line: a space; C1
    controls, bidirectional controls and the BOM reorder or hide text: '?'). */
static char
s_replacement (const unsigned char *p, size_t len)
{
    if (len == 2 && p [0] == 0xC2 && p [1] <= 0x9F)
        return '?';                                     /* U+0080..U+009F */
    if (len == 2 && p [0] == 0xD8 && p [1] == 0x9C)
        return '?';                                     /* U+061C arabic letter mark */
    if (len == 3 && p [0] == 0xE2 && p [1] == 0x80) {
        if (p [2] == 0xA8 || p [2] == 0xA9)
            return ' ';                                 /* U+2028, U+2029 */
        if (p [2] == 0x8E || p [2] == 0x8F || (p [2] >= 0xAA && p [2] <= 0xAE))
            return '?';                                 /* U+200E/F, U+202A..U+202E */
    }
    if (len == 3 && p [0] == 0xE2 && p [1] == 0x81 && p [2] >= 0xA6 && p [2] <= 0xA9)
        return '?';                                     /* U+2066..U+2069 */
    if (len == 3 && p [0] == 0xEF && p [1] == 0xBB && p [2] == 0xBF)
        return '?';                                     /* U+FEFF */
    return 0;
}

/*  Copies at most HERALD_REDACT_SCAN_MAX bytes of data into buf (that size
    + 1) as printable UTF-8. Returns the length. When data was longer, the
    last word is dropped too, so a secret cut in two does not show its
    first half as an ordinary word. */
static size_t
s_sanitize (const unsigned char *data, size_t len, char *buf, bool *cut)
{
    size_t o = 0;
    size_t i = 0;
    *cut = false;
    while (i < len) {
        size_t n = s_utf8_length (data + i, len - i);
        if (o + (n? n: 1) > HERALD_REDACT_SCAN_MAX) {
            *cut = true;
            break;
        }
        if (n == 0) {
            buf [o++] = '?';
            i++;
        }
        else
        if (n == 1) {
            unsigned char c = data [i++];
            buf [o++] = c == 0? '?': c < 0x20 || c == 0x7f? ' ': (char) c;
        }
        else {
            char replacement = s_replacement (data + i, n);
            if (replacement)
                buf [o++] = replacement;
            else {
                memcpy (buf + o, data + i, n);
                o += n;
            }
            i += n;
        }
    }
    if (*cut)
        while (o > 0 && buf [o - 1] != ' ')
            o--;
    buf [o] = '\0';
    return o;
}

//  --------------------------------------------------------------------------
//  Pass 2: secrets

static bool
s_ident_char (char c)
{
    return isalnum ((unsigned char) c) || c == '_' || c == '-';
}

/*  True for names whose value is a secret: token, api_key, client_secret,
    password, signature, X-Amz-Credential, ... With strict, only the usual
    names themselves (a "name: value" in prose is often not one). */
static bool
s_secret_name (const char *name, size_t len, bool strict)
{
    static const char *const usual [] = {
        "token", "access_token", "refresh_token", "password", "passwd", "secret",
        "client_secret", "api_key", "api-key", "apikey", "x-api-key", "authorization", NULL
    };
    static const char *const exact [] = {
        "key", "sig", "pass", "pwd", "auth", "authorization", "session", "sessionid", NULL
    };
    static const char *const parts [] = {
        "token", "secret", "passw", "signature", "credential", "apikey", "api_key", "api-key",
        "access_key", "private_key", NULL
    };
    char lower [64];
    if (len == 0 || len >= sizeof lower)
        return false;
    for (size_t i = 0; i < len; i++)
        lower [i] = (char) tolower ((unsigned char) name [i]);
    lower [len] = '\0';
    for (int i = 0; usual [i]; i++)
        if (strcmp (lower, usual [i]) == 0)
            return true;
    if (strict)
        return false;
    for (int i = 0; exact [i]; i++)
        if (strcmp (lower, exact [i]) == 0)
            return true;
    /*  password_env, key_file: where a secret is, not the secret. */
    static const char *const references [] = { "_env", "_file", "_path", "_template", NULL };
    for (int i = 0; references [i]; i++) {
        size_t ref = strlen (references [i]);
        if (len > ref && strcmp (lower + len - ref, references [i]) == 0)
            return false;
    }
    for (int i = 0; parts [i]; i++)
        if (strstr (lower, parts [i]))
            return true;
    return false;
}

/*  True for an opaque token: 20+ characters of [A-Za-z0-9_-] with a digit
    or an upper-case letter (a lower-case slug such as
    "order-confirmation-webhook" is not one). */
static bool
s_opaque (const char *text, size_t len)
{
    if (len < S_OPAQUE_MIN)
        return false;
    bool marked = false;
    for (size_t i = 0; i < len; i++) {
        if (!s_ident_char (text [i]))
            return false;
        if (isdigit ((unsigned char) text [i]) || isupper ((unsigned char) text [i]))
            marked = true;
    }
    return marked;
}

/*  True for a Telegram-style bot<digits>:<token> segment. */
static bool
s_bot_token (const char *text, size_t len)
{
    if (len < 5 || strncasecmp (text, "bot", 3) != 0 || !isdigit ((unsigned char) text [3]))
        return false;
    size_t i = 3;
    while (i < len && isdigit ((unsigned char) text [i]))
        i++;
    return i + 1 < len && text [i] == ':';
}

static bool
s_word_is (const char *text, size_t len, const char *word)
{
    return strlen (word) == len && strncasecmp (text, word, len) == 0;
}

/*  Writes a query or fragment (without its '?' / '#'): values of secret
    names and opaque values become ***. */
static void
s_put_params (s_writer_t *w, const char *text, size_t len)
{
    size_t i = 0;
    while (i <= len) {
        size_t end = i;
        while (end < len && text [end] != '&' && text [end] != ';')
            end++;
        const char *eq = memchr (text + i, '=', end - i);
        if (eq) {
            size_t name_len = (size_t) (eq - (text + i));
            size_t value_len = end - (size_t) (eq - text) - 1;
            s_put (w, text + i, name_len + 1);
            if (value_len > 0 && (s_secret_name (text + i, name_len, false) || s_opaque (eq + 1, value_len)))
                s_puts (w, HERALD_REDACT_MARK);
            else
                s_put (w, eq + 1, value_len);
        }
        else
        if (s_opaque (text + i, end - i))
            s_puts (w, HERALD_REDACT_MARK);
        else
            s_put (w, text + i, end - i);
        if (end < len)
            s_put (w, text + end, 1);
        i = end + 1;
    }
}

/*  Writes a path: opaque and bot-token segments, and the last segment of a
    webhook URL, become ***. */
static void
s_put_path (s_writer_t *w, const char *path, size_t len, bool webhook_host)
{
    /*  A webhook URL's secret is its last non-empty segment, found after
        the host hooks.* or after a hooks / webhook / webhooks segment. */
    size_t keyword_end = webhook_host? 0: SIZE_MAX;
    size_t last_start = SIZE_MAX, last_len = 0;
    for (size_t i = 0; i < len; ) {
        size_t end = i;
        while (end < len && path [end] != '/')
            end++;
        if (end > i) {
            if (keyword_end == SIZE_MAX && (s_word_is (path + i, end - i, "hooks")
            ||  s_word_is (path + i, end - i, "webhook") || s_word_is (path + i, end - i, "webhooks")))
                keyword_end = end;
            last_start = i;
            last_len = end - i;
        }
        i = end + 1;
    }
    bool webhook_last = keyword_end != SIZE_MAX && last_start != SIZE_MAX
                     && last_start >= keyword_end && last_len >= S_WEBHOOK_MIN;
    for (size_t i = 0; i < len; ) {
        size_t end = i;
        while (end < len && path [end] != '/')
            end++;
        size_t seg = end - i;
        if (seg > 0 && (s_opaque (path + i, seg) || s_bot_token (path + i, seg)
        ||  (webhook_last && i == last_start)))
            s_puts (w, HERALD_REDACT_MARK);
        else
            s_put (w, path + i, seg);
        if (end < len)
            s_put (w, "/", 1);
        i = end + 1;
    }
}

/*  If a URL (scheme://...) starts at text [at], returns its length. */
static size_t
s_url_length (const char *text, size_t at)
{
    if (!isalpha ((unsigned char) text [at]))
        return 0;
    if (at > 0 && (isalnum ((unsigned char) text [at - 1]) || strchr ("+.-", text [at - 1])))
        return 0;
    size_t i = at;
    while (isalnum ((unsigned char) text [i]) || (text [i] && strchr ("+.-", text [i])))
        i++;
    if (strncmp (text + i, "://", 3) != 0)
        return 0;
    i += 3;
    size_t start = i;
    while (text [i] && !strchr (" \"'<>`", text [i]))
        i++;
    /*  "POST https://h/p: HTTP 500": trailing punctuation ends the sentence. */
    while (i > start && strchr (".,:;!?)]}", text [i - 1]))
        i--;
    return i - at;
}

static void
s_put_url (s_writer_t *w, const char *url, size_t len)
{
    const char *scheme_end = strstr (url, "://");
    size_t at = (size_t) (scheme_end - url) + 3;
    s_put (w, url, at);
    size_t authority_end = at;
    while (authority_end < len && !strchr ("/?#", url [authority_end]))
        authority_end++;
    const char *host = url + at;
    for (size_t i = authority_end; i > at; i--)
        if (url [i - 1] == '@') {
            s_puts (w, HERALD_REDACT_MARK "@");
            host = url + i;
            break;
        }
    s_put (w, host, (size_t) (url + authority_end - host));
    bool webhook_host = (size_t) (url + authority_end - host) > 6 && strncasecmp (host, "hooks.", 6) == 0;

    size_t path_end = authority_end;
    while (path_end < len && url [path_end] != '?' && url [path_end] != '#')
        path_end++;
    s_put_path (w, url + authority_end, path_end - authority_end, webhook_host);
    if (path_end < len && url [path_end] == '?') {
        size_t query_end = path_end + 1;
        while (query_end < len && url [query_end] != '#')
            query_end++;
        s_put (w, "?", 1);
        s_put_params (w, url + path_end + 1, query_end - path_end - 1);
        path_end = query_end;
    }
    if (path_end < len) {
        s_put (w, "#", 1);
        s_put_params (w, url + path_end + 1, len - path_end - 1);
    }
}

static size_t s_auth_scheme (const char *text, size_t at, size_t *lead);

/*  True for an authentication scheme's name: Bearer, Token, AWS4-HMAC-SHA256. */
static bool
s_scheme_word (const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!s_ident_char (text [i]))
            return false;
    return len > 0;
}

/*  If a secret name with its value ("token=abc", "\"password\": \"x\"",
    "X-Api-Key: abc") starts at text [at]: returns how many bytes precede the
    value in *lead and the total length; else 0. */
static size_t
s_named_secret (const char *text, size_t at, size_t *lead)
{
    if (at > 0 && s_ident_char (text [at - 1]))
        return 0;
    size_t i = at;
    while (s_ident_char (text [i]))
        i++;
    size_t name_end = i;
    bool quoted_name = at > 0 && (text [at - 1] == '"' || text [at - 1] == '\'')
                    && text [i] == text [at - 1];
    if (quoted_name)
        i++;
    while (text [i] == ' ')
        i++;
    /*  "token=x", "\"token\": \"x\"", but "invalid_token: the token
        expired" is prose: a bare colon counts after the usual names only. */
    if (text [i] == '=') {
        if (!s_secret_name (text + at, name_end - at, false))
            return 0;
    }
    else
    if (text [i] == ':') {
        if (!s_secret_name (text + at, name_end - at, !quoted_name))
            return 0;
    }
    else
        return 0;
    i++;
    while (text [i] == ' ')
        i++;
    char quote = text [i] == '"' || text [i] == '\''? text [i]: 0;
    if (quote)
        i++;
    size_t value = i;
    if (quote)
        while (text [i] && text [i] != quote)
            i++;
    else
        while (text [i] && !strchr (S_VALUE_ENDS, text [i]))
            i++;
    if (i == value)
        return 0;
    size_t scheme_lead = 0;
    size_t scheme = quote? 0: s_auth_scheme (text, value, &scheme_lead);
    if (scheme)
        i = value + scheme;     /* "Authorization: Bearer abc": the credentials too */
    else
    if (!quote && text [i] == ' ' && s_word_is (text + at, name_end - at, "authorization")
    &&  s_scheme_word (text + value, i - value)) {
        /*  "Authorization: Token abc": whatever the scheme, the word after
            it is the credentials. */
        size_t next = i;
        while (text [next] == ' ')
            next++;
        size_t end = next;
        while (text [end] && !strchr (S_VALUE_ENDS, text [end]))
            end++;
        if (end > next)
            i = end;
    }
    *lead = value - at;
    return i - at;
}

/*  If "Bearer <token>" or "Basic <credentials>" starts at text [at]:
    returns the bytes before the credentials in *lead and the total length;
    else 0. A plain word after Basic ("Basic authentication") is kept. */
static size_t
s_auth_scheme (const char *text, size_t at, size_t *lead)
{
    if (at > 0 && s_ident_char (text [at - 1]))
        return 0;
    size_t i;
    if (strncasecmp (text + at, "bearer ", 7) == 0)
        i = at + 7;
    else
    if (strncasecmp (text + at, "basic ", 6) == 0)
        i = at + 6;
    else
        return 0;
    while (text [i] == ' ')
        i++;
    size_t value = i;
    bool digit = false, upper = false, lower = false, symbol = false;
    /*  The credentials are the whole word, not only its token68 characters
        (+/=._~-): a token with a character outside them is still secret. */
    while (text [i] && !strchr (S_VALUE_ENDS, text [i])) {
        digit |= isdigit ((unsigned char) text [i]) != 0;
        upper |= isupper ((unsigned char) text [i]) != 0;
        lower |= islower ((unsigned char) text [i]) != 0;
        symbol |= !isalnum ((unsigned char) text [i]);
        i++;
    }
    if (i - value < S_BASIC_MIN || !(digit || symbol || (upper && lower)))
        return 0;
    *lead = value - at;
    return i - at;
}

static void
s_redact (const char *text, size_t len, bool cut, char *out, size_t size)
{
    s_writer_t w = { out, size, 0, false };
    size_t i = 0;
    while (i < len && !w.cut) {
        size_t lead = 0;
        size_t n = s_url_length (text, i);
        if (n) {
            s_put_url (&w, text + i, n);
            i += n;
            continue;
        }
        n = s_named_secret (text, i, &lead);
        if (!n)
            n = s_auth_scheme (text, i, &lead);
        if (n) {
            s_put (&w, text + i, lead);
            s_puts (&w, HERALD_REDACT_MARK);
            i += n;
            continue;
        }
        s_put (&w, text + i, 1);
        i++;
    }
    w.cut |= cut;               /* the input was longer than we looked at */
    s_finish (&w);
}

const char *
herald_redact_bytes (const void *data, size_t len, char *out, size_t size)
{
    if (!out || size == 0)
        return out;
    char clean [HERALD_REDACT_SCAN_MAX + 1];
    bool cut = false;
    size_t clean_len = data? s_sanitize (data, len, clean, &cut): 0;
    clean [clean_len] = '\0';
    s_redact (clean, clean_len, cut, out, size);
    return out;
}

const char *
herald_redact (const char *text, char *out, size_t size)
{
    return herald_redact_bytes (text, text? strnlen (text, HERALD_REDACT_SCAN_MAX + 1): 0,
                                out, size);
}
