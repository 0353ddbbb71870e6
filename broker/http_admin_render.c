/*  http_admin_render: the admin page's HTML (see http_admin_render.h).

    The pages hold no inline script nor style (the Content-Security-Policy
    forbids them): admin.js finds what it updates by data-k attributes
    ("ch.NAME.pending", "rate.ingest"), admin.css styles by class. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_admin.h"
#include "http_admin_render.h"
#include "http_html.h"

static const char *
s_str (json_t *object, const char *key)
{
    const char *value = json_string_value (json_object_get (object, key));
    return value? value: "";
}

static long long
s_int (json_t *object, const char *key)
{
    return (long long) json_integer_value (json_object_get (object, key));
}

/*  Appends text escaped: the one way a value reaches a page. */
static void
s_put (herald_text_t *out, const char *text)
{
    http_html_escape (out, text);
}

static void
s_put_int (herald_text_t *out, long long value)
{
    herald_text_printf (out, "%lld", value);
}

static void
s_csrf_field (herald_text_t *out, const http_admin_view_t *view)
{
    herald_text_puts (out, "<input type=\"hidden\" name=\"csrf\" value=\"");
    s_put (out, view->csrf);
    herald_text_puts (out, "\">");
}

/*  The document up to <main>, with the navigation (active: its href). */
static void
s_head (herald_text_t *out, const http_admin_view_t *view, const char *title, const char *active)
{
    herald_text_puts (out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      "<meta name=\"referrer\" content=\"same-origin\">\n<title>");
    s_put (out, title);
    herald_text_puts (out, " - Herald</title>\n<link rel=\"icon\" href=\"/admin/static/icon.svg\">\n"
                      "<link rel=\"stylesheet\" href=\"/admin/static/admin.css\">\n"
                      "<script src=\"/admin/static/admin.js\" defer></script>\n</head>\n<body>\n");
    if (!view) {
        herald_text_puts (out, "<main>\n");
        return;
    }
    static const struct { const char *href, *label; } links[] = {
        { "/admin", "Dashboard" }, { "/admin/dead", "Dead letters" }, { "/admin/track", "Track" },
    };
    herald_text_puts (out, "<header>\n<nav>\n<span class=\"brand\">Herald</span>\n");
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        herald_text_printf (out, "<a href=\"%s\"%s>%s</a>\n", links[i].href,
                            active && strcmp (active, links[i].href) == 0? " class=\"active\"": "", links[i].label);
    herald_text_puts (out, "<span class=\"who\">");
    s_put (out, view->who && *view->who? view->who: "open (no tokens_file)");
    herald_text_puts (out, "</span>\n");
    if (view->session) {
        herald_text_puts (out, "<form method=\"post\" action=\"/admin/logout\" class=\"inline\">");
        s_csrf_field (out, view);
        herald_text_puts (out, "<button type=\"submit\" id=\"logout\">Log out</button></form>\n");
    }
    herald_text_puts (out, "</nav>\n</header>\n<main>\n");
}

static char *
s_end (herald_text_t *out)
{
    herald_text_printf (out, "</main>\n<footer>Herald %s</footer>\n</body>\n</html>\n", HERALD_VERSION);
    if (out->failed) {
        free (out->data);
        return NULL;
    }
    return out->data;
}

static void
s_notice (herald_text_t *out, const char *notice, long count)
{
    if (!notice)
        return;
    herald_text_printf (out, "<p class=\"notice\" id=\"notice\">%s %ld task%s.</p>\n",
                        strcmp (notice, "retried") == 0? "Retried": "Purged", count, count == 1? "": "s");
}

//  --------------------------------------------------------------------------
//  Dashboard

/*  A <td> (or <span>) that admin.js updates: data-k="KEY". */
static void
s_cell (herald_text_t *out, const char *tag, const char *key_prefix, const char *key, const char *text,
        const char *class_name)
{
    herald_text_printf (out, "<%s data-k=\"", tag);
    s_put (out, key_prefix);
    s_put (out, key);
    herald_text_puts (out, "\"");
    if (class_name && *class_name)
        herald_text_printf (out, " class=\"%s\"", class_name);
    herald_text_puts (out, ">");
    s_put (out, text);
    herald_text_printf (out, "</%s>", tag);
}

char *
http_admin_render_dashboard (const http_admin_view_t *view, json_t *reply)
{
    herald_text_t out = { 0 };
    json_t *broker = json_object_get (reply, "broker");
    json_t *metrics = json_object_get (reply, "metrics");
    json_t *acked = json_object_get (metrics, "acked");
    json_t *deliveries = json_object_get (metrics, "deliveries");
    json_t *channels = json_object_get (reply, "channels");
    char text[64];
    s_head (&out, view, "Dashboard", "/admin");
    herald_text_puts (&out, "<h1>Dashboard</h1>\n<div id=\"dashboard\" data-refresh-ms=\"2000\">\n"
                      "<p class=\"status\" data-k=\"updated\">figures as the page was made; rates after the next "
                      "sample</p>\n<section class=\"cards\">\n");

    long long done = 0, failed = 0;
    size_t i;
    json_t *counts;
    json_array_foreach (deliveries, i, counts) {
        done += s_int (counts, "done");
        failed += s_int (counts, "failed");
    }
    herald_text_puts (&out, "<div class=\"card\">\n<h2>Ingest</h2>\n<p class=\"big\">");
    s_cell (&out, "span", "", "rate.ingest", "-", NULL);
    herald_text_puts (&out, " events/s</p>\n<p>received ");
    snprintf (text, sizeof text, "%lld", s_int (metrics, "received"));
    s_cell (&out, "span", "", "received", text, NULL);
    herald_text_puts (&out, ", stored ");
    snprintf (text, sizeof text, "%lld", s_int (acked, "new"));
    s_cell (&out, "span", "", "acked.new", text, NULL);
    herald_text_puts (&out, ", duplicates ");
    snprintf (text, sizeof text, "%lld", s_int (acked, "duplicate"));
    s_cell (&out, "span", "", "acked.duplicate", text, NULL);
    herald_text_puts (&out, "</p>\n</div>\n<div class=\"card\">\n<h2>Delivery</h2>\n<p class=\"big\">");
    s_cell (&out, "span", "", "rate.delivery", "-", NULL);
    herald_text_puts (&out, " deliveries/s</p>\n<p>done ");
    snprintf (text, sizeof text, "%lld", done);
    s_cell (&out, "span", "", "deliveries.done", text, NULL);
    herald_text_puts (&out, ", failed ");
    snprintf (text, sizeof text, "%lld", failed);
    s_cell (&out, "span", "", "deliveries.failed", text, NULL);
    herald_text_puts (&out, "</p>\n</div>\n<div class=\"card\">\n<h2>Broker</h2>\n<dl>\n<dt>uptime</dt><dd>");
    s_cell (&out, "span", "", "broker.uptime", http_html_duration (s_int (broker, "uptime_ms"), text, sizeof text), NULL);
    herald_text_puts (&out, "</dd>\n<dt>store</dt><dd>");
    s_cell (&out, "span", "", "broker.store_bytes",
            http_html_bytes (s_int (broker, "journal_bytes") + s_int (broker, "index_bytes"), text, sizeof text), NULL);
    herald_text_puts (&out, " <span class=\"path\">");
    s_put (&out, s_str (broker, "store"));
    herald_text_puts (&out, "</span></dd>\n<dt>journal</dt><dd>");
    bool full = json_is_true (json_object_get (broker, "store_full"));
    s_cell (&out, "span", "", "broker.journal", full? "full: new events are refused (507)": "taking events",
            full? "bad": "good");
    herald_text_puts (&out, "</dd>\n<dt>events stored</dt><dd>");
    snprintf (text, sizeof text, "%lld", s_int (broker, "events"));
    s_cell (&out, "span", "", "broker.events", text, NULL);
    herald_text_puts (&out, "</dd>\n<dt>index behind by</dt><dd>");
    s_cell (&out, "span", "", "broker.index_lag",
            http_html_bytes (s_int (broker, "index_lag_bytes"), text, sizeof text), NULL);
    herald_text_puts (&out, "</dd>\n<dt>version</dt><dd>");
    s_put (&out, s_str (broker, "version"));
    herald_text_puts (&out, "</dd>\n</dl>\n</div>\n</section>\n");

    herald_text_puts (&out, "<h2>Channels</h2>\n<table id=\"channels\">\n<thead><tr><th>channel</th><th>driver</th>"
                      "<th>pending</th><th>in flight</th><th>retrying</th><th>done</th><th>dead</th><th>workers</th>"
                      "<th>oldest pending</th></tr></thead>\n<tbody>\n");
    json_t *channel;
    static const char *const states[] = { "pending", "in_flight", "retrying", "done", "dead", "workers" };
    json_array_foreach (channels, i, channel) {
        const char *name = s_str (channel, "name");
        herald_text_t prefix = { 0 };
        herald_text_printf (&prefix, "ch.%s.", name);
        herald_text_puts (&out, "<tr data-channel=\"");
        s_put (&out, name);
        herald_text_puts (&out, "\"><td><a href=\"/admin/dead?channel=");
        http_url_encode (&out, name);
        herald_text_puts (&out, "\">");
        s_put (&out, name);
        herald_text_puts (&out, "</a></td><td>");
        s_put (&out, s_str (channel, "driver"));
        herald_text_puts (&out, "</td>");
        for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
            long long value = s_int (channel, states[s]);
            snprintf (text, sizeof text, "%lld", value);
            const char *class_name = strcmp (states[s], "dead") == 0 && value > 0? "num bad"
                                   : strcmp (states[s], "workers") == 0 && value == 0? "num bad": "num";
            s_cell (&out, "td", prefix.data? prefix.data: "", states[s], text, class_name);
        }
        s_cell (&out, "td", prefix.data? prefix.data: "", "oldest",
                http_html_duration (s_int (channel, "oldest_pending_age_ms"), text, sizeof text), "num");
        herald_text_puts (&out, "</tr>\n");
        out.failed |= prefix.failed;
        free (prefix.data);
    }
    herald_text_puts (&out, "</tbody>\n</table>\n</div>\n");
    return s_end (&out);
}

//  --------------------------------------------------------------------------
//  Dead letters

/*  A form posting to action with the CSRF token, hidden fields (name,
    value pairs, NULL-terminated; a NULL or empty value is left out), an
    "I am sure" box when confirm, and a button. */
static void
s_action_form (herald_text_t *out, const http_admin_view_t *view, const char *action, const char *const *fields,
               bool confirm, const char *button_class, const char *label)
{
    herald_text_printf (out, "<form method=\"post\" action=\"%s\" class=\"inline\">", action);
    s_csrf_field (out, view);
    for (size_t i = 0; fields[i]; i += 2) {
        if (!fields[i + 1] || !*fields[i + 1])
            continue;
        herald_text_printf (out, "<input type=\"hidden\" name=\"%s\" value=\"", fields[i]);
        s_put (out, fields[i + 1]);
        herald_text_puts (out, "\">");
    }
    if (confirm)
        herald_text_puts (out, "<label class=\"confirm\"><input type=\"checkbox\" name=\"confirm\" value=\"yes\" "
                          "required> I am sure</label> ");
    herald_text_printf (out, "<button type=\"submit\" class=\"%s\">", button_class);
    s_put (out, label);
    herald_text_puts (out, "</button></form>");
}

static void
s_page_link (herald_text_t *out, const char *channel, long page, const char *label, const char *id)
{
    herald_text_printf (out, "<a id=\"%s\" href=\"/admin/dead?", id);
    if (*channel) {
        herald_text_puts (out, "channel=");
        http_url_encode (out, channel);
        herald_text_puts (out, "&amp;");
    }
    herald_text_printf (out, "page=%ld\">%s</a>", page, label);
}

char *
http_admin_render_dead_list (const http_admin_view_t *view, json_t *reply, const char *channel, long page,
                             const char *notice, long count)
{
    herald_text_t out = { 0 };
    s_head (&out, view, "Dead letters", "/admin/dead");
    herald_text_puts (&out, "<h1>Dead letters</h1>\n");
    s_notice (&out, notice, count);
    herald_text_puts (&out, "<form method=\"get\" action=\"/admin/dead\" class=\"filter\"><label>Channel "
                      "<select name=\"channel\"><option value=\"\">all</option>");
    for (int c = 0; c < view->config->channel_count; c++) {
        const char *name = view->config->channels[c].name;
        herald_text_puts (&out, "<option value=\"");
        s_put (&out, name);
        herald_text_printf (&out, "\"%s>", strcmp (name, channel) == 0? " selected": "");
        s_put (&out, name);
        herald_text_puts (&out, "</option>");
    }
    herald_text_puts (&out, "</select></label> <button type=\"submit\">Show</button></form>\n");
    if (view->operate && *channel) {
        const char *fields[] = { "channel", channel, NULL };
        herald_text_t label = { 0 };
        herald_text_puts (&out, "<div class=\"actions\">");
        herald_text_printf (&label, "Retry every dead task of %s", channel);
        s_action_form (&out, view, "/admin/dead/retry", fields, false, "retry-channel", label.data? label.data: "");
        free (label.data);
        label = (herald_text_t) { 0 };
        herald_text_printf (&label, "Purge every dead task of %s", channel);
        s_action_form (&out, view, "/admin/dead/purge", fields, true, "purge-channel danger", label.data? label.data: "");
        free (label.data);
        herald_text_puts (&out, "</div>\n");
    }
    json_t *tasks = json_object_get (reply, "tasks");
    size_t total = json_array_size (tasks);
    size_t first = (size_t) (page - 1) * HTTP_ADMIN_PAGE_SIZE;
    size_t shown = 0;
    if (first >= total) {
        herald_text_puts (&out, "<p class=\"empty\" id=\"empty\">No dead letters");
        if (*channel) {
            herald_text_puts (&out, " in ");
            s_put (&out, channel);
        }
        herald_text_printf (&out, "%s.</p>\n", page > 1? " on this page": "");
    }
    else {
        herald_text_printf (&out, "<table id=\"dead\">\n<thead><tr><th>task</th><th>event</th><th>channel</th>"
                            "<th>attempts</th><th>dead since</th><th>last error</th>%s</tr></thead>\n<tbody>\n",
                            view->operate? "<th></th>": "");
        for (size_t i = first; i < total && shown < HTTP_ADMIN_PAGE_SIZE; i++, shown++) {
            json_t *task = json_array_get (tasks, i);
            const char *task_id = s_str (task, "task_id"), *event_id = s_str (task, "event_id");
            char when[40];
            herald_text_puts (&out, "<tr data-task=\"");
            s_put (&out, task_id);
            herald_text_puts (&out, "\"><td>");
            if (view->operate) {
                herald_text_puts (&out, "<a class=\"task\" href=\"/admin/dead/");
                http_url_encode (&out, task_id);
                herald_text_puts (&out, "\">");
                s_put (&out, task_id);
                herald_text_puts (&out, "</a>");
            }
            else
                s_put (&out, task_id);
            herald_text_puts (&out, "</td><td><a href=\"/admin/track?id=");
            http_url_encode (&out, event_id);
            herald_text_puts (&out, "\">");
            s_put (&out, event_id);
            herald_text_puts (&out, "</a></td><td>");
            s_put (&out, s_str (task, "channel"));
            herald_text_puts (&out, "</td><td class=\"num\">");
            s_put_int (&out, s_int (task, "attempts"));
            herald_text_puts (&out, "</td><td>");
            s_put (&out, http_html_time (s_int (task, "dead_at"), when, sizeof when));
            herald_text_puts (&out, "</td><td class=\"error\">");
            s_put (&out, s_str (task, "last_error"));
            herald_text_puts (&out, "</td>");
            if (view->operate) {
                const char *fields[] = { "task_id", task_id, "channel", channel, NULL };
                herald_text_puts (&out, "<td>");
                s_action_form (&out, view, "/admin/dead/retry", fields, false, "retry", "Retry");
                herald_text_puts (&out, "</td>");
            }
            herald_text_puts (&out, "</tr>\n");
        }
        herald_text_puts (&out, "</tbody>\n</table>\n");
    }
    herald_text_puts (&out, "<nav class=\"pages\">");
    if (page > 1)
        s_page_link (&out, channel, page - 1, "&larr; previous", "previous");
    herald_text_printf (&out, " <span>page %ld</span> ", page);
    if (total > first + shown)
        s_page_link (&out, channel, page + 1, "next &rarr;", "next");
    herald_text_puts (&out, "</nav>\n");
    return s_end (&out);
}

/*  A definition list entry with an escaped value. */
static void
s_fact (herald_text_t *out, const char *term, const char *value, const char *class_name)
{
    herald_text_printf (out, "<dt>%s</dt><dd%s%s%s>", term, class_name? " class=\"": "", class_name? class_name: "",
                        class_name? "\"": "");
    s_put (out, value);
    herald_text_puts (out, "</dd>\n");
}

char *
http_admin_render_dead_show (const http_admin_view_t *view, json_t *reply)
{
    herald_text_t out = { 0 };
    json_t *task = json_object_get (reply, "task");
    const char *task_id = s_str (task, "task_id"), *event_id = s_str (task, "event_id");
    char text[64];
    s_head (&out, view, "Dead task", "/admin/dead");
    herald_text_puts (&out, "<h1>Dead task <code id=\"task-id\">");
    s_put (&out, task_id);
    herald_text_puts (&out, "</code></h1>\n<dl class=\"facts\">\n<dt>event</dt><dd><a href=\"/admin/track?id=");
    http_url_encode (&out, event_id);
    herald_text_puts (&out, "\">");
    s_put (&out, event_id);
    herald_text_puts (&out, "</a></dd>\n");
    s_fact (&out, "channel", s_str (task, "channel"), NULL);
    snprintf (text, sizeof text, "%lld", s_int (task, "attempts"));
    s_fact (&out, "attempts", text, NULL);
    s_fact (&out, "dead since", http_html_time (s_int (task, "dead_at"), text, sizeof text), NULL);
    s_fact (&out, "last error", s_str (task, "last_error"), "error");
    herald_text_puts (&out, "</dl>\n");
    if (view->operate) {
        const char *fields[] = { "task_id", task_id, "event_id", event_id, NULL };
        herald_text_puts (&out, "<div class=\"actions\">");
        s_action_form (&out, view, "/admin/dead/retry", fields, false, "retry", "Retry");
        s_action_form (&out, view, "/admin/dead/purge", fields, true, "purge danger", "Purge");
        herald_text_puts (&out, "</div>\n");
    }
    herald_text_puts (&out, "<h2>Attempts</h2>\n");
    json_t *history = json_object_get (task, "history");
    if (json_array_size (history) == 0)
        herald_text_puts (&out, "<p class=\"empty\">No attempt recorded.</p>\n");
    else {
        herald_text_puts (&out, "<table id=\"history\">\n<thead><tr><th>attempt</th><th>at</th><th>outcome</th>"
                          "<th>error</th></tr></thead>\n<tbody>\n");
        size_t i;
        json_t *row;
        json_array_foreach (history, i, row) {
            herald_text_puts (&out, "<tr><td class=\"num\">");
            s_put_int (&out, s_int (row, "attempt"));
            herald_text_puts (&out, "</td><td>");
            s_put (&out, http_html_time (s_int (row, "at"), text, sizeof text));
            herald_text_puts (&out, "</td><td>");
            s_put (&out, s_str (row, "outcome"));
            herald_text_puts (&out, "</td><td class=\"error\">");
            s_put (&out, s_str (row, "error"));
            herald_text_puts (&out, "</td></tr>\n");
        }
        herald_text_puts (&out, "</tbody>\n</table>\n");
    }
    herald_text_puts (&out, "<h2>Event</h2>\n<pre id=\"event\">");
    json_t *event = json_object_get (task, "event");
    char *dump = event? json_dumps (event, JSON_INDENT (2) | JSON_PRESERVE_ORDER): NULL;
    s_put (&out, dump? dump: "(not stored)");
    free (dump);
    herald_text_puts (&out, "</pre>\n");
    return s_end (&out);
}

//  --------------------------------------------------------------------------
//  Track

char *
http_admin_render_track (const http_admin_view_t *view, const char *id, json_t *reply, bool found,
                         const char *notice, long count)
{
    herald_text_t out = { 0 };
    char text[64];
    s_head (&out, view, "Track", "/admin/track");
    herald_text_puts (&out, "<h1>Track an event</h1>\n");
    s_notice (&out, notice, count);
    herald_text_puts (&out, "<form method=\"get\" action=\"/admin/track\" class=\"filter\"><label>Event id "
                      "<input type=\"text\" name=\"id\" size=\"40\" required value=\"");
    s_put (&out, id);
    herald_text_puts (&out, "\"></label> <button type=\"submit\">Track</button></form>\n");
    if (*id && !found) {
        herald_text_puts (&out, "<p class=\"empty\" id=\"empty\">No event with id <code>");
        s_put (&out, id);
        herald_text_puts (&out, "</code> (or the index has not caught up with it yet).</p>\n");
    }
    size_t i;
    json_t *event;
    json_array_foreach (json_object_get (reply, "events"), i, event) {
        herald_text_puts (&out, "<section class=\"event\">\n<h2>Event <code>");
        s_put (&out, s_str (event, "event_id"));
        herald_text_puts (&out, "</code></h2>\n<dl class=\"facts\">\n");
        s_fact (&out, "type", s_str (event, "type"), NULL);
        s_fact (&out, "source", s_str (event, "source"), NULL);
        s_fact (&out, "received", http_html_time (s_int (event, "received_at"), text, sizeof text), NULL);
        s_fact (&out, "idempotency key", s_str (event, "duplicate_key"), NULL);
        herald_text_puts (&out, "</dl>\n<table class=\"track\">\n<thead><tr><th>channel</th><th>task</th><th>state</th>"
                          "<th>attempts</th><th>last error</th><th>updated</th></tr></thead>\n<tbody>\n");
        size_t c;
        json_t *channel;
        json_array_foreach (json_object_get (event, "channels"), c, channel) {
            const char *state = s_str (channel, "state"), *task_id = s_str (channel, "task_id");
            herald_text_puts (&out, "<tr data-channel=\"");
            s_put (&out, s_str (channel, "channel"));
            herald_text_puts (&out, "\"><td>");
            s_put (&out, s_str (channel, "channel"));
            herald_text_puts (&out, "</td><td>");
            if (view->operate && strcmp (state, "dead") == 0) {
                herald_text_puts (&out, "<a href=\"/admin/dead/");
                http_url_encode (&out, task_id);
                herald_text_puts (&out, "\">");
                s_put (&out, task_id);
                herald_text_puts (&out, "</a>");
            }
            else
                s_put (&out, task_id);
            herald_text_puts (&out, "</td><td class=\"state state-");
            s_put (&out, state);
            herald_text_puts (&out, "\">");
            s_put (&out, state);
            herald_text_puts (&out, "</td><td class=\"num\">");
            s_put_int (&out, s_int (channel, "attempts"));
            herald_text_puts (&out, "</td><td class=\"error\">");
            s_put (&out, s_str (channel, "last_error"));
            herald_text_puts (&out, "</td><td>");
            s_put (&out, http_html_time (s_int (channel, "updated_at"), text, sizeof text));
            herald_text_puts (&out, "</td></tr>\n");
        }
        herald_text_puts (&out, "</tbody>\n</table>\n</section>\n");
    }
    return s_end (&out);
}

//  --------------------------------------------------------------------------
//  Login, messages

char *
http_admin_render_login (const char *message)
{
    herald_text_t out = { 0 };
    s_head (&out, NULL, "Log in", NULL);
    herald_text_puts (&out, "<div class=\"login\">\n<h1>Herald admin</h1>\n");
    if (message) {
        herald_text_puts (&out, "<p class=\"notice bad\" id=\"login-error\">");
        s_put (&out, message);
        herald_text_puts (&out, "</p>\n");
    }
    herald_text_puts (&out, "<form method=\"post\" action=\"/admin/login\" id=\"login\">\n<label>Token "
                      "<input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" "
                      "required autofocus></label>\n<button type=\"submit\">Log in</button>\n</form>\n"
                      "<p class=\"hint\">A token of role admin_read or admin_operate, made by "
                      "<code>herald token new -c FILE --role admin_operate NAME</code>.</p>\n</div>\n");
    return s_end (&out);
}

char *
http_admin_render_message (const http_admin_view_t *view, const char *title, const char *message)
{
    herald_text_t out = { 0 };
    s_head (&out, view, title, NULL);
    herald_text_puts (&out, "<h1>");
    s_put (&out, title);
    herald_text_puts (&out, "</h1>\n<p class=\"notice bad\" id=\"message\">");
    s_put (&out, message);
    herald_text_puts (&out, "</p>\n");
    return s_end (&out);
}
