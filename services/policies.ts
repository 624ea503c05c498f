// Policies: a client bound to a repository with a backup schedule (cron expressions in a time
// zone), retention rules, a check schedule, optional extra prune times and a staleness threshold.
// Each policy's schedules are Temporal Schedules (visible in the Temporal UI):
//   policy-<id>         → `scheduledBackup`  (backup, then prune with the policy's rules)
//   policy-<id>-check   → `scheduledMaintenance` kind check (when check crons are set)
//   policy-<id>-prune   → `scheduledMaintenance` kind prune (when prune crons are set)
// Overlap policy SKIP: no run starts while the previous run of the same schedule is still going;
// beyond that, a scheduled backup is skipped while its client has any other backup running
// (reservePolicyJob). The database row is the source of truth; the schedules follow it
// (add/update/pause/resume/remove, and `syncPolicySchedules` to rebuild them).
import { randomUUID } from 'node:crypto';
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client as TemporalClient, type ScheduleDescription, type ScheduleOptions } from '@temporalio/client';
import { z } from 'zod';
import * as jobsQ from '../db/queries/jobs.js';
import * as policiesQ from '../db/queries/policies.js';
import { policiesTable, type Job, type Policy, type RepositoryCheck, type RetentionRules } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import type { Db } from '../db/client.js';
import type { BackupInput } from '../workflows/backup.js';
import { getClient } from './clients.js';
import type { ServiceDeps } from './deps.js';
import { conflict, invalid, notFound, uniqueViolation } from './errors.js';
import { getRepository } from './repositories.js';
import { nameSchema } from './validation.js';

// ---------------------------------------------------------------------------------------------
// Input rules

const cronField = /^[0-9A-Za-z*?,/#-]+$/;

/**
 * A Temporal cron string (ScheduleSpec.cronExpressions): 5 to 7 fields (7 = with seconds), a
 * shorthand such as @daily, or `@every 30m` (s, m, h, d). The server checks the fields in detail.
 */
export const cronSchema = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .refine((s) => {
    if (/^@(yearly|annually|monthly|weekly|daily|hourly)$/.test(s)) return true;
    if (/^@every [1-9]\d{0,6}[smhd](\/\d{1,7}[smhd])?$/.test(s)) return true;
    const fields = s.split(/ +/);
    return fields.length >= 5 && fields.length <= 7 && fields.every((f) => cronField.test(f));
  }, 'must be a cron expression ("0 3 * * *", 5-7 fields), a shorthand like @daily, or "@every 6h"');

export const timezoneSchema = z
  .string()
  .trim()
  .max(64)
  .refine((tz) => {
    if (!/^[A-Za-z][A-Za-z0-9_+/-]*$/.test(tz)) return false;
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, 'must be an IANA time zone such as UTC or Europe/Berlin');

const keepCount = z.coerce.number().int().min(1, 'must be at least 1 (leave the rule out to not use it)').max(100_000);

/** borg prune's rules; an empty object keeps everything (no prune runs). */
export const retentionSchema = z
  .object({
    /** borg's interval: a number and H (hours), d, w, m (31 days) or y, e.g. 48H or 7d. */
    keepWithin: z.string().trim().regex(/^[1-9]\d{0,5}[Hdwmy]$/, 'must be a number followed by H, d, w, m or y, e.g. 7d').optional(),
    hourly: keepCount.optional(),
    daily: keepCount.optional(),
    weekly: keepCount.optional(),
    monthly: keepCount.optional(),
    yearly: keepCount.optional(),
  })
  .strict();

const crons = z.array(cronSchema).max(20);

export const policyFields = {
  /** When to back up; empty = only when triggered. */
  backupCrons: crons,
  timezone: timezoneSchema,
  retention: retentionSchema,
  checkCrons: crons,
  checkVerifyData: z.boolean(),
  pruneCrons: crons,
  staleAfterHours: z.coerce.number().int().min(1).max(24 * 366),
  paused: z.boolean(),
};

export const addPolicyInput = z.object({
  name: nameSchema,
  client: z.string().min(1),
  repository: z.string().min(1),
  backupCrons: policyFields.backupCrons.default([]),
  timezone: policyFields.timezone.default('UTC'),
  retention: policyFields.retention.default({}),
  checkCrons: policyFields.checkCrons.default([]),
  checkVerifyData: policyFields.checkVerifyData.default(false),
  pruneCrons: policyFields.pruneCrons.default([]),
  staleAfterHours: policyFields.staleAfterHours.default(36),
  paused: policyFields.paused.default(false),
});
export type AddPolicyInput = z.input<typeof addPolicyInput>;

/** Every field optional; `retention` replaces the rules as a whole. Pausing has its own calls. */
export const updatePolicyInput = z
  .object({
    client: z.string().min(1),
    repository: z.string().min(1),
    backupCrons: policyFields.backupCrons,
    timezone: policyFields.timezone,
    retention: policyFields.retention,
    checkCrons: policyFields.checkCrons,
    checkVerifyData: policyFields.checkVerifyData,
    pruneCrons: policyFields.pruneCrons,
    staleAfterHours: policyFields.staleAfterHours,
  })
  .partial();
export type UpdatePolicyInput = z.input<typeof updatePolicyInput>;

export type PolicyView = policiesQ.PolicyRow;

// ---------------------------------------------------------------------------------------------
// Temporal Schedules

export type ScheduleKind = 'backup' | 'check' | 'prune';
export const scheduleKinds: readonly ScheduleKind[] = ['backup', 'check', 'prune'];

export const policyScheduleId = (policyId: string, kind: ScheduleKind) => (kind === 'backup' ? `policy-${policyId}` : `policy-${policyId}-${kind}`);

/** Input of `scheduledBackup` (workflows/scheduled.ts), as the schedule passes it. */
export interface ScheduledBackupArgs {
  policyId: string;
}
/** Input of `scheduledMaintenance`. */
export interface ScheduledMaintenanceArgs {
  policyId: string;
  kind: 'prune' | 'check';
}

function cronsOf(p: Policy, kind: ScheduleKind): string[] {
  return kind === 'backup' ? p.backupCrons : kind === 'check' ? p.checkCrons : p.pruneCrons;
}

/** The backup schedule always exists (trigger-now works without crons); the others only with crons. */
function wanted(p: Policy, kind: ScheduleKind): boolean {
  return kind === 'backup' || cronsOf(p, kind).length > 0;
}

export function scheduleOptions(config: Pick<Config, 'temporal'>, p: Policy & { name: string }, kind: ScheduleKind): ScheduleOptions {
  const scheduleId = policyScheduleId(p.id, kind);
  const args: [ScheduledBackupArgs] | [ScheduledMaintenanceArgs] = kind === 'backup' ? [{ policyId: p.id }] : [{ policyId: p.id, kind }];
  return {
    scheduleId,
    spec: { cronExpressions: cronsOf(p, kind), timezone: p.timezone },
    action: {
      type: 'startWorkflow',
      workflowType: kind === 'backup' ? 'scheduledBackup' : 'scheduledMaintenance',
      args,
      taskQueue: config.temporal.taskQueue,
      workflowId: `${scheduleId}-run`,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1h', pauseOnFailure: false },
    memo: { policy: p.name, kind },
    state: { paused: p.paused, note: p.paused ? 'paused by BorgCube' : undefined },
  };
}

/** Temporal refuses a spec (bad cron, unknown zone) with a TypeError: that is the user's input. */
function asInputError(kind: ScheduleKind, err: unknown): unknown {
  if (err instanceof TypeError) return invalid(`${kind} schedule: ${err.message}`);
  return err;
}

async function describeOrNull(temporal: TemporalClient, id: string): Promise<ScheduleDescription | null> {
  try {
    return await temporal.schedule.getHandle(id).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return null;
    throw err;
  }
}

async function deleteIfExists(temporal: TemporalClient, id: string): Promise<void> {
  try {
    await temporal.schedule.getHandle(id).delete();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
}

/** Makes the policy's Temporal Schedules match the row: create, update, pause/unpause, delete. */
async function applySchedules(temporal: TemporalClient, config: Pick<Config, 'temporal'>, p: Policy & { name: string }): Promise<void> {
  for (const kind of scheduleKinds) {
    const id = policyScheduleId(p.id, kind);
    if (!wanted(p, kind)) {
      await deleteIfExists(temporal, id);
      continue;
    }
    const opts = scheduleOptions(config, p, kind);
    const existing = await describeOrNull(temporal, id);
    try {
      if (!existing) {
        try {
          await temporal.schedule.create(opts);
        } catch (err) {
          if (!(err instanceof ScheduleAlreadyRunning)) throw err;
        }
        continue;
      }
      await temporal.schedule.getHandle(id).update((prev) => ({
        ...prev,
        spec: opts.spec,
        action: opts.action,
        policies: { ...prev.policies, ...opts.policies },
        state: { ...prev.state, paused: p.paused, note: opts.state?.note },
      }));
    } catch (err) {
      throw asInputError(kind, err);
    }
    const handle = temporal.schedule.getHandle(id);
    if (existing.state.paused !== p.paused) await (p.paused ? handle.pause('paused by BorgCube') : handle.unpause('resumed by BorgCube'));
  }
}

async function removeSchedules(temporal: TemporalClient, policyId: string): Promise<void> {
  for (const kind of scheduleKinds) await deleteIfExists(temporal, policyScheduleId(policyId, kind));
}

export function temporalScheduleUrl(config: Pick<Config, 'temporal'>, scheduleId: string): string {
  return `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/schedules/${encodeURIComponent(scheduleId)}`;
}

// ---------------------------------------------------------------------------------------------
// CRUD

export async function getPolicy(deps: Pick<ServiceDeps, 'db'>, name: string): Promise<PolicyView> {
  const row = await policiesQ.findPolicyByName(deps.db, name);
  if (!row) throw notFound('policy', name);
  return row;
}

export async function listPolicies(deps: Pick<ServiceDeps, 'db'>, filter: { client?: string; repository?: string } = {}): Promise<PolicyView[]> {
  const clientId = filter.client ? (await getClient(deps, filter.client)).id : undefined;
  const repositoryId = filter.repository ? (await getRepository(deps, filter.repository)).id : undefined;
  return policiesQ.listPolicies(deps.db, { clientId, repositoryId });
}

/** Inserts the policy and creates its schedules; a schedule Temporal refuses undoes everything. */
export async function addPolicy(deps: ServiceDeps, raw: AddPolicyInput): Promise<PolicyView> {
  const input = addPolicyInput.parse(raw);
  const client = await getClient(deps, input.client);
  const repo = await getRepository(deps, input.repository);
  if (await policiesQ.findPolicyByName(deps.db, input.name)) throw conflict(`policy ${JSON.stringify(input.name)} already exists`);
  const temporal = await deps.temporal();
  const id = randomUUID();
  try {
    await deps.db.transaction(async (tx) => {
      const row = (
        await tx
          .insert(policiesTable)
          .values({
            id,
            name: input.name,
            clientId: client.id,
            repositoryId: repo.id,
            backupCrons: input.backupCrons,
            timezone: input.timezone,
            retention: cleanRetention(input.retention),
            checkCrons: input.checkCrons,
            checkVerifyData: input.checkVerifyData,
            pruneCrons: input.pruneCrons,
            staleAfterHours: input.staleAfterHours,
            paused: input.paused,
          })
          .returning()
      )[0]!;
      try {
        await applySchedules(temporal, deps.config, row);
      } catch (err) {
        await removeSchedules(temporal, id).catch(() => {});
        throw err;
      }
    });
  } catch (err) {
    if (uniqueViolation(err)) throw conflict(`policy ${JSON.stringify(input.name)} already exists`);
    throw err;
  }
  deps.log.info({ policy: input.name, client: client.name, repository: repo.name }, 'policy added');
  return getPolicy(deps, input.name);
}

/** Changes the row and then the schedules; if Temporal refuses the new spec, the row is restored. */
export async function updatePolicy(deps: ServiceDeps, name: string, raw: UpdatePolicyInput): Promise<PolicyView> {
  const input = updatePolicyInput.parse(raw);
  const before = await getPolicy(deps, name);
  const patch: Partial<typeof policiesTable.$inferInsert> = {};
  if (input.client !== undefined) patch.clientId = (await getClient(deps, input.client)).id;
  if (input.repository !== undefined) patch.repositoryId = (await getRepository(deps, input.repository)).id;
  if (input.backupCrons !== undefined) patch.backupCrons = input.backupCrons;
  if (input.timezone !== undefined) patch.timezone = input.timezone;
  if (input.retention !== undefined) patch.retention = cleanRetention(input.retention);
  if (input.checkCrons !== undefined) patch.checkCrons = input.checkCrons;
  if (input.checkVerifyData !== undefined) patch.checkVerifyData = input.checkVerifyData;
  if (input.pruneCrons !== undefined) patch.pruneCrons = input.pruneCrons;
  if (input.staleAfterHours !== undefined) patch.staleAfterHours = input.staleAfterHours;
  const temporal = await deps.temporal();
  const row = await policiesQ.updatePolicy(deps.db, before.id, patch);
  if (!row) throw notFound('policy', name);
  try {
    await applySchedules(temporal, deps.config, row);
  } catch (err) {
    const { id: _id, clientName: _c, repositoryName: _r, storageHost: _s, ...old } = before;
    await policiesQ.updatePolicy(deps.db, before.id, old);
    await applySchedules(temporal, deps.config, before).catch(() => {});
    throw err;
  }
  deps.log.info({ policy: name, changed: Object.keys(patch) }, 'policy updated');
  return getPolicy(deps, name);
}

export async function pausePolicy(deps: ServiceDeps, name: string): Promise<PolicyView> {
  return setPaused(deps, name, true);
}

export async function resumePolicy(deps: ServiceDeps, name: string): Promise<PolicyView> {
  return setPaused(deps, name, false);
}

async function setPaused(deps: ServiceDeps, name: string, paused: boolean): Promise<PolicyView> {
  const p = await getPolicy(deps, name);
  const row = (await policiesQ.updatePolicy(deps.db, p.id, { paused }))!;
  await applySchedules(await deps.temporal(), deps.config, row);
  deps.log.info({ policy: name, paused }, paused ? 'policy paused' : 'policy resumed');
  return getPolicy(deps, name);
}

/**
 * Runs the policy's backup schedule now (then prune, as scheduled runs do). Like a scheduled run
 * it is skipped while the previous run of this schedule is still going (overlap SKIP) and while
 * the client has another backup running; it runs also while the policy is paused.
 */
export async function triggerPolicy(deps: ServiceDeps, name: string): Promise<{ policy: PolicyView; scheduleId: string; at: Date }> {
  const p = await getPolicy(deps, name);
  const temporal = await deps.temporal();
  const id = policyScheduleId(p.id, 'backup');
  if (!(await describeOrNull(temporal, id))) await applySchedules(temporal, deps.config, p);
  const at = new Date();
  await temporal.schedule.getHandle(id).trigger(ScheduleOverlapPolicy.SKIP);
  deps.log.info({ policy: name }, 'policy triggered');
  return { policy: p, scheduleId: id, at };
}

export async function removePolicy(deps: ServiceDeps, name: string): Promise<void> {
  const p = await getPolicy(deps, name);
  await removeSchedules(await deps.temporal(), p.id);
  await policiesQ.deletePolicy(deps.db, p.id);
  deps.log.info({ policy: name }, 'policy removed');
}

/** Recreates every policy's schedules from the database (after restoring Temporal, or to repair drift). */
export async function syncPolicySchedules(deps: ServiceDeps): Promise<{ policies: number }> {
  const temporal = await deps.temporal();
  const all = await policiesQ.listPolicies(deps.db);
  for (const p of all) await applySchedules(temporal, deps.config, p);
  return { policies: all.length };
}

export interface ScheduleState {
  id: string;
  exists: boolean;
  paused: boolean;
  /** The next times it will fire (ISO 8601, at most 5). */
  nextRuns: string[];
  recentRuns: Array<{ scheduledAt: string; takenAt: string; workflowId: string }>;
  running: string[];
  actionsTaken: number;
  skippedOverlap: number;
  temporalUrl: string;
}

export interface PolicyDetails extends PolicyView {
  schedules: Partial<Record<ScheduleKind, ScheduleState>>;
  lastBackup: Job | null;
  lastPrune: Job | null;
  lastCheck: RepositoryCheck | null;
}

export async function getPolicyDetails(deps: ServiceDeps, name: string): Promise<PolicyDetails> {
  const p = await getPolicy(deps, name);
  const temporal = await deps.temporal();
  const schedules: PolicyDetails['schedules'] = {};
  for (const kind of scheduleKinds) {
    const id = policyScheduleId(p.id, kind);
    const d = await describeOrNull(temporal, id);
    if (!d && !wanted(p, kind)) continue;
    schedules[kind] = {
      id,
      exists: Boolean(d),
      paused: d?.state.paused ?? p.paused,
      nextRuns: (d?.info.nextActionTimes ?? []).slice(0, 5).map((t) => t.toISOString()),
      recentRuns: (d?.info.recentActions ?? []).slice(-5).map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), takenAt: a.takenAt.toISOString(), workflowId: a.action.workflow.workflowId })),
      running: (d?.info.runningActions ?? []).map((a) => a.workflow.workflowId),
      actionsTaken: d?.info.numActionsTaken ?? 0,
      skippedOverlap: d?.info.numActionsSkippedOverlap ?? 0,
      temporalUrl: temporalScheduleUrl(deps.config, id),
    };
  }
  return {
    ...p,
    schedules,
    lastBackup: (await policiesQ.lastPolicyJob(deps.db, p.id, 'backup')) ?? null,
    lastPrune: (await policiesQ.lastPolicyJob(deps.db, p.id, 'prune')) ?? null,
    lastCheck: (await policiesQ.listRepositoryChecks(deps.db, p.repositoryId, 1))[0] ?? null,
  };
}

/** One line of a policy list: the row, its backup schedule as Temporal has it, the last jobs and check. */
export interface PolicyOverview extends PolicyView {
  /** Null when Temporal could not be asked (see `temporalError`). */
  backupSchedule: { id: string; exists: boolean; paused: boolean; nextRun: string | null; temporalUrl: string } | null;
  lastBackup: Job | null;
  lastPrune: Job | null;
  lastCheck: RepositoryCheck | null;
}

/**
 * The policies (of a client or repository) with what the console's list shows. Temporal is asked
 * for each backup schedule (a few at a time); when it does not answer, the list still comes back
 * without schedule states and `temporalError` says why.
 */
export async function listPolicyOverviews(
  deps: ServiceDeps,
  filter: { client?: string; repository?: string } = {},
): Promise<{ policies: PolicyOverview[]; temporalError: string | null }> {
  const rows = await listPolicies(deps, filter);
  const [jobs, checks] = await Promise.all([
    policiesQ.lastPolicyJobs(
      deps.db,
      rows.map((p) => p.id),
      ['backup', 'prune'],
    ),
    policiesQ.lastRepositoryChecks(deps.db, [...new Set(rows.map((p) => p.repositoryId))]),
  ]);
  let temporalError: string | null = null;
  const described = new Map<string, ScheduleDescription | null>();
  if (rows.length) {
    try {
      const temporal = await deps.temporal();
      const queue = [...rows];
      const describeNext = async (): Promise<void> => {
        for (let p = queue.shift(); p; p = queue.shift()) described.set(p.id, await describeOrNull(temporal, policyScheduleId(p.id, 'backup')));
      };
      await Promise.all(Array.from({ length: Math.min(8, rows.length) }, describeNext));
    } catch (err) {
      deps.log.warn({ err }, 'policy list without schedule states: Temporal did not answer');
      temporalError = (err as Error).message;
    }
  }
  const policies = rows.map((p): PolicyOverview => {
    const id = policyScheduleId(p.id, 'backup');
    const d = described.get(p.id);
    return {
      ...p,
      backupSchedule:
        temporalError === null
          ? { id, exists: Boolean(d), paused: d?.state.paused ?? p.paused, nextRun: d?.info.nextActionTimes[0]?.toISOString() ?? null, temporalUrl: temporalScheduleUrl(deps.config, id) }
          : null,
      lastBackup: jobs.find((j) => j.policyId === p.id && j.kind === 'backup') ?? null,
      lastPrune: jobs.find((j) => j.policyId === p.id && j.kind === 'prune') ?? null,
      lastCheck: checks.find((c) => c.repositoryId === p.repositoryId) ?? null,
    };
  });
  return { policies, temporalError };
}

/** Rules without empty entries, so the stored JSON says only what applies. */
function cleanRetention(r: z.output<typeof retentionSchema>): RetentionRules {
  const out: RetentionRules = {};
  if (r.keepWithin) out.keepWithin = r.keepWithin;
  for (const k of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) if (r[k] !== undefined) out[k] = r[k];
  return out;
}

export function hasRetention(r: RetentionRules): boolean {
  return Boolean(r.keepWithin || r.hourly || r.daily || r.weekly || r.monthly || r.yearly);
}

/** The rules in a few words, for lists: "within 7d, daily 7, weekly 4", or "keep all". */
export function retentionText(r: RetentionRules): string {
  const parts: string[] = [];
  if (r.keepWithin) parts.push(`within ${r.keepWithin}`);
  for (const k of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) if (r[k]) parts.push(`${k} ${r[k]}`);
  return parts.join(', ') || 'keep all';
}

// ---------------------------------------------------------------------------------------------
// Jobs of a policy (the scheduled workflows' first activity, and the prune/check-now calls)

/** What a scheduled workflow needs to start the job's own workflow (workflow id = job id). */
export interface ReservedJob {
  jobId: string;
  kind: 'backup' | 'prune' | 'check';
  policyId: string | null;
  clientId: string | null;
  repositoryId: string;
  storageHost: string;
  verifyData: boolean;
  triggeredBy: string;
  /** For the Temporal UI's search (BorgcubeJobKind, BorgcubeClient, BorgcubeRepository). */
  searchAttributes: Record<string, string[]>;
}

export interface ReservePolicyJobInput {
  policyId: string;
  kind: 'backup' | 'prune' | 'check';
  triggeredBy: string;
  /** Chosen by the caller (a workflow: deterministic), so that a retry finds its own row. */
  jobId?: string;
}

export type ReservePolicyJobResult = ({ skipped?: undefined } & ReservedJob) | { skipped: string };

/**
 * Inserts the job row of a policy's backup, prune or check, unless it must not run now: the
 * policy is gone, a backup of the client is already running (checked under an advisory lock on
 * the client, so two starters cannot both pass), or there are no retention rules to prune by.
 */
export async function reservePolicyJob(deps: { db: Db; log: Logger }, input: ReservePolicyJobInput): Promise<ReservePolicyJobResult> {
  const p = await policiesQ.findPolicyById(deps.db, input.policyId);
  if (!p) return { skipped: `policy ${input.policyId} no longer exists` };
  if (input.kind === 'prune' && !hasRetention(p.retention)) return { skipped: `policy ${p.name} has no retention rules` };
  const jobId = input.jobId ?? randomUUID();
  const base: ReservedJob = {
    jobId,
    kind: input.kind,
    policyId: p.id,
    clientId: input.kind === 'check' ? null : p.clientId,
    repositoryId: p.repositoryId,
    storageHost: p.storageHost,
    verifyData: p.checkVerifyData,
    triggeredBy: input.triggeredBy,
    searchAttributes: {
      BorgcubeJobKind: [input.kind],
      BorgcubeRepository: [p.repositoryName],
      ...(input.kind === 'check' ? {} : { BorgcubeClient: [p.clientName] }),
    },
  };
  // A retried activity finds the row it inserted before.
  if (input.jobId && (await jobsQ.findJob(deps.db, input.jobId))) return base;
  if (input.kind !== 'backup') {
    await jobsQ.insertJob(deps.db, { id: jobId, kind: input.kind, clientId: base.clientId, repositoryId: p.repositoryId, policyId: p.id, triggeredBy: input.triggeredBy, startedAt: new Date(), phase: input.kind });
    return base;
  }
  const r = await jobsQ.insertBackupUnlessRunning(deps.db, { id: jobId, clientId: p.clientId, repositoryId: p.repositoryId, policyId: p.id, triggeredBy: input.triggeredBy });
  const skipped = 'runningId' in r ? `client ${p.clientName} already has a running backup (job ${r.runningId})` : undefined;
  if (skipped) {
    deps.log.info({ policy: p.name, reason: skipped }, 'scheduled backup skipped');
    return { skipped };
  }
  return base;
}

/** The backup workflow's input for a reserved backup job. */
export function backupInputOf(r: ReservedJob): BackupInput {
  return { jobId: r.jobId, clientId: r.clientId!, repositoryId: r.repositoryId, storageHost: r.storageHost, policyId: r.policyId, triggeredBy: r.triggeredBy };
}

async function startJobWorkflow(deps: ServiceDeps, r: ReservedJob, workflowType: 'prune' | 'check', args: unknown[]): Promise<Job> {
  try {
    await (await deps.temporal()).workflow.start(workflowType, { workflowId: r.jobId, taskQueue: deps.config.temporal.taskQueue, args, searchAttributes: r.searchAttributes });
  } catch (err) {
    await jobsQ.completeJob(deps.db, r.jobId, 'failed', `could not start the workflow: ${(err as Error).message}`, null);
    throw err;
  }
  return (await jobsQ.findJob(deps.db, r.jobId))!;
}

/** Prunes the policy's client now with its rules (a `prune` job, outside the schedule). */
export async function startPrune(deps: ServiceDeps, name: string, triggeredBy?: string): Promise<Job> {
  const p = await getPolicy(deps, name);
  const r = await reservePolicyJob(deps, { policyId: p.id, kind: 'prune', triggeredBy: triggeredBy ?? 'manual' });
  if (r.skipped !== undefined) throw invalid(r.skipped);
  return startJobWorkflow(deps, r, 'prune', [{ jobId: r.jobId, repositoryId: r.repositoryId, storageHost: r.storageHost }]);
}

export const startCheckInput = z.object({
  repository: z.string().min(1),
  verifyData: z.boolean().default(false),
  triggeredBy: z.string().max(200).optional(),
});

/** `borg check` of a repository now (a `check` job). */
export async function startCheck(deps: ServiceDeps, raw: z.input<typeof startCheckInput>): Promise<Job> {
  const input = startCheckInput.parse(raw);
  const repo = await getRepository(deps, input.repository);
  const jobId = randomUUID();
  const triggeredBy = input.triggeredBy ?? 'manual';
  await jobsQ.insertJob(deps.db, { id: jobId, kind: 'check', clientId: null, repositoryId: repo.id, policyId: null, triggeredBy, startedAt: new Date(), phase: 'check' });
  const r: ReservedJob = {
    jobId,
    kind: 'check',
    policyId: null,
    clientId: null,
    repositoryId: repo.id,
    storageHost: repo.storageHost,
    verifyData: input.verifyData,
    triggeredBy,
    searchAttributes: { BorgcubeJobKind: ['check'], BorgcubeRepository: [repo.name] },
  };
  return startJobWorkflow(deps, r, 'check', [{ jobId, repositoryId: repo.id, storageHost: repo.storageHost, verifyData: input.verifyData }]);
}

/** The latest check results of a repository, newest first (`borgcube repo show`, the console). */
export async function listRepositoryChecks(deps: Pick<ServiceDeps, 'db'>, repository: string, limit = 20): Promise<RepositoryCheck[]> {
  const repo = await getRepository(deps, repository);
  return policiesQ.listRepositoryChecks(deps.db, repo.id, limit);
}
