// `borg create` as runDetached runs it: the backup of a client's paths into the job's archive,
// through BorgCube's proxy (DESIGN.md §3 step 5).
import { jobLimitsOf, type Client, type Job } from '../../db/schema.js';
import { parseBorgLine } from '../borg-output.js';
import type { DetachedBorg } from './detached-run.js';

/**
 * borg create's argv for the job, `borgCmd` being the borg on the client and `repoUrl` the job's
 * repository URL on its storage host (infra/storage-layout.ts jobRepositoryUrl).
 */
export function borgCreateArgv(repoUrl: string, job: Job, client: Client, borgCmd: string): string[] {
  const location = `${repoUrl}::${job.archiveName}`;
  return [borgCmd, 'create', '--log-json', '--progress', '--checkpoint-interval', '300', '--compression', client.compression, ...client.excludes.flatMap((e) => ['--exclude', e]), location, ...client.paths];
}

export function borgCreate(repoUrl: string, job: Job, client: Client, borgCmd: string): DetachedBorg {
  return {
    name: 'borg create',
    jobName: 'backup',
    argv: borgCreateArgv(repoUrl, job, client, borgCmd),
    parseLine: parseBorgLine,
    logLimits: jobLimitsOf(client.limits),
    // 1 is borg's "finished with warnings" (a file vanished while read, say): the archive is there.
    succeeded: (rc) => (rc === 0 ? 'borg create finished' : rc === 1 ? 'borg create finished with warnings (see above)' : undefined),
  };
}
