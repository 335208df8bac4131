/* reload.c — prepare off the loop (file I/O, dlopen, init), apply on the loop
 * (swap what serves), then drain what was replaced. A failed step leaves the
 * old generation serving. */
#include "reload.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "instance.h"
#include "loader.h"
#include "log.h"
#include "registry.h"
#include "scheduler.h"
#include "util.h"

typedef enum { ACT_ADD, ACT_REPLACE, ACT_REMOVE, ACT_FAIL, ACT_UNCHANGED } action_kind;

typedef struct action {
    action_kind kind;
    char *name;
    char *file;
    instance *old_inst; /* reference held until apply */
    instance *new_inst;
    char *error;
    char *new_version;
    struct action *next;
} action;

typedef struct plan {
    hostd_config *cfg;       /* the new config; NULL when it was invalid */
    crypto_keyring *keyring; /* built from cfg */
    char error[1024];        /* why nothing changed */
    action *actions;
} plan;

typedef struct waiter {
    reload_done_fn done;
    void *arg;
    struct waiter *next;
} waiter;

struct reload_state {
    pthread_t thread;
    int running;
    plan *result;
    waiter *current, *queued;
};

int reload_init(hostd *h)
{
    h->reload = calloc(1, sizeof *h->reload);
    return h->reload ? 0 : -1;
}

static action *add_action(plan *p, action_kind kind, const char *name, const char *file)
{
    action *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->kind = kind;
    a->name = strdup(name);
    a->file = file ? strdup(file) : NULL;
    action **tail = &p->actions;
    while (*tail)
        tail = &(*tail)->next;
    *tail = a;
    return a;
}

static void free_plan(plan *p)
{
    if (!p)
        return;
    for (action *a = p->actions, *next; a; a = next) {
        next = a->next;
        free(a->name);
        free(a->file);
        free(a->error);
        free(a->new_version);
        free(a);
    }
    config_free(p->cfg);
    crypto_keyring_free(p->keyring);
    free(p);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Plugin file names in the directory, sorted. */
static char **scan_dir(const char *dir, size_t *count, char *err, size_t err_len)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "plugin_dir %s is not a readable directory: %s", dir,
                 errno ? strerror(errno) : "not a directory");
        return NULL;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, err_len, "refusing plugin_dir %s: it is group- or world-writable", dir);
        return NULL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_len, "cannot open plugin_dir %s: %s", dir, strerror(errno));
        return NULL;
    }
    size_t n = 0, cap = 16;
    char **names = calloc(cap + 1, sizeof *names);
    if (!names) {
        closedir(d);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    struct dirent *e;
    char plugin[256];
    while ((e = readdir(d))) {
        if (!loader_name_from_file(e->d_name, plugin, sizeof plugin))
            continue;
        if (n == cap) {
            char **grown = realloc(names, (cap * 2 + 1) * sizeof *names);
            if (!grown)
                break;
            names = grown;
            cap *= 2;
        }
        names[n++] = strdup(e->d_name);
        names[n] = NULL;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    *count = n;
    return names;
}

/* Decide what to do with one file, loading a new instance when needed. */
static void plan_file(hostd *h, plan *p, const char *file, const char *name)
{
    char err[1024] = "";
    instance *current = registry_acquire(h->plugins, name);
    char sha[65];
    if (current && util_sha256_file(file, sha) == 0 && strcmp(sha, current->sha256) == 0) {
        plugin_conf *conf = loader_conf_for(current, p->cfg, err, sizeof err);
        int same = conf && strcmp(conf->fingerprint, current->conf->fingerprint) == 0;
        plugin_conf_free(conf);
        if (same || !conf) {
            action *a = add_action(p, same ? ACT_UNCHANGED : ACT_FAIL, name, file);
            if (a) {
                a->old_inst = current;
                a->error = conf ? NULL : strdup(err);
            } else {
                instance_release(current);
            }
            return;
        }
    }
    char *version = NULL;
    instance *fresh = loader_load(h, p->cfg, file, name, &version, err, sizeof err);
    action *a = add_action(p, fresh ? (current ? ACT_REPLACE : ACT_ADD) : ACT_FAIL, name, file);
    if (!a) {
        instance_destroy(fresh);
        if (current)
            instance_release(current);
        free(version);
        return;
    }
    a->old_inst = current;
    a->new_inst = fresh;
    a->new_version = version;
    a->error = fresh ? NULL : strdup(err);
}

typedef struct seen_ctx {
    plan *p;
    char **files;
    size_t n;
    const char *dir;
} seen_ctx;

/* Instances whose file disappeared are removed (failed ones just forgotten). */
static void plan_missing(instance *inst, void *arg)
{
    seen_ctx *s = arg;
    if (inst->status == INSTANCE_DRAINING)
        return;
    char want[512];
    snprintf(want, sizeof want, "ingest_%s.so", inst->name);
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->files[i], want) == 0)
            return;
    action *a = add_action(s->p, ACT_REMOVE, inst->name, inst->file);
    if (a) {
        instance_acquire(inst);
        a->old_inst = inst;
    }
}

static plan *prepare(hostd *h)
{
    plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cfg = config_load(h->config_path, p->error, sizeof p->error);
    if (!p->cfg)
        return p;
    p->keyring = hostd_load_keyring(p->cfg, p->error, sizeof p->error);
    if (!p->keyring) {
        config_free(p->cfg);
        p->cfg = NULL;
        return p;
    }
    size_t n = 0;
    char **files = scan_dir(p->cfg->plugin_dir, &n, p->error, sizeof p->error);
    if (!files) {
        config_free(p->cfg);
        p->cfg = NULL;
        return p;
    }
    for (size_t i = 0; i < n; i++) {
        char path[4096], name[256];
        snprintf(path, sizeof path, "%s/%s", p->cfg->plugin_dir, files[i]);
        loader_name_from_file(files[i], name, sizeof name);
        plan_file(h, p, path, name);
    }
    seen_ctx s = {p, files, n, p->cfg->plugin_dir};
    registry_each(h->plugins, plan_missing, &s);
    util_strv_free(files);
    return p;
}

void reload_begin_drain(hostd *h, instance *inst)
{
    registry_lock(h->plugins);
    inst->status = INSTANCE_DRAINING;
    inst->since_us = util_now_us();
    registry_unlock(h->plugins);
    inst->drain_started_ms = util_mono_ms();
    scheduler_stop(inst);
    metrics_hide_owner(h->metrics, inst);
    log_write(INGEST_LOG_INFO, &(log_fields){.plugin = inst->name},
              "draining version %s (%d unit(s) of work in flight)", inst->version,
              atomic_load(&inst->inflight));
}

static json_object *named(const char *name, const char *key, const char *value)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    if (key)
        json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
    return o;
}

static void apply_action(hostd *h, action *a, json_object *report)
{
    log_fields f = {.plugin = a->name};
    switch (a->kind) {
    case ACT_ADD:
        registry_add(h->plugins, a->new_inst);
        scheduler_start(a->new_inst);
        log_write(INGEST_LOG_INFO, &f, "loaded version %s from %s", a->new_inst->version, a->file);
        json_object_array_add(json_object_object_get(report, "added"),
                              named(a->name, "version", a->new_inst->version));
        break;
    case ACT_REPLACE: {
        json_object *o = named(a->name, "from", a->old_inst->version);
        json_object_object_add(o, "to", json_object_new_string(a->new_inst->version));
        json_object_array_add(json_object_object_get(report, "replaced"), o);
        log_write(INGEST_LOG_INFO, &f, "replacing version %s with %s", a->old_inst->version,
                  a->new_inst->version);
        reload_begin_drain(h, a->old_inst);
        registry_add(h->plugins, a->new_inst);
        scheduler_start(a->new_inst);
        break;
    }
    case ACT_REMOVE:
        json_object_array_add(json_object_object_get(report, "removed"),
                              named(a->name, "version", a->old_inst->version));
        if (a->old_inst->status == INSTANCE_FAILED) {
            registry_remove(h->plugins, a->old_inst);
            instance_release(a->old_inst);
            instance_destroy(a->old_inst);
            a->old_inst = NULL;
            return;
        }
        log_write(INGEST_LOG_INFO, &f, "removed from the plugins directory");
        reload_begin_drain(h, a->old_inst);
        break;
    case ACT_FAIL: {
        json_object *o = named(a->name, "file", a->file);
        json_object_object_add(o, "error", json_object_new_string(a->error));
        if (a->old_inst) {
            json_object_object_add(o, "kept_version", json_object_new_string(a->old_inst->version));
            instance_set_error(a->old_inst, "reload refused, still serving version %s: %s",
                               a->old_inst->version, a->error);
            log_write(INGEST_LOG_ERROR, &f, "reload refused, version %s keeps serving: %s",
                      a->old_inst->version, a->error);
        } else {
            instance *failed = instance_new_failed(h, a->name, a->file, a->new_version, a->error);
            if (failed)
                registry_add(h->plugins, failed);
            log_write(INGEST_LOG_ERROR, &f, "refused %s: %s", a->file, a->error);
        }
        json_object_array_add(json_object_object_get(report, "failed"), o);
        break;
    }
    case ACT_UNCHANGED:
        instance_set_error(a->old_inst, NULL);
        json_object_array_add(json_object_object_get(report, "unchanged"),
                              json_object_new_string(a->name));
        break;
    }
    if (a->old_inst)
        instance_release(a->old_inst);
}

static json_object *apply(hostd *h, plan *p)
{
    json_object *report = json_object_new_object();
    if (!p->cfg) {
        if (atomic_load(&h->plugins_loaded))
            log_error("reload refused, keeping the running configuration: %s", p->error);
        else
            log_error("no plugins loaded: %s", p->error);
        json_object_object_add(report, "ok", json_object_new_boolean(0));
        json_object_object_add(report, "error", json_object_new_string(p->error));
        metrics_add(h->m_reloads_failed, 1);
        return report;
    }
    json_object_object_add(report, "ok", json_object_new_boolean(1));
    const char *lists[] = {"added", "replaced", "removed", "unchanged", "failed"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        json_object_object_add(report, lists[i], json_object_new_array());
    if (h->cfg) {
        char keys[512];
        config_restart_keys(h->cfg, p->cfg, keys, sizeof keys);
        json_object_object_add(report, "restart_required", json_object_new_string(keys));
        if (keys[0])
            log_warn("reload: changes to %s take effect after a restart", keys);
    }
    /* Restart-only keys are recorded now and take effect at the next start. */
    hostd_set_config(h, p->cfg);
    p->cfg = NULL;
    log_set_level((ingest_log_level)log_level_parse(h->cfg->log_level));
    hostd_set_keyring(h, p->keyring);
    p->keyring = NULL;
    for (action *a = p->actions; a; a = a->next)
        apply_action(h, a, report);
    metrics_add(h->m_reloads_ok, 1);
    return report;
}

int reload_startup(hostd *h, char *err, size_t err_len)
{
    plan *p = prepare(h);
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (!p->cfg && !h->cfg) {
        snprintf(err, err_len, "%s", p->error);
        free_plan(p);
        return -1;
    }
    json_object *report = apply(h, p);
    json_object_put(report);
    free_plan(p);
    atomic_store(&h->plugins_loaded, 1);
    return 0;
}

static void *reload_thread(void *arg)
{
    hostd *h = arg;
    h->reload->result = prepare(h);
    return NULL;
}

static void start_thread(hostd *h);

static void reload_finished(void *arg)
{
    hostd *h = arg;
    reload_state *rs = h->reload;
    pthread_join(rs->thread, NULL);
    rs->running = 0;
    json_object *report = NULL;
    if (rs->result) {
        report = apply(h, rs->result);
    } else {
        report = json_object_new_object();
        json_object_object_add(report, "ok", json_object_new_boolean(0));
        json_object_object_add(report, "error", json_object_new_string("out of memory"));
    }
    free_plan(rs->result);
    rs->result = NULL;
    log_info("reload finished: %s", json_object_to_json_string_ext(report, JSON_C_TO_STRING_PLAIN));
    for (waiter *w = rs->current, *next; w; w = next) {
        next = w->next;
        if (w->done)
            w->done(report, w->arg);
        free(w);
    }
    rs->current = NULL;
    json_object_put(report);
    if (rs->queued && !atomic_load(&h->shutting_down))
        start_thread(h);
}

static void *reload_thread_main(void *arg)
{
    hostd *h = arg;
    reload_thread(h);
    loop_post(h->mailbox, reload_finished, h);
    return NULL;
}

static void start_thread(hostd *h)
{
    reload_state *rs = h->reload;
    rs->current = rs->queued;
    rs->queued = NULL;
    rs->running = 1;
    if (pthread_create(&rs->thread, NULL, reload_thread_main, h) != 0) {
        rs->running = 0;
        log_error("reload: cannot start a thread");
    }
}

void reload_request(hostd *h, reload_done_fn done, void *arg)
{
    reload_state *rs = h->reload;
    waiter *w = calloc(1, sizeof *w);
    if (w) {
        w->done = done;
        w->arg = arg;
        waiter **tail = &rs->queued;
        while (*tail)
            tail = &(*tail)->next;
        *tail = w;
    }
    if (!rs->running && !atomic_load(&h->shutting_down))
        start_thread(h);
}

void reload_cancel_waiter(hostd *h, void *arg)
{
    waiter *lists[] = {h->reload->current, h->reload->queued};
    for (int i = 0; i < 2; i++)
        for (waiter *w = lists[i]; w; w = w->next)
            if (w->arg == arg)
                w->done = NULL;
}

int reload_busy(hostd *h) { return h->reload && h->reload->running; }

void reload_join(hostd *h)
{
    reload_state *rs = h->reload;
    if (rs && rs->running) {
        pthread_join(rs->thread, NULL);
        rs->running = 0;
        /* Apply what was prepared so its instances are owned and torn down. */
        if (rs->result) {
            json_object_put(apply(h, rs->result));
            free_plan(rs->result);
            rs->result = NULL;
        }
    }
}

static void destroy_task(void *arg)
{
    instance *inst = arg;
    char name[256], version[128];
    snprintf(name, sizeof name, "%s", inst->name);
    snprintf(version, sizeof version, "%s", inst->version ? inst->version : "?");
    instance_destroy(inst);
    log_write(INGEST_LOG_INFO, &(log_fields){.plugin = name}, "unloaded version %s", version);
}

typedef struct drained {
    instance *list[64];
    int n;
    instance *stuck[64];
    int n_stuck;
    int64_t stuck_before_ms;
} drained;

static void find_drained(instance *inst, void *arg)
{
    drained *d = arg;
    if (inst->status != INSTANCE_DRAINING)
        return;
    if (atomic_load(&inst->inflight) == 0) {
        if (d->n < 64)
            d->list[d->n++] = inst;
    } else if (!inst->drain_warned && inst->drain_started_ms < d->stuck_before_ms &&
               d->n_stuck < 64) {
        d->stuck[d->n_stuck++] = inst;
    }
}

void reload_collect_drained(hostd *h, int inline_destroy)
{
    drained d = {.n = 0, .n_stuck = 0};
    d.stuck_before_ms = util_mono_ms() - (int64_t)h->cfg->drain_timeout_s * 1000;
    registry_each(h->plugins, find_drained, &d);
    for (int i = 0; i < d.n_stuck; i++) {
        /* Its code is still running: unloading would crash. Say so, keep waiting. */
        instance *inst = d.stuck[i];
        inst->drain_warned = 1;
        instance_set_error(inst, "still draining after %d s: %d unit(s) of work in flight",
                           h->cfg->drain_timeout_s, atomic_load(&inst->inflight));
        log_write(INGEST_LOG_WARN, &(log_fields){.plugin = inst->name},
                  "version %s still draining after %d s: %d unit(s) of work in flight",
                  inst->version, h->cfg->drain_timeout_s, atomic_load(&inst->inflight));
    }
    for (int i = 0; i < d.n; i++) {
        registry_remove(h->plugins, d.list[i]);
        if (inline_destroy || workers_submit(h->workers, destroy_task, d.list[i]) < 0)
            destroy_task(d.list[i]);
    }
}

void reload_free(hostd *h)
{
    if (!h->reload)
        return;
    for (waiter *w = h->reload->queued, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    for (waiter *w = h->reload->current, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    free(h->reload);
    h->reload = NULL;
}
