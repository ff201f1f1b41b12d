#!/bin/bash
# Initialises PGDATA on the first start (superuser POSTGRES_USER with POSTGRES_PASSWORD,
# database POSTGRES_DB, password logins from any address), then runs postgres in the
# foreground. Extra arguments go to postgres (`-c name=value`).
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=${POSTGRES_USER}}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"

if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
  mkdir -p "${PGDATA}"
  chmod 700 "${PGDATA}"
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD}" >"${pwfile}"
  initdb --pgdata="${PGDATA}" --username="${POSTGRES_USER}" --pwfile="${pwfile}" \
    --encoding=UTF8 --no-locale --auth-local=trust --auth-host=scram-sha-256
  rm -f "${pwfile}"
  echo "host all all all scram-sha-256" >>"${PGDATA}/pg_hba.conf"
  if [[ "${POSTGRES_DB}" != postgres ]]; then
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "${POSTGRES_DB//\"/\"\"}" "${POSTGRES_USER//\"/\"\"}" |
      postgres --single -D "${PGDATA}" -j postgres >/dev/null
  fi
fi

# postgres refuses a data directory others may read (a volume's group permissions, set by
# whoever mounted it, can have loosened it).
chmod 700 "${PGDATA}"
exec postgres -D "${PGDATA}" -c listen_addresses='*' \
  -c unix_socket_directories=/var/run/postgresql "$@"
