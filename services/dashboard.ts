// The fleet at a glance: each client's last backup, who is failing or stale, what runs now,
// repository sizes. The web dashboard and `GET /api/v1/dashboard` both read this.
import * as dash from '../db/queries/dashboard.js';
import { countLiveArchives } from '../db/queries/archives.js';
import type { RepositoryStats } from '../db/schema.js';
import type { BackupProgress } from '../workflows/messages.js';
import type { ServiceDeps } from './deps.js';
import { listJobs, liveStatus, type JobView } from './jobs.js';
import { listRepositories } from './repositories.js';

/** Staleness threshold of a client that no policy binds. */
export const defaultStaleAfterHours = 36;

export interface FleetClient {
  name: string;
  host: string;
  lastJob: { id: string; state: string; createdAt: Date; finishedAt: Date | null; error: string | null } | null;
  lastSuccess: { jobId: string; at: Date; originalSize: number | null; deduplicatedSize: number | null; nfiles: number | null } | null;
  /** Seconds since the last successful backup ended; null = never. */
  ageSeconds: number | null;
  staleAfterHours: number;
  /** No successful backup within the threshold (a client younger than the threshold is not stale yet). */
  stale: boolean;
  /** The newest backup failed or was stopped for a violation. */
  failing: boolean;
  running: boolean;
}

export interface RunningJob extends JobView {
  progress?: BackupProgress;
  livePhase?: string;
  /** Original size of the client's previous successful backup, to scale a progress bar. */
  estimate: number | null;
}

export interface FleetRepository {
  name: string;
  storageHost: string;
  encryption: string;
  archives: number;
  stats: RepositoryStats | null;
  /** Original bytes per stored byte after deduplication alone, and after compression too. */
  dedupRatio: number | null;
  totalRatio: number | null;
}

export interface Dashboard {
  generatedAt: Date;
  clients: FleetClient[];
  running: RunningJob[];
  /** Backups waiting for a slot (up to 100), in queue order, with their places in the queue. */
  queued: JobView[];
  repositories: FleetRepository[];
  last24h: Record<string, number>;
  counts: { clients: number; failing: number; stale: number; running: number; queued: number };
}

/** How much of the fleet one dashboard shows; the counts always cover all of it. */
export interface DashboardOptions {
  /** Client rows: those that need attention (failing, stale, running) first; all when not given. */
  clientRows?: number;
  /** Running job rows (default 100). */
  runningRows?: number;
  /**
   * The live progress of running jobs waits at most this long in all (default 2 s); late ones go
   * without. 0: not asked for at all (the console's page, whose script fills it in).
   */
  liveBudgetMs?: number;
  /** The per-client summaries and what follows from them (default: read now); see cachedFleet. */
  fleet?: () => Promise<FleetSnapshot>;
}

/** The per-client summaries as read at `at`, judged then: who is failing or stale, and in which order the console shows them. */
export interface FleetSnapshot {
  at: Date;
  summaries: dash.ClientBackupSummary[];
  /** Failing, then stale, then running clients, then the rest; by name within each. */
  attentionFirst: FleetClient[];
  counts: { clients: number; failing: number; stale: number };
}

export function fleetSnapshot(summaries: dash.ClientBackupSummary[], at: Date): FleetSnapshot {
  const fleet = summaries.map((s) => fleetClient(s, at));
  return { at, summaries, attentionFirst: attentionFirst(fleet), counts: countFleet(fleet) };
}

function countFleet(fleet: FleetClient[]): FleetSnapshot['counts'] {
  let failing = 0;
  let stale = 0;
  for (const c of fleet) {
    if (c.failing) failing++;
    if (c.stale) stale++;
  }
  return { clients: fleet.length, failing, stale };
}

export async function getDashboard(deps: ServiceDeps, now = new Date(), o: DashboardOptions = {}): Promise<Dashboard> {
  const [snap, runningPage, runningCount, queuedPage, queuedCount, repos, last24h] = await Promise.all([
    o.fleet ? o.fleet() : dash.clientBackupSummaries(deps.db).then((rows) => fleetSnapshot(rows, now)),
    listJobs(deps, { state: 'running', limit: o.runningRows ?? 100 }),
    dash.countJobsInState(deps.db, 'running'),
    listJobs(deps, { state: 'queued', limit: 100 }),
    dash.countJobsInState(deps.db, 'queued'),
    listRepositories(deps),
    dash.jobCountsSince(deps.db, new Date(now.getTime() - 86400_000)),
  ]);
  // All clients (the API): judged now, in name order. A page of them: the snapshot's order and
  // counts as of its reading (at most one refresh old, as the rows themselves are).
  const all = o.clientRows === undefined ? snap.summaries.map((s) => fleetClient(s, now)) : undefined;
  const clients = all ?? snap.attentionFirst.slice(0, o.clientRows);
  const counts = all ? countFleet(all) : snap.counts;
  const running = await runningRows(deps, runningPage.jobs, o.liveBudgetMs ?? 2000);
  const repositories = await Promise.all(
    repos.map(async (r): Promise<FleetRepository> => {
      const st = r.stats ?? null;
      return {
        name: r.name,
        storageHost: r.storageHost,
        encryption: r.encryption,
        archives: st?.archives ?? (await countLiveArchives(deps.db, r.id)),
        stats: st,
        dedupRatio: st && st.uniqueSize > 0 ? st.originalSize / st.uniqueSize : null,
        totalRatio: st && st.uniqueCompressedSize > 0 ? st.originalSize / st.uniqueCompressedSize : null,
      };
    }),
  );
  return {
    generatedAt: now,
    clients,
    running,
    queued: queuedPage.jobs.sort((a, b) => (a.queuePosition ?? 0) - (b.queuePosition ?? 0)),
    repositories,
    last24h,
    counts: { ...counts, running: runningCount, queued: queuedCount },
  };
}

/**
 * Running jobs with their progress bars' yardsticks (one query for all) and, within `budgetMs`,
 * their live progress from Temporal. Budget 0 asks Temporal nothing: under a fleet's load its
 * answers took the whole budget on every view, for figures the page's WebSockets bring anyway.
 */
async function runningRows(deps: ServiceDeps, jobs: JobView[], budgetMs: number): Promise<RunningJob[]> {
  const sizes = await dash.previousBackupSizes(deps.db, jobs.flatMap((j) => (j.kind !== 'restore' && j.clientId ? [j.clientId] : [])));
  const rows = jobs.map((j): RunningJob => ({ ...j, estimate: (j.kind !== 'restore' && j.clientId ? sizes.get(j.clientId) : undefined) ?? null }));
  if (budgetMs <= 0) return rows;
  const budget = sleepFor(budgetMs);
  return Promise.all(rows.map((j) => (j.state === 'running' ? withLive(deps, j, budget) : Promise.resolve(j))));
}

async function withLive(deps: ServiceDeps, job: RunningJob, deadline: Promise<undefined>): Promise<RunningJob> {
  const live = await Promise.race([liveStatus(deps, job.id).catch(() => undefined), deadline]);
  return { ...job, estimate: live?.progress?.totalSize ?? job.estimate, progress: live?.progress, livePhase: live?.status?.phase };
}

/** Failing, then stale, then running clients, then the rest; by name within each (the query's order). */
function attentionFirst(clients: FleetClient[]): FleetClient[] {
  const rank = (c: FleetClient) => (c.failing ? 0 : c.stale ? 1 : c.running ? 2 : 3);
  return clients.map((c, i) => ({ c, i })).sort((a, b) => rank(a.c) - rank(b.c) || a.i - b.i).map((x) => x.c);
}

function sleepFor(ms: number): Promise<undefined> {
  return new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref());
}

/**
 * The per-client summaries, read at most every `maxAgeMs` (the web process's dashboard): with
 * thousands of clients the query costs the better part of a second, which no page view should
 * wait for. A view gets the last snapshot and, once it is older than `maxAgeMs`, starts one
 * refresh in the background (only the very first view waits for it). The snapshot is judged and
 * sorted once per refresh, not per view (at 10,000 clients that cost each view ~15 ms of the
 * event loop). Running jobs and the counters of the last 24 h are read on every view; the fleet
 * table is at most one refresh old.
 */
export function cachedFleet(deps: Pick<ServiceDeps, 'db' | 'log'>, maxAgeMs: number): () => Promise<FleetSnapshot> {
  let last: FleetSnapshot | undefined;
  let refreshing: Promise<FleetSnapshot> | undefined;
  const refresh = () =>
    (refreshing ??= dash
      .clientBackupSummaries(deps.db)
      .then((rows) => (last = fleetSnapshot(rows, new Date())))
      .finally(() => (refreshing = undefined)));
  return async () => {
    if (!last) return refresh();
    if (Date.now() - last.at.getTime() > maxAgeMs) refresh().catch((err: Error) => deps.log.warn({ err: err.message }, 'refreshing the dashboard failed'));
    return last;
  };
}

export function fleetClient(s: dash.ClientBackupSummary, now: Date): FleetClient {
  const staleAfterHours = s.staleAfterHours ?? defaultStaleAfterHours;
  const thresholdMs = staleAfterHours * 3600_000;
  const ageSeconds = s.lastSuccessAt ? Math.max(0, Math.round((now.getTime() - s.lastSuccessAt.getTime()) / 1000)) : null;
  const stale = ageSeconds !== null ? ageSeconds * 1000 > thresholdMs : now.getTime() - s.clientCreatedAt.getTime() > thresholdMs;
  const num = (v: unknown) => (typeof v === 'number' ? v : null);
  return {
    name: s.clientName,
    host: s.host,
    lastJob: s.lastJobId ? { id: s.lastJobId, state: s.lastJobState!, createdAt: s.lastJobCreatedAt!, finishedAt: s.lastJobFinishedAt, error: s.lastJobError } : null,
    lastSuccess: s.lastSuccessJobId
      ? { jobId: s.lastSuccessJobId, at: s.lastSuccessAt!, originalSize: num(s.lastSuccessStats?.originalSize), deduplicatedSize: num(s.lastSuccessStats?.deduplicatedSize), nfiles: num(s.lastSuccessStats?.nfiles) }
      : null,
    ageSeconds,
    staleAfterHours,
    stale,
    failing: s.lastJobState === 'failed' || s.lastJobState === 'violation',
    running: s.lastJobState === 'running' || s.lastJobState === 'queued',
  };
}

/** Adds the newest heartbeated progress (bounded: a slow Temporal costs at most 2 s, or until `deadline`). */
export async function withLiveProgress(deps: ServiceDeps, job: JobView, deadline?: Promise<undefined>): Promise<RunningJob> {
  // A restore knows its size (borg extract reports its total); a backup's is the previous one's.
  const estimate = job.kind !== 'restore' && job.clientId ? await dash.previousBackupSize(deps.db, job.clientId) : null;
  if (job.state !== 'running') return { ...job, estimate };
  const live = await Promise.race([liveStatus(deps, job.id).catch(() => undefined), deadline ?? sleepFor(2000)]);
  return { ...job, estimate: live?.progress?.totalSize ?? estimate, progress: live?.progress, livePhase: live?.status?.phase };
}

/** The yardstick for a job's progress bar: the client's previous successful backup size. */
export async function progressEstimate(deps: Pick<ServiceDeps, 'db'>, clientId: string | null): Promise<number | null> {
  return clientId ? dash.previousBackupSize(deps.db, clientId) : null;
}
