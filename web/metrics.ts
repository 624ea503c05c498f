// GET /metrics for Prometheus (prom-client). Every BorgCube series is read from PostgreSQL when
// scraped (gauges and counters with collect()); one snapshot of the database serves all of them
// in a scrape, and concurrent scrapes share it. Counters are totals over the job history in the
// database (they only grow while rows are kept), so rate() and increase() work on them.
//
// Access: Prometheus scrapers send `Authorization: Bearer <token>`. The token is
// BORGCUBE_METRICS_TOKEN, or any live API token (`borgcube user token …`). Without a configured
// metrics token, callers from a loopback address may scrape without one (a Prometheus on the same
// host); everyone else gets 401.
import { Hono, type Context } from 'hono';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Db } from '../db/client.js';
import { loadMetricsSnapshot, type MetricsSnapshot } from '../db/queries/metrics.js';
import { incidentKind, jobKind } from '../db/schema.js';
import { authenticateApiToken, sameSecret } from '../services/auth.js';
import type { ServiceDeps } from '../services/deps.js';
import { clientIp, viaUnknownProxy } from './auth.js';
import type { WebEnv } from './env.js';

const seconds = (d: Date) => d.getTime() / 1000;

type Snapshot = () => Promise<MetricsSnapshot>;

/** The registry of BorgCube's series; `snapshot()` is called by every collect() of one scrape. */
export function createMetricsRegistry(snapshot: Snapshot, opts: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  const registers = [registry];
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'borgcube_web_' });

  for (const series of [backupSeries, jobSeries, repositorySeries]) series(registers, snapshot);
  return registry;
}

/** Series about the newest and all successful backups of each client. */
function backupSeries(registers: Registry[], snapshot: Snapshot): void {
  new Gauge({
    name: 'borgcube_last_success_timestamp_seconds',
    help: 'Unix time the newest successful backup of a client into a repository finished',
    labelNames: ['client', 'repository'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).lastSuccess) this.set({ client: r.client, repository: r.repository }, seconds(r.at));
    },
  });
  new Gauge({
    name: 'borgcube_last_backup_duration_seconds',
    help: 'Duration of the newest successful backup of a client',
    labelNames: ['client'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).lastBackup) this.set({ client: r.client }, r.seconds);
    },
  });
  new Gauge({
    name: 'borgcube_last_backup_bytes',
    help: 'Sizes of the newest successful backup of a client: original, compressed, deduplicated (new to the repository), uploaded (sent by the client)',
    labelNames: ['client', 'type'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).lastBackup) {
        for (const type of ['original', 'compressed', 'deduplicated', 'uploaded'] as const) {
          const v = r[type];
          if (v !== null) this.set({ client: r.client, type }, v);
        }
      }
    },
  });
  new Gauge({
    name: 'borgcube_last_backup_dedup_ratio',
    help: 'Original size divided by deduplicated size of the newest successful backup of a client',
    labelNames: ['client'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).lastBackup) if (r.original !== null && r.deduplicated) this.set({ client: r.client }, r.original / r.deduplicated);
    },
  });
  new Counter({
    name: 'borgcube_backup_bytes_total',
    help: 'Sums over all successful backups of a client (original, compressed, deduplicated, uploaded)',
    labelNames: ['client', 'type'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).backupBytes) for (const type of ['original', 'compressed', 'deduplicated', 'uploaded'] as const) this.inc({ client: r.client, type }, r[type]);
    },
  });
}

/** Series about ended and running jobs and the violations the proxy recorded. */
function jobSeries(registers: Registry[], snapshot: Snapshot): void {
  new Counter({
    name: 'borgcube_jobs_total',
    help: 'Jobs that ended, by kind, final state and client ("" for repository jobs)',
    labelNames: ['kind', 'state', 'client'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).jobTotals) this.inc({ kind: r.kind, state: r.state, client: r.client }, r.n);
    },
  });
  new Counter({
    name: 'borgcube_job_failures_total',
    help: 'Jobs that ended failed or in a violation, by kind and client',
    labelNames: ['kind', 'client'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).jobTotals) if (r.state === 'failed' || r.state === 'violation') this.inc({ kind: r.kind, client: r.client }, r.n);
    },
  });
  new Counter({
    name: 'borgcube_job_duration_seconds_total',
    help: 'Summed duration of ended jobs by kind (with borgcube_jobs_total: the average duration)',
    labelNames: ['kind'],
    registers,
    async collect() {
      this.reset();
      const sums = new Map<string, number>();
      for (const r of (await snapshot()).jobTotals) sums.set(r.kind, (sums.get(r.kind) ?? 0) + r.seconds);
      for (const [kind, s] of sums) this.inc({ kind }, s);
    },
  });
  new Counter({
    name: 'borgcube_violations_total',
    help: 'Policy violations the proxy recorded, by client',
    labelNames: ['client'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).violations) this.inc({ client: r.client }, r.n);
    },
  });
  new Gauge({
    name: 'borgcube_running_jobs',
    help: 'Jobs running now, by kind',
    labelNames: ['kind'],
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      for (const kind of jobKind.enumValues) this.set({ kind }, s.running.find((r) => r.kind === kind)?.n ?? 0);
    },
  });
  new Gauge({
    name: 'borgcube_queued_backups',
    help: 'Backups waiting for a slot under the concurrency limits',
    registers,
    async collect() {
      this.set((await snapshot()).queued);
    },
  });
}

/** Series about repositories (sizes, checks) and open incidents. */
function repositorySeries(registers: Registry[], snapshot: Snapshot): void {
  new Gauge({
    name: 'borgcube_repository_size_bytes',
    help: 'Repository sizes as of its last refresh: original and compressed (all archives), unique and unique_compressed (stored once)',
    labelNames: ['repository', 'type'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).repositories) {
        if (!r.stats) continue;
        this.set({ repository: r.name, type: 'original' }, r.stats.originalSize);
        this.set({ repository: r.name, type: 'compressed' }, r.stats.compressedSize);
        this.set({ repository: r.name, type: 'unique' }, r.stats.uniqueSize);
        this.set({ repository: r.name, type: 'unique_compressed' }, r.stats.uniqueCompressedSize);
      }
    },
  });
  new Gauge({
    name: 'borgcube_repository_archives',
    help: 'Archives in a repository as of its last refresh',
    labelNames: ['repository'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).repositories) if (r.stats) this.set({ repository: r.name }, r.stats.archives);
    },
  });
  new Gauge({
    name: 'borgcube_repository_dedup_ratio',
    help: 'Original size of all archives divided by the compressed size stored once (deduplication and compression together)',
    labelNames: ['repository'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).repositories) if (r.stats?.uniqueCompressedSize) this.set({ repository: r.name }, r.stats.originalSize / r.stats.uniqueCompressedSize);
    },
  });
  new Gauge({
    name: 'borgcube_repository_check_ok',
    help: '1 if the newest borg check of a repository passed, 0 if it failed',
    labelNames: ['repository'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).checks) this.set({ repository: r.repository }, r.ok ? 1 : 0);
    },
  });
  new Gauge({
    name: 'borgcube_repository_check_timestamp_seconds',
    help: 'Unix time the newest borg check of a repository finished',
    labelNames: ['repository'],
    registers,
    async collect() {
      this.reset();
      for (const r of (await snapshot()).checks) this.set({ repository: r.repository }, seconds(r.at));
    },
  });
  new Gauge({
    name: 'borgcube_open_incidents',
    help: 'Open incidents (alerts firing), by kind',
    labelNames: ['kind'],
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      for (const kind of incidentKind.enumValues) this.set({ kind }, s.incidents.find((r) => r.kind === kind)?.n ?? 0);
    },
  });
}

/** One database snapshot per scrape: the first collect() loads it, the others (and a concurrent scrape) share it. */
function sharedSnapshot(db: Db, maxAgeMs = 1000): Snapshot {
  let current: { at: number; p: Promise<MetricsSnapshot> } | undefined;
  return () => {
    const now = Date.now();
    if (!current || now - current.at > maxAgeMs) {
      const p = loadMetricsSnapshot(db);
      current = { at: now, p };
      p.catch(() => {
        if (current?.p === p) current = undefined;
      });
    }
    return current.p;
  };
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(ip);
}

async function allowed(deps: Pick<ServiceDeps, 'db' | 'config'>, c: Context<WebEnv>): Promise<boolean> {
  const authz = c.req.header('authorization');
  const token = deps.config.metrics.token;
  if (authz) {
    const m = /^Bearer\s+(\S+)$/i.exec(authz);
    if (!m) return false;
    if (token && sameSecret(m[1]!, token)) return true;
    return Boolean(await authenticateApiToken(deps, m[1]!));
  }
  // Without a token only local callers (a Prometheus on this host) may read. A request that
  // came through a proxy on this host looks local at the socket: it is local only if a
  // configured proxy (BORGCUBE_TRUSTED_PROXIES) says it came from a local address.
  const trusted = deps.config.web.trustedProxies;
  if (token || viaUnknownProxy(c, trusted)) return false;
  return isLoopback(clientIp(c, trusted));
}

/** The /metrics sub-app: mount with `app.route('/metrics', createMetricsApp(services))`. */
export function createMetricsApp(deps: Pick<ServiceDeps, 'db' | 'config'>, opts: { processMetrics?: boolean } = {}) {
  const registry = createMetricsRegistry(sharedSnapshot(deps.db), opts);
  const app = new Hono<WebEnv>();
  app.get('/', async (c) => {
    if (!(await allowed(deps, c))) {
      c.header('WWW-Authenticate', 'Bearer realm="borgcube-metrics"');
      return c.text('metrics need a bearer token (BORGCUBE_METRICS_TOKEN or an API token)\n', 401);
    }
    const body = await registry.metrics();
    c.header('Cache-Control', 'no-store');
    return c.body(body, 200, { 'Content-Type': registry.contentType });
  });
  return app;
}
