import { and, desc, eq, getTableColumns, inArray, isNull, lt, sql, type SQL } from 'drizzle-orm';
import { withAdvisoryLock, type Db } from '../client.js';
import { jobCredentialsTable, jobKind, jobLogLinesTable, jobState, jobsTable, violationsTable, type Job, type JobStats } from '../schema.js';
import { escapeControlChars, escapeNul } from '../../infra/control-chars.js';

/** Every kind and state of a job, as the schema's enums define them. */
export const jobKinds = jobKind.enumValues;
export const jobStates = jobState.enumValues;

/** States of a job that has not ended: waiting for a slot (backups only) or running. */
export const activeStates: Array<Job['state']> = ['queued', 'running'];
export const isActive = (state: string): boolean => state === 'queued' || state === 'running';

/**
 * Kinds of which a client runs one at a time: each holds the client's job folder and a proxy
 * session. Prune and check work on the repository only.
 */
const clientExclusiveKinds: ReadonlyArray<Job['kind']> = ['backup'];

/** The client already runs a job of a kind it runs one at a time. */
export class ClientBusyError extends Error {
  constructor(
    readonly clientId: string,
    readonly runningId: string,
    /** `running`, or `queued` (waiting for a slot). */
    readonly state: Job['state'] = 'running',
  ) {
    super(`the client already has a ${state} backup (job ${runningId})`);
    this.name = 'ClientBusyError';
  }
}

/** A restore into a directory of a client that another running restore is writing into. */
export class TargetBusyError extends Error {
  constructor(
    readonly target: string,
    readonly runningId: string,
  ) {
    super(`a restore into ${target} is already running on this client (job ${runningId})`);
    this.name = 'TargetBusyError';
  }
}

/**
 * The one place a job row is inserted. A job of an exclusive kind is refused with ClientBusyError
 * while its client runs one, a restore with TargetBusyError while another restore writes into the
 * same directory of the same client: check and insert hold a per-client advisory lock, so two
 * starts at the same moment (a schedule and a manual start, two clicks) never both get a row.
 */
export async function insertJob(db: Db, row: typeof jobsTable.$inferInsert): Promise<Job> {
  const { clientId } = row;
  if (clientId && row.kind === 'restore' && row.restore) return insertRestoreJob(db, clientId, row.restore.target, row);
  if (!clientId || !clientExclusiveKinds.includes(row.kind)) return (await db.insert(jobsTable).values(row).returning())[0]!;
  return withAdvisoryLock(db, `borgcube:backup:${clientId}`, async (tx) => {
    const running = await tx
      .select({ id: jobsTable.id, state: jobsTable.state })
      .from(jobsTable)
      .where(and(eq(jobsTable.clientId, clientId), inArray(jobsTable.kind, [...clientExclusiveKinds]), inArray(jobsTable.state, activeStates)))
      .limit(1);
    // A queued backup counts: it holds the client's turn, and two of them could be admitted at once.
    if (running[0]) throw new ClientBusyError(clientId, running[0].id, running[0].state);
    return (await tx.insert(jobsTable).values(row).returning())[0]!;
  });
}

async function insertRestoreJob(db: Db, clientId: string, target: string, row: typeof jobsTable.$inferInsert): Promise<Job> {
  return withAdvisoryLock(db, `borgcube:restore:${clientId}`, async (tx) => {
    const running = await tx
      .select({ id: jobsTable.id })
      .from(jobsTable)
      .where(and(eq(jobsTable.clientId, clientId), eq(jobsTable.kind, 'restore'), eq(jobsTable.state, 'running'), sql`${jobsTable.restore}->>'target' = ${target}`))
      .limit(1);
    if (running[0]) throw new TargetBusyError(target, running[0].id);
    return (await tx.insert(jobsTable).values(row).returning())[0]!;
  });
}

export async function findJob(db: Db, id: string): Promise<Job | undefined> {
  return (await db.select().from(jobsTable).where(eq(jobsTable.id, id)))[0];
}

export async function updateJob(db: Db, id: string, patch: Partial<typeof jobsTable.$inferInsert>): Promise<Job | undefined> {
  return (await db.update(jobsTable).set(patch).where(eq(jobsTable.id, id)).returning())[0];
}

/** Final state, also of a job still queued; a job that already ended keeps its first final state (activities may be retried). */
export async function completeJob(db: Db, id: string, state: Job['state'], error: string | null, stats: JobStats | null): Promise<Job | undefined> {
  return (
    await db
      .update(jobsTable)
      .set({ state, error: error === null ? null : escapeNul(error), phase: 'done', finishedAt: new Date(), ...(stats ? { stats: sql`coalesce(${jobsTable.stats}, '{}'::jsonb) || ${JSON.stringify(stats)}::jsonb` } : {}) })
      .where(and(eq(jobsTable.id, id), inArray(jobsTable.state, activeStates)))
      .returning()
  )[0];
}

/** The job's SSH credentials stop opening the proxy (sshd asks the service for each login). */
export async function revokeJobCredentials(db: Db, jobId: string): Promise<void> {
  await db.update(jobCredentialsTable).set({ revokedAt: new Date() }).where(and(eq(jobCredentialsTable.jobId, jobId), isNull(jobCredentialsTable.revokedAt)));
}

export interface JobFilter {
  clientId?: string;
  repositoryId?: string;
  state?: Job['state'];
  kind?: Job['kind'];
  /**
   * Keyset pagination: jobs created before this one. Microseconds since the epoch, as the
   * database keeps them (a JS Date has only milliseconds: jobs created within the same
   * millisecond as a page's last one fell between pages).
   */
  before?: { createdAtMicros: bigint; id: string };
  limit?: number;
}

/** A page of jobs, newest first, each with its creation time in microseconds (the next page's cursor). */
export async function listJobs(db: Db, f: JobFilter = {}): Promise<Array<Job & { createdAtMicros: string }>> {
  const where: SQL[] = [];
  if (f.clientId) where.push(eq(jobsTable.clientId, f.clientId));
  if (f.repositoryId) where.push(eq(jobsTable.repositoryId, f.repositoryId));
  if (f.state) where.push(eq(jobsTable.state, f.state));
  if (f.kind) where.push(eq(jobsTable.kind, f.kind));
  if (f.before) where.push(sql`(${jobsTable.createdAt}, ${jobsTable.id}) < (timestamptz 'epoch' + ${f.before.createdAtMicros.toString()}::bigint * interval '1 microsecond', ${f.before.id}::uuid)`);
  return db
    .select({ ...getTableColumns(jobsTable), createdAtMicros: sql<string>`(extract(epoch from ${jobsTable.createdAt}) * 1000000)::bigint::text` })
    .from(jobsTable)
    .where(where.length ? and(...where) : undefined)
    .orderBy(desc(jobsTable.createdAt), desc(jobsTable.id))
    .limit(Math.min(f.limit ?? 50, 500));
}

type LogLineInsert = typeof jobLogLinesTable.$inferInsert;

/**
 * A log line as it is stored and published: what a client's borg printed may hold NUL (which
 * PostgreSQL's text refuses, failing the whole batch) or terminal escapes; both become `\xNN`
 * (infra/control-chars.ts). Callers that publish a line live use this too, so viewers see the
 * same text before and after a reload.
 */
export function storableLogLine<T extends Pick<LogLineInsert, 'level' | 'type' | 'msgid' | 'message'>>(row: T): T {
  return { ...row, level: escapeControlChars(row.level), type: escapeControlChars(row.type), msgid: row.msgid == null ? row.msgid : escapeControlChars(row.msgid), message: escapeControlChars(row.message) };
}

/**
 * Stores log lines at their sequence numbers. Two writers number one job's lines — the worker
 * following borg, and the repository service with its own lines (appendJobLog) — so a number may
 * be taken already: such a line goes after the job's last line instead of being lost. Returns the
 * highest number used, for the caller's counter.
 */
export async function insertLogLines(db: Db, given: LogLineInsert[]): Promise<number> {
  if (!given.length) return 0;
  const rows = given.map(storableLogLine);
  const stored = await db.insert(jobLogLinesTable).values(rows).onConflictDoNothing().returning({ jobId: jobLogLinesTable.jobId, seq: jobLogLinesTable.seq });
  const taken = new Set(stored.map((r) => `${r.jobId} ${r.seq}`));
  let last = Math.max(0, ...stored.map((r) => r.seq));
  for (const row of rows) {
    if (taken.has(`${row.jobId} ${row.seq}`)) continue;
    // A line retried after a lost answer is stored already: the same line at the same number.
    const [same] = await db
      .select({ id: jobLogLinesTable.id })
      .from(jobLogLinesTable)
      .where(and(eq(jobLogLinesTable.jobId, row.jobId), eq(jobLogLinesTable.seq, row.seq), eq(jobLogLinesTable.message, row.message), eq(jobLogLinesTable.type, row.type)));
    if (same) continue;
    last = Math.max(last, await appendLogLine(db, row));
  }
  return last;
}

/** One line after the job's last one (the number is taken inside the insert; retried on a race). */
async function appendLogLine(db: Db, row: Omit<LogLineInsert, 'seq'>): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const r = await db.execute<{ seq: number }>(sql`
      insert into ${jobLogLinesTable} (job_id, seq, time, level, type, msgid, message)
      select ${row.jobId}, coalesce(max(seq), 0) + 1, ${row.time}, ${row.level}, ${row.type}, ${row.msgid ?? null}, ${row.message}
      from ${jobLogLinesTable} where job_id = ${row.jobId}
      on conflict do nothing returning seq`);
    const seq = r.rows[0]?.seq;
    if (seq !== undefined) return Number(seq);
    if (attempt >= 20) throw new Error(`could not append a log line to job ${row.jobId}`);
  }
}

/**
 * What a job's log holds against its bounds (JobLog.resume): its last line number, the bytes of
 * the client's lines stored (message, type and msgid, as JobLog counts them; BorgCube's own lines
 * are not the client's), and whether the log already says it was cut.
 */
export async function logTally(db: Db, jobId: string): Promise<{ seq: number; bytes: number; cut: boolean }> {
  const r = await db
    .select({
      seq: sql<number>`coalesce(max(${jobLogLinesTable.seq}), 0)`,
      bytes: sql<number>`coalesce(sum(octet_length(${jobLogLinesTable.message}) + octet_length(${jobLogLinesTable.type}) + coalesce(octet_length(${jobLogLinesTable.msgid}), 0)) filter (where ${jobLogLinesTable.type} <> 'borgcube'), 0)`,
      cut: sql<boolean>`coalesce(bool_or(${jobLogLinesTable.type} = 'borgcube' and ${jobLogLinesTable.message} like ${`${LOG_CUT_NOTICE}%`}), false)`,
    })
    .from(jobLogLinesTable)
    .where(eq(jobLogLinesTable.jobId, jobId));
  return { seq: Number(r[0]?.seq ?? 0), bytes: Number(r[0]?.bytes ?? 0), cut: Boolean(r[0]?.cut) };
}

/** How the line that says a job's log reached its bound begins (JobLog writes it, logTally finds it). */
export const LOG_CUT_NOTICE = 'the log of this job reached its bound';

export async function lastLogSeq(db: Db, jobId: string): Promise<number> {
  const r = await db.select({ seq: sql<number>`coalesce(max(${jobLogLinesTable.seq}), 0)` }).from(jobLogLinesTable).where(eq(jobLogLinesTable.jobId, jobId));
  return Number(r[0]?.seq ?? 0);
}

export async function logLinesAfter(db: Db, jobId: string, afterSeq: number, limit = 1000) {
  return db
    .select()
    .from(jobLogLinesTable)
    .where(and(eq(jobLogLinesTable.jobId, jobId), sql`${jobLogLinesTable.seq} > ${afterSeq}`))
    .orderBy(jobLogLinesTable.seq)
    .limit(limit);
}

export async function lastLogLines(db: Db, jobId: string, limit: number) {
  const rows = await db.select().from(jobLogLinesTable).where(eq(jobLogLinesTable.jobId, jobId)).orderBy(desc(jobLogLinesTable.seq)).limit(limit);
  return rows.reverse();
}

export async function insertViolation(db: Db, row: typeof violationsTable.$inferInsert) {
  return (await db.insert(violationsTable).values({ ...row, detail: escapeNul(row.detail) }).returning())[0]!;
}

export async function listViolations(db: Db, jobId: string) {
  return db.select().from(violationsTable).where(eq(violationsTable.jobId, jobId)).orderBy(violationsTable.createdAt);
}

/** Jobs not ended (queued or running) created before `t`. */
export async function activeJobsOlderThan(db: Db, t: Date) {
  return db.select().from(jobsTable).where(and(inArray(jobsTable.state, activeStates), lt(jobsTable.createdAt, t)));
}

/** One line of BorgCube's own in a job's log (the next sequence number). */
export async function appendJobLog(db: Db, jobId: string, message: string, level = 'INFO'): Promise<void> {
  // Escaped like every stored line: a violation's detail or a service error may quote client bytes.
  await appendLogLine(db, storableLogLine({ jobId, time: new Date(), level, type: 'borgcube', msgid: null, message }));
}

/** Running restores of a repository: the Borg ids of the archives they read, with the job ids. */
export async function runningRestoresOf(db: Db, repositoryId: string): Promise<Map<string, string>> {
  const rows = await db
    .select({ id: jobsTable.id, restore: jobsTable.restore })
    .from(jobsTable)
    .where(and(eq(jobsTable.repositoryId, repositoryId), eq(jobsTable.kind, 'restore'), eq(jobsTable.state, 'running')));
  return new Map(rows.flatMap((r) => (r.restore ? [[r.restore.archiveBorgId, r.id] as [string, string]] : [])));
}
