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
  /** The live progress of running jobs waits at most this long in all (default 2 s); late ones go without. */
  liveBudgetMs?: number;
  /** The per-client summaries (default: read now); see cachedClientSummaries. */
  summaries?: () => Promise<dash.ClientBackupSummary[]>;
}

export async function getDashboard(deps: ServiceDeps, now = new Date(), o: DashboardOptions = {}): Promise<Dashboard> {
  const [summaries, runningPage, runningCount, queuedPage, queuedCount, repos, last24h] = await Promise.all([
    o.summaries ? o.summaries() : dash.clientBackupSummaries(deps.db),
    listJobs(deps, { state: 'running', limit: o.runningRows ?? 100 }),
    dash.countJobsInState(deps.db, 'running'),
    listJobs(deps, { state: 'queued', limit: 100 }),
    dash.countJobsInState(deps.db, 'queued'),
    listRepositories(deps),
    dash.jobCountsSince(deps.db, new Date(now.getTime() - 86400_000)),
  ]);
  const fleet = summaries.map((s) => fleetClient(s, now));
  const clients = o.clientRows === undefined ? fleet : attentionFirst(fleet).slice(0, o.clientRows);
  const budget = sleepFor(o.liveBudgetMs ?? 2000);
  const running = await Promise.all(runningPage.jobs.map((j) => withLiveProgress(deps, j, budget)));
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
    counts: { clients: fleet.length, failing: fleet.filter((c) => c.failing).length, stale: fleet.filter((c) => c.stale).length, running: runningCount, queued: queuedCount },
  };
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
 * wait for. A view gets the last summaries and, once they are older than `maxAgeMs`, starts one
 * refresh in the background (only the very first view waits for it). Running jobs and the
 * counters of the last 24 h are read on every view; the fleet table is at most one refresh old.
 */
export function cachedClientSummaries(deps: Pick<ServiceDeps, 'db' | 'log'>, maxAgeMs: number): () => Promise<dash.ClientBackupSummary[]> {
  let last: { at: number; rows: dash.ClientBackupSummary[] } | undefined;
  let refreshing: Promise<dash.ClientBackupSummary[]> | undefined;
  const refresh = () =>
    (refreshing ??= dash
      .clientBackupSummaries(deps.db)
      .then((rows) => {
        last = { at: Date.now(), rows };
        return rows;
      })
      .finally(() => (refreshing = undefined)));
  return async () => {
    if (!last) return refresh();
    if (Date.now() - last.at > maxAgeMs) refresh().catch((err: Error) => deps.log.warn({ err: err.message }, 'refreshing the dashboard failed'));
    return last.rows;
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
