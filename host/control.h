/* control.h — the Unix control socket that ingest-hostctl talks to.
 * Protocol: one JSON object per line each way. Request {"cmd": "list", ...};
 * reply {"ok": true, "result": ...} or {"ok": false, "error": "..."}. */
#ifndef HOSTD_CONTROL_H
#define HOSTD_CONTROL_H

#include <stddef.h>

#include "hostd.h"

/* Bind `path` with mode 0660, refusing if another daemon answers there. */
control_server *control_start(hostd *h, const char *path, char *err, size_t err_len);
/* Stop accepting; connected clients finish their current request. */
void control_stop_accepting(control_server *cs);
void control_free(control_server *cs);

#endif
