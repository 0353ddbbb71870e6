/*  validate: CloudEvents envelope and configured event rules. */
#include <jansson.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "herald_asan.h"
#include "herald_json.h"
#include "herald_proto.h"
#include "validate.h"

static int
s_refuse (validate_result_t *result, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_refuse (validate_result_t *result, int code, const char *fmt, ...)
{
    result->code = code;
    va_list args;
    va_start (args, fmt);
    vsnprintf (result->reason, sizeof result->reason, fmt, args);
    va_end (args);
    return -1;
}

/*  The first C0 control character or DEL in text, or NULL. Identifiers and
    idempotency keys hold none, so the separator of the encoded key cannot
    appear inside its parts and a NUL cannot end a part early. */
static const char *
s_control_char (const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) text[i] < 0x20 || text[i] == 0x7f)
            return text + i;
    return NULL;
}

/*  One plain address: local@domain, printable ASCII without spaces or the
    specials that would make it more than one mailbox. */
static bool
s_is_email (const char *text, size_t len)
{
    const char *at = memchr (text, '@', len);
    if (len < 3 || len > 254 || !at || at == text || at == text + len - 1
    ||  memchr (at + 1, '@', (size_t) (text + len - at - 1)) || at - text > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c <= 0x20 || c >= 0x7f || strchr ("<>,;:\"()[]\\", c))
            return false;
    }
    return true;
}

static const char *
s_json_kind (const json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT:  return "an object";
        case JSON_ARRAY:   return "an array";
        case JSON_STRING:  return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL:    return "a number";
        case JSON_TRUE:
        case JSON_FALSE:   return "a boolean";
        default:           return "null";
    }
}

/*  A required field: present, not null, not empty, and of one of the
    configured types (any when types is 0). */
static int
s_required_field (const json_t *field, const char *path, unsigned types, validate_result_t *result)
{
    if (!field || json_is_null (field))
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: required field missing", path);
    if ((json_is_string (field) && json_string_length (field) == 0)
    ||  (json_is_array (field) && json_array_size (field) == 0)
    ||  (json_is_object (field) && json_object_size (field) == 0))
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: required field is empty", path);
    if (types == 0)
        return 0;
    bool ok = ((types & HERALD_FIELD_STRING) && json_is_string (field))
           || ((types & HERALD_FIELD_NUMBER) && json_is_number (field))
           || ((types & HERALD_FIELD_INTEGER) && json_is_integer (field))
           || ((types & HERALD_FIELD_BOOLEAN) && json_is_boolean (field))
           || ((types & HERALD_FIELD_OBJECT) && json_is_object (field))
           || ((types & HERALD_FIELD_ARRAY) && json_is_array (field))
           || ((types & HERALD_FIELD_EMAIL) && json_is_string (field)
               && s_is_email (json_string_value (field), json_string_length (field)));
    if (ok)
        return 0;
    char words[160];
    herald_field_types_describe (types, words, sizeof words);
    if (types == HERALD_FIELD_EMAIL && json_is_string (field))
        return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: must be an email address", path);
    return s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: must be %s, got %s", path, words,
                     s_json_kind (field));
}

static int
s_string_field (json_t *root, const char *name, char *out, size_t size, bool required,
                validate_result_t *result)
{
    json_t *value = json_object_get (root, name);
    if (!value) {
        if (required)
            return s_refuse (result, HP_CODE_INVALID_EVENT,
                             "%s: required CloudEvents attribute missing", name);
        out[0] = '\0';
        return 0;
    }
    if (!json_is_string (value))
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: must be a string", name);
    const char *text = json_string_value (value);
    size_t len = json_string_length (value);
    if (required && len == 0)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: must not be empty", name);
    if (len >= size) {
        char limit[32];
        snprintf (limit, sizeof limit, "%zu", size - 1);
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: longer than %s characters", name, limit);
    }
    const char *control = s_control_char (text, len);
    if (control)
        return s_refuse (result, HP_CODE_INVALID_EVENT, "%s: contains a control character (U+%04X)",
                         name, (unsigned) (unsigned char) *control);
    memcpy (out, text, len + 1);
    return 0;
}

/*  Parsing allocates many small nodes that all die together at the end of
    the check: a bump arena serves them (free is a no-op inside it), swapped
    in around the parse only. The broker validates on its loop thread alone,
    so swapping jansson's process-wide allocator here is safe. */
#define ARENA_SIZE (256 * 1024)

static struct {
    _Alignas (16) unsigned char bytes[ARENA_SIZE];
    size_t used;
} s_arena;

static void *
s_arena_malloc (size_t size)
{
    size_t rounded = (size + HERALD_ASAN_REDZONE + 15) & ~(size_t) 15;
    if (rounded <= ARENA_SIZE - s_arena.used) {
        void *p = s_arena.bytes + s_arena.used;
        s_arena.used += rounded;
        herald_asan_unpoison (p, size);
        return p;
    }
    return malloc (size);
}

static void
s_arena_free (void *p)
{
    unsigned char *bytes = p;
    if (bytes < s_arena.bytes || bytes >= s_arena.bytes + ARENA_SIZE)
        free (p);
}

static int
s_validate (const herald_config_t *config, const char *body, size_t len,
            validate_result_t *result);

int
validate_event (const herald_config_t *config, const char *body, size_t len,
                validate_result_t *result)
{
    json_malloc_t old_malloc;
    json_free_t old_free;
    json_get_alloc_funcs (&old_malloc, &old_free);
    s_arena.used = 0;
    herald_asan_poison (s_arena.bytes, ARENA_SIZE);    /* overruns inside the arena show */
    json_set_alloc_funcs (s_arena_malloc, s_arena_free);
    int rc = s_validate (config, body, len, result);
    json_set_alloc_funcs (old_malloc, old_free);
    return rc;
}

static int
s_validate (const herald_config_t *config, const char *body, size_t len,
                validate_result_t *result)
{
    memset (result, 0, sizeof *result);
    result->type_index = -1;
    if (len > config->broker.max_event_bytes) {
        char size[32], limit[32];
        snprintf (size, sizeof size, "%zu", len);
        snprintf (limit, sizeof limit, "%zu", config->broker.max_event_bytes);
        return s_refuse (result, HP_CODE_TOO_LARGE,
                         "event is %s bytes, larger than broker.max_event_bytes (%s)", size, limit);
    }
    json_error_t jerr;
    json_t *root = json_loadb (body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char where[64];
        snprintf (where, sizeof where, "line %d column %d", jerr.line, jerr.column);
        return s_refuse (result, HP_CODE_BAD_REQUEST, "invalid JSON at %s: %s", where, jerr.text);
    }
    int rc = -1;
    char specversion[16], type[HERALD_NAME_MAX], scratch[512];
    if (!json_is_object (root)) {
        s_refuse (result, HP_CODE_INVALID_EVENT, "event must be a JSON object (CloudEvents envelope)");
        goto done;
    }
    if (s_string_field (root, "specversion", specversion, sizeof specversion, true, result) != 0)
        goto done;
    if (strcmp (specversion, "1.0") != 0) {
        s_refuse (result, HP_CODE_INVALID_EVENT, "specversion: '%s' is not supported (expected 1.0)",
                  specversion);
        goto done;
    }
    if (s_string_field (root, "id", result->id, sizeof result->id, true, result) != 0
    ||  s_string_field (root, "source", result->source, sizeof result->source, true, result) != 0
    ||  s_string_field (root, "type", type, sizeof type, true, result) != 0
    ||  s_string_field (root, "subject", scratch, sizeof scratch, false, result) != 0
    ||  s_string_field (root, "time", scratch, sizeof scratch, false, result) != 0
    ||  s_string_field (root, "datacontenttype", scratch, sizeof scratch, false, result) != 0)
        goto done;
    if (scratch[0] && !strstr (scratch, "json")) {
        s_refuse (result, HP_CODE_INVALID_EVENT,
                  "datacontenttype: '%s' is not supported (data must be JSON)", scratch);
        goto done;
    }
    result->type_index = herald_config_event_index (config, type);
    if (result->type_index < 0) {
        s_refuse (result, HP_CODE_UNKNOWN_TYPE, "type: unknown event type '%s'", type);
        goto done;
    }
    const herald_event_type_t *rules = &config->events[result->type_index];
    if (json_object_get (root, "data_base64")) {
        s_refuse (result, HP_CODE_INVALID_EVENT, "data_base64: binary data is not supported");
        goto done;
    }
    json_t *data = json_object_get (root, "data");
    if (!json_is_object (data)) {
        if (data)
            s_refuse (result, HP_CODE_INVALID_EVENT, "data: must be a JSON object");
        else
            s_refuse (result, HP_CODE_INVALID_EVENT, "data: required for type '%s'", type);
        goto done;
    }
    for (int i = 0; i < rules->required_count; i++)
        if (s_required_field (herald_json_lookup (data, rules->required[i]), rules->required[i],
                              rules->required_types[i], result) != 0)
            goto done;
    /*  The idempotency key, encoded so that two different events never make
        the same key: "key" US type US (s|n) US value for a key field (the
        string "1042" and the number 1042 differ), "ce" US source US id for
        the CloudEvents pair. US (0x1f) cannot appear in a part: type names
        are identifiers and the parts hold no control character. */
    if (rules->key[0]) {
        const json_t *key = herald_json_lookup (data, rules->key);
        char number[32];
        const char *value;
        size_t value_len;
        char kind;
        if (json_is_string (key)) {
            value = json_string_value (key);
            value_len = json_string_length (key);
            kind = 's';
        }
        else
        if (json_is_integer (key)) {
            value_len = (size_t) snprintf (number, sizeof number, "%lld",
                                           (long long) json_integer_value (key));
            value = number;
            kind = 'n';
        }
        else {
            if (key)
                s_refuse (result, HP_CODE_INVALID_EVENT,
                          "data.%s: idempotency key must be a string or an integer", rules->key);
            else
                s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key field missing",
                          rules->key);
            goto done;
        }
        if (value_len == 0) {
            s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key is empty",
                      rules->key);
            goto done;
        }
        if (value_len > VALIDATE_KEY_VALUE_MAX) {
            s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key longer than %d bytes"
                      " (%zu)", rules->key, VALIDATE_KEY_VALUE_MAX, value_len);
            goto done;
        }
        const char *control = s_control_char (value, value_len);
        if (control) {
            s_refuse (result, HP_CODE_INVALID_EVENT, "data.%s: idempotency key contains a control"
                      " character (U+%04X)", rules->key, (unsigned) (unsigned char) *control);
            goto done;
        }
        snprintf (result->dedup_key, sizeof result->dedup_key, "key\x1f%s\x1f%c\x1f%s",
                  rules->name, kind, value);
    }
    else
        snprintf (result->dedup_key, sizeof result->dedup_key, "ce\x1f%s\x1f%s",
                  result->source, result->id);
    rc = 0;
done:
    json_decref (root);
    return rc;
}
