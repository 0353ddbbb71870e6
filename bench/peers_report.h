/*  peers_report: herald_bench_peers's results as one table (with the ratios
    and the targets beside them, and the CPU each process used) and
    as JSON for machines. */
#ifndef HERALD_PEERS_REPORT_H
#define HERALD_PEERS_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "peers_shapes.h"

typedef struct {
    /*  Results by system (PEERS_REDIS, PEERS_FLOOR, PEERS_HERALD). */
    peers_result_t pipelined[PEERS_SYSTEMS];
    peers_result_t producers[PEERS_SYSTEMS];
    peers_result_t latency[PEERS_SYSTEMS];
    peers_result_t end_to_end[PEERS_SYSTEMS];
    /*  Shape 4 again, the floor and Herald only, Herald's workers at the
        floor's credit: like for like (not measured when the credits are
        already equal). */
    peers_result_t end_to_end_equal[PEERS_SYSTEMS];
    peers_backlog_t backlog;                    /* Herald alone */
    bool backlog_measured;
    /*  How the run was made. */
    bool quick;
    double seconds;                 /* per system per shape (1 to 3) */
    int rounds;                     /* turns per system in shapes 1 and 2 */
    int rounds_end_to_end;          /* turns per system in shape 4 */
    long window;                    /* outstanding in shapes 1 and 4 */
    int producer_count;             /* processes in shape 2 */
    long events;                    /* per end-to-end run */
    long queue_window;              /* Herald's broker.queue_window in the run */
    long herald_credit;             /* Herald's workers' credit in 4: capacity + prefetch */
    int floor_credit;               /* the floor's workers' credit in 4 */
    int event_bytes;                /* size of one event */
    char disk[300];                 /* where the stores live */
    char redis_version[32];
} peers_report_t;

/*  Prints the table of results. */
void
    peers_report_print (const peers_report_t *self, FILE *out);

/*  Writes the results as JSON to path. 0, or -1 with a message. */
int
    peers_report_json (const peers_report_t *self, const char *path);

#endif
