#!/bin/bash
# PostgreSQL first start (docker-entrypoint-initdb.d): the key store and audit tables in database
# $POSTGRES_DB, the logins the replicas and operators use, and a demo database for the database
# tools behind the SELECT-only role. Runs once, when the data volume is empty.
set -euo pipefail
psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER")

"${psql[@]}" --dbname "$POSTGRES_DB" -f /bulwark-sql/api-keys-postgres.sql
"${psql[@]}" --dbname "$POSTGRES_DB" -f /bulwark-sql/audit-postgres.sql
"${psql[@]}" --dbname "$POSTGRES_DB" -v app_pw="$BULWARK_APP_PASSWORD" -v op_pw="$BULWARK_OPERATOR_PASSWORD" <<'SQL'
-- The replicas: read keys and record their use, append audit records. Nothing else.
CREATE ROLE bulwark_app LOGIN PASSWORD :'app_pw';
GRANT bulwark_keys_reader, bulwark_audit_writer TO bulwark_app;
-- Operators (and the bulwark-init job): bulwark keys create|list|revoke.
CREATE ROLE bulwark_operator LOGIN PASSWORD :'op_pw';
GRANT bulwark_keys_admin TO bulwark_operator;
SQL

# The database tools read a separate database: database-readonly-role.sql revokes functions such as
# pg_notify from PUBLIC in the database it runs in, which the key store's trigger needs.
"${psql[@]}" --dbname "$POSTGRES_DB" -c 'CREATE DATABASE demo'
"${psql[@]}" --dbname demo <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, region text NOT NULL, email text NOT NULL);
INSERT INTO customers (name, region, email) VALUES
  ('Ada', 'eu', 'ada@example.com'), ('Grace', 'us', 'grace@example.com'), ('Linus', 'eu', 'linus@example.com');
SQL
"${psql[@]}" --dbname demo -v role=bulwark_reader -v password="$BULWARK_READER_PASSWORD" -v schemas=public \
  -f /bulwark-sql/database-readonly-role.sql
