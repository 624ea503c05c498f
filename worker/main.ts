// The worker: hosts every workflow and the activities that talk to clients and PostgreSQL.
// Activities that touch repositories run in the storage process (worker/storage-main.ts).
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { runMain, runUntilSignal } from './lifecycle.js';
import { createAlertDeliveryActivities } from '../activities/alert-delivery.js';
import { createAlertActivities } from '../activities/alerts.js';
import { createClientFileActivities } from '../activities/client-files.js';
import { createClientActivities } from '../activities/client.js';
import { createJobActivities } from '../activities/jobs.js';
import { createPolicyActivities } from '../activities/policies.js';
import { createDb } from '../db/client.js';
import { requireAccount } from '../infra/accounts.js';
import { loadConfig } from '../infra/config.js';
import { createEventPublisher, createRedis } from '../infra/events.js';
import { createLogger } from '../infra/logger.js';
import { MasterKey } from '../infra/secrets.js';
import { SshPool } from '../infra/ssh-pool.js';
import { connectTemporal, describeTemporal, temporalConnectError, temporalConnectionOptions } from '../infra/temporal.js';
import { ensureAlertSweepSchedule } from '../services/alert-schedule.js';

async function main() {
  const config = loadConfig();
  const log = createLogger({ name: 'worker', level: config.logLevel });
  const dbh = createDb(config.databaseUrl, { max: 10, applicationName: 'borgcube-worker' });
  const events = createEventPublisher(createRedis(config.redisUrl));
  const connection = await NativeConnection.connect(temporalConnectionOptions(config)).catch((err: unknown) => {
    throw temporalConnectError(config, err);
  });
  const sshPool = new SshPool();
  const deps = { db: dbh.db, config, events, log, sshPool, storageAccount: () => requireAccount(config.accounts.storage) };
  // Alert activities start delivery workflows; delivery opens the sealed channel targets.
  const temporal = await connectTemporal(config);
  let masterKey: MasterKey | undefined;
  const alertDeps = { ...deps, temporal: () => Promise.resolve(temporal.client), masterKey: () => (masterKey ??= MasterKey.load(config.paths.masterKey)) };
  const activities = {
    // Ending a backup wakes the queued backups its slot admits.
    ...createJobActivities(alertDeps),
    ...createClientActivities(deps),
    // Upgrade only: pushJobFolder and cleanupClient now run on the storage host's queue, but a
    // job of the release before may still have one scheduled on this queue. Remove in the next
    // release. New jobs never send them here.
    ...createClientFileActivities(deps),
    ...createPolicyActivities(deps),
    ...createAlertActivities(alertDeps),
    ...createAlertDeliveryActivities(alertDeps),
  };
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    workflowsPath: fileURLToPath(new URL('../workflows/index.js', import.meta.url)),
    activities,
    maxConcurrentActivityTaskExecutions: 50,
  });
  // The periodic staleness sweep of this task queue (idempotent; several workers may race here).
  await ensureAlertSweepSchedule(temporal.client, config).catch((err: Error) => log.warn({ err: err.message }, 'could not create the alert sweep schedule'));
  log.info({ taskQueue: config.temporal.taskQueue, temporal: describeTemporal(config) }, 'worker ready');
  await runUntilSignal(worker, log, [() => Promise.resolve(sshPool.closeAll()), () => connection.close(), () => temporal.close(), () => events.close(), () => dbh.close()]);
}

runMain('worker', main);
