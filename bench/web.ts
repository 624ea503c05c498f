// `npm run bench:web`: the web console under load, on this machine's PostgreSQL and Redis.
//
// 1. Jobs list: 10,000 jobs in a fresh database; server time (app.request, no network) of the
//    first page, of pages deep in the keyset pagination, and of filtered pages. Target < 200 ms.
// 2. Live viewers: 100 WebSockets on one running job; synthetic progress events published to
//    Redis as the worker does; every viewer must receive every event. Delivery latency =
//    publish → message in the viewer (same process, same clock), p50/p99/max.
//
// Uses DATABASE_URL's server (a temporary database of the harness, dropped at the end) and REDIS_URL.
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { serve } from '@hono/node-server';
import WebSocket from 'ws';
import { insertClient } from '../db/queries/clients.js';
import { insertRepository } from '../db/queries/repositories.js';
import { jobsTable } from '../db/schema.js';
import { loadConfig } from '../infra/config.js';
import { createEventPublisher, createRedis } from '../infra/events.js';
import { createLogger } from '../infra/logger.js';
import { createApiToken, createRedisLoginLimiter } from '../services/auth.js';
import { addUser } from '../services/users.js';
import { createApp } from '../web/app.js';
import { createJobEventHub } from '../infra/job-event-hub.js';
import { registerCleanup } from '../test/harness/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../test/harness/db.js';
import { databaseOnlyDeps } from '../test/harness/deps.js';
import { runBench } from './lib/run-bench.js';

const JOBS = 10_000;
const VIEWERS = 100;
const EVENTS = 200;
const EVENT_INTERVAL_MS = 50;

const print = (line: string) => process.stdout.write(`${line}\n`);

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const ms = (v: number) => `${v.toFixed(2)} ms`;
function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return `p50 ${ms(pct(s, 50))}, p99 ${ms(pct(s, 99))}, max ${ms(s.at(-1) ?? NaN)} (n=${s.length})`;
}

type App = ReturnType<typeof createApp>;
type Auth = Record<string, string>;

/** A fresh database, Redis, the app and a viewer's API token; all removed at the end of the run. */
async function setUp() {
  const config = loadConfig();
  const db = await createTestDatabase({ max: 10 });
  const redis = createRedis(config.redisUrl);
  const hub = createJobEventHub(createRedis(config.redisUrl), createLogger({ name: 'bench', level: 'silent' }));
  const events = createEventPublisher(createRedis(config.redisUrl));
  registerCleanup('Redis connections', async () => {
    await hub.close();
    await events.close();
    await redis.quit();
  });
  const deps = databaseOnlyDeps(db);
  const app = createApp({
    services: deps,
    limiter: createRedisLoginLimiter(redis, { prefix: `borgcube-bench:${process.pid}` }),
    hub,
    health: () => Promise.resolve({ ok: true, database: { ok: true }, redis: { ok: true }, temporal: { ok: false }, workers: {} }),
  });
  const { user } = await addUser(deps, { username: 'bench', role: 'viewer', password: 'bench-password-123' });
  const { token } = await createApiToken(deps, { user, via: 'session' }, { name: 'bench' });
  return { db, app, hub, events, auth: { authorization: `Bearer ${token}` } as Auth };
}

/** 10,000 jobs over 20 clients and 2 repositories, a month of history. */
async function insertJobs(db: TestDatabase) {
  const repos = await Promise.all(
    ['bench-a', 'bench-b'].map((name) =>
      insertRepository(db.handle.db, { id: randomUUID(), name, path: `/nonexistent/${name}`, storageHost: 'bench', encryption: 'repokey', borgId: '0'.repeat(64), keySealed: 'x', passphraseSealed: 'x' }),
    ),
  );
  const clients = [];
  for (let i = 0; i < 20; i++) clients.push(await insertClient(db.handle.db, { name: `client-${String(i).padStart(2, '0')}`, host: `10.0.0.${i + 1}`, paths: ['/'] }));
  const states = ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'cancelled', 'violation'] as const;
  const now = Date.now();
  const t0 = performance.now();
  for (let b = 0; b < JOBS; b += 1000) {
    const rows: Array<typeof jobsTable.$inferInsert> = [];
    for (let i = b; i < Math.min(JOBS, b + 1000); i++) {
      const created = new Date(now - (JOBS - i) * 260_000);
      const client = clients[i % clients.length]!;
      rows.push({
        id: randomUUID(),
        kind: 'backup',
        clientId: client.id,
        repositoryId: repos[i % 2]!.id,
        archiveName: `${client.name}-${created.toISOString()}`,
        state: states[i % states.length]!,
        phase: 'done',
        createdAt: created,
        startedAt: created,
        finishedAt: new Date(created.getTime() + 60_000),
        stats: { originalSize: 1e9 + i, deduplicatedSize: 1e6, nfiles: 1000 },
      });
    }
    await db.handle.db.insert(jobsTable).values(rows);
  }
  await db.handle.pool.query('analyze jobs');
  print(`fixture: ${JOBS} jobs inserted in ${ms(performance.now() - t0)}`);
  return { clientId: clients[0]!.id, repositoryId: repos[0]!.id };
}

/** 1. Jobs list, server time per page. */
async function benchJobsList(app: App, auth: Auth): Promise<void> {
  const timed = async (path: string) => {
    const t = performance.now();
    const res = await app.request(path, { headers: auth });
    const body = await res.text();
    const dt = performance.now() - t;
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.slice(0, 200)}`);
    return { dt, body };
  };
  for (let i = 0; i < 5; i++) await timed('/api/v1/jobs?limit=50'); // warm up
  const first: number[] = [];
  for (let i = 0; i < 30; i++) first.push((await timed('/api/v1/jobs?limit=50')).dt);
  const deep: number[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const { dt, body } = await timed(`/api/v1/jobs?limit=50${cursor ? `&cursor=${cursor}` : ''}`);
    deep.push(dt);
    cursor = (JSON.parse(body) as { nextCursor: string | null }).nextCursor;
    if (!cursor) break;
  }
  const filtered: number[] = [];
  for (let i = 0; i < 20; i++) {
    filtered.push((await timed(`/api/v1/jobs?limit=50&state=failed&client=client-${String(i).padStart(2, '0')}`)).dt);
    filtered.push((await timed(`/api/v1/jobs?limit=50&repository=bench-b&state=violation`)).dt);
  }
  const htmlPages: number[] = [];
  for (let i = 0; i < 20; i++) htmlPages.push((await timed('/jobs?limit=50')).dt);
  print(`jobs list, ${JOBS} jobs, 50 per page (server time, in-process app.request):`);
  print(`  API first page              ${summary(first)}`);
  print(`  API pages 1-${deep.length} by cursor  ${summary(deep)}`);
  print(`  API filtered (client/state) ${summary(filtered)}`);
  print(`  HTML /jobs page             ${summary(htmlPages)}`);
  const worst = Math.max(...first, ...deep, ...filtered, ...htmlPages);
  print(`  slowest page: ${ms(worst)} (target < 200 ms: ${worst < 200 ? 'met' : 'MISSED'})`);
}

/** The app on a loopback port (WebSockets need a real server), closed at the end of the run. */
async function listen(app: App): Promise<number> {
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  app.injectWebSocket(server);
  await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
  registerCleanup('web server', () => new Promise<void>((r) => {
    app.closeWebSockets();
    server.close(() => r());
  }));
  return (server.address() as AddressInfo).port;
}

/** Opens one viewer per slot; each resolves once the server said hello. */
function connectViewers(url: string, auth: Auth, onProgress: (viewer: number, time: number) => void): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  return Promise.all(
    Array.from({ length: VIEWERS }, (_, v) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(url, { headers: auth });
        sockets.push(ws);
        ws.on('message', (data: Buffer) => {
          const m = JSON.parse(data.toString()) as { type: string; time?: number };
          if (m.type === 'hello') resolve();
          else if (m.type === 'progress') onProgress(v, m.time!);
        });
        ws.on('error', reject);
        ws.on('unexpected-response', (_q, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      }),
    ),
  ).then(() => sockets);
}

/** 2. 100 WebSocket viewers of one running job; false unless every viewer got every event. */
async function benchViewers(env: Awaited<ReturnType<typeof setUp>>, job: { clientId: string; repositoryId: string }): Promise<boolean> {
  const { app, auth, events, hub } = env;
  const port = await listen(app);
  const jobId = randomUUID();
  await env.db.handle.db.insert(jobsTable).values({ id: jobId, kind: 'backup', ...job, state: 'running', phase: 'run' });
  const latencies: number[] = [];
  const received = new Array<number>(VIEWERS).fill(0);
  const tConnect = performance.now();
  const sockets = await connectViewers(`ws://127.0.0.1:${port}/ws/jobs/${jobId}`, auth, (v, time) => {
    received[v]!++;
    latencies.push(performance.timeOrigin + performance.now() - time * 1000);
  });
  print(`${VIEWERS} viewers connected and caught up in ${ms(performance.now() - tConnect)}`);
  for (let n = 1; n <= EVENTS; n++) {
    const t = (performance.timeOrigin + performance.now()) / 1000;
    await events.publish(jobId, { type: 'progress', originalSize: n * 1e6, compressedSize: n * 5e5, deduplicatedSize: n * 1e5, nfiles: n * 10, path: `/srv/data/file-${n}`, time: t, n });
    await new Promise((r) => setTimeout(r, EVENT_INTERVAL_MS));
  }
  const deadline = Date.now() + 10_000;
  while (received.some((r) => r < EVENTS) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const complete = received.filter((r) => r === EVENTS).length;
  print(`WebSocket fan-out: ${EVENTS} progress events at ${1000 / EVENT_INTERVAL_MS}/s to ${VIEWERS} viewers of one job:`);
  print(`  viewers that received every event: ${complete}/${VIEWERS} (${latencies.length}/${VIEWERS * EVENTS} messages)`);
  print(`  delivery latency (Redis publish → viewer) ${summary(latencies)}`);
  print(`  Redis subscriptions for the job: ${hub.channels()} (one, shared)`);
  for (const ws of sockets) ws.close();
  return complete === VIEWERS;
}

runBench('bench:web', async () => {
  const env = await setUp();
  const job = await insertJobs(env.db);
  await benchJobsList(env.app, env.auth);
  if (!(await benchViewers(env, job))) throw new Error('not every viewer received every event');
});
