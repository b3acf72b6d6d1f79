#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d), as
# the superuser, which nothing else uses. Two roles (issue 27):
#   xrayweb_owner: owns the database and its tables; only the migrate job connects as it.
#   xrayweb_app:   what every service connects as; owns nothing. `manage.py db_grants` (run
#                  by the migrate job) gives it read and write on the tables, and read and
#                  append only on the history, so it can neither rewrite nor truncate the
#                  audit trail, nor switch off the append-only triggers.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$DB_OWNER_PASSWORD" -v app_password="$DB_APP_PASSWORD" <<'SQL'
CREATE ROLE xrayweb_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE xrayweb_app LOGIN PASSWORD :'app_password';
CREATE DATABASE xrayweb OWNER xrayweb_owner;
REVOKE ALL ON DATABASE xrayweb FROM PUBLIC;
GRANT CONNECT ON DATABASE xrayweb TO xrayweb_app;
SQL
