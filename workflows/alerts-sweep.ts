// The periodic alert sweep, started by the `alerts-sweep-<task queue>` schedule the worker creates
// (services/alert-schedule.ts): orphaned jobs, staleness incidents, notices never dispatched.
import { proxyActivities } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alerts.js';

/** One sweep schedule per task queue: the workers of a queue share it. */
export const alertSweepScheduleIdOf = (taskQueue: string) => `alerts-sweep-${taskQueue}`;

const acts = proxyActivities<AlertActivities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

export async function alertsSweep(): Promise<{ notices: number; dispatched: number }> {
  return acts.sweepAlerts();
}
