/* csv_parser_bench.c — throughput of the S3/CSV connector's streaming CSV
 * parser (plugins/s3csv/csv_parser.c).
 *
 * Builds a ~256 MiB realistic CSV in memory (10 columns: numbers, dates,
 * emails, quoted names with commas, UTF-8 city names, free text that now and
 * then holds "" escapes or a line break, quoted tag lists; mostly LF, some
 * CRLF) and measures, feeding it in 64 KiB chunks as a download would:
 *   (a) memchr line splitting of the same buffer: the baseline, measured in
 *       the same run so a noisy machine affects both alike;
 *   (b) the parser alone;
 *   (c) the parser plus a SHA-256 of every record (OpenSSL EVP, one context
 *       reused): the target is >= 300 MB/s for this on one core.
 * Each figure is the median of 5 runs (runs interleaved a,b,c,a,b,c...),
 * by wall clock and by the thread's CPU time: on a shared machine the
 * second leaves out the time the process was not running. MB/s means 10^6
 * bytes per second of CSV input.
 *
 * Usage: csv_parser_bench [size_mib]   (default 256) */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csv_parser.h"

#define CHUNK ((size_t)64 * 1024)
#define RUNS 5

/* ---- input generation ----------------------------------------------------- */

typedef struct gen {
    char *buf;
    size_t len, cap;
    uint64_t rng;
} gen;

static uint64_t rnd(gen *g)
{
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 2685821657736338717ULL;
}

static unsigned pick(gen *g, unsigned n) { return (unsigned)(rnd(g) % n); }

static void put(gen *g, const char *s, size_t n)
{
    memcpy(g->buf + g->len, s, n);
    g->len += n;
}

static void puts_(gen *g, const char *s) { put(g, s, strlen(s)); }

static void putf(gen *g, const char *fmt, unsigned long long a, unsigned long long b,
                 unsigned long long c)
{
    g->len += (size_t)snprintf(g->buf + g->len, g->cap - g->len, fmt, a, b, c);
}

static const char *const first_names[] = {"Anna",  "Bob",   "Chloé", "Dmitri", "Eve",
                                          "Farid", "Grace", "Hiro",  "Inés",   "Jon"};
static const char *const last_names[] = {"Smith",    "Müller", "O'Brien", "García", "Nguyen",
                                         "Kowalski", "Tanaka", "Dubois",  "Rossi",  "Ivanova"};
static const char *const cities[] = {"Berlin",   "München", "São Paulo", "東京",   "Paris",
                                     "New York", "Kraków",  "Zürich",    "London", "Montréal"};
static const char *const statuses[] = {"active", "pending", "closed", "refunded"};
static const char *const words[] = {"order",  "shipped", "late",    "customer", "asked",
                                    "for",    "a",       "refund",  "because",  "the",
                                    "parcel", "was",     "damaged", "invoice",  "attached",
                                    "see",    "ticket",  "résumé",  "naïve",    "café"};
static const char *const tags[] = {"vip", "eu", "b2b", "promo", "fragile", "gift"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Free text, quoted; ~5% hold a line break, ~5% an escaped "quote". */
static void gen_description(gen *g)
{
    unsigned nwords = 2 + pick(g, 14);
    bool newline = pick(g, 20) == 0, quote = pick(g, 20) == 0;
    puts_(g, "\"");
    for (unsigned i = 0; i < nwords; i++) {
        if (i)
            puts_(g, newline && i == nwords / 2 ? "\n" : " ");
        if (quote && i == 1)
            puts_(g, "\"\"urgent\"\" ");
        puts_(g, words[pick(g, COUNT(words))]);
    }
    puts_(g, "\"");
}

static void gen_row(gen *g, unsigned long long id)
{
    putf(g, "%llu,%08llx%08llx,", id, rnd(g) & 0xffffffffu, rnd(g) & 0xffffffffu);
    const char *first = first_names[pick(g, COUNT(first_names))];
    const char *last = last_names[pick(g, COUNT(last_names))];
    if (pick(g, 3) == 0) { /* "Last, First" must be quoted */
        puts_(g, "\"");
        puts_(g, last);
        puts_(g, ", ");
        puts_(g, first);
        puts_(g, "\",");
    } else {
        puts_(g, first);
        puts_(g, " ");
        puts_(g, last);
        puts_(g, ",");
    }
    putf(g, "user%llu@example%llu.com,", id % 100000, pick(g, 50), 0);
    putf(g, "2024-%02llu-%02llu", 1 + pick(g, 12), 1 + pick(g, 28), 0);
    putf(g, "T%02llu:%02llu:%02lluZ,", pick(g, 24), pick(g, 60), pick(g, 60));
    putf(g, "%llu.%02llu,", pick(g, 100000), pick(g, 100), 0);
    puts_(g, statuses[pick(g, COUNT(statuses))]);
    puts_(g, ",");
    puts_(g, cities[pick(g, COUNT(cities))]);
    puts_(g, ",");
    gen_description(g);
    puts_(g, ",");
    unsigned ntags = pick(g, 4);
    if (ntags > 1)
        puts_(g, "\"");
    for (unsigned i = 0; i < ntags; i++) {
        if (i)
            puts_(g, ",");
        puts_(g, tags[pick(g, COUNT(tags))]);
    }
    if (ntags > 1)
        puts_(g, "\"");
    puts_(g, pick(g, 10) == 0 ? "\r\n" : "\n");
}

/* A CSV of at least `size` bytes (whole rows); NULL when out of memory. */
static char *gen_csv(size_t size, size_t *len)
{
    gen g = {.cap = size + 4096, .rng = 0x9E3779B97F4A7C15ULL};
    g.buf = malloc(g.cap);
    if (!g.buf)
        return NULL;
    puts_(&g, "id,ref,name,email,created_at,amount,status,city,description,tags\n");
    for (unsigned long long id = 1; g.len < size; id++)
        gen_row(&g, id);
    *len = g.len;
    return g.buf;
}

/* ---- the three measurements ---------------------------------------------- */

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A wall clock and a CPU clock reading. */
typedef struct stamp {
    double wall, cpu;
} stamp;

static stamp now(void)
{
    return (stamp){seconds(CLOCK_MONOTONIC), seconds(CLOCK_THREAD_CPUTIME_ID)};
}

/* (a) split 64 KiB chunks into lines with memchr; a line may span chunks. */
static uint64_t run_memchr(const char *data, size_t len)
{
    uint64_t lines = 0, bytes = 0;
    for (size_t off = 0; off < len; off += CHUNK) {
        const char *s = data + off;
        const char *e = s + (len - off < CHUNK ? len - off : CHUNK);
        const char *nl;
        while ((nl = memchr(s, '\n', (size_t)(e - s))) != NULL) {
            lines++;
            bytes += (uint64_t)(nl - s);
            s = nl + 1;
        }
        bytes += (uint64_t)(e - s);
    }
    return lines + bytes;
}

typedef struct sink {
    uint64_t records, fields, errors;
    EVP_MD_CTX *ctx; /* NULL: parser only */
    const EVP_MD *md;
    unsigned char acc;
    int failed;
} sink;

/* Hash the record's fields as the parser lays them out: back to back, each
 * followed by a NUL, so one update covers the whole row unambiguously. */
static int on_record(const csv_record *r, void *user)
{
    sink *k = user;
    k->records++;
    k->fields += r->nfields;
    k->errors += r->error != CSV_OK;
    if (!k->ctx || r->nfields == 0)
        return 0;
    const char *first = r->fields[0].data;
    const csv_field *last = &r->fields[r->nfields - 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_DigestInit_ex(k->ctx, k->md, NULL) ||
        !EVP_DigestUpdate(k->ctx, first, (size_t)(last->data + last->len + 1 - first)) ||
        !EVP_DigestFinal_ex(k->ctx, md, &mdlen)) {
        k->failed = 1;
        return 1;
    }
    k->acc ^= md[0];
    return 0;
}

/* (b)/(c) parse 64 KiB chunks; 0 on success. */
static int run_parser(const char *data, size_t len, sink *k)
{
    csv_options o = {.has_header = true};
    csv_parser *p = NULL;
    if (csv_parser_new(&o, on_record, k, &p) != CSV_STATUS_OK)
        return -1;
    csv_status st = CSV_STATUS_OK;
    for (size_t off = 0; off < len && st == CSV_STATUS_OK; off += CHUNK)
        st = csv_parser_feed(p, data + off, len - off < CHUNK ? len - off : CHUNK);
    if (st == CSV_STATUS_OK)
        st = csv_parser_finish(p);
    csv_parser_free(p);
    return st == CSV_STATUS_OK && !k->failed ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    if (mib == 0)
        mib = 256;
    size_t len = 0;
    char *data = gen_csv(mib << 20, &len);
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!data || !md || !ctx) {
        fprintf(stderr, "csv_parser_bench: setup failed (memory or OpenSSL)\n");
        return 1;
    }

    /* [clock][measurement][run]: clock 0 wall, 1 CPU; a, b, c */
    double t[2][3][RUNS];
    uint64_t lines = 0;
    sink last = {0};
    for (int i = 0; i < RUNS; i++) {
        stamp s0 = now();
        lines = run_memchr(data, len);
        stamp s1 = now();
        sink plain = {0};
        int rc = run_parser(data, len, &plain);
        stamp s2 = now();
        sink hashed = {.ctx = ctx, .md = md};
        rc |= run_parser(data, len, &hashed);
        stamp s3 = now();
        if (rc != 0 || plain.records != hashed.records) {
            fprintf(stderr, "csv_parser_bench: parse failed\n");
            return 1;
        }
        stamp s[4] = {s0, s1, s2, s3};
        for (int m = 0; m < 3; m++) {
            t[0][m][i] = s[m + 1].wall - s[m].wall;
            t[1][m][i] = s[m + 1].cpu - s[m].cpu;
        }
        last = hashed;
    }

    double mb = (double)len / 1e6, rate[2][3];
    for (int c = 0; c < 2; c++)
        for (int m = 0; m < 3; m++)
            rate[c][m] = mb / median(t[c][m], RUNS);
    printf("input: %.1f MB (%zu MiB), %llu records, %llu fields, %llu malformed, "
           "%.0f bytes/record, fed in %zu KiB chunks (checksums %llx/%02x)\n",
           mb, len >> 20, (unsigned long long)last.records, (unsigned long long)last.fields,
           (unsigned long long)last.errors, (double)len / (double)last.records, CHUNK >> 10,
           (unsigned long long)lines, last.acc);
    printf("median of %d runs, MB/s = 10^6 input bytes per second\n", RUNS);
    static const char *const names[3] = {"(a) memchr line split (baseline)", "(b) csv parser",
                                         "(c) csv parser + SHA-256/record"};
    for (int c = 0; c < 2; c++) {
        printf("%s\n", c == 0 ? "wall clock:" : "thread CPU time:");
        for (int m = 0; m < 3; m++)
            printf("  %-33s %6.0f MB/s  %.3fx baseline\n", names[m], rate[c][m],
                   rate[c][m] / rate[c][0]);
        printf("  (c)/(b) = %.2f; target (c) >= 300 MB/s: %s\n", rate[c][2] / rate[c][1],
               rate[c][2] >= 300 ? "met" : "NOT met");
    }

    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    free(data);
    return last.errors == 0 ? 0 : 1;
}
