/* unit_helpers.h — small shared helpers for the cmocka unit tests.
 *
 * Everything here is static inline so each test executable only pays for
 * what it uses (and -Wunused-function stays quiet). Include it first: it
 * pulls in cmocka.h and the standard headers cmocka needs. */
#ifndef UNIT_HELPERS_H
#define UNIT_HELPERS_H

/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* assert that `hay` contains `needle`, printing both when it does not. */
#define assert_contains(hay, needle) unit_assert_contains((hay), (needle), __FILE__, __LINE__)
#define assert_not_contains(hay, needle)                                                           \
    unit_assert_not_contains((hay), (needle), __FILE__, __LINE__)

static inline void unit_assert_contains(const char *hay, const char *needle, const char *file,
                                        int line)
{
    if (!hay || !strstr(hay, needle)) {
        print_error("expected \"%s\" to contain \"%s\"\n", hay ? hay : "(null)", needle);
        _fail(file, line);
    }
}

static inline void unit_assert_not_contains(const char *hay, const char *needle, const char *file,
                                            int line)
{
    if (hay && strstr(hay, needle)) {
        print_error("expected \"%s\" NOT to contain \"%s\"\n", hay, needle);
        _fail(file, line);
    }
}

/* A fresh private directory under $TMPDIR (or /tmp); caller frees the path. */
static inline char *unit_make_temp_dir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/unit-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static inline int unit_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf path (does not follow symlinks). */
static inline void unit_remove_tree(const char *path)
{
    if (path)
        nftw(path, unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir + "/" + name, malloc'd. */
static inline char *unit_path_join(const char *dir, const char *name)
{
    char *out = NULL;
    if (asprintf(&out, "%s/%s", dir, name) < 0)
        return NULL;
    return out;
}

/* Write text to path (created with `mode`, truncated); 0 on success. */
static inline int unit_write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

/* The whole content of a file, malloc'd and NUL-terminated; NULL on error. */
static inline char *unit_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

#endif
