/*  fuzz_validate: libFuzzer target for event validation and idempotency key
    extraction (broker/validate.c). The input is one event body, as a
    producer would publish it. The configuration is built in code (like
    tests/unit/broker_fixture.h) with three event types: order.confirmed,
    keyed by data.order_id, with typed required fields; order.shipped,
    keyed by a nested path; and note.added, without a key (CloudEvents
    source + id).
    Properties: (differential) a 400 exactly when jansson refuses the
    document; no crash or sanitizer report; a refusal has a NACK code and
    a reason; an accepted event was a JSON object of a configured type whose
    required fields have their configured types, and its key is exactly
    what an independent reading of the event gives ("key" US type US s|n US
    value, or "ce" US source US id, with no other control character), so
    two events with different keys never share one. */
#include <jansson.h>

#include "fuzz_util.h"
#include "herald_config.h"
#include "herald_json.h"
#include "herald_proto.h"
#include "validate.h"

static herald_config_t s_config;

static void
s_event_type (const char *name, const char *key, const char *const *required,
              const unsigned *types, int count)
{
    herald_event_type_t *type = &s_config.events[s_config.event_count++];
    memset (type, 0, sizeof *type);
    snprintf (type->name, sizeof type->name, "%s", name);
    snprintf (type->key, sizeof type->key, "%s", key);
    for (int i = 0; i < count; i++) {
        snprintf (type->required[i], sizeof type->required[i], "%s", required[i]);
        type->required_types[i] = types[i];
    }
    type->required_count = count;
    type->fanout_count = 1;
    type->fanout[0] = 0;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    herald_config_defaults (&s_config);
    s_config.channel_count = 1;
    snprintf (s_config.channels[0].name, sizeof s_config.channels[0].name, "email");
    s_config.channels[0].driver = HERALD_DRIVER_NOOP;
    s_config.broker.max_event_bytes = 64 * 1024;

    const char *confirmed[] = { "order_id", "customer.email", "items", "total", "paid", "note" };
    const unsigned confirmed_types[] = {
        HERALD_FIELD_INTEGER | HERALD_FIELD_STRING, HERALD_FIELD_EMAIL, HERALD_FIELD_ARRAY,
        HERALD_FIELD_NUMBER, HERALD_FIELD_BOOLEAN, 0
    };
    s_event_type ("order.confirmed", "order_id", confirmed, confirmed_types, 5);
    const char *shipped[] = { "shipment.id", "address", "items.0.sku" };
    const unsigned shipped_types[] = { HERALD_FIELD_STRING, HERALD_FIELD_OBJECT, 0 };
    s_event_type ("order.shipped", "shipment.id", shipped, shipped_types, 3);
    s_event_type ("note.added", "", NULL, NULL, 0);
    return 0;
}

/*  The same check as validate.c's, written again: one plain address. */
static bool
s_is_email (const char *text, size_t len)
{
    size_t ats = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c <= 0x20 || c >= 0x7f || strchr ("<>,;:\"()[]\\", c))
            return false;
        ats += c == '@';
    }
    const char *at = memchr (text, '@', len);
    return len >= 3 && len <= 254 && ats == 1 && at != text && at != text + len - 1 && at - text <= 64;
}

static bool
s_has_type (const json_t *value, unsigned types)
{
    if (types == 0)
        return true;
    return ((types & HERALD_FIELD_STRING) && json_is_string (value))
        || ((types & HERALD_FIELD_NUMBER) && json_is_number (value))
        || ((types & HERALD_FIELD_INTEGER) && json_is_integer (value))
        || ((types & HERALD_FIELD_BOOLEAN) && json_is_boolean (value))
        || ((types & HERALD_FIELD_OBJECT) && json_is_object (value))
        || ((types & HERALD_FIELD_ARRAY) && json_is_array (value))
        || ((types & HERALD_FIELD_EMAIL) && json_is_string (value)
            && s_is_email (json_string_value (value), json_string_length (value)));
}

/*  Splits key at US into at most 5 parts; returns the count. */
static int
s_key_parts (const char *key, const char *parts[5], size_t lens[5])
{
    int count = 0;
    const char *start = key;
    for (const char *p = key; ; p++) {
        if (*p == '\x1f' || *p == '\0') {
            if (count == 5)
                return 6;
            parts[count] = start;
            lens[count++] = (size_t) (p - start);
            if (*p == '\0')
                return count;
            start = p + 1;
        }
    }
}

static bool
s_part_is (const char *part, size_t len, const char *text, size_t text_len)
{
    return len == text_len && memcmp (part, text, len) == 0;
}

/*  An accepted event, read again with jansson alone. */
static void
s_check_accepted (const char *body, size_t len, const validate_result_t *r)
{
    fuzz_check (r->code == 0, "accepted with code %d", r->code);
    fuzz_check (r->type_index >= 0 && r->type_index < s_config.event_count, "type_index %d",
                r->type_index);
    const herald_event_type_t *type = &s_config.events[r->type_index];
    json_t *root = json_loadb (body, len, JSON_REJECT_DUPLICATES, NULL);
    fuzz_check (json_is_object (root), "accepted a body that is not a JSON object");
    fuzz_check (json_is_string (json_object_get (root, "specversion"))
                && strcmp (json_string_value (json_object_get (root, "specversion")), "1.0") == 0,
                "accepted without specversion 1.0");
    const json_t *jtype = json_object_get (root, "type");
    fuzz_check (json_is_string (jtype) && strcmp (json_string_value (jtype), type->name) == 0,
                "type_index names %s, the event's type differs", type->name);
    const json_t *id = json_object_get (root, "id");
    const json_t *source = json_object_get (root, "source");
    fuzz_check (json_is_string (id) && s_part_is (r->id, strlen (r->id), json_string_value (id),
                                                  json_string_length (id)),
                "result id is not the event's id");
    fuzz_check (json_is_string (source)
                && s_part_is (r->source, strlen (r->source), json_string_value (source),
                              json_string_length (source)),
                "result source is not the event's source");
    const json_t *data = json_object_get (root, "data");
    fuzz_check (json_is_object (data), "accepted without a data object");
    for (int i = 0; i < type->required_count; i++) {
        const json_t *field = herald_json_lookup (data, type->required[i]);
        fuzz_check (field && !json_is_null (field), "required %s missing", type->required[i]);
        fuzz_check (!(json_is_string (field) && json_string_length (field) == 0)
                    && !(json_is_array (field) && json_array_size (field) == 0)
                    && !(json_is_object (field) && json_object_size (field) == 0),
                    "required %s empty", type->required[i]);
        fuzz_check (s_has_type (field, type->required_types[i]), "required %s of the wrong type",
                    type->required[i]);
    }

    const char *parts[5];
    size_t lens[5];
    int count = s_key_parts (r->dedup_key, parts, lens);
    for (const char *p = r->dedup_key; *p; p++)
        fuzz_check (*p == '\x1f' || ((unsigned char) *p >= 0x20 && *p != 0x7f),
                    "control character 0x%02x in the key", (unsigned) (unsigned char) *p);
    if (type->key[0]) {
        const json_t *key = herald_json_lookup (data, type->key);
        char number[32];
        const char *value;
        size_t value_len;
        char kind;
        if (json_is_string (key)) {
            value = json_string_value (key);
            value_len = json_string_length (key);
            kind = 's';
        }
        else {
            fuzz_check (json_is_integer (key), "accepted a key that is neither string nor integer");
            value_len = (size_t) snprintf (number, sizeof number, "%lld",
                                           (long long) json_integer_value (key));
            value = number;
            kind = 'n';
        }
        fuzz_check (value_len > 0 && value_len <= VALIDATE_KEY_VALUE_MAX, "key of %zu bytes accepted",
                    value_len);
        fuzz_check (count == 4 && s_part_is (parts[0], lens[0], "key", 3)
                    && s_part_is (parts[1], lens[1], type->name, strlen (type->name))
                    && lens[2] == 1 && parts[2][0] == kind
                    && s_part_is (parts[3], lens[3], value, value_len),
                    "key is not key/%s/%c/value: %s", type->name, kind, r->dedup_key);
    }
    else
        fuzz_check (count == 3 && s_part_is (parts[0], lens[0], "ce", 2)
                    && s_part_is (parts[1], lens[1], json_string_value (source),
                                  json_string_length (source))
                    && s_part_is (parts[2], lens[2], json_string_value (id), json_string_length (id)),
                    "key is not ce/source/id: %s", r->dedup_key);
    json_decref (root);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *body = fuzz_copy (data, size);
    validate_result_t result;
    int rc = validate_event (&s_config, body, size, &result);
    fuzz_check (rc == 0 || rc == -1, "validate_event returned %d", rc);
    fuzz_check (fuzz_terminated (result.reason, sizeof result.reason)
                && fuzz_terminated (result.id, sizeof result.id)
                && fuzz_terminated (result.source, sizeof result.source)
                && fuzz_terminated (result.dedup_key, sizeof result.dedup_key),
                "a result string is not terminated");
    /*  Differential: the one-pass checker is as strict as jansson (with
        duplicate keys refused), no more, no less: a document jansson
        refuses is a 400 (or 413 when too large), and a 400 is a document
        jansson refuses. */
    if (size <= s_config.broker.max_event_bytes && memchr (body, '\0', size))
        /*  jansson's reader skips NUL bytes (its buffer's end marker); a NUL
            is never valid JSON text (RFC 8259: not whitespace, and raw in a
            string it is a control character): refused here. */
        fuzz_check (rc == -1 && result.code == HP_CODE_BAD_REQUEST,
                    "a document with a NUL byte answered %d", rc == 0? 200: result.code);
    else
    if (size <= s_config.broker.max_event_bytes) {
        json_t *doc = json_loadb (body, size, JSON_REJECT_DUPLICATES, NULL);
        if (!doc)
            fuzz_check (rc == -1 && result.code == HP_CODE_BAD_REQUEST,
                        "jansson refuses the document, validate_event answered %d (%s)",
                        rc == 0? 200: result.code, result.reason);
        else
            fuzz_check (!(rc == -1 && result.code == HP_CODE_BAD_REQUEST),
                        "jansson reads the document, validate_event refused it 400: %s", result.reason);
        json_decref (doc);
    }
    if (rc == 0)
        s_check_accepted (body, size, &result);
    else {
        fuzz_check (result.code == HP_CODE_BAD_REQUEST || result.code == HP_CODE_TOO_LARGE
                    || result.code == HP_CODE_INVALID_EVENT || result.code == HP_CODE_UNKNOWN_TYPE,
                    "refused with code %d", result.code);
        fuzz_check (result.reason[0] != '\0', "refused without a reason");
    }
    /*  The same body gives the same answer (the arena is reset each call). */
    validate_result_t again;
    int rc_again = validate_event (&s_config, body, size, &again);
    fuzz_check (rc_again == rc && again.code == result.code
                && strcmp (again.reason, result.reason) == 0
                && strcmp (again.dedup_key, result.dedup_key) == 0,
                "a second validation answers differently");
    free (body);
    return 0;
}
