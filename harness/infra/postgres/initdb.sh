#!/bin/sh
# Runs once on a new data directory (docker-entrypoint-initdb.d): load the lab's settings and
# the contrib extensions the scenarios use. The entrypoint restarts PostgreSQL afterwards, so
# shared_preload_libraries takes effect.
set -e
echo "include '/etc/postgresql/perflab.conf'" >> "$PGDATA/postgresql.conf"
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<SQL
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gist;
-- the lab's ownership marker (harness.stack.ownership): this database was created for the lab
CREATE TABLE IF NOT EXISTS public.perflab_marker (created_at timestamptz NOT NULL DEFAULT now(),
  lab_version text NOT NULL, how text NOT NULL);
INSERT INTO public.perflab_marker (lab_version, how) VALUES ('compose', 'created by the lab (docker compose)');
SQL
