/* admin.h — operator actions that touch the store, shared by the control
 * socket (and later the REST API). Each runs on a worker: it may block. */
#ifndef HOSTD_ADMIN_H
#define HOSTD_ADMIN_H

#include <json-c/json.h>
#include <stddef.h>

#include "hostd.h"

/* An admin action: reads `req` (borrowed), returns a new result object, or
 * NULL with a message in err. */
typedef json_object *(*admin_fn)(hostd *h, json_object *req, char *err, size_t err_len);

/* {"tenant_id", "provider", "auth_kind"?, "name"?, "config"?: {}, "secrets"?: {field: value}}
 * -> {"id"}. Secrets are encrypted before they are stored. */
json_object *admin_connection_add(hostd *h, json_object *req, char *err, size_t err_len);

/* {} -> {"key_id", "rotated", "failed"}: re-encrypt every secret under the
 * primary key. */
json_object *admin_rotate_key(hostd *h, json_object *req, char *err, size_t err_len);

/* {"provider"?, "include_replayed"?: bool, "limit"?: 1..10000} -> {"dead_letters": [...]} */
json_object *admin_deadletters(hostd *h, json_object *req, char *err, size_t err_len);

/* {"id"?: uuid} -> {"replayed": n}: one dead letter, or all waiting ones
 * without an id. */
json_object *admin_replay(hostd *h, json_object *req, char *err, size_t err_len);

/* {"tenant_id"?, "provider"?, "status"?, "limit"?} -> {"connections": [...]}
 * (no secrets: see connections_list). */
json_object *admin_connections(hostd *h, json_object *req, char *err, size_t err_len);

#endif
