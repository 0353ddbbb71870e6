/*  reload: SIGHUP in the broker (contract and thread safety in reload.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "herald_clock.h"
#include "herald_config_reload.h"
#include "herald_log.h"
#include "reload.h"

#define S_TEXT_MAX  2048        /* the summary's lists of changes */

/*  Loads and checks the file. 0, or -1 with the reason logged. */
static int
s_read (const char *path, herald_config_t *fresh)
{
    char err[HERALD_ERR_MAX];
    char qpath[HERALD_PATH_MAX + 8];
    herald_log_quote (path, qpath, sizeof qpath);
    if (herald_config_load (fresh, path, err, sizeof err) != 0) {
        char quoted[HERALD_ERR_MAX + 16];
        herald_error ("reload refused: keeping the running configuration", "file=%s error=%s", qpath,
                      herald_log_quote (err, quoted, sizeof quoted));
        return -1;
    }
    char *report = NULL;
    int problems = herald_config_check (fresh, &report);
    if (problems != 0) {
        /*  Each problem is a line "FILE:LINE: key: what": one log line
            holds them all, joined. */
        for (char *p = report; p && *p; p++)
            if (*p == '\n')
                *p = p[1]? ';': '\0';
        size_t len = report? strlen (report) * 2 + 16: 64;
        char *quoted = malloc (len);
        if (quoted)
            herald_error ("reload refused: keeping the running configuration", "file=%s problems=%d error=%s",
                          qpath, problems, herald_log_quote (report? report: "out of memory", quoted, len));
        free (quoted);
        free (report);
        return -1;
    }
    return 0;
}

/*  One line per change that waits for a restart. */
static void
s_log_restarts (const herald_config_diff_t *diff, const char *qpath)
{
    for (int i = 0; i < diff->count; i++) {
        const herald_config_change_t *change = &diff->changes[i];
        if (!change->restart)
            continue;
        char msg[256], was[200], now[200];
        snprintf (msg, sizeof msg, "needs a restart: %s %s", change->key,
                  change->was[0]? "changed": change->now);
        herald_warn (msg, "file=%s key=%s running=%s file_value=%s", qpath, change->key,
                     herald_log_quote (change->was[0]? change->was: "-", was, sizeof was),
                     herald_log_quote (change->now[0]? change->now: "-", now, sizeof now));
    }
}

/*  Tells the modules that keep a setting of their own. */
static void
s_notify (const herald_config_t *before, const herald_config_t *live, const herald_config_diff_t *diff,
          const reload_targets_t *targets)
{
    core_config_changed (targets->core, diff->event_map, herald_clock_mono_ms ());
    const herald_broker_config_t *old = &before->broker, *now = &live->broker;
    if (old->max_unread_replies != now->max_unread_replies) {
        size_t peer_cap = (size_t) now->max_unread_replies;
        outbox_set_caps (targets->outbox, peer_cap, reload_outbox_total (peer_cap));
        outbox_set_caps (targets->internal_outbox, reload_outbox_total (peer_cap), reload_outbox_total (peer_cap));
    }
    if (old->dedup_retention_ms != now->dedup_retention_ms)
        store_set_retention (targets->store, now->dedup_retention_ms);
    if (old->max_event_bytes != now->max_event_bytes) {
        http_set_event_max (targets->http, now->max_event_bytes);
        /*  libzmq copies a socket's options into each connection as it is
            made: connections made from now on get the new cap, those open
            keep theirs (four times the old event cap, so raising the cap
            up to fourfold takes effect on them too). */
        int64_t transport = reload_transport_max (now->max_event_bytes);
        for (int i = 0; i < RELOAD_SOCKETS_MAX && targets->sockets[i]; i++)
            if (zmq_setsockopt (targets->sockets[i], ZMQ_MAXMSGSIZE, &transport, sizeof transport) != 0)
                herald_warn ("reload: cannot set the transport cap of a socket", "error=\"%s\"",
                             zmq_strerror (zmq_errno ()));
    }
}

int
reload_apply (herald_config_t *live, const reload_targets_t *targets)
{
    char qpath[HERALD_PATH_MAX + 8];
    herald_log_quote (live->path, qpath, sizeof qpath);
    herald_config_t *fresh = malloc (sizeof *fresh);
    herald_config_t *merged = malloc (sizeof *merged);
    herald_config_t *before = malloc (sizeof *before);
    herald_config_diff_t *diff = malloc (sizeof *diff);
    char *applied = malloc (S_TEXT_MAX);
    char *waiting = malloc (S_TEXT_MAX);
    int rc = -1;
    if (!fresh || !merged || !before || !diff || !applied || !waiting)
        herald_error ("reload refused: out of memory", "file=%s", qpath);
    else
    if (s_read (live->path, fresh) == 0) {
        herald_config_merge (live, fresh, merged, diff);
        /*  The key lists: the ZAP thread's copy is replaced by a message,
            connections of removed keys are closed. If that cannot be done,
            the running lists stay, and so do they in the configuration. */
        if (security_apply (targets->security, fresh) != 0)
            memcpy (&merged->security, &live->security, sizeof merged->security);
        s_log_restarts (diff, qpath);
        memcpy (before, live, sizeof *before);
        memcpy (live, merged, sizeof *live);
        s_notify (before, live, diff, targets);
        herald_info ("configuration reloaded", "file=%s applied=%d needs_restart=%d changes=%s restart=%s",
                     qpath, diff->count + diff->unlisted - diff->restart, diff->restart,
                     herald_log_quote (herald_config_diff_text (diff, false, applied, S_TEXT_MAX / 2),
                                       applied + S_TEXT_MAX / 2, S_TEXT_MAX / 2),
                     herald_log_quote (herald_config_diff_text (diff, true, waiting, S_TEXT_MAX / 2),
                                       waiting + S_TEXT_MAX / 2, S_TEXT_MAX / 2));
        rc = 0;
    }
    free (fresh);
    free (merged);
    free (before);
    free (diff);
    free (applied);
    free (waiting);
    return rc;
}
