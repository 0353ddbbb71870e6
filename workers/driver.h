/*  driver: the contract between the worker runtime and a delivery driver.
    A driver instance serves one channel in one worker process, on the
    runtime's thread. Synchronous drivers (file, noop) finish inside start()
    and call complete() before returning (or in flush(), for the round):
    their work must be short (a local write; the round's one sync pass),
    because the runtime heartbeats only between rounds, each of at most the
    channel's capacity deliveries.
    Anything that waits on a peer is asynchronous: start() only prepares
    and returns; the driver exposes file descriptors through poll_items()
    and finishes from progress(). http does its I/O in libcurl's multi
    interface on those descriptors; smtp sends on threads of its own and
    hands finished mails back through a pipe (driver_smtp.c says why).
    Result texts may quote URLs and servers: the runtime passes them through
    herald_redact before it logs or reports them, and drivers redact what
    they quote too. */
#ifndef HERALD_DRIVER_H
#define HERALD_DRIVER_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "herald_config.h"
#include "herald_proto.h"

typedef enum {
    HD_DONE = 0,        /* delivered */
    HD_RETRY,           /* transient: SMTP 4xx, HTTP 5xx, timeout, connection/DNS error */
    HD_THROTTLED,       /* HTTP 429, or 503 with Retry-After: delay_ms says when */
    HD_FAILED           /* permanent: SMTP 5xx, HTTP 4xx, unusable event */
} hd_outcome_t;

typedef struct {
    const char *task_id;        /* stable idempotency key, NUL-terminated */
    uint32_t attempt;           /* the attempt's number, to show (X-Herald-Attempt, the file) */
    uint64_t lease;             /* the broker's fencing token: echo it back in complete() */
    const char *channel;        /* channel name */
    const char *event_json;     /* the CloudEvents envelope, NUL-terminated */
    size_t event_len;
} hd_task_t;                    /* borrowed for the duration of start(): copy what you keep */

typedef struct {
    hd_outcome_t outcome;
    int64_t delay_ms;           /* RETRY: not before (0 = broker policy); THROTTLED: Retry-After */
    char text[HP_MAX_TEXT];     /* detail (DONE) or error (others), names what failed; redacted
                                   and made one line by the runtime */
} hd_result_t;

/*  Called by the driver when a delivery finishes (exactly once per start()
    that returned 0), with the task's attempt and lease. task_id is borrowed
    for the call. */
typedef void (hd_complete_fn) (void *ctx, const char *task_id, uint32_t attempt, uint64_t lease,
                               const hd_result_t *result);

typedef struct {
    const char *name;
    /*  Opens an instance for channel. Returns it, or NULL with err filled
        (bad template file, missing secret variable, ...). */
    void *(*open) (const herald_channel_t *channel, hd_complete_fn *complete, void *ctx,
                   char *err, size_t errlen);
    /*  Starts one delivery without waiting on anything remote. Returns 0
        (complete() will be / has been called), or -1 if it could not even
        start (complete() not called). */
    int (*start) (void *self, const hd_task_t *task);
    /*  Asynchronous drivers: fills up to max poll items with their sockets and
        lowers *timeout_ms to their next deadline. Returns the item count.
        NULL for synchronous drivers. */
    int (*poll_items) (void *self, zmq_pollitem_t *items, int max, long *timeout_ms);
    /*  Asynchronous drivers: advances transfers after poll (items as filled
        and polled) and calls complete() for those that ended. NULL for sync. */
    void (*progress) (void *self, const zmq_pollitem_t *items, int count);
    /*  Called after each round of start() calls (a TASKS message): a
        driver that makes a round durable together (the file driver: one
        sync pass) completes that round's deliveries here. NULL when every
        delivery completes by itself. */
    void (*flush) (void *self);
    /*  Deliveries started and not yet completed. */
    int (*in_progress) (void *self);
    /*  Aborts what is in progress (without calling complete), promptly even
        when a peer is stuck, and frees. */
    void (*close) (void **self_p);
} hd_driver_ops_t;

extern const hd_driver_ops_t hd_file_ops;
extern const hd_driver_ops_t hd_noop_ops;
extern const hd_driver_ops_t hd_smtp_ops;
extern const hd_driver_ops_t hd_http_ops;

/*  The driver for a kind. */
const hd_driver_ops_t *
    hd_driver_for (herald_driver_kind_t kind);

#endif
