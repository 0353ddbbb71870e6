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

Test (validate, accepts_a_complete_order)
{
    validate_result_t r;
    cr_assert_eq (check (ENVELOPE ("{\"order_id\":1042,\"customer\":{\"email\":\"a@b.c\"},\"items\":[]}"), &r), 0,
                  "refused: %s", r.reason);
    cr_assert_str_eq (r.id, "e-1");
    cr_assert_str_eq (r.source, "shop");
    cr_assert_eq (r.type_index, 0);
    cr_assert_str_eq (r.dedup_key, "order.confirmed\x1f" "1042");
}

Test (validate, string_and_integer_keys_are_the_same_key)
{
    validate_result_t a, b;
    check (ENVELOPE ("{\"order_id\":7,\"customer\":{\"email\":\"a@b.c\"},\"items\":[]}"), &a);
    check (ENVELOPE ("{\"order_id\":\"7\",\"customer\":{\"email\":\"a@b.c\"},\"items\":[]}"), &b);
    cr_assert_str_eq (a.dedup_key, b.dedup_key);
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
    cr_assert_eq (check (ENVELOPE ("{}"), &r), 0);
    cr_assert_str_eq (r.dedup_key, "ce\x1f" "shop\x1f" "e-1");
}

Test (validate, duplicate_json_keys_refused)
{
    validate_result_t r;
    cr_assert_eq (check ("{\"specversion\":\"1.0\",\"id\":\"a\",\"id\":\"b\",\"source\":\"s\",\"type\":\"order.confirmed\"}", &r), -1);
    cr_assert_eq (r.code, HP_CODE_BAD_REQUEST);
}
