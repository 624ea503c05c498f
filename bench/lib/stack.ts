// A BorgCube for one bench run: the harness's stack (test/harness/stack-launcher.ts) in one of
// two modes, plus what only benchmarks need — a repositories folder, and in `service-host` mode
// the IPC calls into the repository service.
//
//  * `full`: the repository service and the worker on a Temporal dev server of the run's own —
//    the product as it runs (bench:backup);
//  * `service-host`: the repository service and storage activities without Temporal
//    (service-host.ts), called directly by the bench; for timing borg alone (bench:proxy).
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { programs } from '../../infra/local-stack/programs.js';
import { waitFor } from '../../infra/local-stack/net.js';
import { registerCleanup } from '../../test/harness/cleanup.js';
import { projectRoot } from '../../test/harness/paths.js';
import { launchStack, type Stack } from '../../test/harness/stack-launcher.js';
import { startOwnTemporal } from '../../test/harness/temporal-server.js';
import { distPath } from './paths.js';
import type { StorageCall, StorageCallName, StorageReply } from './service-host.js';

export interface BenchStackOptions {
  mode: 'full' | 'service-host';
  /** Extra node options for the repository service process (e.g. --cpu-prof …). */
  storageNodeArgs?: string[];
  /** Extra node options for the worker (full mode only). */
  workerNodeArgs?: string[];
  /** Extra node options for the proxy processes (service-host mode only). */
  proxyNodeArgs?: string;
}

export interface BenchStack extends Stack {
  /** Repositories of this run live below here (0711, so the storage account reaches its own). */
  reposDir: string;
  /** service-host mode: runs a storage activity in the repository service. */
  storageCall<T>(name: StorageCallName, input: unknown): Promise<T>;
}

export async function startBenchStack(o: BenchStackOptions): Promise<BenchStack> {
  const p = programs(projectRoot);
  const built = [p.storageMain, p.worker, p.proxySession, p.authorizedKeys, distPath('bench/lib/service-host.js')];
  if (!built.every((f) => existsSync(f))) throw new Error('dist/ is incomplete: run `npm run build` first');
  const temporal = o.mode === 'full' ? await startOwnTemporal({ build: false }) : undefined;
  if (temporal) registerCleanup('Temporal dev server', () => temporal.stop());
  const stack = await launchStack({
    temporal,
    worker: o.mode === 'full',
    workerNodeArgs: o.workerNodeArgs,
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
    storage: {
      main: o.mode === 'service-host' ? distPath('bench/lib/service-host.js') : undefined,
      nodeArgs: o.storageNodeArgs,
      ipc: o.mode === 'service-host',
      env: o.proxyNodeArgs ? { BENCH_PROXY_NODE_ARGS: o.proxyNodeArgs } : undefined,
    },
    sshdLogLevel: 'INFO',
    dbPoolMax: 6,
  });
  const reposDir = `${stack.dataDir}-repos`;
  mkdirSync(reposDir, { mode: 0o711 });
  chmodSync(reposDir, 0o711);
  if (o.mode === 'full') await waitForPollers(stack);
  return { ...stack, reposDir, storageCall: o.mode === 'service-host' ? storageCaller(stack) : () => Promise.reject(new Error('storageCall needs service-host mode')) };
}

/** A timed backup must not wait for the worker's first poll. */
async function waitForPollers(stack: Stack): Promise<void> {
  const { worker, temporal, config } = stack;
  await waitFor('the worker', async () => {
    if (!worker.alive()) throw new Error(`the worker exited:\n${worker.tail()}`);
    const r = await temporal.workflowService.describeTaskQueue({ namespace: config.temporal.namespace, taskQueue: { name: config.temporal.taskQueue }, taskQueueType: 1 });
    return (r.pollers?.length ?? 0) > 0;
  }, { timeoutMs: 60_000, intervalMs: 200 });
}

/** IPC with the service host: one pending promise per call. */
function storageCaller(stack: Stack): BenchStack['storageCall'] {
  const child = stack.storage.child!;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let seq = 0;
  child.on('message', (raw) => {
    const m = raw as StorageReply;
    if ('ready' in m) return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(m.error));
  });
  child.once('exit', () => {
    const err = new Error(`the repository service exited:\n${stack.storage.tail()}`);
    for (const p of pending.values()) p.reject(err);
  });
  return <T>(name: StorageCallName, input: unknown) =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, name, input } satisfies StorageCall);
    });
}
