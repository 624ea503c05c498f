// The storage host's process: the repository service (proxy sessions, the AuthorizedKeysCommand,
// admin leases) plus a Temporal worker for the activities that touch repositories. It runs as the
// storage account, which owns the repositories; it alone holds their real keys.
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { runMain, runUntilSignal } from './lifecycle.js';
import { createMaintenanceActivities } from '../activities/maintenance.js';
import { createStorageActivities } from '../activities/storage.js';
import { createDb } from '../db/client.js';
import { lookupAccount } from '../infra/accounts.js';
import { loadConfig } from '../infra/config.js';
import { createEventPublisher, createRedis } from '../infra/events.js';
import { createLogger } from '../infra/logger.js';
import { MasterKey } from '../infra/secrets.js';
import { connectTemporal, describeTemporal, temporalConnectError, temporalConnectionOptions } from '../infra/temporal.js';
import { RepositoryService } from '../proxy/storage/service.js';
import { createStorageApi } from '../proxy/storage/storage-api.js';
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
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: storageTaskQueue(config.storageHost),
    activities: { ...createStorageActivities({ db: dbh.db, log, storage, events }), ...createMaintenanceActivities({ db: dbh.db, config, log, masterKey, storage, events }) },
    maxConcurrentActivityTaskExecutions: 20,
  });
  log.info({ taskQueue: storageTaskQueue(config.storageHost), socket: config.paths.storageSocket, temporal: describeTemporal(config) }, 'repository service ready');

  await runUntilSignal(worker, log, [() => service.close(), () => connection.close(), () => temporal.close(), () => events.close(), () => dbh.close()]);
}

runMain('storage', main);
