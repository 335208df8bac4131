/* reload.h — rescan the plugins directory and re-read the config: load new
 * plugins, replace changed ones beside the old, drain and unload removed ones. */
#ifndef HOSTD_RELOAD_H
#define HOSTD_RELOAD_H

#include <json-c/json.h>

#include "hostd.h"
#include "instance.h"

/* Called on the loop thread with the reload's report; `result` is borrowed. */
typedef void (*reload_done_fn)(json_object *result, void *arg);

int reload_init(hostd *h);
/* First load at start-up, synchronously, before the loop runs. Returns -1 if
 * the config could not be read (the caller exits 2). */
int reload_startup(hostd *h, char *err, size_t err_len);
/* Ask for a reload (SIGHUP, control socket). Loop thread. Requests that
 * arrive while one runs are served together by the next one. done may be NULL. */
void reload_request(hostd *h, reload_done_fn done, void *arg);
/* Forget a waiter whose client went away. */
void reload_cancel_waiter(hostd *h, void *arg);
/* A reload is being prepared or waits to be applied. */
int reload_busy(hostd *h);
/* Wait for a running reload thread (shutdown path). */
void reload_join(hostd *h);
/* Unload every draining instance with no work left. Loop thread. */
void reload_collect_drained(hostd *h, int inline_destroy);
/* Start draining an instance: no new work, timers stopped. Loop thread. */
void reload_begin_drain(hostd *h, instance *inst);
void reload_free(hostd *h);

#endif
