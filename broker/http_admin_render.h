/*  http_admin_render: the admin page's HTML, made from the admin verbs'
    JSON replies (private to http_admin). Every value from the replies and
    from the request is escaped (http_html_escape) or URL-encoded; markup
    comes only from here. Each function returns the page, which the caller
    frees, or NULL on OOM. */
#ifndef HERALD_HTTP_ADMIN_RENDER_H
#define HERALD_HTTP_ADMIN_RENDER_H

#include <jansson.h>
#include <stdbool.h>

#include "herald_config.h"

/*  Who looks, and what the page may offer them. */
typedef struct {
    const herald_config_t *config;      /* channel names for the filter */
    const char *who;                    /* "NAME (role)" of a session or token, "" when open */
    const char *csrf;                   /* the CSRF token forms carry */
    bool operate;                       /* admin_operate: event details, retry and purge */
    bool session;                       /* logged in with the form: offer to log out */
} http_admin_view_t;

/*  The dashboard, from the metrics verb's reply. */
char *
    http_admin_render_dashboard (const http_admin_view_t *view, json_t *metrics);

/*  Page page (from 1) of the dead letters of channel ("" = all): reply is
    dead.list's, asked for one more task than the page shows (to know
    whether a next page exists). notice: "retried", "purged" or NULL, with
    count. */
char *
    http_admin_render_dead_list (const http_admin_view_t *view, json_t *reply, const char *channel, long page,
                                 const char *notice, long count);

/*  One dead task, from dead.show's reply. */
char *
    http_admin_render_dead_show (const http_admin_view_t *view, json_t *reply);

/*  The track form for id ("" = none yet) and, with reply (track's), where
    the event is; found false: no such event. notice as for the list. */
char *
    http_admin_render_track (const http_admin_view_t *view, const char *id, json_t *reply, bool found,
                             const char *notice, long count);

/*  The login form, with message (NULL: none) above it. */
char *
    http_admin_render_login (const char *message);

/*  A page saying title and message (an error, a refusal). view may be NULL
    (no navigation). */
char *
    http_admin_render_message (const http_admin_view_t *view, const char *title, const char *message);

#endif
