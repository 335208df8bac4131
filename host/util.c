/* util.c — thin wrappers over OpenSSL and libc used across the host. */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void to_hex(const unsigned char *bin, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 15];
    }
    out[2 * len] = '\0';
}

void util_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int md_len = 0;
    EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
    to_hex(md, 32, out);
}

void util_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                          char out[65])
{
    unsigned char md[32];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, md, &md_len);
    to_hex(md, 32, out);
}

int util_sha256_file(const char *path, char out[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    unsigned char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        EVP_DigestUpdate(md, buf, (size_t)n);
    int saved = errno;
    close(fd);
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    to_hex(digest, 32, out);
    return 0;
}

int64_t util_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

int64_t util_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_mono_ms(void) { return util_mono_us() / 1000; }

static int take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int util_parse_time(const char *text, int64_t *out_us)
{
    if (!text)
        return -1;
    const char *p = text;
    struct tm tm = {0};
    int year, mon, day, hh = 0, mm = 0, ss = 0;
    if (take_digits(&p, 4, &year) || *p++ != '-' || take_digits(&p, 2, &mon) || *p++ != '-' ||
        take_digits(&p, 2, &day))
        return -1;
    int64_t frac_us = 0;
    long offset_s = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (take_digits(&p, 2, &hh) || *p++ != ':' || take_digits(&p, 2, &mm))
            return -1;
        if (*p == ':') {
            p++;
            if (take_digits(&p, 2, &ss))
                return -1;
        }
        if (*p == '.' || *p == ',') {
            p++;
            int64_t scale = 100000;
            if (!isdigit((unsigned char)*p))
                return -1;
            while (isdigit((unsigned char)*p)) {
                frac_us += (*p - '0') * scale;
                scale /= 10;
                p++;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (take_digits(&p, 2, &oh))
                return -1;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char)*p) && take_digits(&p, 2, &om))
                return -1;
            if (oh > 23 || om > 59)
                return -1;
            offset_s = sign * (oh * 3600L + om * 60L);
        }
    }
    if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    /* A leap second (:60) is read as the first second of the next minute. */
    int leap = ss == 60;
    tm.tm_sec = leap ? 59 : ss;
    time_t secs = timegm(&tm);
    if (tm.tm_mday != day) /* timegm normalised an impossible date like Feb 30 */
        return -1;
    *out_us = ((int64_t)secs + leap - offset_s) * 1000000 + frac_us;
    return 0;
}

void util_format_time(int64_t us, char out[32])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06ldZ", frac);
}

static void format_uuid(const unsigned char b[16], char out[37])
{
    char hex[33];
    to_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

void util_uuid4(char out[37])
{
    unsigned char b[16];
    RAND_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format_uuid(b, out);
}

void util_uuid7(char out[37])
{
    unsigned char b[16];
    RAND_bytes(b, sizeof b);
    uint64_t ms = (uint64_t)(util_now_us() / 1000);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (8 * (5 - i)));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format_uuid(b, out);
}

int util_is_uuid(const char *text)
{
    if (!text || strlen(text) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)text[i])) {
            return 0;
        }
    }
    return 1;
}

char **util_split(const char *text, char sep, size_t *count)
{
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == sep;
    char **out = calloc(cap + 1, sizeof *out);
    if (!out)
        return NULL;
    size_t n = 0;
    const char *start = text;
    for (;;) {
        const char *end = strchr(start, sep);
        if (!end)
            end = start + strlen(start);
        const char *a = start, *z = end;
        while (a < z && isspace((unsigned char)*a))
            a++;
        while (z > a && isspace((unsigned char)z[-1]))
            z--;
        if (z > a) {
            out[n] = strndup(a, (size_t)(z - a));
            if (!out[n]) {
                util_strv_free(out);
                return NULL;
            }
            n++;
        }
        if (!*end)
            break;
        start = end + 1;
    }
    *count = n;
    return out;
}

void util_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

char *util_join(char *const *items, size_t count, const char *sep)
{
    size_t len = 1, slen = strlen(sep);
    for (size_t i = 0; i < count; i++)
        len += strlen(items[i]) + slen;
    char *out = malloc(len);
    if (!out)
        return NULL;
    out[0] = '\0';
    char *p = out;
    for (size_t i = 0; i < count; i++) {
        if (i) {
            memcpy(p, sep, slen);
            p += slen;
        }
        size_t l = strlen(items[i]);
        memcpy(p, items[i], l);
        p += l;
        *p = '\0';
    }
    return out;
}

int util_copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        int saved = errno;
        close(in);
        errno = saved;
        return -1;
    }
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    if (n < 0)
        rc = -1;
    int saved = errno;
    close(in);
    if (close(out) < 0)
        rc = -1;
    if (rc == 0 && rename(tmp, dst) < 0)
        rc = -1;
    if (rc < 0) {
        saved = errno;
        unlink(tmp);
        errno = saved;
    }
    return rc;
}

void util_rmdir_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

double util_random01(void)
{
    uint64_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint64_t)rand();
    return (double)(r >> 11) / (double)(1ULL << 53);
}

json_object *util_json_parse_strict(const char *text, size_t max_len)
{
    size_t len = text ? strlen(text) : 0;
    if (!text || len > max_len)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* The terminating NUL is parsed too, so text after the value fails. */
    json_object *o = json_tokener_parse_ex(tok, text, (int)len + 1);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}
