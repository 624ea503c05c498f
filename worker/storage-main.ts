// The storage host's process: the repository service (proxy sessions, the AuthorizedKeysCommand,
// admin leases) plus a Temporal worker for the activities that touch repositories or the files
// prepared for a job (pushed to the client, and its files cache pulled back: client-files.ts). It
// runs as the storage account, which owns the repositories; it alone holds their real keys. It
// registers its storage host (name, where clients reach its sshd) and reports in while it runs.
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { runMain, runUntilSignal } from './lifecycle.js';
import { createClientFileActivities } from '../activities/client-files.js';
import { createClientConnections } from '../activities/remote-borg/client-connection.js';
import { createMaintenanceActivities } from '../activities/maintenance.js';
import { createStorageActivities } from '../activities/storage.js';
import { createDb } from '../db/client.js';
import { registerStorageHost, touchStorageHost } from '../db/queries/storage-hosts.js';
import { lookupAccount, requireAccount } from '../infra/accounts.js';
import { loadConfig } from '../infra/config.js';
import { createEventPublisher, createRedis } from '../infra/events.js';
import { createLogger } from '../infra/logger.js';
import { MasterKey } from '../infra/secrets.js';
import { SshPool } from '../infra/ssh-pool.js';
import { connectTemporal, describeTemporal, temporalConnectError, temporalConnectionOptions } from '../infra/temporal.js';
import { RepositoryService } from '../proxy/storage/service.js';
import { createStorageApi } from '../proxy/storage/storage-api.js';
import { STORAGE_HOST_REPORT_MS } from '../services/storage-hosts.js';
import { storageTaskQueue } from '../workflows/task-queues.js';

async function main() {
  const config = loadConfig();
  const log = createLogger({ name: 'storage', level: config.logLevel });
  const dbh = createDb(config.databaseUrl, { max: 10, applicationName: 'borgcube-storage' });
  const masterKey = MasterKey.load(config.paths.masterKey);
  const temporal = await connectTemporal(config);
  const service = new RepositoryService({
    db: dbh.db,
    config,
    log,
    masterKey,
    temporal: temporal.client,
    proxyCommand: {
      sandbox: fileURLToPath(new URL('../../bin/borgcube-sandbox', import.meta.url)),
      node: process.execPath,
      script: fileURLToPath(new URL('../proxy/session/main.js', import.meta.url)),
    },
    proxyGid: lookupAccount(config.accounts.proxy)?.gid,
  });
  await service.listen();
  const storage = createStorageApi(service);
  // Live log lines of prune and check jobs (the rows in PostgreSQL are the record).
  const events = createEventPublisher(createRedis(config.redisUrl));
  const connection = await NativeConnection.connect(temporalConnectionOptions(config)).catch((err: unknown) => {
    throw temporalConnectError(config, err);
  });
  // The job folder's connections to a client (push, then cleanup) are kept between its activities;
  // the first is opened while the job is prepared (warmClient), in this same pool.
  const sshPool = new SshPool();
  const clientDeps = { db: dbh.db, config, events, log, sshPool, storageAccount: () => requireAccount(config.accounts.storage) };
  const { warm: warmClient } = createClientConnections(clientDeps, sshPool);
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: storageTaskQueue(config.storageHost),
    activities: {
      ...createStorageActivities({ db: dbh.db, log, storage, events, warmClient }),
      ...createMaintenanceActivities({ db: dbh.db, config, log, masterKey, storage, events }),
      ...createClientFileActivities(clientDeps),
    },
    // Pushes and pulls wait on the network, prunes and checks on the repository: most of these
    // slots wait, and a job's first step must not wait long for one (workflows/storage-host.ts).
    maxConcurrentActivityTaskExecutions: 50,
  });
  // Registered once the worker can take this host's work; reported while it runs (a host whose
  // reports stop is down: its new jobs fail with the time it was last seen).
  const host = { name: config.storageHost, sshHost: config.ssh.host, sshPort: config.ssh.port };
  await registerStorageHost(dbh.db, host);
  const report = setInterval(() => {
    touchStorageHost(dbh.db, host.name).catch((err: Error) => log.warn({ err: err.message }, 'could not report this storage host as alive'));
  }, STORAGE_HOST_REPORT_MS);
  log.info({ storageHost: host.name, taskQueue: storageTaskQueue(config.storageHost), ssh: `${host.sshHost}:${host.sshPort}`, socket: config.paths.storageSocket, temporal: describeTemporal(config) }, 'repository service ready');

  await runUntilSignal(worker, log, [
    () => Promise.resolve(clearInterval(report)),
    () => Promise.resolve(sshPool.closeAll()),
    () => service.close(),
    () => connection.close(),
    () => temporal.close(),
    () => events.close(),
    () => dbh.close(),
  ]);
}

runMain('storage', main);
