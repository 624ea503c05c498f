// A complete BorgCube on resources of its own, started the way `npm start` starts it, for a test
// file (stack.ts) or a benchmark run (bench/lib/stack.ts): a tagged data dir provisioned like the
// real one, a fresh database, BorgCube's sshd on a free port, the repository service as the
// storage account through its launcher (bin/borgcube-storage), and the worker — real processes
// against a Temporal server, on task queues of their own so that stacks never share work.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Account } from '../../infra/accounts.js';
import { loadConfig, type Config } from '../../infra/config.js';
import { ensureAccounts, ensureDataDir } from '../../infra/local-stack/data-dir.js';
import { waitFor } from '../../infra/local-stack/net.js';
import { programs } from '../../infra/local-stack/programs.js';
import type { SshdInstance } from '../../infra/sshd.js';
import { run, type RunResult } from '../../infra/subprocess.js';
import { temporalConnectionOptions } from '../../infra/temporal.js';
import type { ServiceDeps } from '../../services/deps.js';
import { stackDeps } from './deps.js';
import { registerCleanup } from './cleanup.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { projectRoot } from './paths.js';
import { managedProcess, type ManagedProcess } from './process.js';
import { startBorgcubeSshd, type BorgcubeSshd } from './sshd.js';
import { makeTaggedDir } from './tags.js';

export interface Stack {
  config: Config;
  /** Environment for processes and the CLI of this stack. */
  env: Record<string, string>;
  dataDir: string;
  db: TestDatabase;
  sshd: BorgcubeSshd;
  storage: ManagedProcess;
  worker: ManagedProcess;
  temporal: Client;
  /** Service-layer dependencies bound to this stack (for calling services directly). */
  deps: ServiceDeps;
  /** The server's public key, to authorize on client hosts. */
  serverPublicKey: string;
  /** Runs `borgcube ARGS…` against this stack. */
  cli(args: string[], opts?: { input?: string; cwd?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<RunResult & { out: string; err: string }>;
  stop(): Promise<void>;
}

export interface LaunchOptions {
  /** The Temporal server; without one (benchmarks of the proxy alone) the client never connects. */
  temporal?: { address: string; namespace: string };
  /** Start the worker right away (default true). */
  worker?: boolean;
  workerNodeArgs?: string[];
  /** Extra environment for every process of the stack. */
  env?: Record<string, string>;
  /** Another entry for the repository service's launcher (the benchmarks' IPC host), node options, an IPC channel, environment. */
  storage?: { main?: string; nodeArgs?: string[]; ipc?: boolean; env?: Record<string, string> };
  sshdLogLevel?: SshdInstance['logLevel'];
  dbPoolMax?: number;
}

export async function launchStack(opts: LaunchOptions = {}): Promise<Stack> {
  const dataDir = makeTaggedDir('stack');
  const db = await createTestDatabase({ max: opts.dbPoolMax });
  const baseEnv = stackEnv(dataDir, db.url, opts);
  const preConfig = loadConfig({ ...baseEnv, BORGCUBE_SSH_PORT: '2222' });
  const accounts = (await ensureAccounts(preConfig)).accounts;
  await ensureDataDir(preConfig, accounts);
  // The sshd needs its port in the config, and the config names the sshd's socket: the data dir
  // first, then sshd on a free port, then the final environment.
  const sshd = await startBorgcubeSshd({ dataDir, inDataDir: true, logLevel: opts.sshdLogLevel });
  const env: Record<string, string> = { ...baseEnv, BORGCUBE_SSH_PORT: String(sshd.port) };
  const config = loadConfig(env);
  const { storage, worker } = stackProcesses(config, env, accounts.storage, opts);
  // The stack's own client connects as its processes do (TLS and API key from the environment).
  const connection = opts.temporal ? await Connection.connect(temporalConnectionOptions(config)) : Connection.lazy({ address: env.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection, namespace: env.TEMPORAL_NAMESPACE });

  const stop = registerCleanup(`BorgCube stack in ${dataDir}`, async () => {
    await worker.stop();
    await storage.stop();
    await connection.close();
    await sshd.stop();
    await db.drop();
    // Repositories live beside the data dir (`<data dir>-repos`); both go with the stack, not
    // only with the next run's sweep of leftovers (a test run leaves ~1.5 GB otherwise).
    rmSync(`${dataDir}-repos`, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });
  try {
    await storage.start();
    await waitFor('the repository service socket', () => {
      if (!storage.alive()) throw new Error(`the repository service exited:\n${storage.tail()}`);
      return existsSync(config.paths.storageSocket);
    }, { timeoutMs: 30_000 });
    if (opts.worker ?? true) await worker.start();
  } catch (err) {
    process.stderr.write(`${storage.tail()}\n${worker.tail()}\n`);
    await stop();
    throw err;
  }
  return {
    config,
    env,
    dataDir,
    db,
    sshd,
    storage,
    worker,
    temporal,
    deps: stackDeps(db, config, opts.temporal ? temporal : undefined),
    serverPublicKey: readFileSync(`${config.ssh.keyPath}.pub`, 'utf8').trim(),
    cli: async (args, o = {}) => {
      const r = await run(process.execPath, [programs(projectRoot).cli, ...args], { env: o.env ? { ...env, ...o.env } : env, input: o.input, cwd: o.cwd, timeoutMs: o.timeoutMs ?? 300_000 });
      return { ...r, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
    },
    stop,
  };
}

function stackEnv(dataDir: string, databaseUrl: string, opts: LaunchOptions): Record<string, string> {
  const tag = `t${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
    // Without Temporal the address only has to parse.
    TEMPORAL_ADDRESS: opts.temporal?.address ?? '127.0.0.1:1',
    TEMPORAL_NAMESPACE: opts.temporal?.namespace ?? 'default',
    BORGCUBE_TASK_QUEUE: `borgcube-${tag}`,
    BORGCUBE_STORAGE_HOST: `st-${tag}`,
    BORGCUBE_DATA_DIR: dataDir,
    BORGCUBE_SSH_HOST: '127.0.0.1',
    LOG_LEVEL: process.env.BORGCUBE_TEST_LOG_LEVEL ?? 'info',
    ...opts.env,
  };
}

/** The repository service (as the storage account, through its launcher) and the worker, not started yet. */
function stackProcesses(config: Config, env: Record<string, string>, account: Account, opts: LaunchOptions): { storage: ManagedProcess; worker: ManagedProcess } {
  const p = programs(projectRoot);
  const storage = storageProcess(config, env, account, opts);
  const worker = managedProcess({
    name: 'worker',
    file: process.execPath,
    args: [...(opts.workerNodeArgs ?? []), p.worker],
    env,
    logPath: join(config.paths.logDir, 'worker.log'),
    tagDir: config.dataDir,
    marker: p.worker,
  });
  return { storage, worker };
}

/** A storage host's process (repository service and storage worker) as its storage account, through its launcher; not started yet. */
export function storageProcess(config: Config, env: Record<string, string>, account: Account, opts: Pick<LaunchOptions, 'storage'> = {}): ManagedProcess {
  const p = programs(projectRoot);
  const storageMain = opts.storage?.main ?? p.storageMain;
  return managedProcess({
    name: 'storage',
    file: 'setpriv',
    args: [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--clear-groups', p.storage, ...(opts.storage?.nodeArgs ?? [])],
    env: { ...env, HOME: config.paths.storageDir, BORGCUBE_NODE: process.execPath, BORGCUBE_STORAGE_MAIN: storageMain, ...opts.storage?.env },
    logPath: join(config.paths.logDir, 'storage.log'),
    tagDir: config.dataDir,
    marker: storageMain,
    ipc: opts.storage?.ipc,
  });
}
