// PostgreSQL and Redis for the local stack: used as they are when something answers at the
// configured address, started (and installed) here only when nothing does and the address is
// on this machine.
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { lookupAccount } from '../accounts.js';
import { run, runChecked } from '../subprocess.js';
import { isLoopback, probeTcp, waitFor } from './net.js';
import { aptInstall, missingPackages } from './packages.js';

type PgProbe = { ok: true } | { ok: false; refused: true } | { ok: false; refused: false; error: Error };

async function probePostgres(url: string): Promise<PgProbe> {
  const u = new URL(url);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return { ok: true };
  } catch (err) {
    const e = err as Error & { code?: string };
    // A SQLSTATE means a server answered (and refused the login or the database).
    if (e.code && /^[0-9A-Z]{5}$/.test(e.code)) return { ok: false, refused: false, error: e };
    return { ok: false, refused: true };
  } finally {
    await client.end().catch(() => {});
  }
}

interface PgCluster {
  version: string;
  name: string;
  port: number;
  online: boolean;
  pgHba: string;
}

async function listClusters(): Promise<PgCluster[]> {
  const r = await run('pg_lsclusters', ['--no-header']);
  if (r.code !== 0) return [];
  return r.stdout
    .toString()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 6)
    .map(([version, name, port, status]) => ({
      version: version!,
      name: name!,
      port: Number(port),
      online: status!.startsWith('online'),
      pgHba: `/etc/postgresql/${version}/${name}/pg_hba.conf`,
    }));
}

export async function ensurePostgres(url: string, print: (line: string) => void): Promise<string> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 5432);
  const where = `${host}:${port}`;
  const first = await probePostgres(url);
  if (first.ok) return `PostgreSQL answers at ${where}`;
  if (!first.refused) throw pgLoginError(where, first.error);
  if (!isLoopback(host)) throw new Error(`PostgreSQL does not answer at ${where} (DATABASE_URL); start it or point DATABASE_URL at a running server`);

  const installedNow = (await missingPackages(['postgresql'])).length > 0;
  if (installedNow) await aptInstall(['postgresql'], print);
  let clusters = await listClusters();
  let cluster = clusters.find((c) => c.port === port);
  if (!cluster) {
    if (clusters.length) throw new Error(`PostgreSQL does not answer at ${where} and no local cluster uses port ${port} (clusters: ${clusters.map((c) => `${c.version}/${c.name}:${c.port}`).join(', ')}); set DATABASE_URL`);
    const version = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))[0];
    if (!version) throw new Error('postgresql is installed but /usr/lib/postgresql holds no server version');
    // A cluster made here serves only this machine; trust on loopback matches the default
    // DATABASE_URL (no password), which is what a local development stack wants.
    await runChecked('pg_createcluster', [version, 'main', '--port', String(port), '--', '--auth-host=trust', '--auth-local=peer'], { timeoutMs: 120_000 });
    clusters = await listClusters();
    cluster = clusters.find((c) => c.port === port);
    if (!cluster) throw new Error(`pg_createcluster ${version} main did not create a cluster on port ${port}`);
  }
  if (!cluster.online) await runChecked('pg_ctlcluster', [cluster.version, cluster.name, 'start'], { timeoutMs: 120_000 });
  await waitFor(
    `PostgreSQL at ${where}`,
    async () => {
      const p = await probePostgres(url);
      return p.ok || !p.refused;
    },
    { timeoutMs: 30_000, intervalMs: 300 },
  );
  let probe = await probePostgres(url);
  if (!probe.ok && !probe.refused && installedNow && isAuthError(probe.error)) {
    // The package's own cluster asks for passwords on TCP; we installed it just now for this
    // stack, so let local TCP logins in as the default DATABASE_URL expects.
    await trustLoopback(cluster);
    probe = await probePostgres(url);
  }
  if (!probe.ok && !probe.refused) throw pgLoginError(where, probe.error);
  return `started PostgreSQL ${cluster.version}/${cluster.name} on ${where}`;
}

function isAuthError(e: Error & { code?: string }): boolean {
  return e.code === '28P01' || e.code === '28000';
}

function pgLoginError(where: string, e: Error & { code?: string }): Error {
  if (isAuthError(e)) return new Error(`PostgreSQL at ${where} refused the login of DATABASE_URL (${e.message}); put the right user and password into DATABASE_URL (postgres://user:password@host:port/borgcube)`);
  return new Error(`PostgreSQL at ${where}: ${e.message}`);
}

async function trustLoopback(cluster: PgCluster): Promise<void> {
  const lines = ['# Added by BorgCube npm start: trust TCP logins from this machine (local stack).', 'host all all 127.0.0.1/32 trust', 'host all all ::1/128 trust'];
  const current = readFileSync(cluster.pgHba, 'utf8');
  if (!current.includes(lines[1]!)) writeFileSync(cluster.pgHba, `${lines.join('\n')}\n${current}`);
  await runChecked('pg_ctlcluster', [cluster.version, cluster.name, 'reload']);
}

async function redisAnswers(host: string, port: number): Promise<boolean> {
  // Any RESP reply counts: +PONG, or -NOAUTH from a server that wants a password.
  const reply = await probeTcp(host, port, { send: 'PING\r\n', waitForData: true, timeoutMs: 2000 });
  return reply !== undefined && /^[+-]/.test(reply);
}

export async function ensureRedis(url: string, print: (line: string) => void): Promise<string> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 6379);
  const where = `${host}:${port}`;
  if (await redisAnswers(host, port)) return `Redis answers at ${where}`;
  if (!isLoopback(host)) throw new Error(`Redis does not answer at ${where} (REDIS_URL); start it or point REDIS_URL at a running server`);
  if ((await missingPackages(['redis-server'])).length) await aptInstall(['redis-server'], print);
  // Run it as whoever owns its data folder (the package makes that `redis`): it must be able to
  // save its snapshot there, or it refuses to shut down.
  const dataDir = existsSync('/var/lib/redis') ? statSync('/var/lib/redis') : undefined;
  const redis = dataDir ? { uid: dataDir.uid, gid: dataDir.gid } : lookupAccount('redis');
  // systemd normally creates /run/redis (RuntimeDirectory); without it the pid file cannot be written.
  mkdirSync('/run/redis', { recursive: true, mode: 0o755 });
  if (redis) chownSync('/run/redis', redis.uid, redis.gid);
  const args = existsSync('/etc/redis/redis.conf') ? ['/etc/redis/redis.conf'] : [];
  args.push('--daemonize', 'yes', '--port', String(port));
  if (port !== 6379) args.push('--pidfile', `/run/redis/redis-server-${port}.pid`, '--dbfilename', `dump-${port}.rdb`);
  await runChecked('/usr/bin/redis-server', args, { uid: redis?.uid, gid: redis?.gid, timeoutMs: 30_000 });
  await waitFor(`Redis at ${where}`, () => redisAnswers(host, port), { timeoutMs: 20_000, intervalMs: 200 });
  return `started Redis on ${where}`;
}
