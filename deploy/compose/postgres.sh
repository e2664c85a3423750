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
# Written last: a first start cut short (or failed) is done again from
# scratch at the next.
made="$PGDATA/.weft-made"

if [ ! -e "$made" ]; then
  find "$PGDATA" -mindepth 1 -delete
  "$bin/initdb" -D "$PGDATA" --username=postgres --auth-local=peer \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # The role and database, on a server only this script reaches (no TCP);
  # psql quotes the names and the password itself (:"name", :'literal').
  "$bin/pg_ctl" -D "$PGDATA" -w -s \
    -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start
  psql -X -q -h /tmp -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -v user="$WEFT_DB_USER" -v db="$WEFT_DB_NAME" -v password="$WEFT_DB_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
  "$bin/pg_ctl" -D "$PGDATA" -w -s -m fast stop
  touch "$made"
  echo "postgres.sh: made the cluster, role \"$WEFT_DB_USER\" and database \"$WEFT_DB_NAME\""
fi
# Three replicas' connections (7 each at the default --store_pool_size) fit
# the default max_connections (100, of which 3 are kept for superusers).
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' \
  -c unix_socket_directories=/tmp
