/*  herald_event.c: builds CloudEvents 1.0 JSON envelopes for libherald.
    The caller's JSON text is validated with jansson but passed through
    byte for byte (numbers, key order): missing envelope fields are spliced
    in front, so a price of 19.99 is never re-rendered as 19.989999999999998. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "herald.h"
#include "herald_clock.h"
#include "herald_event.h"

#define HERALD_DEFAULT_SOURCE "herald-client"

int
herald_uuid7 (char *buf, size_t size, int64_t unix_ms)
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom (b + got, sizeof b - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t) n;
    }
    uint64_t ms = (uint64_t) unix_ms;
    for (int i = 0; i < 6; i++)                 //  48-bit big-endian milliseconds
        b[i] = (uint8_t) (ms >> (40 - 8 * i));
    b[6] = (uint8_t) ((b[6] & 0x0f) | 0x70);    //  version 7
    b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);    //  variant 10
    int n = snprintf (buf, size,
        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    if (n < 0 || (size_t) n >= size) {
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

static void
s_error (herald_event_error_t *error, const char *text)
{
    error->line = 0;
    error->column = 0;
    snprintf (error->text, sizeof error->text, "%s", text);
}

static const char *
s_json_kind (const json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_ARRAY:    return "an array";
        case JSON_STRING:   return "a string";
        case JSON_INTEGER:
        case JSON_REAL:     return "a number";
        case JSON_TRUE:
        case JSON_FALSE:    return "a boolean";
        case JSON_NULL:     return "null";
        default:            return "an object";
    }
}

//  A JSON string literal for text (quoted, escaped); caller frees. NULL if
//  text is not valid UTF-8.
static char *
s_quote (const char *text)
{
    json_t *value = json_string (text);
    if (!value)
        return NULL;
    char *quoted = json_dumps (value, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref (value);
    return quoted;
}

//  One "name":value pair to put into the envelope.
typedef struct {
    const char *name;
    char *value;            /* JSON literal, owned */
} s_field_t;

//  Concatenates: "{" fields... then the object text tail (after its "{"),
//  or for data, wraps it as "data". Returns the envelope or NULL.
static char *
s_assemble (s_field_t *fields, size_t count, const char *text, size_t len, bool as_data)
{
    size_t total = 2 + len + 16;
    for (size_t i = 0; i < count; i++)
        total += strlen (fields[i].name) + strlen (fields[i].value) + 4;
    char *out = malloc (total);
    if (!out)
        return NULL;
    size_t used = 0;
    out[used++] = '{';
    for (size_t i = 0; i < count; i++) {
        int n = snprintf (out + used, total - used, "%s\"%s\":%s",
                          i? ",": "", fields[i].name, fields[i].value);
        if (n < 0 || (size_t) n >= total - used) {
            free (out);
            return NULL;
        }
        used += (size_t) n;
    }
    if (as_data) {
        memcpy (out + used, ",\"data\":", 8);
        used += 8;
        memcpy (out + used, text, len);
        used += len;
        out[used++] = '}';
    }
    else {
        //  text is "{...}" trimmed and non-empty ("specversion" is in it)
        if (count > 0)
            out[used++] = ',';
        memcpy (out + used, text + 1, len - 1);
        used += len - 1;
    }
    out[used] = '\0';
    return out;
}

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

//  Fills info from the envelope about to be sent.
static void
s_info (herald_event_info_t *info, const char *type, const char *source, const char *id,
        bool own_id)
{
    if (!info)
        return;
    snprintf (info->id, sizeof info->id, "%s", id? id: "");
    snprintf (info->type, sizeof info->type, "%s", type? type: "");
    snprintf (info->source, sizeof info->source, "%s", source? source: "");
    info->own_id = own_id;
}

char *
herald_event_buildn (const char *type, const char *source, const char *json,
                     size_t len, herald_event_error_t *error)
{
    return herald_event_buildn_id (type, source, NULL, json, len, NULL, error);
}

char *
herald_event_buildn_id (const char *type, const char *source, const char *given_id,
                        const char *json, size_t len, herald_event_info_t *info,
                        herald_event_error_t *error)
{
    herald_event_error_t scratch;
    if (!error)
        error = &scratch;
    memset (error, 0, sizeof *error);
    if (info)
        memset (info, 0, sizeof *info);
    if (given_id && !*given_id)
        given_id = NULL;
    if (!json) {
        s_error (error, "no event JSON");
        return NULL;
    }
    if (type && !*type)
        type = NULL;
    if (!source || !*source)
        source = NULL;

    json_error_t jerr;
    json_t *root = json_loadb (json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        error->line = jerr.line > 0? jerr.line: 1;
        error->column = jerr.column > 0? jerr.column: 1;
        snprintf (error->text, sizeof error->text, "%s", jerr.text);
        return NULL;
    }
    if (!json_is_object (root)) {
        snprintf (error->text, sizeof error->text,
                  "event must be a JSON object (its data, or a whole CloudEvents envelope), not %s",
                  s_json_kind (root));
        json_decref (root);
        return NULL;
    }
    //  Trim surrounding whitespace: text[0] is '{' and text[len-1] is '}'
    while (len > 0 && s_is_space (*json)) {
        json++;
        len--;
    }
    while (len > 0 && s_is_space (json[len - 1]))
        len--;

    bool envelope = json_object_get (root, "specversion") != NULL;
    json_t *given_type = json_object_get (root, "type");
    if (!type && (!envelope || !given_type)) {
        s_error (error, envelope? "the envelope has no \"type\" and none was given"
                                : "no event type given for the data object");
        json_decref (root);
        return NULL;
    }
    char id[40];
    char now[40];
    int64_t wall_ms = herald_clock_wall_ms ();
    if (herald_uuid7 (id, sizeof id, wall_ms) != 0) {
        s_error (error, "cannot generate an event id (getrandom failed)");
        json_decref (root);
        return NULL;
    }
    herald_clock_format (wall_ms, now, sizeof now);

    char *out = NULL;
    json_t *given_envelope_id = envelope? json_object_get (root, "id"): NULL;
    bool type_overridden = envelope && type && given_type
        && !(json_is_string (given_type) && strcmp (json_string_value (given_type), type) == 0);
    bool id_overridden = envelope && given_id && given_envelope_id
        && !(json_is_string (given_envelope_id) && strcmp (json_string_value (given_envelope_id), given_id) == 0);
    if (type_overridden || id_overridden) {
        //  The type or the id is overridden: the rare case where we re-render the envelope
        int rc = 0;
        if (type)
            rc |= json_object_set_new (root, "type", json_string (type));
        if (given_id || !given_envelope_id)
            rc |= json_object_set_new (root, "id", json_string (given_id? given_id: id));
        if (!json_object_get (root, "source"))
            rc |= json_object_set_new (root, "source", json_string (source? source: HERALD_DEFAULT_SOURCE));
        if (!json_object_get (root, "time"))
            rc |= json_object_set_new (root, "time", json_string (now));
        out = rc == 0? json_dumps (root, JSON_COMPACT): NULL;
        if (!out)
            s_error (error, "type, source or id is not valid UTF-8");
        else
            s_info (info, json_string_value (json_object_get (root, "type")),
                    json_string_value (json_object_get (root, "source")),
                    json_string_value (json_object_get (root, "id")), given_id || given_envelope_id);
        json_decref (root);
        return out;
    }

    s_field_t fields[7];
    size_t count = 0;
    bool ok = true;
    if (!envelope) {
        fields[count].name = "specversion";
        fields[count++].value = s_quote ("1.0");
    }
    if (!envelope || !given_envelope_id) {
        fields[count].name = "id";
        fields[count++].value = s_quote (given_id? given_id: id);
    }
    if (!envelope || !json_object_get (root, "source")) {
        fields[count].name = "source";
        fields[count++].value = s_quote (source? source: HERALD_DEFAULT_SOURCE);
    }
    if (!envelope || !given_type) {
        fields[count].name = "type";
        fields[count++].value = s_quote (type);
    }
    if (!envelope || !json_object_get (root, "time")) {
        fields[count].name = "time";
        fields[count++].value = s_quote (now);
    }
    if (!envelope) {
        fields[count].name = "datacontenttype";
        fields[count++].value = s_quote ("application/json");
    }
    for (size_t i = 0; i < count; i++)
        if (!fields[i].value)
            ok = false;
    if (ok)
        out = s_assemble (fields, count, json, len, !envelope);
    if (!out)
        s_error (error, ok? "out of memory": "type, source or id is not valid UTF-8");
    else {
        json_t *envelope_source = envelope? json_object_get (root, "source"): NULL;
        s_info (info, envelope && given_type? json_string_value (given_type): type,
                envelope_source? json_string_value (envelope_source): source? source: HERALD_DEFAULT_SOURCE,
                given_envelope_id? json_string_value (given_envelope_id): given_id? given_id: id,
                given_id || given_envelope_id);
    }
    for (size_t i = 0; i < count; i++)
        free (fields[i].value);
    json_decref (root);
    return out;
}

char *
herald_event_build (const char *type, const char *source, const char *json,
                    char *err, size_t errlen)
{
    herald_event_error_t error;
    char *event = herald_event_buildn (type, source, json, json? strlen (json): 0, &error);
    if (!event && err && errlen) {
        if (error.line > 0)
            snprintf (err, errlen, "invalid JSON at line %d column %d: %s",
                      error.line, error.column, error.text);
        else
            snprintf (err, errlen, "%s", error.text);
    }
    return event;
}
