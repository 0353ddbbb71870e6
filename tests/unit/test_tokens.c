/*  test_tokens: the HTTP endpoint's token file (herald_tokens). A token made
    checks back, with its role; the file holds its SHA-256, never the token,
    mode 0600, and loads back the same; revoked tokens and near misses fail;
    malformed files are refused naming the file and the line; a missing file
    is an empty set. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald_config.h"
#include "herald_tokens.h"

static char s_dir[64];
static char s_path[128];
static char s_err[512];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/herald-tokens-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    snprintf (s_path, sizeof s_path, "%s/herald.tokens", s_dir);
}

static void
s_teardown (void)
{
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (tokens, .init = s_setup, .fini = s_teardown);

static void
s_write (const char *text)
{
    FILE *file = fopen (s_path, "w");
    cr_assert_not_null (file);
    fputs (text, file);
    fclose (file);
}

static char *
s_read (void)
{
    static char text[8192];
    FILE *file = fopen (s_path, "r");
    cr_assert_not_null (file);
    size_t n = fread (text, 1, sizeof text - 1, file);
    text[n] = '\0';
    fclose (file);
    return text;
}

Test (tokens, made_token_checks_back_with_its_role)
{
    herald_tokens_t *tokens = herald_tokens_new ();
    char shop[HERALD_TOKEN_TEXT], dash[HERALD_TOKEN_TEXT];
    cr_assert_eq (herald_tokens_add (tokens, "shop", HERALD_ROLE_PRODUCER, 1000, shop, s_err, sizeof s_err), 0, "%s", s_err);
    cr_assert_eq (herald_tokens_add (tokens, "dash", HERALD_ROLE_ADMIN_READ, 2000, dash, s_err, sizeof s_err), 0);
    cr_assert_eq (strlen (shop), HERALD_TOKEN_TEXT - 1);
    cr_assert_eq (strncmp (shop, HERALD_TOKEN_PREFIX, strlen (HERALD_TOKEN_PREFIX)), 0);
    cr_assert_str_neq (shop, dash);
    const herald_token_t *found = herald_tokens_check (tokens, shop, strlen (shop));
    cr_assert_not_null (found);
    cr_assert_str_eq (found->name, "shop");
    cr_assert_eq (found->role, HERALD_ROLE_PRODUCER);
    found = herald_tokens_check (tokens, dash, strlen (dash));
    cr_assert (found && found->role == HERALD_ROLE_ADMIN_READ);
    /*  Near misses: one character changed, one missing, empty. */
    char near[HERALD_TOKEN_TEXT];
    snprintf (near, sizeof near, "%s", shop);
    near[20] = near[20] == 'a'? 'b': 'a';
    cr_assert_null (herald_tokens_check (tokens, near, strlen (near)));
    cr_assert_null (herald_tokens_check (tokens, shop, strlen (shop) - 1));
    cr_assert_null (herald_tokens_check (tokens, "", 0));
    herald_tokens_destroy (&tokens);
    cr_assert_null (tokens);
    herald_tokens_destroy (&tokens);
}

Test (tokens, file_keeps_hashes_only_mode_0600_and_loads_back)
{
    herald_tokens_t *tokens = herald_tokens_new ();
    char shop[HERALD_TOKEN_TEXT];
    cr_assert_eq (herald_tokens_add (tokens, "shop", HERALD_ROLE_PRODUCER, 1764470000000LL, shop, s_err, sizeof s_err), 0);
    cr_assert_eq (herald_tokens_save (tokens, s_path, s_err, sizeof s_err), 0, "%s", s_err);
    herald_tokens_destroy (&tokens);
    struct stat st;
    cr_assert_eq (stat (s_path, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0600);
    char *text = s_read ();
    cr_assert_null (strstr (text, shop + strlen (HERALD_TOKEN_PREFIX)), "the file holds the token: %s", text);
    cr_assert_not_null (strstr (text, "shop producer "));
    cr_assert_not_null (strstr (text, " 1764470000000\n"));
    char tmp[160];
    snprintf (tmp, sizeof tmp, "%s.tmp", s_path);
    cr_assert_neq (access (tmp, F_OK), 0, "the temporary file stays behind");

    herald_tokens_t *loaded = herald_tokens_new ();
    cr_assert_eq (herald_tokens_load (loaded, s_path, s_err, sizeof s_err), 0, "%s", s_err);
    cr_assert_eq (herald_tokens_count (loaded), 1);
    const herald_token_t *found = herald_tokens_check (loaded, shop, strlen (shop));
    cr_assert (found && found->created_ms == 1764470000000LL && found->role == HERALD_ROLE_PRODUCER);
    cr_assert_eq (herald_tokens_revoke (loaded, "shop"), 0);
    cr_assert_eq (herald_tokens_revoke (loaded, "shop"), -1);
    cr_assert_null (herald_tokens_check (loaded, shop, strlen (shop)));
    herald_tokens_destroy (&loaded);
}

Test (tokens, names_and_roles_checked)
{
    herald_tokens_t *tokens = herald_tokens_new ();
    char token[HERALD_TOKEN_TEXT];
    cr_assert_eq (herald_tokens_add (tokens, "a b", HERALD_ROLE_PRODUCER, 0, token, s_err, sizeof s_err), -1);
    cr_assert_not_null (strstr (s_err, "token name"));
    cr_assert_eq (herald_tokens_add (tokens, "", HERALD_ROLE_PRODUCER, 0, token, s_err, sizeof s_err), -1);
    cr_assert_eq (herald_tokens_add (tokens, "w", HERALD_ROLE_WORKER, 0, token, s_err, sizeof s_err), -1);
    cr_assert_eq (herald_tokens_add (tokens, "ok", HERALD_ROLE_ADMIN_OPERATE, 0, token, s_err, sizeof s_err), 0);
    cr_assert_eq (herald_tokens_add (tokens, "ok", HERALD_ROLE_PRODUCER, 0, token, s_err, sizeof s_err), -1);
    cr_assert_not_null (strstr (s_err, "exists"));
    unsigned role;
    cr_assert_eq (herald_token_role_parse ("admin_operate", &role), 0);
    cr_assert_eq (role, HERALD_ROLE_ADMIN_OPERATE);
    cr_assert_eq (herald_token_role_parse ("root", &role), -1);
    herald_tokens_destroy (&tokens);
}

Test (tokens, missing_file_is_empty)
{
    herald_tokens_t *tokens = herald_tokens_new ();
    cr_assert_eq (herald_tokens_load (tokens, s_path, s_err, sizeof s_err), 0);
    cr_assert_eq (herald_tokens_count (tokens), 0);
    herald_tokens_destroy (&tokens);
}

Test (tokens, malformed_files_name_file_and_line)
{
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        { "# c\nshop producer abc 1\n", ":2: the hash" },
        { "shop producer\n", ":1: expected NAME ROLE SHA256 CREATED_MS" },
        { "shop root 0000000000000000000000000000000000000000000000000000000000000000 1\n", ":1: the role" },
        { "sh op producer 0000000000000000000000000000000000000000000000000000000000000000 1\n", ":1: expected" },
        { "shop producer 0000000000000000000000000000000000000000000000000000000000000000 x\n", ":1: CREATED_MS" },
        { "a producer 0000000000000000000000000000000000000000000000000000000000000000 1\n"
          "a producer 0000000000000000000000000000000000000000000000000000000000000001 1\n", ":2: the name 'a' is there twice" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write (cases[i].text);
        herald_tokens_t *tokens = herald_tokens_new ();
        cr_assert_eq (herald_tokens_load (tokens, s_path, s_err, sizeof s_err), -1, "case %zu loaded", i);
        cr_assert_not_null (strstr (s_err, s_path), "case %zu: %s", i, s_err);
        cr_assert_not_null (strstr (s_err, cases[i].expect), "case %zu: %s", i, s_err);
        herald_tokens_destroy (&tokens);
    }
}
