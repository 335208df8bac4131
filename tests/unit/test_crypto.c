/* test_crypto.c — connection secrets at rest (AES-256-GCM): round trips, key
 * decoding and loading, key ids, tamper and AAD checks, rotation, and
 * interoperability with plain OpenSSL EVP (the on-disk format is standard
 * AES-256-GCM). */
#include "unit_helpers.h"

#include <ctype.h>
#include <openssl/evp.h>

#include "crypto.h"

/* ---- fixtures ---------------------------------------------------------- */

/* Real `openssl rand -base64 32` output and the bytes it holds. */
static const char OPENSSL_KEY_B64[] = "zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7GgI0=";
static const unsigned char OPENSSL_KEY_BYTES[CRYPTO_KEY_LEN] = {
    0xce, 0x05, 0x0d, 0xb7, 0x1e, 0x74, 0xa1, 0xb1, 0xce, 0x04, 0x5f, 0xfd, 0x7c, 0x92, 0x9a, 0x6a,
    0x9c, 0x44, 0x05, 0x59, 0x2d, 0xb4, 0x61, 0x5d, 0xa1, 0x03, 0x06, 0x3c, 0x4e, 0xc6, 0x80, 0x8d,
};

static const char CONN[] = "6f1c2a4e-9b7d-4c1a-8e2f-0123456789ab";
static const char FIELD[] = "password";

/* Deterministic distinct keys: key[i] = start + i*step. */
static void make_key(unsigned char key[CRYPTO_KEY_LEN], unsigned start, unsigned step)
{
    for (unsigned i = 0; i < CRYPTO_KEY_LEN; i++)
        key[i] = (unsigned char)(start + i * step);
}

static void key_a(unsigned char key[CRYPTO_KEY_LEN]) { make_key(key, 0x00, 1); }
static void key_b(unsigned char key[CRYPTO_KEY_LEN]) { make_key(key, 0x80, 3); }
static void key_c(unsigned char key[CRYPTO_KEY_LEN]) { make_key(key, 0x11, 7); }

/* base64 of a key, 44 characters + NUL. */
static void key_to_b64(const unsigned char key[CRYPTO_KEY_LEN], char out[45])
{
    int n = EVP_EncodeBlock((unsigned char *)out, key, CRYPTO_KEY_LEN);
    assert_int_equal(n, 44);
    out[44] = '\0';
}

/* A keyring holding exactly one key, primary. */
static crypto_keyring *ring_of(void (*make)(unsigned char *))
{
    unsigned char key[CRYPTO_KEY_LEN];
    make(key);
    crypto_keyring *kr = crypto_keyring_new();
    assert_non_null(kr);
    assert_int_equal(crypto_keyring_add(kr, key, 1), 0);
    return kr;
}

/* The id the host derives for a key. */
static void id_of(void (*make)(unsigned char *), char out[CRYPTO_KEY_ID_LEN + 1])
{
    crypto_keyring *kr = ring_of(make);
    snprintf(out, CRYPTO_KEY_ID_LEN + 1, "%s", crypto_primary_id(kr));
    crypto_keyring_free(kr);
}

static void seal_ok(const crypto_keyring *kr, const char *conn, const char *field,
                    const void *plain, size_t len, crypto_sealed *out)
{
    assert_int_equal(crypto_seal(kr, conn, field, plain, len, out), 0);
    assert_non_null(out->ciphertext);
    assert_int_equal(out->ct_len, len + CRYPTO_TAG_LEN);
}

/* Open, asserting success and that the result equals `want`. */
static void open_expect(const crypto_keyring *kr, const char *conn, const char *field,
                        const crypto_sealed *in, const void *want, size_t want_len)
{
    char *plain = NULL;
    size_t len = 12345;
    int rc = crypto_open(kr, conn, field, in, &plain, &len);
    if (rc != 0) {
        print_error("crypto_open(conn=\"%s\", field=\"%s\") failed on a value it should open\n",
                    conn, field);
        fail();
    }
    assert_non_null(plain);
    assert_int_equal(len, want_len);
    if (want_len)
        assert_memory_equal(plain, want, want_len);
    assert_int_equal(plain[len], '\0'); /* documented: NUL-terminated */
    crypto_wipe_free(plain, len + 1);
}

/* Open, asserting -1 and that *plain ends up NULL (a non-NULL sentinel goes in). */
#define assert_open_fails(kr, conn, field, in)                                                     \
    open_fails_at((kr), (conn), (field), (in), #in, __FILE__, __LINE__)

static void open_fails_at(const crypto_keyring *kr, const char *conn, const char *field,
                          const crypto_sealed *in, const char *what, const char *file, int line)
{
    static char sentinel[] = "sentinel";
    char *plain = sentinel;
    size_t len = 777;
    int rc = crypto_open(kr, conn, field, in, &plain, &len);
    if (rc != -1 || plain != NULL) {
        print_error("crypto_open(conn=\"%s\", field=\"%s\", %s) returned %d, plain %s; "
                    "expected -1 and NULL\n",
                    conn, field, what, rc,
                    plain == NULL       ? "NULL"
                    : plain == sentinel ? "left untouched"
                                        : "non-NULL");
        if (plain && plain != sentinel)
            crypto_wipe_free(plain, len + 1);
        _fail(file, line);
    }
}

/* A deep copy of a sealed value, so tests can tamper with it. */
static void sealed_copy(const crypto_sealed *src, crypto_sealed *dst)
{
    *dst = *src;
    dst->ciphertext = malloc(src->ct_len ? src->ct_len : 1);
    assert_non_null(dst->ciphertext);
    memcpy(dst->ciphertext, src->ciphertext, src->ct_len);
}

/* ---- round trips ------------------------------------------------------- */

static void test_round_trip_text(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    const char *secret = "hunter2 — with UTF-8 ✓";
    crypto_sealed s;
    seal_ok(kr, CONN, FIELD, secret, strlen(secret), &s);
    assert_string_equal(s.key_id, crypto_primary_id(kr));
    /* The ciphertext body is not the plaintext. */
    assert_memory_not_equal(s.ciphertext, secret, strlen(secret));
    open_expect(kr, CONN, FIELD, &s, secret, strlen(secret));
    crypto_sealed_clear(&s);
    assert_null(s.ciphertext);
    assert_int_equal(s.ct_len, 0);
    crypto_keyring_free(kr);
}

static void test_round_trip_empty(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    crypto_sealed s;
    seal_ok(kr, CONN, FIELD, "", 0, &s);
    assert_int_equal(s.ct_len, CRYPTO_TAG_LEN); /* tag only */
    open_expect(kr, CONN, FIELD, &s, "", 0);
    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

static void test_round_trip_64k(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    size_t len = 64 * 1024;
    char *big = malloc(len);
    assert_non_null(big);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('!' + (i * 31 + i / 97) % 94);
    crypto_sealed s;
    seal_ok(kr, CONN, FIELD, big, len, &s);
    open_expect(kr, CONN, FIELD, &s, big, len);
    crypto_sealed_clear(&s);
    free(big);
    crypto_keyring_free(kr);
}

static void test_round_trip_binary_with_nuls(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    unsigned char bin[512];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i % 256); /* every byte value, twice, NULs included */
    bin[1] = 0;
    bin[sizeof bin - 1] = 0; /* ends in NUL too */
    crypto_sealed s;
    seal_ok(kr, CONN, FIELD, bin, sizeof bin, &s);
    open_expect(kr, CONN, FIELD, &s, bin, sizeof bin);
    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

/* ---- crypto_key_decode ------------------------------------------------- */

static void test_key_decode_accepts_openssl_output(void **state)
{
    (void)state;
    const char *variants[] = {
        OPENSSL_KEY_B64,
        "zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7GgI0=\n",   /* as a file / echo leaves it */
        "zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7GgI0=\r\n", /* CRLF */
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        unsigned char key[CRYPTO_KEY_LEN];
        memset(key, 0xAA, sizeof key);
        char err[256] = "";
        if (crypto_key_decode(variants[i], key, err, sizeof err) != 0) {
            print_error("rejected variant %zu: %s\n", i, err);
            fail();
        }
        assert_memory_equal(key, OPENSSL_KEY_BYTES, CRYPTO_KEY_LEN);
    }
}

static void test_key_decode_round_trips_any_key(void **state)
{
    (void)state;
    void (*makers[])(unsigned char *) = {key_a, key_b, key_c};
    for (size_t i = 0; i < 3; i++) {
        unsigned char key[CRYPTO_KEY_LEN], back[CRYPTO_KEY_LEN];
        char b64[45], err[256] = "";
        makers[i](key);
        key_to_b64(key, b64);
        assert_int_equal(crypto_key_decode(b64, back, err, sizeof err), 0);
        assert_memory_equal(key, back, CRYPTO_KEY_LEN);
    }
}

static void assert_decode_refused(const char *text, const char *why_fragment)
{
    unsigned char key[CRYPTO_KEY_LEN];
    char err[256] = "";
    int rc = crypto_key_decode(text, key, err, sizeof err);
    if (rc != -1) {
        print_error("crypto_key_decode(\"%s\") returned %d, expected -1\n", text, rc);
        fail();
    }
    assert_true(err[0] != '\0');
    assert_contains(err, why_fragment);
}

static void test_key_decode_rejects_wrong_lengths(void **state)
{
    (void)state;
    const char *length_msg = "exactly 32 bytes";
    /* 24 bytes (32 characters, no padding) */
    assert_decode_refused("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", length_msg);
    /* one character short of a 32-byte key */
    assert_decode_refused("zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7GgI=", length_msg);
    /* 33 bytes (44 characters, no padding) */
    assert_decode_refused("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", length_msg);
    /* 48 bytes */
    assert_decode_refused("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v",
                          length_msg);
    /* a 32-byte key written as hex (`openssl rand -hex 32`) */
    assert_decode_refused("ce050db71e74a1b1ce045ffd7c929a6a9c4405592db4615da103063c4ec6808d",
                          length_msg);
    /* the message says how to make a good key */
    assert_decode_refused("short", "openssl rand -base64 32");
}

static void test_key_decode_rejects_two_padding_chars(void **state)
{
    (void)state;
    /* base64 of 31 bytes: also 44 characters, but ends in "==" */
    assert_decode_refused("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", "exactly 32 bytes");
    /* a 32-byte key with its last data character replaced by '=' */
    assert_decode_refused("zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7GgI==", "exactly 32 bytes");
}

static void test_key_decode_rejects_non_base64(void **state)
{
    (void)state;
    const char *bad[] = {
        "zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7Gg*0=", /* '*' */
        "zgUNtx50obHOBF_9fJKaapxEBVkttGFdoQMGPE7GgI0=", /* url-safe '_' */
        "zgUNtx50obHOBF-9fJKaapxEBVkttGFdoQMGPE7GgI0=", /* url-safe '-' */
        "zgUNtx50obHOBF 9fJKaapxEBVkttGFdoQMGPE7GgI0=", /* inner blank */
        "zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7G\xc3\xa9"
        "0=", /* non-ASCII, 44 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(strlen(bad[i]), 44);
        assert_decode_refused(bad[i], "not valid base64");
    }
}

static void test_key_decode_rejects_empty(void **state)
{
    (void)state;
    assert_decode_refused("", "exactly 32 bytes");
    assert_decode_refused(" \n", "exactly 32 bytes");
}

/* ---- crypto_keyring_load ----------------------------------------------- */

static void test_load_primary_from_b64(void **state)
{
    (void)state;
    unsigned char a[CRYPTO_KEY_LEN];
    char a64[45], err[256] = "", want_id[CRYPTO_KEY_ID_LEN + 1];
    key_a(a);
    key_to_b64(a, a64);
    id_of(key_a, want_id);
    crypto_keyring *kr = crypto_keyring_load(a64, NULL, NULL, err, sizeof err);
    if (!kr) {
        print_error("load refused: %s\n", err);
        fail();
    }
    assert_int_equal(crypto_key_count(kr), 1);
    assert_string_equal(crypto_primary_id(kr), want_id);
    crypto_keyring_free(kr);

    /* An empty previous-keys setting adds nothing. */
    kr = crypto_keyring_load(a64, NULL, "", err, sizeof err);
    assert_non_null(kr);
    assert_int_equal(crypto_key_count(kr), 1);
    crypto_keyring_free(kr);
}

static void test_load_primary_from_key_file(void **state)
{
    (void)state;
    char *dir = unit_make_temp_dir("crypto");
    assert_non_null(dir);
    char *path = unit_path_join(dir, "hostd.key");
    char *path_b = unit_path_join(dir, "other.key");
    assert_non_null(path);
    assert_non_null(path_b);

    unsigned char a[CRYPTO_KEY_LEN], b[CRYPTO_KEY_LEN];
    char a64[45], b64[45], text[64], err[256] = "";
    char id_a[CRYPTO_KEY_ID_LEN + 1], id_b[CRYPTO_KEY_ID_LEN + 1];
    key_a(a);
    key_b(b);
    key_to_b64(a, a64);
    key_to_b64(b, b64);
    id_of(key_a, id_a);
    id_of(key_b, id_b);
    snprintf(text, sizeof text, "%s\n", a64); /* as `openssl rand -base64 32 > file` writes it */
    assert_int_equal(unit_write_file(path, text, 0600), 0);
    assert_int_equal(unit_write_file(path_b, b64, 0600), 0); /* no newline */

    crypto_keyring *kr = crypto_keyring_load(NULL, path, NULL, err, sizeof err);
    if (!kr) {
        print_error("load from key file refused: %s\n", err);
        fail();
    }
    assert_int_equal(crypto_key_count(kr), 1);
    assert_string_equal(crypto_primary_id(kr), id_a);
    crypto_keyring_free(kr);

    /* An empty INGEST_CRYPTO_KEY counts as unset: the file is used. */
    kr = crypto_keyring_load("", path_b, NULL, err, sizeof err);
    assert_non_null(kr);
    assert_string_equal(crypto_primary_id(kr), id_b);
    crypto_keyring_free(kr);

    /* key_b64 wins over the file when both are set. */
    kr = crypto_keyring_load(a64, path_b, NULL, err, sizeof err);
    assert_non_null(kr);
    assert_string_equal(crypto_primary_id(kr), id_a);
    assert_int_equal(crypto_key_count(kr), 1);
    crypto_keyring_free(kr);

    /* A file that is not a key: the error names the setting. */
    assert_int_equal(unit_write_file(path, "not a key\n", 0600), 0);
    err[0] = '\0';
    assert_null(crypto_keyring_load(NULL, path, NULL, err, sizeof err));
    assert_contains(err, "crypto_key_file");

    /* A missing file: the error names the setting and the path. */
    char *missing = unit_path_join(dir, "missing.key");
    err[0] = '\0';
    assert_null(crypto_keyring_load(NULL, missing, NULL, err, sizeof err));
    assert_contains(err, "crypto_key_file");
    assert_contains(err, missing);

    free(missing);
    free(path);
    free(path_b);
    unit_remove_tree(dir);
    free(dir);
}

static void test_load_missing_key_says_what_to_set(void **state)
{
    (void)state;
    char err[256];
    struct {
        const char *b64, *file;
    } cases[] = {{NULL, NULL}, {"", NULL}, {NULL, ""}, {"", ""}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        crypto_keyring *kr =
            crypto_keyring_load(cases[i].b64, cases[i].file, NULL, err, sizeof err);
        if (kr) {
            crypto_keyring_free(kr);
            print_error("case %zu: a keyring was built without any key\n", i);
            fail();
        }
        assert_contains(err, "INGEST_CRYPTO_KEY");
    }
}

static void test_load_malformed_primary_names_setting(void **state)
{
    (void)state;
    char err[256] = "";
    const char *hex = "ce050db71e74a1b1ce045ffd7c929a6a9c4405592db4615da103063c4ec6808d";
    assert_null(crypto_keyring_load(hex, NULL, NULL, err, sizeof err));
    assert_contains(err, "INGEST_CRYPTO_KEY");
    assert_contains(err, "openssl rand -base64 32");
    assert_not_contains(err, hex); /* the bad key is not echoed */
}

static void test_load_previous_keys(void **state)
{
    (void)state;
    unsigned char a[CRYPTO_KEY_LEN], b[CRYPTO_KEY_LEN], c[CRYPTO_KEY_LEN];
    char a64[45], b64[45], c64[45], prev[128], err[256] = "";
    char id_a[CRYPTO_KEY_ID_LEN + 1];
    key_a(a);
    key_b(b);
    key_c(c);
    key_to_b64(a, a64);
    key_to_b64(b, b64);
    key_to_b64(c, c64);
    id_of(key_a, id_a);

    snprintf(prev, sizeof prev, "%s, %s", b64, c64);
    crypto_keyring *kr = crypto_keyring_load(a64, NULL, prev, err, sizeof err);
    if (!kr) {
        print_error("load with previous keys refused: %s\n", err);
        fail();
    }
    assert_int_equal(crypto_key_count(kr), 3);
    assert_string_equal(crypto_primary_id(kr), id_a); /* previous keys never become primary */

    /* Values sealed under each previous key open. */
    crypto_keyring *rb = ring_of(key_b), *rc = ring_of(key_c);
    crypto_sealed sb, sc;
    seal_ok(rb, CONN, FIELD, "from-b", 6, &sb);
    seal_ok(rc, CONN, FIELD, "from-c", 6, &sc);
    open_expect(kr, CONN, FIELD, &sb, "from-b", 6);
    open_expect(kr, CONN, FIELD, &sc, "from-c", 6);
    crypto_sealed_clear(&sb);
    crypto_sealed_clear(&sc);
    crypto_keyring_free(rb);
    crypto_keyring_free(rc);
    crypto_keyring_free(kr);

    /* The primary repeated among the previous keys is not counted twice. */
    snprintf(prev, sizeof prev, "%s,%s", b64, a64);
    kr = crypto_keyring_load(a64, NULL, prev, err, sizeof err);
    assert_non_null(kr);
    assert_int_equal(crypto_key_count(kr), 2);
    assert_string_equal(crypto_primary_id(kr), id_a);
    crypto_keyring_free(kr);
}

static void test_load_malformed_previous_key(void **state)
{
    (void)state;
    unsigned char a[CRYPTO_KEY_LEN], b[CRYPTO_KEY_LEN];
    char a64[45], b64[45], prev[128], err[256] = "";
    key_a(a);
    key_b(b);
    key_to_b64(a, a64);
    key_to_b64(b, b64);

    const char *bad[] = {"nope", "zgUNtx50obHOBF/9fJKaapxEBVkttGFdoQMGPE7Gg*0="};
    for (size_t i = 0; i < 2; i++) {
        snprintf(prev, sizeof prev, "%s,%s", b64, bad[i]);
        err[0] = '\0';
        crypto_keyring *kr = crypto_keyring_load(a64, NULL, prev, err, sizeof err);
        if (kr) {
            crypto_keyring_free(kr);
            print_error("a malformed previous key (\"%s\") was accepted\n", bad[i]);
            fail();
        }
        assert_contains(err, "crypto_previous_keys");
        assert_not_contains(err, a64);
        assert_not_contains(err, b64);
    }
}

/* ---- nonces and key ids ------------------------------------------------ */

static void test_nonces_differ(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    crypto_sealed s1, s2;
    seal_ok(kr, CONN, FIELD, "same value", 10, &s1);
    seal_ok(kr, CONN, FIELD, "same value", 10, &s2);
    assert_memory_not_equal(s1.nonce, s2.nonce, CRYPTO_NONCE_LEN);
    assert_memory_not_equal(s1.ciphertext, s2.ciphertext, s1.ct_len);
    assert_string_equal(s1.key_id, s2.key_id);
    open_expect(kr, CONN, FIELD, &s1, "same value", 10);
    open_expect(kr, CONN, FIELD, &s2, "same value", 10);
    crypto_sealed_clear(&s1);
    crypto_sealed_clear(&s2);
    crypto_keyring_free(kr);
}

static void assert_key_id_shape(const char *id)
{
    assert_int_equal(strlen(id), CRYPTO_KEY_ID_LEN);
    for (size_t i = 0; i < CRYPTO_KEY_ID_LEN; i++) {
        if (!isxdigit((unsigned char)id[i])) {
            print_error("key id \"%s\" has a non-hex character at %zu\n", id, i);
            fail();
        }
    }
}

static void test_key_id_properties(void **state)
{
    (void)state;
    void (*makers[])(unsigned char *) = {key_a, key_b, key_c};
    char ids[3][CRYPTO_KEY_ID_LEN + 1];
    for (size_t i = 0; i < 3; i++) {
        id_of(makers[i], ids[i]);
        assert_key_id_shape(ids[i]);

        /* stable: a second keyring with the same key gives the same id */
        char again[CRYPTO_KEY_ID_LEN + 1];
        id_of(makers[i], again);
        assert_string_equal(ids[i], again);

        /* not a piece of the key: no 16-hex-character window of the key's hex
         * (either case) equals the id, and the raw key bytes are not in it */
        unsigned char key[CRYPTO_KEY_LEN];
        makers[i](key);
        char hex_lo[2 * CRYPTO_KEY_LEN + 1], hex_up[2 * CRYPTO_KEY_LEN + 1];
        for (size_t j = 0; j < CRYPTO_KEY_LEN; j++) {
            snprintf(hex_lo + 2 * j, 3, "%02x", key[j]);
            snprintf(hex_up + 2 * j, 3, "%02X", key[j]);
        }
        assert_not_contains(hex_lo, ids[i]);
        assert_not_contains(hex_up, ids[i]);
        char b64[45];
        key_to_b64(key, b64);
        assert_not_contains(b64, ids[i]);
        for (size_t j = 0; j + 4 <= CRYPTO_KEY_LEN; j++)
            assert_null(memmem(ids[i], CRYPTO_KEY_ID_LEN, key + j, 4));
    }
    assert_string_not_equal(ids[0], ids[1]);
    assert_string_not_equal(ids[0], ids[2]);
    assert_string_not_equal(ids[1], ids[2]);

    /* The id of a key loaded from base64 is the id of the same raw key. */
    char from_b64[CRYPTO_KEY_ID_LEN + 1], err[256] = "";
    crypto_keyring *kr = crypto_keyring_load(OPENSSL_KEY_B64, NULL, NULL, err, sizeof err);
    assert_non_null(kr);
    snprintf(from_b64, sizeof from_b64, "%s", crypto_primary_id(kr));
    crypto_keyring_free(kr);
    kr = crypto_keyring_new();
    assert_non_null(kr);
    assert_int_equal(crypto_keyring_add(kr, OPENSSL_KEY_BYTES, 1), 0);
    assert_string_equal(crypto_primary_id(kr), from_b64);
    crypto_keyring_free(kr);
}

/* ---- crypto_open refuses ---------------------------------------------- */

static void test_open_wrong_key(void **state)
{
    (void)state;
    crypto_keyring *ka = ring_of(key_a), *kb = ring_of(key_b);
    crypto_sealed s;
    seal_ok(ka, CONN, FIELD, "secret", 6, &s);
    assert_open_fails(kb, CONN, FIELD, &s);
    /* an empty keyring opens nothing */
    crypto_keyring *empty = crypto_keyring_new();
    assert_non_null(empty);
    assert_int_equal(crypto_key_count(empty), 0);
    assert_open_fails(empty, CONN, FIELD, &s);
    crypto_keyring_free(empty);
    crypto_sealed_clear(&s);
    crypto_keyring_free(ka);
    crypto_keyring_free(kb);
}

/* The key id only selects a key; authentication is what refuses a value. */
static void test_open_forged_key_id(void **state)
{
    (void)state;
    crypto_keyring *ka = ring_of(key_a), *kb = ring_of(key_b);
    crypto_sealed s;
    seal_ok(ka, CONN, FIELD, "secret", 6, &s);
    snprintf(s.key_id, sizeof s.key_id, "%s", crypto_primary_id(kb));
    assert_open_fails(kb, CONN, FIELD, &s);
    crypto_sealed_clear(&s);
    crypto_keyring_free(ka);
    crypto_keyring_free(kb);
}

static void test_open_flipped_bits(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    const char *secret = "the quick brown fox";
    size_t len = strlen(secret);
    crypto_sealed s, t;
    seal_ok(kr, CONN, FIELD, secret, len, &s);
    sealed_copy(&s, &t);

    for (size_t i = 0; i < CRYPTO_NONCE_LEN; i++) {
        unsigned char bit = (unsigned char)(1u << (i % 8));
        t.nonce[i] ^= bit;
        assert_open_fails(kr, CONN, FIELD, &t);
        t.nonce[i] ^= bit;
    }
    for (size_t i = 0; i < len; i++) { /* ciphertext body */
        unsigned char bit = (unsigned char)(1u << (i % 8));
        t.ciphertext[i] ^= bit;
        assert_open_fails(kr, CONN, FIELD, &t);
        t.ciphertext[i] ^= bit;
    }
    for (size_t i = len; i < t.ct_len; i++) { /* tag: the last 16 bytes */
        unsigned char bit = (unsigned char)(1u << (i % 8));
        t.ciphertext[i] ^= bit;
        assert_open_fails(kr, CONN, FIELD, &t);
        t.ciphertext[i] ^= bit;
    }
    assert_int_equal(t.ct_len - len, CRYPTO_TAG_LEN);
    /* Restored, it opens again: the failures above were the flips. */
    open_expect(kr, CONN, FIELD, &t, secret, len);

    crypto_sealed_clear(&t);
    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

static void test_open_truncated(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    const char *secret = "a secret longer than nothing";
    size_t len = strlen(secret);
    crypto_sealed s, t;
    seal_ok(kr, CONN, FIELD, secret, len, &s);
    sealed_copy(&s, &t);

    size_t lengths[] = {0, 1, CRYPTO_TAG_LEN - 1, CRYPTO_TAG_LEN, s.ct_len - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        t.ct_len = lengths[i];
        assert_open_fails(kr, CONN, FIELD, &t);
    }
    /* The last 16 bytes alone (the real tag over an empty body) do not open either. */
    memmove(t.ciphertext, t.ciphertext + len, CRYPTO_TAG_LEN);
    t.ct_len = CRYPTO_TAG_LEN;
    assert_open_fails(kr, CONN, FIELD, &t);

    /* Control: the untouched value opens. */
    open_expect(kr, CONN, FIELD, &s, secret, len);
    crypto_sealed_clear(&t);
    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

static void test_open_wrong_aad(void **state)
{
    (void)state;
    crypto_keyring *kr = ring_of(key_a);
    crypto_sealed s;
    seal_ok(kr, CONN, FIELD, "secret", 6, &s);
    /* wrong connection */
    assert_open_fails(kr, "6f1c2a4e-9b7d-4c1a-8e2f-0123456789ac", FIELD, &s);
    assert_open_fails(kr, "", FIELD, &s);
    assert_open_fails(kr, "6f1c2a4e-9b7d-4c1a-8e2f-0123456789a", FIELD, &s); /* prefix */
    /* wrong field */
    assert_open_fails(kr, CONN, "token", &s);
    assert_open_fails(kr, CONN, "Password", &s);
    assert_open_fails(kr, CONN, "", &s);
    /* swapped */
    assert_open_fails(kr, FIELD, CONN, &s);
    crypto_sealed_clear(&s);

    /* The NUL separators keep the (connection, field) split unambiguous. */
    seal_ok(kr, "ab", "c", "x", 1, &s);
    assert_open_fails(kr, "a", "bc", &s);
    assert_open_fails(kr, "abc", "", &s);
    open_expect(kr, "ab", "c", &s, "x", 1);
    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

/* ---- rotation ---------------------------------------------------------- */

static void test_rotation(void **state)
{
    (void)state;
    unsigned char a[CRYPTO_KEY_LEN], b[CRYPTO_KEY_LEN];
    char a64[45], b64[45], err[256] = "";
    char id_a[CRYPTO_KEY_ID_LEN + 1], id_b[CRYPTO_KEY_ID_LEN + 1];
    key_a(a);
    key_b(b);
    key_to_b64(a, a64);
    key_to_b64(b, b64);
    id_of(key_a, id_a);
    id_of(key_b, id_b);

    crypto_keyring *old = crypto_keyring_load(a64, NULL, NULL, err, sizeof err);
    assert_non_null(old);
    crypto_sealed s;
    seal_ok(old, CONN, FIELD, "rotate me", 9, &s);
    assert_string_equal(s.key_id, id_a);

    /* B primary, A kept as a previous key. */
    crypto_keyring *rot = crypto_keyring_load(b64, NULL, a64, err, sizeof err);
    if (!rot) {
        print_error("rotation keyring refused: %s\n", err);
        fail();
    }
    assert_int_equal(crypto_key_count(rot), 2);
    assert_string_equal(crypto_primary_id(rot), id_b);

    char *plain = NULL;
    size_t len = 0;
    assert_int_equal(crypto_open(rot, CONN, FIELD, &s, &plain, &len), 0);
    assert_int_equal(len, 9);
    assert_string_equal(plain, "rotate me");

    /* Re-seal: the value moves to B. */
    crypto_sealed r;
    seal_ok(rot, CONN, FIELD, plain, len, &r);
    crypto_wipe_free(plain, len);
    assert_string_equal(r.key_id, id_b);
    open_expect(rot, CONN, FIELD, &r, "rotate me", 9);

    /* After the rotation completes (only B), the re-sealed value opens and
     * the old one does not. */
    crypto_keyring *only_b = crypto_keyring_load(b64, NULL, NULL, err, sizeof err);
    assert_non_null(only_b);
    assert_int_equal(crypto_key_count(only_b), 1);
    open_expect(only_b, CONN, FIELD, &r, "rotate me", 9);
    assert_open_fails(only_b, CONN, FIELD, &s);
    /* and A alone cannot open B's value */
    assert_open_fails(old, CONN, FIELD, &r);

    crypto_sealed_clear(&s);
    crypto_sealed_clear(&r);
    crypto_keyring_free(old);
    crypto_keyring_free(rot);
    crypto_keyring_free(only_b);
}

static void test_primary_id_and_key_count(void **state)
{
    (void)state;
    unsigned char a[CRYPTO_KEY_LEN], b[CRYPTO_KEY_LEN], c[CRYPTO_KEY_LEN];
    char id_a[CRYPTO_KEY_ID_LEN + 1], id_b[CRYPTO_KEY_ID_LEN + 1];
    key_a(a);
    key_b(b);
    key_c(c);
    id_of(key_a, id_a);
    id_of(key_b, id_b);

    crypto_keyring *kr = crypto_keyring_new();
    assert_non_null(kr);
    assert_int_equal(crypto_key_count(kr), 0);
    assert_int_equal(crypto_keyring_add(kr, a, 1), 0);
    assert_int_equal(crypto_keyring_add(kr, b, 0), 0);
    assert_int_equal(crypto_key_count(kr), 2);
    assert_string_equal(crypto_primary_id(kr), id_a);
    /* adding a key again does not duplicate it */
    assert_int_equal(crypto_keyring_add(kr, a, 0), 0);
    assert_int_equal(crypto_key_count(kr), 2);
    assert_string_equal(crypto_primary_id(kr), id_a);
    /* promoting an existing key */
    assert_int_equal(crypto_keyring_add(kr, b, 1), 0);
    assert_int_equal(crypto_key_count(kr), 2);
    assert_string_equal(crypto_primary_id(kr), id_b);
    assert_int_equal(crypto_keyring_add(kr, c, 0), 0);
    assert_int_equal(crypto_key_count(kr), 3);
    assert_string_equal(crypto_primary_id(kr), id_b);

    /* seal follows the primary */
    crypto_sealed s;
    seal_ok(kr, CONN, FIELD, "p", 1, &s);
    assert_string_equal(s.key_id, id_b);
    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

static void test_seal_refuses_without_keys(void **state)
{
    (void)state;
    crypto_keyring *empty = crypto_keyring_new();
    assert_non_null(empty);
    crypto_sealed s;
    memset(&s, 0, sizeof s);
    assert_int_equal(crypto_seal(empty, CONN, FIELD, "x", 1, &s), -1);
    assert_null(s.ciphertext);
    assert_int_equal(crypto_seal(NULL, CONN, FIELD, "x", 1, &s), -1);
    assert_null(s.ciphertext);
    crypto_keyring_free(empty);
}

static void test_wipe_free(void **state)
{
    (void)state;
    crypto_wipe_free(NULL, 0);
    crypto_wipe_free(NULL, 32);
    crypto_keyring_free(NULL);
    char *s = strdup("secret");
    assert_non_null(s);
    crypto_wipe_free(s, 0); /* strlen */
    s = strdup("secret");
    assert_non_null(s);
    crypto_wipe_free(s, 7);
}

/* ---- interoperability with plain OpenSSL EVP --------------------------- */

/* AAD exactly as crypto.c documents it:
 * "ingest-secret-v1\0" <connection_id> "\0" <field> "\0". */
static size_t build_aad(const char *conn, const char *field, unsigned char *out, size_t cap)
{
    static const char tag[] = "ingest-secret-v1";
    size_t need = sizeof tag + strlen(conn) + 1 + strlen(field) + 1;
    assert_true(need <= cap);
    size_t n = 0;
    memcpy(out + n, tag, sizeof tag);
    n += sizeof tag;
    memcpy(out + n, conn, strlen(conn) + 1);
    n += strlen(conn) + 1;
    memcpy(out + n, field, strlen(field) + 1);
    n += strlen(field) + 1;
    return n;
}

/* Independent AES-256-GCM decryption; returns the plaintext length or -1. */
static int evp_gcm_decrypt(const unsigned char key[32], const unsigned char nonce[12],
                           const unsigned char *aad, size_t aad_len, const unsigned char *ct,
                           size_t ct_len, const unsigned char tag[16], unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, dummy = 0;
    int ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
             EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &dummy, aad, (int)aad_len) == 1 &&
             EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) == 1 &&
             EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? n + fin : -1;
}

static int evp_gcm_encrypt(const unsigned char key[32], const unsigned char nonce[12],
                           const unsigned char *aad, size_t aad_len, const unsigned char *pt,
                           size_t pt_len, unsigned char *ct, unsigned char tag[16])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, dummy = 0;
    int ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
             EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
             EVP_EncryptUpdate(ctx, NULL, &dummy, aad, (int)aad_len) == 1 &&
             EVP_EncryptUpdate(ctx, ct, &n, pt, (int)pt_len) == 1 &&
             EVP_EncryptFinal_ex(ctx, ct + n, &fin) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? n + fin : -1;
}

static void test_interop_openssl_decrypts_sealed_value(void **state)
{
    (void)state;
    crypto_keyring *kr = crypto_keyring_new();
    assert_non_null(kr);
    assert_int_equal(crypto_keyring_add(kr, OPENSSL_KEY_BYTES, 1), 0);

    const char *secret = "postgres://ingest:s3cr3t@db:5432/ingest";
    size_t len = strlen(secret);
    crypto_sealed s;
    seal_ok(kr, CONN, FIELD, secret, len, &s);

    unsigned char aad[256], out[256];
    size_t aad_len = build_aad(CONN, FIELD, aad, sizeof aad);
    assert_int_equal(aad_len, 17 + sizeof CONN + sizeof FIELD);
    size_t body = s.ct_len - CRYPTO_TAG_LEN;
    int n = evp_gcm_decrypt(OPENSSL_KEY_BYTES, s.nonce, aad, aad_len, s.ciphertext, body,
                            s.ciphertext + body, out);
    if (n < 0) {
        print_error("OpenSSL EVP could not decrypt crypto_seal's output with the documented "
                    "layout (nonce, ciphertext || 16-byte tag, AAD)\n");
        fail();
    }
    assert_int_equal(n, (int)len);
    assert_memory_equal(out, secret, len);

    /* The same call with the AAD's trailing NUL dropped must fail: the layout
     * is byte-exact, not approximately right. */
    assert_int_equal(evp_gcm_decrypt(OPENSSL_KEY_BYTES, s.nonce, aad, aad_len - 1, s.ciphertext,
                                     body, s.ciphertext + body, out),
                     -1);

    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

static void test_interop_openssl_encrypted_value_opens(void **state)
{
    (void)state;
    crypto_keyring *kr = crypto_keyring_new();
    assert_non_null(kr);
    assert_int_equal(crypto_keyring_add(kr, OPENSSL_KEY_BYTES, 1), 0);

    const unsigned char nonce[12] = {0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce,
                                     0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88};
    const char *secret = "api-token-\x01\x02\x7f";
    size_t len = strlen(secret);
    unsigned char aad[256], ct[256 + 16];
    size_t aad_len = build_aad(CONN, "token", aad, sizeof aad);
    int n = evp_gcm_encrypt(OPENSSL_KEY_BYTES, nonce, aad, aad_len, (const unsigned char *)secret,
                            len, ct, ct + len);
    assert_int_equal(n, (int)len);

    crypto_sealed s;
    memset(&s, 0, sizeof s);
    snprintf(s.key_id, sizeof s.key_id, "%s", crypto_primary_id(kr));
    memcpy(s.nonce, nonce, sizeof nonce);
    s.ct_len = len + CRYPTO_TAG_LEN;
    s.ciphertext = malloc(s.ct_len);
    assert_non_null(s.ciphertext);
    memcpy(s.ciphertext, ct, s.ct_len);

    open_expect(kr, CONN, "token", &s, secret, len);
    assert_open_fails(kr, CONN, FIELD, &s);
    crypto_sealed_clear(&s);
    crypto_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_text),
        cmocka_unit_test(test_round_trip_empty),
        cmocka_unit_test(test_round_trip_64k),
        cmocka_unit_test(test_round_trip_binary_with_nuls),
        cmocka_unit_test(test_key_decode_accepts_openssl_output),
        cmocka_unit_test(test_key_decode_round_trips_any_key),
        cmocka_unit_test(test_key_decode_rejects_wrong_lengths),
        cmocka_unit_test(test_key_decode_rejects_two_padding_chars),
        cmocka_unit_test(test_key_decode_rejects_non_base64),
        cmocka_unit_test(test_key_decode_rejects_empty),
        cmocka_unit_test(test_load_primary_from_b64),
        cmocka_unit_test(test_load_primary_from_key_file),
        cmocka_unit_test(test_load_missing_key_says_what_to_set),
        cmocka_unit_test(test_load_malformed_primary_names_setting),
        cmocka_unit_test(test_load_previous_keys),
        cmocka_unit_test(test_load_malformed_previous_key),
        cmocka_unit_test(test_nonces_differ),
        cmocka_unit_test(test_key_id_properties),
        cmocka_unit_test(test_open_wrong_key),
        cmocka_unit_test(test_open_forged_key_id),
        cmocka_unit_test(test_open_flipped_bits),
        cmocka_unit_test(test_open_truncated),
        cmocka_unit_test(test_open_wrong_aad),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_primary_id_and_key_count),
        cmocka_unit_test(test_seal_refuses_without_keys),
        cmocka_unit_test(test_wipe_free),
        cmocka_unit_test(test_interop_openssl_decrypts_sealed_value),
        cmocka_unit_test(test_interop_openssl_encrypted_value_opens),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
