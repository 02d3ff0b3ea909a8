#!/usr/bin/env bash
# Install (Debian packages) and start a PostgreSQL server on loopback for the tests marked `postgres`.
# Prints the SQLAlchemy URL of a fresh, empty database on stdout.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
  pg_createcluster "$ver" main >&2
fi
pg_ctlcluster "$ver" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -q && break
  sleep 1
done
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
runuser -u postgres -- psql -q -p "$port" -h 127.0.0.1 -d postgres -c "SELECT 1" >/dev/null 2>&1 || true
runuser -u postgres -- psql -q -p "$port" -d postgres <<SQL >&2
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'embedstore') THEN
    CREATE ROLE embedstore LOGIN PASSWORD 'embedstore' CREATEDB;
  END IF;
END \$\$;
SQL
runuser -u postgres -- psql -q -p "$port" -d postgres -c "DROP DATABASE IF EXISTS embedstore_test" >&2
runuser -u postgres -- psql -q -p "$port" -d postgres -c "CREATE DATABASE embedstore_test OWNER embedstore" >&2
echo "postgresql+psycopg://embedstore:embedstore@127.0.0.1:$port/embedstore_test"
