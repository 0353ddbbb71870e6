/*  Unit tests: broker/validate — what the broker accepts and why it refuses. */
#include <criterion/criterion.h>
#include <string.h>

#include "broker_fixture.h"
#include "herald_proto.h"
#include "validate.h"

static herald_config_t config;

static void
setup (void)
{
    fixture_config (&config);
}

TestSuite (validate, .init = setup);

#define ENVELOPE(data) \
    "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"shop\",\"type\":\"order.confirmed\"," \
    "\"data\":" data "}"

static int
check (const char *body, validate_result_t *result)
{
    return validate_event (&config, body, strlen (body), result);
}

#define ITEMS "\"items\":[{\"sku\":\"A\"}]"

Test (validate, accepts_a_complete_order)
{
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1042,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &r), 0,
                  "refused: %s", r.reason);
    cr_assert_str_eq (r.id, "e-1");
    cr_assert_str_eq (r.source, "shop");
    cr_assert_eq (r.type_index, 0);
    cr_assert_str_eq (r.dedup_key, "key\x1f" "order.confirmed\x1f" "n\x1f" "1042");
}

/*  Two different events are never one: the number 1042 and the string
    "1042" are different keys. */
Test (validate, string_and_integer_keys_are_different_keys)
{
    validate_result_t a, b;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":7,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &a), 0);
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":\"7\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &b), 0);
    cr_assert_str_neq (a.dedup_key, b.dedup_key);
}

/*  An integer key is printed as the number it is, whatever its sign or
    size: "-0" and "0" are one key, the 64-bit limits keep every digit. */
Test (validate, integer_keys_are_printed_as_numbers)
{
    const char *cases[][2] = {
        { "0", "0" }, { "-0", "0" }, { "-17", "-17" }, { "1000000007", "1000000007" },
        { "9223372036854775807", "9223372036854775807" }, { "-9223372036854775808", "-9223372036854775808" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1024], want[128];
        snprintf (body, sizeof body, ENVELOPE ("{\"order_id\":%s,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"),
                  cases[i][0]);
        snprintf (want, sizeof want, "key\x1f" "order.confirmed\x1f" "n\x1f" "%s", cases[i][1]);
        validate_result_t r;
        cr_assert_eq (check (body, &r), 0, "%s refused: %s", cases[i][0], r.reason);
        cr_assert_str_eq (r.dedup_key, want, "key %s", cases[i][0]);
    }
}

/*  A key longer than the limit used to be cut at 255 bytes, so two keys
    sharing their first 255 bytes were one: now it is refused, naming the
    field and the limit. */
Test (validate, overlong_key_is_refused)
{
    char data[1024], body[2048];
    char key[VALIDATE_KEY_VALUE_MAX + 2];
    memset (key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf (data, sizeof data, "{\"order_id\":\"%s\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}", key);
    snprintf (body, sizeof body, ENVELOPE ("%s"), data);
    validate_result_t r;
    cr_assert_eq (check (body, &r), -1);
    cr_assert_eq (r.code, HP_CODE_INVALID_EVENT);
    cr_assert (strstr (r.reason, "data.order_id: idempotency key longer than 256 bytes"), "reason: %s", r.reason);
    key[sizeof key - 2] = '\0';         /* exactly at the limit: accepted, whole */
    snprintf (data, sizeof data, "{\"order_id\":\"%s\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}", key);
    snprintf (body, sizeof body, ENVELOPE ("%s"), data);
    cr_assert_eq (check (body, &r), 0, "refused: %s", r.reason);
    cr_assert (strstr (r.dedup_key, key), "key kept whole");
}

/*  An embedded NUL used to end the key early ("a\u0000x" == "a\u0000y"). */
Test (validate, control_characters_in_keys_are_refused)
{
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":\"a\\u0000x\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &r), -1);
    cr_assert_eq (r.code, HP_CODE_BAD_REQUEST);
    cr_assert (strstr (r.reason, "\\u0000"), "reason: %s", r.reason);
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":\"a\\u0001x\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &r), -1);
    cr_assert_eq (r.code, HP_CODE_INVALID_EVENT);
    cr_assert_str_eq (r.reason, "data.order_id: idempotency key contains a control character (U+0001)");
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":\"a\\u001fb\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id: idempotency key contains a control character (U+001F)");
    config.events[0].key[0] = '\0';
    const char *sep = "{\"specversion\":\"1.0\",\"id\":\"c\",\"source\":\"a\\u001fb\",\"type\":\"order.confirmed\","
                      "\"data\":{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}}";
    cr_assert_eq (check (sep, &r), -1);
    cr_assert_str_eq (r.reason, "source: contains a control character (U+001F)");
}

/*  source + id: the parts can no longer run into each other. */
Test (validate, source_and_id_keys_are_unambiguous)
{
    config.events[0].key[0] = '\0';
    validate_result_t a, b;
    const char *one = "{\"specversion\":\"1.0\",\"id\":\"b-c\",\"source\":\"a\",\"type\":\"order.confirmed\","
                      "\"data\":{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}}";
    const char *two = "{\"specversion\":\"1.0\",\"id\":\"c\",\"source\":\"a-b\",\"type\":\"order.confirmed\","
                      "\"data\":{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}}";
    cr_assert_eq (check (one, &a), 0, "%s", a.reason);
    cr_assert_eq (check (two, &b), 0, "%s", b.reason);
    cr_assert_str_neq (a.dedup_key, b.dedup_key);
    cr_assert_str_eq (a.dedup_key, "ce\x1f" "a\x1f" "b-c");
}

/*  A key field and a source + id can never make the same key. */
Test (validate, key_field_and_source_id_forms_differ)
{
    validate_result_t a, b;
    snprintf (config.events[0].name, sizeof config.events[0].name, "ce");
    cr_assert_eq (check ("{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\",\"type\":\"ce\","
                         "\"data\":{\"order_id\":\"v\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}}", &a), 0,
                  "%s", a.reason);
    config.events[0].key[0] = '\0';
    cr_assert_eq (check ("{\"specversion\":\"1.0\",\"id\":\"v\",\"source\":\"s\",\"type\":\"ce\","
                         "\"data\":{\"order_id\":\"v\",\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}}", &b), 0,
                  "%s", b.reason);
    cr_assert_str_neq (a.dedup_key, b.dedup_key);
}

/*  Required means present and not empty, and a type when the config says
    one: a shop gets the NACK at checkout, not a dead task later. */
Test (validate, required_means_not_empty)
{
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"\"}," ITEMS "}"), &r), -1);
    cr_assert_eq (r.code, HP_CODE_INVALID_EVENT);
    cr_assert_str_eq (r.reason, "data.customer.email: required field is empty");
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"},\"items\":[]}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.items: required field is empty");
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"},\"items\":{}}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.items: required field is empty");
}

Test (validate, required_types)
{
    herald_event_type_t *type = &config.events[0];
    type->required_types[1] = HERALD_FIELD_EMAIL;
    type->required_types[2] = HERALD_FIELD_ARRAY;
    type->required_types[0] = HERALD_FIELD_STRING | HERALD_FIELD_NUMBER;
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &r), 0,
                  "%s", r.reason);
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"not an address\"}," ITEMS "}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.customer.email: must be an email address");
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"},\"items\":\"x\"}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.items: must be an array, got a string");
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":true,\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id: must be a string or a number, got a boolean");
}

Test (validate, invalid_json_names_line_and_column)
{
    validate_result_t r;
    cr_assert_eq (check ("{\"specversion\":\n\"1.0\",,}", &r), -1);
    cr_assert_eq (r.code, HP_CODE_BAD_REQUEST);
    cr_assert (strstr (r.reason, "invalid JSON at line 2"), "reason: %s", r.reason);
}

Test (validate, missing_required_field_is_named)
{
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"name\":\"x\"},\"items\":[]}"), &r), -1);
    cr_assert_eq (r.code, HP_CODE_INVALID_EVENT);
    cr_assert_str_eq (r.reason, "data.customer.email: required field missing");
}

Test (validate, null_counts_as_missing)
{
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":null},\"items\":[]}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.customer.email: required field missing");
}

Test (validate, unknown_type)
{
    validate_result_t r;
    const char *body = "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\",\"type\":\"order.lost\",\"data\":{}}";
    cr_assert_eq (check (body, &r), -1);
    cr_assert_eq (r.code, HP_CODE_UNKNOWN_TYPE);
    cr_assert (strstr (r.reason, "order.lost"), "reason: %s", r.reason);
}

Test (validate, cloudevents_attributes)
{
    validate_result_t r;
    cr_assert_eq (check ("{\"specversion\":\"0.3\",\"id\":\"x\",\"source\":\"s\",\"type\":\"order.confirmed\"}", &r), -1);
    cr_assert (strstr (r.reason, "specversion"), "reason: %s", r.reason);
    cr_assert_eq (check ("{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"order.confirmed\"}", &r), -1);
    cr_assert_str_eq (r.reason, "id: required CloudEvents attribute missing");
    cr_assert_eq (check ("{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"s\",\"type\":\"order.confirmed\"}", &r), -1);
    cr_assert_str_eq (r.reason, "id: must not be empty");
    cr_assert_eq (check ("{\"specversion\":\"1.0\",\"id\":5,\"source\":\"s\",\"type\":\"order.confirmed\"}", &r), -1);
    cr_assert_str_eq (r.reason, "id: must be a string");
    cr_assert_eq (check ("[1,2]", &r), -1);
    cr_assert_eq (r.code, HP_CODE_INVALID_EVENT);
}

Test (validate, data_must_be_json_object)
{
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("\"text\""), &r), -1);
    cr_assert_str_eq (r.reason, "data: must be a JSON object");
    const char *xml = "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\",\"type\":\"order.confirmed\","
                      "\"datacontenttype\":\"application/xml\",\"data\":{}}";
    cr_assert_eq (check (xml, &r), -1);
    cr_assert (strstr (r.reason, "datacontenttype"), "reason: %s", r.reason);
}

Test (validate, oversized_event_is_413)
{
    char body[8192];
    memset (body, ' ', sizeof body);
    body[sizeof body - 1] = '\0';
    validate_result_t r;
    cr_assert_eq (check (body, &r), -1);
    cr_assert_eq (r.code, HP_CODE_TOO_LARGE);
    cr_assert (strstr (r.reason, "broker.max_event_bytes (4096)"), "reason: %s", r.reason);
}

Test (validate, key_rules)
{
    validate_result_t r;
    config.events[0].required_count = 0;
    cr_assert_eq (check (ENVELOPE ("{\"customer\":{}}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id: idempotency key field missing");
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":{\"a\":1}}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id: idempotency key must be a string or an integer");
    config.events[0].key[0] = '\0';
    config.events[0].required_count = 0;
    cr_assert_eq (check (ENVELOPE ("{}"), &r), 0);
    cr_assert_str_eq (r.dedup_key, "ce\x1f" "shop\x1f" "e-1");
}

Test (validate, duplicate_json_keys_refused)
{
    validate_result_t r;
    cr_assert_eq (check ("{\"specversion\":\"1.0\",\"id\":\"a\",\"id\":\"b\",\"source\":\"s\",\"type\":\"order.confirmed\"}", &r), -1);
    cr_assert_eq (r.code, HP_CODE_BAD_REQUEST);
}

/*  The checking pass accepts exactly what jansson (which the workers use)
    accepts, on documents chosen to sit on the edges of the grammar. */
#include <jansson.h>

Test (validate, json_grammar_agrees_with_jansson)
{
    static const char *docs[] = {
        "{\"a\":1}", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{\"a\":[1,2,]}", "{\"a\":01}", "{\"a\":-0}",
        "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e5}", "{\"a\":1E+5}", "{\"a\":1e}", "{\"a\":-}",
        "{\"a\":9223372036854775807}", "{\"a\":9223372036854775808}", "{\"a\":-9223372036854775808}",
        "{\"a\":1e400}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":true}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud83d\\ude00\"}",
        "{\"a\":\"\xc3\x28\"}", "{\"a\":\"\xe2\x82\"}", "{\"a\":\"\xf0\x9f\x98\x80\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"tab\there\"}", "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1,\"b\":2}}",
        "{\"a\":1,\"\\u0061\":2}", "{\"a\":[{\"x\":1},{\"x\":1}]}", "{\"a\":1} x", "{\"a\":1}  \n",
        "[1,2]", "\"s\"", "", "   ", "{", "{\"a\"", "{\"a\":", "{\"a\":\"x", "{\"a\":[1,[2,[3]]]}",
        "{\"a\":\"\\u0000\"}", "{\"\":1}", "{\"a\":1}\x00",
    };
    validate_result_t r;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        size_t len = strlen (docs[i]);
        if (i == sizeof docs / sizeof docs[0] - 1)
            len++;          /* the trailing NUL byte itself */
        json_error_t jerr;
        json_t *j = json_loadb (docs[i], len, JSON_REJECT_DUPLICATES, &jerr);
        bool jansson_ok = j != NULL;
        json_decref (j);
        validate_event (&config, docs[i], len, &r);
        bool ours_ok = r.code != HP_CODE_BAD_REQUEST;
        cr_expect_eq (ours_ok, jansson_ok, "document %zu (%s): jansson %s, validate %s (%s)", i, docs[i],
                      jansson_ok? "accepts": "refuses", ours_ok? "accepts": "refuses", r.reason);
    }
}

Test (validate, deep_nesting_is_refused_not_a_crash)
{
    static char doc[100000];
    size_t n = 0;
    n += (size_t) snprintf (doc + n, sizeof doc - n, "{\"a\":");
    for (int i = 0; i < 20000; i++)
        doc[n++] = '[';
    doc[n] = '\0';
    config.broker.max_event_bytes = sizeof doc;
    validate_result_t r;
    cr_assert_eq (check (doc, &r), -1);
    cr_assert_eq (r.code, HP_CODE_BAD_REQUEST);
    cr_assert (strstr (r.reason, "too deeply nested"), "%s", r.reason);
}

/*  Fields are found through arrays, escaped keys and any order of members. */
Test (validate, lookups_through_arrays_and_escapes)
{
    herald_event_type_t *type = &config.events[0];
    snprintf (type->required[2], sizeof type->required[2], "items.1.sku");
    validate_result_t r;
    const char *body = "{\"data\":{\"items\":[{\"sku\":\"A\"},{\"qty\":1,\"s\\u006bu\":\"B\"}],"
                       "\"customer\":{\"email\":\"a@b.c\"},\"order_id\":\"o\\u002d1\"},"
                       "\"type\":\"order.confirmed\",\"source\":\"shop\",\"id\":\"e-1\",\"specversion\":\"1.0\"}";
    cr_assert_eq (check (body, &r), 0, "%s", r.reason);
    cr_assert_str_eq (r.dedup_key, "key\x1f" "order.confirmed\x1f" "s\x1f" "o-1");
    snprintf (type->required[2], sizeof type->required[2], "items.2.sku");
    cr_assert_eq (check (body, &r), -1);
    cr_assert_str_eq (r.reason, "data.items.2.sku: required field missing");
}

/*  The lookups start from the members of data that the checking pass
    noted: a member whose key is escaped is found by its decoded name, a
    member of an object inside data or beside it is not one of data's, and
    a data of more members than are noted is walked instead. */
Test (validate, lookups_from_the_members_of_data)
{
    validate_result_t r;
    /*  order_id written with an escape, as the key and a required field. */
    const char *escaped = ENVELOPE ("{\"customer\":{\"email\":\"a@b.c\"},\"order\\u005fid\":42," ITEMS "}");
    cr_assert_eq (check (escaped, &r), 0, "%s", r.reason);
    cr_assert_str_eq (r.dedup_key, "key\x1f" "order.confirmed\x1f" "n\x1f" "42");
    /*  order_id inside customer, and beside data: neither is data's. */
    const char *nested = "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"shop\",\"type\":\"order.confirmed\","
                         "\"data\":{\"customer\":{\"email\":\"a@b.c\",\"order_id\":1}," ITEMS "},"
                         "\"extra\":{\"order_id\":2}}";
    cr_assert_eq (check (nested, &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id: required field missing");
    /*  An object before data at the top level lends data none of its members. */
    const char *before = "{\"extra\":{\"order_id\":2},\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"shop\","
                         "\"type\":\"order.confirmed\",\"data\":{\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}}";
    cr_assert_eq (check (before, &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id: required field missing");
    /*  100 members before the ones looked up: more than are noted. */
    char data[4096], body[4600];
    size_t n = (size_t) snprintf (data, sizeof data, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t) snprintf (data + n, sizeof data - n, "\"f%d\":{\"order_id\":%d},", i, i);
    snprintf (data + n, sizeof data - n, "\"customer\":{\"email\":\"a@b.c\"}," ITEMS ",\"order_id\":\"last\"}");
    snprintf (body, sizeof body, ENVELOPE ("%s"), data);
    cr_assert_eq (check (body, &r), 0, "%s", r.reason);
    cr_assert_str_eq (r.dedup_key, "key\x1f" "order.confirmed\x1f" "s\x1f" "last");
    snprintf (data + n, sizeof data - n, "\"customer\":{\"email\":\"a@b.c\"}," ITEMS "}");
    snprintf (body, sizeof body, ENVELOPE ("%s"), data);
    cr_assert_eq (check (body, &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id: required field missing");
    /*  A path that goes on below a member that is not an object. */
    herald_event_type_t *type = &config.events[0];
    snprintf (type->required[2], sizeof type->required[2], "order_id.x");
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"}}"), &r), -1);
    cr_assert_str_eq (r.reason, "data.order_id.x: required field missing");
}

/*  A string attribute too long to keep is refused, and the result's field is
    left empty, not holding the first bytes without a terminator (found by
    fuzz_validate: an escaped source of 300 characters). */
Test (validate, overlong_attributes_leave_empty_fields)
{
    char source[400], body[1024];
    memset (source, '1', sizeof source);
    memcpy (source, "a\\u0041", 7);           /* escaped: the slow decoding path */
    source[300] = '\0';
    snprintf (body, sizeof body, "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"%s\","
              "\"type\":\"order.confirmed\",\"data\":{}}", source);
    validate_result_t r;
    memset (&r, 'x', sizeof r);
    cr_assert_eq (check (body, &r), -1);
    cr_assert (strstr (r.reason, "source: longer than 256 characters"), "reason: %s", r.reason);
    cr_assert (memchr (r.source, '\0', sizeof r.source) != NULL, "source is terminated");
    cr_assert_str_eq (r.source, "");
}

/*  A real beyond a double's range is refused as jansson refuses it, also
    when it is written with more than 64 characters (found by fuzz_validate's
    comparison with jansson). */
Test (validate, real_overflow_is_refused_however_long)
{
    char body[512], number[200];
    memset (number, '4', sizeof number);
    memcpy (number, "1e09", 4);
    number[150] = '\0';
    snprintf (body, sizeof body, ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"}," ITEMS
                                           ",\"x\":%s}"), number);
    validate_result_t r;
    cr_assert_eq (check (body, &r), -1);
    cr_assert_eq (r.code, HP_CODE_BAD_REQUEST);
    cr_assert (strstr (r.reason, "real number overflow"), "reason: %s", r.reason);
    snprintf (body, sizeof body, ENVELOPE ("{\"order_id\":1,\"customer\":{\"email\":\"a@b.c\"}," ITEMS
                                           ",\"x\":1e0944}"));
    cr_assert_eq (check (body, &r), -1, "short: refused too");
}
