// PostgreSQL, Redis and a Temporal dev server of a fault test's own, which it may stop and start
// again on the same state: the machine's shared PostgreSQL (5432) and Redis (6379) serve other
// test runs and are never stopped. Each lives in a tagged folder (tags.ts), so a crashed run's
// servers are ended by the next one.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, openSync, closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireAccount } from '../../infra/accounts.js';
import { loadConfig } from '../../infra/config.js';
import { freePort, tcpAnswers, waitFor } from '../../infra/local-stack/net.js';
import { launchDevServer, resolveTemporalCli, type RunningDevServer } from '../../infra/local-stack/temporal-server.js';
import { runChecked } from '../../infra/subprocess.js';
import { registerCleanup } from './cleanup.js';
import { projectRoot } from './paths.js';
import { makeTaggedDir, recordProcess } from './tags.js';

/** A server that a fault test stops (as a crash or an operator would) and starts again. */
export interface Restartable {
  /** Ends it: `crash` kills it with SIGKILL, otherwise it shuts down in order. */
  stop(o?: { crash?: boolean }): Promise<void>;
  start(): Promise<void>;
}

const pgBin = '/usr/lib/postgresql/15/bin';

/** PostgreSQL 15 as the `postgres` account, trust auth on loopback, on a free port. */
export async function startPrivatePostgres(): Promise<Restartable & { url: string }> {
  const dir = makeTaggedDir('postgres');
  chmodSync(dir, 0o711);
  const data = join(dir, 'data');
  const pg = requireAccount('postgres');
  mkdirSync(data, { mode: 0o700 });
  chownSync(data, pg.uid, pg.gid);
  chownSync(dir, pg.uid, pg.gid);
  const port = await freePort();
  const asPg = (file: string, args: string[]) => runChecked('setpriv', [`--reuid=${pg.uid}`, `--regid=${pg.gid}`, '--clear-groups', file, ...args], { env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' }, timeoutMs: 120_000 });
  await asPg(join(pgBin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const start = async () => {
    await asPg(join(pgBin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'postgres.log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
    const pid = Number((await import('node:fs')).readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    recordProcess(dir, pid, 'postgres');
  };
  const stop = async (o: { crash?: boolean } = {}) => {
    await asPg(join(pgBin, 'pg_ctl'), ['-D', data, '-w', '-m', o.crash ? 'immediate' : 'fast', 'stop']).catch(() => {});
  };
  registerCleanup(`private PostgreSQL on port ${port}`, async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, start, stop };
}

/** redis-server without persistence, on a free port. */
export async function startPrivateRedis(): Promise<Restartable & { url: string }> {
  const dir = makeTaggedDir('redis');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const fd = openSync(join(dir, 'redis.log'), 'a');
    try {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    if (child.pid) recordProcess(dir, child.pid, `:${port}`);
    await waitFor(`redis on ${port}`, () => tcpAnswers('127.0.0.1', port, 500), { timeoutMs: 15_000, intervalMs: 100 });
  };
  const stop = async (o: { crash?: boolean } = {}) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(o.crash ? 'SIGKILL' : 'SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    c.kill('SIGKILL');
  };
  registerCleanup(`private Redis on port ${port}`, async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return { url: `redis://127.0.0.1:${port}/0`, start, stop };
}

/** A Temporal dev server on a SQLite file, so that it comes back with its workflows after a stop. */
export async function startPrivateTemporal(): Promise<Restartable & { address: string; namespace: string }> {
  const cli = await resolveTemporalCli({ configured: loadConfig().temporal.cliPath, projectDir: projectRoot, build: false });
  const dir = makeTaggedDir('temporal');
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  let server: RunningDevServer | undefined;
  const start = async () => {
    server = await launchDevServer(cli.path, { address, namespace: 'default', headless: true, dbFile: join(dir, 'temporal.db'), logFile: join(dir, 'temporal.log') });
    recordProcess(dir, server.pid, `--port ${port}`);
  };
  const stop = async (o: { crash?: boolean } = {}) => {
    const s = server;
    if (!s) return;
    if (o.crash) {
      try {
        process.kill(-s.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await s.stop();
  };
  registerCleanup(`private Temporal on ${address}`, async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return { address, namespace: 'default', start, stop };
}
