/*  peers_shapes: the load shapes of herald_bench_peers, each run the same
    way on every system it is given, with the systems taken in turn so
    that they see the shared disk and CPUs at comparable moments:
      pipelined   one producer, a window of publishes outstanding;
      producers   N producer processes, one publish outstanding each;
      latency     one producer, one outstanding, each round trip timed,
                  in blocks taken turn about;
      end_to_end  one producer pipelined, until every event is consumed and
                  acknowledged on three channels;
      backlog     Herald alone: the broker's memory with a task backlog.
    Every event is a new order (bench_order_event). */
#ifndef HERALD_PEERS_SHAPES_H
#define HERALD_PEERS_SHAPES_H

#include <signal.h>
#include <stdbool.h>

#include "herald.h"
#include "peers_proc.h"
#include "peers_target.h"

#define PEERS_CPU_MAX       8       /* processes whose CPU a result lists */
#define PEERS_SERVERS_MAX   4       /* server processes of one system */
#define PEERS_CHANNELS      3       /* Herald's channels = Redis consumer groups */

/*  CPU one process (or a group of alike processes) used during a shape. */
typedef struct {
    char name[40];                  /* "redis-server", "herald-broker", "producer", ... */
    double seconds;                 /* user + system CPU seconds */
} peers_cpu_t;

/*  One system's result for one shape (summed over its rounds). */
typedef struct {
    bool measured;
    double rate;                    /* events per second (throughput shapes) */
    double p50_us, p99_us, p999_us; /* latency shape */
    long count;                     /* events ACKed, or samples timed */
    long refused;                   /* NACKs and error replies */
    double wall_s;                  /* time measured, all rounds */
    double catch_up_s;              /* Herald: its index catching up after its turns, all rounds */
    peers_cpu_t cpu[PEERS_CPU_MAX];
    int cpu_count;
} peers_result_t;

/*  One system under test, as the shapes see it. */
typedef struct {
    peers_system_t system;
    char endpoint[64];              /* tcp://127.0.0.1:PORT */
    char stream[40];                /* Redis: the stream key the producers XADD to */
    peers_proc_t *servers[PEERS_SERVERS_MAX];   /* whose CPU is counted */
    int server_count;
    herald_client_t *admin;         /* Herald: its admin endpoint (end to end) */
    peers_target_t *status;         /* the floor's end-to-end server: for its STATUS */
} peers_side_t;

/*  What every shape needs from the run. */
typedef struct {
    const char *bin_dir;            /* herald_bench_load */
    const char *log_dir;            /* load processes' logs */
    const char *now_text;           /* RFC 3339 time put in every event */
    unsigned long long next_order;  /* last order_id used */
    volatile sig_atomic_t *interrupted;
} peers_env_t;

/*  Each shape fills out[i] for sides[i]; 0, or -1 with a message on stderr. */
int
    peers_shape_pipelined (peers_env_t *env, peers_side_t **sides, int n, int rounds,
                           double seconds, long window, peers_result_t *out);
int
    peers_shape_producers (peers_env_t *env, peers_side_t **sides, int n, int rounds,
                           double seconds, int producers, peers_result_t *out);
int
    peers_shape_latency (peers_env_t *env, peers_side_t **sides, int n, double seconds,
                         peers_result_t *out);
/*  sides: Redis (three consumer groups, one consumer process each), the
    floor (herald_floor_e2e with one worker per channel, connected) and
    Herald (one noop worker per channel, connected), in any order. */
int
    peers_shape_end_to_end (peers_env_t *env, peers_side_t **sides, int n, int rounds,
                            long events, long window, peers_result_t *out);

/*  Herald's broker memory after events are ACKed with no worker connected. */
typedef struct {
    long events;                    /* ACKed */
    long tasks;                     /* events x channels */
    long rss_kib, hwm_kib;          /* VmRSS, VmHWM after the last ACK */
    double rate;                    /* ACKed/s while filling */
} peers_backlog_t;

int
    peers_backlog (peers_env_t *env, peers_side_t *herald, peers_proc_t *broker, long events,
                   long window, peers_backlog_t *out);

#endif
