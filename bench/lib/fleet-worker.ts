// TEST-ONLY worker process of bench:fleet: the production worker's workflows and its job,
// policy and alert activities (the same factories worker/main.ts wires), with the client side
// (probe, push, run borg create, cleanup) replaced by bench/lib/fleet-sim.ts; and, on the storage
// host's task queue, the storage activities replaced by the same simulation (no repository
// service, no repository writes). Started by bench/fleet.ts; not a product entry point.
//
// FLEET_RUN_MIN_S / FLEET_RUN_MAX_S: the simulated borg create's duration range;
// FLEET_ACTIVITY_SLOTS: concurrent activities of each of the two Temporal workers (the
// production worker allows 50; a simulated activity costs a timer, so one process stands in for
// the several workers a real fleet of this size would run).
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createAlertDeliveryActivities } from '../../activities/alert-delivery.js';
import { createAlertActivities } from '../../activities/alerts.js';
import { createJobActivities } from '../../activities/jobs.js';
import { createPolicyActivities } from '../../activities/policies.js';
import { createDb } from '../../db/client.js';
import { loadConfig } from '../../infra/config.js';
import { createEventPublisher, createRedis } from '../../infra/events.js';
import { createLogger } from '../../infra/logger.js';
import { MasterKey } from '../../infra/secrets.js';
import { connectTemporal } from '../../infra/temporal.js';
import { storageTaskQueue } from '../../workflows/task-queues.js';
import { createSimulatedClientActivities, createSimulatedClientFileActivities, createSimulatedStorageActivities } from './fleet-sim.js';

const num = (name: string, def: number) => {
  const v = Number(process.env[name] ?? def);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}: not a number: ${process.env[name]}`);
  return v;
};

async function main() {
  const config = loadConfig();
  const log = createLogger({ name: 'fleet-worker', level: config.logLevel });
  const slots = num('FLEET_ACTIVITY_SLOTS', 1000);
  const dbh = createDb(config.databaseUrl, { max: 20, applicationName: 'borgcube-fleet-worker' });
  const events = createEventPublisher(createRedis(config.redisUrl));
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const temporal = await connectTemporal(config);
  let masterKey: MasterKey | undefined;
  const deps = { db: dbh.db, config, events, log };
  const alertDeps = { ...deps, temporal: () => Promise.resolve(temporal.client), masterKey: () => (masterKey ??= MasterKey.load(config.paths.masterKey)) };
  const sim = { db: dbh.db, events, log, runSeconds: { min: num('FLEET_RUN_MIN_S', 20), max: num('FLEET_RUN_MAX_S', 120) } };
  const main = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    workflowsPath: fileURLToPath(new URL('../../workflows/index.js', import.meta.url)),
    activities: {
      ...createJobActivities(deps),
      ...createPolicyActivities(deps),
      ...createAlertActivities(alertDeps),
      ...createAlertDeliveryActivities(alertDeps),
      ...createSimulatedClientActivities(sim),
    },
    maxConcurrentActivityTaskExecutions: slots,
    maxConcurrentLocalActivityExecutions: slots,
  });
  const storage = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: storageTaskQueue(config.storageHost),
    activities: { ...createSimulatedStorageActivities(sim), ...createSimulatedClientFileActivities(sim) },
    maxConcurrentActivityTaskExecutions: slots,
  });
  const stop = () => {
    main.shutdown();
    storage.shutdown();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  log.info({ taskQueue: config.temporal.taskQueue, slots }, 'fleet worker ready (simulated client side)');
  try {
    await Promise.all([main.run(), storage.run()]);
  } finally {
    await connection.close();
    await temporal.close();
    await events.close();
    await dbh.close();
    log.flush();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench fleet worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
