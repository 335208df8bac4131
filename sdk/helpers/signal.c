/* signal.c — a signal from json-c objects, serialized once and emitted. */
#include <stdlib.h>

#include "ingest/helpers.h"

int ingest_emit_json(const ingest_host_api *api, ingest_run *run, const ingest_json_signal *sig)
{
    if (!api || !sig || !sig->kind || !*sig->kind || !sig->dedupe_key || !*sig->dedupe_key ||
        !json_object_is_type(sig->payload, json_type_object))
        return INGEST_EINVAL;
    char *payload = ingest_json_text(sig->payload);
    char *raw = sig->raw ? ingest_json_text(sig->raw) : NULL;
    char *prov = sig->provenance ? ingest_json_text(sig->provenance) : NULL;
    int rc = INGEST_ENOMEM;
    if (payload && (raw || !sig->raw) && (prov || !sig->provenance)) {
        ingest_signal s = {
            .hdr = INGEST_ABI_HEADER(ingest_signal),
            .kind = sig->kind,
            .dedupe_key = sig->dedupe_key,
            .occurred_at_us = sig->occurred_at_us ? sig->occurred_at_us : api->now_us(),
            .payload_json = payload,
            .raw_json = raw ? raw : sig->raw_text,
            .tenant_id = sig->tenant_id,
            .source_id = sig->source_id,
            .source_type = sig->source_type,
            .source_uri = sig->source_uri,
            .provenance_json = prov,
        };
        rc = api->emit(run, &s);
    }
    free(payload);
    free(raw);
    free(prov);
    return rc;
}
