/*  drivers: maps a configured driver kind to its implementation. */
#include "driver.h"

const hd_driver_ops_t *
hd_driver_for (herald_driver_kind_t kind)
{
    switch (kind) {
        case HERALD_DRIVER_FILE: return &hd_file_ops;
        case HERALD_DRIVER_NOOP: return &hd_noop_ops;
        case HERALD_DRIVER_SMTP: return &hd_smtp_ops;
        case HERALD_DRIVER_HTTP: return &hd_http_ops;
    }
    return &hd_noop_ops;
}
