// A complete BorgCube for one test file (stack-launcher.ts), on the Temporal server of the test
// run (global-setup.ts).
import { inject } from 'vitest';
import { launchStack, type Stack } from './stack-launcher.js';

export type { ManagedProcess } from './process.js';
export type TestStack = Stack;

export interface StackOptions {
  /** Start the worker right away (default true). */
  worker?: boolean;
  /** Extra environment for every process of the stack. */
  env?: Record<string, string>;
}

export function startStack(opts: StackOptions = {}): Promise<TestStack> {
  return launchStack({ ...opts, temporal: { address: inject('temporalAddress'), namespace: inject('temporalNamespace') } });
}
