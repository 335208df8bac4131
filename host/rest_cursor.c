/* rest_cursor.c — a sealed token is base64url(key id | nonce | ciphertext
 * with tag). crypto_seal's AAD binds it to "rest:<purpose>" and the scope, so
 * a cursor of one list (or tenant) is refused by another. */
#include "rest_cursor.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_TOKEN_TEXT 8192 /* longer tokens are refused before decoding */

char *rest_b64url_encode(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

unsigned char *rest_b64url_decode(const char *text, size_t *len)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '=')
        n--;
    if (n == 0 || n > MAX_TOKEN_TEXT || n % 4 == 1)
        return NULL;
    size_t pad = (4 - n % 4) % 4;
    char *std = malloc(n + pad + 1);
    unsigned char *out = malloc(3 * ((n + pad) / 4) + 1);
    if (!std || !out) {
        free(std);
        free(out);
        return NULL;
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        ok &= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
        std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    memset(std + n, '=', pad);
    std[n + pad] = '\0';
    int m = ok ? EVP_DecodeBlock(out, (const unsigned char *)std, (int)(n + pad)) : -1;
    free(std);
    if (m < 0 || (size_t)m < pad) {
        free(out);
        return NULL;
    }
    *len = (size_t)m - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    out[*len] = '\0';
    return out;
}

static char *aad_label(const char *purpose)
{
    char *label = NULL;
    return asprintf(&label, "rest:%s", purpose) < 0 ? NULL : label;
}

char *rest_seal(const crypto_keyring *kr, const char *purpose, const char *scope, const char *plain)
{
    char *label = aad_label(purpose);
    crypto_sealed s;
    if (!label || crypto_seal(kr, label, scope, plain, strlen(plain), &s) < 0) {
        free(label);
        return NULL;
    }
    free(label);
    size_t len = CRYPTO_KEY_ID_LEN + CRYPTO_NONCE_LEN + s.ct_len;
    unsigned char *raw = malloc(len);
    char *out = NULL;
    if (raw) {
        memcpy(raw, s.key_id, CRYPTO_KEY_ID_LEN);
        memcpy(raw + CRYPTO_KEY_ID_LEN, s.nonce, CRYPTO_NONCE_LEN);
        memcpy(raw + CRYPTO_KEY_ID_LEN + CRYPTO_NONCE_LEN, s.ciphertext, s.ct_len);
        out = rest_b64url_encode(raw, len);
        free(raw);
    }
    crypto_sealed_clear(&s);
    return out;
}

char *rest_open(const crypto_keyring *kr, const char *purpose, const char *scope, const char *token)
{
    size_t len = 0;
    unsigned char *raw = token ? rest_b64url_decode(token, &len) : NULL;
    if (!raw || len < CRYPTO_KEY_ID_LEN + CRYPTO_NONCE_LEN + CRYPTO_TAG_LEN) {
        free(raw);
        return NULL;
    }
    crypto_sealed s = {.ciphertext = raw + CRYPTO_KEY_ID_LEN + CRYPTO_NONCE_LEN,
                       .ct_len = len - CRYPTO_KEY_ID_LEN - CRYPTO_NONCE_LEN};
    memcpy(s.key_id, raw, CRYPTO_KEY_ID_LEN);
    s.key_id[CRYPTO_KEY_ID_LEN] = '\0';
    memcpy(s.nonce, raw + CRYPTO_KEY_ID_LEN, CRYPTO_NONCE_LEN);
    char *label = aad_label(purpose), *plain = NULL;
    size_t plain_len = 0;
    if (!label || crypto_open(kr, label, scope, &s, &plain, &plain_len) < 0)
        plain = NULL;
    free(label);
    free(raw);
    return plain;
}

char *rest_cursor_encode(const crypto_keyring *kr, const char *scope, int64_t time_us,
                         const char *id)
{
    char plain[80];
    snprintf(plain, sizeof plain, "%" PRId64 "|%s", time_us, id);
    return rest_seal(kr, "cursor", scope, plain);
}

int rest_cursor_decode(const crypto_keyring *kr, const char *scope, const char *text,
                       int64_t *time_us, char id[37])
{
    char *plain = rest_open(kr, "cursor", scope, text);
    if (!plain)
        return -1;
    char *bar = strchr(plain, '|');
    char *end = NULL;
    int ok = bar != NULL;
    if (ok) {
        *bar = '\0';
        *time_us = strtoll(plain, &end, 10);
        ok = end != plain && *end == '\0' && util_is_uuid(bar + 1);
    }
    if (ok)
        snprintf(id, 37, "%s", bar + 1);
    free(plain);
    return ok ? 0 : -1;
}
