// 2025-11-25 HTTP sessions (src/transport/http/session-token.ts): what a request that presents an
// Mcp-Session-Id pays to open it (AES-256-GCM unseal, field checks, principal and expiry), and what
// initialize pays to issue one. Only clients that declared elicitation, sampling or roots pay either.
import { dist, summarise } from './lib.mjs';

const { Sealer } = await import(dist('src/core/seal.js'));
const { issueSession, openSession } = await import(dist('src/transport/http/session-token.js'));

export async function benchSessionToken({ quick = false } = {}) {
  const samples = quick ? 2000 : 50_000;
  const sealer = Sealer.random();
  const principal = { id: 'analyst-7', roles: ['developer'], auth: 'api_key', tier: 'standard' };
  const caps = { elicitation: { form: true, url: false }, sampling: true };
  const { token } = issueSession(sealer, principal, caps, '2025-11-25');
  for (let i = 0; i < 2000; i++) openSession(sealer, token, principal, 86_400_000);
  const open = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const s = openSession(sealer, token, principal, 86_400_000);
    open.push(performance.now() - t0);
    if (!s) throw new Error('the benchmark token should open');
  }
  const issue = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    issueSession(sealer, principal, caps, '2025-11-25');
    issue.push(performance.now() - t0);
  }
  return { token_chars: token.length, open: summarise(open, 'us'), issue: summarise(issue, 'us') };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${JSON.stringify(await benchSessionToken({ quick: process.env.BENCH_QUICK === '1' }), null, 2)}\n`);
}
