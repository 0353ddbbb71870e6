/*  notify: sd_notify(3) messages through libsystemd. See notify.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "herald_log.h"
#include "notify.h"

#define S_STATUS_MAX 256

/*  Sends state; sd_notify returns > 0 sent, 0 not under systemd, < 0 -errno. */
static int
s_send (const char *state, const char *what)
{
    int rc = sd_notify (0, state);
    if (rc >= 0)
        return 0;
    herald_warn ("cannot notify the service manager", "message=%s error=\"%s\"", what, strerror (-rc));
    return -1;
}

int
notify_ready (void)
{
    return s_send ("READY=1", "READY");
}

int
notify_reloading (void)
{
    /*  systemd 253+ (Type=notify-reload) wants the monotonic time of the
        reload's start, to tell this reload from an older one; earlier
        versions ignore the field. */
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    char state[64];
    snprintf (state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu",
              (unsigned long long) now.tv_sec * 1000000ULL + (unsigned long long) now.tv_nsec / 1000ULL);
    return s_send (state, "RELOADING");
}

int
notify_stopping (void)
{
    return s_send ("STOPPING=1", "STOPPING");
}

int
notify_status (const char *format, ...)
{
    char state[sizeof "STATUS=" + S_STATUS_MAX] = "STATUS=";
    char *text = state + strlen (state);
    va_list args;
    va_start (args, format);
    vsnprintf (text, S_STATUS_MAX, format, args);
    va_end (args);
    /*  One message is newline-separated KEY=VALUE lines: a newline in the
        text would start a new assignment. */
    for (char *c = text; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f)
            *c = ' ';
    return s_send (state, "STATUS");
}
