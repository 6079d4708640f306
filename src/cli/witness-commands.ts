import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadVerifier, type NoteVerifier } from '../audit/note.js';
import { generateWitnessKey, loadWitnessSigner } from '../audit/witness-cosignature.js';
import { Witness, witnessHttpServer } from '../witness/server.js';

const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export const WITNESS_HELP = `Usage:
  bulwark witness serve --key FILE --state DIR --log ORIGIN=KEY... [--listen [HOST:]PORT] [--prefix P]
        a C2SP tlog-witness: POST <prefix>/add-checkpoint cosigns (cosignature/v1) a checkpoint of
        a configured log (ORIGIN, e.g. bulwark/audit/default; KEY the log's verifier key or a file)
        only if it extends the last checkpoint this witness cosigned for it (consistency proof
        checked; state appended to DIR/state.jsonl and fdatasynced before answering; refused forks are
        kept in DIR/refused.jsonl). Default listen 127.0.0.1:7380. Prints "listening on URL".
  bulwark witness keygen --out DIR [--name NAME]
        a cosignature/v1 Ed25519 key pair (NAME.key 0600, NAME.pub); the .pub line goes in
        audit.witnesses[].key and \`audit verify --witness-key\`
`;

export async function runWitnessCli(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(WITNESS_HELP);
    return EXIT.ok;
  }
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    values = parseArgs({
      args: rest,
      options: {
        key: { type: 'string' },
        state: { type: 'string' },
        log: { type: 'string', multiple: true },
        listen: { type: 'string' },
        prefix: { type: 'string' },
        out: { type: 'string' },
        name: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`bulwark witness ${sub}: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
  if (values.help) {
    process.stdout.write(WITNESS_HELP);
    return EXIT.ok;
  }
  const usage = (msg: string): number => {
    process.stderr.write(`bulwark witness ${sub}: ${msg}\n`);
    return EXIT.usage;
  };
  if (sub === 'keygen') {
    const out = values.out as string | undefined;
    if (!out) return usage('--out DIR is required');
    const name = (values.name as string | undefined) ?? 'bulwark-witness';
    const key = generateWitnessKey(name);
    fs.mkdirSync(out, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(out, `${name}.key`), `${key.encodedPrivate}\n`, { mode: 0o600, flag: 'wx' });
    fs.writeFileSync(path.join(out, `${name}.pub`), `${key.encoded}\n`, { mode: 0o644, flag: 'wx' });
    process.stdout.write(`witness key: ${path.join(out, `${name}.key`)} (0600)\nwitness verifier key: ${key.encoded}\n`);
    return EXIT.ok;
  }
  if (sub !== 'serve') return usage(`unknown subcommand\n${WITNESS_HELP}`);
  const keyFile = values.key as string | undefined;
  const state = values.state as string | undefined;
  const logSpecs = (values.log as string[] | undefined) ?? [];
  if (!keyFile || !state || !logSpecs.length) return usage('--key, --state and at least one --log ORIGIN=KEY are required');
  const logs = new Map<string, NoteVerifier[]>();
  for (const spec of logSpecs) {
    const eq = spec.indexOf('=');
    if (eq <= 0) return usage(`--log ${spec}: expected ORIGIN=KEY`);
    const origin = spec.slice(0, eq);
    logs.set(origin, [...(logs.get(origin) ?? []), loadVerifier(spec.slice(eq + 1))]);
  }
  const listen = (values.listen as string | undefined) ?? '127.0.0.1:7380';
  const m = /^(?:(.+):)?(\d+)$/.exec(listen);
  if (!m) return usage('--listen expects [HOST:]PORT');
  const host = m[1] ?? '127.0.0.1';
  const port = Number(m[2]);
  const witness = new Witness({ signer: loadWitnessSigner(keyFile), stateDir: path.resolve(state), logs });
  const server = witnessHttpServer(witness, { prefix: values.prefix as string | undefined });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const url =
    typeof addr === 'object' && addr
      ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}${(values.prefix as string | undefined) ?? ''}`
      : listen;
  process.stdout.write(`listening on ${url}\n`);
  return new Promise<number>((resolve) => {
    const stop = (): void => {
      server.close(() => {
        witness.close();
        resolve(EXIT.ok);
      });
      server.closeAllConnections();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
