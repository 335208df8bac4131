/* migrations.h — the schema, as versioned SQL steps embedded in the daemon. */
#ifndef HOSTD_MIGRATIONS_H
#define HOSTD_MIGRATIONS_H

#include <libpq-fe.h>
#include <stddef.h>

/* Apply every migration not yet recorded in schema_migrations, each in its
 * own transaction, under an advisory lock so concurrent daemons serialise.
 * Writes the number applied to *applied. -1 with a message on failure. */
int migrations_apply(PGconn *conn, int *applied, char *err, size_t err_len);

/* The newest version this build knows. */
int migrations_latest(void);

#endif
