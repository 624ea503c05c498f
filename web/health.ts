// Is the stack usable? The database decides the status (503 without it); Redis, Temporal and the
// workers are reported so `npm start` and operators see what is missing: in full with the errors
// at /api/v1/health (logged in), as ok/degraded per component at the anonymous /healthz.
// Every probe is bounded: a dead dependency costs at most `timeoutMs`.
import type { Client as TemporalClient } from '@temporalio/client';
import type { Redis } from 'ioredis';
import { pingDb, type Db } from '../db/client.js';
import { listRepositories } from '../services/repositories.js';
import { storageTaskQueue } from '../workflows/task-queues.js';
import type { HealthReport, HealthSummary } from './env.js';

export interface HealthDeps {
  db: Db;
  redis: Redis;
  temporal(): Promise<TemporalClient>;
  namespace: string;
  /** The main task queue (config.temporal.taskQueue). */
  taskQueue: string;
  storageHost: string;
  timeoutMs?: number;
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// Temporal's proto enums (temporal.api.enums.v1): TaskQueueKind NORMAL = 1; TaskQueueType WORKFLOW = 1, ACTIVITY = 2.
const kindNormal = 1;
const workflowQueue = 1;
const activityQueue = 2;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 200);

export function createHealthCheck(h: HealthDeps): () => Promise<HealthReport> {
  const ms = h.timeoutMs ?? 3000;
  return async () => {
    const report: HealthReport = { ok: false, database: { ok: false }, redis: { ok: false }, temporal: { ok: false }, workers: {} };
    const queues: Array<[string, 1 | 2]> = [[h.taskQueue, workflowQueue]];
    await Promise.all([
      bounded(pingDb(h.db), ms, 'PostgreSQL')
        .then(async () => {
          report.database.ok = true;
          const hosts = new Set([h.storageHost, ...(await listRepositories({ db: h.db })).map((r) => r.storageHost)]);
          for (const host of hosts) queues.push([storageTaskQueue(host), activityQueue]);
        })
        .catch((err: unknown) => {
          report.database.error = message(err);
          queues.push([storageTaskQueue(h.storageHost), activityQueue]);
        }),
      bounded(h.redis.ping(), ms, 'Redis')
        .then(() => (report.redis.ok = true))
        .catch((err: unknown) => (report.redis.error = message(err))),
    ]);
    try {
      const client = await bounded(h.temporal(), ms, 'Temporal');
      const answers = await Promise.all(
        queues.map(([name, taskQueueType]) =>
          bounded(client.workflowService.describeTaskQueue({ namespace: h.namespace, taskQueue: { name, kind: kindNormal }, taskQueueType }), ms, 'Temporal'),
        ),
      );
      report.temporal.ok = true;
      queues.forEach(([name], i) => (report.workers[name] = (answers[i]?.pollers?.length ?? 0) > 0));
    } catch (err) {
      report.temporal.error = message(err);
      for (const [name] of queues) report.workers[name] = false;
    }
    report.ok = report.database.ok;
    return report;
  };
}

/** What /healthz tells anyone: no error text, no queue or host names. */
export function healthSummary(r: HealthReport): HealthSummary {
  const state = (ok: boolean) => (ok ? 'ok' : 'degraded');
  const workers = Object.values(r.workers);
  const components = { database: state(r.database.ok), redis: state(r.redis.ok), temporal: state(r.temporal.ok), workers: state(workers.length > 0 && workers.every(Boolean)) } as const;
  return { status: !r.ok ? 'down' : Object.values(components).every((v) => v === 'ok') ? 'ok' : 'degraded', ...components };
}
