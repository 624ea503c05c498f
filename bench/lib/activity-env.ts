// Runs activity code outside a Temporal worker (inside an activity context, so heartbeats work).
// Failures are the caller's to report: the mock environment's own logging stays silent.
import type { Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export function runActivity<O>(fn: () => Promise<O>): Promise<O> {
  return new MockActivityEnvironment(undefined, { logger: silent }).run(fn);
}
