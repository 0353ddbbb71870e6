/*  floor_frames: receiving and reading ZeroMQ messages frame by frame, for
    herald_floor_e2e's server and workers (no Herald code: the floor must not
    share the broker's codec). */
#ifndef HERALD_FLOOR_FRAMES_H
#define HERALD_FLOOR_FRAMES_H

#include <stdbool.h>
#include <zmq.h>

#define FLOOR_FRAMES_MAX    8       /* frames kept of one message */
#define FLOOR_ENTRIES_MAX   1024    /* entries in one TASKS / RESULTS frame (HERALD/2) */

/*  Receives one whole message into frames (the first FLOOR_FRAMES_MAX kept,
    the rest dropped), without waiting for its first frame. Its frame count,
    0 if none was waiting, -1 on a socket error. The caller closes them
    with floor_close. */
int
    floor_recv (void *socket, zmq_msg_t frames[FLOOR_FRAMES_MAX]);

/*  Closes the frames floor_recv kept of a message of count frames. */
void
    floor_close (zmq_msg_t *frames, int count);

/*  true if frame holds exactly text. */
bool
    floor_is (zmq_msg_t *frame, const char *text);

#endif
