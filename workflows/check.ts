// The `check` workflow: `borg check` of a repository (repository and archives, optionally
// --verify-data) on its storage host. The result is recorded per repository by the activity; a
// check that finds problems ends the job failed, which opens a `check-failed` incident.
import { runJob } from './job-lifecycle.js';
import { reserveMaintenanceJob, storageMaintenanceActivities, type MaintenanceJobInput, type MaintenanceJobResult } from './maintenance.js';

export interface CheckInput extends MaintenanceJobInput {
  verifyData: boolean;
}

export async function check(input: CheckInput): Promise<MaintenanceJobResult> {
  const acts = storageMaintenanceActivities(input.storageHost);
  const { state, error } = await runJob({
    jobId: input.jobId,
    failureType: 'CheckFailed',
    reserve: () => reserveMaintenanceJob(input.jobId, 'check'),
    body: async () => {
      const r = await acts.checkRepository({ jobId: input.jobId, verifyData: input.verifyData });
      if (r.result === 'ok') return { stats: r.stats };
      const first = r.errors[0] ? `; first: ${r.errors[0]}` : '';
      return { stats: r.stats, error: `borg check reported ${r.errorCount} problem(s)${first}` };
    },
  });
  return { state, error };
}
