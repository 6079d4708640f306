/**
 * The argon2 verifier process (see Argon2Gate): verifications arrive over the IPC channel and run
 * here, on this process's own libuv pool, at a lower CPU priority than the server — so a burst of
 * wrong secrets can neither take the threads the audit log's fdatasync needs nor the CPU the
 * server's event loop needs. It holds no keys: each message carries one hash and one presented
 * secret, and the answer is a boolean.
 */
import argon2 from 'argon2';

interface Ask {
  readonly id: number;
  readonly hash: string;
  readonly secret: string;
}

process.on('message', (m: Ask) => {
  argon2.verify(m.hash, m.secret).then(
    (ok) => process.send?.({ id: m.id, ok }),
    // A hash argon2 cannot parse is not a match (the store validates hashes; this is a backstop).
    () => process.send?.({ id: m.id, ok: false }),
  );
});
// The server went away: nothing is left to answer.
process.on('disconnect', () => process.exit(0));
