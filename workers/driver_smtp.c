/*  driver_smtp: email through an SMTP relay with libcurl.

    Asynchronous for the worker: start() renders the message (mail.h, the
    bytes the file driver writes) and queues it; sender threads send the
    queue, each with its own libcurl handle, whose relay connection the
    next mail on that thread reuses; a finished mail is handed back through
    a pipe that poll_items() gives to the worker's zmq_poll, and progress()
    completes it on the worker's thread. So however slow the relay, the
    worker heartbeats, takes tasks and reports: libcurl's multi interface
    cannot give that for SMTP, because it waits for the relay's answer to
    the end of DATA inside the call (smtp_done, in 7.88 and still in 8.x).

    At most min(capacity, S_MAX_SENDERS) mails are on the wire at once,
    senders started as needed; more wait in the queue (their smtp.timeout
    starts when they are sent). A connection whose conversation failed is
    never reused. close() shuts every relay socket down, so no sender waits
    on a stuck relay (not even for libcurl's QUIT), and joins them.

    Event data can never add a recipient or an SMTP command: the envelope
    has exactly one plain address (mail.h) and libcurl dot-stuffs the
    body. Server replies and libcurl's errors pass through herald_redact. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "driver.h"
#include "herald_clock.h"
#include "herald_redact.h"
#include "herald_text.h"
#include "mail.h"

#define S_DEFAULT_TIMEOUT 60000
#define S_MAX_SENDERS     64        /* sender threads per worker process, whatever the capacity */
#define S_SENDER_STACK    (512 * 1024)
#define S_REPLY_MAX       256       /* server reply bytes kept for a result text */

typedef struct hd_smtp_s hd_smtp_t;

/*  One mail: rendered on the worker's thread, sent on a sender thread,
    completed on the worker's thread. */
typedef struct s_mail_s {
    struct s_mail_s *next;
    char task_id [HP_MAX_ID + 1];
    uint32_t attempt;
    uint64_t lease;                 /* echoed in complete() */
    char rcpt_to [HD_MAIL_ADDRESS_MAX + 3];     /* "<address>", the one envelope recipient */
    herald_text_t message;              /* what DATA sends (libcurl dot-stuffs it) */
    size_t sent;                        /* bytes of message handed to libcurl */
    hd_result_t result;                 /* set by the sender */
    char last_reply [S_REPLY_MAX];      /* last server reply line before QUIT, raw */
    char last_command [16];             /* verb of the last command sent ("RCPT TO") */
    char error_reply [S_REPLY_MAX];     /* first 4xx/5xx reply of the transfer, "" if none */
    char error_command [16];            /* the command error_reply answered */
    char errbuf [CURL_ERROR_SIZE];
} s_mail_t;

/*  A FIFO of mails. */
typedef struct {
    s_mail_t *head;
    s_mail_t *tail;
} s_list_t;

struct hd_smtp_s {
    char channel [HERALD_NAME_MAX];     /* for error texts */
    herald_smtp_config_t cfg;           /* copy of the channel's smtp settings */
    char shown_url [512];               /* cfg.url redacted, for result texts */
    char mail_from [HD_MAIL_ADDRESS_MAX + 3];   /* "<sender>" */
    hd_mail_t *mail;                    /* the message renderer */
    char *password;                     /* from getenv(cfg.password_env), NULL without AUTH */
    hd_complete_fn *complete;
    void *ctx;
    int in_progress;                    /* started, not completed (worker's thread only) */
    int max_senders;
    int wake [2];                       /* pipe: a byte per finished mail, [0] polled */

    /*  Shared with the senders, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t work;                /* signalled when todo grows or on stop */
    bool lock_ready;
    s_list_t todo;                      /* queued, not taken by a sender */
    s_list_t done;                      /* sent (or failed), not completed */
    int queued;                         /* mails in todo */
    int idle;                           /* senders waiting for work */
    bool stopping;
    pthread_t senders [S_MAX_SENDERS];
    int sender_count;
    curl_socket_t *sockets;             /* every socket libcurl opened and has not closed */
    int socket_count;
    int socket_cap;
};

static void
s_list_push (s_list_t *list, s_mail_t *mail)
{
    mail->next = NULL;
    if (list->tail)
        list->tail->next = mail;
    else
        list->head = mail;
    list->tail = mail;
}

static s_mail_t *
s_list_pop (s_list_t *list)
{
    s_mail_t *mail = list->head;
    if (mail) {
        list->head = mail->next;
        if (!list->head)
            list->tail = NULL;
        mail->next = NULL;
    }
    return mail;
}

static void
s_mail_destroy (s_mail_t **mail_p)
{
    if (mail_p && *mail_p) {
        free ((*mail_p)->message.data);
        free (*mail_p);
        *mail_p = NULL;
    }
}

//  --------------------------------------------------------------------------
//  libcurl callbacks (sender threads)

static size_t
s_read (char *buffer, size_t size, size_t nitems, void *userp)
{
    s_mail_t *mail = userp;
    size_t room = size * nitems;
    size_t left = mail->message.len - mail->sent;
    size_t count = left < room ? left : room;
    memcpy (buffer, mail->message.data + mail->sent, count);
    mail->sent += count;
    return count;
}

/*  Keeps the last server reply, the first error reply and the verb of the
    command it answered, so errors read "451 4.3.0 try later (RCPT TO)".
    Replies to QUIT are ignored. Credentials are never kept: only known
    verbs are recorded, never command arguments. */
static int
s_debug (CURL *curl, curl_infotype type, char *data, size_t size, void *userp)
{
    s_mail_t *mail = userp;
    if (type == CURLINFO_HEADER_IN && strcmp (mail->last_command, "QUIT") != 0) {
        size_t len = 0;
        while (len < size && data [len] != '\r' && data [len] != '\n')
            len++;
        if (len == 0)
            return 0;
        if (len >= sizeof mail->last_reply)
            len = sizeof mail->last_reply - 1;
        memcpy (mail->last_reply, data, len);
        mail->last_reply [len] = '\0';
        if ((data [0] == '4' || data [0] == '5') && !mail->error_reply [0]) {
            memcpy (mail->error_reply, mail->last_reply, len + 1);
            memcpy (mail->error_command, mail->last_command, sizeof mail->error_command);
        }
    }
    else
    if (type == CURLINFO_HEADER_OUT) {
        static const char *verbs [][2] = {
            { "EHLO", "EHLO" }, { "HELO", "HELO" }, { "STARTTLS", "STARTTLS" },
            { "AUTH", "AUTH" }, { "MAIL", "MAIL FROM" }, { "RCPT", "RCPT TO" },
            { "DATA", "DATA" }, { "QUIT", "QUIT" }, { "RSET", "RSET" }
        };
        for (size_t i = 0; i < sizeof verbs / sizeof verbs [0]; i++) {
            size_t len = strlen (verbs [i][0]);
            if (size >= len && strncasecmp (data, verbs [i][0], len) == 0
            &&  (size == len || !isalpha ((unsigned char) data [len]))) {
                snprintf (mail->last_command, sizeof mail->last_command, "%s", verbs [i][1]);
                break;
            }
        }
    }
    return 0;
}

/*  Opens the sockets libcurl asks for and remembers them, so close() can
    shut them down under a sender that waits on a stuck relay. */
static curl_socket_t
s_open_socket (void *userp, curlsocktype purpose, struct curl_sockaddr *address)
{
    hd_smtp_t *self = userp;
    curl_socket_t fd = CURL_SOCKET_BAD;
    pthread_mutex_lock (&self->lock);
    if (self->socket_count == self->socket_cap) {
        int cap = self->socket_cap ? self->socket_cap * 2 : 16;
        curl_socket_t *grown = realloc (self->sockets, (size_t) cap * sizeof *grown);
        if (grown) {
            self->sockets = grown;
            self->socket_cap = cap;
        }
    }
    if (!self->stopping && self->socket_count < self->socket_cap) {
        fd = socket (address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
        if (fd != CURL_SOCKET_BAD)
            self->sockets [self->socket_count++] = fd;
    }
    pthread_mutex_unlock (&self->lock);
    return fd;
}

static int
s_close_socket (void *userp, curl_socket_t fd)
{
    hd_smtp_t *self = userp;
    pthread_mutex_lock (&self->lock);
    for (int i = 0; i < self->socket_count; i++)
        if (self->sockets [i] == fd) {
            self->sockets [i] = self->sockets [--self->socket_count];
            break;
        }
    pthread_mutex_unlock (&self->lock);
    return close (fd);
}

/*  Called by libcurl at least once a second, also while it waits for a
    reply: a non-zero return aborts the transfer when we are closing. */
static int
s_progress_check (void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                  curl_off_t ulnow)
{
    hd_smtp_t *self = userp;
    pthread_mutex_lock (&self->lock);
    bool stopping = self->stopping;
    pthread_mutex_unlock (&self->lock);
    return stopping ? 1 : 0;
}

//  --------------------------------------------------------------------------
//  Sending (sender threads)

/*  Classifies a finished transfer into mail->result. */
static void
s_classify (hd_smtp_t *self, CURL *curl, s_mail_t *mail, CURLcode code)
{
    hd_result_t *result = &mail->result;
    const char *url = self->shown_url;
    long reply = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &reply);
    if (mail->error_reply [0])
        reply = strtol (mail->error_reply, NULL, 10);   /* not the reply to a later QUIT */
    char shown [S_REPLY_MAX + 8];
    result->delay_ms = 0;

    if (code == CURLE_OK) {
        result->outcome = HD_DONE;
        herald_redact (mail->last_reply, shown, sizeof shown);
        snprintf (result->text, sizeof result->text, "%s: %s", url, shown [0] ? shown : "accepted");
        return;
    }
    if (reply >= 400 && reply <= 599) {
        /*  The server said no: 4xx is worth another try, 5xx is final. */
        result->outcome = reply < 500 ? HD_RETRY : HD_FAILED;
        herald_redact (mail->error_reply, shown, sizeof shown);
        snprintf (result->text, sizeof result->text, "%s: %s (%s)", url,
                  shown [0] ? shown : curl_easy_strerror (code),
                  mail->error_command [0] ? mail->error_command : "reply");
        return;
    }
    /*  Transport: refused, DNS, timeout, TLS handshake or verification,
        STARTTLS not offered (never a silent fallback to plaintext). */
    result->outcome = HD_RETRY;
    if (code == CURLE_OPERATION_TIMEDOUT) {
        snprintf (result->text, sizeof result->text,
                  "%s: timed out after %lld ms (smtp.timeout) %s%s", url,
                  (long long) self->cfg.timeout_ms,
                  mail->last_command [0] ? "waiting for the reply to " : "connecting",
                  mail->last_command);
        return;
    }
    herald_redact (mail->errbuf, shown, sizeof shown);
    if (shown [0] && strcmp (mail->errbuf, curl_easy_strerror (code)) != 0)
        snprintf (result->text, sizeof result->text, "%s: %s (%s)", url,
                  curl_easy_strerror (code), shown);
    else
        snprintf (result->text, sizeof result->text, "%s: %s", url, curl_easy_strerror (code));
}

/*  Sets up curl for mail. Returns the first failing CURLcode. */
static CURLcode
s_setup (hd_smtp_t *self, CURL *curl, s_mail_t *mail, struct curl_slist *rcpt)
{
    CURLcode rc = CURLE_OK;
    long use_ssl = self->cfg.tls == HERALD_TLS_NONE ? (long) CURLUSESSL_NONE : (long) CURLUSESSL_ALL;
    /*  Bounds each reply, and the QUIT libcurl waits for when it closes a
        connection, by the same timeout (libcurl's default is 120 s). */
    long response_s = (long) ((self->cfg.timeout_ms + 999) / 1000);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_URL, self->cfg.url);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_USE_SSL, use_ssl);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_SSL_VERIFYPEER, self->cfg.verify_peer ? 1L : 0L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_SSL_VERIFYHOST, self->cfg.verify_peer ? 2L : 0L);
    if (!rc && self->cfg.ca_file [0])
        rc = curl_easy_setopt (curl, CURLOPT_CAINFO, self->cfg.ca_file);
    if (!rc && self->password) {
        rc = curl_easy_setopt (curl, CURLOPT_USERNAME, self->cfg.username);
        if (!rc) rc = curl_easy_setopt (curl, CURLOPT_PASSWORD, self->password);
    }
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_MAIL_FROM, self->mail_from);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, rcpt);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_READFUNCTION, s_read);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_READDATA, mail);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) mail->message.len);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long) self->cfg.timeout_ms);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, response_s);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, mail->errbuf);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_DEBUGFUNCTION, s_debug);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_DEBUGDATA, mail);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_VERBOSE, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_OPENSOCKETFUNCTION, s_open_socket);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_OPENSOCKETDATA, self);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_CLOSESOCKETFUNCTION, s_close_socket);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_CLOSESOCKETDATA, self);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, s_progress_check);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_XFERINFODATA, self);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
    return rc;
}

/*  Sends mail on curl (whose live connection, if any, is reused). */
static void
s_send (hd_smtp_t *self, CURL *curl, s_mail_t *mail)
{
    curl_easy_reset (curl);     /* keeps the connection, forgets the last mail's options */
    struct curl_slist *rcpt = curl_slist_append (NULL, mail->rcpt_to);
    CURLcode code = rcpt ? s_setup (self, curl, mail, rcpt) : CURLE_OUT_OF_MEMORY;
    if (code == CURLE_OK)
        code = curl_easy_perform (curl);
    if (code != CURLE_OK) {
        /*  Never reuse a connection whose conversation failed: libcurl
            keeps one that timed out waiting for the answer to the end of
            DATA, and the next mail's MAIL FROM would wait behind it. A
            shut socket reads as dead, so libcurl drops it (without QUIT). */
        curl_socket_t fd = CURL_SOCKET_BAD;
        if (curl_easy_getinfo (curl, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK && fd != CURL_SOCKET_BAD)
            shutdown (fd, SHUT_RDWR);
    }
    s_classify (self, curl, mail, code);
    curl_slist_free_all (rcpt);
}

static void *
s_sender (void *arg)
{
    hd_smtp_t *self = arg;
    CURL *curl = curl_easy_init ();     /* one per sender: its connection outlives a mail */
    pthread_mutex_lock (&self->lock);
    while (true) {
        while (!self->todo.head && !self->stopping) {
            self->idle++;
            pthread_cond_wait (&self->work, &self->lock);
            self->idle--;
        }
        if (self->stopping)
            break;
        s_mail_t *mail = s_list_pop (&self->todo);
        self->queued--;
        pthread_mutex_unlock (&self->lock);

        if (curl)
            s_send (self, curl, mail);
        else {
            mail->result.outcome = HD_RETRY;
            snprintf (mail->result.text, sizeof mail->result.text, "%s: cannot initialise libcurl",
                      self->shown_url);
        }
        pthread_mutex_lock (&self->lock);
        s_list_push (&self->done, mail);
        ssize_t rc = write (self->wake [1], "", 1);     /* full pipe: already awake */
        (void) rc;
    }
    pthread_mutex_unlock (&self->lock);
    if (curl)
        curl_easy_cleanup (curl);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Driver operations (worker's thread)

static void
s_complete_now (hd_smtp_t *self, const hd_task_t *task, hd_outcome_t outcome, const char *text)
{
    hd_result_t result = { .outcome = outcome, .delay_ms = 0 };
    snprintf (result.text, sizeof result.text, "%s", text);
    self->complete (self->ctx, task->task_id, task->attempt, task->lease, &result);
}

static int
s_start (void *self_, const hd_task_t *task)
{
    hd_smtp_t *self = self_;
    s_mail_t *mail = calloc (1, sizeof *mail);
    if (!mail)
        return -1;
    char err [HP_MAX_TEXT];
    char rcpt [HD_MAIL_ADDRESS_MAX + 1];
    if (hd_mail_render (self->mail, task, herald_clock_wall_ms (), &mail->message,
                        rcpt, sizeof rcpt, err, sizeof err) != 0) {
        /*  A problem of the event is final; running out of memory is not. */
        s_complete_now (self, task, mail->message.failed ? HD_RETRY : HD_FAILED, err);
        s_mail_destroy (&mail);
        return 0;
    }
    snprintf (mail->task_id, sizeof mail->task_id, "%s", task->task_id);
    mail->attempt = task->attempt;
    mail->lease = task->lease;
    snprintf (mail->rcpt_to, sizeof mail->rcpt_to, "<%s>", rcpt);

    pthread_mutex_lock (&self->lock);
    s_list_push (&self->todo, mail);
    self->queued++;
    if (self->queued > self->idle && self->sender_count < self->max_senders) {
        pthread_attr_t attr;
        pthread_attr_init (&attr);
        pthread_attr_setstacksize (&attr, S_SENDER_STACK);
        if (pthread_create (&self->senders [self->sender_count], &attr, s_sender, self) == 0)
            self->sender_count++;
        pthread_attr_destroy (&attr);
    }
    int senders = self->sender_count;
    if (senders == 0) {
        /*  No thread to send it: give it back now rather than never. */
        s_list_pop (&self->todo);
        self->queued--;
    }
    else
        pthread_cond_signal (&self->work);
    pthread_mutex_unlock (&self->lock);
    if (senders == 0) {
        s_mail_destroy (&mail);
        return -1;
    }
    self->in_progress++;
    return 0;
}

static int
s_poll_items (void *self_, zmq_pollitem_t *items, int max, long *timeout_ms)
{
    hd_smtp_t *self = self_;
    if (max < 1)
        return 0;
    items [0] = (zmq_pollitem_t) { NULL, self->wake [0], ZMQ_POLLIN, 0 };
    return 1;
}

/*  Completes every mail the senders finished. */
static void
s_progress (void *self_, const zmq_pollitem_t *items, int count)
{
    hd_smtp_t *self = self_;
    char drain [256];
    while (read (self->wake [0], drain, sizeof drain) > 0)
        ;
    pthread_mutex_lock (&self->lock);
    s_list_t done = self->done;
    self->done = (s_list_t) { NULL, NULL };
    pthread_mutex_unlock (&self->lock);
    s_mail_t *mail;
    while ((mail = s_list_pop (&done))) {
        self->in_progress--;
        self->complete (self->ctx, mail->task_id, mail->attempt, mail->lease, &mail->result);
        s_mail_destroy (&mail);
    }
}

static int
s_in_progress (void *self_)
{
    hd_smtp_t *self = self_;
    return self->in_progress;
}

//  --------------------------------------------------------------------------
//  Open and close

static void s_close (void **self_p);

static void *
s_open (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx,
        char *err, size_t errlen)
{
    const herald_smtp_config_t *cfg = &channel->smtp;
    const char *name = channel->name;
    char shown [256];
    bool smtps = strncasecmp (cfg->url, "smtps://", 8) == 0;
    bool smtp = strncasecmp (cfg->url, "smtp://", 7) == 0;
    if (!smtp && !smtps) {
        snprintf (err, errlen, "channel %s: smtp.url \"%s\" must start with smtp:// or smtps://",
                  name, herald_redact (cfg->url, shown, sizeof shown));
        return NULL;
    }
    const char *authority = cfg->url + (smtps ? 8 : 7);
    size_t authority_len = strcspn (authority, "/?#");
    if (memchr (authority, '@', authority_len)) {
        snprintf (err, errlen, "channel %s: smtp.url must not hold credentials "
                  "(use smtp.username and smtp.password_env)", name);
        return NULL;
    }
    if (cfg->tls == HERALD_TLS_IMPLICIT && !smtps) {
        snprintf (err, errlen, "channel %s: smtp.tls implicit needs an smtps:// url", name);
        return NULL;
    }
    if (cfg->tls != HERALD_TLS_IMPLICIT && smtps) {
        snprintf (err, errlen, "channel %s: an smtps:// url needs smtp.tls implicit", name);
        return NULL;
    }
    if (!cfg->text_template [0] && !cfg->html_template [0]) {
        snprintf (err, errlen, "channel %s: smtp needs text_template, html_template or both", name);
        return NULL;
    }
    if (!cfg->to [0]) {
        snprintf (err, errlen, "channel %s: smtp.to is not set", name);
        return NULL;
    }
    if (cfg->ca_file [0] && access (cfg->ca_file, R_OK) != 0) {
        snprintf (err, errlen, "channel %s: smtp.ca_file %s cannot be read", name, cfg->ca_file);
        return NULL;
    }

    hd_smtp_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "channel %s: out of memory", name);
        return NULL;
    }
    self->wake [0] = self->wake [1] = -1;
    snprintf (self->channel, sizeof self->channel, "%s", name);
    self->cfg = *cfg;
    if (self->cfg.timeout_ms <= 0)
        self->cfg.timeout_ms = S_DEFAULT_TIMEOUT;
    herald_redact (cfg->url, self->shown_url, sizeof self->shown_url);
    self->complete = complete;
    self->ctx = ctx;
    self->max_senders = channel->capacity < 1 ? 1
                      : channel->capacity > S_MAX_SENDERS ? S_MAX_SENDERS : channel->capacity;
    /*  Before any thread: libcurl's global state is set up once, here. */
    curl_global_init (CURL_GLOBAL_DEFAULT);

    char why [HERALD_ERR_MAX];
    hd_mail_config_t mail = {
        cfg->from, cfg->to, cfg->subject, cfg->text_template, cfg->html_template
    };
    if (!(self->mail = hd_mail_new (&mail, why, sizeof why))) {
        snprintf (err, errlen, "channel %s: %s", name, why);
        goto fail;
    }
    snprintf (self->mail_from, sizeof self->mail_from, "<%s>", hd_mail_sender (self->mail));
    if (cfg->username [0]) {
        if (!cfg->password_env [0]) {
            snprintf (err, errlen, "channel %s: smtp.username is set but smtp.password_env is not",
                      name);
            goto fail;
        }
        const char *password = getenv (cfg->password_env);
        if (!password) {
            snprintf (err, errlen, "channel %s: environment variable %s is not set",
                      name, cfg->password_env);
            goto fail;
        }
        if (!(self->password = strdup (password))) {
            snprintf (err, errlen, "channel %s: out of memory", name);
            goto fail;
        }
    }
    if (pipe2 (self->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf (err, errlen, "channel %s: pipe: %s", name, strerror (errno));
        self->wake [0] = self->wake [1] = -1;
        goto fail;
    }
    if (pthread_mutex_init (&self->lock, NULL) != 0)
        goto no_thread;
    if (pthread_cond_init (&self->work, NULL) != 0) {
        pthread_mutex_destroy (&self->lock);
        goto no_thread;
    }
    self->lock_ready = true;
    return self;
no_thread:
    snprintf (err, errlen, "channel %s: cannot create a lock", name);
fail:
    s_close ((void **) &self);
    return NULL;
}

static void
s_close (void **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_smtp_t *self = *self_p;
    if (self->lock_ready) {
        /*  Stop the senders where they are: a mail in progress fails at
            once on its shut socket (or at libcurl's next progress call),
            and its sender exits. What they were sending is abandoned. */
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        for (int i = 0; i < self->socket_count; i++)
            shutdown (self->sockets [i], SHUT_RDWR);
        pthread_cond_broadcast (&self->work);
        pthread_mutex_unlock (&self->lock);
        for (int i = 0; i < self->sender_count; i++)
            pthread_join (self->senders [i], NULL);
        s_mail_t *mail;
        while ((mail = s_list_pop (&self->todo)))
            s_mail_destroy (&mail);
        while ((mail = s_list_pop (&self->done)))
            s_mail_destroy (&mail);
        pthread_cond_destroy (&self->work);
        pthread_mutex_destroy (&self->lock);
    }
    if (self->wake [0] >= 0)
        close (self->wake [0]);
    if (self->wake [1] >= 0)
        close (self->wake [1]);
    hd_mail_destroy (&self->mail);
    if (self->password) {
        explicit_bzero (self->password, strlen (self->password));
        free (self->password);
    }
    free (self->sockets);
    free (self);
    curl_global_cleanup ();
    *self_p = NULL;
}

const hd_driver_ops_t hd_smtp_ops = {
    .name = "smtp",
    .open = s_open,
    .start = s_start,
    .poll_items = s_poll_items,
    .progress = s_progress,
    .in_progress = s_in_progress,
    .close = s_close
};
