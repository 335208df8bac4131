/* sync_scheduler.h — turns connection streams into sync jobs on a schedule.
 *
 * Every active connection of a loaded plugin that has a sync callback gets
 * an incremental job per stream of the plugin, on the stream's schedule:
 *   1. the connection's config, {"schedule": {"<stream>" | "*": S}} with S
 *      one of {"interval_s": N}, {"cron": "m h dom mon dow"} (UTC) or
 *      {"enabled": false} (never scheduled; manual runs still work);
 *   2. else the plugin's ingest_stream.default_interval_s;
 *   3. else the host's sync_interval_s.
 * Interval runs are jittered by ±sync_jitter_pct. The next run derives from
 * the stream's newest job in the database (created_at + interval, or the
 * first cron time after it), so a restart neither fires everything at once
 * nor skips a run; a stream that never ran is due at once. A stream with a
 * live job (queued, retrying or running) gets no second one, and several
 * daemons may schedule the same database: the enqueue is idempotent. */
#ifndef HOSTD_SYNC_SCHEDULER_H
#define HOSTD_SYNC_SCHEDULER_H

#include <json-c/json.h>
#include <stddef.h>

#include "hostd.h"

/* Start the timer (loop thread; every schedule_poll_ms). */
int sync_scheduler_start(hostd *h);
/* Stop the timer (loop thread); a tick already running finishes. */
void sync_scheduler_stop(hostd *h);
/* Free; workers must be stopped. */
void sync_scheduler_free(hostd *h);

/* Ask for an immediate incremental run of one stream (or every stream of
 * the connection's plugin when stream is NULL), e.g. because a webhook said
 * data changed. Any thread, never blocks: the work runs on a worker. Strings
 * are copied. -1 if the request could not be queued. */
int sync_scheduler_request(hostd *h, const char *connection_id, const char *stream);

/* Control command `sync`: {"connection_id", "full"?: bool, "stream"?: name}
 * -> {"jobs": [{"id", "stream", "kind", "created"}]}. Blocks: workers. */
json_object *sync_scheduler_admin_sync(hostd *h, json_object *req, char *err, size_t err_len);

/* Control command `jobs`: {"state"?, "provider"?, "connection_id"?,
 * "limit"?} -> {"jobs": [...]}. Blocks: workers. */
json_object *sync_scheduler_admin_jobs(hostd *h, json_object *req, char *err, size_t err_len);

#endif
