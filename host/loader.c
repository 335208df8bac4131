/* loader.c — private copy, dlopen(RTLD_NOW|RTLD_LOCAL), ABI check, config, init. */
#include "loader.h"

#include <ctype.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "util.h"

/* Smallest descriptor we accept: everything up to and including init. */
#define MIN_DESCRIPTOR_SIZE (offsetof(ingest_plugin, init) + sizeof(void *))

int loader_name_from_file(const char *file, char *name, size_t name_len)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t len = strlen(base);
    if (len <= 10 || strncmp(base, "ingest_", 7) != 0 || strcmp(base + len - 3, ".so") != 0)
        return 0;
    size_t n = len - 10;
    if (n + 1 > name_len)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = base[7 + i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '_'))
            return 0;
        name[i] = c;
    }
    name[n] = '\0';
    return 1;
}

int loader_check_file(const char *path, char *err, size_t err_len)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        snprintf(err, err_len, "cannot stat %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(err, err_len, "refusing symlink %s: install the file itself", path);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "%s is not a regular file", path);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, err_len, "refusing %s: it is group- or world-writable", path);
        return -1;
    }
    return 0;
}

static int copy_private(hostd *h, const char *path, const char *name, char **copy_path, char *err,
                        size_t err_len)
{
    static atomic_uint seq;
    char *dst = NULL;
    if (asprintf(&dst, "%s/ingest_%s.%u.so", h->runtime_dir, name, atomic_fetch_add(&seq, 1)) < 0)
        return snprintf(err, err_len, "out of memory"), -1;
    if (util_copy_file(path, dst) < 0) {
        snprintf(err, err_len, "cannot copy %s to %s: %s", path, dst, strerror(errno));
        free(dst);
        return -1;
    }
    *copy_path = dst;
    return 0;
}

/* dlopen() maps segments without checking they lie inside the file; a
 * truncated copy (say, a plain cp caught mid-way) then faults with SIGBUS.
 * Check the ELF header and every segment against the file's size first. */
static int elf_check(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    Elf64_Ehdr eh;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    const char *why = NULL;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG))
        why = "not an ELF file";
    else if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_DYN)
        why = "not a 64-bit ELF shared object";
    else if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > (uint64_t)st.st_size ||
             (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size - eh.e_phoff)
        why = "truncated: program headers lie past the end of the file";
    for (int i = 0; !why && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) !=
            (ssize_t)sizeof ph)
            why = "truncated: cannot read a program header";
        else if (ph.p_type == PT_LOAD && (ph.p_offset > (uint64_t)st.st_size ||
                                          ph.p_filesz > (uint64_t)st.st_size - ph.p_offset))
            why = "truncated: a loadable segment lies past the end of the file";
    }
    close(fd);
    if (why) {
        snprintf(err, err_len, "not a loadable shared object: %s", why);
        return -1;
    }
    return 0;
}

/* Find the entry point, explaining a mismatch in ABI major by name. */
static ingest_entry_fn find_entry(void *dl, char *err, size_t err_len)
{
    void *sym = dlsym(dl, INGEST_ENTRY_SYMBOL);
    if (sym) {
        ingest_entry_fn fn;
        memcpy(&fn, &sym, sizeof fn);
        return fn;
    }
    for (int major = 0; major < 32; major++) {
        char other[32];
        snprintf(other, sizeof other, "ingest_plugin_v%d", major);
        if (major != INGEST_ABI_MAJOR && dlsym(dl, other)) {
            snprintf(err, err_len,
                     "ABI mismatch: plugin exports %s (ABI major %d), this host speaks ABI "
                     "major %d",
                     other, major, INGEST_ABI_MAJOR);
            return NULL;
        }
    }
    snprintf(err, err_len, "not an ingest plugin: entry symbol %s not found", INGEST_ENTRY_SYMBOL);
    return NULL;
}

/* Whether a descriptor of `size` bytes holds the whole member. */
#define DESC_COVERS(size, member)                                                                  \
    ((size) >= offsetof(ingest_plugin, member) + sizeof(((ingest_plugin *)0)->member))

/* Members the plugin's descriptor ends inside of read as zero, not as the
 * first bytes of a half-copied pointer. */
static void zero_uncovered(ingest_plugin *c, uint32_t size)
{
    if (!DESC_COVERS(size, auth_kinds_also))
        c->auth_kinds_also = 0;
    if (!DESC_COVERS(size, mint_token))
        c->mint_token = NULL;
    if (!DESC_COVERS(size, on_authorized))
        c->on_authorized = NULL;
    if (!DESC_COVERS(size, webhook_ack))
        c->webhook_ack = INGEST_WEBHOOK_ACK_DEFAULT;
}

/* An acknowledgement style of a newer minor falls back to the default one:
 * the deliveries are stored either way. */
static void check_webhook_ack(instance *inst)
{
    ingest_plugin *c = &inst->desc;
    if ((unsigned)c->webhook_ack > INGEST_WEBHOOK_ACK_EMPTY_200) {
        log_write(INGEST_LOG_WARN, &(log_fields){.plugin = inst->name},
                  "webhook_ack %u is not known to this host: deliveries get the default reply",
                  (unsigned)c->webhook_ack);
        c->webhook_ack = INGEST_WEBHOOK_ACK_DEFAULT;
    }
}

/* ABI minor 2 auth kinds. Kinds this host does not know (a newer minor's)
 * are dropped so the plugin still serves the ones it shares with us; app
 * connections cannot work without a mint_token callback, so such a plugin
 * is refused before anyone creates one. */
static int check_auth_kinds(instance *inst, char *err, size_t err_len)
{
    ingest_plugin *c = &inst->desc;
    if (c->auth_kinds_also & ~INSTANCE_AUTH_KNOWN) {
        log_write(INGEST_LOG_WARN, &(log_fields){.plugin = inst->name},
                  "auth_kinds_also has kinds this host does not know (0x%x): ignored",
                  c->auth_kinds_also & ~INSTANCE_AUTH_KNOWN);
        c->auth_kinds_also &= INSTANCE_AUTH_KNOWN;
    }
    if (instance_accepts_auth(inst, INGEST_AUTH_APP) && !c->mint_token) {
        snprintf(err, err_len,
                 "descriptor declares auth kind app%s but no mint_token callback: app "
                 "connections would have no way to get a token",
                 c->auth.kind == INGEST_AUTH_APP ? "" : " (in auth_kinds_also)");
        return -1;
    }
    return 0;
}

/* Check the header and copy the descriptor by its declared size. */
static int take_descriptor(instance *inst, const ingest_plugin *d, char *err, size_t err_len)
{
    if (!d) {
        snprintf(err, err_len, "entry point returned no descriptor");
        return -1;
    }
    if (d->hdr.magic != INGEST_ABI_MAGIC) {
        snprintf(err, err_len, "bad descriptor magic 0x%08x (expected 0x%08x)", d->hdr.magic,
                 INGEST_ABI_MAGIC);
        return -1;
    }
    if (d->hdr.abi_major != INGEST_ABI_MAJOR) {
        snprintf(err, err_len,
                 "ABI mismatch: plugin built for ABI major %u, this host speaks ABI major %d",
                 d->hdr.abi_major, INGEST_ABI_MAJOR);
        return -1;
    }
    if (d->hdr.struct_size < MIN_DESCRIPTOR_SIZE) {
        snprintf(err, err_len, "descriptor too small: %u bytes, need at least %zu",
                 d->hdr.struct_size, (size_t)MIN_DESCRIPTOR_SIZE);
        return -1;
    }
    size_t take = d->hdr.struct_size < sizeof inst->desc ? d->hdr.struct_size : sizeof inst->desc;
    memset(&inst->desc, 0, sizeof inst->desc);
    memcpy(&inst->desc, d, take);
    zero_uncovered(&inst->desc, d->hdr.struct_size);
    const ingest_plugin *c = &inst->desc;
    if (!c->name || strcmp(c->name, inst->name) != 0) {
        snprintf(err, err_len, "descriptor name '%s' does not match file name ingest_%s.so",
                 c->name ? c->name : "(null)", inst->name);
        return -1;
    }
    if (!c->version || !*c->version) {
        snprintf(err, err_len, "descriptor has no version");
        return -1;
    }
    if (!c->init) {
        snprintf(err, err_len, "descriptor has no init callback");
        return -1;
    }
    if (c->n_streams && (!c->streams || c->stream_size == 0)) {
        snprintf(err, err_len, "descriptor declares streams without an element size");
        return -1;
    }
    if (check_auth_kinds(inst, err, err_len) < 0)
        return -1;
    check_webhook_ack(inst);
    inst->version = strdup(c->version);
    inst->description = c->description ? strdup(c->description) : NULL;
    return inst->version ? 0 : -1;
}

plugin_conf *loader_conf_for(const instance *inst, const hostd_config *cfg, char *err,
                             size_t err_len)
{
    plugin_conf *conf = NULL;
    const ingest_plugin *d = &inst->desc;
    if (plugin_conf_build(inst->name, d->config, d->n_config, d->config_field_size, d->conf_size,
                          config_plugin_group(cfg, inst->name), cfg->path, &conf, err, err_len) < 0)
        return NULL;
    return conf;
}

static int call_init(instance *inst, char *err, size_t err_len)
{
    inst->in_init = 1;
    inst->init_error[0] = '\0';
    void *state = NULL;
    int rc = inst->desc.init(inst->host->api, inst, inst->conf->data, &state);
    inst->in_init = 0;
    if (rc != INGEST_OK) {
        snprintf(err, err_len, "init failed (status %d)%s%s", rc, inst->init_error[0] ? ": " : "",
                 inst->init_error);
        return -1;
    }
    inst->state = state;
    inst->initialized = 1;
    return 0;
}

static void register_instance_metrics(instance *inst)
{
    char labels[160];
    snprintf(labels, sizeof labels, "plugin=\"%s\"", inst->name);
    metrics_registry *m = inst->host->metrics;
    inst->m_ticks = metrics_register(m, METRIC_COUNTER, "ingest_plugin_ticks_total",
                                     "Scheduled ticks run", labels, inst, NULL, 0);
    inst->m_tick_failures =
        metrics_register(m, METRIC_COUNTER, "ingest_plugin_tick_failures_total",
                         "Scheduled ticks that returned an error", labels, inst, NULL, 0);
    inst->m_signals = metrics_register(m, METRIC_COUNTER, "ingest_signals_stored_total",
                                       "Signals newly stored", labels, inst, NULL, 0);
    inst->m_rejected = metrics_register(m, METRIC_COUNTER, "ingest_records_rejected_total",
                                        "Records the plugin rejected (stored as dead letters)",
                                        labels, inst, NULL, 0);
}

instance *loader_load(hostd *h, const hostd_config *cfg, const char *path, const char *name,
                      char **version, char *err, size_t err_len)
{
    *version = NULL;
    if (loader_check_file(path, err, err_len) < 0)
        return NULL;
    instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        return snprintf(err, err_len, "out of memory"), NULL;
    inst->host = h;
    inst->name = strdup(name);
    inst->file = strdup(path);
    if (!inst->name || !inst->file)
        goto fail_oom;
    if (copy_private(h, path, name, &inst->copy_path, err, err_len) < 0)
        goto fail;
    /* Hash the copy: it is exactly the code that runs, even if the original
     * is replaced while we load. */
    if (util_sha256_file(inst->copy_path, inst->sha256) < 0) {
        snprintf(err, err_len, "cannot read %s: %s", inst->copy_path, strerror(errno));
        goto fail;
    }
    if (elf_check(inst->copy_path, err, err_len) < 0)
        goto fail;
    inst->dl = dlopen(inst->copy_path, RTLD_NOW | RTLD_LOCAL);
    if (!inst->dl) {
        const char *why = dlerror();
        size_t copy_len = strlen(inst->copy_path);
        /* dlerror() names our private copy; the operator knows the original. */
        if (why && strncmp(why, inst->copy_path, copy_len) == 0 && why[copy_len] == ':')
            why += copy_len + 2;
        snprintf(err, err_len, "not a loadable shared object: %s", why ? why : "unknown error");
        goto fail;
    }
    ingest_entry_fn entry = find_entry(inst->dl, err, err_len);
    if (!entry || take_descriptor(inst, entry(), err, err_len) < 0)
        goto fail;
    *version = strdup(inst->version);
    inst->conf = loader_conf_for(inst, cfg, err, err_len);
    if (!inst->conf)
        goto fail;
    plugin_conf_redact(inst->conf, 1);
    register_instance_metrics(inst);
    if (call_init(inst, err, err_len) < 0)
        goto fail;
    inst->status = INSTANCE_LOADED;
    inst->since_us = util_now_us();
    return inst;
fail_oom:
    snprintf(err, err_len, "out of memory");
fail:
    instance_destroy(inst);
    return NULL;
}
