/*  broker_fixture: a configuration built in code for the broker unit tests
    (no YAML involved): channels email/inventory/courier, event
    order.confirmed keyed by order_id. Header-only, test use. */
#ifndef HERALD_BROKER_FIXTURE_H
#define HERALD_BROKER_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "herald_config.h"

static inline void
fixture_config (herald_config_t *config)
{
    herald_config_defaults (config);
    const char *names[] = { "email", "inventory", "courier" };
    config->channel_count = 3;
    for (int i = 0; i < 3; i++) {
        herald_channel_t *ch = &config->channels[i];
        memset (ch, 0, sizeof *ch);
        snprintf (ch->name, sizeof ch->name, "%s", names[i]);
        ch->driver = HERALD_DRIVER_NOOP;
        ch->capacity = 4;
        ch->max_workers = 64;
        ch->max_attempts = 3;
        ch->backoff_min_ms = 100;
        ch->backoff_max_ms = 1000;
        ch->lease_ms = 1000;
        config->workers[i] = 1;
    }
    config->event_count = 1;
    herald_event_type_t *type = &config->events[0];
    memset (type, 0, sizeof *type);
    snprintf (type->name, sizeof type->name, "order.confirmed");
    snprintf (type->key, sizeof type->key, "order_id");
    snprintf (type->required[0], sizeof type->required[0], "order_id");
    snprintf (type->required[1], sizeof type->required[1], "customer.email");
    snprintf (type->required[2], sizeof type->required[2], "items");
    type->required_count = 3;
    type->fanout_count = 3;
    for (int i = 0; i < 3; i++)
        type->fanout[i] = i;
    config->broker.max_event_bytes = 4096;
}

#endif
