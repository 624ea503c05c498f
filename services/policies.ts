// Policies: a client bound to a repository with a backup schedule (cron expressions in a time
// zone), retention rules, a check schedule, optional extra prune times and a staleness threshold.
// Each policy's schedules are Temporal Schedules (services/policy-schedules.ts); a scheduled run
// reserves its job in services/policy-jobs.ts. The database row is the source of truth; the
// schedules follow it (add/update/pause/resume/remove, and `syncPolicySchedules` to rebuild them).
import { randomUUID } from 'node:crypto';
import { ScheduleOverlapPolicy, type ScheduleDescription } from '@temporalio/client';
import { z } from 'zod';
import * as policiesQ from '../db/queries/policies.js';
import type { Job, policiesTable, RepositoryCheck } from '../db/schema.js';
import { getClient } from './clients.js';
import type { ServiceDeps } from './deps.js';
import { conflict, notFound, uniqueViolation } from './errors.js';
import { applySchedules, maxJitterSeconds, cronSchema, describeOrNull, policyScheduleId, removeSchedules, scheduleKinds, temporalScheduleUrl, timezoneSchema, wanted, type ScheduleKind } from './policy-schedules.js';
import { getRepository } from './repositories.js';
import { cleanRetention, retentionSchema } from './retention.js';
import { nameSchema } from './validation.js';

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
  /** Seconds of random delay of each scheduled run; null = the server default (BORGCUBE_SCHEDULE_JITTER). */
  scheduleJitterSeconds: z.union([z.number().int().min(0).max(maxJitterSeconds), z.null()]),
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
  scheduleJitterSeconds: policyFields.scheduleJitterSeconds.default(null),
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
    scheduleJitterSeconds: policyFields.scheduleJitterSeconds,
  })
  .partial();
export type UpdatePolicyInput = z.input<typeof updatePolicyInput>;

export type PolicyView = policiesQ.PolicyRow;

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
      const row = await policiesQ.insertPolicy(tx, {
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
        scheduleJitterSeconds: input.scheduleJitterSeconds,
      });
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
  if (input.scheduleJitterSeconds !== undefined) patch.scheduleJitterSeconds = input.scheduleJitterSeconds;
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

/** The latest check results of a repository, newest first (`borgcube repo show`, the console). */
export async function listRepositoryChecks(deps: Pick<ServiceDeps, 'db'>, repository: string, limit = 20): Promise<RepositoryCheck[]> {
  const repo = await getRepository(deps, repository);
  return policiesQ.listRepositoryChecks(deps.db, repo.id, limit);
}
