// The session policy of each job kind: backups write (backup.ts), restores only read (restore.ts);
// other kinds open no repository session.
import type { Job } from '../../../db/schema.js';
import { backupPolicy } from './backup.js';
import type { SessionPolicy } from './policy.js';
import { restorePolicy } from './restore.js';

const policies: Partial<Record<Job['kind'], SessionPolicy>> = {
  backup: backupPolicy,
  restore: restorePolicy,
};

export function sessionPolicyFor(kind: Job['kind']): SessionPolicy | undefined {
  return policies[kind];
}
