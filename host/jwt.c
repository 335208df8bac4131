/* jwt.c — RS256 signing with OpenSSL's EVP interface; claims checked with
 * json-c. The key is parsed from the caller's buffer in place (a read-only
 * memory BIO) and freed with the EVP_PKEY, so this file keeps no copy of it. */
#include "jwt.h"

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"

#define JWT_HEADER "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define MAX_CLAIMS_BYTES (64u * 1024u) /* an app assertion is a few hundred bytes */
#define MAX_PEM_BYTES (64u * 1024u)
#define MIN_RSA_BITS 2048 /* what GitHub and RFC 7518 §3.3 require */

static size_t b64url_len(size_t n) { return 4 * ((n + 2) / 3); }

/* base64url without padding (RFC 7515 §2) at out, which has room for
 * b64url_len(n) + 1 bytes; returns the characters written. */
static size_t b64url(char *out, const unsigned char *in, size_t n)
{
    int w = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (w > 0 && out[w - 1] == '=')
        w--;
    for (int i = 0; i < w; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[w] = '\0';
    return (size_t)w;
}

/* json-c's strict mode still takes 'single-quoted' member names, which a
 * verifier's parser would not: refuse a quote outside any string. */
static int has_single_quoted_name(const char *text)
{
    int in_string = 0;
    for (const char *p = text; *p; p++) {
        if (in_string && *p == '\\' && p[1])
            p++;
        else if (*p == '"')
            in_string = !in_string;
        else if (!in_string && *p == '\'')
            return 1;
    }
    return 0;
}

/* Strict JSON (what a verifier's parser accepts), and an object. */
static int claims_ok(const char *claims)
{
    size_t len = claims ? strlen(claims) : 0;
    if (len == 0 || len > MAX_CLAIMS_BYTES || has_single_quoted_name(claims))
        return 0;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return 0;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, claims, (int)len);
    int ok = json_tokener_get_error(tok) == json_tokener_success &&
             json_object_is_type(o, json_type_object);
    /* json-c stops after the value; only whitespace may follow it. */
    for (size_t i = ok ? json_tokener_get_parse_end(tok) : len; i < len; i++)
        ok = ok && strchr(" \t\r\n", claims[i]) != NULL;
    json_object_put(o);
    json_tokener_free(tok);
    return ok;
}

/* An encrypted key must fail rather than prompt on the daemon's terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return -1;
}

static EVP_PKEY *load_key(const char *pem, size_t pem_len, char *err, size_t err_len)
{
    if (!pem || pem_len == 0 || pem_len > MAX_PEM_BYTES) {
        snprintf(err, err_len, "the key is empty or larger than %u bytes", MAX_PEM_BYTES);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error(); /* OpenSSL's queue names no key bytes, but it is ours to empty */
    if (!key) {
        snprintf(err, err_len, "the key is not an unencrypted PEM private key");
        return NULL;
    }
    if (!EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_get_bits(key) < MIN_RSA_BITS) {
        snprintf(err, err_len, "the key is not an RSA private key of at least %d bits",
                 MIN_RSA_BITS);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* *sig (malloc'd) = RSASSA-PKCS1-v1_5 SHA-256 signature of data. */
static int sign(EVP_PKEY *key, const char *data, size_t len, unsigned char **sig, size_t *sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSign(md, NULL, sig_len, (const unsigned char *)data, len) == 1 &&
             (*sig = malloc(*sig_len)) != NULL &&
             EVP_DigestSign(md, *sig, sig_len, (const unsigned char *)data, len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    if (!ok) {
        free(*sig);
        *sig = NULL;
    }
    return ok ? 0 : -1;
}

/* header.claims, with room left for ".signature" of sig_max bytes. */
static char *signing_input(const char *claims, size_t sig_max, size_t *len)
{
    size_t hl = sizeof JWT_HEADER - 1, cl = strlen(claims);
    size_t cap = b64url_len(hl) + 1 + b64url_len(cl) + 1 + b64url_len(sig_max) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = b64url(out, (const unsigned char *)JWT_HEADER, hl);
    out[n++] = '.';
    n += b64url(out + n, (const unsigned char *)claims, cl);
    *len = n;
    return out;
}

int jwt_sign_rs256(const char *pem, size_t pem_len, const char *claims_json, char **jwt, char *err,
                   size_t err_len)
{
    *jwt = NULL;
    if (!claims_ok(claims_json)) {
        snprintf(err, err_len, "the claims are not a JSON object of at most %u bytes",
                 MAX_CLAIMS_BYTES);
        return INGEST_EINVAL;
    }
    EVP_PKEY *key = load_key(pem, pem_len, err, err_len);
    if (!key)
        return INGEST_EINVAL;
    size_t len = 0, sig_len = 0;
    unsigned char *sig = NULL;
    char *out = signing_input(claims_json, (size_t)EVP_PKEY_get_size(key), &len);
    int rc = out ? sign(key, out, len, &sig, &sig_len) : -1;
    EVP_PKEY_free(key);
    if (rc < 0) {
        snprintf(err, err_len, out ? "signing failed" : "out of memory");
        free(out);
        return out ? INGEST_EINVAL : INGEST_ENOMEM;
    }
    out[len++] = '.';
    b64url(out + len, sig, sig_len);
    free(sig);
    *jwt = out;
    return INGEST_OK;
}
