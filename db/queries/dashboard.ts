// Read models of the console's dashboard: one query per panel, each bounded by the fleet's size
// (one row per client or repository), never by the number of jobs.
import { and, desc, eq, gt, sql } from 'drizzle-orm';
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
// Converted by hand, not with a zod schema: at 10,000 rows a schema's parse cost ~50 ms of the
// web process's event loop on every refresh (bench:fleet --console-only profile).
const date = (v: unknown): Date => (v instanceof Date ? v : new Date(v as string));
const dateOrNull = (v: unknown): Date | null => (v === null || v === undefined ? null : date(v));
const textOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : (v as string));
const statsOrNull = (v: unknown): JobStats | null => (v === null || v === undefined ? null : ((typeof v === 'string' ? JSON.parse(v) : v) as JobStats));

function summaryOf(row: Record<string, unknown>): ClientBackupSummary {
  return {
    clientId: String(row.client_id),
    clientName: String(row.client_name),
    host: String(row.host),
    clientCreatedAt: date(row.client_created_at),
    staleAfterHours: row.stale_after_hours === null || row.stale_after_hours === undefined ? null : Number(row.stale_after_hours),
    lastJobId: textOrNull(row.last_job_id),
    lastJobState: textOrNull(row.last_job_state),
    lastJobCreatedAt: dateOrNull(row.last_job_created_at),
    lastJobFinishedAt: dateOrNull(row.last_job_finished_at),
    lastJobError: textOrNull(row.last_job_error),
    lastSuccessJobId: textOrNull(row.last_success_job_id),
    lastSuccessAt: dateOrNull(row.last_success_at),
    lastSuccessStats: statsOrNull(row.last_success_stats),
  };
}

/**
 * Per client: its newest backup job and its newest successful one (lateral joins on the
 * (client_id, created_at) index), and the staleness threshold of its policies.
 */
export async function clientBackupSummaries(db: Db): Promise<ClientBackupSummary[]> {
  // With thousands of clients the plan's estimated cost crosses jit_above_cost, and compiling it
  // cost ~150 ms of a ~1 s query (10,000 clients, bench:fleet) for index probes JIT cannot speed up.
  const r = await db.transaction(async (tx) => {
    await tx.execute(sql`set local jit = off`);
    return tx.execute<Record<string, unknown>>(sql`
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
  });
  return r.rows.map(summaryOf);
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

/** Jobs in one state (the running and queued counts; the (state, created_at) index answers it). */
export async function countJobsInState(db: Db, state: Job['state']): Promise<number> {
  const rows = await db.select({ n: sql<number>`count(*)::int` }).from(jobsTable).where(eq(jobsTable.state, state));
  return Number(rows[0]?.n ?? 0);
}

/** The same for several clients in one query (the dashboard's running jobs): client id → size. */
export async function previousBackupSizes(db: Db, clientIds: string[]): Promise<Map<string, number>> {
  if (!clientIds.length) return new Map();
  const r = await db.execute<{ client_id: string; size: string | number | null }>(sql`
    select c.id as client_id, case when jsonb_typeof(j.stats->'originalSize') = 'number' then (j.stats->>'originalSize')::numeric end as size
    from unnest(array[${sql.join([...new Set(clientIds)].map((id) => sql`${id}`), sql`, `)}]::uuid[]) as c(id)
    join lateral (
      select stats from jobs where client_id = c.id and kind = 'backup' and state = 'succeeded' order by created_at desc limit 1
    ) j on true`);
  return new Map(r.rows.flatMap((x) => (x.size !== null && Number(x.size) > 0 ? [[x.client_id, Number(x.size)] as [string, number]] : [])));
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
