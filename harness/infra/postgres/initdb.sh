#!/bin/sh
# Runs once on a new data directory (docker-entrypoint-initdb.d): load the lab's settings and
# the contrib extensions the scenarios use. The entrypoint restarts PostgreSQL afterwards, so
# shared_preload_libraries takes effect.
set -e
echo "include '/etc/postgresql/perflab.conf'" >> "$PGDATA/postgresql.conf"
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<SQL
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gist;
SQL
