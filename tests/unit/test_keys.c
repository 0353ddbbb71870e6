/*  test_keys: CURVE key files. keygen writes a pair that loads back; a secret
    file others may read is refused with its name and mode; malformed files
    are refused naming the file and the line. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_keys.h"

static char s_dir[64];
static char s_err[512];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-keys-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (keys, .init = s_setup, .fini = s_teardown);

static const char *
s_path (const char *name)
{
    static char path[4][256];
    static int next;
    char *out = path[next++ % 4];
    snprintf (out, 256, "%s/%s", s_dir, name);
    return out;
}

/*  Writes text to a new file with mode (set with chmod, as a careless
    operator would). */
static void
s_write (const char *name, const char *text, mode_t mode)
{
    const char *path = s_path (name);
    FILE *f = fopen (path, "w");
    cr_assert_not_null (f);
    fputs (text, f);
    fclose (f);
    cr_assert_eq (chmod (path, mode), 0);
}

/*  A valid key pair, as text, for hand-written files. */
static void
s_pair (char public_key[41], char secret_key[41])
{
    cr_assert_eq (herald_keys_generate (s_path ("seed"), NULL, 0, NULL, 0, s_err, sizeof s_err), 0, "%s", s_err);
    herald_keypair_t pair;
    cr_assert_eq (herald_keys_load_secret (s_path ("seed.secret"), &pair, s_err, sizeof s_err), 0, "%s", s_err);
    memcpy (public_key, pair.public_key, 41);
    memcpy (secret_key, pair.secret_key, 41);
    unlink (s_path ("seed.secret"));
    unlink (s_path ("seed.public"));
}

Test (keys, keygen_writes_a_pair_that_loads_back)
{
    char pub_path[256], sec_path[256];
    int rc = herald_keys_generate (s_path ("mailer"), pub_path, sizeof pub_path,
                                   sec_path, sizeof sec_path, s_err, sizeof s_err);
    cr_assert_eq (rc, 0, "%s", s_err);
    cr_assert_str_eq (pub_path, s_path ("mailer.public"));
    cr_assert_str_eq (sec_path, s_path ("mailer.secret"));

    struct stat st;
    cr_assert_eq (stat (sec_path, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0600, "secret mode %o", (unsigned) (st.st_mode & 0777));

    char key[HERALD_KEY_LEN + 1];
    cr_assert_eq (herald_keys_load_public (pub_path, key, s_err, sizeof s_err), 0, "%s", s_err);
    herald_keypair_t pair;
    cr_assert_eq (herald_keys_load_secret (sec_path, &pair, s_err, sizeof s_err), 0, "%s", s_err);
    cr_assert_str_eq (pair.public_key, key);
    cr_assert (herald_keys_valid (pair.secret_key));
    cr_assert_str_neq (pair.secret_key, pair.public_key);

    /*  The public file has the key alone on line 1. */
    FILE *f = fopen (pub_path, "r");
    char line[128];
    cr_assert_not_null (fgets (line, sizeof line, f));
    fclose (f);
    line[strcspn (line, "\n")] = '\0';
    cr_assert_str_eq (line, key);
}

Test (keys, keygen_never_overwrites)
{
    s_write ("broker.secret", "precious\n", 0600);
    int rc = herald_keys_generate (s_path ("broker"), NULL, 0, NULL, 0, s_err, sizeof s_err);
    cr_assert_eq (rc, -1);
    cr_assert (strstr (s_err, "broker.secret: exists"), "%s", s_err);
    FILE *f = fopen (s_path ("broker.secret"), "r");
    char line[64];
    cr_assert_not_null (fgets (line, sizeof line, f));
    fclose (f);
    cr_assert_str_eq (line, "precious\n");
    cr_assert_neq (access (s_path ("broker.public"), F_OK), 0, "no public key left behind");

    /*  An existing public file: the new secret is removed again. */
    s_write ("worker.public", "old\n", 0644);
    rc = herald_keys_generate (s_path ("worker"), NULL, 0, NULL, 0, s_err, sizeof s_err);
    cr_assert_eq (rc, -1);
    cr_assert (strstr (s_err, "worker.public: exists"), "%s", s_err);
    cr_assert_neq (access (s_path ("worker.secret"), F_OK), 0, "no secret key left behind");
}

Test (keys, keygen_refuses_names_with_an_extension)
{
    cr_assert_eq (herald_keys_generate (s_path ("x.secret"), NULL, 0, NULL, 0, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "without .public or .secret"), "%s", s_err);
    cr_assert_eq (herald_keys_generate ("", NULL, 0, NULL, 0, s_err, sizeof s_err), -1);
}

Test (keys, secret_readable_by_others_is_refused)
{
    char pub[41], sec[41], text[256];
    s_pair (pub, sec);
    snprintf (text, sizeof text, "public-key = %s\nsecret-key = %s\n", pub, sec);
    s_write ("open.secret", text, 0644);
    herald_keypair_t pair;
    cr_assert_eq (herald_keys_load_secret (s_path ("open.secret"), &pair, s_err, sizeof s_err), -1);
    char expected[256];
    snprintf (expected, sizeof expected, "%s: mode 0644 is readable by group and others; chmod 600 it",
              s_path ("open.secret"));
    cr_assert_str_eq (s_err, expected);
    cr_assert_str_eq (pair.secret_key, "", "nothing of the key is handed out");

    s_write ("group.secret", text, 0640);
    cr_assert_eq (herald_keys_load_secret (s_path ("group.secret"), &pair, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "mode 0640 is readable by group;"), "%s", s_err);

    s_write ("gw.secret", text, 0620);
    cr_assert_eq (herald_keys_load_secret (s_path ("gw.secret"), &pair, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "mode 0620 is writable by group"), "%s", s_err);

    s_write ("ok.secret", text, 0600);
    cr_assert_eq (herald_keys_load_secret (s_path ("ok.secret"), &pair, s_err, sizeof s_err), 0, "%s", s_err);
    cr_assert_str_eq (pair.secret_key, sec);
    s_write ("ro.secret", text, 0400);
    cr_assert_eq (herald_keys_load_secret (s_path ("ro.secret"), &pair, s_err, sizeof s_err), 0, "%s", s_err);
}

Test (keys, public_key_others_may_write_is_refused)
{
    char pub[41], sec[41], text[128];
    s_pair (pub, sec);
    snprintf (text, sizeof text, "%s\n", pub);
    s_write ("w.public", text, 0646);
    char key[HERALD_KEY_LEN + 1];
    cr_assert_eq (herald_keys_load_public (s_path ("w.public"), key, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "mode 0646 is writable by others"), "%s", s_err);
    s_write ("r.public", text, 0664);
    cr_assert_eq (herald_keys_load_public (s_path ("r.public"), key, s_err, sizeof s_err), 0, "%s", s_err);
    cr_assert_str_eq (key, pub);
}

Test (keys, malformed_public_files_name_file_and_line)
{
    char key[HERALD_KEY_LEN + 1];
    char expected[256];
    s_write ("short.public", "abc\n", 0644);
    cr_assert_eq (herald_keys_load_public (s_path ("short.public"), key, s_err, sizeof s_err), -1);
    snprintf (expected, sizeof expected, "%s:1: not a CURVE public key: expected 40 Z85 characters, got 3",
              s_path ("short.public"));
    cr_assert_str_eq (s_err, expected);

    s_write ("empty.public", "", 0644);
    cr_assert_eq (herald_keys_load_public (s_path ("empty.public"), key, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "empty.public:1: empty"), "%s", s_err);

    s_write ("comment1.public", "# the key follows\n", 0644);
    cr_assert_eq (herald_keys_load_public (s_path ("comment1.public"), key, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "comment1.public:1: the first line must be the public key"), "%s", s_err);

    /*  40 characters, but a space and a quote are not Z85. */
    s_write ("bad.public", "abcdefghij abcdefghij\"abcdefghijabcdefgh\n", 0644);
    cr_assert_eq (herald_keys_load_public (s_path ("bad.public"), key, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "bad.public:1:"), "%s", s_err);

    char pub[41], sec[41], text[256];
    s_pair (pub, sec);
    snprintf (text, sizeof text, "%s  # ops dashboard\n# made on the 1st\n\nsomething\n", pub);
    s_write ("extra.public", text, 0644);
    cr_assert_eq (herald_keys_load_public (s_path ("extra.public"), key, s_err, sizeof s_err), -1);
    snprintf (expected, sizeof expected, "%s:4: unexpected text", s_path ("extra.public"));
    cr_assert (strstr (s_err, expected), "%s", s_err);

    snprintf (text, sizeof text, "%s  # ops dashboard\n# made on the 1st\n", pub);
    s_write ("comment.public", text, 0644);
    cr_assert_eq (herald_keys_load_public (s_path ("comment.public"), key, s_err, sizeof s_err), 0, "%s", s_err);
    cr_assert_str_eq (key, pub);

    cr_assert_eq (herald_keys_load_public (s_path ("missing.public"), key, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "missing.public: cannot open: No such file"), "%s", s_err);
}

Test (keys, malformed_secret_files_name_file_and_line)
{
    char pub[41], sec[41], other_pub[41], other_sec[41], text[512];
    s_pair (pub, sec);
    s_pair (other_pub, other_sec);
    herald_keypair_t pair;

    snprintf (text, sizeof text, "# comment\npublic-key = %s\n", pub);
    s_write ("nosecret.secret", text, 0600);
    cr_assert_eq (herald_keys_load_secret (s_path ("nosecret.secret"), &pair, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "nosecret.secret: no secret-key line"), "%s", s_err);

    snprintf (text, sizeof text, "public-key = %s\nsecret-key: %s\n", pub, sec);
    s_write ("colon.secret", text, 0600);
    cr_assert_eq (herald_keys_load_secret (s_path ("colon.secret"), &pair, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "colon.secret:2: expected \"public-key = KEY\""), "%s", s_err);

    snprintf (text, sizeof text, "public-key = %s\n\nsecret-key = %s\n", other_pub, sec);
    s_write ("mismatch.secret", text, 0600);
    cr_assert_eq (herald_keys_load_secret (s_path ("mismatch.secret"), &pair, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "mismatch.secret:1: public-key does not belong to the secret-key on line 3"),
               "%s", s_err);

    snprintf (text, sizeof text, "public-key = %s\nsecret-key = %.39s\n", pub, sec);
    s_write ("short.secret", text, 0600);
    cr_assert_eq (herald_keys_load_secret (s_path ("short.secret"), &pair, s_err, sizeof s_err), -1);
    cr_assert (strstr (s_err, "short.secret:2: not a CURVE secret key: expected 40 Z85 characters, got 39"),
               "%s", s_err);

    /*  zcert-style quoting is accepted. */
    snprintf (text, sizeof text, "    public-key = \"%s\"\n    secret-key = \"%s\"\n", pub, sec);
    s_write ("quoted.secret", text, 0600);
    cr_assert_eq (herald_keys_load_secret (s_path ("quoted.secret"), &pair, s_err, sizeof s_err), 0, "%s", s_err);
    cr_assert_str_eq (pair.public_key, pub);
}

Test (keys, sibling_swaps_the_extension)
{
    char out[64];
    cr_assert_eq (herald_keys_sibling ("etc/keys/broker.secret", ".secret", ".public", out, sizeof out), 0);
    cr_assert_str_eq (out, "etc/keys/broker.public");
    cr_assert_eq (herald_keys_sibling ("etc/keys/broker.key", ".secret", ".public", out, sizeof out), -1);
    cr_assert_eq (herald_keys_sibling ("etc/keys/.secret", ".secret", ".public", out, sizeof out), -1);
    cr_assert_eq (herald_keys_sibling ("a.secret", ".secret", ".public", out, 4), -1);
}
