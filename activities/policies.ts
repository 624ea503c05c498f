// Policy activities (main task queue): the first step of a scheduled run reserves the job row
// (or decides to skip), so that the job's own workflow can run with workflow id = job id.
import type { Db } from '../db/client.js';
import type { Logger } from '../infra/logger.js';
import { reservePolicyJob, type ReservePolicyJobInput, type ReservePolicyJobResult } from '../services/policy-jobs.js';

export interface PolicyActivityDeps {
  db: Db;
  log: Logger;
}

export function createPolicyActivities(deps: PolicyActivityDeps) {
  return {
    async reservePolicyJob(input: ReservePolicyJobInput): Promise<ReservePolicyJobResult> {
      return reservePolicyJob(deps, input);
    },
  };
}

export type PolicyActivities = ReturnType<typeof createPolicyActivities>;
