// `borg create` as runDetached runs it: the backup of a client's paths into the job's archive,
// through BorgCube's proxy (DESIGN.md §3 step 5), with the client's database dumps streamed in
// through named pipes (dump-streams.ts).
import { posix } from 'node:path';
import { jobLimitsOf, type Client, type Job } from '../../db/schema.js';
import { clientDumps, dumpEntry } from '../../services/dumps.js';
import { parseBorgLine } from '../borg-output.js';
import type { DetachedBorg } from './detached-run.js';
import { backupDumpOutcome, backupDumpParts, DUMPS_DIR } from './dump-streams.js';

/**
 * borg create's argv for the job, `borgCmd` being the borg on the client, `repoUrl` the job's
 * repository URL on its storage host (infra/storage-layout.ts jobRepositoryUrl) and `dir` the job folder.
 * With dumps, their FIFOs' relative paths come first (borg runs in the staging folder, reads each
 * dump before the files, and a failing dump stops the backup early), --read-special makes borg
 * read them, and the job folder is excluded: borg must not open a FIFO a second time through a
 * client path that contains it (a home directory).
 */
export function borgCreateArgv(repoUrl: string, job: Job, client: Client, borgCmd: string, dir?: string): string[] {
  const location = `${repoUrl}::${job.archiveName}`;
  const dumps = clientDumps(client).map(dumpEntry);
  const withDumps = dumps.length && dir ? ['--read-special', '--exclude', `pp:${dir}`] : [];
  return [
    borgCmd, 'create', '--log-json', '--progress', '--checkpoint-interval', '300', '--compression', client.compression, ...withDumps,
    ...client.excludes.flatMap((e) => ['--exclude', e]), location, ...(withDumps.length ? dumps : []), ...client.paths,
  ];
}

export function borgCreate(repoUrl: string, job: Job, client: Client, borgCmd: string, dir: string): DetachedBorg {
  const dumps = clientDumps(client);
  return {
    name: 'borg create',
    jobName: 'backup',
    argv: borgCreateArgv(repoUrl, job, client, borgCmd, dir),
    ...(dumps.length ? { cwd: posix.join(dir, DUMPS_DIR), parts: backupDumpParts(dumps), toolOutcome: (read, rc) => backupDumpOutcome(dumps, read, rc) } : {}),
    parseLine: parseBorgLine,
    logLimits: jobLimitsOf(client.limits),
    // 1 is borg's "finished with warnings" (a file vanished while read, say): the archive is there.
    succeeded: (rc) => (rc === 0 ? 'borg create finished' : rc === 1 ? 'borg create finished with warnings (see above)' : undefined),
  };
}
