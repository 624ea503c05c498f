// Alert workflows: the periodic sweep (started by the `alerts-sweep-<task queue>` schedule the
// worker creates) and the delivery of one notice, retried by Temporal with backoff for about an
// hour before the notice is marked failed. Incident rules: services/alerts.ts.
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alerts.js';
import { describeFailure } from './maintenance.js';

const acts = proxyActivities<AlertActivities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

// 5 s, 10 s, 20 s … capped at 10 min: 12 attempts span a little over an hour.
const delivery = proxyActivities<AlertActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '10m', maximumAttempts: 12, nonRetryableErrorTypes: ['AlertDeliveryFailed'] },
});

export async function alertsSweep(): Promise<{ notices: number; dispatched: number }> {
  return acts.sweepAlerts();
}

export interface DeliverAlertInput {
  notificationId: string;
}

export async function deliverAlert(input: DeliverAlertInput): Promise<{ delivered: boolean }> {
  try {
    return await delivery.deliverNotification(input);
  } catch (err) {
    const error = describeFailure(err);
    await acts.markNotificationFailed({ notificationId: input.notificationId, error });
    throw ApplicationFailure.nonRetryable(`the alert could not be delivered: ${error}`, 'AlertDeliveryFailed');
  }
}
