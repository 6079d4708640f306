import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { AuditLogOptions } from './audit-log.js';
import { logPaths } from './files.js';
import { loadSigner, loadVerifier, type NoteVerifier } from './note.js';
import { WitnessClient } from './witness-client.js';
import { policyInputsPath } from './policy-inputs.js';
import { loadWitnessVerifier, WITNESS_KEY_FORM, type WitnessVerifier } from './witness-cosignature.js';

/** A witness key inline (its name may hold "/") or a file relative to the config's folder. */
function witnessKey(spec: string, baseDir: string): WitnessVerifier {
  return loadWitnessVerifier(WITNESS_KEY_FORM.test(spec.trim()) ? spec : path.resolve(baseDir, spec));
}

export type AuditConfig = Config['audit'];

const KEY_STRING = /^(PRIVATE\+KEY\+|[^\s+/]+\+[0-9a-f]{8}\+)/;

/** A key file path relative to the config file's folder; a key given inline stays as it is. */
function resolveKeySpec(spec: string, baseDir: string): string {
  return KEY_STRING.test(spec.trim()) ? spec : path.resolve(baseDir, spec);
}

export function defaultOrigin(stream: string): string {
  return `bulwark/audit/${stream}`;
}

/** The AuditLog options a config asks for (keys are loaded here, so a bad key fails at boot). */
export function auditOptionsFromConfig(audit: AuditConfig, baseDir: string, onWarning?: AuditLogOptions['onWarning']): AuditLogOptions {
  const cp = audit.checkpoint;
  const witnesses = audit.witnesses.map((w) => ({ name: w.name, url: w.url, key: witnessKey(w.key, baseDir) }));
  if (witnesses.length && !cp?.private_key) throw new Error('audit.witnesses needs audit.checkpoint.private_key (witnesses cosign signed checkpoints)');
  // The file log's client stores beside the log; the PostgreSQL log builds its own on its connection.
  const client = witnesses.length && audit.backend === 'file' ? new WitnessClient(logPaths(audit.path), witnesses, onWarning) : undefined;
  return {
    path: audit.path,
    durability: audit.durability,
    batchMs: audit.batch_ms,
    backend: audit.backend,
    postgresUrl: audit.postgres_url,
    stream: audit.stream,
    maxLineBytes: audit.max_line_bytes,
    rotation: audit.rotation
      ? { maxBytes: audit.rotation.max_bytes, maxAgeMs: audit.rotation.max_age_s === undefined ? undefined : audit.rotation.max_age_s * 1000 }
      : undefined,
    checkpoint: cp?.private_key
      ? {
          signer: loadSigner(resolveKeySpec(cp.private_key, baseDir)),
          everyRecords: cp.every_records,
          everyMs: cp.every_ms,
          mirrorPath: cp.mirror_path ? path.resolve(baseDir, cp.mirror_path) : undefined,
          origin: cp.origin ?? defaultOrigin(audit.stream),
        }
      : undefined,
    // Every new log starts with a genesis record unless the config says otherwise (issue 12).
    genesis: audit.genesis ?? true,
    onCheckpoint: client ? (note, size) => client.submit(note, size) : undefined,
    witnesses: witnesses.length && audit.backend === 'postgres' ? witnesses : undefined,
    policyInputs: audit.replay_inputs ? policyInputsPath(logPaths(audit.path)) : undefined,
    onWarning,
  };
}

/** Keys a verifier trusts: audit.checkpoint.public_keys (old keys stay listed after a rotation). */
export function verifiersFromConfig(audit: AuditConfig, baseDir: string): NoteVerifier[] {
  return (audit.checkpoint?.public_keys ?? []).map((k) => loadVerifier(resolveKeySpec(k, baseDir)));
}

export function mirrorsFromConfig(audit: AuditConfig, baseDir: string): string[] {
  return audit.checkpoint?.mirror_path ? [path.resolve(baseDir, audit.checkpoint.mirror_path)] : [];
}

/** Witness keys a verifier trusts (audit.witnesses[].key) and the quorum (default: all). */
export function witnessesFromConfig(audit: AuditConfig, baseDir: string): { keys: WitnessVerifier[]; quorum: number | undefined } {
  return { keys: audit.witnesses.map((w) => witnessKey(w.key, baseDir)), quorum: audit.witness_quorum };
}

/** The policy archive's folder: audit.policy_archive (relative to the config's folder) or `policies/` beside the log. */
export function policyArchiveDir(audit: AuditConfig, baseDir: string): string {
  return audit.policy_archive ? path.resolve(baseDir, audit.policy_archive) : path.join(path.dirname(audit.path), 'policies');
}
