// Provisioning for `npm start` / `npm test`: every step checks before it changes anything, so a
// second run only looks (well under a few seconds), and prints one line of what it found or did.
// The steps live by concern in packages.ts, services.ts, data-dir.ts and the CLI (programs.ts).
import { existsSync } from 'node:fs';
import { requireAccount, type Account } from '../accounts.js';
import type { Config } from '../config.js';
import { prepareSshd } from '../sshd.js';
import { ensureAppRole } from './database-role.js';
import { ensureAccounts, ensureDataDir, unreachableFor } from './data-dir.js';
import { ensureClientBorg14 } from './client-borg.js';
import { basePackages, ensurePackages, testPackages } from './packages.js';
import { authorizedKeysScriptPath, programs, runBorgcubeJson } from './programs.js';
import { run } from '../subprocess.js';
import { ensurePostgres, ensureRedis } from './services.js';
import { resolveTemporalCli, type TemporalCli } from './temporal-server.js';

export type StackMode = 'start' | 'test';

export const provisionSteps = ['packages', 'client-borg', 'services', 'temporal-cli', 'accounts', 'data-dir', 'database', 'admin', 'sshd'] as const;
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
  /** DATABASE_URL for the product's processes: BorgCube's own non-superuser role (database-role.ts). */
  databaseUrl?: string;
  ms: number;
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
  // Tests run clients with borg 1.2.4 (the installed one) and 1.4.0 (unpacked beside the checkout).
  if (opts.mode === 'test') await step('client-borg', () => ensureClientBorg14(opts.projectDir, print));
  await step('services', async () => `${await ensurePostgres(config.databaseUrl, print)}; ${await ensureRedis(config.redisUrl, print)}`);
  await step('temporal-cli', async () => {
    // An external Temporal (a cluster, Temporal Cloud) needs no dev server, so no CLI to build.
    if (config.temporal.external && opts.mode === 'start') return `not needed: Temporal is external (${config.temporal.address})`;
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
  // The schema and the first user through the CLI, as a deployment sets them up, as BorgCube's own
  // role: DATABASE_URL (the administrator) only makes that role and hands it the database.
  const cliEnv = { ...process.env, DATABASE_URL: config.databaseUrl, BORGCUBE_DATA_DIR: config.dataDir, BORGCUBE_ADMIN_PASSWORD: config.adminPassword ?? '' };
  await step('database', async () => {
    const app = await ensureAppRole(config.databaseUrl, config.dataDir);
    result.databaseUrl = cliEnv.DATABASE_URL = app.url;
    const r = await runBorgcubeJson<{ database: string; created: boolean; applied: number }>(opts.projectDir, ['db', 'migrate'], cliEnv);
    const role = app.changes.length ? app.changes.join('; ') : `role ${app.role} ok`;
    return `${role}; database ${r.database}, ${r.applied ? `applied ${r.applied} migration(s)` : 'schema up to date'}`;
  });
  await step('admin', async () => {
    const admin = (result.admin = await runBorgcubeJson<NonNullable<ProvisionResult['admin']>>(opts.projectDir, ['first-admin', '--exists-ok'], cliEnv));
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
    // Every proxy runs in this sandbox; a kernel that refuses it would refuse every backup.
    const sandbox = programs(opts.projectDir).sandbox;
    const probe = await run('setpriv', [`--reuid=${accounts.proxy.uid}`, `--regid=${accounts.proxy.gid}`, '--init-groups', sandbox, '/', '/bin/true'], { timeoutMs: 30_000 });
    if (probe.code !== 0) {
      throw new Error(`${sandbox} fails as ${accounts.proxy.name} (${probe.stderr.toString().trim()}): the proxy needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0)`);
    }
    return `${result.sshdConfig} passes sshd -t (port ${config.ssh.port}); the proxy sandbox works${note}`;
  });
  return { ...result, accounts, ms: Date.now() - started };
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
