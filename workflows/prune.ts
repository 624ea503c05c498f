// The `prune` workflow: `borg prune` of one client's archives with its policy's retention rules,
// then `borg compact`, on the repository's storage host (activities/maintenance.ts).
// Workflow id = job id; started after each successful scheduled backup, by the policy's prune
// schedule, or by `borgcube policy prune`.
import { runMaintenanceJob, storageMaintenanceActivities, type MaintenanceJobInput, type MaintenanceJobResult } from './maintenance.js';

export type PruneInput = MaintenanceJobInput;

export async function prune(input: PruneInput): Promise<MaintenanceJobResult> {
  const acts = storageMaintenanceActivities(input.storageHost);
  return runMaintenanceJob(input, 'prune', async () => {
    const r = await acts.pruneArchives({ jobId: input.jobId });
    return { stats: r.stats };
  });
}
