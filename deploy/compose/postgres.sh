#!/usr/bin/env bash
# The compose file's `postgres` service (the Dockerfile's postgres stage):
# Debian's PostgreSQL 15, with one database and one role for the weftd
# replicas. On first start it makes the cluster in $PGDATA (a volume):
# password logins (scram-sha-256) from the network, the role $WEFT_DB_USER
# with the password $WEFT_DB_PASSWORD, owning the database $WEFT_DB_NAME.
# Then it runs the server in the foreground, listening on every address.
set -euo pipefail
: "${PGDATA:?}"
: "${WEFT_DB_USER:=weft}" "${WEFT_DB_NAME:=weft}"
: "${WEFT_DB_PASSWORD:?set WEFT_DB_PASSWORD to the password of the replicas}"
bin=/usr/lib/postgresql/15/bin

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$bin/initdb" -D "$PGDATA" --username=postgres --auth-local=peer \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Single-user mode reads one command per line; the password is quoted as
  # a literal (doubled single quotes).
  quoted=$(printf '%s' "$WEFT_DB_PASSWORD" | sed "s/'/''/g")
  "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE ROLE "$WEFT_DB_USER" LOGIN PASSWORD '$quoted';
CREATE DATABASE "$WEFT_DB_NAME" OWNER "$WEFT_DB_USER";
SQL
  echo "postgres.sh: made the cluster, role \"$WEFT_DB_USER\" and database \"$WEFT_DB_NAME\""
fi
# Three replicas' pools and listeners fit the default max_connections (100).
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' \
  -c unix_socket_directories=/tmp
