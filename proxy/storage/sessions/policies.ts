// The session policy of each job kind. Only backups open repository sessions today; a restore
// adds its read-only policy here, beside the backup one.
import type { Job } from '../../../db/schema.js';
import { backupPolicy } from './backup.js';
import type { SessionPolicy } from './policy.js';

const policies: Partial<Record<Job['kind'], SessionPolicy>> = {
  backup: backupPolicy,
};

export function sessionPolicyFor(kind: Job['kind']): SessionPolicy | undefined {
  return policies[kind];
}
