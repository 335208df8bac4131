/* crypto.h — connection secrets at rest: AES-256-GCM with a random 96-bit
 * nonce per value, AAD binding each value to its connection and field, and a
 * key id stored beside the ciphertext so keys can rotate. */
#ifndef HOSTD_CRYPTO_H
#define HOSTD_CRYPTO_H

#include <stddef.h>

#define CRYPTO_KEY_LEN 32
#define CRYPTO_NONCE_LEN 12
#define CRYPTO_TAG_LEN 16
#define CRYPTO_KEY_ID_LEN 16 /* hex characters */

typedef struct crypto_keyring crypto_keyring;

/* A sealed value: what the store keeps. ciphertext carries the tag at its end. */
typedef struct crypto_sealed {
    char key_id[CRYPTO_KEY_ID_LEN + 1];
    unsigned char nonce[CRYPTO_NONCE_LEN];
    unsigned char *ciphertext; /* malloc'd, ct_len bytes */
    size_t ct_len;
} crypto_sealed;

crypto_keyring *crypto_keyring_new(void);
void crypto_keyring_free(crypto_keyring *kr);

/* Decode base64 text holding exactly 32 bytes. -1 with a reason in err. */
int crypto_key_decode(const char *b64, unsigned char key[CRYPTO_KEY_LEN], char *err,
                      size_t err_len);

/* Add a key. The primary key encrypts; every key decrypts. The id is derived
 * from the key (not secret: a SHA-256 based fingerprint prefix). */
int crypto_keyring_add(crypto_keyring *kr, const unsigned char key[CRYPTO_KEY_LEN], int primary);

/* Build the keyring from settings: `key_b64` (INGEST_CRYPTO_KEY) or the
 * content of `key_file`, plus comma-separated `previous_b64` keys kept for
 * decryption during a rotation. A missing or malformed key is an error that
 * says what to set. */
crypto_keyring *crypto_keyring_load(const char *key_b64, const char *key_file,
                                    const char *previous_b64, char *err, size_t err_len);

/* The primary key's id. */
const char *crypto_primary_id(const crypto_keyring *kr);
/* Number of keys. */
size_t crypto_key_count(const crypto_keyring *kr);

/* Encrypt `plain` for (connection_id, field) under the primary key.
 * out->ciphertext is malloc'd; release with crypto_sealed_clear. */
int crypto_seal(const crypto_keyring *kr, const char *connection_id, const char *field,
                const void *plain, size_t len, crypto_sealed *out);

/* Decrypt and authenticate. Fails (-1) on an unknown key id, a wrong
 * connection or field, or any tampering with nonce, ciphertext or tag.
 * *plain is malloc'd and NUL-terminated (length in *len); the caller wipes
 * and frees it with crypto_wipe_free. */
int crypto_open(const crypto_keyring *kr, const char *connection_id, const char *field,
                const crypto_sealed *in, char **plain, size_t *len);

void crypto_sealed_clear(crypto_sealed *s);
/* Zero then free a secret buffer of `len` bytes (strlen when len is 0). */
void crypto_wipe_free(char *secret, size_t len);

#endif
