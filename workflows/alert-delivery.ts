// The delivery of one alert notice (a webhook POST or an e-mail), retried by Temporal with backoff
// for about an hour before the notice is marked failed. Started by services/alert-dispatch.ts
// with workflow id `alert-<notification id>`, so each notice is delivered once.
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { AlertDeliveryActivities } from '../activities/alert-delivery.js';
import { describeFailure } from './failures.js';

export interface DeliverAlertInput {
  notificationId: string;
}

export const deliverAlertWorkflowId = (notificationId: string) => `alert-${notificationId}`;

const acts = proxyActivities<AlertDeliveryActivities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

// 5 s, 10 s, 20 s … capped at 10 min: 12 attempts span a little over an hour.
const delivery = proxyActivities<AlertDeliveryActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '10m', maximumAttempts: 12, nonRetryableErrorTypes: ['AlertDeliveryFailed'] },
});

export async function deliverAlert(input: DeliverAlertInput): Promise<{ delivered: boolean }> {
  try {
    return await delivery.deliverNotification(input);
  } catch (err) {
    const error = describeFailure(err);
    await acts.markNotificationFailed({ notificationId: input.notificationId, error });
    throw ApplicationFailure.nonRetryable(`the alert could not be delivered: ${error}`, 'AlertDeliveryFailed');
  }
}
