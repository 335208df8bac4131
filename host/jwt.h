/* jwt.h — JSON Web Tokens signed with RS256 (RFC 7515 / 7519), the
 * assertion a plugin trades for an access token of an app connection (a
 * GitHub App's JWT, for example) through api->jwt_sign_rs256. No run and no
 * store here, so the signing is testable on its own. */
#ifndef HOSTD_JWT_H
#define HOSTD_JWT_H

#include <stddef.h>

/* Sign `claims_json` (the text of a JSON object, used as the payload as
 * given) with the PEM RSA private key pem[0..pem_len) (PKCS#1 or PKCS#8, not
 * encrypted, at least 2048 bits). *jwt becomes the malloc'd compact form
 * base64url(header).base64url(claims).base64url(signature), header
 * {"alg":"RS256","typ":"JWT"}; it is a credential: release it with
 * crypto_wipe_free. INGEST_EINVAL when the key is not such a key or the
 * claims are not a JSON object, INGEST_ENOMEM; err gets a reason that never
 * quotes the key. */
int jwt_sign_rs256(const char *pem, size_t pem_len, const char *claims_json, char **jwt, char *err,
                   size_t err_len);

#endif
