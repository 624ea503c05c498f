// `npm run chaos [-- --only clientBorg,proxy] [--kinds backup,restore,prune,check]`: the fault
// suite of issue 22. One stack on a PostgreSQL, Redis and Temporal dev server of its own (the
// machine's shared ones are never stopped), a web process, and for each fault and each job kind
// it applies to, a job hit mid-run (a backup mid-upload, a restore mid-extract, a prune or a check
// with --verify-data while its borg runs on the server); then a table of job × fault × outcome ×
// time to recover × checks (test/harness/faults.ts says what each check observes).
// Exit code 1 when a fault's checks fail.
import { execFileSync } from 'node:child_process';
import { faults } from '../test/harness/fault-catalog.js';
import { passed, runFault, startFaultRig, type Fault, type FaultOutcome, type JobKind } from '../test/harness/faults.js';
import { startPrivatePostgres, startPrivateRedis, startPrivateTemporal } from '../test/harness/private-services.js';
import { parseArgs } from './lib/args.js';
import { runBench } from './lib/run-bench.js';

const allKinds: JobKind[] = ['backup', 'restore', 'prune', 'check'];
const usage = `npm run chaos -- [--only NAME,NAME] [--kinds ${allKinds.join(',')}] (names: ${Object.keys(faults).join(', ')})`;

const checkNames: Record<keyof FaultOutcome['checks'], string> = {
  outcome: 'outcome',
  single: '≤1 borg/proxy',
  archivesKept: 'archives kept',
  borgCheck: 'check+compact',
  noStaleLock: 'no stale lock',
  clientClean: 'client clean',
  nextBackup: 'next backup',
  webAnswered: 'web answered',
};

function row(o: FaultOutcome): string {
  const failed = (Object.keys(o.checks) as Array<keyof FaultOutcome['checks']>).filter((k) => !o.checks[k]).map((k) => checkNames[k]);
  const outcome = o.state === 'failed' ? `failed: ${(o.error ?? '').slice(0, 60)}` : o.state;
  return `| ${o.kind} | ${o.fault} | ${outcome} | ${(o.recoverMs / 1000).toFixed(0)} s | ${o.recovery} | ${o.maxBorg}/${o.maxProxy} | ${failed.length ? `FAIL: ${failed.join(', ')}` : 'all pass'} |`;
}

runBench('chaos', async () => {
  const args = parseArgs({ only: '', kinds: allKinds.join(',') }, usage);
  const kinds = args.kinds.split(',') as JobKind[];
  if (kinds.some((k) => !allKinds.includes(k))) throw new Error(`--kinds: one of ${allKinds.join(', ')}\n${usage}`);
  const chosen: Array<[string, Fault, JobKind]> = kinds.flatMap((kind) =>
    (Object.entries(faults) as Array<[string, Fault]>).filter(([k, f]) => (!args.only || args.only.split(',').includes(k)) && (f.kinds ?? ['backup']).includes(kind)).map(([k, f]): [string, Fault, JobKind] => [k, f, kind]),
  );
  if (!chosen.length) throw new Error(`no fault named ${args.only} applies to ${kinds.join(', ')}\n${usage}`);
  const [temporal, postgres, redis] = await Promise.all([startPrivateTemporal(), startPrivatePostgres(), startPrivateRedis()]);
  const rig = await startFaultRig({ temporal, temporalServer: temporal, postgres, redis, web: true });
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const outcomes: FaultOutcome[] = [];
  for (const [key, fault, kind] of chosen) {
    process.stderr.write(`chaos: ${kind} × ${key}: ${fault.name}…\n`);
    const o = await runFault(rig, fault, kind).catch(
      (err: Error): FaultOutcome => ({
        fault: fault.name,
        kind,
        state: 'still running',
        error: err.message.split('\n')[0],
        recoverMs: 0,
        recovery: '-',
        maxBorg: 0,
        maxProxy: 0,
        checks: { outcome: false, single: false, archivesKept: false, borgCheck: false, noStaleLock: false, clientClean: false, nextBackup: false, webAnswered: false },
        notes: [`the run itself failed: ${err.message.split('\n').slice(0, 40).join('\n')}`],
      }),
    );
    outcomes.push(o);
    process.stderr.write(`${row(o)}\n${o.notes.map((n) => `    ${n}`).join('\n')}\n`);
  }
  const lines = [
    `Fault suite, ${new Date().toISOString().slice(0, 10)}, commit ${commit}: a 48 MiB backup at 3 MiB/s hit mid-stream; a restore of such an archive, its borg extract frozen while the fault lands; a check --verify-data and a prune (keep-daily 1 of 3 archives), their borg on the server frozen while the fault lands.`,
    '',
    '| job | fault | outcome | time to recover | how (job log) | max borg/proxy per job | checks |',
    '|---|---|---|---|---|---|---|',
    ...outcomes.map(row),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const notes = outcomes.filter((o) => o.notes.length);
  if (notes.length) process.stdout.write(`\n${notes.map((o) => `${o.kind} × ${o.fault}:\n${o.notes.map((n) => `  ${n.split('\n').slice(0, 40).join('\n  ')}`).join('\n')}`).join('\n')}\n`);
  if (!outcomes.every(passed)) throw new Error(`${outcomes.filter((o) => !passed(o)).length} of ${outcomes.length} faults failed a check`);
});
