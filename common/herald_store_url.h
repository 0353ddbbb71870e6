/*  herald_store_url: broker.store given as a database URL instead of a path
    (postgresql://user@host:port/db?param=value, as libpq reads it). Its
    form is checked at load, without connecting; a password in it is
    refused: it belongs in PGPASSWORD or a PGPASSFILE entry, never in the
    configuration, which is read by every process and shown by check-config. */
#ifndef HERALD_STORE_URL_H
#define HERALD_STORE_URL_H

#include <stdbool.h>
#include <stddef.h>

/*  True when text names a store by URL (holds "://"), not by path. */
bool
    herald_store_is_url (const char *text);

/*  Checks a store URL's form: scheme postgresql:// or postgres://, an
    optional user without a password, hosts (host, [v6], host:port,
    comma-separated for failover) with ports 1..65535, an optional database,
    parameters as key=value without password. 0, or -1 with what is wrong
    in why. */
int
    herald_store_url_check (const char *text, char *why, size_t size);

#endif
