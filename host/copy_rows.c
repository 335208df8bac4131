/* copy_rows.c — COPY text format: fields separated by tabs, rows ended by a
 * newline, \N for NULL, and the four characters that would break that framing
 * escaped with a backslash. */
#include "copy_rows.h"

#include <stdlib.h>
#include <string.h>

void copy_rows_init(copy_rows *rows) { memset(rows, 0, sizeof *rows); }

void copy_rows_reset(copy_rows *rows)
{
    rows->len = 0;
    rows->n_rows = 0;
    rows->in_row = 0;
    rows->failed = 0;
}

void copy_rows_free(copy_rows *rows)
{
    free(rows->data);
    copy_rows_init(rows);
}

/* Room for `more` bytes; grows geometrically so a page costs few reallocs. */
static int reserve(copy_rows *rows, size_t more)
{
    if (rows->failed)
        return -1;
    if (rows->len + more <= rows->cap)
        return 0;
    size_t cap = rows->cap ? rows->cap : 64 * 1024;
    while (cap < rows->len + more)
        cap *= 2;
    char *data = realloc(rows->data, cap);
    if (!data) {
        rows->failed = 1;
        return -1;
    }
    rows->data = data;
    rows->cap = cap;
    return 0;
}

static char escape_of(char c)
{
    switch (c) {
    case '\\':
        return '\\';
    case '\t':
        return 't';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    default:
        return 0;
    }
}

void copy_rows_field(copy_rows *rows, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    /* Worst case every byte is escaped, plus the separator. */
    if (reserve(rows, 2 * n + 3) < 0)
        return;
    if (rows->in_row)
        rows->data[rows->len++] = '\t';
    rows->in_row = 1;
    if (!text) {
        rows->data[rows->len++] = '\\';
        rows->data[rows->len++] = 'N';
        return;
    }
    char *out = rows->data + rows->len;
    for (size_t i = 0; i < n; i++) {
        char esc = escape_of(text[i]);
        if (esc) {
            *out++ = '\\';
            *out++ = esc;
        } else {
            *out++ = text[i];
        }
    }
    rows->len = (size_t)(out - rows->data);
}

void copy_rows_end(copy_rows *rows)
{
    if (reserve(rows, 1) < 0)
        return;
    rows->data[rows->len++] = '\n';
    rows->in_row = 0;
    rows->n_rows++;
}

void copy_rows_drop_partial(copy_rows *rows, size_t row_start)
{
    if (row_start <= rows->len)
        rows->len = row_start;
    rows->in_row = 0;
}
