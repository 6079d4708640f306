-- Bulwark API keys in PostgreSQL, for replicas that share one key store (auth.store: postgres).
-- Run once as the table owner (an administrator), then grant the roles to the logins:
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -f sql/api-keys-postgres.sql
--   GRANT bulwark_keys_reader TO bulwark_app;      -- the servers: read keys, record last use
--   GRANT bulwark_keys_admin  TO bulwark_operator; -- `bulwark keys create|list|revoke`
-- Idempotent: safe to run again.
--
-- Only an argon2id hash of each secret is stored. The servers' role cannot create, change or
-- un-revoke a key: a compromised replica cannot mint itself a key or revive a revoked one.

CREATE SEQUENCE IF NOT EXISTS bulwark_api_key_rev;

CREATE TABLE IF NOT EXISTS bulwark_api_key (
  id        char(16)    PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
  principal text        NOT NULL CHECK (length(principal) BETWEEN 1 AND 128),
  roles     text[]      NOT NULL CHECK (cardinality(roles) BETWEEN 1 AND 32),
  tier      text        NOT NULL CHECK (length(tier) BETWEEN 1 AND 64),
  created   timestamptz NOT NULL,
  expires   timestamptz,
  revoked   timestamptz,
  hash      text        NOT NULL CHECK (hash LIKE '$argon2id$%'),
  -- Bumped on every change, so a server polls one indexed max() to learn whether to re-read.
  rev       bigint      NOT NULL DEFAULT nextval('bulwark_api_key_rev')
);
CREATE INDEX IF NOT EXISTS bulwark_api_key_rev_idx ON bulwark_api_key (rev);

-- Verified principal attributes (`bulwark keys create --attr region=eu`): a JSON object of name →
-- string or list of strings, checked again by the server (src/core/principal-attributes.ts). Added
-- with IF NOT EXISTS so a table from an earlier release is upgraded in place; its keys get {}.
ALTER TABLE bulwark_api_key ADD COLUMN IF NOT EXISTS attributes jsonb NOT NULL DEFAULT '{}'::jsonb
  CONSTRAINT bulwark_api_key_attributes_object CHECK (jsonb_typeof(attributes) = 'object' AND length(attributes::text) <= 8192);

CREATE TABLE IF NOT EXISTS bulwark_api_key_usage (
  id        char(16)    PRIMARY KEY REFERENCES bulwark_api_key (id),
  last_used timestamptz NOT NULL
);

-- A key is created once and may then only be revoked (once; the first time stays). Keys are
-- never deleted: audit records name them by id.
CREATE OR REPLACE FUNCTION bulwark_api_key_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'bulwark API keys are never deleted (revoke key %)', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.id <> OLD.id OR NEW.principal <> OLD.principal OR NEW.roles <> OLD.roles OR NEW.tier <> OLD.tier
       OR NEW.created <> OLD.created OR NEW.expires IS DISTINCT FROM OLD.expires OR NEW.hash <> OLD.hash
       OR NEW.attributes IS DISTINCT FROM OLD.attributes
       OR (OLD.revoked IS NOT NULL AND NEW.revoked IS DISTINCT FROM OLD.revoked) THEN
      RAISE EXCEPTION 'bulwark API key %: only revocation may change a key', OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  NEW.rev := nextval('bulwark_api_key_rev');
  RETURN NEW;
END
$$;

-- Servers LISTEN on this channel and re-read at once, so a revocation usually lands in
-- milliseconds; polling every auth.reload_check_ms is the bound when a notification is lost.
CREATE OR REPLACE FUNCTION bulwark_api_key_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bulwark_api_keys', NEW.id);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS bulwark_api_key_guard ON bulwark_api_key;
CREATE TRIGGER bulwark_api_key_guard BEFORE INSERT OR UPDATE OR DELETE ON bulwark_api_key
  FOR EACH ROW EXECUTE FUNCTION bulwark_api_key_guard();
DROP TRIGGER IF EXISTS bulwark_api_key_notify ON bulwark_api_key;
CREATE TRIGGER bulwark_api_key_notify AFTER INSERT OR UPDATE ON bulwark_api_key
  FOR EACH ROW EXECUTE FUNCTION bulwark_api_key_notify();

CREATE OR REPLACE FUNCTION bulwark_api_key_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'bulwark API keys are never deleted' USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER IF EXISTS bulwark_api_key_no_truncate ON bulwark_api_key;
CREATE TRIGGER bulwark_api_key_no_truncate BEFORE TRUNCATE ON bulwark_api_key
  FOR EACH STATEMENT EXECUTE FUNCTION bulwark_api_key_no_truncate();

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bulwark_keys_reader') THEN
    CREATE ROLE bulwark_keys_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bulwark_keys_admin') THEN
    CREATE ROLE bulwark_keys_admin NOLOGIN;
  END IF;
END
$$;

REVOKE ALL ON bulwark_api_key, bulwark_api_key_usage FROM PUBLIC;
REVOKE ALL ON SEQUENCE bulwark_api_key_rev FROM PUBLIC;

GRANT SELECT ON bulwark_api_key TO bulwark_keys_reader;
GRANT SELECT, INSERT, UPDATE ON bulwark_api_key_usage TO bulwark_keys_reader;

GRANT SELECT, INSERT ON bulwark_api_key TO bulwark_keys_admin;
GRANT UPDATE (revoked) ON bulwark_api_key TO bulwark_keys_admin;
GRANT SELECT ON bulwark_api_key_usage TO bulwark_keys_admin;
GRANT USAGE ON SEQUENCE bulwark_api_key_rev TO bulwark_keys_admin;
