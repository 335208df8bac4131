#!/usr/bin/env bash
# Manage a throw-away, project-local PostgreSQL cluster for development and tests.
#
#   pg.sh start DIR [PORT] | stop DIR [MODE] | url DIR
#
# The script lives in the SDK's test kit (sdk/testing/ingest_testing/pg.sh),
# where out-of-tree connector tests find it too; see that file for details.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../sdk/testing/ingest_testing/pg.sh" "$@"
