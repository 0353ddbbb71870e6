/*  cli_publish.c: `herald publish`: one event from --data, or JSON lines
    from --file / stdin, pipelined with a bounded window of outstanding
    publishes. Memory is bounded by the window, not by the input size. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "herald_clock.h"
#include "herald_event.h"
#include "herald_proto.h"

#define S_CMD               "publish"
#define S_DEFAULT_TIMEOUT   5000
#define S_DEFAULT_WINDOW    1000
#define S_MAX_WINDOW        100000
#define S_MIN_LINE_CAP      (1024 * 1024)   /* longest input line accepted (or max_event_bytes) */
#define S_PROGRESS_MS       2000
#define S_MAX_REPORTS       100             /* per-line errors printed, then only counted */

typedef struct {
    const char *config;
    const char *endpoint;
    const char *type;
    const char *source;
    const char *data;
    const char *id;         /* --id: the event's id (one event only) */
    const char *file;       /* path, or "-" for stdin */
    const herald_config_t *loaded;  /* the configuration, or NULL with --endpoint alone */
    cli_keys_t keys;        /* --key, --server-key */
    long timeout_ms;
    long window;
    bool json;
    bool quiet;
} s_options_t;

static void
s_help (FILE *out)
{
    fprintf (out,
        "Usage: herald publish [-c FILE] [--type T] (--data JSON | --file F | -) [OPTIONS]\n"
        "\n"
        "Publishes events to the broker and waits for their ACK (stored durably) or NACK.\n"
        "\n"
        "Input:\n"
        "  -d, --data JSON      one event: its data (a JSON object), or a whole CloudEvents\n"
        "                       envelope (an object with \"specversion\"); prints its event id\n"
        "  -f, --file F         JSON lines, one event per non-empty line (data or envelope),\n"
        "                       published pipelined; prints acked event ids in input order\n"
        "  -                    JSON lines from standard input\n"
        "\n"
        "Options:\n"
        "  -t, --type T         event type (e.g. order.confirmed); overrides an envelope's\n"
        "  -s, --source S       CloudEvents source when the event has none (herald-client)\n"
        "  -i, --id ID          --data only: the event's id, instead of a new UUID (or the\n"
        "                       envelope's); publishing again with the same id (and source)\n"
        "                       is a duplicate, never a second event\n"
        "  -c, --config FILE    configuration (default $HERALD_CONFIG, else etc/herald.yaml)\n"
        "  -e, --endpoint EP    producer endpoint, instead of the config's broker.listen.producers;\n"
        "                       brokers sharing a store as a list, EP1,EP2: a publish not answered\n"
        "                       in time (or refused 503) goes to the next one, the same envelope\n"
        "                       (its key: stored once); with --data each broker gets an equal share\n"
        "                       of --timeout\n"
        "      --timeout MS     wait at most MS for each answer (default %d)\n"
        "      --window N       lines mode: most publishes outstanding at once (default %d, max %d)\n"
        "      --json           machine-readable output: {\"event_id\",\"duplicate\",\"durability\"}\n"
        "                       per acked event (with \"line\" in lines mode)\n"
        "  -q, --quiet          lines mode: do not print the event ids\n"
        "  -k, --key FILE       this producer's CURVE key (NAME.secret from herald keygen), for\n"
        "                       a broker with security.broker_key; default $HERALD_KEY, else\n"
        "                       the .secret beside the first key of security.producers, if any\n"
        "      --server-key F   the broker's public key (default: the .public beside the\n"
        "                       config's security.broker_key)\n"
        "  -h, --help           this help\n"
        "  -V, --version        the version\n"
        "\n"
        "Lines mode reports each failed line on stderr, a progress line every 2 s on long\n"
        "inputs and a summary at the end.\n"
        "\n"
        "After a timeout the event may or may not be stored. Publishing it again is safe\n"
        "(the broker answers \"duplicate\") when its type has a `key` in the configuration,\n"
        "or when it carries the same id and source as before (--id ID, or the envelope's\n"
        "own \"id\"). Otherwise a new id is made each time and publishing again may store\n"
        "it twice: the message gives the id used and how to publish again safely.\n"
        "\n"
        "Exit status: 0 every event ACKed; 64 usage; 65 a NACK 4xx, invalid JSON or no input;\n"
        "69 broker unreachable; 75 timeout or busy/storage NACK (publish again); 77 the\n"
        "broker's security refused this client's key; 78 config (also a key file open to others).\n",
        S_DEFAULT_TIMEOUT, S_DEFAULT_WINDOW, S_MAX_WINDOW);
}

//  Brokers in an endpoint list (-e tcp://a:5570,tcp://b:5570), by the rule
//  libherald splits it: every piece scheme://..., else one endpoint.
static unsigned
s_broker_count (const char *endpoint)
{
    unsigned count = 0;
    for (const char *p = endpoint; *p; ) {
        size_t len = strcspn (p, ",;");
        const char *scheme = memchr (p, ':', len);
        if (len == 0 || !scheme || (size_t) (scheme - p) + 3 > len || strncmp (scheme, "://", 3) != 0)
            return 1;
        count++;
        p += len;
        if (*p)
            p++;
    }
    return count? count: 1;
}

//  Exit code for a NACK code: 5xx are the broker's trouble, try again later.
static int
s_nack_exit (int code)
{
    return code >= 500? EX_TEMPFAIL: EX_DATAERR;
}

static void
s_print_ack_json (const herald_reply_t *reply, long long line)
{
    json_t *out = json_object ();
    if (line > 0)
        json_object_set_new (out, "line", json_integer (line));
    json_object_set_new (out, "event_id", json_string (reply->event_id));
    json_object_set_new (out, "duplicate", json_boolean (reply->duplicate));
    json_object_set_new (out, "durability", json_string (reply->durability));
    char *text = json_dumps (out, JSON_COMPACT);
    if (text)
        puts (text);
    free (text);
    json_decref (out);
}

//  Whether publishing an event again is safe, for the advice after a
//  timeout: its type's key, else its own id, else nothing.
typedef enum {
    S_SAFE_KEY,             /* the type has a key: a repeat is a duplicate */
    S_SAFE_OWN_ID,          /* the caller gave the id: the same id is a duplicate */
    S_UNSAFE,               /* a new id each time and no key */
    S_UNKNOWN               /* no configuration read: depends on the type */
} s_safety_t;

static s_safety_t
s_safety (const s_options_t *options, const herald_event_info_t *info, const char **key)
{
    *key = NULL;
    if (options->loaded) {
        int index = herald_config_event_index (options->loaded, info->type);
        if (index >= 0 && options->loaded->events[index].key[0]) {
            *key = options->loaded->events[index].key;
            return S_SAFE_KEY;
        }
    }
    if (info->own_id)
        return S_SAFE_OWN_ID;
    return options->loaded? S_UNSAFE: S_UNKNOWN;
}

//  What is true after a timeout of this event, and how to publish it again.
static int
s_timeout_advice (const s_options_t *options, const char *endpoint, const herald_event_info_t *info)
{
    const char *key = NULL;
    s_safety_t safety = s_safety (options, info, &key);
    fprintf (stderr, "herald publish: broker at %s: no answer within %ld ms: event %s may or may "
             "not be stored\n", endpoint, options->timeout_ms, info->id);
    char source[300] = "";
    if (options->source)
        snprintf (source, sizeof source, " --source '%s'", info->source);
    switch (safety) {
        case S_SAFE_KEY:
            fprintf (stderr, "herald publish: publishing it again is safe: %s events are deduplicated "
                     "on data.%s (the type's key)\n", info->type, key);
            break;
        case S_SAFE_OWN_ID:
            fprintf (stderr, "herald publish: publishing it again with the same id (%s) and source (%s) "
                     "is safe: a repeat is a duplicate\n", info->id, info->source);
            break;
        case S_UNSAFE:
            fprintf (stderr, "herald publish: %s has no key in %s, so each publish makes a new id: "
                     "publishing it again as is could store it twice. Publish it again with the same "
                     "id: herald publish --type %s --id %s%s ... (or give the type a key)\n",
                     info->type, options->loaded->path, info->type, info->id, source);
            break;
        case S_UNKNOWN:
            fprintf (stderr, "herald publish: publishing it again is safe if %s has a key in the "
                     "configuration; otherwise publish it again with the same id: --id %s%s\n",
                     info->type, info->id, source);
            break;
    }
    return EX_TEMPFAIL;
}

static int
s_publish_one (const s_options_t *options, const char *endpoint)
{
    herald_event_error_t error;
    herald_event_info_t info;
    char *event = herald_event_buildn_id (options->type, options->source, options->id, options->data,
                                          strlen (options->data), &info, &error);
    if (!event) {
        if (error.line > 0)
            return cli_fail (S_CMD, EX_DATAERR, "--data: invalid JSON at line %d column %d: %s",
                             error.line, error.column, error.text);
        return cli_fail (S_CMD, EX_DATAERR, "--data: %s%s", error.text,
                         options->type? "": " (give --type T)");
    }
    herald_client_t *client;
    int rc = cli_client_new (S_CMD, endpoint, options->loaded, &options->keys, &client);
    if (rc != 0) {
        free (event);
        return rc;
    }
    herald_reply_t reply;
    herald_status_t status = herald_publish (client, event, (int) options->timeout_ms, &reply);
    free (event);
    if (status == HERALD_E_DENIED) {
        rc = cli_client_fail (S_CMD, endpoint, client, status, (int) options->timeout_ms);
        herald_client_destroy (&client);
        return rc;
    }
    herald_client_destroy (&client);

    if (status == HERALD_OK) {
        if (options->json)
            s_print_ack_json (&reply, 0);
        else
            puts (reply.event_id);
        if (reply.duplicate)
            fprintf (stderr, "herald publish: duplicate: event %s was already stored (no new deliveries)\n",
                     reply.event_id);
        return 0;
    }
    if (status == HERALD_E_NACK || status == HERALD_E_BUSY)
        return cli_fail (S_CMD, s_nack_exit (reply.code), "NACK %d %s: %s",
                         reply.code, hp_code_name (reply.code), reply.reason);
    if (status == HERALD_E_TIMEOUT)
        return s_timeout_advice (options, endpoint, &info);
    if (status == HERALD_E_UNAVAILABLE)
        return cli_fail (S_CMD, EX_UNAVAILABLE, "broker at %s: not reachable within %ld ms",
                         endpoint, options->timeout_ms);
    return cli_fail (S_CMD, cli_exit_code (status), "broker at %s: %s",
                     endpoint, herald_strerror (status));
}

//  ---------------------------------------------------------------------
//  Lines mode

//  Reads lines of at most cap bytes from a descriptor; longer lines are
//  skipped and flagged, never buffered whole.
typedef struct {
    int fd;
    char chunk[65536];
    size_t pos;
    size_t len;
    bool eof;
    char *line;             /* current line, NUL-terminated, cap + 1 bytes */
    size_t line_len;
    size_t cap;
    bool too_long;          /* current line exceeded cap */
} s_reader_t;

//  1 a line is ready, 0 end of input, -1 read error (errno).
static int
s_reader_next (s_reader_t *self)
{
    self->line_len = 0;
    self->too_long = false;
    bool got_any = false;
    for (;;) {
        if (self->pos == self->len) {
            if (self->eof)
                break;
            ssize_t n = read (self->fd, self->chunk, sizeof self->chunk);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            if (n == 0) {
                self->eof = true;
                break;
            }
            self->pos = 0;
            self->len = (size_t) n;
        }
        const char *start = self->chunk + self->pos;
        size_t avail = self->len - self->pos;
        const char *newline = memchr (start, '\n', avail);
        size_t take = newline? (size_t) (newline - start): avail;
        got_any = true;
        if (!self->too_long) {
            if (self->line_len + take > self->cap)
                self->too_long = true;
            else {
                memcpy (self->line + self->line_len, start, take);
                self->line_len += take;
            }
        }
        self->pos += take + (newline? 1: 0);
        if (newline)
            break;
    }
    if (!got_any)
        return 0;
    if (self->line_len > 0 && self->line[self->line_len - 1] == '\r')
        self->line_len--;
    self->line[self->line_len] = '\0';
    return 1;
}

typedef enum {
    S_SLOT_SENT = 1,        /* waiting for its answer */
    S_SLOT_ACKED,           /* answered ACK: print when it reaches the tail */
    S_SLOT_FAILED,          /* NACK, timeout or send failure: already reported */
    S_SLOT_MOVED            /* sent again to the next broker, in a later slot */
} s_slot_state_t;

typedef struct {
    uint64_t corr;
    long long line;
    int64_t deadline;       /* monotonic ms */
    s_slot_state_t state;
    bool duplicate;
    bool unsafe;            /* no key and a made-up id: not safe to publish again as is */
    bool unknown;           /* no configuration read: whether the type has a key is unknown */
    char event_id[HP_MAX_ID + 1];
    char durability[16];
    char *envelope;         /* several brokers: kept to be sent again to the next one */
    unsigned tries;         /* brokers it was sent to */
    unsigned epoch;         /* the broker it went to (run.epoch when sent) */
} s_slot_t;

typedef struct {
    const s_options_t *options;
    const char *endpoint;
    herald_client_t *client;
    s_reader_t reader;
    s_slot_t *slots;        /* ring of `ring` slots, one per send */
    size_t window;          /* most lines in flight */
    size_t ring;            /* window x brokers: a line sent again takes a later slot */
    unsigned brokers;       /* endpoints given (-e a,b): publishes move on timeouts, 503s */
    unsigned epoch;         /* failovers so far */
    uint64_t head;          /* next send's sequence number */
    uint64_t tail;          /* oldest slot not yet flushed */
    uint64_t base_corr;     /* corr of sequence 0: corr = base_corr + seq */
    bool input_done;
    bool aborted;           /* stopped sending: broker unreachable or socket error */
    bool unreachable;
    bool denied;            /* the broker's security refused our key */
    bool answered;          /* any reply ever came */
    long long line_no;
    long long abort_line;
    //  counts
    long long events;
    long long sent;
    long long acked;
    long long duplicates;
    long long nacked;
    long long nacked_4xx;
    long long timed_out;
    long long timed_out_unsafe; /* of which had no key and a made-up id */
    long long timed_out_unknown;/* of which the type's key is unknown (no configuration) */
    long long invalid;
    long long reports;
    int64_t started;
    int64_t next_progress;
} s_run_t;

static void
s_report (s_run_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_report (s_run_t *self, const char *format, ...)
{
    if (self->reports++ >= S_MAX_REPORTS)
        return;
    char text[1400];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    fprintf (stderr, "herald publish: %s\n", text);
}

static s_slot_t *
s_slot (s_run_t *self, uint64_t seq)
{
    return &self->slots[seq % self->ring];
}

static bool
s_failover (s_run_t *self);

static void
s_slot_clear (s_slot_t *slot)
{
    free (slot->envelope);
    memset (slot, 0, sizeof *slot);
}

//  Sends one event; every herald_send call takes one slot, so that
//  corr = base_corr + seq holds for the whole run.
static void
s_send_event (s_run_t *self, const char *event, const herald_event_info_t *info)
{
    uint64_t seq = self->head++;
    s_slot_t *slot = s_slot (self, seq);
    s_slot_clear (slot);
    slot->line = self->line_no;
    slot->tries = 1;
    slot->epoch = self->epoch;
    if (self->brokers > 1)
        slot->envelope = strdup (event);
    const char *key;
    s_safety_t safety = s_safety (self->options, info, &key);
    slot->unsafe = safety == S_UNSAFE;
    slot->unknown = safety == S_UNKNOWN;
    snprintf (slot->event_id, sizeof slot->event_id, "%s", info->id);
    uint64_t corr = 0;
    /*  With several brokers, one that cannot be reached is given its share
        of the timeout, not all of it. */
    herald_status_t status = herald_send (self->client, event,
                                          (int) (self->options->timeout_ms / self->brokers), &corr);
    if (seq == 0)
        self->base_corr = corr? corr: 1;
    slot->corr = self->base_corr + seq;
    slot->deadline = herald_clock_mono_ms () + self->options->timeout_ms;
    if (status == HERALD_OK) {
        slot->state = S_SLOT_SENT;
        self->sent++;
        return;
    }
    if (status == HERALD_E_UNAVAILABLE && self->brokers > 1 && slot->envelope) {
        /*  Not connected to this broker: the next one takes it. */
        slot->state = S_SLOT_SENT;
        if (s_failover (self))
            return;
        slot->state = S_SLOT_FAILED;
    }
    slot->state = S_SLOT_FAILED;
    if (status == HERALD_E_INVALID) {
        self->invalid++;
        s_report (self, "line %lld: cannot send this event (too large?)", self->line_no);
        return;
    }
    self->aborted = true;
    self->abort_line = self->line_no;
    self->events--;         //  not sent: counted in the summary as "stopped at line"
    if (status == HERALD_E_DENIED) {
        self->denied = true;
        fprintf (stderr, "herald publish: broker at %s: %s; stopping at line %lld\n",
                 self->endpoint, herald_client_error (self->client), self->line_no);
    }
    else
    if (status == HERALD_E_UNAVAILABLE) {
        self->unreachable = true;
        fprintf (stderr, "herald publish: broker at %s: not reachable within %ld ms; stopping at line %lld\n",
                 self->endpoint, self->options->timeout_ms, self->line_no);
    }
    else
        fprintf (stderr, "herald publish: broker at %s: %s (%s); stopping at line %lld\n",
                 self->endpoint, herald_strerror (status), strerror (errno), self->line_no);
}

//  Reads and sends lines while the window has room.
static void
s_fill (s_run_t *self)
{
    while (!self->input_done && !self->aborted && self->head - self->tail < self->window) {
        int rc = s_reader_next (&self->reader);
        if (rc == 0) {
            self->input_done = true;
            break;
        }
        if (rc < 0) {
            fprintf (stderr, "herald publish: reading %s: %s\n",
                     self->options->file, strerror (errno));
            self->input_done = true;
            self->invalid++;
            break;
        }
        self->line_no++;
        const char *text = self->reader.line;
        while (*text == ' ' || *text == '\t')
            text++;
        if (!self->reader.too_long && *text == '\0')
            continue;       //  blank line
        self->events++;
        if (self->reader.too_long) {
            self->invalid++;
            s_report (self, "line %lld: longer than %zu bytes", self->line_no, self->reader.cap);
            continue;
        }
        herald_event_error_t error;
        herald_event_info_t info;
        char *event = herald_event_buildn_id (self->options->type, self->options->source, NULL,
                                              self->reader.line, self->reader.line_len, &info, &error);
        if (!event) {
            self->invalid++;
            if (error.line > 0)
                s_report (self, "line %lld: invalid JSON at column %d: %s",
                          self->line_no, error.column, error.text);
            else
                s_report (self, "line %lld: %s%s", self->line_no, error.text,
                          self->options->type? "": " (give --type T)");
            continue;
        }
        s_send_event (self, event, &info);
        free (event);
    }
}

/*  Sends a line again, to the broker now in use, in a new slot (every
    herald_send takes one: corr = base_corr + seq holds). */
static void
s_resend (s_run_t *self, s_slot_t *old)
{
    old->state = S_SLOT_MOVED;
    uint64_t seq = self->head++;
    s_slot_t *slot = s_slot (self, seq);
    s_slot_clear (slot);
    *slot = *old;
    old->envelope = NULL;
    slot->tries = old->tries + 1;
    slot->epoch = self->epoch;
    uint64_t corr = 0;
    herald_status_t status = herald_send (self->client, slot->envelope, (int) self->options->timeout_ms, &corr);
    slot->corr = self->base_corr + seq;
    slot->deadline = herald_clock_mono_ms () + self->options->timeout_ms;
    if (status == HERALD_OK) {
        slot->state = S_SLOT_SENT;
        self->sent++;
        return;
    }
    if (status == HERALD_E_UNAVAILABLE && slot->tries < self->brokers && s_failover (self))
        return;                 /* moved on again */
    slot->state = S_SLOT_FAILED;
    self->timed_out++;
    s_report (self, "line %lld: no broker took it (%s)", slot->line, herald_strerror (status));
}

/*  The next broker: what went to the one left is sent again there (the
    same envelope: stored once whichever broker had it). */
static bool
s_failover (s_run_t *self)
{
    if (herald_client_failover (self->client) != HERALD_OK)
        return false;
    self->epoch++;
    fprintf (stderr, "herald publish: failing over to %s\n", herald_client_endpoint (self->client));
    uint64_t end = self->head;
    for (uint64_t seq = self->tail; seq < end; seq++) {
        s_slot_t *slot = s_slot (self, seq);
        if (slot->state != S_SLOT_SENT || slot->epoch >= self->epoch)
            continue;
        if (slot->tries < self->brokers)
            s_resend (self, slot);
        else {
            slot->state = S_SLOT_FAILED;
            self->timed_out++;
            s_report (self, "line %lld: no answer from any of the %u brokers (event %s)", slot->line,
                      self->brokers, slot->event_id);
        }
    }
    return true;
}

/*  A line whose broker did not answer in time or was busy: true when it
    went to the next broker instead of failing. */
static bool
s_move_on (s_run_t *self, s_slot_t *slot)
{
    if (self->brokers < 2 || slot->tries >= self->brokers || !slot->envelope)
        return false;
    if (slot->epoch == self->epoch)
        return s_failover (self);
    s_resend (self, slot);
    return true;
}

static void
s_resolve (s_run_t *self, const herald_reply_t *reply)
{
    self->answered = true;
    uint64_t seq = reply->corr - self->base_corr;
    if (reply->corr < self->base_corr || seq < self->tail || seq >= self->head)
        return;             //  not one of ours, or already given up on
    s_slot_t *slot = s_slot (self, seq);
    if (slot->corr != reply->corr || slot->state != S_SLOT_SENT)
        return;
    if (reply->acked) {
        slot->state = S_SLOT_ACKED;
        slot->duplicate = reply->duplicate;
        snprintf (slot->event_id, sizeof slot->event_id, "%s", reply->event_id);
        snprintf (slot->durability, sizeof slot->durability, "%s", reply->durability);
        self->acked++;
        if (reply->duplicate)
            self->duplicates++;
        return;
    }
    if (reply->code == HP_CODE_BUSY && s_move_on (self, slot))
        return;
    slot->state = S_SLOT_FAILED;
    self->nacked++;
    if (reply->code < 500)
        self->nacked_4xx++;
    s_report (self, "line %lld: NACK %d %s: %s", slot->line, reply->code,
              hp_code_name (reply->code), reply->reason);
}

//  Gives up on sends whose deadline passed (deadlines grow with seq).
static void
s_expire (s_run_t *self, int64_t now)
{
    for (uint64_t seq = self->tail; seq < self->head; seq++) {
        s_slot_t *slot = s_slot (self, seq);
        if (slot->deadline > now)
            break;
        if (slot->state == S_SLOT_SENT && now != INT64_MAX && s_move_on (self, slot))
            continue;
        if (slot->state == S_SLOT_SENT) {
            slot->state = S_SLOT_FAILED;
            self->timed_out++;
            if (slot->unknown)
                self->timed_out_unknown++;
            if (slot->unsafe)
                self->timed_out_unsafe++;
            s_report (self, "line %lld: no answer within %ld ms (event %s%s)", slot->line,
                      self->options->timeout_ms, slot->event_id,
                      slot->unsafe? ", no idempotency key": "");
        }
    }
}

//  Prints answered slots from the tail, in input order, and frees them.
static void
s_flush (s_run_t *self)
{
    bool printed = false;
    while (self->tail < self->head) {
        s_slot_t *slot = s_slot (self, self->tail);
        if (slot->state == S_SLOT_SENT)
            break;
        if (slot->state == S_SLOT_ACKED && !self->options->quiet) {
            if (self->options->json) {
                herald_reply_t reply;
                memset (&reply, 0, sizeof reply);
                reply.duplicate = slot->duplicate;
                snprintf (reply.event_id, sizeof reply.event_id, "%s", slot->event_id);
                snprintf (reply.durability, sizeof reply.durability, "%s", slot->durability);
                s_print_ack_json (&reply, slot->line);
            }
            else
                puts (slot->event_id);
            printed = true;
        }
        self->tail++;
    }
    if (printed)
        fflush (stdout);        //  a reader of a long stream sees ids as they come
}

static void
s_progress (s_run_t *self, int64_t now)
{
    if (now < self->next_progress)
        return;
    self->next_progress = now + S_PROGRESS_MS;
    fprintf (stderr, "herald publish: sent %lld, acked %lld, nacked %lld, timed out %lld, invalid %lld\n",
             self->sent, self->acked, self->nacked, self->timed_out, self->invalid);
}

static int
s_summary (s_run_t *self)
{
    fprintf (stderr, "herald publish: published %lld event%s: %lld acked (%lld duplicate%s), "
             "%lld nacked, %lld timed out",
             self->events, self->events == 1? "": "s", self->acked, self->duplicates,
             self->duplicates == 1? "": "s", self->nacked, self->timed_out);
    if (self->invalid)
        fprintf (stderr, ", %lld invalid", self->invalid);
    if (self->aborted)
        fprintf (stderr, "; stopped at line %lld", self->abort_line);
    fputc ('\n', stderr);
    if (self->reports > S_MAX_REPORTS)
        fprintf (stderr, "herald publish: %lld more failed lines not shown\n",
                 self->reports - S_MAX_REPORTS);
    if (self->timed_out_unsafe > 0)
        fprintf (stderr, "herald publish: %lld timed-out event%s had no idempotency key (no `key` for "
                 "the type in %s, no \"id\" in the line): they may or may not be stored, and publishing "
                 "those lines again as is could store them twice. Publish them again as envelopes with "
                 "the ids above (\"id\": ...), or give the type a key\n",
                 self->timed_out_unsafe, self->timed_out_unsafe == 1? "": "s",
                 self->options->loaded->path);
    else
    if (self->timed_out_unknown > 0)
        fprintf (stderr, "herald publish: the timed-out events may or may not be stored: publishing "
                 "them again is safe if their type has a key in the configuration; otherwise publish "
                 "them again as envelopes with the ids above (\"id\": ...)\n");
    else
    if (self->timed_out > 0)
        fprintf (stderr, "herald publish: the timed-out events may or may not be stored; publishing "
                 "those lines again is safe (each has an idempotency key: its type's key or its own id)\n");

    if (self->denied)
        return EX_NOPERM;
    if (self->unreachable && !self->answered)
        return EX_UNAVAILABLE;
    if (self->nacked_4xx || self->invalid)
        return EX_DATAERR;
    if (self->aborted && self->unreachable)
        return EX_TEMPFAIL;
    if (self->aborted)
        return EX_UNAVAILABLE;
    if (self->nacked || self->timed_out)
        return EX_TEMPFAIL;
    return 0;
}

static int
s_publish_lines (const s_options_t *options, const char *endpoint, size_t line_cap)
{
    s_run_t run;
    memset (&run, 0, sizeof run);
    run.options = options;
    run.endpoint = endpoint;
    run.window = (size_t) options->window;
    run.brokers = s_broker_count (endpoint);
    run.ring = run.window * run.brokers;
    run.reader.cap = line_cap;
    run.reader.fd = STDIN_FILENO;
    if (strcmp (options->file, "-") != 0) {
        run.reader.fd = open (options->file, O_RDONLY | O_CLOEXEC);
        if (run.reader.fd < 0)
            return cli_fail (S_CMD, EX_DATAERR, "cannot open %s: %s", options->file, strerror (errno));
    }
    run.reader.line = malloc (line_cap + 1);
    run.slots = calloc (run.ring, sizeof *run.slots);
    int rc = 0;
    if (!run.reader.line || !run.slots)
        rc = cli_fail (S_CMD, EX_OSERR, "out of memory");
    else
        rc = cli_client_new (S_CMD, endpoint, options->loaded, &options->keys, &run.client);
    if (rc == 0) {
        run.started = herald_clock_mono_ms ();
        run.next_progress = run.started + S_PROGRESS_MS;
        for (;;) {
            s_fill (&run);
            if (run.tail == run.head && (run.input_done || run.aborted))
                break;
            int64_t now = herald_clock_mono_ms ();
            int64_t wait = 0;
            if (run.tail < run.head) {
                //  Window full or input done: wait for the oldest answer
                wait = s_slot (&run, run.tail)->deadline - now;
                if (wait > S_PROGRESS_MS)
                    wait = S_PROGRESS_MS;
                if (wait < 0)
                    wait = 0;
            }
            herald_reply_t reply;
            herald_status_t status = herald_recv (run.client, (int) wait, &reply);
            while (status == HERALD_OK) {
                s_resolve (&run, &reply);
                status = herald_recv (run.client, 0, &reply);
            }
            if (status == HERALD_E_PROTOCOL)
                s_report (&run, "broker at %s sent a malformed reply", endpoint);
            else
            if (status == HERALD_E_SYSTEM && errno != EINTR) {
                fprintf (stderr, "herald publish: socket error: %s\n", strerror (errno));
                run.aborted = true;
                run.abort_line = run.line_no;
                s_expire (&run, INT64_MAX);
            }
            now = herald_clock_mono_ms ();
            s_expire (&run, now);
            s_flush (&run);
            s_progress (&run, now);
        }
        fflush (stdout);
        rc = s_summary (&run);
    }
    herald_client_destroy (&run.client);
    for (size_t i = 0; run.slots && i < run.ring; i++)
        free (run.slots[i].envelope);
    free (run.slots);
    free (run.reader.line);
    if (run.reader.fd != STDIN_FILENO)
        close (run.reader.fd);
    return rc;
}

int
cli_publish (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config",   required_argument, NULL, 'c' },
        { "endpoint", required_argument, NULL, 'e' },
        { "type",     required_argument, NULL, 't' },
        { "source",   required_argument, NULL, 's' },
        { "id",       required_argument, NULL, 'i' },
        { "data",     required_argument, NULL, 'd' },
        { "file",     required_argument, NULL, 'f' },
        { "timeout",  required_argument, NULL, 'T' },
        { "window",   required_argument, NULL, 'w' },
        { "json",     no_argument,       NULL, 'j' },
        { "quiet",    no_argument,       NULL, 'q' },
        { "key",      required_argument, NULL, 'k' },
        { "server-key", required_argument, NULL, 'S' },
        { "help",     no_argument,       NULL, 'h' },
        { "version",  no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    s_options_t options = { .timeout_ms = S_DEFAULT_TIMEOUT, .window = S_DEFAULT_WINDOW };
    int inputs = 0;
    cli_getopt_reset ();
    int c;
    while ((c = getopt_long (argc, argv, ":c:e:t:s:i:d:f:k:qhV", longopts, NULL)) != -1) {
        switch (c) {
            case 'c': options.config = optarg; break;
            case 'e': options.endpoint = optarg; break;
            case 't': options.type = optarg; break;
            case 's': options.source = optarg; break;
            case 'i': options.id = optarg; break;
            case 'd': options.data = optarg; inputs++; break;
            case 'f': options.file = optarg; inputs++; break;
            case 'j': options.json = true; break;
            case 'q': options.quiet = true; break;
            case 'k': options.keys.key = optarg; break;
            case 'S': options.keys.server_key = optarg; break;
            case 'T':
                if (cli_parse_long (optarg, 1, 3600000, &options.timeout_ms) != 0)
                    return cli_usage_error (S_CMD, "--timeout: expected milliseconds (1..3600000), got '%s'", optarg);
                break;
            case 'w':
                if (cli_parse_long (optarg, 1, S_MAX_WINDOW, &options.window) != 0)
                    return cli_usage_error (S_CMD, "--window: expected 1..%d, got '%s'", S_MAX_WINDOW, optarg);
                break;
            case 'h': s_help (stdout); return 0;
            case 'V': return cli_version ();
            default:  return cli_bad_option (S_CMD, argv, c);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (strcmp (argv[i], "-") == 0) {
            options.file = "-";
            inputs++;
        }
        else
            return cli_usage_error (S_CMD, "unexpected argument '%s'", argv[i]);
    }
    if (inputs == 0)
        return cli_usage_error (S_CMD, "give the event with --data JSON, --file F or - (stdin)");
    if (inputs > 1)
        return cli_usage_error (S_CMD, "give only one of --data, --file and -");
    if (options.type && !*options.type)
        return cli_usage_error (S_CMD, "--type: empty");
    if (options.id) {
        if (!options.data)
            return cli_usage_error (S_CMD, "--id names one event: use it with --data "
                                    "(in lines mode, put an \"id\" in each line's envelope)");
        size_t len = strlen (options.id);
        if (len == 0 || len > HP_MAX_ID)
            return cli_usage_error (S_CMD, "--id: expected 1 to %d characters, got %zu", HP_MAX_ID, len);
        for (const char *p = options.id; *p; p++)
            if ((unsigned char) *p < 0x20 || *p == 0x7f)
                return cli_usage_error (S_CMD, "--id: control characters are not allowed");
    }

    size_t line_cap = S_MIN_LINE_CAP;
    const char *endpoint = options.endpoint;
    herald_config_t *config = NULL;
    //  With --endpoint the file is read only if given: it says which types
    //  have a key, for the advice after a timeout.
    if (!endpoint || options.config) {
        config = cli_config_load (S_CMD, options.config);
        if (!config)
            return EX_CONFIG;
        if (!endpoint)
            endpoint = config->broker.producers;
        if (config->broker.max_event_bytes > line_cap)
            line_cap = config->broker.max_event_bytes;
    }
    options.loaded = config;
    options.keys.role = CLI_AS_PRODUCER;
    int rc = options.data? s_publish_one (&options, endpoint)
                         : s_publish_lines (&options, endpoint, line_cap);
    free (config);
    return rc;
}
