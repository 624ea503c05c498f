// A complete BorgCube for one test file (stack-launcher.ts), on the Temporal server of the test
// run (global-setup.ts).
import { expect, inject } from 'vitest';
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

/** Runs `borgcube ARGS` against the stack and expects its exit code, showing its output if not. */
export async function expectCli(stack: TestStack, args: string[], expectCode = 0): Promise<Awaited<ReturnType<TestStack['cli']>>> {
  const r = await stack.cli(args);
  expect(r.code, `borgcube ${args.join(' ')}\n${r.out}${r.err}`).toBe(expectCode);
  return r;
}
