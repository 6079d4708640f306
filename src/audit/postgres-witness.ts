import type postgres from 'postgres';
import { Frontier } from './merkle.js';
import { openNote, parseCheckpointText, readCheckpointNote } from './note.js';
import { proofFromFrontier, type CosignatureLine, type WitnessLogSide } from './witness-client.js';

type Sql = postgres.Sql<Record<string, never>>;

/**
 * The PostgreSQL log's side of C2SP tlog-witness. Cosignatures go to `bulwark_audit_cosignature`
 * (sql/audit-postgres.sql), append-only like the stream and its checkpoints, rather than to a file:
 * the replicas writing one stream run on different hosts, and an auditor verifying the stream from
 * anywhere needs the cosignatures where the records are. Each row keeps the checkpoint note it
 * cosigns, as the file backend's lines do, so verify holds the stream to every cosigned checkpoint
 * even if the checkpoint table were changed. Several replicas may submit the same checkpoint; the
 * primary key (stream, size, witness) keeps one row, the first.
 */
export class PostgresWitnessSide implements WitnessLogSide {
  constructor(
    private readonly sql: Sql,
    private readonly stream: string,
  ) {}

  async known(): Promise<ReadonlyMap<string, number>> {
    const rows = await this.sql`SELECT witness, max(size) AS size FROM bulwark_audit_cosignature WHERE stream = ${this.stream} GROUP BY witness`;
    return new Map(rows.map((r) => [String(r.witness), Number(r.size)]));
  }

  async store(line: CosignatureLine): Promise<void> {
    await this.sql`INSERT INTO bulwark_audit_cosignature (stream, size, witness, note, cosignature)
      VALUES (${this.stream}, ${line.size}, ${line.witness}, ${line.note}, ${line.cosignature}) ON CONFLICT DO NOTHING`;
  }

  /**
   * From the checkpoint row at `old` (its frontier, checked against its signed root) and the rows
   * after it up to `size`; the proof is checked against both roots before it is sent.
   */
  async consistencyProof(old: number, size: number, note: string): Promise<string[]> {
    const newRoot = parseCheckpointText(openNote(note, []).text).root;
    const [row] = await this.sql`SELECT note, frontier FROM bulwark_audit_checkpoint WHERE stream = ${this.stream} AND size = ${old}`;
    if (!row) throw new Error(`stream ${this.stream} has no checkpoint at size ${old} to prove consistency from`);
    const f = Frontier.fromState(
      old,
      (row.frontier as string[]).map((b) => Buffer.from(b, 'base64')),
    );
    const oldRoot = readCheckpointNote(String(row.note), []).root;
    if (!f.root().equals(oldRoot)) throw new Error(`the checkpoint at size ${old} has a frontier that does not fold to its root`);
    const proof = await proofFromFrontier(f, oldRoot, size, newRoot, async (feed) => {
      await this.sql`SELECT line FROM bulwark_audit WHERE stream = ${this.stream} AND seq > ${old} AND seq <= ${size} ORDER BY seq`.cursor(1000, (rows) => {
        for (const r of rows) if (!feed(Buffer.from(String(r.line), 'utf8'))) return this.sql.CLOSE;
        return undefined;
      });
    });
    if (!proof) throw new Error(`the rows of stream ${this.stream} do not prove size ${size} consistent with size ${old}`);
    return proof;
  }
}

/** The stream's cosignatures as the file backend's lines, for the verifier. */
export async function postgresCosignatureLines(sql: Sql, stream: string): Promise<string> {
  const rows = await sql`SELECT size, witness, note, cosignature FROM bulwark_audit_cosignature WHERE stream = ${stream} ORDER BY size, witness`;
  return rows
    .map(
      (r) =>
        `${JSON.stringify({ note: String(r.note), size: Number(r.size), witness: String(r.witness), cosignature: String(r.cosignature) } satisfies CosignatureLine)}\n`,
    )
    .join('');
}
