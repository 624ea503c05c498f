// Per-phase timings of a backup workflow from its Temporal history: for every activity, the time
// from being scheduled to being completed (and how much of it was waiting for a worker), plus
// what the workflow itself spent between activities.
import type { WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common';

export interface Phases {
  /** WorkflowExecutionStarted → WorkflowExecutionCompleted/Failed. */
  totalMs: number;
  /** Per activity type: summed scheduled → closed time, and scheduled → started (dispatch). */
  activities: Record<string, { ms: number; dispatchMs: number; count: number }>;
  /** totalMs minus the activities' time (they run one after another): workflow tasks, gaps. */
  betweenMs: number;
}

export async function workflowPhases(handle: WorkflowHandle): Promise<Phases> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, { name: string; at: number; startedAt?: number }>();
  const activities: Phases['activities'] = {};
  let start = NaN;
  let end = NaN;
  for (const ev of history.events ?? []) {
    const at = tsToMs(ev.eventTime);
    const id = String(ev.eventId);
    if (ev.workflowExecutionStartedEventAttributes) start = at;
    if (ev.workflowExecutionCompletedEventAttributes || ev.workflowExecutionFailedEventAttributes) end = at;
    const s = ev.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(id, { name: s.activityType?.name ?? '?', at });
    const st = ev.activityTaskStartedEventAttributes;
    if (st) {
      const e = scheduled.get(String(st.scheduledEventId));
      if (e) e.startedAt = at;
    }
    const closed = ev.activityTaskCompletedEventAttributes ?? ev.activityTaskFailedEventAttributes ?? ev.activityTaskTimedOutEventAttributes;
    if (closed) {
      const e = scheduled.get(String(closed.scheduledEventId));
      if (!e) continue;
      const a = (activities[e.name] ??= { ms: 0, dispatchMs: 0, count: 0 });
      a.ms += at - e.at;
      a.dispatchMs += (e.startedAt ?? e.at) - e.at;
      a.count++;
    }
  }
  const totalMs = end - start;
  const inActivities = Object.values(activities).reduce((sum, a) => sum + a.ms, 0);
  return { totalMs, activities, betweenMs: totalMs - inActivities };
}
