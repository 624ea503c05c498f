// `borg create` as runDetached runs it: the backup of a client's paths into the job's archive,
// through BorgCube's proxy (DESIGN.md §3 step 5).
import { jobLimitsOf, type Client, type Job } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import { jobRepositoryUrl } from '../../infra/storage-layout.js';
import { parseBorgLine } from '../borg-output.js';
import type { DetachedBorg } from './detached-run.js';

/** borg create's argv for the job, `borgCmd` being the borg on the client. */
export function borgCreateArgv(config: Config, job: Job, client: Client, borgCmd: string): string[] {
  const location = `${jobRepositoryUrl(config, job.id)}::${job.archiveName}`;
  return [borgCmd, 'create', '--log-json', '--progress', '--checkpoint-interval', '300', '--compression', client.compression, ...client.excludes.flatMap((e) => ['--exclude', e]), location, ...client.paths];
}

export function borgCreate(config: Config, job: Job, client: Client, borgCmd: string): DetachedBorg {
  return {
    name: 'borg create',
    jobName: 'backup',
    argv: borgCreateArgv(config, job, client, borgCmd),
    parseLine: parseBorgLine,
    logLimits: jobLimitsOf(client.limits),
    // 1 is borg's "finished with warnings" (a file vanished while read, say): the archive is there.
    succeeded: (rc) => (rc === 0 ? 'borg create finished' : rc === 1 ? 'borg create finished with warnings (see above)' : undefined),
  };
}
