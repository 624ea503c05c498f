import type { Command } from 'commander';
import { createRedis, jobChannel, jobEvent, type JobEvent } from '../../infra/events.js';
import { cancelJob, getJob, getJobDetails, jobLogAfter, jobLogTail, jobStates, listJobs, startBackup, type JobView } from '../../services/jobs.js';
import { printable, table, UsageError, type CliContext } from '../context.js';

export function registerJobCommands(program: Command, ctx: CliContext) {
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
          ? table(['JOB', 'KIND', 'CLIENT', 'REPOSITORY', 'STATE', 'STARTED', 'ARCHIVE'], jobs.map((j) => [j.id, j.kind, j.clientName, j.repositoryName, j.state, j.createdAt.toISOString(), j.archiveName]))
          : 'no jobs',
      );
    });

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
        ['archive', d.archiveName ?? '-'],
        ['state', d.state],
        ['phase', d.live?.status?.phase ?? d.phase],
        ['created', d.createdAt.toISOString()],
        ['finished', d.finishedAt?.toISOString() ?? '-'],
      ];
      if (d.live?.progress) rows.push(['progress', `${d.live.progress.nfiles} files, ${d.live.progress.originalSize} bytes read, ${d.live.progress.deduplicatedSize} new; at ${d.live.progress.path}`]);
      for (const [k, v] of Object.entries(d.stats ?? {})) if (v !== undefined) rows.push([k, String(v)]);
      if (d.error) rows.push(['error', d.error]);
      for (const v of d.violations) rows.push(['violation', `${v.createdAt.toISOString()} ${v.kind}: ${v.detail}`]);
      rows.push(['temporal', d.temporalUrl]);
      ctx.print(rows.map(([k, v]) => `${k.padEnd(18)} ${printable(v)}`).join('\n'));
    });

  job
    .command('logs')
    .description("print a job's log; --follow keeps printing new lines until the job ends")
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
    .description('cancel a running job (the remote borg is stopped; cleanup still runs)')
    .argument('<id>', 'job id')
    .action(async (id: string) => {
      const outcome = await cancelJob(ctx.deps(), id);
      ctx.print(outcome === 'requested' ? `cancel requested for ${id}` : `job ${id} had no running workflow any more; it is marked failed`);
    });
}

function printLine(ctx: CliContext, time: Date | string, level: string, message: string) {
  const t = typeof time === 'string' ? time : time.toISOString();
  ctx.print(`${t} ${level.padEnd(7)} ${printable(message)}`);
}

/** Subscribe first, then print the stored tail, then live lines after it: nothing is lost or doubled. */
async function followLogs(ctx: CliContext, id: string, tail: number) {
  const deps = ctx.deps();
  const redis = createRedis(deps.config.redisUrl);
  ctx.onClose(async () => {
    await redis.quit().catch(() => {});
  });
  const buffered: JobEvent[] = [];
  let caughtUp = false;
  let last = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let finished = false;
  const finish = (state: string, error: string | null | undefined) => {
    if (finished) return;
    finished = true;
    ctx.print(`job ${state}${error ? `: ${printable(error)}` : ''}`);
    resolveDone();
  };
  redis.on('message', (_ch: string, msg: string) => {
    let parsed;
    try {
      parsed = jobEvent.safeParse(JSON.parse(msg));
    } catch {
      return;
    }
    if (!parsed.success) return;
    if (caughtUp) onEvent(parsed.data);
    else buffered.push(parsed.data);
  });
  function onEvent(e: JobEvent) {
    if (e.type === 'log' && e.seq > last) {
      printLine(ctx, e.time, e.level, e.message);
      last = e.seq;
    } else if (e.type === 'state' && e.phase === 'done') {
      finish(e.state, e.error);
    }
  }
  await redis.subscribe(jobChannel(id));
  for (const l of await jobLogTail(deps, id, tail)) {
    printLine(ctx, l.time, l.level, l.message);
    last = l.seq;
  }
  for (const e of buffered.splice(0)) onEvent(e);
  caughtUp = true;
  // A job that already ended, or ends between the reads above: catch up from the database.
  const poll = setInterval(() => {
    void (async () => {
      const j = await getJob(deps, id);
      if (j.state === 'running') return;
      for (const l of await jobLogAfter(deps, id, last)) {
        printLine(ctx, l.time, l.level, l.message);
        last = l.seq;
      }
      finish(j.state, j.error);
    })().catch(() => {});
  }, 2000);
  await done;
  clearInterval(poll);
}

async function waitForJob(ctx: CliContext, id: string): Promise<JobView> {
  for (;;) {
    const j = await getJob(ctx.deps(), id);
    if (j.state !== 'running') return j;
    await new Promise((r) => setTimeout(r, 1000));
  }
}
