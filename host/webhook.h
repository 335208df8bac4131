/* webhook.h — POST /webhooks/{provider}[/{connection_id}]: routing, limits,
 * signature verification, provider handshakes and the hand-off to the durable
 * inbox. The reply (202 stored, 200 duplicate) is sent only once the delivery
 * is committed. */
#ifndef HOSTD_WEBHOOK_H
#define HOSTD_WEBHOOK_H

#include "hostd.h"

struct evhttp_request;

/* Handle a request whose path starts with /webhooks/. Loop thread. */
void webhook_handle(hostd *h, struct evhttp_request *req, const char *path);

#endif
