/*  cli_relay: private to client/: `herald up` reads each child's stderr
    through a pipe and writes it, line by line, to its own stderr, so the
    children's log lines reach the same place as before (one write per line:
    lines never interleave) and `herald up` knows the last error a child
    logged, to repeat it when that child's exit stops the stack. */
#ifndef CLI_RELAY_H
#define CLI_RELAY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct _cli_relay_t cli_relay_t;

/*  Relays what is read from fd (the read end of a pipe; made non-blocking,
    owned from now on) to out_fd. Returns the relay, or NULL (fd closed). */
cli_relay_t *
    cli_relay_new (int fd, int out_fd);

/*  Closes the pipe; NULL-safe, nulls *self_p. */
void
    cli_relay_destroy (cli_relay_t **self_p);

/*  The pipe to poll for POLLIN, -1 once it reached its end. */
int
    cli_relay_fd (const cli_relay_t *self);

/*  Reads all that is available and writes every complete line (a line
    longer than the buffer goes out in pieces). At end of file, writes what
    is left and closes the pipe. Returns true while the pipe is open. */
bool
    cli_relay_read (cli_relay_t *self);

/*  What the child said last when it failed: its last line at level error
    (logfmt or JSON), else its last line; "" if none. Borrowed. */
const char *
    cli_relay_last_error (const cli_relay_t *self);

/*  A log line made short for a person: "MSG: ERROR" from its msg and error
    fields (logfmt or JSON), or the line itself if it is not a log line.
    Writes into buf, returns buf. */
const char *
    cli_relay_describe (const char *line, char *buf, size_t size);

#endif
