// A complete BorgCube for one test file, started the way `npm start` starts it: its own data dir
// (provisioned like the real one), its own database, its own BorgCube sshd, the repository
// service running as the storage account, and the worker — all real processes against the
// shared Temporal dev server, on task queues of their own so that test files never share work.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, type Config } from '../../infra/config.js';
import { createLogger } from '../../infra/logger.js';
import { MasterKey } from '../../infra/secrets.js';
import { requireAccount } from '../../infra/accounts.js';
import { run, type RunResult } from '../../infra/subprocess.js';
import { ensureAccounts, ensureDataDir } from '../../infra/local-stack/data-dir.js';
import type { ServiceDeps } from '../../services/deps.js';
import { registerCleanup } from './cleanup.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { projectRoot } from './paths.js';
import { startBorgcubeSshd, type BorgcubeSshd } from './sshd.js';
import { makeTaggedDir } from './tags.js';
import { waitFor } from '../../infra/local-stack/net.js';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number | undefined;
  readonly logPath: string;
  /** Starts it (again). */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
  /** SIGKILL at once (for crash tests). */
  kill(): Promise<void>;
  tail(lines?: number): string;
}

export interface TestStack {
  config: Config;
  /** Environment for processes and the CLI of this stack. */
  env: Record<string, string>;
  dataDir: string;
  db: TestDatabase;
  sshd: BorgcubeSshd;
  storage: ManagedProcess;
  worker: ManagedProcess;
  temporal: Client;
  /** Service-layer dependencies bound to this stack (for calling services from tests). */
  deps: ServiceDeps;
  /** The server's public key, to authorize on client hosts. */
  serverPublicKey: string;
  /** Runs `borgcube ARGS…` against this stack. */
  cli(args: string[], opts?: { input?: string; cwd?: string; timeoutMs?: number }): Promise<RunResult & { out: string; err: string }>;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** Start the worker right away (default true). */
  worker?: boolean;
  /** Extra environment for every process of the stack. */
  env?: Record<string, string>;
}

export async function startStack(opts: StackOptions = {}): Promise<TestStack> {
  const dataDir = makeTaggedDir('stack');
  const db = await createTestDatabase();
  const temporalAddress = inject('temporalAddress');
  const namespace = inject('temporalNamespace');
  const tag = `t${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  // The sshd needs its port in the config, and the config names the sshd's socket: pick the
  // data dir first, start sshd on a free port, then write the final environment.
  const baseEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    DATABASE_URL: db.url,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: namespace,
    BORGCUBE_TASK_QUEUE: `borgcube-${tag}`,
    BORGCUBE_STORAGE_HOST: `st-${tag}`,
    BORGCUBE_DATA_DIR: dataDir,
    BORGCUBE_SSH_HOST: '127.0.0.1',
    LOG_LEVEL: process.env.BORGCUBE_TEST_LOG_LEVEL ?? 'info',
    ...opts.env,
  };
  const preConfig = loadConfig({ ...baseEnv, BORGCUBE_SSH_PORT: '2222' });
  const accounts = (await ensureAccounts(preConfig)).accounts;
  await ensureDataDir(preConfig, accounts);
  const sshd = await startBorgcubeSshd({ dataDir, inDataDir: true });
  const env: Record<string, string> = { ...baseEnv, BORGCUBE_SSH_PORT: String(sshd.port) };
  const config = loadConfig(env);

  const storageAcct = accounts.storage;
  const storage = managed('storage', join(dataDir, 'logs', 'storage.log'), () =>
    spawn('setpriv', [`--reuid=${storageAcct.uid}`, `--regid=${storageAcct.gid}`, '--clear-groups', join(projectRoot, 'bin/borgcube-storage')], {
      env: { ...env, HOME: config.paths.storageDir, BORGCUBE_NODE: process.execPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const worker = managed('worker', join(dataDir, 'logs', 'worker.log'), () =>
    spawn(process.execPath, [join(projectRoot, 'dist/worker/main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  );

  const connection = await Connection.connect({ address: temporalAddress });
  const temporal = new Client({ connection, namespace });
  const log = createLogger({ name: 'test', level: 'warn' });
  let masterKey: MasterKey | undefined;
  const deps: ServiceDeps = {
    db: db.handle.db,
    config,
    log,
    masterKey: () => (masterKey ??= MasterKey.load(config.paths.masterKey)),
    storageAccount: () => requireAccount(config.accounts.storage),
    temporal: () => Promise.resolve(temporal),
  };

  const stop = registerCleanup(`BorgCube stack ${tag}`, async () => {
    await worker.stop();
    await storage.stop();
    await connection.close();
    await sshd.stop();
    await db.drop();
    // Tests keep their repositories beside the data dir (`<data dir>-repos`); both go with the
    // stack, not only with the next run's sweep of leftovers (a run leaves ~1.5 GB otherwise).
    rmSync(`${dataDir}-repos`, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });
  try {
    await storage.start();
    await waitFor('the repository service socket', () => existsSync(config.paths.storageSocket), { timeoutMs: 30_000 });
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
    deps,
    serverPublicKey: readFileSync(`${config.ssh.keyPath}.pub`, 'utf8').trim(),
    cli: async (args, o = {}) => {
      const r = await run(process.execPath, [join(projectRoot, 'bin/borgcube'), ...args], { env, input: o.input, cwd: o.cwd, timeoutMs: o.timeoutMs ?? 300_000 });
      return { ...r, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
    },
    stop,
  };
}

/** A child process with its output appended to a log file; restartable and killable. */
function managed(name: string, logPath: string, launch: () => ChildProcess): ManagedProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const append = (c: Buffer) => appendFileSync(logPath, c);
  const waitExit = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
    const done = await Promise.race([exited.then(() => true), t]);
    clearTimeout(timer);
    return done;
  };
  return {
    name,
    logPath,
    get pid() {
      return child?.pid;
    },
    async start() {
      if (child && child.exitCode === null && child.signalCode === null) return;
      appendFileSync(logPath, `--- ${name} starting ${new Date().toISOString()}\n`);
      const c = launch();
      child = c;
      c.stdout?.on('data', append);
      c.stderr?.on('data', append);
      exited = new Promise((r) => c.once('exit', () => r()));
      // Give it a moment to fail fast on bad configuration.
      const early = await waitExit(1500);
      if (early) throw new Error(`${name} exited at start:\n${tailOf(logPath, 30)}`);
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGTERM');
      if (!(await waitExit(15_000))) {
        c.kill('SIGKILL');
        await waitExit(5000);
      }
    },
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGKILL');
      await waitExit(5000);
    },
    tail: (lines = 40) => tailOf(logPath, lines),
  };
}

function tailOf(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
