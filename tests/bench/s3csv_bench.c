/* s3csv_bench.c — the S3/CSV connector's CSV parser alone over one file,
 * the baseline s3csv_bench.sh prints next to the end-to-end import and
 * PostgreSQL's COPY of the same file.
 *
 * The file is mapped and fed to the parser in 64 KiB chunks, as a download
 * would arrive; the callback only counts records (and the bytes of their
 * fields, so nothing is optimised away). Prints one line:
 *   records=<n> bytes=<n> best_s=<s> mb_s=<MB/s of the best of 3 runs>
 *
 * Usage: s3csv_bench FILE [DELIMITER] */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv_parser.h"

#define CHUNK ((size_t)64 * 1024)
#define RUNS 3

typedef struct tally {
    uint64_t records, field_bytes;
} tally;

static int count_record(const csv_record *rec, void *user)
{
    tally *t = user;
    t->records++;
    for (size_t i = 0; i < rec->nfields; i++)
        t->field_bytes += rec->fields[i].len;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass over the mapped file; seconds, or -1 on a parser failure. */
static double parse_once(const char *data, size_t len, char delimiter, tally *t)
{
    csv_options o = {.delimiter = delimiter, .has_header = true};
    csv_parser *p = NULL;
    if (csv_parser_new(&o, count_record, t, &p) != CSV_STATUS_OK)
        return -1;
    double t0 = now_s();
    csv_status st = CSV_STATUS_OK;
    for (size_t off = 0; st == CSV_STATUS_OK && off < len; off += CHUNK)
        st = csv_parser_feed(p, data + off, len - off < CHUNK ? len - off : CHUNK);
    if (st == CSV_STATUS_OK)
        st = csv_parser_finish(p);
    double took = now_s() - t0;
    csv_parser_free(p);
    return st == CSV_STATUS_OK ? took : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [DELIMITER]\n", argv[0]);
        return 2;
    }
    char delimiter = argc > 2 ? argv[2][0] : ',';
    int fd = open(argv[1], O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size == 0) {
        perror(argv[1]);
        return 1;
    }
    size_t len = (size_t)sb.st_size;
    const char *data = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    double best = 0;
    tally t = {0};
    for (int run = 0; run < RUNS; run++) {
        t = (tally){0};
        double s = parse_once(data, len, delimiter, &t);
        if (s < 0) {
            fprintf(stderr, "parser failed\n");
            return 1;
        }
        if (run == 0 || s < best)
            best = s;
    }
    printf("records=%llu bytes=%zu best_s=%.3f mb_s=%.1f\n", (unsigned long long)t.records, len,
           best, (double)len / best / 1e6);
    munmap((void *)data, len);
    return 0;
}
