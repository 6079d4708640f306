import net from 'node:net';
import { spawnSync } from 'node:child_process';
import t from 'tap';

// `npm test` starts a throwaway PostgreSQL and Redis (scripts/services.sh) and passes their URLs.
// These checks prove the real services are up for the suites that use them.
t.test('the test run provides a real PostgreSQL and Redis on loopback', async (t) => {
  t.equal(process.env.BULWARK_TEST_SERVICES, '1', 'run through `npm test`, which starts the services');
  const pg = new URL(process.env.PGURL ?? 'postgres://missing');
  t.equal(pg.hostname, '127.0.0.1');
  const psql = spawnSync('psql', [process.env.PGURL ?? '', '-Atc', 'select 40 + 2'], { encoding: 'utf8' });
  t.equal(psql.stdout.trim(), '42', `psql answered: ${psql.stderr}`);

  const redis = new URL(process.env.REDIS_URL ?? 'redis://missing');
  t.equal(redis.hostname, '127.0.0.1');
  const reply = await new Promise<string>((resolve, reject) => {
    const s = net.connect(Number(redis.port), redis.hostname);
    let buf = '';
    s.on('data', (c) => {
      buf += c.toString();
      if (buf.split('\r\n').length > 2) {
        s.end();
        resolve(buf);
      }
    });
    s.on('error', reject);
    s.write(`AUTH ${decodeURIComponent(redis.username || 'default')} ${decodeURIComponent(redis.password)}\r\nPING\r\n`);
  });
  t.match(reply, /\+OK\r\n\+PONG/);
});
