/*  test_store_url: broker.store as a PostgreSQL URL. Its form is checked at
    load, naming what is wrong; a password in it (user:password@ or a
    password= parameter) is refused: it belongs in the environment. A path
    still names the embedded store. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "herald_config.h"
#include "herald_store_url.h"

static char s_why[400];

static void
s_ok (const char *url)
{
    s_why[0] = '\0';
    cr_assert_eq (herald_store_url_check (url, s_why, sizeof s_why), 0, "%s refused: %s", url, s_why);
}

static void
s_refused (const char *url, const char *expected)
{
    s_why[0] = '\0';
    cr_assert_eq (herald_store_url_check (url, s_why, sizeof s_why), -1, "%s accepted", url);
    cr_assert (strstr (s_why, expected), "%s: \"%s\" does not say \"%s\"", url, s_why, expected);
}

Test (store_url, accepted_forms)
{
    s_ok ("postgresql://herald@db1/herald");
    s_ok ("postgres://herald@db1:5432/herald");
    s_ok ("postgresql://db1/herald");
    s_ok ("postgresql:///herald");                          /* the Unix socket */
    s_ok ("postgresql://herald@[::1]:5432/herald");
    s_ok ("postgresql://herald@db1:5432,db2:5433/herald?target_session_attrs=read-write&connect_timeout=3");
    s_ok ("postgresql://herald@db1/herald?sslmode=verify-full&passfile=/etc/herald/pgpass");
}

Test (store_url, password_refused)
{
    s_refused ("postgresql://herald:s3cret@db1/herald", "password");
    s_refused ("postgresql://herald:s3cret@db1/herald", "PGPASSWORD");
    s_refused ("postgresql://herald@db1/herald?sslmode=require&password=s3cret", "password parameter");
}

Test (store_url, malformed)
{
    s_refused ("mysql://herald@db1/herald", "must start with postgresql://");
    s_refused ("postgresql://herald@db1:99999/herald", "between 1 and 65535");
    s_refused ("postgresql://herald@db1:54x/herald", "between 1 and 65535");
    s_refused ("postgresql://herald@db1,,db2/herald", "empty host");
    s_refused ("postgresql://@db1/herald", "empty user");
    s_refused ("postgresql://herald@[::1/herald", "closed by ']'");
    s_refused ("postgresql://herald@db1/herald?sslmode", "key=value");
    s_refused ("postgresql://herald@db1/her/ald", "cannot hold '/'");
}

Test (store_url, is_url)
{
    cr_assert (herald_store_is_url ("postgresql://db1/herald"));
    cr_assert (!herald_store_is_url ("var/herald.db"));
    cr_assert (!herald_store_is_url ("/var/lib/herald/herald.db"));
}

/*  Through the configuration: the file, the line and the key. */
#define S_REST \
    "events:\n" \
    "  order.confirmed: { fanout: [email] }\n" \
    "channels:\n" \
    "  email: { driver: file, dir: out/email }\n"

Test (store_url, config_names_line_and_key)
{
    static herald_config_t cfg;
    char err[HERALD_ERR_MAX];
    const char *bad = "broker:\n  store: \"postgresql://herald:pw@db1/herald\"\n" S_REST;
    cr_assert_eq (herald_config_parse (&cfg, bad, strlen (bad), "t.yaml", err, sizeof err), -1);
    cr_assert (strstr (err, "t.yaml:2: broker.store: the URL holds a password"), "%s", err);
    const char *good = "broker:\n  store: \"postgresql://herald@db1/herald\"\n  takeover_timeout: 4s\n" S_REST;
    cr_assert_eq (herald_config_parse (&cfg, good, strlen (good), "t.yaml", err, sizeof err), 0, "%s", err);
    cr_assert_str_eq (cfg.broker.store, "postgresql://herald@db1/herald");
    cr_assert_eq (cfg.broker.takeover_timeout_ms, 4000);
    const char *path = "broker:\n  store: var/x.db\n" S_REST;
    cr_assert_eq (herald_config_parse (&cfg, path, strlen (path), "t.yaml", err, sizeof err), 0, "%s", err);
    cr_assert_eq (cfg.broker.takeover_timeout_ms, 10000, "default takeover_timeout is 10s");
    const char *short_timeout = "broker:\n  takeover_timeout: 10ms\n" S_REST;
    cr_assert_eq (herald_config_parse (&cfg, short_timeout, strlen (short_timeout), "t.yaml", err, sizeof err), -1);
    cr_assert (strstr (err, "broker.takeover_timeout"), "%s", err);
}
