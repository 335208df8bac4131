/* rest_cursor.h — opaque, tamper-evident tokens for the REST API: list
 * cursors and OAuth state. Both are sealed with the daemon's keyring
 * (AES-256-GCM: authenticated, so a changed byte is refused, and encrypted,
 * so a client learns nothing from them), bound to a purpose and scope by the
 * AAD, and carry the key id so a key rotation does not break them. */
#ifndef HOSTD_REST_CURSOR_H
#define HOSTD_REST_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* base64url without padding; malloc'd, NULL on OOM. */
char *rest_b64url_encode(const unsigned char *data, size_t len);
/* Decode base64url (padding optional); malloc'd with a NUL after *len
 * bytes; NULL when malformed. */
unsigned char *rest_b64url_decode(const char *text, size_t *len);

/* Seal `plain` for (purpose, scope) into base64url text; malloc'd or NULL. */
char *rest_seal(const crypto_keyring *kr, const char *purpose, const char *scope,
                const char *plain);
/* Open a token made by rest_seal with the same purpose and scope; the
 * malloc'd plain text (wipe it if secret) or NULL when forged or foreign. */
char *rest_open(const crypto_keyring *kr, const char *purpose, const char *scope,
                const char *token);

/* A list cursor: the position (time µs, id) of the last item returned. */
char *rest_cursor_encode(const crypto_keyring *kr, const char *scope, int64_t time_us,
                         const char *id);
/* 0 and the position, or -1 when the cursor is not one of ours for scope. */
int rest_cursor_decode(const crypto_keyring *kr, const char *scope, const char *text,
                       int64_t *time_us, char id[37]);

#endif
