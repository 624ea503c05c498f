// The web app of the web tests: through app.request() (and a real socket for WebSockets) against
// a real PostgreSQL and Redis, with users admin, op and viewer; no Temporal, master key or storage.
import { afterAll, beforeAll } from 'vitest';
import { loadConfig } from '../../infra/config.js';
import { createRedis, createEventPublisher, type EventPublisher } from '../../infra/events.js';
import { createJobEventHub, type JobEventHub } from '../../infra/job-event-hub.js';
import { createRedisLoginLimiter } from '../../services/auth.js';
import type { ServiceDeps } from '../../services/deps.js';
import { addUser } from '../../services/users.js';
import { createApp, type WebApp } from '../../web/app.js';
import { runCleanups } from '../harness/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../harness/db.js';
import { databaseOnlyDeps } from '../harness/deps.js';
import { password } from './web-browser.js';

export interface WebTestApp {
  tdb: TestDatabase;
  app: WebApp;
  deps: ServiceDeps;
  hub: JobEventHub;
  redis: ReturnType<typeof createRedis>;
  publisher: EventPublisher;
  /** The login limiter's Redis key prefix (unique to this run). */
  prefix: string;
}

/** Registers the hooks that build the app before the file's tests and close it after; its fields are set in beforeAll. */
export function useWebTestApp(): WebTestApp {
  const w = {
    redis: createRedis(loadConfig().redisUrl),
    publisher: createEventPublisher(createRedis(loadConfig().redisUrl)),
    prefix: `borgcube-test:${process.pid}:${Date.now()}`,
  } as WebTestApp;

  beforeAll(async () => {
    w.tdb = await createTestDatabase();
    w.deps = databaseOnlyDeps(w.tdb);
    w.hub = createJobEventHub(createRedis(w.deps.config.redisUrl), w.deps.log);
    w.app = createApp({
      services: w.deps,
      limiter: createRedisLoginLimiter(w.redis, { prefix: w.prefix }),
      hub: w.hub,
      health: () => Promise.resolve({ ok: true, database: { ok: true }, redis: { ok: true }, temporal: { ok: false, error: 'none' }, workers: {} }),
      ws: { idlePollMs: 500 },
    });
    await addUser(w.deps, { username: 'admin', role: 'admin', password });
    await addUser(w.deps, { username: 'op', role: 'operator', password });
    await addUser(w.deps, { username: 'viewer', role: 'viewer', password });
  });
  afterAll(async () => {
    await w.hub.close();
    await w.publisher.close();
    await w.redis.quit();
    await runCleanups();
  });
  return w;
}
