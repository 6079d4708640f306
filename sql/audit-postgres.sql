-- Bulwark audit log in PostgreSQL: append-only tables, a writer role with INSERT and SELECT only.
-- Run once as the table owner (an administrator), then grant the role to the server's login:
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -f sql/audit-postgres.sql
--   GRANT bulwark_audit_writer TO bulwark_app;
-- Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS bulwark_audit (
  stream     text        NOT NULL CHECK (length(stream) BETWEEN 1 AND 128),
  seq        bigint      NOT NULL CHECK (seq > 0),
  -- The stored line, byte for byte what a file log would hold (canonical JSON with its hash).
  line       text        NOT NULL CHECK (octet_length(line) <= 65536),
  prev       char(64)    NOT NULL,
  hash       char(64)    NOT NULL,
  written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (stream, seq)
);

CREATE TABLE IF NOT EXISTS bulwark_audit_checkpoint (
  stream     text        NOT NULL,
  size       bigint      NOT NULL CHECK (size > 0),
  note       text        NOT NULL,
  -- The Merkle frontier at `size` (base64), so a writer can extend it without reading every row.
  frontier   text[]      NOT NULL,
  written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (stream, size)
);

-- C2SP tlog-witness cosignatures of the stream's checkpoints (cosignature/v1 lines), one row per
-- witness and checkpoint; `note` is the checkpoint the witness cosigned (the log's signature
-- included), so verify can hold the stream to it.
CREATE TABLE IF NOT EXISTS bulwark_audit_cosignature (
  stream      text        NOT NULL,
  size        bigint      NOT NULL CHECK (size > 0),
  witness     text        NOT NULL,
  note        text        NOT NULL,
  cosignature text        NOT NULL,
  written_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (stream, size, witness)
);

-- The exact policy input of each decision, content-addressed (`audit replay`): the outcome record
-- holds sha256 of the input's canonical JSON; the input is inserted in the same transaction as
-- the record, before it. As sensitive as the arguments in full: give it its own retention.
CREATE TABLE IF NOT EXISTS bulwark_audit_policy_input (
  stream     text        NOT NULL,
  sha256     char(64)    NOT NULL,
  input      text        NOT NULL,
  written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (stream, sha256),
  CHECK (encode(sha256(convert_to(input, 'UTF8')), 'hex') = sha256)
);

-- Rows are evidence: never changed, never removed, not even by the table owner without first
-- dropping the trigger (which itself leaves a trace in the server log and DDL audit).
CREATE OR REPLACE FUNCTION bulwark_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'bulwark audit tables are append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Each inserted record must extend its stream's chain: seq one more than the last, prev equal to
-- the last hash, and hash = sha256(prev || the line without its hash suffix). So even a writer
-- with a bug (or two writers racing) cannot leave a gap, a fork or a record that does not hash.
CREATE OR REPLACE FUNCTION bulwark_audit_chain_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_hash text;
  body text;
BEGIN
  IF NEW.seq = 1 THEN
    last_hash := repeat('0', 64);
  ELSE
    SELECT a.hash INTO last_hash FROM bulwark_audit a WHERE a.stream = NEW.stream AND a.seq = NEW.seq - 1;
    IF last_hash IS NULL THEN
      RAISE EXCEPTION 'bulwark audit: stream % has no record %, so % cannot follow it', NEW.stream, NEW.seq - 1, NEW.seq;
    END IF;
  END IF;
  IF NEW.prev <> last_hash THEN
    RAISE EXCEPTION 'bulwark audit: record % of stream % does not chain from record %', NEW.seq, NEW.stream, NEW.seq - 1;
  END IF;
  body := left(NEW.line, -75) || '}';
  IF right(NEW.line, 75) <> ',"hash":"' || NEW.hash || '"}'
     OR encode(sha256(convert_to(NEW.prev || body, 'UTF8')), 'hex') <> NEW.hash THEN
    RAISE EXCEPTION 'bulwark audit: record % of stream % does not match its hash', NEW.seq, NEW.stream;
  END IF;
  RETURN NEW;
END
$$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'bulwark_audit_no_change') THEN
    CREATE TRIGGER bulwark_audit_no_change BEFORE UPDATE OR DELETE ON bulwark_audit
      FOR EACH ROW EXECUTE FUNCTION bulwark_audit_append_only();
    CREATE TRIGGER bulwark_audit_no_truncate BEFORE TRUNCATE ON bulwark_audit
      FOR EACH STATEMENT EXECUTE FUNCTION bulwark_audit_append_only();
    CREATE TRIGGER bulwark_audit_chain BEFORE INSERT ON bulwark_audit
      FOR EACH ROW EXECUTE FUNCTION bulwark_audit_chain_check();
    CREATE TRIGGER bulwark_audit_checkpoint_no_change BEFORE UPDATE OR DELETE ON bulwark_audit_checkpoint
      FOR EACH ROW EXECUTE FUNCTION bulwark_audit_append_only();
    CREATE TRIGGER bulwark_audit_checkpoint_no_truncate BEFORE TRUNCATE ON bulwark_audit_checkpoint
      FOR EACH STATEMENT EXECUTE FUNCTION bulwark_audit_append_only();
  END IF;
  -- Tables added later get their triggers when the script runs again (idempotent per trigger).
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'bulwark_audit_cosignature_no_change') THEN
    CREATE TRIGGER bulwark_audit_cosignature_no_change BEFORE UPDATE OR DELETE ON bulwark_audit_cosignature
      FOR EACH ROW EXECUTE FUNCTION bulwark_audit_append_only();
    CREATE TRIGGER bulwark_audit_cosignature_no_truncate BEFORE TRUNCATE ON bulwark_audit_cosignature
      FOR EACH STATEMENT EXECUTE FUNCTION bulwark_audit_append_only();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'bulwark_audit_policy_input_no_change') THEN
    CREATE TRIGGER bulwark_audit_policy_input_no_change BEFORE UPDATE OR DELETE ON bulwark_audit_policy_input
      FOR EACH ROW EXECUTE FUNCTION bulwark_audit_append_only();
    CREATE TRIGGER bulwark_audit_policy_input_no_truncate BEFORE TRUNCATE ON bulwark_audit_policy_input
      FOR EACH STATEMENT EXECUTE FUNCTION bulwark_audit_append_only();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bulwark_audit_writer') THEN
    CREATE ROLE bulwark_audit_writer NOLOGIN;
  END IF;
END
$$;

REVOKE ALL ON bulwark_audit, bulwark_audit_checkpoint, bulwark_audit_cosignature, bulwark_audit_policy_input FROM PUBLIC;
REVOKE ALL ON bulwark_audit, bulwark_audit_checkpoint, bulwark_audit_cosignature, bulwark_audit_policy_input FROM bulwark_audit_writer;
GRANT SELECT, INSERT ON bulwark_audit, bulwark_audit_checkpoint, bulwark_audit_cosignature, bulwark_audit_policy_input TO bulwark_audit_writer;
