/* loader.h — turn one ingest_<name>.so into an initialized instance. */
#ifndef HOSTD_LOADER_H
#define HOSTD_LOADER_H

#include <stddef.h>

#include "instance.h"

/* Extract <name> from ".../ingest_<name>.so"; 0 if the name does not match. */
int loader_name_from_file(const char *file, char *name, size_t name_len);

/* Refuse anything but a regular, non-symlink file that is not group- or
 * world-writable. Writes the reason into err. */
int loader_check_file(const char *path, char *err, size_t err_len);

/* Load a private copy of `path`, check the ABI, validate the plugin's config
 * section of `cfg` and call init(). Runs off the event loop. On success
 * returns a LOADED instance (not yet in the registry, schedules not
 * started); on failure NULL with the reason in err. *version receives the
 * plugin's declared version when it got that far (malloc'd, may be NULL). */
instance *loader_load(hostd *h, const hostd_config *cfg, const char *path, const char *name,
                      char **version, char *err, size_t err_len);

/* Build the conf the plugin would get from cfg, to compare fingerprints
 * without loading. NULL with err on invalid config. */
plugin_conf *loader_conf_for(const instance *inst, const hostd_config *cfg, char *err,
                             size_t err_len);

#endif
