/*  test_allowlist: compiling a security section into the broker's key table:
    roles by endpoint, worker channels matched by name, keys removed by a
    reload remembered (and forgotten again when listed anew). */
#include <criterion/criterion.h>
#include <string.h>
#include <zmq.h>

#include "allowlist.h"
#include "broker_fixture.h"

static herald_config_t s_running, s_source;

static void
s_add_key (herald_config_t *config, const char *name, const char *key, unsigned roles, uint32_t channels)
{
    herald_security_config_t *sec = &config->security;
    herald_client_key_t *entry = &sec->keys[sec->key_count++];
    memset (entry, 0, sizeof *entry);
    snprintf (entry->name, sizeof entry->name, "%s", name);
    snprintf (entry->key, sizeof entry->key, "%s", key);
    entry->roles = roles;
    entry->channels = channels;
    sec->curve = true;
}

static void
s_key (char out[41])
{
    char secret[41];
    cr_assert_eq (zmq_curve_keypair (out, secret), 0);
}

Test (allowlist, roles_decide_endpoints)
{
    fixture_config (&s_running);
    char shop[41], dash[41], mailer[41], unknown[41];
    s_key (shop), s_key (dash), s_key (mailer), s_key (unknown);
    s_add_key (&s_running, "shop", shop, HERALD_ROLE_PRODUCER, 0);
    s_add_key (&s_running, "dash", dash, HERALD_ROLE_ADMIN_READ, 0);
    s_add_key (&s_running, "mailer", mailer, HERALD_ROLE_WORKER, 1u << 0);
    allowlist_t *list = allowlist_new (&s_running, &s_running, NULL);
    cr_assert_not_null (list);
    cr_assert_eq (allowlist_size (list), 3);

    const allowlist_entry_t *entry = allowlist_find (list, shop);
    cr_assert_not_null (entry);
    cr_assert_str_eq (entry->name, "shop");
    cr_assert (allowlist_permits (entry, ENDPOINT_PRODUCERS));
    cr_assert (!allowlist_permits (entry, ENDPOINT_WORKERS));
    cr_assert (!allowlist_permits (entry, ENDPOINT_ADMIN));
    entry = allowlist_find (list, dash);
    cr_assert (allowlist_permits (entry, ENDPOINT_ADMIN));
    cr_assert (!allowlist_permits (entry, ENDPOINT_PRODUCERS));
    entry = allowlist_find (list, mailer);
    cr_assert (allowlist_permits (entry, ENDPOINT_WORKERS));
    cr_assert_eq (entry->channels, 1u << 0);
    cr_assert_null (allowlist_find (list, unknown));
    cr_assert_null (allowlist_find (list, NULL));
    cr_assert (!allowlist_permits (NULL, ENDPOINT_PRODUCERS));

    allowlist_t *copy = allowlist_copy (list);
    cr_assert_not_null (allowlist_find (copy, mailer));
    allowlist_destroy (&list);
    cr_assert_null (list);
    cr_assert_not_null (allowlist_find (copy, shop), "the copy is independent");
    allowlist_destroy (&copy);
    allowlist_destroy (&copy);
}

Test (allowlist, worker_channels_follow_names)
{
    /*  The reloaded file lists the channels in another order: bits are
        mapped by name onto the running broker's channel indexes. */
    fixture_config (&s_running);            /* email, inventory, courier */
    fixture_config (&s_source);
    snprintf (s_source.channels[0].name, sizeof s_source.channels[0].name, "courier");
    snprintf (s_source.channels[2].name, sizeof s_source.channels[2].name, "email");
    snprintf (s_source.channels[1].name, sizeof s_source.channels[1].name, "sms");
    char key[41];
    s_key (key);
    s_add_key (&s_source, "w", key, HERALD_ROLE_WORKER, (1u << 0) | (1u << 1));   /* courier, sms */
    allowlist_t *list = allowlist_new (&s_source, &s_running, NULL);
    const allowlist_entry_t *entry = allowlist_find (list, key);
    cr_assert_not_null (entry);
    cr_assert_eq (entry->channels, 1u << 2, "courier is the running config's channel 2; sms is unknown");
    allowlist_destroy (&list);
}

Test (allowlist, removed_keys_are_remembered)
{
    fixture_config (&s_running);
    char a[41], b[41], c[41];
    s_key (a), s_key (b), s_key (c);
    s_add_key (&s_running, "a", a, HERALD_ROLE_PRODUCER, 0);
    s_add_key (&s_running, "b", b, HERALD_ROLE_PRODUCER, 0);
    allowlist_t *first = allowlist_new (&s_running, &s_running, NULL);

    fixture_config (&s_source);
    s_add_key (&s_source, "b", b, HERALD_ROLE_PRODUCER, 0);
    s_add_key (&s_source, "c", c, HERALD_ROLE_PRODUCER, 0);
    allowlist_t *second = allowlist_new (&s_source, &s_running, first);
    cr_assert_null (allowlist_find (second, a));
    cr_assert_str_eq (allowlist_removed_name (second, a), "a");
    cr_assert_null (allowlist_removed_name (second, b));
    cr_assert_null (allowlist_removed_name (second, c));
    cr_assert_eq (allowlist_removed_since (second, first), 1);
    cr_assert_eq (allowlist_added_since (second, first), 1);

    /*  Still removed one reload later; forgotten when listed again. */
    allowlist_t *third = allowlist_new (&s_source, &s_running, second);
    cr_assert_str_eq (allowlist_removed_name (third, a), "a");
    allowlist_t *fourth = allowlist_new (&s_running, &s_running, third);
    cr_assert_null (allowlist_removed_name (fourth, a));
    cr_assert_str_eq (allowlist_removed_name (fourth, c), "c");
    allowlist_destroy (&first);
    allowlist_destroy (&second);
    allowlist_destroy (&third);
    allowlist_destroy (&fourth);
}
