// Provisioning for `npm start` / `npm test`: every step checks before it changes anything, so a
// second run only looks (well under a few seconds), and prints one line of what it found or did.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { applyMigrations, createDb, ensureDatabase } from '../../db/client.js';
import { ensureInitialAdmin } from '../../services/users.js';
import { allowKeyOnlyLogin, ensureShell, ensureSystemAccount, lookupAccount, requireAccount, type Account } from '../accounts.js';
import type { Config } from '../config.js';
import { createLogger } from '../logger.js';
import { MasterKey } from '../secrets.js';
import { ensureServerKey } from '../server-key.js';
import { prepareSshd } from '../sshd.js';
import { baseEnv, run, runChecked } from '../subprocess.js';
import { isLoopback, probeTcp, waitFor } from './net.js';
import { resolveTemporalCli, type TemporalCli } from './temporal-server.js';

export type StackMode = 'start' | 'test';

export const provisionSteps = ['packages', 'services', 'temporal-cli', 'accounts', 'data-dir', 'database', 'admin', 'sshd'] as const;
export type ProvisionStep = (typeof provisionSteps)[number];

export interface ProvisionOptions {
  mode: StackMode;
  /** The checkout (dist/ and .tools/ live here). */
  projectDir: string;
  /** Steps to leave out: tests of provisioning skip the machine-wide ones. */
  skip?: readonly ProvisionStep[];
  print?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ProvisionResult {
  accounts: { proxy: Account; storage: Account };
  temporalCli?: TemporalCli;
  /** Set when this run created the first admin: the one-time password to show. */
  admin?: { username: string; password?: string; created: boolean };
  sshdConfig?: string;
  ms: number;
}

const basePackages = ['borgbackup', 'openssh-server', 'rsync'];
// Browser tests drive Debian's chromium through playwright-core; borg fixtures use zstd and the
// Python cryptography module to build and check vectors.
const testPackages = ['chromium', 'zstd', 'python3-cryptography'];

/** Where the compiled AuthorizedKeysCommand script lives in a checkout. */
export function authorizedKeysScriptPath(projectDir: string): string {
  return join(projectDir, 'dist', 'proxy', 'session', 'authorized-keys.js');
}

/** The listen address of BorgCube's sshd for each mode. */
export function sshdListenAddress(_mode: StackMode): string {
  // Clients on other machines reach the proxy, so the stack listens everywhere; `test` writes the
  // same config so that a test run never changes what a running stack would reload.
  return '0.0.0.0';
}

export async function provision(config: Config, opts: ProvisionOptions): Promise<ProvisionResult> {
  const started = Date.now();
  const print = opts.print ?? ((line: string) => console.log(line));
  const skip = new Set(opts.skip ?? []);
  const result: Partial<ProvisionResult> = {};

  const step = async (name: ProvisionStep, fn: () => Promise<string>) => {
    if (skip.has(name)) return;
    opts.signal?.throwIfAborted();
    const t0 = Date.now();
    const what = await fn();
    print(`  ${name.padEnd(12)} ${what} (${formatMs(Date.now() - t0)})`);
  };

  await step('packages', () => ensurePackages(opts.mode === 'test' ? [...basePackages, ...testPackages] : basePackages, print));
  await step('services', async () => `${await ensurePostgres(config.databaseUrl, print)}; ${await ensureRedis(config.redisUrl, print)}`);
  await step('temporal-cli', async () => {
    result.temporalCli = await resolveTemporalCli({ configured: config.temporal.cliPath, projectDir: opts.projectDir, build: true, print: (l) => print(`  ${''.padEnd(12)} ${l}`) });
    return `${result.temporalCli.path} (${result.temporalCli.source})`;
  });
  await step('accounts', async () => {
    const { accounts, changes } = await ensureAccounts(config);
    result.accounts = accounts;
    return changes.length ? changes.join('; ') : `${config.accounts.proxy} and ${config.accounts.storage} present`;
  });
  result.accounts ??= { proxy: requireAccount(config.accounts.proxy), storage: requireAccount(config.accounts.storage) };
  const accounts = result.accounts;
  await step('data-dir', async () => {
    const changes = await ensureDataDir(config, accounts);
    const reach = unreachableFor(opts.projectDir);
    if (reach) print(`  ${''.padEnd(12)} warning: ${reach}`);
    return `${config.dataDir}: ${changes.length ? changes.join(', ') : 'owners and modes ok'}`;
  });
  await step('database', async () => {
    const r = await ensureSchema(config.databaseUrl);
    return `${r.created ? 'created' : 'found'} database ${r.name}, ${r.applied ? `applied ${r.applied} migration(s)` : 'schema up to date'}`;
  });
  await step('admin', async () => {
    const admin = (result.admin = await ensureAdmin(config.databaseUrl, config.adminPassword));
    if (!admin.created) return 'a console user exists';
    return admin.password ? `created user admin with the one-time password ${admin.password}` : 'created user admin with BORGCUBE_ADMIN_PASSWORD';
  });
  await step('sshd', async () => {
    const script = authorizedKeysScriptPath(opts.projectDir);
    result.sshdConfig = await prepareSshd({
      dir: config.paths.sshdDir,
      port: config.ssh.port,
      listenAddress: sshdListenAddress(opts.mode),
      proxyUser: config.accounts.proxy,
      nodePath: process.execPath,
      authorizedKeysScript: script,
      storageSocket: config.paths.storageSocket,
    });
    const note = existsSync(script) ? '' : ` (note: ${script} is not built yet; logins fail until it is)`;
    return `${result.sshdConfig} passes sshd -t (port ${config.ssh.port})${note}`;
  });
  return { ...result, accounts, ms: Date.now() - started };
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------
// Debian packages

async function missingPackages(names: string[]): Promise<string[]> {
  // dpkg-query exits 1 when a name is unknown but still prints the ones it knows.
  const r = await run('dpkg-query', ['-W', '-f', '${Package} ${db:Status-Abbrev}\n', ...names]);
  const installed = new Set(
    r.stdout
      .toString()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([, status]) => status?.startsWith('ii'))
      .map(([name]) => name),
  );
  return names.filter((n) => !installed.has(n));
}

async function aptInstall(names: string[], print: (line: string) => void): Promise<void> {
  const env = baseEnv({ DEBIAN_FRONTEND: 'noninteractive' });
  const install = () => run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...names], { env, timeoutMs: 30 * 60_000, maxOutput: 1024 * 1024 });
  print(`  ${''.padEnd(12)} apt-get install ${names.join(' ')}…`);
  let r = await install();
  if (r.code !== 0) {
    // A fresh machine has no package lists yet (or stale ones): refresh once and retry.
    print(`  ${''.padEnd(12)} apt-get install failed; running apt-get update once and retrying`);
    await runChecked('apt-get', ['update', '-q'], { env, timeoutMs: 10 * 60_000 });
    r = await install();
  }
  if (r.code !== 0) {
    const tail = r.stderr.toString().trim().split('\n').slice(-10).join('\n');
    throw new Error(`apt-get install ${names.join(' ')} failed (exit ${r.code}):\n${tail}`);
  }
}

async function ensurePackages(names: string[], print: (line: string) => void): Promise<string> {
  const missing = await missingPackages(names);
  if (!missing.length) return `${names.join(', ')} installed`;
  await aptInstall(missing, print);
  const still = await missingPackages(missing);
  if (still.length) throw new Error(`apt-get did not install ${still.join(', ')}`);
  return `installed ${missing.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis: started here only when nothing answers at the configured address.

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

async function ensurePostgres(url: string, print: (line: string) => void): Promise<string> {
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

async function ensureRedis(url: string, print: (line: string) => void): Promise<string> {
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

// ---------------------------------------------------------------------------------------------
// Accounts and the data dir

function accountHome(name: string, suffix: string, dataDir: string): string {
  const home = `/var/lib/${name}${suffix}`;
  return home === dataDir ? `${home}-home` : home;
}

export async function ensureAccounts(config: Config): Promise<{ accounts: { proxy: Account; storage: Account }; changes: string[] }> {
  const changes: string[] = [];
  const { proxy: proxyName, storage: storageName } = config.accounts;
  if (!lookupAccount(proxyName)) changes.push(`created ${proxyName}`);
  // sshd runs the forced command through the login shell, so the proxy account needs a real one.
  const proxy = await ensureSystemAccount(proxyName, { home: accountHome(proxyName, '-proxy', config.dataDir), shell: '/bin/sh', comment: 'BorgCube SSH proxy' });
  if (await ensureShell(proxyName, '/bin/sh')) changes.push(`${proxyName}: shell /bin/sh`);
  // BorgCube's sshd runs with UsePAM no, which refuses accounts with a locked ('!') password.
  if (await allowKeyOnlyLogin(proxyName)) changes.push(`${proxyName}: password field '*' (key logins allowed)`);
  if (!lookupAccount(storageName)) changes.push(`created ${storageName}`);
  const storage = await ensureSystemAccount(storageName, { home: accountHome(storageName, '', config.dataDir), shell: '/usr/sbin/nologin', comment: 'BorgCube repositories' });
  return { accounts: { proxy: requireAccount(proxy.name), storage: requireAccount(storage.name) }, changes };
}

/** mkdir if missing, then owner and mode exactly as given; returns what changed. */
function ensureDir(path: string, mode: number, uid: number, gid: number): string | undefined {
  let created = false;
  if (!existsSync(path)) {
    mkdirSync(path, { recursive: true, mode });
    created = true;
  }
  const st = lstatSync(path);
  if (!st.isDirectory()) throw new Error(`${path} exists and is not a directory`);
  const changes: string[] = [];
  if (st.uid !== uid || st.gid !== gid) {
    chownSync(path, uid, gid);
    changes.push('owner');
  }
  if ((st.mode & 0o7777) !== mode) {
    chmodSync(path, mode);
    changes.push(`mode ${mode.toString(8)}`);
  }
  if (created) return `created ${path}`;
  return changes.length ? `fixed ${changes.join('+')} of ${path}` : undefined;
}

function ensureFile(path: string, mode: number, uid: number, gid: number): string | undefined {
  const st = statSync(path);
  const changes: string[] = [];
  if (st.uid !== uid || st.gid !== gid) {
    chownSync(path, uid, gid);
    changes.push('owner');
  }
  if ((st.mode & 0o7777) !== mode) {
    chmodSync(path, mode);
    changes.push(`mode ${mode.toString(8)}`);
  }
  return changes.length ? `fixed ${changes.join('+')} of ${path}` : undefined;
}

/**
 * The data dir layout (config.ts dataPaths): root 0711 so the service accounts can reach their
 * own subfolders and nothing else; run/ is shared with the proxy account's group (setgid, so new
 * files inherit it) because proxy sessions connect to the repository service's socket inside.
 */
export async function ensureDataDir(config: Config, accounts: { proxy: Account; storage: Account }): Promise<string[]> {
  const p = config.paths;
  const { storage, proxy } = accounts;
  const changes: Array<string | undefined> = [];
  changes.push(ensureDir(config.dataDir, 0o711, 0, 0));
  if (MasterKey.ensure(p.masterKey, { uid: storage.uid, gid: storage.gid })) changes.push('created master.key');
  changes.push(ensureFile(p.masterKey, 0o600, storage.uid, storage.gid));
  changes.push(ensureDir(p.sshDir, 0o700, 0, 0));
  if ((await ensureServerKey(config.ssh.keyPath)).created) changes.push(`created the server key ${config.ssh.keyPath}`);
  changes.push(ensureFile(config.ssh.keyPath, 0o600, 0, 0));
  if (dirname(config.ssh.keyPath) !== p.sshDir) changes.push(ensureDir(dirname(config.ssh.keyPath), 0o700, 0, 0));
  changes.push(ensureDir(p.sshdDir, 0o700, 0, 0));
  // setgid: the storage account is not in the proxy group, so its socket can only get that group
  // by inheriting it from the folder.
  changes.push(ensureDir(p.runDir, 0o2750, storage.uid, proxy.gid));
  changes.push(ensureDir(p.storageDir, 0o700, storage.uid, storage.gid));
  changes.push(ensureDir(p.temporalDir, 0o700, 0, 0));
  changes.push(ensureDir(p.logDir, 0o700, 0, 0));
  changes.push(ensureDir(p.adminBorgDir, 0o700, 0, 0));
  return changes.filter((c): c is string => Boolean(c)).map((c) => c.replace(`${config.dataDir}/`, '').replace(config.dataDir, '.'));
}

/**
 * The proxy (run by sshd as the proxy account) and the repository service (storage account) run
 * from this checkout: every folder above it must let other accounts through.
 */
function unreachableFor(projectDir: string): string | undefined {
  for (let d = projectDir; ; d = dirname(d)) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0) return `${d} is not searchable by other accounts (mode ${(st.mode & 0o777).toString(8)}): the proxy and the repository service cannot run from ${projectDir}`;
    if (d === '/') return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Database and the first admin

export async function ensureSchema(databaseUrl: string): Promise<{ name: string; created: boolean; applied: number }> {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  const created = await ensureDatabase(databaseUrl);
  const handle = createDb(databaseUrl, { max: 1, applicationName: 'borgcube-setup' });
  try {
    const count = async () => {
      try {
        const r = await handle.pool.query<{ n: string }>('select count(*) as n from drizzle.__drizzle_migrations');
        return Number(r.rows[0]?.n ?? 0);
      } catch {
        return 0; // no migrations table yet
      }
    };
    const before = await count();
    await applyMigrations(handle.db);
    return { name, created, applied: (await count()) - before };
  } finally {
    await handle.close();
  }
}

export async function ensureAdmin(databaseUrl: string, password: string | undefined): Promise<{ username: string; password?: string; created: boolean }> {
  const handle = createDb(databaseUrl, { max: 1, applicationName: 'borgcube-setup' });
  const log = createLogger({ name: 'setup', level: 'warn' });
  try {
    return await ensureInitialAdmin({ db: handle.db, log }, password);
  } finally {
    log.flush();
    await handle.close();
  }
}
