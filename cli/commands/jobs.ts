import type { Command } from 'commander';
import { createRedis, type ProgressEvent } from '../../infra/events.js';
import { createJobEventHub } from '../../infra/job-event-hub.js';
import { JobStream } from '../../services/job-stream.js';
import { cancelJob, getJob, getJobDetails, jobLogTail, jobStates, listJobs, startBackup } from '../../services/jobs.js';
import { isActive } from '../../db/queries/jobs.js';
import type { Job } from '../../db/schema.js';
import { printable, table, UsageError, type CliContext } from '../context.js';
import { waitForJob } from '../wait.js';

export function registerJobCommands(program: Command, ctx: CliContext) {
  registerBackupCommand(program, ctx);

  program
    .command('jobs')
    .description('list jobs, newest first')
    .option('--client <client>', 'only this client')
    .option('--repo <repo>', 'only this repository')
    .option('--state <state>', `only this state (${jobStates.join(', ')})`)
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'print JSON')
    .action(async (o: { client?: string; repo?: string; state?: string; limit: string; json?: boolean }) => {
      const { jobs } = await listJobs(ctx.deps(), { client: o.client, repository: o.repo, state: o.state as (typeof jobStates)[number] | undefined, limit: o.limit });
      if (o.json) return ctx.printJson(jobs);
      ctx.print(
        jobs.length
          ? table(['JOB', 'KIND', 'CLIENT', 'REPOSITORY', 'STATE', 'STARTED', 'ARCHIVE'], jobs.map((j) => [j.id, j.kind, j.clientName, j.repositoryName, stateText(j), j.createdAt.toISOString(), j.archiveName ?? j.restore?.archiveName]))
          : 'no jobs',
      );
    });

  oneJobCommands(program, ctx);
}

/** `borgcube job …`: one job's details, log and cancellation. */
function oneJobCommands(program: Command, ctx: CliContext) {
  const job = program.command('job').description('inspect and control one job');

  job
    .command('show')
    .description('state, archive, stats, error, violations and the Temporal UI link of a job')
    .argument('<id>', 'job id')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const d = await getJobDetails(ctx.deps(), id);
      if (o.json) return ctx.printJson(d);
      const rows: Array<[string, string]> = [
        ['job', d.id],
        ['kind', d.kind],
        ['client', d.clientName ?? '-'],
        ['repository', d.repositoryName ?? '-'],
        ['archive', d.archiveName ?? d.restore?.archiveName ?? '-'],
        ...restoreRows(d),
        ['state', stateText(d)],
        ['phase', d.live?.status?.phase ?? d.phase],
        ['created', d.createdAt.toISOString()],
        ['finished', d.finishedAt?.toISOString() ?? '-'],
      ];
      if (d.live?.progress) rows.push(['progress', progressText(d.live.progress)]);
      for (const [k, v] of Object.entries(d.stats ?? {})) if (v !== undefined) rows.push([k, String(v)]);
      if (d.error) rows.push(['error', d.error]);
      for (const v of d.violations) rows.push(['violation', `${v.createdAt.toISOString()} ${v.kind}: ${v.detail}`]);
      rows.push(['temporal', d.temporalUrl]);
      ctx.print(rows.map(([k, v]) => `${k.padEnd(18)} ${printable(v)}`).join('\n'));
    });

  job
    .command('logs')
    .description("print a job's log; --follow keeps printing new lines, and the progress every 5 s, until the job ends")
    .argument('<id>', 'job id')
    .option('--follow', 'follow live')
    .option('--lines <n>', 'how many of the last lines to print first', '200')
    .action(async (id: string, o: { follow?: boolean; lines: string }) => {
      const deps = ctx.deps();
      const n = Number(o.lines);
      if (!Number.isInteger(n) || n < 0) throw new UsageError('--lines must be a non-negative integer');
      await getJob(deps, id);
      if (!o.follow) {
        for (const l of await jobLogTail(deps, id, n)) printLine(ctx, l.time, l.level, l.message);
        return;
      }
      await followLogs(ctx, id, n);
    });

  job
    .command('cancel')
    .description('cancel a queued or running job (a running one\'s remote borg is stopped and cleanup still runs; a queued one ends with nothing done)')
    .argument('<id>', 'job id')
    .action(async (id: string) => {
      const outcome = await cancelJob(ctx.deps(), id);
      ctx.print(outcome === 'requested' ? `cancel requested for ${id}` : `job ${id} had no running workflow any more; it is marked failed`);
    });
}

type Progress = Pick<ProgressEvent, 'originalSize' | 'deduplicatedSize' | 'nfiles' | 'path' | 'totalSize'>;

/** A progress report in one line: a restore's bytes of its total (and items where known), a backup's files and bytes read. */
export function progressText(pr: Progress): string {
  if (pr.totalSize !== undefined) {
    const pct = pr.totalSize > 0 ? ` (${((100 * pr.originalSize) / pr.totalSize).toFixed(1)}%)` : '';
    return `${pr.nfiles ? `${pr.nfiles} items, ` : ''}${pr.originalSize} of ${pr.totalSize} bytes restored${pct}; at ${pr.path}`;
  }
  return `${pr.nfiles} files, ${pr.originalSize} bytes read, ${pr.deduplicatedSize} new; at ${pr.path}`;
}

/** How often `job logs --follow` prints a progress line (borg's reports reach it up to 10 times a second). */
export const FOLLOW_PROGRESS_EVERY_MS = 5000;

/** A job's state, with its place in the queue while it waits for a slot ("queued (position 3)"). */
export function stateText(j: { state: string; queuePosition: number | null }): string {
  return j.state === 'queued' && j.queuePosition !== null ? `queued (position ${j.queuePosition})` : j.state;
}

/** What a restore job restores where (`job show`). */
function restoreRows(d: { restore: Job['restore'] }): Array<[string, string]> {
  const r = d.restore;
  if (!r) return [];
  return [
    ['restore target', r.inPlace ? '/ (in place)' : r.target],
    ['restore paths', r.paths.length ? r.paths.join(' ') : '(all)'],
    ...(r.stripComponents ? [['strip components', String(r.stripComponents)] as [string, string]] : []),
  ];
}

/** `borgcube backup`: starts a backup now; with --wait, exits when it ended (0 only if it succeeded). */
function registerBackupCommand(program: Command, ctx: CliContext) {
  program
    .command('backup')
    .description('start a backup of a client into a repository now; prints the job id')
    .argument('<client>', 'client name')
    .requiredOption('--repo <repo>', 'repository name')
    .option('--wait', 'wait for the job to end; exit 0 only if it succeeded')
    .option('--json', 'print JSON')
    .action(async (client: string, o: { repo: string; wait?: boolean; json?: boolean }) => {
      const deps = ctx.deps();
      const job = await startBackup(deps, { client, repository: o.repo, triggeredBy: `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'root'}` });
      if (!o.wait) {
        if (o.json) ctx.printJson({ id: job.id });
        else ctx.print(job.id);
        return;
      }
      if (!o.json) ctx.print(job.id);
      const final = await waitForJob(ctx, job.id);
      if (o.json) ctx.printJson(final);
      else ctx.print(`${final.state}${final.error ? `: ${printable(final.error)}` : ''}`);
      ctx.exitCode = final.state === 'succeeded' ? 0 : 1;
    });
}

function printLine(ctx: CliContext, time: Date | string, level: string, message: string) {
  const t = typeof time === 'string' ? time : time.toISOString();
  ctx.print(`${t} ${level.padEnd(7)} ${printable(message)}`);
}

/**
 * The console's live view (services/job-stream.ts) printed as lines: the stored tail first, then
 * live lines in order — a line published before its batch reached PostgreSQL is read from there,
 * not skipped — and the progress at most every FOLLOW_PROGRESS_EVERY_MS, until the job ends.
 */
async function followLogs(ctx: CliContext, id: string, tail: number) {
  const deps = ctx.deps();
  const hub = createJobEventHub(createRedis(deps.config.redisUrl), deps.log);
  ctx.onClose(() => hub.close());
  // Start after the line before the last `tail` ones (after the last line for --lines 0).
  const after = tail === 0 ? ((await jobLogTail(deps, id, 1))[0]?.seq ?? 0) : ((await jobLogTail(deps, id, tail))[0]?.seq ?? 1) - 1;
  let waiting = false;
  let lastProgress = 0;
  let held: ProgressEvent | undefined;
  const printHeld = () => {
    if (!held) return;
    printLine(ctx, new Date(), 'PROGRESS', progressText(held));
    lastProgress = Date.now();
    held = undefined;
  };
  await new Promise<void>((resolve, reject) => {
    const stream = new JobStream(deps, hub, id, after, {
      send: (m) => {
        if (m.type === 'hello' && m.job.state === 'queued') {
          waiting = true;
          ctx.print(`job ${stateText(m.job)}: waiting for a slot under the concurrency limits`);
        } else if (m.type === 'state' && waiting && m.state === 'running') {
          waiting = false;
          ctx.print('job running: it got a slot');
        } else if (m.type === 'log') printLine(ctx, m.time, m.level, m.message);
        else if (m.type === 'progress') {
          held = m;
          if (Date.now() - lastProgress >= FOLLOW_PROGRESS_EVERY_MS) printHeld();
        } else if (m.type === 'gap') ctx.print(`(log lines ${m.from}–${m.to} could not be read)`);
        else if (m.type === 'state' && (m.phase === 'done' || !isActive(m.state))) {
          // The last figures (often the 100% of a restore) came within the throttle: say them before the end.
          printHeld();
          ctx.print(`job ${m.state}${m.error ? `: ${printable(m.error)}` : ''}`);
        }
      },
      // 1000 after the job's end; anything else is why following stopped.
      close: (code, reason) => (code === 1000 ? resolve() : reject(new Error(`following the log stopped: ${reason}`))),
      bufferedAmount: () => 0,
    });
    void stream.start();
  });
}
