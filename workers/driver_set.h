/*  driver_set: the driver instances of one worker. The current one starts
    new deliveries; one that a reload replaced retires: it finishes the
    deliveries it started, with the settings it was opened with, and is
    closed (its configuration freed) once none is left. Polling, progress
    and flush go to every instance; the runtime starts tasks on the current
    one only. */
#ifndef HERALD_DRIVER_SET_H
#define HERALD_DRIVER_SET_H

#include <stdbool.h>
#include <zmq.h>

#include "driver.h"
#include "herald_config.h"

typedef struct driver_set driver_set_t;

/*  A set whose current instance is instance of ops. config is what the
    instance borrows: owned (freed when the instance closes) if own, else
    borrowed. NULL on OOM (instance is then closed, config freed if own). */
driver_set_t *
    driver_set_new (const hd_driver_ops_t *ops, void *instance, herald_config_t *config, bool own);

/*  Closes every instance (aborting what is in progress) and frees the
    configurations owned. NULL-safe, nulls *self_p. */
void
    driver_set_destroy (driver_set_t **self_p);

/*  Makes instance of ops (opened with the owned config) current; the
    current one retires. 0, or -1 on OOM (then nothing changed and the
    caller still owns instance and config). */
int
    driver_set_replace (driver_set_t *self, const hd_driver_ops_t *ops, void *instance, herald_config_t *config);

/*  The current instance and its ops (borrowed). */
const hd_driver_ops_t *
    driver_set_ops (driver_set_t *self);
void *
    driver_set_current (driver_set_t *self);

/*  Deliveries in progress: in the current instance, and in all. */
int
    driver_set_current_in_progress (driver_set_t *self);
int
    driver_set_in_progress (driver_set_t *self);

/*  Instances, the retiring ones included. */
int
    driver_set_count (driver_set_t *self);

/*  Fills up to max items with every asynchronous instance's descriptors
    (each gets an equal share) and lowers *timeout_ms. Returns the count. */
int
    driver_set_poll_items (driver_set_t *self, zmq_pollitem_t *items, int max, long *timeout_ms);

/*  After zmq_poll on what driver_set_poll_items filled: each asynchronous
    instance's progress on its own items. */
void
    driver_set_progress (driver_set_t *self, const zmq_pollitem_t *items, int count);

/*  flush() of every instance that has one. */
void
    driver_set_flush (driver_set_t *self);

/*  Closes the retiring instances with nothing in progress. Returns how
    many are left retiring. */
int
    driver_set_reap (driver_set_t *self);

#endif
