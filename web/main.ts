// The web process: console, JSON API and WebSockets. Composition root (STYLE.md §16): reads the
// configuration once, opens PostgreSQL, Redis (one connection for commands, one subscriber for
// live events) and Temporal (lazily), builds the app, serves it, stops cleanly on SIGTERM/SIGINT.
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { createDb } from '../db/client.js';
import { requireAccount, type Account } from '../infra/accounts.js';
import { loadConfig, type Config } from '../infra/config.js';
import { createRedis } from '../infra/events.js';
import { createLogger } from '../infra/logger.js';
import { MasterKey } from '../infra/secrets.js';
import { connectTemporal, describeTemporal, type TemporalHandle } from '../infra/temporal.js';
import { createRedisLoginLimiter, deleteExpiredSessions } from '../services/auth.js';
import { cachedFleet } from '../services/dashboard.js';
import type { ServiceDeps } from '../services/deps.js';
import { countUsers } from '../db/queries/users.js';
import { createApp } from './app.js';
import { createHealthCheck } from './health.js';
import { createJobEventHub } from '../infra/job-event-hub.js';

async function main() {
  const config = loadConfig();
  const log = createLogger({ name: 'web', level: config.logLevel });
  const dbh = createDb(config.databaseUrl, { max: 10, applicationName: 'borgcube-web' });
  const redis = createRedis(config.redisUrl);
  const subscriber = createRedis(config.redisUrl);
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis'));
  subscriber.on('error', (err: Error) => log.warn({ err: err.message }, 'redis subscriber'));

  const temporal = lazyTemporal(config);
  let masterKey: MasterKey | undefined;
  let storage: Account | undefined;
  const services: ServiceDeps = {
    db: dbh.db,
    config,
    log,
    masterKey: () => (masterKey ??= MasterKey.load(config.paths.masterKey)),
    storageAccount: () => (storage ??= requireAccount(config.accounts.storage)),
    temporal: temporal.client,
  };

  // The first account is made by `borgcube first-admin` (npm start runs it), not here.
  if ((await countUsers(dbh.db)) === 0) log.warn('no console user yet: nobody can log in; create the first one with `borgcube first-admin`');

  const hub = createJobEventHub(subscriber, log);
  const app = createApp({
    services,
    // Thousands of clients make the per-client summaries cost up to a second: refreshed in the background every 10 s.
    dashboardFleet: cachedFleet(services, 10_000),
    // Redis keeps the login limits for every web process; while it is away each process limits on its own.
    limiter: createRedisLoginLimiter(redis, { onFallback: (err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'login limits: Redis unavailable, limiting in this process') }),
    hub,
    health: createHealthCheck({ db: dbh.db, redis, temporal: () => services.temporal(), namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, storageHost: config.storageHost }),
  });
  const server = serve({ fetch: app.fetch, hostname: config.web.host, port: config.web.port }, (info) => {
    log.info({ address: info.address, port: info.port, url: config.web.publicUrl, temporal: describeTemporal(config) }, 'web console listening');
  });
  app.injectWebSocket(server);
  // serve() without createServer options makes a plain node:http server.
  const http = server as Server;

  const sweep = setInterval(() => {
    deleteExpiredSessions(services)
      .then((n) => n && log.info({ sessions: n }, 'expired sessions removed'))
      .catch((err: unknown) => log.warn({ err }, 'removing expired sessions failed'));
  }, 3600_000);
  sweep.unref();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    clearInterval(sweep);
    app.closeWebSockets();
    // Connections still open after 10 s (a stuck request) do not keep the process alive.
    const force = setTimeout(() => http.closeAllConnections(), 10_000);
    force.unref();
    server.close(() => {
      void (async () => {
        await hub.close();
        await redis.quit().catch(() => redis.disconnect());
        await temporal.close();
        await dbh.close();
        log.info('stopped');
        // Everything is closed; a Temporal connection attempt still in flight must not hold the exit.
        log.flush(() => process.exit(0));
      })();
    });
    http.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Temporal, connected at the first use; a failed connection is retried by the next caller instead of being remembered. */
function lazyTemporal(config: Config) {
  let temporal: Promise<TemporalHandle> | undefined;
  return {
    client: async () =>
      (
        await (temporal ??= connectTemporal(config).catch((err: unknown) => {
          temporal = undefined;
          throw err;
        }))
      ).client,
    /** Closes the connection; one still being attempted (Temporal down) is not waited for. */
    async close() {
      const t = temporal && (await Promise.race([temporal.catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000))]));
      await t?.close();
    },
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`borgcube web: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
