/*  Unit tests: common/herald_redact — secrets out of URLs and texts, and
    peer strings made one bounded printable line, before they are logged or
    reported as a task's last_error. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "herald_redact.h"

/*  herald_redact into a buffer of size bytes; compares with want. */
static void
s_expect (const char *text, const char *want)
{
    char out [1024];
    cr_assert_str_eq (herald_redact (text, out, sizeof out), want, "from: %s", text);
}

Test (redact, url_userinfo)
{
    s_expect ("smtp://user:pa55word@relay.example.com:587", "smtp://***@relay.example.com:587");
    s_expect ("https://token@api.example.com/v1", "https://***@api.example.com/v1");
    s_expect ("connect to https://a:b@c@host/x failed", "connect to https://***@host/x failed");
    /*  An address is not a URL. */
    s_expect ("invalid recipient \"ann@example.com\"", "invalid recipient \"ann@example.com\"");
}

Test (redact, url_query_secrets)
{
    s_expect ("https://api.example.com/v1/send?token=abc&to=42",
              "https://api.example.com/v1/send?token=***&to=42");
    s_expect ("http://h/p?Key=1&secret=s&signature=x&password=p&sig=q&access_token=t&page=2",
              "http://h/p?Key=***&secret=***&signature=***&password=***&sig=***&access_token=***&page=2");
    s_expect ("https://s3.example.com/b/o?X-Amz-Credential=AKIA%2F&X-Amz-Signature=ff00&v=1",
              "https://s3.example.com/b/o?X-Amz-Credential=***&X-Amz-Signature=***&v=1");
    s_expect ("https://h/cb#access_token=abc&state=ok", "https://h/cb#access_token=***&state=ok");
    /*  An opaque value is redacted whatever its name. */
    s_expect ("https://h/p?u=Ab3dEf7hIj9kLm1nOp2qRs", "https://h/p?u=***");
    s_expect ("https://h/p?empty=&flag", "https://h/p?empty=&flag");
}

Test (redact, url_path_tokens)
{
    /*  Slack's documented example, and a short placeholder. */
    s_expect ("POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX: HTTP 500",
              "POST https://hooks.slack.com/services/T00000000/B00000000/***: HTTP 500");
    s_expect ("https://hooks.slack.com/services/T000/B000/XXXXXXXX",
              "https://hooks.slack.com/services/T000/B000/***");
    s_expect ("https://api.telegram.org/bot123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11/sendMessage",
              "https://api.telegram.org/***/sendMessage");
    s_expect ("https://discord.com/api/webhooks/123456789012345678/abcdefghijklmnopq",
              "https://discord.com/api/webhooks/123456789012345678/***");
    s_expect ("https://example.com/webhook/orders-secret", "https://example.com/webhook/***");
    /*  Kept: ordinary paths, slugs, short ids, the webhook keyword itself. */
    s_expect ("http://127.0.0.1:8080/v1/reservations", "http://127.0.0.1:8080/v1/reservations");
    s_expect ("https://shop.example/order-confirmation-webhook/42",
              "https://shop.example/order-confirmation-webhook/42");
    s_expect ("https://example.com/api/webhooks", "https://example.com/api/webhooks");
    s_expect ("https://example.com/x/Ab3dEf7hIj9kLm1nOp2qRs/y", "https://example.com/x/***/y");
}

Test (redact, named_secrets_in_text)
{
    s_expect ("HTTP 401: {\"error\":\"bad\",\"token\":\"abc def\",\"user\":\"ann\"}",
              "HTTP 401: {\"error\":\"bad\",\"token\":\"***\",\"user\":\"ann\"}");
    s_expect ("echo: password=hunter2; next", "echo: password=***; next");
    s_expect ("X-Api-Key: k-123 rejected", "X-Api-Key: *** rejected");
    s_expect ("Authorization: Bearer eyJhbGciOi.J9x", "Authorization: ***");
    s_expect ("sent Bearer eyJhbGciOiJIUzI1NiJ9 twice", "sent Bearer *** twice");
    s_expect ("Basic dXNlcjpwYXNz=", "Basic ***");
    /*  Words that only look like it are kept. */
    s_expect ("535 5.7.8 Basic authentication failed", "535 5.7.8 Basic authentication failed");
    s_expect ("channel email: smtp.password_env: is required",
              "channel email: smtp.password_env: is required");
    s_expect ("environment variable HERALD_SMTP_PASSWORD is not set",
              "environment variable HERALD_SMTP_PASSWORD is not set");
    s_expect ("invalid_token: the access token expired", "invalid_token: the access token expired");
    s_expect ("{\"error\": \"invalid_token\", \"client_secret\": \"s\"}",
              "{\"error\": \"invalid_token\", \"client_secret\": \"***\"}");
    s_expect ("my_token=abc", "my_token=***");
}

/*  Found by fuzz_redact (tests/fuzz/regressions/redact/): the credentials
    after Bearer were cut at the first character outside base64, and the
    rest of the token was shown. */
Test (redact, bearer_credentials_are_redacted_whole)
{
    s_expect ("Authorization: Bearer eyJhbGciOiJ!UzI1NiJ9.e30.sig X-Api-Key:!abcdef",
              "Authorization: *** X-Api-Key:***");
    s_expect ("sent Bearer eyJhbGciOiJ!UzI1NiJ9.e30 twice", "sent Bearer *** twice");
}

/*  An Authorization value is credentials whatever the scheme: "Token abc"
    (a common API scheme) showed abc. */
Test (redact, authorization_with_any_scheme_is_redacted_whole)
{
    s_expect ("Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b rejected",
              "Authorization: *** rejected");
    s_expect ("authorization=ApiKey k-1234; retry", "authorization=***; retry");
    s_expect ("Authorization: Bearer abc", "Authorization: ***");
}

Test (redact, one_printable_line)
{
    s_expect ("caf\xc3\xa9 \xe2\x82\xac ok\r\nnext\t\x01 bad \xff\xc3x cut \xe2\x82   ",
              "caf\xc3\xa9 \xe2\x82\xac ok  next   bad ??x cut ??");
    s_expect ("\xed\xa0\x80 \xf4\x90\x80\x80 \xf0\x9f\x98\x80", "??? ???? \xf0\x9f\x98\x80");
    /*  C1 controls, bidi overrides, line separators, BOM. */
    s_expect ("a\xc2\x85" "b\xe2\x80\xae" "c\xe2\x80\xa8" "d\xe2\x81\xa6" "e\xef\xbb\xbf" "f",
              "a?b?c d?e?f");
    char out [64];
    const char bytes [] = { 'a', 0, 'b', '\n', 'c' };
    cr_assert_str_eq (herald_redact_bytes (bytes, sizeof bytes, out, sizeof out), "a?b c");
    cr_assert_str_eq (herald_redact (NULL, out, sizeof out), "");
}

Test (redact, bounded_on_a_character_boundary)
{
    char out [16];
    herald_redact ("0123456789abcdefghij", out, sizeof out);
    cr_assert_str_eq (out, "0123456789ab...");
    /*  "é" is two bytes: never half of it. */
    herald_redact ("0123456789a\xc3\xa9\xc3\xa9\xc3\xa9", out, sizeof out);
    cr_assert_str_eq (out, "0123456789a...");
    herald_redact ("short", out, sizeof out);
    cr_assert_str_eq (out, "short");
    char tiny [3];
    herald_redact ("abcdef", tiny, sizeof tiny);
    cr_assert_str_eq (tiny, "ab");
    /*  Found by fuzz_redact (tests/fuzz/regressions/redact/): below room
        for "...", the cut kept half a character. */
    char four [4];
    herald_redact ("\xc3\xa9\xc3\xa9", four, sizeof four);
    cr_assert_str_eq (four, "\xc3\xa9");
    herald_redact ("\xc3\xa9", tiny, 2);
    cr_assert_str_eq (tiny, "");
    /*  The secret is replaced before the cut: no prefix of it shows. */
    herald_redact ("https://h/p?token=abcdefghijklmnopqrstuvwxyz", out, sizeof out);
    cr_assert_null (strstr (out, "abc"), "%s", out);
}

Test (redact, long_input_drops_its_last_word)
{
    size_t len = HERALD_REDACT_SCAN_MAX + 100;
    char *text = malloc (len + 1);
    memset (text, 'a', len);
    memcpy (text, "start ", 6);
    /*  A token that straddles the scan limit: its visible half goes. */
    memcpy (text + HERALD_REDACT_SCAN_MAX - 10, " Zk3Zk3Zk3Zk3Zk3Zk3Zk3", 22);
    text [len] = '\0';
    char *out = malloc (HERALD_REDACT_SCAN_MAX + 64);
    herald_redact (text, out, HERALD_REDACT_SCAN_MAX + 64);
    cr_assert_null (strstr (out, "Zk3"), "the cut token shows: ...%s", out + strlen (out) - 40);
    cr_assert (strncmp (out, "start ", 6) == 0);
    cr_assert_str_eq (out + strlen (out) - 3, "...");
    free (text);
    free (out);
}
