/* deadletters.h — what kept failing, listed and replayed. Blocking: workers. */
#ifndef HOSTD_DEADLETTERS_H
#define HOSTD_DEADLETTERS_H

#include <json-c/json.h>
#include <stddef.h>

#include "store.h"

/* Dead letters, newest first, at most `limit`; provider may be NULL (any);
 * include_replayed adds those already replayed. *out is a new JSON array the
 * caller puts. */
int deadletters_list(store *st, const char *provider, int include_replayed, int limit,
                     json_object **out, char *err, size_t err_len);

/* Replay one dead letter (id) or, with id NULL, every one not yet replayed:
 * a webhook delivery goes back to pending, a job back to queued, each with
 * its attempts reset, in one transaction. *replayed counts them. An unknown
 * or already replayed id is INGEST_ENOTFOUND. */
int deadletters_replay(store *st, const char *id, long long *replayed, char *err, size_t err_len);

#endif
