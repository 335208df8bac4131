/* secrets.h — connection records and their encrypted secrets in PostgreSQL.
 * Values are sealed with the daemon's keyring before they leave this module
 * and opened only for the plugin that owns the connection. Blocking: workers. */
#ifndef HOSTD_SECRETS_H
#define HOSTD_SECRETS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "store.h"

/* Create a connection and store each string member of `secrets` (field ->
 * value) encrypted, in one transaction. config/metadata may be NULL. id_out
 * receives the new id (37 bytes). */
int secrets_create_connection(store *st, const crypto_keyring *kr, const char *tenant_id,
                              const char *provider, const char *auth_kind, const char *name,
                              json_object *config, json_object *secrets, char *id_out, char *err,
                              size_t err_len);

/* Store (insert or replace) one secret of a connection. */
int secrets_put(store *st, const crypto_keyring *kr, const char *connection_id, const char *field,
                const char *value, char *err, size_t err_len);

/* Store (insert or replace) n secrets of a connection (fields[i] ->
 * values[i]) and set connections.token_expires_at to now + expires_in_s
 * (NULL when expires_in_s < 0), all in one transaction: after a crash
 * either every value is the old one or every value is the new one, so a
 * new access token is never stored without the refresh token rotated with
 * it. INGEST_ENOTFOUND when the connection does not exist. */
int secrets_put_with_expiry(store *st, const crypto_keyring *kr, const char *connection_id,
                            const char *const *fields, const char *const *values, size_t n,
                            long long expires_in_s, char *err, size_t err_len);

/* Store (insert or replace) one secret of a connection that belongs to
 * `provider` (a connection of another provider reads as not found), for a
 * plugin's api->secret_put. In the same transaction token_expires_at is set
 * to expires_at_us (unix µs) when it is > 0, and cleared when "access_token"
 * is stored with 0 (a token of unknown lifetime must not inherit the old
 * one's expiry); other fields stored with 0 leave it as it is.
 * INGEST_ENOTFOUND, INGEST_EIO. */
int secrets_put_owned(store *st, const crypto_keyring *kr, const char *provider,
                      const char *connection_id, const char *field, const char *value,
                      int64_t expires_at_us, char *err, size_t err_len);

/* The auth kind stored for a connection of `provider` (its connections.
 * auth_kind text, into kind[kind_len]) and its token expiry in unix µs
 * (*expires_us = 0 when none is known). INGEST_ENOTFOUND when there is no
 * such connection of that provider, INGEST_EIO. */
int secrets_connection_auth(store *st, const char *provider, const char *connection_id, char *kind,
                            size_t kind_len, int64_t *expires_us, char *err, size_t err_len);

/* Decrypt one secret of a connection that belongs to `provider`. A connection
 * of another provider reads as not found. *value is malloc'd; wipe and free
 * it with crypto_wipe_free. INGEST_ENOTFOUND, INGEST_EAUTH (cannot decrypt:
 * unknown key or tampered), INGEST_EIO. */
int secrets_get(store *st, const crypto_keyring *kr, const char *provider,
                const char *connection_id, const char *field, char **value, char *err,
                size_t err_len);

/* Re-encrypt every secret not under the primary key, in batches, each batch
 * in its own transaction (no downtime: readers keep working with either key).
 * *rotated and *failed count values. */
int secrets_rotate(store *st, const crypto_keyring *kr, long long *rotated, long long *failed,
                   char *err, size_t err_len);

#endif
