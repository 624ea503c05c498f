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

export async function getDashboard(deps: ServiceDeps, now = new Date()): Promise<Dashboard> {
  const [summaries, runningPage, queuedPage, queuedCount, repos, last24h] = await Promise.all([
    dash.clientBackupSummaries(deps.db),
    listJobs(deps, { state: 'running', limit: 100 }),
    listJobs(deps, { state: 'queued', limit: 100 }),
    dash.countJobsInState(deps.db, 'queued'),
    listRepositories(deps),
    dash.jobCountsSince(deps.db, new Date(now.getTime() - 86400_000)),
  ]);
  const clients = summaries.map((s) => fleetClient(s, now));
  const running = await Promise.all(runningPage.jobs.map((j) => withLiveProgress(deps, j)));
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
    counts: { clients: clients.length, failing: clients.filter((c) => c.failing).length, stale: clients.filter((c) => c.stale).length, running: running.length, queued: queuedCount },
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

/** Adds the newest heartbeated progress (bounded: a slow Temporal costs at most 2 s). */
export async function withLiveProgress(deps: ServiceDeps, job: JobView): Promise<RunningJob> {
  // A restore knows its size (borg extract reports its total); a backup's is the previous one's.
  const estimate = job.kind !== 'restore' && job.clientId ? await dash.previousBackupSize(deps.db, job.clientId) : null;
  if (job.state !== 'running') return { ...job, estimate };
  const live = await Promise.race([liveStatus(deps, job.id).catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref())]);
  return { ...job, estimate: live?.progress?.totalSize ?? estimate, progress: live?.progress, livePhase: live?.status?.phase };
}

/** The yardstick for a job's progress bar: the client's previous successful backup size. */
export async function progressEstimate(deps: Pick<ServiceDeps, 'db'>, clientId: string | null): Promise<number | null> {
  return clientId ? dash.previousBackupSize(deps.db, clientId) : null;
}
