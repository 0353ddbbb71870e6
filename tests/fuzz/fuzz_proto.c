/*  fuzz_proto: libFuzzer target for the codec (hp_decode, then hp_encode of
    whatever decodes). The input is split into frames at each "\n--\n"
    separator; each frame is copied into its own exact-size allocation so
    that ASan sees any read past a frame.
    Build: cmake -DHERALD_FUZZ=ON -DCMAKE_C_COMPILER=clang; run: fuzz_proto -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald_proto.h"

#define S_MAX_INPUT_FRAMES 12

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static const char separator[] = "\n--\n";
    const size_t sep_len = sizeof separator - 1;
    hp_frame_t frames[S_MAX_INPUT_FRAMES];
    size_t count = 0;
    size_t start = 0;
    while (count < S_MAX_INPUT_FRAMES) {
        size_t end = start;
        while (end + sep_len <= size && memcmp (data + end, separator, sep_len) != 0)
            end++;
        if (end + sep_len > size)
            end = size;
        size_t len = end - start;
        void *copy = len? malloc (len): NULL;
        if (len && !copy)
            break;
        if (len)
            memcpy (copy, data + start, len);
        frames[count++] = (hp_frame_t) { copy, len };
        if (end == size)
            break;
        start = end + sep_len;
    }

    hp_msg_t msg;
    hp_error_t err;
    if (hp_decode (frames, count, &msg, &err) == 0) {
        hp_encoded_t out;
        if (hp_encode (&msg, &out) != 0 || out.count != count)
            abort ();       /* whatever decodes must encode back */
        for (size_t i = 0; i < count; i++)
            if (out.frames[i].size != frames[i].size
            ||  (out.frames[i].size
                 && memcmp (out.frames[i].data, frames[i].data, frames[i].size) != 0))
                abort ();
    }
    else
    if (err.code != HP_CODE_BAD_REQUEST && err.code != HP_CODE_VERSION)
        abort ();
    for (size_t i = 0; i < count; i++)
        free ((void *) frames[i].data);
    return 0;
}
