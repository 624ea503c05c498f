import { CancelledFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { stopsRun } from './detached-run.js';

describe('stopsRun', () => {
  it('stops borg for a cancellation the workflow requested, and on a reset (attempts start again at 1)', () => {
    expect(stopsRun(new CancelledFailure('CANCELLED'))).toBe(true);
    expect(stopsRun(new CancelledFailure('RESET'))).toBe(true);
  });

  // The chaos suite's restore × Temporal restart: attempt 1 timed out while the server was down,
  // attempt 2 re-attached to borg, then attempt 1's late cancellation killed that borg.
  it.each(['TIMED_OUT', 'NOT_FOUND', 'WORKER_SHUTDOWN', 'HEARTBEAT_DETAILS_CONVERSION_FAILED'])('leaves borg running to the next attempt on %s', (reason) => {
    expect(stopsRun(new CancelledFailure(reason))).toBe(false);
  });
});
