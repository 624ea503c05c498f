// What GET /metrics reports, read in one go: the newest backups, job totals, violations,
// repository sizes, checks and open incidents (web/metrics.ts turns it into series).
import { and, eq, isNull, notInArray, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { clientsTable, incidentsTable, jobsTable, repositoriesTable, repositoryChecksTable, violationsTable } from '../schema.js';

export interface MetricsSnapshot {
  lastSuccess: Array<{ client: string; repository: string; at: Date }>;
  lastBackup: Array<{ client: string; seconds: number; original: number | null; compressed: number | null; deduplicated: number | null; uploaded: number | null }>;
  jobTotals: Array<{ kind: string; state: string; client: string; n: number; seconds: number }>;
  backupBytes: Array<{ client: string; original: number; compressed: number; deduplicated: number; uploaded: number }>;
  running: Array<{ kind: string; n: number }>;
  /** Backups waiting for a slot (README "Concurrency limits and queueing"). */
  queued: number;
  violations: Array<{ client: string; n: number }>;
  repositories: Array<{ name: string; stats: { archives: number; originalSize: number; compressedSize: number; uniqueSize: number; uniqueCompressedSize: number } | null }>;
  checks: Array<{ repository: string; ok: boolean; at: Date; seconds: number }>;
  incidents: Array<{ kind: string; n: number }>;
}

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
const numOrNull = (v: unknown) => (v === null || v === undefined ? null : Number(v));

export async function loadMetricsSnapshot(db: Db): Promise<MetricsSnapshot> {
  const stat = (key: string) => sql<string | null>`(${jobsTable.stats} ->> ${key})::numeric`;
  const duration = sql<string>`extract(epoch from (${jobsTable.finishedAt} - coalesce(${jobsTable.startedAt}, ${jobsTable.createdAt})))`;
  const clientName = sql<string>`coalesce(${clientsTable.name}, '')`;
  const [lastSuccess, lastBackup, jobTotals, backupBytes, running, queued, violations, repositories, checks, incidents] = await Promise.all([
    db
      .select({ client: clientsTable.name, repository: repositoriesTable.name, at: sql<string>`max(${jobsTable.finishedAt})` })
      .from(jobsTable)
      .innerJoin(clientsTable, eq(clientsTable.id, jobsTable.clientId))
      .innerJoin(repositoriesTable, eq(repositoriesTable.id, jobsTable.repositoryId))
      .where(and(eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'succeeded')))
      .groupBy(clientsTable.name, repositoriesTable.name),
    db
      .selectDistinctOn([jobsTable.clientId], {
        client: clientsTable.name,
        seconds: duration,
        original: stat('originalSize'),
        compressed: stat('compressedSize'),
        deduplicated: stat('deduplicatedSize'),
        uploaded: stat('uploadedBytes'),
      })
      .from(jobsTable)
      .innerJoin(clientsTable, eq(clientsTable.id, jobsTable.clientId))
      .where(and(eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'succeeded')))
      .orderBy(jobsTable.clientId, sql`${jobsTable.finishedAt} desc`),
    db
      .select({ kind: jobsTable.kind, state: jobsTable.state, client: clientName, n: sql<string>`count(*)`, seconds: sql<string>`coalesce(sum(${duration}), 0)` })
      .from(jobsTable)
      .leftJoin(clientsTable, eq(clientsTable.id, jobsTable.clientId))
      .where(notInArray(jobsTable.state, ['queued', 'running']))
      .groupBy(jobsTable.kind, jobsTable.state, clientName),
    db
      .select({
        client: clientsTable.name,
        original: sql<string>`coalesce(sum(${stat('originalSize')}), 0)`,
        compressed: sql<string>`coalesce(sum(${stat('compressedSize')}), 0)`,
        deduplicated: sql<string>`coalesce(sum(${stat('deduplicatedSize')}), 0)`,
        uploaded: sql<string>`coalesce(sum(${stat('uploadedBytes')}), 0)`,
      })
      .from(jobsTable)
      .innerJoin(clientsTable, eq(clientsTable.id, jobsTable.clientId))
      .where(and(eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'succeeded')))
      .groupBy(clientsTable.name),
    db.select({ kind: jobsTable.kind, n: sql<string>`count(*)` }).from(jobsTable).where(eq(jobsTable.state, 'running')).groupBy(jobsTable.kind),
    db.select({ n: sql<string>`count(*)` }).from(jobsTable).where(eq(jobsTable.state, 'queued')),
    db.select({ client: clientName, n: sql<string>`count(*)` }).from(violationsTable).leftJoin(clientsTable, eq(clientsTable.id, violationsTable.clientId)).groupBy(clientName),
    db.select({ name: repositoriesTable.name, stats: repositoriesTable.stats }).from(repositoriesTable),
    db
      .selectDistinctOn([repositoryChecksTable.repositoryId], { repository: repositoriesTable.name, result: repositoryChecksTable.result, at: repositoryChecksTable.finishedAt, ms: repositoryChecksTable.durationMs })
      .from(repositoryChecksTable)
      .innerJoin(repositoriesTable, eq(repositoriesTable.id, repositoryChecksTable.repositoryId))
      .orderBy(repositoryChecksTable.repositoryId, sql`${repositoryChecksTable.finishedAt} desc`),
    db.select({ kind: incidentsTable.kind, n: sql<string>`count(*)` }).from(incidentsTable).where(isNull(incidentsTable.resolvedAt)).groupBy(incidentsTable.kind),
  ]);
  return {
    lastSuccess: lastSuccess.map((r) => ({ client: r.client, repository: r.repository, at: new Date(r.at) })),
    lastBackup: lastBackup.map((r) => ({
      client: r.client,
      seconds: num(r.seconds),
      original: numOrNull(r.original),
      compressed: numOrNull(r.compressed),
      deduplicated: numOrNull(r.deduplicated),
      uploaded: numOrNull(r.uploaded),
    })),
    jobTotals: jobTotals.map((r) => ({ kind: r.kind, state: r.state, client: r.client, n: num(r.n), seconds: num(r.seconds) })),
    backupBytes: backupBytes.map((r) => ({ client: r.client, original: num(r.original), compressed: num(r.compressed), deduplicated: num(r.deduplicated), uploaded: num(r.uploaded) })),
    running: running.map((r) => ({ kind: r.kind, n: num(r.n) })),
    queued: num(queued[0]?.n),
    violations: violations.map((r) => ({ client: r.client, n: num(r.n) })),
    repositories: repositories.map((r) => ({ name: r.name, stats: r.stats ?? null })),
    checks: checks.map((r) => ({ repository: r.repository, ok: r.result === 'ok', at: r.at, seconds: r.ms / 1000 })),
    incidents: incidents.map((r) => ({ kind: r.kind, n: num(r.n) })),
  };
}
