/* log.h — structured JSON logging, one object per line, with secret redaction. */
#ifndef HOSTD_LOG_H
#define HOSTD_LOG_H

#include <stdarg.h>

#include "ingest/plugin.h"

/* Optional context fields of a log line; NULL members are omitted. */
typedef struct log_fields {
    const char *plugin;
    const char *tenant;
    const char *job;
    const char *delivery;
} log_fields;

/* Where lines go (a file descriptor, default 2) and the lowest level written. */
void log_setup(int fd, ingest_log_level min_level);
void log_set_level(ingest_log_level min_level);
ingest_log_level log_get_level(void);

/* Parse "debug" | "info" | "warn" | "error"; returns -1 on anything else. */
int log_level_parse(const char *text);

void log_write(ingest_log_level level, const log_fields *fields, const char *fmt, ...)
    INGEST_PRINTF(3, 4);
void log_writev(ingest_log_level level, const log_fields *fields, const char *fmt, va_list ap);

/* Secrets registered here are replaced by "[REDACTED]" in every message.
 * The text is copied; strings shorter than 4 bytes are ignored (they would
 * redact ordinary words). Registrations are counted: a secret stays masked
 * until it was removed as often as it was added. Thread-safe. */
void log_redact_add(const char *secret);
void log_redact_remove(const char *secret);
void log_redact_clear(void);

/* Redact registered secrets from `text`; returns a malloc'd copy (caller frees). */
char *log_redact(const char *text);

#define log_debug(...) log_write(INGEST_LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_write(INGEST_LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_write(INGEST_LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_write(INGEST_LOG_ERROR, NULL, __VA_ARGS__)

#endif
