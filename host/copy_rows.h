/* copy_rows.h — rows in PostgreSQL's COPY text format, built in one growing
 * buffer so a page of signals is sent to the store without a per-row object
 * tree. */
#ifndef HOSTD_COPY_ROWS_H
#define HOSTD_COPY_ROWS_H

#include <stddef.h>

typedef struct copy_rows {
    char *data;    /* owned; NULL until the first field */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
    size_t n_rows; /* completed rows */
    int in_row;    /* a field was added since the last row end */
    int failed;    /* an allocation failed: the buffer is unusable until reset */
} copy_rows;

/* A zeroed struct is an empty buffer; copy_rows_init only spells that out. */
void copy_rows_init(copy_rows *rows);
/* Forget the rows but keep the allocation for the next page. */
void copy_rows_reset(copy_rows *rows);
void copy_rows_free(copy_rows *rows);

/* Append one field to the current row; NULL is SQL NULL. `text` is copied
 * with backslash, tab, newline and carriage return escaped. */
void copy_rows_field(copy_rows *rows, const char *text);
/* Close the current row. */
void copy_rows_end(copy_rows *rows);

/* Remove the fields of an unfinished row (a row abandoned half-way). */
void copy_rows_drop_partial(copy_rows *rows, size_t row_start);

#endif
