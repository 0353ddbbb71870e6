/*  mail: the one builder of an email (RFC 5322 + MIME, UTF-8), like curl's
    lib/mime.c: the smtp driver sends what it renders, the file driver writes
    the same bytes to a .eml file. The message is multipart/alternative
    (text/plain then text/html) when both templates are set, else the one
    part; parts are quoted-printable; lines end in CRLF.

    Event data can never add a header, a recipient or an SMTP command:
    values inserted in headers have control characters replaced and are
    encoded (RFC 2047) or quoted (plain text that a reader would decode as
    an encoded word, "=?...?=", is encoded too); the recipient must be one plain address
    (local@domain, printable ASCII, no specials); a display name may only
    come from the To template's own "Name <{{...}}>" form; bodies are
    quoted-printable, so no line holds a bare CR or LF. Lines are at most
    76 bytes (header lines folded), but for an address or a task id too
    long to fit, which stays whole (RFC 5322 allows 998). */
#ifndef HERALD_MAIL_H
#define HERALD_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include "driver.h"
#include "herald_text.h"

#define HD_MAIL_ADDRESS_MAX 254         /* RFC 5321 path limit */

typedef struct _hd_mail_t hd_mail_t;

typedef struct {
    const char *from;           /* "Shop <shop@example.com>" or "shop@example.com" */
    const char *to;             /* template: "{{data.customer.email}}", or
                                   "{{data.customer.name}} <{{data.customer.email}}>" */
    const char *subject;        /* template */
    const char *text_template;  /* file path; NULL or "" for none */
    const char *html_template;  /* file path; NULL or "" for none */
} hd_mail_config_t;             /* borrowed by hd_mail_new (what it keeps, it copies) */

/*  Checks the settings and loads the templates. Without either template
    the body is the event's data as indented JSON text. Returns the
    renderer, or NULL with err naming the setting ("smtp.from ...",
    "smtp.to: unclosed {{ at offset 3", "smtp.text_template: PATH: ..."). */
hd_mail_t *
    hd_mail_new (const hd_mail_config_t *config, char *err, size_t errlen);

/*  NULL-safe, nulls *self_p. */
void
    hd_mail_destroy (hd_mail_t **self_p);

/*  The envelope sender: the address inside From. Borrowed. */
const char *
    hd_mail_sender (const hd_mail_t *self);

/*  Renders task's message into message (appended) and its envelope
    recipient into rcpt (rcpt_size > HD_MAIL_ADDRESS_MAX). date_ms is the
    Date header's time (wall clock ms): the only input that is not the task
    or the settings. Returns 0, or -1 with err: a permanent problem of the
    task (invalid event JSON, missing field, not one plain recipient, task
    id unusable in a Message-ID), or out of memory (then message->failed);
    what was appended to message then is not a message. */
int
    hd_mail_render (const hd_mail_t *self, const hd_task_t *task, int64_t date_ms,
                    herald_text_t *message, char *rcpt, size_t rcpt_size,
                    char *err, size_t errlen);

#endif
