/*  security: the broker's hooks (contract in security.h). The loop owns its
    own allowlist; the ZAP thread owns a copy; a reload builds a new list and
    gives each side its own, so neither ever reads the other's memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "allowlist.h"
#include "herald_clock.h"
#include "herald_keys.h"
#include "herald_log.h"
#include "peers.h"
#include "security.h"
#include "zap.h"

struct security {
    const herald_config_t *config;          /* the running configuration, borrowed */
    bool curve;                             /* CURVE and ZAP on every endpoint */
    herald_keypair_t keys;                  /* CURVE: the broker's key pair */
    allowlist_t *allowlist;                 /* the loop's copy */
    refusals_t *refusals;
    peers_t *peers;
    zap_t *zap;
    char monitors[ENDPOINT_COUNT][80];      /* inproc endpoints of the socket monitors */
    int reloads;                            /* successful reloads since start */
    int64_t reloaded_at;                    /* wall ms of the last one, 0 = none */
};

static const char *const s_domains[ENDPOINT_COUNT] = {
    ZAP_DOMAIN_PRODUCERS, ZAP_DOMAIN_WORKERS, ZAP_DOMAIN_ADMIN
};

/*  Admin verbs and the roles that may use them; a verb not listed needs
    admin_operate, so a new verb is closed until someone opens it here. */
static const struct {
    const char *verb;
    unsigned roles;
} s_verbs[] = {
    { "status",     HERALD_ROLE_ADMIN_READ | HERALD_ROLE_ADMIN_OPERATE },
    { "metrics",    HERALD_ROLE_ADMIN_READ | HERALD_ROLE_ADMIN_OPERATE },
    { "track",      HERALD_ROLE_ADMIN_READ | HERALD_ROLE_ADMIN_OPERATE },
    { "dead.list",  HERALD_ROLE_ADMIN_READ | HERALD_ROLE_ADMIN_OPERATE },
    { "dead.show",  HERALD_ROLE_ADMIN_OPERATE },    /* returns the event: customer data */
    { "dead.retry", HERALD_ROLE_ADMIN_OPERATE },
    { "dead.purge", HERALD_ROLE_ADMIN_OPERATE },
};

security_t *
security_new (void *ctx, const herald_config_t *config, char *err, size_t errlen)
{
    security_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "security: out of memory");
        return NULL;
    }
    self->config = config;
    const herald_security_config_t *sec = &config->security;
    self->curve = sec->curve;
    self->refusals = refusals_new (SECURITY_LOG_LINES, SECURITY_LOG_WINDOW_MS);
    self->peers = peers_new ();
    if (!self->refusals || !self->peers) {
        snprintf (err, errlen, "security: out of memory");
        security_destroy (&self);
        return NULL;
    }
    if (self->curve) {
        if (!zmq_has ("curve")) {
            snprintf (err, errlen, "security.broker_key is set but this libzmq has no CURVE support "
                      "(zmq_has (\"curve\") is false): install a libzmq built with libsodium");
            security_destroy (&self);
            return NULL;
        }
        char key_err[HERALD_ERR_MAX];
        if (herald_keys_load_secret (sec->broker_key, &self->keys, key_err, sizeof key_err) != 0) {
            snprintf (err, errlen, "security.broker_key: %s", key_err);
            security_destroy (&self);
            return NULL;
        }
        if (strcmp (self->keys.public_key, sec->broker_public_key) != 0) {
            snprintf (err, errlen, "security.broker_key: %s does not belong to %s: clients would use a key "
                      "the broker does not have", sec->broker_public, sec->broker_key);
            security_destroy (&self);
            return NULL;
        }
        self->allowlist = allowlist_new (config, config, NULL);
        if (!self->allowlist) {
            snprintf (err, errlen, "security: out of memory");
            security_destroy (&self);
            return NULL;
        }
    }
    for (int e = 0; e < ENDPOINT_COUNT; e++)
        snprintf (self->monitors[e], sizeof self->monitors[e], "inproc://herald-monitor-%p-%s",
                  (void *) self, endpoint_name ((endpoint_t) e));
    allowlist_t *copy = NULL;
    if (self->curve && !(copy = allowlist_copy (self->allowlist))) {
        snprintf (err, errlen, "security: out of memory");
        security_destroy (&self);
        return NULL;
    }
    zap_options_t options = {
        .ctx = ctx, .curve = self->curve, .max_connections = config->broker.max_connections,
        .refusals = self->refusals, .peers = self->peers,
    };
    for (int e = 0; e < ENDPOINT_COUNT; e++)
        options.monitors[e] = self->monitors[e];
    self->zap = zap_new (&options, &copy, err, errlen);
    if (!self->zap) {
        security_destroy (&self);
        return NULL;
    }
    if (self->curve)
        herald_info ("security: CURVE on every endpoint, clients checked by ZAP",
                     "keys=%d broker_key=%s max_connections=%d", allowlist_size (self->allowlist),
                     sec->broker_key, config->broker.max_connections);
    else
    if (sec->plaintext)
        herald_warn ("security: plaintext: true: endpoints without CURVE; anyone who can connect may "
                     "publish, serve channels and use every admin verb",
                     "producers=%s workers=%s admin=%s", config->broker.producers, config->broker.workers,
                     config->broker.admin);
    return self;
}

void
security_destroy (security_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    security_t *self = *self_p;
    zap_destroy (&self->zap);
    allowlist_destroy (&self->allowlist);
    peers_destroy (&self->peers);
    refusals_destroy (&self->refusals);
    explicit_bzero (&self->keys, sizeof self->keys);
    free (self);
    *self_p = NULL;
}

void
security_socket_options (security_t *self, endpoint_t endpoint, hw_options_t *options)
{
    if (!self || (int) endpoint < 0 || endpoint >= ENDPOINT_COUNT)
        return;
    options->monitor = self->monitors[endpoint];
    options->handshake_ivl_ms = (int) self->config->broker.handshake_timeout_ms;
    if (self->curve) {
        options->curve_secret = self->keys.secret_key;
        options->zap_domain = s_domains[endpoint];
    }
}

/*  Closes the connection a refused message came on. */
static void
s_close_connection (security_t *self, const hw_msg_t *in)
{
    int fd = hw_msg_peer_fd (in);
    if (fd >= 0) {
        peers_forget (self->peers, fd);
        shutdown (fd, SHUT_RDWR);
    }
}

bool
security_admit (security_t *self, endpoint_t endpoint, const hw_msg_t *in)
{
    if (!self || !self->curve)
        return true;
    const char *key = hw_msg_user_id (in);
    if (!key || strlen (key) != HERALD_KEY_LEN) {
        /*  Cannot happen with the ZAP thread answering (it always names the
            key); without a User-Id nobody vouched for this peer. */
        refusals_add (self->refusals, endpoint, REFUSAL_PROTOCOL, "error=\"message without a User-Id\"");
        s_close_connection (self, in);
        return false;
    }
    const allowlist_entry_t *entry = allowlist_find (self->allowlist, key);
    if (entry && allowlist_permits (entry, endpoint)) {
        peers_note (self->peers, hw_msg_peer_fd (in), endpoint, key);
        return true;
    }
    const char *removed = entry? NULL: allowlist_removed_name (self->allowlist, key);
    refusal_reason_t reason = entry? REFUSAL_WRONG_ROLE: removed? REFUSAL_REMOVED_KEY: REFUSAL_UNKNOWN_KEY;
    refusals_add (self->refusals, endpoint, reason, "key=\"%s\" name=%s action=\"message dropped, connection closed\"",
                  key, entry? entry->name: removed? removed: "-");
    s_close_connection (self, in);
    return false;
}

/*  Names of the channels in mask into buf ("email, courier"). */
static const char *
s_channel_names (const herald_config_t *config, uint32_t mask, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < config->channel_count && used < size; c++)
        if (mask & (UINT32_C (1) << c))
            used += (size_t) snprintf (buf + used, size - used, "%s%s", used? ", ": "", config->channels[c].name);
    if (!buf[0])
        snprintf (buf, size, "no channel");
    return buf;
}

bool
security_may_serve (security_t *self, void *socket, const hw_msg_t *in, const char *channel)
{
    if (!self || !self->curve)
        return true;
    const char *key = hw_msg_user_id (in);
    const allowlist_entry_t *entry = allowlist_find (self->allowlist, key);
    int index = herald_config_channel_index (self->config, channel);
    if (index < 0)
        return true;        /* the broker refuses unknown channels itself */
    if (entry && (entry->channels & (UINT32_C (1) << index)))
        return true;
    char allowed[256];
    s_channel_names (self->config, entry? entry->channels: 0, allowed, sizeof allowed);
    char reason[512];
    snprintf (reason, sizeof reason, "key '%s' may serve %s, not %s (security.workers)",
              entry? entry->name: "?", allowed, channel);
    char quoted[sizeof reason + 16];
    refusals_add (self->refusals, ENDPOINT_WORKERS, REFUSAL_CHANNEL, "key=\"%s\" name=%s channel=%s error=%s",
                  key? key: "-", entry? entry->name: "-", channel,
                  herald_log_quote (reason, quoted, sizeof quoted));
    hp_msg_t nack = { .command = HP_NACK, .corr = hp_str ("READY"), .code = HP_CODE_FORBIDDEN,
                      .text = hp_str (reason) };
    hw_send (socket, in->identity, &nack, ZMQ_DONTWAIT);
    return false;
}

int
security_admin_check (security_t *self, const hw_msg_t *in, hp_str_t verb, char **body)
{
    *body = NULL;
    if (!self || !self->curve)
        return 0;
    const char *key = hw_msg_user_id (in);
    const allowlist_entry_t *entry = allowlist_find (self->allowlist, key);
    unsigned needed = HERALD_ROLE_ADMIN_OPERATE;
    for (size_t i = 0; i < sizeof s_verbs / sizeof s_verbs[0]; i++)
        if (hp_str_eq (verb, s_verbs[i].verb))
            needed = s_verbs[i].roles;
    if (entry && (entry->roles & needed))
        return 0;
    char name[80];
    hp_str_copy (verb, name, sizeof name);
    for (char *p = name; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == '"' || *p == '\\')
            *p = '?';
    const char *role = entry && (entry->roles & HERALD_ROLE_ADMIN_OPERATE)? "admin_operate"
                     : entry && (entry->roles & HERALD_ROLE_ADMIN_READ)? "admin_read": "no admin role";
    char text[300];
    snprintf (text, sizeof text, "key '%s' (%s) may not use '%s': it needs %s", entry? entry->name: "?",
              role, name, needed & HERALD_ROLE_ADMIN_READ? "admin_read or admin_operate": "admin_operate");
    refusals_add (self->refusals, ENDPOINT_ADMIN, REFUSAL_ADMIN_VERB, "key=\"%s\" name=%s verb=\"%s\" role=\"%s\"",
                  key? key: "-", entry? entry->name: "-", name, role);
    json_t *reply = json_pack ("{s:s}", "error", text);
    *body = json_dumps (reply, JSON_COMPACT);
    json_decref (reply);
    return HP_CODE_FORBIDDEN;
}

/* ------------------------------------------------------------------------ */
/*  Reload                                                                   */

static bool
s_keep (void *arg, endpoint_t endpoint, const char *key)
{
    security_t *self = arg;
    return allowlist_permits (allowlist_find (self->allowlist, key), endpoint);
}

static void
s_on_closed (void *arg, int fd, endpoint_t endpoint, const char *key)
{
    security_t *self = arg;
    const char *name = allowlist_removed_name (self->allowlist, key);
    refusals_add (self->refusals, endpoint, REFUSAL_REMOVED_KEY,
                  "key=\"%s\" name=%s action=\"connection closed at reload\" fd=%d", key, name? name: "-", fd);
}

int
security_apply (security_t *self, const herald_config_t *fresh)
{
    if (!self || !fresh)
        return -1;
    const char *path = fresh->path;
    const herald_security_config_t *now = &fresh->security, *running = &self->config->security;
    const char *why = NULL;
    if (now->curve != running->curve || now->plaintext != running->plaintext)
        why = "turning CURVE or plaintext on or off needs a restart";
    else
    if (now->curve && strcmp (now->broker_key, running->broker_key) != 0)
        why = "a new security.broker_key needs a restart";
    if (why) {
        herald_error ("reload refused: keeping the running security configuration", "file=%s error=\"%s\"",
                      path, why);
        return -1;
    }
    if (!self->curve)
        return 0;           /* no key lists without CURVE */
    allowlist_t *next = allowlist_new (fresh, self->config, self->allowlist);
    allowlist_t *copy = allowlist_copy (next);
    if (!next || !copy) {
        allowlist_destroy (&next);
        allowlist_destroy (&copy);
        herald_error ("reload refused: out of memory", NULL);
        return -1;
    }
    /*  The ZAP thread first: from its answer on, no new connection gets in
        with a removed key, and every connection closed so far is forgotten. */
    if (zap_reload (self->zap, &copy) != 0) {
        allowlist_destroy (&next);
        herald_error ("reload refused: the security thread did not answer", NULL);
        return -1;
    }
    int added = allowlist_added_since (next, self->allowlist);
    int removed = allowlist_removed_since (next, self->allowlist);
    allowlist_destroy (&self->allowlist);
    self->allowlist = next;
    int closed = peers_close_unless (self->peers, s_keep, self, s_on_closed);
    self->reloads++;
    self->reloaded_at = herald_clock_wall_ms ();
    herald_info ("security reloaded", "file=%s keys=%d added=%d removed=%d connections_closed=%d", path,
                 allowlist_size (self->allowlist), added, removed, closed);
    return 0;
}

/* ------------------------------------------------------------------------ */
/*  Status                                                                   */

json_t *
security_status (security_t *self)
{
    if (!self)
        return json_null ();
    const herald_security_config_t *sec = &self->config->security;
    const char *mode = self->curve? "curve": sec->plaintext? "plaintext": "local";
    json_t *connections = json_object ();
    for (int e = 0; e < ENDPOINT_COUNT; e++)
        json_object_set_new (connections, endpoint_name ((endpoint_t) e),
                             json_integer (zap_connections (self->zap, (endpoint_t) e)));
    return json_pack ("{s:s, s:i, s:i, s:I, s:i, s:I, s:o, s:o}",
                      "mode", mode,
                      "keys", allowlist_size (self->allowlist),
                      "reloads", self->reloads,
                      "reloaded_at", (json_int_t) self->reloaded_at,
                      "max_connections", self->config->broker.max_connections,
                      "handshake_timeout_ms", (json_int_t) self->config->broker.handshake_timeout_ms,
                      "connections", connections,
                      "refused", refusals_json (self->refusals));
}
