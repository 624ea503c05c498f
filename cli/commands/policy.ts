import { Option, type Command } from 'commander';
import type { Job, RetentionRules } from '../../db/schema.js';
import { listJobs } from '../../services/jobs.js';
import { addPolicy, getPolicy, getPolicyDetails, listPolicies, pausePolicy, removePolicy, resumePolicy, syncPolicySchedules, triggerPolicy, updatePolicy, type PolicyDetails, type PolicyView, type UpdatePolicyInput } from '../../services/policies.js';
import { retentionText } from '../../services/retention.js';
import { startCheck, startPrune } from '../../services/policy-jobs.js';
import { printable, table, UsageError, type CliContext } from '../context.js';
import { hooksCommand } from './hooks.js';
import { waitForJob } from '../wait.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface ScheduleOpts {
  cron?: string[];
  timezone?: string;
  keepWithin?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  checkCron?: string[];
  verifyData?: boolean;
  pruneCron?: string[];
  staleAfter?: string;
  json?: boolean;
}

/** The options `add` and `edit` share. */
function scheduleOptions(cmd: Command): Command {
  return cmd
    .option('--cron <expr>', 'backup time: a cron expression ("0 3 * * *"), @daily, or "@every 6h"; repeat for several; "none" for trigger-only', collect)
    .option('--timezone <tz>', 'time zone of the cron expressions and of prune\'s days/weeks (IANA name, e.g. Europe/Berlin)')
    .option('--keep-within <interval>', 'keep every archive younger than this (e.g. 48H, 7d, 4w, 6m, 1y); "none" drops the rule')
    .option('--keep-hourly <n>', 'keep the last archive of each of the last N hours (0 drops the rule)')
    .option('--keep-daily <n>', 'keep the last archive of each of the last N days (0 drops the rule)')
    .option('--keep-weekly <n>', 'keep the last archive of each of the last N weeks (0 drops the rule)')
    .option('--keep-monthly <n>', 'keep the last archive of each of the last N months (0 drops the rule)')
    .option('--keep-yearly <n>', 'keep the last archive of each of the last N years (0 drops the rule)')
    .option('--check-cron <expr>', 'when to run borg check on the repository; repeatable; "none" for no scheduled checks', collect)
    .option('--verify-data', 'scheduled checks read and verify every chunk (borg check --verify-data)')
    .option('--prune-cron <expr>', 'extra prune times (a prune also follows every successful scheduled backup); "none" for none', collect)
    .option('--stale-after <hours>', 'alert when no backup succeeded for this many hours')
    .option('--json', 'print JSON');
}

const cronList = (v: string[] | undefined) => (v === undefined ? undefined : v.length === 1 && v[0] === 'none' ? [] : v);

function retentionOf(o: ScheduleOpts, base: RetentionRules = {}): RetentionRules | undefined {
  const given = o.keepWithin !== undefined || [o.keepHourly, o.keepDaily, o.keepWeekly, o.keepMonthly, o.keepYearly].some((v) => v !== undefined);
  if (!given) return undefined;
  const r: RetentionRules = { ...base };
  if (o.keepWithin !== undefined) {
    if (o.keepWithin === 'none') delete r.keepWithin;
    else r.keepWithin = o.keepWithin;
  }
  const counts = { hourly: o.keepHourly, daily: o.keepDaily, weekly: o.keepWeekly, monthly: o.keepMonthly, yearly: o.keepYearly } as const;
  for (const [k, v] of Object.entries(counts) as Array<[keyof typeof counts, string | undefined]>) {
    if (v === undefined) continue;
    if (!/^\d+$/.test(v)) throw new UsageError(`--keep-${k} must be a whole number`);
    if (Number(v) === 0) delete r[k];
    else r[k] = Number(v);
  }
  return r;
}

export function registerPolicyCommands(program: Command, ctx: CliContext) {
  const policy = program.command('policy').description('backup policies: schedules (Temporal Schedules), retention, checks, staleness alerts');

  policyEditCommands(policy, ctx);
  policyViewCommands(policy, ctx);
  policyRunCommands(policy, ctx);
  policyRemoveCommands(policy, ctx);
  hooksCommand(policy, ctx, 'policy');
}

/** Adding and editing policies (their Temporal Schedules follow). */
function policyEditCommands(policy: Command, ctx: CliContext) {
  scheduleOptions(
    policy
      .command('add')
      .description('bind a client to a repository with a backup schedule, retention rules, checks and a staleness threshold')
      .argument('<name>', 'policy name')
      .requiredOption('--client <client>', 'client name')
      .requiredOption('--repo <repo>', 'repository name')
      .option('--paused', 'create it paused'),
  ).action(async (name: string, o: ScheduleOpts & { client: string; repo: string; paused?: boolean }) => {
    const p = await addPolicy(ctx.deps(), {
      name,
      client: o.client,
      repository: o.repo,
      backupCrons: cronList(o.cron) ?? [],
      timezone: o.timezone,
      retention: retentionOf(o) ?? {},
      checkCrons: cronList(o.checkCron) ?? [],
      checkVerifyData: Boolean(o.verifyData),
      pruneCrons: cronList(o.pruneCron) ?? [],
      staleAfterHours: o.staleAfter,
      paused: Boolean(o.paused),
    });
    if (o.json) return ctx.printJson(p);
    ctx.print(`policy ${p.name} added: ${p.clientName} → ${p.repositoryName}${p.paused ? ' (paused)' : ''}`);
  });

  scheduleOptions(
    policy
      .command('edit')
      .description('change a policy; its Temporal Schedules follow (options not given stay as they are)')
      .argument('<name>', 'policy name')
      .option('--client <client>', 'another client')
      .option('--repo <repo>', 'another repository'),
  )
    .addOption(new Option('--no-verify-data', 'scheduled checks without --verify-data'))
    .action(async (name: string, o: ScheduleOpts & { client?: string; repo?: string }) => {
      const deps = ctx.deps();
      const before = await getPolicy(deps, name);
      const patch: UpdatePolicyInput = {
        client: o.client,
        repository: o.repo,
        backupCrons: cronList(o.cron),
        timezone: o.timezone,
        retention: retentionOf(o, before.retention),
        checkCrons: cronList(o.checkCron),
        checkVerifyData: o.verifyData,
        pruneCrons: cronList(o.pruneCron),
        staleAfterHours: o.staleAfter,
      };
      const p = await updatePolicy(deps, name, patch);
      if (o.json) return ctx.printJson(p);
      ctx.print(`policy ${p.name} updated`);
    });
}

/** Listing and showing policies. */
function policyViewCommands(policy: Command, ctx: CliContext) {
  policy
    .command('list')
    .description('list policies')
    .option('--client <client>', 'only this client')
    .option('--repo <repo>', 'only this repository')
    .option('--json', 'print JSON')
    .action(async (o: { client?: string; repo?: string; json?: boolean }) => {
      const rows = await listPolicies(ctx.deps(), { client: o.client, repository: o.repo });
      if (o.json) return ctx.printJson(rows);
      ctx.print(
        rows.length
          ? table(
              ['NAME', 'CLIENT', 'REPOSITORY', 'BACKUP', 'RETENTION', 'CHECK', 'STATE'],
              rows.map((p) => [p.name, p.clientName, p.repositoryName, p.backupCrons.join('; ') || 'trigger only', retentionText(p.retention), p.checkCrons.join('; ') || '-', p.paused ? 'paused' : 'active']),
            )
          : 'no policies yet (borgcube policy add NAME --client C --repo R --cron "0 3 * * *")',
      );
    });

  policy
    .command('show')
    .description('a policy with its schedules (next runs, recent runs, skipped overlaps) and last jobs')
    .argument('<name>', 'policy name')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      const d = await getPolicyDetails(ctx.deps(), name);
      if (o.json) return ctx.printJson(d);
      ctx.print(showPolicy(d));
    });
}

/** Pausing, resuming and running a policy's backup, prune or check now. */
function policyRunCommands(policy: Command, ctx: CliContext) {
  policy
    .command('pause')
    .description("pause the policy's schedules (nothing runs until resume; trigger still works)")
    .argument('<name>', 'policy name')
    .action(async (name: string) => {
      await pausePolicy(ctx.deps(), name);
      ctx.print(`policy ${name} paused`);
    });

  policy
    .command('resume')
    .description("resume the policy's schedules")
    .argument('<name>', 'policy name')
    .action(async (name: string) => {
      await resumePolicy(ctx.deps(), name);
      ctx.print(`policy ${name} resumed`);
    });

  policy
    .command('trigger')
    .description('run the backup schedule now (backup, then prune); skipped while a backup of the client runs')
    .argument('<name>', 'policy name')
    .option('--wait', 'wait for the backup to end; exit 0 only if it succeeded')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { wait?: boolean; json?: boolean }) => {
      const deps = ctx.deps();
      const t = await triggerPolicy(deps, name);
      if (!o.wait) {
        if (o.json) return ctx.printJson({ scheduleId: t.scheduleId, triggeredAt: t.at });
        return ctx.print(`triggered ${t.scheduleId}; see borgcube jobs --client ${t.policy.clientName}`);
      }
      const job = await newPolicyJob(ctx, t.policy.id, t.policy.clientName, t.at);
      if (!job) {
        ctx.exitCode = 1;
        return ctx.print('no backup started (skipped: another run or backup of this client is still going)');
      }
      if (!o.json) ctx.print(job.id);
      const final = await waitForJob(ctx, job.id);
      if (o.json) ctx.printJson(final);
      else ctx.print(`${final.state}${final.error ? `: ${printable(final.error)}` : ''}`);
      ctx.exitCode = final.state === 'succeeded' ? 0 : 1;
    });

  policy
    .command('prune')
    .description("prune the policy's client now with its retention rules, then compact")
    .argument('<name>', 'policy name')
    .option('--wait', 'wait for the prune to end')
    .action(async (name: string, o: { wait?: boolean }) => {
      const job = await startPrune(ctx.deps(), name, `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'root'}`);
      await printOrWait(ctx, job, o.wait);
    });

  policy
    .command('check')
    .description("run borg check on the policy's repository now")
    .argument('<name>', 'policy name')
    .option('--verify-data', 'also read and verify every chunk (default: the policy setting)')
    .option('--wait', 'wait for the check to end; exit 0 only if it passed')
    .action(async (name: string, o: { verifyData?: boolean; wait?: boolean }) => {
      const deps = ctx.deps();
      const p = await getPolicy(deps, name);
      const job = await startCheck(deps, { repository: p.repositoryName, verifyData: o.verifyData ?? p.checkVerifyData, triggeredBy: `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'root'}` });
      await printOrWait(ctx, job, o.wait);
    });
}

/** Removing a policy and re-syncing the Temporal Schedules of all. */
function policyRemoveCommands(policy: Command, ctx: CliContext) {
  policy
    .command('remove')
    .description('remove a policy and its schedules (running jobs finish; archives stay)')
    .argument('<name>', 'policy name')
    .action(async (name: string) => {
      await removePolicy(ctx.deps(), name);
      ctx.print(`policy ${name} removed`);
    });

  policy
    .command('sync')
    .description("recreate every policy's Temporal Schedules from the database (after restoring Temporal)")
    .action(async () => {
      const r = await syncPolicySchedules(ctx.deps());
      ctx.print(`schedules of ${r.policies} policies in sync`);
    });
}

async function printOrWait(ctx: CliContext, job: Job, wait?: boolean) {
  ctx.print(job.id);
  if (!wait) return;
  const final = await waitForJob(ctx, job.id);
  ctx.print(`${final.state}${final.error ? `: ${printable(final.error)}` : ''}`);
  ctx.exitCode = final.state === 'succeeded' ? 0 : 1;
}

/** The backup job a trigger started (it appears within seconds unless the run was skipped). */
async function newPolicyJob(ctx: CliContext, policyId: string, client: string, since: Date): Promise<Job | undefined> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const { jobs } = await listJobs(ctx.deps(), { client, kind: 'backup', limit: 10 });
    const j = jobs.find((x) => x.policyId === policyId && x.createdAt >= new Date(since.getTime() - 1000));
    if (j) return j;
    await new Promise((r) => setTimeout(r, 500));
  }
  return undefined;
}

function showPolicy(d: PolicyDetails & PolicyView): string {
  const rows: Array<[string, string]> = [
    ['policy', d.name],
    ['client', d.clientName],
    ['repository', d.repositoryName],
    ['state', d.paused ? 'paused' : 'active'],
    ['backup', d.backupCrons.join('; ') || 'trigger only'],
    ['time zone', d.timezone],
    ['retention', retentionText(d.retention)],
    ['prune', d.pruneCrons.length ? `after each backup, and ${d.pruneCrons.join('; ')}` : 'after each backup'],
    ['check', d.checkCrons.length ? `${d.checkCrons.join('; ')}${d.checkVerifyData ? ' (--verify-data)' : ''}` : '-'],
    ['stale after', `${d.staleAfterHours} h`],
    ['hooks', `${(['before', 'onFailure', 'after'] as const).map((p) => `${d.hooks[p]?.length ?? 0} ${p}`).join(', ')} (borgcube policy hooks NAME)`],
  ];
  for (const [kind, s] of Object.entries(d.schedules)) {
    if (!s) continue;
    rows.push([`${kind} schedule`, s.exists ? `${s.id}${s.paused ? ' (paused)' : ''}, ${s.actionsTaken} run(s), ${s.skippedOverlap} skipped (overlap)` : `${s.id} MISSING (borgcube policy sync)`]);
    if (s.nextRuns.length) rows.push([`${kind} next`, s.nextRuns.slice(0, 3).join(', ')]);
    rows.push([`${kind} temporal`, s.temporalUrl]);
  }
  if (d.lastBackup) rows.push(['last backup', `${d.lastBackup.state} ${d.lastBackup.createdAt.toISOString()} (job ${d.lastBackup.id})`]);
  if (d.lastPrune) rows.push(['last prune', `${d.lastPrune.state} ${d.lastPrune.createdAt.toISOString()} (job ${d.lastPrune.id})`]);
  if (d.lastCheck) rows.push(['last check', `${d.lastCheck.result} ${d.lastCheck.finishedAt.toISOString()}${d.lastCheck.errorCount ? `, ${d.lastCheck.errorCount} problem(s)` : ''}`]);
  return rows.map(([k, v]) => `${k.padEnd(18)} ${printable(v)}`).join('\n');
}
