-- The role Bulwark connects as (database.url). Run as a superuser in the target database, with
-- psql variables: psql -v role=bulwark_reader -v password='…' -v schemas='public,analytics' -f this.sql
-- What it guarantees: the role can read (SELECT) the listed schemas and nothing else; it cannot
-- write, create temporary tables, or call the functions that reach outside a SELECT, even if the
-- analyser and the policy were both bypassed.

CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = '30s';

-- No temporary tables, no objects in public.
SELECT format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()) \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- SELECT on every table and view in the listed schemas (and on those created later by this owner).
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', s, :'role') FROM unnest(string_to_array(:'schemas', ',')) AS s \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s, :'role') FROM unnest(string_to_array(:'schemas', ',')) AS s \gexec
SELECT format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I', s, :'role') FROM unnest(string_to_array(:'schemas', ',')) AS s \gexec

-- Functions that act outside a SELECT are executable by PUBLIC by default: take that away
-- (this database only). Sessions of other roles that need them must be granted explicitly.
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'pg_catalog'
   AND (p.proname IN ('pg_sleep', 'pg_sleep_for', 'pg_sleep_until', 'set_config', 'pg_terminate_backend',
                      'pg_cancel_backend', 'pg_notify', 'pg_reload_conf', 'pg_rotate_logfile',
                      'txid_current', 'pg_current_xact_id', 'query_to_xml', 'query_to_xml_and_xmlschema',
                      'cursor_to_xml', 'table_to_xml', 'dblink', 'dblink_exec', 'pg_read_file',
                      'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file')
        OR p.proname LIKE 'lo\_%' OR p.proname LIKE 'pg\_advisory%' OR p.proname LIKE 'pg\_try\_advisory%')
\gexec
