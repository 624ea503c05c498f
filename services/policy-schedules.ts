// A policy's Temporal Schedules (visible in the Temporal UI), which follow its row:
//   policy-<id>         → `scheduledBackup`  (backup, then prune with the policy's rules)
//   policy-<id>-check   → `scheduledMaintenance` kind check (when check crons are set)
//   policy-<id>-prune   → `scheduledMaintenance` kind prune (when prune crons are set)
// Overlap policy SKIP: no run starts while the previous run of the same schedule is still going.
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client as TemporalClient, type ScheduleDescription, type ScheduleOptions } from '@temporalio/client';
import { z } from 'zod';
import type { Policy } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import { scheduledBackup, scheduledMaintenance, type ScheduledBackupInput } from '../workflows/scheduled.js';
import { invalid } from './errors.js';

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

/**
 * A policy's schedule jitter as typed (CLI, console): a number with s, m or h ("10m"), 0 for
 * none, or "default" / empty for the server's BORGCUBE_SCHEDULE_JITTER (null).
 */
export function parseJitter(text: string): number | null {
  const t = text.trim();
  if (t === '' || t === 'default') return null;
  const m = /^(\d{1,6})([smh]?)$/.exec(t);
  if (!m) throw new TypeError('jitter must be a number with s, m or h (e.g. 10m), 0 for none, or "default"');
  const seconds = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  if (seconds > maxJitterSeconds) throw new TypeError('jitter must be at most 24h');
  return seconds;
}
export const maxJitterSeconds = 86_400;

/**
 * The random delay Temporal adds to each of the policy's scheduled times (0 to this many
 * seconds, a stable pseudo-random per time), so a fleet's "0 2 * * *" policies do not start
 * their backups in the same second: the admission queue still bounds how many run at once, but a
 * spread also spreads the SSH logins, prepares and cache pushes before it.
 */
export function jitterSecondsOf(config: Pick<Config, 'schedules'>, p: Pick<Policy, 'scheduleJitterSeconds'>): number {
  return p.scheduleJitterSeconds ?? config.schedules.jitterSeconds;
}

export type ScheduleKind = 'backup' | 'check' | 'prune';
export const scheduleKinds: readonly ScheduleKind[] = ['backup', 'check', 'prune'];

export const policyScheduleId = (policyId: string, kind: ScheduleKind) => (kind === 'backup' ? `policy-${policyId}` : `policy-${policyId}-${kind}`);

function cronsOf(p: Policy, kind: ScheduleKind): string[] {
  return kind === 'backup' ? p.backupCrons : kind === 'check' ? p.checkCrons : p.pruneCrons;
}

/** The backup schedule always exists (trigger-now works without crons); the others only with crons. */
export function wanted(p: Policy, kind: ScheduleKind): boolean {
  return kind === 'backup' || cronsOf(p, kind).length > 0;
}

export function scheduleOptions(config: Pick<Config, 'temporal' | 'schedules'>, p: Policy & { name: string }, kind: ScheduleKind): ScheduleOptions {
  const scheduleId = policyScheduleId(p.id, kind);
  const common = { type: 'startWorkflow', taskQueue: config.temporal.taskQueue, workflowId: `${scheduleId}-run` } as const;
  const backupArgs: [ScheduledBackupInput] = [{ policyId: p.id }];
  const jitter = jitterSecondsOf(config, p);
  return {
    scheduleId,
    spec: { cronExpressions: cronsOf(p, kind), timezone: p.timezone, ...(jitter > 0 ? { jitter: jitter * 1000 } : {}) },
    action: kind === 'backup' ? { ...common, workflowType: scheduledBackup, args: backupArgs } : { ...common, workflowType: scheduledMaintenance, args: [{ policyId: p.id, kind }] },
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

export async function describeOrNull(temporal: TemporalClient, id: string): Promise<ScheduleDescription | null> {
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
export async function applySchedules(temporal: TemporalClient, config: Pick<Config, 'temporal' | 'schedules'>, p: Policy & { name: string }): Promise<void> {
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

export async function removeSchedules(temporal: TemporalClient, policyId: string): Promise<void> {
  for (const kind of scheduleKinds) await deleteIfExists(temporal, policyScheduleId(policyId, kind));
}

export function temporalScheduleUrl(config: Pick<Config, 'temporal'>, scheduleId: string): string {
  return `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/schedules/${encodeURIComponent(scheduleId)}`;
}
