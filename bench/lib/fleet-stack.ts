// bench:fleet's stack and fixtures: its own Temporal dev server (persisted, to measure its
// storage), a BorgCube stack of the harness (fresh database, repository service idle — the
// simulated worker serves the storage host's task queue), the simulated worker
// (fleet-worker.ts), the web console as its own process, the database at console scale, and one
// Temporal Schedule per policy as services/policy-schedules.ts makes them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ScheduleAlreadyRunning } from '@temporalio/client';
import { insertRepository } from '../../db/queries/repositories.js';
import { policiesTable } from '../../db/schema.js';
import { waitFor } from '../../infra/local-stack/net.js';
import { createApiToken } from '../../services/auth.js';
import { scheduleOptions } from '../../services/policy-schedules.js';
import { addUser } from '../../services/users.js';
import { registerCleanup } from '../../test/harness/cleanup.js';
import { freePort, httpStatus } from '../../test/harness/net.js';
import { managedProcess, type ManagedProcess } from '../../test/harness/process.js';
import { launchStack, type Stack } from '../../test/harness/stack-launcher.js';
import { startOwnTemporal, type OwnTemporal } from '../../test/harness/temporal-server.js';
import { distPath } from './paths.js';
import { f1, note } from './report.js';

export interface FleetOptions {
  clients: number;
  every: number;
  jitterS: number;
  dbClients: number;
  seedJobs: number;
  runMin: number;
  runMax: number;
  slots: number;
  hostLimit: number;
  repoLimit: number;
}
type Opts = FleetOptions;

/** Runs `fn` over `items`, `limit` at a time. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

export interface Fleet {
  temporal: OwnTemporal;
  stack: Stack;
  worker: ManagedProcess;
  web: ManagedProcess;
  url: string;
  token: string;
}

export async function startFleet(o: Opts): Promise<Fleet> {
  for (const f of ['bench/lib/fleet-worker.js', 'bench/lib/service-host.js', 'web/main.js']) {
    if (!existsSync(distPath(f))) throw new Error(`dist/${f} is missing: run \`npm run build\` first`);
  }
  const temporal = await startOwnTemporal({ build: false, persist: true, metrics: true });
  registerCleanup('Temporal dev server', () => temporal.stop());
  const stack = await launchStack({
    temporal,
    worker: false,
    env: { BORGCUBE_MAX_BACKUPS_PER_HOST: String(o.hostLimit), BORGCUBE_MAX_BACKUPS_PER_REPOSITORY: String(o.repoLimit), LOG_LEVEL: 'warn', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
    storage: { main: distPath('bench/lib/service-host.js'), ipc: true },
    dbPoolMax: 10,
  });
  const worker = managedProcess({
    name: 'fleet-worker',
    file: process.execPath,
    args: [distPath('bench/lib/fleet-worker.js')],
    env: { ...stack.env, FLEET_RUN_MIN_S: String(o.runMin), FLEET_RUN_MAX_S: String(o.runMax), FLEET_ACTIVITY_SLOTS: String(o.slots) },
    logPath: join(stack.config.paths.logDir, 'fleet-worker.log'),
    tagDir: stack.dataDir,
    marker: distPath('bench/lib/fleet-worker.js'),
  });
  registerCleanup('fleet worker', () => worker.stop());
  await worker.start();
  const { web, url } = await startWeb(stack);
  await waitFor('the simulated worker', async () => {
    if (!worker.alive()) throw new Error(`the fleet worker exited:\n${worker.tail()}`);
    const r = await stack.temporal.workflowService.describeTaskQueue({ namespace: stack.config.temporal.namespace, taskQueue: { name: stack.config.temporal.taskQueue }, taskQueueType: 1 });
    return (r.pollers?.length ?? 0) > 0;
  }, { timeoutMs: 120_000, intervalMs: 500 });
  const token = await viewerToken(stack);
  return { temporal, stack, worker, web, url, token };
}

/** The web console as its own process (`dist/web/main.js`), as `npm start` runs it. */
export async function startWeb(stack: Stack): Promise<{ web: ManagedProcess; url: string }> {
  const port = await freePort();
  const web = managedProcess({
    name: 'web',
    file: process.execPath,
    args: [distPath('web/main.js')],
    env: { ...stack.env, BORGCUBE_WEB_HOST: '127.0.0.1', BORGCUBE_WEB_PORT: String(port) },
    logPath: join(stack.config.paths.logDir, 'web.log'),
    tagDir: stack.dataDir,
    marker: distPath('web/main.js'),
  });
  registerCleanup('web console', () => web.stop());
  await web.start();
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the web console', async () => (await httpStatus(`${url}/healthz`)) === 200, { timeoutMs: 60_000, intervalMs: 300 });
  return { web, url };
}

/** A viewer account and its API token: what the bench's clicks through the console log in as. */
async function viewerToken(stack: Stack): Promise<string> {
  const { user } = await addUser(stack.deps, { username: 'fleet-viewer', role: 'viewer', password: 'fleet-viewer-password-1' });
  return (await createApiToken(stack.deps, { user, via: 'session' }, { name: 'bench:fleet' })).token;
}

/**
 * `--console-only`: the stack without Temporal (the web process connects to it lazily, and no
 * page measured here needs it: no job of the seeded database runs), a fresh database and the web
 * process. No worker: nothing is scheduled.
 */
export async function startConsoleStack(): Promise<{ stack: Stack; web: ManagedProcess; url: string; token: string }> {
  for (const f of ['bench/lib/service-host.js', 'web/main.js']) {
    if (!existsSync(distPath(f))) throw new Error(`dist/${f} is missing: run \`npm run build\` first`);
  }
  // The repository service of the benches without Temporal (service-host.ts, over IPC): it idles.
  const stack = await launchStack({ worker: false, env: { LOG_LEVEL: 'warn', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' }, storage: { main: distPath('bench/lib/service-host.js'), ipc: true }, dbPoolMax: 10 });
  const { web, url } = await startWeb(stack);
  return { stack, web, url, token: await viewerToken(stack) };
}

// ---------------------------------------------------------------------------------------------
// The database at console scale, in a few set-based statements.

export async function seed(stack: Stack, o: Opts): Promise<void> {
  const t0 = performance.now();
  const repoCount = Math.max(1, Math.ceil(o.clients / 1000));
  const repos = [];
  for (let i = 0; i < repoCount; i++) {
    repos.push(await insertRepository(stack.db.handle.db, { name: `fleet-repo-${i}`, path: `/nonexistent/fleet-repo-${i}`, storageHost: stack.config.storageHost, encryption: 'repokey', borgId: '0'.repeat(64), keySealed: 'simulated', passphraseSealed: 'simulated' }));
  }
  const repoIds = repos.map((r) => r.id);
  const q = (text: string, values: unknown[] = []) => stack.db.handle.pool.query(text, values);
  // Clients are two months old, so that one without a recent success shows as stale.
  await q(
    `insert into clients (name, host, paths, created_at)
     select 'fleet-' || lpad(i::text, 5, '0'), '10.' || (i / 65536) % 256 || '.' || (i / 256) % 256 || '.' || i % 256, '["/srv"]'::jsonb, now() - interval '60 days'
     from generate_series(1, $1::int) i`,
    [o.dbClients],
  );
  await q(
    `with c as (select id, name, row_number() over (order by name) - 1 as rn from clients)
     insert into policies (name, client_id, repository_id, backup_crons, schedule_jitter_seconds)
     select c.name || '-every-${o.every}m', c.id, ($1::uuid[])[1 + c.rn % $2::int], $3::jsonb, $4::int from c where c.rn < $5::int`,
    [repoIds, repoIds.length, JSON.stringify([`@every ${o.every}m`]), o.jitterS, o.clients],
  );
  // A month of finished backups over every client, one in twenty failed, with two log lines each.
  await q(
    `with c as (select id, name, row_number() over (order by name) - 1 as rn from clients)
     insert into jobs (id, kind, client_id, repository_id, archive_name, state, phase, triggered_by, created_at, started_at, finished_at, stats, error)
     select gen_random_uuid(), 'backup', c.id, ($1::uuid[])[1 + c.rn % $2::int], c.name || '-seed-' || k,
            (case k % 20 when 0 then 'failed' else 'succeeded' end)::job_state, 'done', 'bench:fleet seed',
            now() - ($3::int - k) * interval '26 seconds', now() - ($3::int - k) * interval '26 seconds',
            now() - ($3::int - k) * interval '26 seconds' + interval '70 seconds',
            jsonb_build_object('originalSize', 5000000000 + k, 'compressedSize', 3000000000 + k, 'deduplicatedSize', 20000000 + k, 'nfiles', 30000 + k % 1000),
            case when k % 20 = 0 then 'simulated failure (bench:fleet seed)' end
     from generate_series(0, $3::int - 1) k join c on c.rn = k % $4::int`,
    [repoIds, repoIds.length, o.seedJobs, o.dbClients],
  );
  await q(
    `insert into job_log_lines (job_id, seq, time, level, type, message)
     select j.id, s, j.created_at + s * interval '30 seconds', 'INFO', 'borgcube', case s when 1 then 'borg create started' else 'borg create finished with exit code 0' end
     from jobs j cross join generate_series(1, 2) s`,
  );
  await q('analyze');
  note(`seeded ${o.dbClients} clients (${o.clients} with a policy), ${repoCount} repositories, ${o.seedJobs} finished jobs with 2 log lines each in ${f1((performance.now() - t0) / 1000)} s`);
}

/**
 * One Temporal Schedule per policy, as services/policy-schedules.ts makes them, `concurrency` at a
 * time. `@every` fires on multiples of the interval since the epoch plus a phase: the policies get
 * the phase (`@every 10m/95s`) of the day's start, the first boundary after creation is expected
 * to end (at `createRate` schedules a second), and every schedule gets that start and the day's
 * end as its spec's startAt/endAt: all of them begin together, however long creation took, and
 * stop by themselves (the run's own dev server goes with the run, so none is deleted one by one).
 * A schedule created after the day began starts at its next boundary; that count is returned.
 */
export async function createSchedules(stack: Stack, o: Opts & { minutes: number; createRate: number; createConcurrency: number }): Promise<{ ids: string[]; seconds: number; dayStart: Date; dayEnd: Date; phaseS: number; late: number }> {
  const period = o.every * 60_000;
  const expected = Date.now() + 30_000 + (o.clients / o.createRate) * 1000;
  const phaseS = Math.floor((expected % period) / 1000);
  const dayStart = new Date(Math.floor(expected / 1000) * 1000);
  // Up to the last boundary inside the day (a boundary exactly at its end would start one more round).
  const dayEnd = new Date(dayStart.getTime() + o.minutes * 60_000 - 1000);
  await stack.db.handle.pool.query('update policies set backup_crons = $1::jsonb', [JSON.stringify([`@every ${o.every}m/${phaseS}s`])]);
  const policies = await stack.db.handle.db.select().from(policiesTable);
  const t0 = performance.now();
  let done = 0;
  let late = 0;
  const ids = await mapLimit(policies, o.createConcurrency, async (p) => {
    const opts = scheduleOptions(stack.config, p, 'backup');
    const spec = { ...opts.spec, startAt: dayStart, endAt: dayEnd };
    for (let attempt = 1; ; attempt++) {
      try {
        await stack.temporal.schedule.create({ ...opts, spec });
        break;
      } catch (err) {
        // A loaded dev server times some calls out; a retry of one that did land finds it there.
        if (err instanceof ScheduleAlreadyRunning) break;
        if (attempt >= 5) throw err;
        await sleep(1000 * attempt);
      }
    }
    if (Date.now() > dayStart.getTime()) late++;
    if (++done % 1000 === 0) note(`${done} schedules created (${f1(done / ((performance.now() - t0) / 1000))} a second)`);
    return opts.scheduleId;
  });
  return { ids, seconds: (performance.now() - t0) / 1000, dayStart, dayEnd, phaseS, late };
}
