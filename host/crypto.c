/* crypto.c — OpenSSL EVP AES-256-GCM; keys live only in memory, wiped on free. */
#include "crypto.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_KEYS 16

typedef struct key_entry {
    unsigned char key[CRYPTO_KEY_LEN];
    char id[CRYPTO_KEY_ID_LEN + 1];
} key_entry;

struct crypto_keyring {
    key_entry keys[MAX_KEYS];
    size_t n;
    size_t primary;
};

crypto_keyring *crypto_keyring_new(void) { return calloc(1, sizeof(crypto_keyring)); }

void crypto_keyring_free(crypto_keyring *kr)
{
    if (!kr)
        return;
    OPENSSL_cleanse(kr, sizeof *kr);
    free(kr);
}

int crypto_key_decode(const char *b64, unsigned char key[CRYPTO_KEY_LEN], char *err, size_t err_len)
{
    /* Trim surrounding blanks (a key file usually ends with a newline). */
    while (*b64 == ' ' || *b64 == '\t' || *b64 == '\n' || *b64 == '\r')
        b64++;
    size_t len = strlen(b64);
    while (len && (b64[len - 1] == ' ' || b64[len - 1] == '\n' || b64[len - 1] == '\r' ||
                   b64[len - 1] == '\t'))
        len--;
    if (len != 44 || b64[43] != '=' || b64[42] == '=') {
        snprintf(err, err_len,
                 "the key must be base64 of exactly 32 bytes (44 characters ending in one '='), "
                 "e.g. from `openssl rand -base64 32`");
        return -1;
    }
    unsigned char buf[36];
    int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, 44);
    if (n != 33) { /* 33 = 32 bytes + 1 padding byte EVP counts */
        OPENSSL_cleanse(buf, sizeof buf);
        snprintf(err, err_len, "the key is not valid base64");
        return -1;
    }
    memcpy(key, buf, CRYPTO_KEY_LEN);
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

static void key_id(const unsigned char key[CRYPTO_KEY_LEN], char out[CRYPTO_KEY_ID_LEN + 1])
{
    /* Domain-separated so the id reveals nothing usable about the key. */
    unsigned char input[CRYPTO_KEY_LEN + 16];
    memcpy(input, "ingest-key-id-v1", 16);
    memcpy(input + 16, key, CRYPTO_KEY_LEN);
    char hex[65];
    util_sha256_hex(input, sizeof input, hex);
    OPENSSL_cleanse(input, sizeof input);
    memcpy(out, hex, CRYPTO_KEY_ID_LEN);
    out[CRYPTO_KEY_ID_LEN] = '\0';
}

int crypto_keyring_add(crypto_keyring *kr, const unsigned char key[CRYPTO_KEY_LEN], int primary)
{
    char id[CRYPTO_KEY_ID_LEN + 1];
    key_id(key, id);
    for (size_t i = 0; i < kr->n; i++) {
        if (strcmp(kr->keys[i].id, id) == 0) {
            if (primary)
                kr->primary = i;
            return 0;
        }
    }
    if (kr->n == MAX_KEYS)
        return -1;
    memcpy(kr->keys[kr->n].key, key, CRYPTO_KEY_LEN);
    memcpy(kr->keys[kr->n].id, id, sizeof id);
    if (primary)
        kr->primary = kr->n;
    kr->n++;
    return 0;
}

static int read_key_file(const char *path, char *out, size_t out_len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_len, "cannot read crypto_key_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, out_len - 1, f);
    out[n] = '\0';
    fclose(f);
    return 0;
}

static int add_b64(crypto_keyring *kr, const char *b64, int primary, const char *what, char *err,
                   size_t err_len)
{
    unsigned char key[CRYPTO_KEY_LEN];
    char why[256];
    if (crypto_key_decode(b64, key, why, sizeof why) < 0) {
        snprintf(err, err_len, "%s: %s", what, why);
        return -1;
    }
    int rc = crypto_keyring_add(kr, key, primary);
    OPENSSL_cleanse(key, sizeof key);
    if (rc < 0)
        snprintf(err, err_len, "%s: too many keys (at most %d)", what, MAX_KEYS);
    return rc;
}

crypto_keyring *crypto_keyring_load(const char *key_b64, const char *key_file,
                                    const char *previous_b64, char *err, size_t err_len)
{
    char file_text[256];
    const char *primary = key_b64 && *key_b64 ? key_b64 : NULL;
    const char *what = "crypto_key (INGEST_CRYPTO_KEY)";
    if (!primary && key_file && *key_file) {
        if (read_key_file(key_file, file_text, sizeof file_text, err, err_len) < 0)
            return NULL;
        primary = file_text;
        what = "crypto_key_file";
    }
    if (!primary) {
        snprintf(err, err_len,
                 "no encryption key: set INGEST_CRYPTO_KEY (base64 of 32 bytes, e.g. `openssl "
                 "rand -base64 32`) or crypto_key_file");
        return NULL;
    }
    crypto_keyring *kr = crypto_keyring_new();
    int rc = kr ? add_b64(kr, primary, 1, what, err, err_len) : -1;
    OPENSSL_cleanse(file_text, sizeof file_text);
    size_t count = 0;
    char **prev =
        rc == 0 && previous_b64 && *previous_b64 ? util_split(previous_b64, ',', &count) : NULL;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = add_b64(kr, prev[i], 0, "crypto_previous_keys", err, err_len);
    for (size_t i = 0; i < count; i++)
        OPENSSL_cleanse(prev[i], strlen(prev[i]));
    util_strv_free(prev);
    if (rc < 0) {
        crypto_keyring_free(kr);
        return NULL;
    }
    return kr;
}

const char *crypto_primary_id(const crypto_keyring *kr) { return kr->keys[kr->primary].id; }
size_t crypto_key_count(const crypto_keyring *kr) { return kr->n; }

/* AAD = "ingest-secret-v1\0<connection_id>\0<field>": a value moved to another
 * row or field no longer authenticates. */
static int set_aad(EVP_CIPHER_CTX *ctx, const char *connection_id, const char *field)
{
    int out_len;
    static const char tag[] = "ingest-secret-v1";
    return EVP_CipherUpdate(ctx, NULL, &out_len, (const unsigned char *)tag, sizeof tag) == 1 &&
           EVP_CipherUpdate(ctx, NULL, &out_len, (const unsigned char *)connection_id,
                            (int)strlen(connection_id) + 1) == 1 &&
           EVP_CipherUpdate(ctx, NULL, &out_len, (const unsigned char *)field,
                            (int)strlen(field) + 1) == 1;
}

int crypto_seal(const crypto_keyring *kr, const char *connection_id, const char *field,
                const void *plain, size_t len, crypto_sealed *out)
{
    memset(out, 0, sizeof *out);
    if (!kr || kr->n == 0 || !connection_id || !field || len > (size_t)1 << 24)
        return -1;
    const key_entry *k = &kr->keys[kr->primary];
    out->ciphertext = malloc(len + CRYPTO_TAG_LEN);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = out->ciphertext && ctx && RAND_bytes(out->nonce, CRYPTO_NONCE_LEN) == 1 &&
             EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key, out->nonce) == 1 &&
             set_aad(ctx, connection_id, field);
    int n = 0, fin = 0;
    ok = ok && EVP_EncryptUpdate(ctx, out->ciphertext, &n, plain, (int)len) == 1 &&
         EVP_EncryptFinal_ex(ctx, out->ciphertext + n, &fin) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN,
                             out->ciphertext + n + fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        crypto_sealed_clear(out);
        return -1;
    }
    out->ct_len = (size_t)(n + fin) + CRYPTO_TAG_LEN;
    memcpy(out->key_id, k->id, sizeof out->key_id);
    return 0;
}

int crypto_open(const crypto_keyring *kr, const char *connection_id, const char *field,
                const crypto_sealed *in, char **plain, size_t *len)
{
    *plain = NULL;
    *len = 0;
    if (!kr || !in || in->ct_len < CRYPTO_TAG_LEN || !connection_id || !field)
        return -1;
    const key_entry *k = NULL;
    for (size_t i = 0; i < kr->n && !k; i++)
        if (strcmp(kr->keys[i].id, in->key_id) == 0)
            k = &kr->keys[i];
    if (!k)
        return -1;
    size_t body = in->ct_len - CRYPTO_TAG_LEN;
    char *out = malloc(body + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    int ok = out && ctx &&
             EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key, in->nonce) == 1 &&
             set_aad(ctx, connection_id, field) &&
             EVP_DecryptUpdate(ctx, (unsigned char *)out, &n, in->ciphertext, (int)body) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN,
                                 (void *)(in->ciphertext + body)) == 1 &&
             /* Final fails when the tag does not authenticate: nothing is returned. */
             EVP_DecryptFinal_ex(ctx, (unsigned char *)out + n, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        if (out)
            crypto_wipe_free(out, body + 1);
        return -1;
    }
    out[n + fin] = '\0';
    *plain = out;
    *len = (size_t)(n + fin);
    return 0;
}

void crypto_sealed_clear(crypto_sealed *s)
{
    free(s->ciphertext);
    memset(s, 0, sizeof *s);
}

void crypto_wipe_free(char *secret, size_t len)
{
    if (!secret)
        return;
    OPENSSL_cleanse(secret, len ? len : strlen(secret));
    free(secret);
}
