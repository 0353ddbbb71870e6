/*  validate: decides whether a published event may be stored. Checks the
    CloudEvents 1.0 envelope, the event type against the configuration, the
    required data fields and the size cap, and derives the idempotency key. */
#ifndef HERALD_VALIDATE_H
#define HERALD_VALIDATE_H

#include <stddef.h>

#include "herald_config.h"

#define VALIDATE_KEY_VALUE_MAX 256  /* bytes of an idempotency key field's value */
#define VALIDATE_KEY_MAX 768        /* the encoded key: form, type or source, value or id */

typedef struct {
    int code;                       /* 0 valid, else a NACK code (hp_code_t) */
    char reason[512];               /* why not: names the field, e.g. "data.customer.email: required field missing" */
    int type_index;                 /* index into config->events */
    char id[129];                   /* CloudEvents id */
    char source[257];               /* CloudEvents source */
    char dedup_key[VALIDATE_KEY_MAX]; /* idempotency key, one encoding per meaning (validate.c) */
} validate_result_t;

/*  Validates one event body against config. Returns 0 if valid, else -1
    with result->code and result->reason set. */
int
    validate_event (const herald_config_t *config, const char *body, size_t len,
                    validate_result_t *result);

#endif
