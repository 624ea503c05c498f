// The Temporal server of this test run (started or chosen by global-setup.ts), and a
// TestWorkflowEnvironment on it. TEMPORAL.md: createFromExistingServer is the sturdy path here
// (createLocal downloads or gives the server only 5 s; time skipping is unavailable).
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { inject } from 'vitest';
import { registerCleanup } from './cleanup.js';

export interface TestTemporal {
  address: string;
  namespace: string;
}

export function testTemporal(): TestTemporal {
  return { address: inject('temporalAddress'), namespace: inject('temporalNamespace') };
}

/** A TestWorkflowEnvironment on the run's server; torn down after the file's tests. */
export async function createTestWorkflowEnvironment(): Promise<TestWorkflowEnvironment> {
  const t = testTemporal();
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address: t.address, namespace: t.namespace });
  registerCleanup('TestWorkflowEnvironment', () => env.teardown());
  return env;
}
