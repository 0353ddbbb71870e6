/*  herald_json: the dotted paths that name fields of an event, shared by the
    broker (required fields, idempotency key) and the workers (templates). */
#ifndef HERALD_JSON_H
#define HERALD_JSON_H

#include <jansson.h>

/*  The value at a dotted path below root ("data.customer.email"): object
    members by key, array elements by a decimal index ("items.0.sku").
    Returns it (borrowed), or NULL when any step does not exist. */
const json_t *
    herald_json_lookup (const json_t *root, const char *path);

#endif
