/*  test_config_check: common/config_check — what `herald check-config`
    finds beyond the schema, each problem naming FILE:LINE: key: endpoints
    that would bind the same address, files that cannot be read, variables
    that are not set, directories that cannot be created or written. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_config.h"

static char s_dir[64];
static herald_config_t s_cfg;
static char s_err[HERALD_ERR_MAX];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-test-check-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    char command[128];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    cr_expect_eq (system (command), 0);
}

TestSuite (config_check, .init = s_setup, .fini = s_teardown);

static void
s_write (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file, "%s", path);
    fputs (text, file);
    fclose (file);
}

/*  Writes text (with every "DIR" replaced by the test's directory) to
    DIR/herald.yaml and loads it. Returns the load's rc; the path in path. */
static int
s_load (const char *text, char *path, size_t size)
{
    static char expanded[8192];
    size_t o = 0;
    for (const char *p = text; *p && o + sizeof s_dir < sizeof expanded; ) {
        if (strncmp (p, "DIR", 3) == 0) {
            o += (size_t) snprintf (expanded + o, sizeof expanded - o, "%s", s_dir);
            p += 3;
        }
        else
            expanded[o++] = *p++;
    }
    expanded[o] = '\0';
    snprintf (path, size, "%s/herald.yaml", s_dir);
    s_write (path, expanded);
    s_err[0] = '\0';
    return herald_config_load (&s_cfg, path, s_err, sizeof s_err);
}

#define S_EVENTS \
    "events:\n" \
    "  order.confirmed: { fanout: [email] }\n"

//  ---------------------------------------------------------------------
//  Endpoints: refused at load, by every process

static void
s_expect_clash (const char *listen, const char *expected)
{
    char text[1024];
    snprintf (text, sizeof text,
              "broker:\n"
              "  listen:\n"
              "%s"
              "  store: DIR/herald.db\n"
              S_EVENTS
              "channels:\n"
              "  email: { driver: file, dir: DIR/out }\n", listen);
    char path[128];
    cr_expect_eq (s_load (text, path, sizeof path), -1, "accepted:\n%s", listen);
    char want[256];
    snprintf (want, sizeof want, "%s:%s", path, expected);
    cr_expect_not_null (strstr (s_err, want), "error \"%s\" lacks \"%s\"", s_err, want);
}

static void
s_expect_no_clash (const char *listen)
{
    char text[1024];
    snprintf (text, sizeof text,
              "broker:\n"
              "  listen:\n"
              "%s"
              "  store: DIR/herald.db\n"
              S_EVENTS
              "channels:\n"
              "  email: { driver: file, dir: DIR/out }\n", listen);
    char path[128];
    cr_expect_eq (s_load (text, path, sizeof path), 0, "refused: %s\n%s", s_err, listen);
}

Test (config_check, endpoints_must_not_share_an_address)
{
    s_expect_clash ("    producers: \"tcp://127.0.0.1:6000\"\n"
                    "    workers: \"tcp://127.0.0.1:6001\"\n"
                    "    admin: \"tcp://127.0.0.1:6000\"\n",
                    "5: broker.listen.admin: 'tcp://127.0.0.1:6000' is the address of "
                    "broker.listen.producers (line 3) too");
    //  a wildcard host takes the port on every address
    s_expect_clash ("    producers: \"tcp://*:6000\"\n"
                    "    workers: \"tcp://127.0.0.1:6000\"\n"
                    "    admin: \"tcp://127.0.0.1:6002\"\n",
                    "4: broker.listen.workers: 'tcp://127.0.0.1:6000'");
    s_expect_clash ("    producers: \"tcp://0.0.0.0:6000\"\n"
                    "    workers: \"tcp://10.1.2.3:6000\"\n"
                    "    admin: \"tcp://127.0.0.1:6002\"\n",
                    "4: broker.listen.workers");
    s_expect_clash ("    producers: \"tcp://localhost:6000\"\n"
                    "    workers: \"tcp://127.0.0.1:6000\"\n"
                    "    admin: \"tcp://127.0.0.1:6002\"\n",
                    "4: broker.listen.workers");
    s_expect_clash ("    producers: \"ipc://DIR/p.sock\"\n"
                    "    workers: \"ipc://DIR/w.sock\"\n"
                    "    admin: \"ipc://DIR/p.sock\"\n",
                    "5: broker.listen.admin");
    //  a clash with a default is reported where the file sets the other one
    s_expect_clash ("    workers: \"tcp://127.0.0.1:5570\"\n",
                    "3: broker.listen.workers: 'tcp://127.0.0.1:5570' is the address of "
                    "broker.listen.producers (default) too");

    s_expect_no_clash ("    producers: \"tcp://127.0.0.1:6000\"\n"
                       "    workers: \"tcp://127.0.0.2:6000\"\n"
                       "    admin: \"tcp://127.0.0.1:6002\"\n");
    s_expect_no_clash ("    producers: \"tcp://127.0.0.1:*\"\n"
                       "    workers: \"tcp://127.0.0.1:*\"\n"
                       "    admin: \"tcp://127.0.0.1:6002\"\n");
    s_expect_no_clash ("    producers: \"ipc://DIR/p.sock\"\n"
                       "    workers: \"ipc://DIR/w.sock\"\n"
                       "    admin: \"tcp://127.0.0.1:5570\"\n");
}

//  ---------------------------------------------------------------------
//  What the processes need at start

static char *
s_check (int expected_problems)
{
    char *report = NULL;
    int problems = herald_config_check (&s_cfg, &report);
    cr_expect_eq (problems, expected_problems, "%d problems:\n%s", problems, report? report: "");
    if (expected_problems == 0)
        cr_expect_null (report);
    return report;
}

static void
s_expect_line (const char *report, const char *path, const char *expected)
{
    char want[512];
    snprintf (want, sizeof want, "%s:%s", path, expected);
    cr_expect_not_null (report && strstr (report, want), "report lacks \"%s\":\n%s", want,
                        report? report: "(none)");
}

Test (config_check, a_ready_deployment_has_no_problem)
{
    char path[128];
    char template[160];
    snprintf (template, sizeof template, "%s/order.txt", s_dir);
    s_write (template, "Hello {{data.customer.name}}\n");
    int rc = s_load ("broker:\n"
                     "  listen: { producers: \"ipc://DIR/p.sock\", workers: \"ipc://DIR/w.sock\",\n"
                     "            admin: \"tcp://127.0.0.1:6002\" }\n"
                     "  store: DIR/var/lib/herald.db\n"
                     S_EVENTS
                     "channels:\n"
                     "  email:\n"
                     "    driver: smtp\n"
                     "    smtp: { url: \"smtp://mail:25\", tls: none, from: a@b.c, to: x@y.z, subject: s,\n"
                     "            text_template: DIR/order.txt, html_template: DIR/order.txt,\n"
                     "            username: u, password_env: HERALD_TEST_PASSWORD }\n"
                     "  inventory:\n"
                     "    driver: http\n"
                     "    http: { url: \"https://x/y\", headers: { Authorization: { env: HERALD_TEST_TOKEN } } }\n"
                     "  courier: { driver: file, dir: DIR/out/courier }\n",
                     path, sizeof path);
    cr_assert_eq (rc, 0, "%s", s_err);
    setenv ("HERALD_TEST_PASSWORD", "secret", 1);
    setenv ("HERALD_TEST_TOKEN", "Bearer t", 1);
    s_check (0);
    //  the same, with the variables missing
    unsetenv ("HERALD_TEST_PASSWORD");
    unsetenv ("HERALD_TEST_TOKEN");
    char *report = s_check (2);
    s_expect_line (report, path, "12: channels.email.smtp.password_env: environment variable "
                   "HERALD_TEST_PASSWORD is not set");
    s_expect_line (report, path, "15: channels.inventory.http.headers.Authorization: environment "
                   "variable HERALD_TEST_TOKEN is not set");
    free (report);
    //  a secret with a newline is refused, and never shown
    setenv ("HERALD_TEST_PASSWORD", "secret", 1);
    setenv ("HERALD_TEST_TOKEN", "Bearer t0p\nX-Evil: 1", 1);
    report = s_check (1);
    s_expect_line (report, path, "15: channels.inventory.http.headers.Authorization: the value of "
                   "HERALD_TEST_TOKEN holds a control character");
    cr_expect_null (strstr (report, "t0p"), "the secret is not shown: %s", report);
    free (report);
    unsetenv ("HERALD_TEST_PASSWORD");
    unsetenv ("HERALD_TEST_TOKEN");
}

Test (config_check, files_and_directories)
{
    char path[128];
    char plain[128];
    snprintf (plain, sizeof plain, "%s/plain", s_dir);
    s_write (plain, "not a directory\n");
    char subdir[128];
    snprintf (subdir, sizeof subdir, "%s/adir", s_dir);
    cr_assert_eq (mkdir (subdir, 0755), 0);
    int rc = s_load ("broker:\n"
                     "  listen: { producers: \"ipc://DIR/missing/p.sock\", workers: \"ipc://DIR/w.sock\" }\n"
                     "  store: DIR/plain/herald.db\n"
                     S_EVENTS
                     "channels:\n"
                     "  email:\n"
                     "    driver: file\n"
                     "    dir: DIR/plain/outbox\n"
                     "    smtp:\n"
                     "      text_template: DIR/nothing.txt\n"
                     "      html_template: DIR/adir\n"
                     "  inventory:\n"
                     "    driver: http\n"
                     "    http: { url: \"https://x/y\", ca_file: DIR/ca.pem, body_template: relative/body.json,\n"
                     "            headers: { Idempotency-Key: abc } }\n",
                     path, sizeof path);
    cr_assert_eq (rc, 0, "%s", s_err);
    char *report = s_check (8);
    char want[512];
    snprintf (want, sizeof want, "3: broker.store: the store's directory %s/plain exists and is "
              "not a directory", s_dir);
    s_expect_line (report, path, want);
    snprintf (want, sizeof want, "2: broker.listen.producers: directory %s/missing of the ipc socket "
              "does not exist", s_dir);
    s_expect_line (report, path, want);
    snprintf (want, sizeof want, "9: channels.email.dir: cannot create directory %s/plain/outbox: "
              "%s/plain is not a directory", s_dir, s_dir);
    s_expect_line (report, path, want);
    snprintf (want, sizeof want, "11: channels.email.smtp.text_template: cannot read %s/nothing.txt: "
              "No such file or directory", s_dir);
    s_expect_line (report, path, want);
    snprintf (want, sizeof want, "12: channels.email.smtp.html_template: %s/adir is a directory", s_dir);
    s_expect_line (report, path, want);
    snprintf (want, sizeof want, "15: channels.inventory.http.ca_file: cannot read %s/ca.pem", s_dir);
    s_expect_line (report, path, want);
    s_expect_line (report, path, "15: channels.inventory.http.body_template: cannot read relative/body.json: "
                   "No such file or directory (relative paths resolve against the working directory, /");
    s_expect_line (report, path, "16: channels.inventory.http.headers.Idempotency-Key: Herald sets "
                   "this header itself");
    free (report);
}

Test (config_check, an_existing_store_and_defaults)
{
    char path[128];
    char store[128];
    snprintf (store, sizeof store, "%s/herald.db", s_dir);
    s_write (store, "");
    int rc = s_load ("broker: { store: DIR/herald.db, listen: { admin: \"tcp://127.0.0.1:6002\" } }\n"
                     S_EVENTS
                     "channels:\n"
                     "  email: { driver: file, dir: DIR/out }\n",
                     path, sizeof path);
    cr_assert_eq (rc, 0, "%s", s_err);
    s_check (0);
    //  without the file for lines, problems still name the file and the key
    unlink (path);
    snprintf (s_cfg.channels[0].dir, sizeof s_cfg.channels[0].dir, "%s/herald.db/out", s_dir);
    char *report = s_check (1);
    char want[256];
    snprintf (want, sizeof want, "%s: channels.email.dir: cannot create directory", path);
    cr_expect_not_null (report && strstr (report, want), "%s", report);
    free (report);
}
