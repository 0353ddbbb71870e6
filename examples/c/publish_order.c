/*  Publishes one order to Herald with libherald and waits for the ACK.
    Build: cc publish_order.c -o publish_order $(pkg-config --cflags --libs herald)
    Run:   ./publish_order [ENDPOINT]     (default tcp://127.0.0.1:5570)
    Exit:  0 stored (ACK), 1 refused (NACK) or no answer. */
#include <herald.h>
#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char **argv)
{
    const char *endpoint = argc > 1? argv[1]: "tcp://127.0.0.1:5570";
    herald_client_t *client = herald_client_new (endpoint);
    if (!client) {
        perror (endpoint);
        return 1;
    }
    char err[256];
    char *event = herald_event_build ("order.confirmed", "shop/checkout",
                                      "{\"order_id\": 1042, \"customer\": {\"email\": \"ada@example.com\"}, \"items\": [{\"sku\": \"A-1\", \"qty\": 1}]}",
                                      err, sizeof err);
    herald_reply_t reply;
    herald_status_t rc = event? herald_publish (client, event, 2000, &reply): HERALD_E_INVALID;
    if (rc == HERALD_OK)
        printf ("stored as %s%s\n", reply.event_id, reply.duplicate? " (duplicate)": "");
    else
        fprintf (stderr, "%s: %s\n", herald_strerror (rc), event? reply.reason: err);
    free (event);
    herald_client_destroy (&client);
    return rc == HERALD_OK? 0: 1;
}
