/*  floor_frames: see floor_frames.h. */
#include <errno.h>
#include <string.h>

#include "floor_frames.h"

int
floor_recv (void *socket, zmq_msg_t frames[FLOOR_FRAMES_MAX])
{
    int count = 0, more = 1;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *frame = count < FLOOR_FRAMES_MAX? &frames[count]: &scratch;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, socket, count == 0? ZMQ_DONTWAIT: 0) < 0) {
            zmq_msg_close (frame);
            for (int i = 0; i < count && i < FLOOR_FRAMES_MAX; i++)
                zmq_msg_close (&frames[i]);
            return count == 0 && (errno == EAGAIN || errno == EINTR)? 0: -1;
        }
        more = zmq_msg_more (frame);
        if (frame == &scratch)
            zmq_msg_close (frame);
        count++;
    }
    return count;
}

void
floor_close (zmq_msg_t *frames, int count)
{
    for (int i = 0; i < count && i < FLOOR_FRAMES_MAX; i++)
        zmq_msg_close (&frames[i]);
}

bool
floor_is (zmq_msg_t *frame, const char *text)
{
    size_t len = strlen (text);
    return zmq_msg_size (frame) == len && memcmp (zmq_msg_data (frame), text, len) == 0;
}
