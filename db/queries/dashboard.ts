// Read models of the console's dashboard: one query per panel, each bounded by the fleet's size
// (one row per client or repository), never by the number of jobs.
import { and, desc, eq, gt, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../client.js';
import { jobsTable, type Job, type JobStats } from '../schema.js';

export interface ClientBackupSummary {
  clientId: string;
  clientName: string;
  host: string;
  clientCreatedAt: Date;
  /** Smallest staleAfterHours of the client's active policies; null = no policy binds it. */
  staleAfterHours: number | null;
  lastJobId: string | null;
  lastJobState: string | null;
  lastJobCreatedAt: Date | null;
  lastJobFinishedAt: Date | null;
  lastJobError: string | null;
  lastSuccessJobId: string | null;
  lastSuccessAt: Date | null;
  lastSuccessStats: JobStats | null;
}

// Raw rows of the query below; node-postgres may hand timestamps as Date or text, jsonb as object.
const ts = z.union([z.date(), z.string()]).transform((v) => (v instanceof Date ? v : new Date(v)));
const summaryRow = z.object({
  client_id: z.string(),
  client_name: z.string(),
  host: z.string(),
  client_created_at: ts,
  stale_after_hours: z.coerce.number().nullable(),
  last_job_id: z.string().nullable(),
  last_job_state: z.string().nullable(),
  last_job_created_at: ts.nullable(),
  last_job_finished_at: ts.nullable(),
  last_job_error: z.string().nullable(),
  last_success_job_id: z.string().nullable(),
  last_success_at: ts.nullable(),
  last_success_stats: z.union([z.string().transform((v) => JSON.parse(v) as unknown), z.record(z.string(), z.unknown())]).nullable(),
});

/**
 * Per client: its newest backup job and its newest successful one (lateral joins on the
 * (client_id, created_at) index), and the staleness threshold of its policies.
 */
export async function clientBackupSummaries(db: Db): Promise<ClientBackupSummary[]> {
  const r = await db.execute<Record<string, unknown>>(sql`
    select c.id as client_id, c.name as client_name, c.host, c.created_at as client_created_at,
           (select min(p.stale_after_hours) from policies p where p.client_id = c.id and not p.paused) as stale_after_hours,
           lj.id as last_job_id, lj.state as last_job_state, lj.created_at as last_job_created_at,
           lj.finished_at as last_job_finished_at, lj.error as last_job_error,
           ls.id as last_success_job_id, coalesce(ls.finished_at, ls.created_at) as last_success_at, ls.stats as last_success_stats
    from clients c
    left join lateral (
      select j.id, j.state, j.created_at, j.finished_at, j.error from jobs j
      where j.client_id = c.id and j.kind = 'backup' order by j.created_at desc limit 1
    ) lj on true
    left join lateral (
      select j.id, j.created_at, j.finished_at, j.stats from jobs j
      where j.client_id = c.id and j.kind = 'backup' and j.state = 'succeeded' order by j.created_at desc limit 1
    ) ls on true
    order by c.name`);
  return r.rows.map((raw) => {
    const row = summaryRow.parse(raw);
    return {
      clientId: row.client_id,
      clientName: row.client_name,
      host: row.host,
      clientCreatedAt: row.client_created_at,
      staleAfterHours: row.stale_after_hours,
      lastJobId: row.last_job_id,
      lastJobState: row.last_job_state,
      lastJobCreatedAt: row.last_job_created_at,
      lastJobFinishedAt: row.last_job_finished_at,
      lastJobError: row.last_job_error,
      lastSuccessJobId: row.last_success_job_id,
      lastSuccessAt: row.last_success_at,
      lastSuccessStats: (row.last_success_stats as JobStats | null) ?? null,
    };
  });
}

/** Jobs by final state since `since` (dashboard counters). */
export async function jobCountsSince(db: Db, since: Date): Promise<Record<string, number>> {
  const rows = await db
    .select({ state: jobsTable.state, n: sql<number>`count(*)::int` })
    .from(jobsTable)
    .where(gt(jobsTable.createdAt, since))
    .groupBy(jobsTable.state);
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/** Original size of the client's newest successful backup: the yardstick of a running one's progress bar. */
export async function previousBackupSize(db: Db, clientId: string): Promise<number | null> {
  const rows = await db
    .select({ stats: jobsTable.stats })
    .from(jobsTable)
    .where(and(eq(jobsTable.clientId, clientId), eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'succeeded')))
    .orderBy(desc(jobsTable.createdAt))
    .limit(1);
  const v = rows[0]?.stats?.originalSize;
  return typeof v === 'number' && v > 0 ? v : null;
}

/** How many jobs are in a state now (the dashboard's queued count). */
export async function countJobsInState(db: Db, state: Job['state']): Promise<number> {
  const r = await db.select({ n: sql<string>`count(*)` }).from(jobsTable).where(eq(jobsTable.state, state));
  return Number(r[0]?.n ?? 0);
}
