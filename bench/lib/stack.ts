// A BorgCube for one bench run, set up as root the way `npm start` sets one up, on resources of
// its own: a tagged data dir (provisioned by infra/local-stack/provision.ts), a fresh database,
// BorgCube's sshd on a free loopback port, the repository service as the storage account, and —
// in `full` mode — the worker and a Temporal dev server of its own. Everything is removed again
// by the cleanup list (cleanup.ts).
//
// Modes:
//  * `full`: worker/storage-main.js + worker/main.js on Temporal — the product as it runs;
//  * `service-host`: the repository service and storage activities without Temporal
//    (service-host.ts), called directly by the bench; for timing borg alone (bench:proxy).
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { applyMigrations, createDb, type DbHandle } from '../../db/client.js';
import { requireAccount } from '../../infra/accounts.js';
import { loadConfig, type Config } from '../../infra/config.js';
import { createLogger } from '../../infra/logger.js';
import { ensureAccounts, ensureDataDir } from '../../infra/local-stack/data-dir.js';
import { authorizedKeysScriptPath } from '../../infra/local-stack/programs.js';
import { freePort, waitFor } from '../../infra/local-stack/net.js';
import { launchDevServer, resolveTemporalCli } from '../../infra/local-stack/temporal-server.js';
import { MasterKey } from '../../infra/secrets.js';
import type { ServiceDeps } from '../../services/deps.js';
import { onCleanup } from './cleanup.js';
import { distPath, projectRoot } from './paths.js';
import { startManaged, type Managed } from './process.js';
import type { StorageCall, StorageCallName, StorageReply } from './service-host.js';
import { startBorgcubeSshd, type Sshd } from './sshd.js';
import { dropDatabase, makeTaggedDir, newDatabaseName, recordProcess } from './tags.js';

export interface BenchStackOptions {
  mode: 'full' | 'service-host';
  /** Extra node options for the repository service process (e.g. --cpu-prof …). */
  storageNodeArgs?: string[];
  /** Extra node options for the worker (full mode only). */
  workerNodeArgs?: string[];
  /** Extra node options for the proxy processes (service-host mode only). */
  proxyNodeArgs?: string;
  logLevel?: string;
}

export interface BenchStack {
  config: Config;
  env: Record<string, string>;
  dataDir: string;
  /** Repositories of this run live below here (0711, so the storage account reaches its own). */
  reposDir: string;
  db: DbHandle;
  deps: ServiceDeps;
  sshd: Sshd;
  storage: Managed;
  worker?: Managed;
  temporal?: Client;
  /** The server's public key, for the clients' authorized_keys. */
  serverPublicKey: string;
  /** service-host mode: runs a storage activity in the repository service. */
  storageCall<T>(name: StorageCallName, input: unknown): Promise<T>;
}

async function createDatabase(serverUrl: string): Promise<{ url: string; handle: DbHandle }> {
  const name = newDatabaseName();
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  try {
    await c.query(`create database "${name}"`);
  } finally {
    await c.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = createDb(url.toString(), { max: 6, applicationName: 'borgcube-bench' });
  onCleanup(`database ${name}`, async () => {
    await handle.close();
    await dropDatabase(serverUrl, name);
  });
  await applyMigrations(handle.db);
  return { url: url.toString(), handle };
}

async function startTemporal(tagDir: string): Promise<{ address: string; namespace: string }> {
  const cli = await resolveTemporalCli({ configured: loadConfig().temporal.cliPath, projectDir: projectRoot, build: false });
  const address = `127.0.0.1:${await freePort()}`;
  const server = await launchDevServer(cli.path, { address, namespace: 'default', headless: true, logFile: join(tagDir, 'temporal.log') });
  recordProcess(tagDir, server.pid, `--port ${address.split(':')[1]}`);
  onCleanup('Temporal dev server', () => server.stop());
  return { address, namespace: 'default' };
}

export async function startBenchStack(o: BenchStackOptions): Promise<BenchStack> {
  const built = ['worker/storage-main.js', 'worker/main.js', 'proxy/main.js', 'proxy/authorized-keys.js', 'bench/lib/service-host.js'];
  if (!built.every((p) => existsSync(distPath(p)))) throw new Error('dist/ is incomplete: run `npm run build` first');
  const tagDir = makeTaggedDir('stack');
  onCleanup(`folder ${tagDir}`, () => rmSync(tagDir, { recursive: true, force: true }));
  const dataDir = join(tagDir, 'data');
  const reposDir = join(tagDir, 'repos');
  mkdirSync(reposDir, { mode: 0o711 });
  chmodSync(tagDir, 0o711);
  const serverDb = loadConfig().databaseUrl;
  const db = await createDatabase(serverDb);
  const temporal = o.mode === 'full' ? await startTemporal(tagDir) : undefined;
  const tag = `b${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const sshPort = await freePort();
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    LANG: 'C.UTF-8',
    DATABASE_URL: db.url,
    REDIS_URL: process.env.REDIS_URL ?? loadConfig().redisUrl,
    // service-host mode never talks to Temporal; the address only has to parse.
    TEMPORAL_ADDRESS: temporal?.address ?? '127.0.0.1:1',
    TEMPORAL_NAMESPACE: temporal?.namespace ?? 'default',
    BORGCUBE_TASK_QUEUE: `borgcube-${tag}`,
    BORGCUBE_STORAGE_HOST: `st-${tag}`,
    BORGCUBE_DATA_DIR: dataDir,
    BORGCUBE_SSH_HOST: '127.0.0.1',
    BORGCUBE_SSH_PORT: String(sshPort),
    LOG_LEVEL: o.logLevel ?? 'info',
  };
  const config = loadConfig(env);
  const { accounts } = await ensureAccounts(config);
  await ensureDataDir(config, accounts);
  mkdirSync(config.paths.logDir, { recursive: true, mode: 0o700 });

  const sshd = await startBorgcubeSshd({
    dir: config.paths.sshdDir,
    port: sshPort,
    proxyUser: config.accounts.proxy,
    storageSocket: config.paths.storageSocket,
    authorizedKeysScript: authorizedKeysScriptPath(projectRoot),
    tagDir,
  });

  const storageAcct = accounts.storage;
  const storageScript = o.mode === 'full' ? distPath('worker/storage-main.js') : distPath('bench/lib/service-host.js');
  const storageEnv = { ...env, HOME: config.paths.storageDir, BORGCUBE_NODE: process.execPath, BORGCUBE_STORAGE_MAIN: storageScript, ...(o.proxyNodeArgs ? { BENCH_PROXY_NODE_ARGS: o.proxyNodeArgs } : {}) };
  const storage = startManaged({
    name: 'repository service',
    file: 'setpriv',
    args: [`--reuid=${storageAcct.uid}`, `--regid=${storageAcct.gid}`, '--clear-groups', join(projectRoot, 'bin/borgcube-storage'), ...(o.storageNodeArgs ?? [])],
    env: storageEnv,
    logPath: join(config.paths.logDir, 'storage.log'),
    tagDir,
    marker: storageScript,
    ipc: o.mode === 'service-host',
    cwd: '/',
  });

  // IPC with the service host: one pending promise per call.
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let seq = 0;
  let ready: Promise<void> = Promise.resolve();
  if (o.mode === 'service-host') {
    ready = new Promise((resolve, reject) => {
      storage.child.on('message', (raw) => {
        const m = raw as StorageReply;
        if ('ready' in m) return resolve();
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(m.error));
      });
      void storage.exited.then(() => {
        const err = new Error(`the repository service exited:\n${storage.tail()}`);
        reject(err);
        for (const p of pending.values()) p.reject(err);
      });
    });
  }
  await ready;
  await waitFor('the repository service socket', () => {
    if (!storage.alive()) throw new Error(`the repository service exited:\n${storage.tail()}`);
    return existsSync(config.paths.storageSocket);
  }, { timeoutMs: 30_000 });

  let worker: Managed | undefined;
  let temporalClient: Client | undefined;
  if (o.mode === 'full') {
    worker = startManaged({ name: 'worker', file: process.execPath, args: [...(o.workerNodeArgs ?? []), distPath('worker/main.js')], env, logPath: join(config.paths.logDir, 'worker.log'), tagDir, marker: distPath('worker/main.js'), cwd: '/' });
    const connection = await Connection.connect({ address: temporal!.address });
    onCleanup('Temporal client connection', () => connection.close());
    temporalClient = new Client({ connection, namespace: temporal!.namespace });
    await waitFor('the worker', async () => {
      if (!worker!.alive()) throw new Error(`the worker exited:\n${worker!.tail()}`);
      const r = await temporalClient!.workflowService.describeTaskQueue({ namespace: temporal!.namespace, taskQueue: { name: config.temporal.taskQueue }, taskQueueType: 1 });
      return (r.pollers?.length ?? 0) > 0;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  }

  const log = createLogger({ name: 'bench', level: 'warn' });
  let masterKey: MasterKey | undefined;
  const tc = temporalClient;
  const deps: ServiceDeps = {
    db: db.handle.db,
    config,
    log,
    masterKey: () => (masterKey ??= MasterKey.load(config.paths.masterKey)),
    storageAccount: () => requireAccount(config.accounts.storage),
    temporal: () => (tc ? Promise.resolve(tc) : Promise.reject(new Error('no Temporal in this bench mode'))),
  };

  return {
    config,
    env,
    dataDir,
    reposDir,
    db: db.handle,
    deps,
    sshd,
    storage,
    worker,
    temporal: temporalClient,
    serverPublicKey: readFileSync(`${config.ssh.keyPath}.pub`, 'utf8').trim(),
    storageCall: <T>(name: StorageCallName, input: unknown) =>
      new Promise<T>((resolve, reject) => {
        if (o.mode !== 'service-host') return reject(new Error('storageCall needs service-host mode'));
        const id = ++seq;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        storage.child.send({ id, name, input } satisfies StorageCall);
      }),
  };
}
