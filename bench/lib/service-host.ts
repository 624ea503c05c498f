// The storage side of bench:proxy without Temporal: the same repository service and storage
// activities as worker/storage-main.ts, run as the storage account, but driven by the bench
// process over an IPC channel instead of a Temporal task queue (each call runs in a
// MockActivityEnvironment, so heartbeats work). Started by bench/lib/stack.ts; not a product
// entry point.
//
// BENCH_PROXY_NODE_ARGS: extra node options for the proxy processes sshd starts (e.g.
// `--cpu-prof --cpu-prof-dir /var/tmp/x`); they go into the forced command the service hands sshd.
// The proxy runs in bin/borgcube-sandbox, which hides /tmp, /var/tmp, /run and /dev/shm: a profile
// folder there stays empty.
import { createStorageActivities } from '../../activities/storage.js';
import { createDb } from '../../db/client.js';
import { lookupAccount } from '../../infra/accounts.js';
import { loadConfig } from '../../infra/config.js';
import { programs } from '../../infra/local-stack/programs.js';
import { createLogger } from '../../infra/logger.js';
import { MasterKey } from '../../infra/secrets.js';
import { RepositoryService } from '../../proxy/storage/service.js';
import { createStorageApi } from '../../proxy/storage/storage-api.js';
import { runActivity } from './activity-env.js';
import { projectRoot } from './paths.js';

export type StorageCallName = 'prepareBackup' | 'prepareRestore' | 'restoreSelection' | 'finalizeBackup' | 'revokeCredential' | 'cleanupJob';
export interface StorageCall {
  id: number;
  name: StorageCallName;
  input: unknown;
}
export type StorageReply = { ready: true } | { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

async function main() {
  const config = loadConfig();
  const log = createLogger({ name: 'storage', level: config.logLevel });
  const dbh = createDb(config.databaseUrl, { max: 10, applicationName: 'borgcube-bench-storage' });
  const masterKey = MasterKey.load(config.paths.masterKey);
  const extra = process.env.BENCH_PROXY_NODE_ARGS?.trim();
  const service = new RepositoryService({
    db: dbh.db,
    config,
    log,
    masterKey,
    proxyCommand: { sandbox: programs(projectRoot).sandbox, node: extra ? `${process.execPath} ${extra}` : process.execPath, script: programs(projectRoot).proxySession },
    proxyGid: lookupAccount(config.accounts.proxy)?.gid,
  });
  await service.listen();
  const acts = createStorageActivities({ db: dbh.db, log, storage: createStorageApi(service) });
  const send = (m: StorageReply) => process.send!(m);

  process.on('message', (raw) => {
    const m = raw as StorageCall;
    const call = () => (acts[m.name] as (input: unknown) => Promise<unknown>).call(acts, m.input);
    runActivity(call).then(
      (result) => send({ id: m.id, ok: true, result }),
      (err: unknown) => send({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await service.close();
      await dbh.close();
      log.flush();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
  send({ ready: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench service host: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
