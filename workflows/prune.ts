// The `prune` workflow: `borg prune` of one client's archives with its policy's retention rules,
// then `borg compact`, on the repository's storage host (activities/maintenance.ts).
// Workflow id = job id; started after each successful scheduled backup, by the policy's prune
// schedule, or by `borgcube policy prune`.
import { runJob } from './job-lifecycle.js';
import { reserveMaintenanceJob, storageMaintenanceActivities, type MaintenanceJobInput, type MaintenanceJobResult } from './maintenance.js';

export type PruneInput = MaintenanceJobInput;

export async function prune(input: PruneInput): Promise<MaintenanceJobResult> {
  const acts = storageMaintenanceActivities(input.storageHost);
  const { state, error } = await runJob({
    jobId: input.jobId,
    failureType: 'PruneFailed',
    reserve: () => reserveMaintenanceJob(input.jobId, 'prune'),
    body: async () => ({ stats: (await acts.pruneArchives({ jobId: input.jobId })).stats }),
  });
  return { state, error };
}
