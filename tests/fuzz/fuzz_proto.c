/*  fuzz_proto: libFuzzer target for the codec (hp_decode, then hp_encode of
    whatever decodes). The input is split into frames at each "\n--\n"
    separator; each frame is copied into its own exact-size allocation so
    that ASan sees any read past a frame.
    Properties: whatever decodes encodes back to the same frames; the
    entries of a TASKS / RESULTS frame iterate exactly batch_count times,
    consume the whole frame, and put back (hp_task_put / hp_result_put)
    give the same bytes at the size hp_*_size promised; a refusal is 400 or 505 with a text that is printable ASCII without
    double quotes or backslashes (herald_proto.h: safe in JSON and logfmt).
    Run: scripts/fuzz.sh (tests/fuzz/README.md). */
#include "fuzz_util.h"
#include "herald_proto.h"

#define S_MAX_INPUT_FRAMES 12

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
        fuzz_check (hp_encode (&msg, &out) == 0 && out.count == count,
                    "%s decodes but does not encode back", hp_command_name (msg.command));
        if (msg.command == HP_TASKS || msg.command == HP_RESULTS) {
            char *copy = malloc (msg.batch.len);
            fuzz_check (copy != NULL, "out of memory");
            size_t at = 0;
            uint32_t n = 0;
            hp_str_t cursor = msg.batch;
            hp_task_t task;
            hp_result_t result;
            while (msg.command == HP_TASKS? hp_next_task (&cursor, &task): hp_next_result (&cursor, &result)) {
                size_t need = msg.command == HP_TASKS? hp_task_size (&task): hp_result_size (&result);
                fuzz_check (at + need <= msg.batch.len, "entry %u puts back longer than it was", n);
                size_t put = msg.command == HP_TASKS? hp_task_put (copy + at, &task)
                                                    : hp_result_put (copy + at, &result);
                fuzz_check (put == need, "entry %u: put %zu bytes, size said %zu", n, put, need);
                at += put;
                n++;
            }
            fuzz_check (n == msg.batch_count, "%u entries iterated, batch_count %u", n, msg.batch_count);
            fuzz_check (cursor.len == 0 && at == msg.batch.len, "entries did not consume the frame");
            fuzz_check (memcmp (copy, msg.batch.ptr, at) == 0, "entries put back differ");
            free (copy);
        }
        for (size_t i = 0; i < count; i++)
            fuzz_check (out.frames[i].size == frames[i].size
                        && (out.frames[i].size == 0
                            || memcmp (out.frames[i].data, frames[i].data, frames[i].size) == 0),
                        "%s: frame %zu encodes differently", hp_command_name (msg.command), i);
    }
    else {
        fuzz_check (err.code == HP_CODE_BAD_REQUEST || err.code == HP_CODE_VERSION,
                    "refused with code %d", err.code);
        fuzz_check (fuzz_terminated (err.text, sizeof err.text) && err.text[0],
                    "error text empty or not terminated");
        for (const char *p = err.text; *p; p++)
            fuzz_check (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\',
                        "error text holds byte 0x%02x: %s", (unsigned) (unsigned char) *p, err.text);
    }
    for (size_t i = 0; i < count; i++)
        free ((void *) frames[i].data);
    return 0;
}
