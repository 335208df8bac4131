/* test_jwt.c — RS256 JSON Web Tokens (host/jwt.c): a key generated here with
 * OpenSSL signs, the public half verifies, header and payload decode back to
 * what went in, and bad keys or claims are refused without a token. */
#include "unit_helpers.h"

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "crypto.h"
#include "ingest/plugin.h"
#include "jwt.h"

static const char CLAIMS[] = "{\"iat\":1700000000,\"exp\":1700000600,\"iss\":\"12345\"}";

typedef struct fixture {
    EVP_PKEY *key;
    char *pem; /* PKCS#8 PEM of key */
    size_t pem_len;
} fixture;

static char *pem_of(EVP_PKEY *key, int traditional, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    int ok = traditional ? PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    assert_int_equal(ok, 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    memcpy(out, data, (size_t)n);
    BIO_free(bio);
    *len = (size_t)n;
    return out;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->key = EVP_RSA_gen(2048);
    assert_non_null(f->key);
    f->pem = pem_of(f->key, 0, &f->pem_len);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    EVP_PKEY_free(f->key);
    free(f->pem);
    free(f);
    return 0;
}

/* base64url (no padding) -> bytes, with OpenSSL's decoder. */
static unsigned char *b64url_decode(const char *text, size_t n, size_t *out_len)
{
    size_t padded = (n + 3) / 4 * 4;
    char *std = calloc(1, padded + 1);
    unsigned char *out = calloc(1, padded / 4 * 3 + 1);
    assert_true(std && out);
    for (size_t i = 0; i < n; i++) {
        assert_true(text[i] != '+' && text[i] != '/' && text[i] != '=');
        std[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
    }
    for (size_t i = n; i < padded; i++)
        std[i] = '=';
    int w = EVP_DecodeBlock(out, (unsigned char *)std, (int)padded);
    assert_true(w >= 0);
    *out_len = (size_t)w - (padded - n); /* DecodeBlock counts the padding as zero bytes */
    free(std);
    return out;
}

typedef struct parts {
    const char *seg[3];
    size_t len[3];
} parts;

static void split(const char *jwt, parts *p)
{
    const char *a = strchr(jwt, '.');
    assert_non_null(a);
    const char *b = strchr(a + 1, '.');
    assert_non_null(b);
    assert_null(strchr(b + 1, '.'));
    *p = (parts){{jwt, a + 1, b + 1}, {(size_t)(a - jwt), (size_t)(b - a - 1), strlen(b + 1)}};
}

static char *decode_text(const parts *p, int i)
{
    size_t n = 0;
    unsigned char *raw = b64url_decode(p->seg[i], p->len[i], &n);
    raw[n] = '\0';
    return (char *)raw;
}

static int verifies(EVP_PKEY *key, const char *jwt)
{
    parts p;
    split(jwt, &p);
    size_t sig_len = 0;
    unsigned char *sig = b64url_decode(p.seg[2], p.len[2], &sig_len);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)jwt,
                              p.len[0] + 1 + p.len[1]) == 1;
    EVP_MD_CTX_free(md);
    free(sig);
    return ok;
}

static void test_signs_and_verifies(void **state)
{
    fixture *f = *state;
    char *jwt = NULL, err[256] = "";
    assert_int_equal(jwt_sign_rs256(f->pem, f->pem_len, CLAIMS, &jwt, err, sizeof err), INGEST_OK);
    assert_non_null(jwt);
    assert_null(strchr(jwt, '='));
    assert_true(verifies(f->key, jwt));

    parts p;
    split(jwt, &p);
    char *header = decode_text(&p, 0), *payload = decode_text(&p, 1);
    json_object *h = json_tokener_parse(header), *v = NULL;
    assert_non_null(h);
    assert_true(json_object_object_get_ex(h, "alg", &v));
    assert_string_equal(json_object_get_string(v), "RS256");
    assert_true(json_object_object_get_ex(h, "typ", &v));
    assert_string_equal(json_object_get_string(v), "JWT");
    assert_int_equal(json_object_object_length(h), 2);
    assert_string_equal(payload, CLAIMS); /* the payload is the claims as given */
    json_object_put(h);
    free(header);
    free(payload);

    /* Someone else's key does not verify it; a changed payload does not verify. */
    EVP_PKEY *other = EVP_RSA_gen(2048);
    assert_false(verifies(other, jwt));
    EVP_PKEY_free(other);
    jwt[p.len[0] + 2] ^= 1;
    assert_false(verifies(f->key, jwt));
    crypto_wipe_free(jwt, 0);
}

static void test_pkcs1_key_and_unicode_claims(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    char *pkcs1 = pem_of(f->key, 1, &len);
    assert_contains(pkcs1, "BEGIN RSA PRIVATE KEY");
    /* Bytes that become '+' and '/' in standard base64 must come out as '-' and '_'. */
    const char *claims = "{\"iss\":\"\xc3\xbf\xc3\xbe?>?>\",\"n\":[1,2,{\"x\":null}]}";
    char *jwt = NULL, err[256] = "";
    assert_int_equal(jwt_sign_rs256(pkcs1, len, claims, &jwt, err, sizeof err), INGEST_OK);
    assert_true(verifies(f->key, jwt));
    parts p;
    split(jwt, &p);
    char *payload = decode_text(&p, 1);
    assert_string_equal(payload, claims);
    free(payload);
    crypto_wipe_free(jwt, 0);
    crypto_wipe_free(pkcs1, len);
}

static void expect_einval(const char *pem, size_t len, const char *claims, const char *why)
{
    char *jwt = (char *)"unchanged", err[256] = "";
    assert_int_equal(jwt_sign_rs256(pem, len, claims, &jwt, err, sizeof err), INGEST_EINVAL);
    assert_null(jwt);
    assert_contains(err, why);
}

static void test_bad_keys(void **state)
{
    fixture *f = *state;
    static const char garbage[] = "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n"
                                  "-----END PRIVATE KEY-----\n";
    expect_einval(garbage, sizeof garbage - 1, CLAIMS, "not an unencrypted PEM private key");
    expect_einval("", 0, CLAIMS, "empty");
    expect_einval(NULL, 0, CLAIMS, "empty");
    /* Truncated PEM. */
    expect_einval(f->pem, f->pem_len / 2, CLAIMS, "not an unencrypted PEM private key");

    /* A public key, an EC key and a small RSA key are not what RS256 needs. */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, f->key), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    expect_einval(data, (size_t)n, CLAIMS, "not an unencrypted PEM private key");
    BIO_free(bio);

    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    size_t len = 0;
    char *pem = pem_of(ec, 0, &len);
    expect_einval(pem, len, CLAIMS, "not an RSA private key");
    free(pem);
    EVP_PKEY_free(ec);

    EVP_PKEY *small = EVP_RSA_gen(1024);
    pem = pem_of(small, 0, &len);
    expect_einval(pem, len, CLAIMS, "at least 2048 bits");
    free(pem);
    EVP_PKEY_free(small);
}

/* An encrypted key fails instead of asking for a passphrase. */
static void test_encrypted_key_refused(void **state)
{
    fixture *f = *state;
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, f->key, EVP_aes_256_cbc(), NULL, 0, NULL,
                                                   (void *)"passphrase"),
                     1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    assert_non_null(strstr(data, "ENCRYPTED"));
    expect_einval(data, (size_t)n, CLAIMS, "not an unencrypted PEM private key");
    BIO_free(bio);
}

static void test_bad_claims(void **state)
{
    fixture *f = *state;
    const char *bad[] = {"",         "[]",      "42",         "\"text\"",
                         "{\"a\":1", "{'a':1}", "{\"a\":1,}", "{\"a\":1} trailing"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_einval(f->pem, f->pem_len, bad[i], "not a JSON object");
    expect_einval(f->pem, f->pem_len, NULL, "not a JSON object");
    size_t big = 65 * 1024;
    char *huge = malloc(big + 16);
    assert_non_null(huge);
    memset(huge, ' ', big + 16);
    memcpy(huge, "{\"a\":1}", 7);
    huge[big + 15] = '\0';
    expect_einval(f->pem, f->pem_len, huge, "at most");
    free(huge);
}

/* The reason never quotes the key. */
static void test_errors_name_no_key_bytes(void **state)
{
    fixture *f = *state;
    char *jwt = NULL, err[256] = "";
    char *broken = strdup(f->pem);
    broken[40] = '!';
    assert_int_equal(jwt_sign_rs256(broken, f->pem_len, CLAIMS, &jwt, err, sizeof err),
                     INGEST_EINVAL);
    char line[32];
    snprintf(line, sizeof line, "%.20s", f->pem + 30);
    assert_not_contains(err, line);
    assert_not_contains(err, "MII");
    free(broken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signs_and_verifies),
        cmocka_unit_test(test_pkcs1_key_and_unicode_claims),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_encrypted_key_refused),
        cmocka_unit_test(test_bad_claims),
        cmocka_unit_test(test_errors_name_no_key_bytes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
