/* secrets.c — ciphertext and nonce travel as bytea in binary parameters and
 * results, so no secret bytes are ever formatted into SQL text. */
#include "secrets.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"
#include "log.h"

#define ROTATE_BATCH 100

static const char insert_connection_sql[] =
    "INSERT INTO connections (tenant_id, provider, auth_kind, name, config)"
    " VALUES ($1, $2, $3, $4, coalesce($5::jsonb, '{}')) RETURNING id";

static const char upsert_secret_sql[] =
    "INSERT INTO connection_secrets (connection_id, field, key_id, nonce, ciphertext)"
    " VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (connection_id, field) DO UPDATE SET key_id = EXCLUDED.key_id,"
    " nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, updated_at = now()";

static const char select_secret_sql[] =
    "SELECT s.key_id, s.nonce, s.ciphertext FROM connection_secrets s"
    " JOIN connections c ON c.id = s.connection_id"
    " WHERE s.connection_id = $1 AND s.field = $2 AND c.provider = $3";

/* Keyset pagination over (connection_id, field): each batch starts after the
 * last row seen, so rows no key opens are counted once and never stall.
 * FOR UPDATE waits for a row being written rather than skipping it, so no
 * value is left behind under an old key. */
static const char select_stale_sql[] =
    "SELECT connection_id::text, field, key_id, nonce, ciphertext FROM connection_secrets"
    " WHERE key_id <> $1 AND ($3::uuid IS NULL OR (connection_id, field) > ($3::uuid, $4))"
    " ORDER BY connection_id, field LIMIT $2 FOR UPDATE";

static int put_sealed(PGconn *conn, const char *connection_id, const char *field,
                      const crypto_sealed *s, char *err, size_t err_len)
{
    const char *p[] = {connection_id, field, s->key_id, (const char *)s->nonce,
                       (const char *)s->ciphertext};
    int lengths[] = {0, 0, 0, CRYPTO_NONCE_LEN, (int)s->ct_len};
    int formats[] = {0, 0, 0, 1, 1};
    PGresult *res = PQexecParams(conn, upsert_secret_sql, 5, NULL, p, lengths, formats, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, err_len, "cannot store secret %s: %s", field, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? INGEST_OK : INGEST_EIO;
}

static int seal_and_put(PGconn *conn, const crypto_keyring *kr, const char *connection_id,
                        const char *field, const char *value, char *err, size_t err_len)
{
    crypto_sealed s;
    if (crypto_seal(kr, connection_id, field, value, strlen(value), &s) < 0) {
        snprintf(err, err_len, "cannot encrypt secret %s", field);
        return INGEST_EIO;
    }
    int rc = put_sealed(conn, connection_id, field, &s, err, err_len);
    crypto_sealed_clear(&s);
    return rc;
}

typedef struct create_args {
    const crypto_keyring *kr;
    const char *tenant_id, *provider, *auth_kind, *name;
    json_object *config, *secrets;
    char *id_out;
    char *err;
    size_t err_len;
} create_args;

static int create_fn(PGconn *conn, void *arg)
{
    create_args *a = arg;
    const char *config = a->config ? json_object_to_json_string_ext(a->config, 0) : NULL;
    const char *p[] = {a->tenant_id, a->provider, a->auth_kind, a->name, config};
    if (store_exec_simple(conn, "BEGIN") < 0)
        return INGEST_EIO;
    PGresult *res = NULL;
    int rc = store_exec(conn, insert_connection_sql, 5, p, &res, a->err, a->err_len);
    if (rc == INGEST_OK) {
        snprintf(a->id_out, 37, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    json_object_object_foreach(a->secrets, field, value)
    {
        if (rc != INGEST_OK)
            break;
        if (!json_object_is_type(value, json_type_string)) {
            snprintf(a->err, a->err_len, "secret %s must be a string", field);
            rc = INGEST_EINVAL;
            break;
        }
        rc = seal_and_put(conn, a->kr, a->id_out, field, json_object_get_string(value), a->err,
                          a->err_len);
    }
    if (rc != INGEST_OK || store_exec_simple(conn, "COMMIT") < 0) {
        store_exec_simple(conn, "ROLLBACK");
        return rc != INGEST_OK ? rc : INGEST_EIO;
    }
    return INGEST_OK;
}

int secrets_create_connection(store *st, const crypto_keyring *kr, const char *tenant_id,
                              const char *provider, const char *auth_kind, const char *name,
                              json_object *config, json_object *secrets, char *id_out, char *err,
                              size_t err_len)
{
    json_object *none = NULL;
    if (!secrets)
        secrets = none = json_object_new_object();
    create_args a = {kr,     tenant_id, provider, auth_kind, name,
                     config, secrets,   id_out,   err,       err_len};
    snprintf(err, err_len, "database unavailable");
    int rc = store_call(st, create_fn, &a);
    json_object_put(none);
    return rc;
}

typedef struct put_args {
    const crypto_keyring *kr;
    const char *connection_id, *field, *value;
    char *err;
    size_t err_len;
} put_args;

static int put_fn(PGconn *conn, void *arg)
{
    put_args *a = arg;
    return seal_and_put(conn, a->kr, a->connection_id, a->field, a->value, a->err, a->err_len);
}

int secrets_put(store *st, const crypto_keyring *kr, const char *connection_id, const char *field,
                const char *value, char *err, size_t err_len)
{
    put_args a = {kr, connection_id, field, value, err, err_len};
    snprintf(err, err_len, "database unavailable");
    return store_call(st, put_fn, &a);
}

/* The expiry moves with the tokens; NULL * interval stays NULL (no expiry).
 * now() is the transaction's start, close enough to when the provider
 * answered. */
static const char set_expiry_sql[] =
    "UPDATE connections SET token_expires_at = now() + $2::bigint * interval '1 second',"
    " updated_at = now() WHERE id = $1";

typedef struct put_many_args {
    const crypto_keyring *kr;
    const char *connection_id;
    const char *const *fields, *const *values;
    size_t n;
    const char *expires_in; /* decimal seconds or NULL */
    char *err;
    size_t err_len;
} put_many_args;

static int set_expiry(PGconn *conn, put_many_args *a)
{
    const char *p[] = {a->connection_id, a->expires_in};
    PGresult *res = NULL;
    int rc = store_exec(conn, set_expiry_sql, 2, p, &res, a->err, a->err_len);
    if (rc == INGEST_OK && strcmp(PQcmdTuples(res), "1") != 0) {
        snprintf(a->err, a->err_len, "connection %s does not exist", a->connection_id);
        rc = INGEST_ENOTFOUND;
    }
    PQclear(res);
    return rc;
}

static int put_many_fn(PGconn *conn, void *arg)
{
    put_many_args *a = arg;
    if (store_exec_simple(conn, "BEGIN") < 0)
        return INGEST_EIO;
    /* The row update comes first: it locks the connection, so two writers of
     * one connection's tokens commit one after the other. */
    int rc = set_expiry(conn, a);
    for (size_t i = 0; rc == INGEST_OK && i < a->n; i++)
        rc = seal_and_put(conn, a->kr, a->connection_id, a->fields[i], a->values[i], a->err,
                          a->err_len);
    if (rc != INGEST_OK || store_exec_simple(conn, "COMMIT") < 0) {
        store_exec_simple(conn, "ROLLBACK");
        return rc != INGEST_OK ? rc : INGEST_EIO;
    }
    return INGEST_OK;
}

int secrets_put_with_expiry(store *st, const crypto_keyring *kr, const char *connection_id,
                            const char *const *fields, const char *const *values, size_t n,
                            long long expires_in_s, char *err, size_t err_len)
{
    char expires[32];
    snprintf(expires, sizeof expires, "%lld", expires_in_s);
    put_many_args a = {kr,  connection_id, fields, values, n, expires_in_s < 0 ? NULL : expires,
                       err, err_len};
    snprintf(err, err_len, "database unavailable");
    return store_call(st, put_many_fn, &a);
}

/* The row is updated first, so it is locked and proven to be the
 * provider's before the secret is written. */
static const char set_owned_expiry_sql[] =
    "UPDATE connections SET token_expires_at = CASE"
    " WHEN $3::bigint IS NOT NULL THEN to_timestamp($3::bigint / 1e6)"
    " WHEN $4::boolean THEN NULL ELSE token_expires_at END, updated_at = now()"
    " WHERE id = $1 AND provider = $2";

typedef struct owned_args {
    const crypto_keyring *kr;
    const char *provider, *connection_id, *field, *value;
    const char *expires_us; /* decimal µs or NULL */
    const char *clear;      /* "t" or "f" */
    char *err;
    size_t err_len;
} owned_args;

static int set_owned_expiry(PGconn *conn, owned_args *a)
{
    const char *p[] = {a->connection_id, a->provider, a->expires_us, a->clear};
    PGresult *res = NULL;
    int rc = store_exec(conn, set_owned_expiry_sql, 4, p, &res, a->err, a->err_len);
    if (rc == INGEST_OK && strcmp(PQcmdTuples(res), "1") != 0) {
        snprintf(a->err, a->err_len, "connection %s of provider %s does not exist",
                 a->connection_id, a->provider);
        rc = INGEST_ENOTFOUND;
    }
    PQclear(res);
    return rc;
}

static int put_owned_fn(PGconn *conn, void *arg)
{
    owned_args *a = arg;
    if (store_exec_simple(conn, "BEGIN") < 0)
        return INGEST_EIO;
    int rc = set_owned_expiry(conn, a);
    if (rc == INGEST_OK)
        rc = seal_and_put(conn, a->kr, a->connection_id, a->field, a->value, a->err, a->err_len);
    if (rc != INGEST_OK || store_exec_simple(conn, "COMMIT") < 0) {
        store_exec_simple(conn, "ROLLBACK");
        return rc != INGEST_OK ? rc : INGEST_EIO;
    }
    return INGEST_OK;
}

int secrets_put_owned(store *st, const crypto_keyring *kr, const char *provider,
                      const char *connection_id, const char *field, const char *value,
                      int64_t expires_at_us, char *err, size_t err_len)
{
    char expires[32];
    snprintf(expires, sizeof expires, "%lld", (long long)expires_at_us);
    int clear = expires_at_us <= 0 && strcmp(field, "access_token") == 0;
    owned_args a = {kr,
                    provider,
                    connection_id,
                    field,
                    value,
                    expires_at_us > 0 ? expires : NULL,
                    clear ? "t" : "f",
                    err,
                    err_len};
    snprintf(err, err_len, "database unavailable");
    return store_call(st, put_owned_fn, &a);
}

static const char connection_auth_sql[] =
    "SELECT auth_kind, coalesce(floor(extract(epoch FROM token_expires_at) * 1000000)::bigint, 0)"
    " FROM connections WHERE id = $1 AND provider = $2";

typedef struct auth_args {
    const char *provider, *connection_id;
    char *kind;
    size_t kind_len;
    int64_t expires_us;
    char *err;
    size_t err_len;
} auth_args;

static int connection_auth_fn(PGconn *conn, void *arg)
{
    auth_args *a = arg;
    const char *p[] = {a->connection_id, a->provider};
    PGresult *res = NULL;
    int rc = store_exec(conn, connection_auth_sql, 2, p, &res, a->err, a->err_len);
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(res) == 0) {
        snprintf(a->err, a->err_len, "connection %s of provider %s does not exist",
                 a->connection_id, a->provider);
        rc = INGEST_ENOTFOUND;
    } else {
        snprintf(a->kind, a->kind_len, "%s", PQgetvalue(res, 0, 0));
        a->expires_us = atoll(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return rc;
}

int secrets_connection_auth(store *st, const char *provider, const char *connection_id, char *kind,
                            size_t kind_len, int64_t *expires_us, char *err, size_t err_len)
{
    auth_args a = {provider, connection_id, kind, kind_len, 0, err, err_len};
    snprintf(err, err_len, "database unavailable");
    int rc = store_call(st, connection_auth_fn, &a);
    *expires_us = rc == INGEST_OK ? a.expires_us : 0;
    return rc;
}

/* Read a sealed value from a binary-format result row starting at `col`. */
static int sealed_from_row(PGresult *res, int row, int col, crypto_sealed *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->key_id, sizeof s->key_id, "%s", PQgetvalue(res, row, col));
    if (PQgetlength(res, row, col + 1) != CRYPTO_NONCE_LEN)
        return -1;
    memcpy(s->nonce, PQgetvalue(res, row, col + 1), CRYPTO_NONCE_LEN);
    s->ct_len = (size_t)PQgetlength(res, row, col + 2);
    s->ciphertext = malloc(s->ct_len ? s->ct_len : 1);
    if (!s->ciphertext)
        return -1;
    memcpy(s->ciphertext, PQgetvalue(res, row, col + 2), s->ct_len);
    return 0;
}

typedef struct get_args {
    const crypto_keyring *kr;
    const char *provider, *connection_id, *field;
    char *value;
    char *err;
    size_t err_len;
} get_args;

static int get_fn(PGconn *conn, void *arg)
{
    get_args *a = arg;
    const char *p[] = {a->connection_id, a->field, a->provider};
    /* Binary results: key_id text arrives as its bytes, bytea as raw bytes. */
    PGresult *res = PQexecParams(conn, select_secret_sql, 3, NULL, p, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(a->err, a->err_len, "cannot read secret %s: %s", a->field,
                 PQresultErrorMessage(res));
        PQclear(res);
        return INGEST_EIO;
    }
    if (PQntuples(res) == 0) {
        snprintf(a->err, a->err_len, "connection %s has no secret %s", a->connection_id, a->field);
        PQclear(res);
        return INGEST_ENOTFOUND;
    }
    crypto_sealed s;
    size_t len = 0;
    int ok = sealed_from_row(res, 0, 0, &s) == 0 &&
             crypto_open(a->kr, a->connection_id, a->field, &s, &a->value, &len) == 0;
    if (!ok)
        snprintf(a->err, a->err_len,
                 "cannot decrypt secret %s of connection %s: unknown key %s or the value was "
                 "tampered with",
                 a->field, a->connection_id, s.key_id);
    crypto_sealed_clear(&s);
    PQclear(res);
    return ok ? INGEST_OK : INGEST_EAUTH;
}

int secrets_get(store *st, const crypto_keyring *kr, const char *provider,
                const char *connection_id, const char *field, char **value, char *err,
                size_t err_len)
{
    *value = NULL;
    get_args a = {kr, provider, connection_id, field, NULL, err, err_len};
    snprintf(err, err_len, "database unavailable");
    int rc = store_call(st, get_fn, &a);
    if (rc == INGEST_OK)
        *value = a.value;
    else
        crypto_wipe_free(a.value, 0);
    return rc;
}

typedef struct rotate_args {
    const crypto_keyring *kr;
    long long rotated, failed;
    int batch_rows;
    char last_connection[37];
    char last_field[256];
    char *err;
    size_t err_len;
} rotate_args;

/* Re-seal one row; values that no key opens are counted and left alone. */
static int rotate_row(PGconn *conn, rotate_args *a, PGresult *res, int row)
{
    const char *connection_id = PQgetvalue(res, row, 0);
    const char *field = PQgetvalue(res, row, 1);
    snprintf(a->last_connection, sizeof a->last_connection, "%s", connection_id);
    snprintf(a->last_field, sizeof a->last_field, "%s", field);
    crypto_sealed s;
    char *plain = NULL;
    size_t len = 0;
    if (sealed_from_row(res, row, 2, &s) < 0 ||
        crypto_open(a->kr, connection_id, field, &s, &plain, &len) < 0) {
        a->failed++;
        log_warn("rotate-key: cannot decrypt secret %s of connection %s (key %s): left as is",
                 field, connection_id, s.key_id);
        crypto_sealed_clear(&s);
        return INGEST_OK;
    }
    crypto_sealed_clear(&s);
    int rc = seal_and_put(conn, a->kr, connection_id, field, plain, a->err, a->err_len);
    crypto_wipe_free(plain, len + 1);
    if (rc == INGEST_OK)
        a->rotated++;
    return rc;
}

static int rotate_batch_fn(PGconn *conn, void *arg)
{
    rotate_args *a = arg;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", ROTATE_BATCH);
    const char *p[] = {crypto_primary_id(a->kr), limit,
                       a->last_connection[0] ? a->last_connection : NULL, a->last_field};
    if (store_exec_simple(conn, "BEGIN") < 0)
        return INGEST_EIO;
    /* Binary results: text columns arrive as their bytes, bytea as raw bytes. */
    PGresult *res = PQexecParams(conn, select_stale_sql, 4, NULL, p, NULL, NULL, 1);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? INGEST_OK : INGEST_EIO;
    if (rc != INGEST_OK)
        snprintf(a->err, a->err_len, "%s", PQresultErrorMessage(res));
    a->batch_rows = rc == INGEST_OK ? PQntuples(res) : 0;
    for (int i = 0; rc == INGEST_OK && i < a->batch_rows; i++)
        rc = rotate_row(conn, a, res, i);
    PQclear(res);
    if (rc != INGEST_OK || store_exec_simple(conn, "COMMIT") < 0) {
        store_exec_simple(conn, "ROLLBACK");
        return rc != INGEST_OK ? rc : INGEST_EIO;
    }
    return INGEST_OK;
}

int secrets_rotate(store *st, const crypto_keyring *kr, long long *rotated, long long *failed,
                   char *err, size_t err_len)
{
    rotate_args a = {.kr = kr, .err = err, .err_len = err_len};
    int rc;
    do
        rc = store_call(st, rotate_batch_fn, &a);
    while (rc == INGEST_OK && a.batch_rows == ROTATE_BATCH);
    *rotated = a.rotated;
    *failed = a.failed;
    return rc;
}
