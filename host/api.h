/* api.h — the const table of host functions handed to every plugin. */
#ifndef HOSTD_API_H
#define HOSTD_API_H

#include "ingest/plugin.h"

const ingest_host_api *api_table(void);

#endif
