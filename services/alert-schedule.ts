// The alert sweep's own Temporal Schedule (created by the worker at start, one per main task
// queue): orphaned jobs, staleness incidents and undelivered notices (workflows/alerts-sweep.ts).
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client as TemporalClient, type ScheduleOptions } from '@temporalio/client';
import type { Config } from '../infra/config.js';
import { alertSweepScheduleIdOf, alertsSweep } from '../workflows/alerts-sweep.js';
import type { ServiceDeps } from './deps.js';

export const alertSweepScheduleId = (config: Pick<Config, 'temporal'>) => alertSweepScheduleIdOf(config.temporal.taskQueue);

/** Creates the periodic staleness sweep, or brings an existing one to the configured interval. */
export async function ensureAlertSweepSchedule(temporal: TemporalClient, config: Pick<Config, 'temporal' | 'alerts'>): Promise<string> {
  const scheduleId = alertSweepScheduleId(config);
  const opts: ScheduleOptions = {
    scheduleId,
    spec: { intervals: [{ every: config.alerts.sweepInterval as `${number}${'s' | 'm' | 'h'}` }] },
    action: { type: 'startWorkflow', workflowType: alertsSweep, args: [], taskQueue: config.temporal.taskQueue, workflowId: `${scheduleId}-run`, workflowRunTimeout: '10m' },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1m' },
    memo: { purpose: 'BorgCube staleness sweep and alert redelivery' },
  };
  try {
    await temporal.schedule.create(opts);
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await temporal.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec: opts.spec, action: opts.action, policies: { ...prev.policies, ...opts.policies } }));
  }
  return scheduleId;
}

/** Runs the sweep now (`borgcube alert sweep`): staleness incidents and undelivered notices. */
export async function runAlertSweepNow(deps: Pick<ServiceDeps, 'config' | 'temporal'>): Promise<string> {
  const temporal = await deps.temporal();
  const id = await ensureAlertSweepSchedule(temporal, deps.config);
  await temporal.schedule.getHandle(id).trigger(ScheduleOverlapPolicy.SKIP);
  return id;
}
