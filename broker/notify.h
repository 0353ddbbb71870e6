/*  notify: tells systemd where herald-broker is in its life (sd_notify(3), for
    a Type=notify unit such as etc/systemd/herald-broker.service.in). Outside
    systemd (no NOTIFY_SOCKET in the environment) every call does nothing and
    returns 0. A message that cannot be sent is logged and otherwise ignored:
    the broker works the same with or without a service manager. */
#ifndef HERALD_NOTIFY_H
#define HERALD_NOTIFY_H

/*  READY=1: bound and recovered, serving. Also ends a reload. 0 / -1. */
int
    notify_ready (void);

/*  RELOADING=1 (with MONOTONIC_USEC): a reload began; call notify_ready()
    when it is done, whether it kept the old configuration or not. 0 / -1. */
int
    notify_reloading (void);

/*  STOPPING=1: a graceful stop began. 0 / -1. */
int
    notify_stopping (void);

/*  STATUS=...: one line for `systemctl status` (printf format; control
    characters become spaces, at most 255 bytes are kept). 0 / -1. */
int
    notify_status (const char *format, ...)
    __attribute__ ((format (printf, 1, 2)));

#endif
