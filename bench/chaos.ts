// `npm run chaos [-- --only clientBorg,proxy]`: the fault suite of issue 22. One stack on a
// PostgreSQL, Redis and Temporal dev server of its own (the machine's shared ones are never
// stopped), a web process, and for each fault a backup hit mid-stream; then a table of fault ×
// outcome × time to recover × checks (test/harness/faults.ts says what each check observes).
// Exit code 1 when a fault's checks fail.
import { execFileSync } from 'node:child_process';
import { faults } from '../test/harness/fault-catalog.js';
import { passed, runFault, startFaultRig, type Fault, type FaultOutcome } from '../test/harness/faults.js';
import { startPrivatePostgres, startPrivateRedis, startPrivateTemporal } from '../test/harness/private-services.js';
import { parseArgs } from './lib/args.js';
import { runBench } from './lib/run-bench.js';

const usage = 'npm run chaos -- [--only NAME,NAME] (names: ' + Object.keys(faults).join(', ') + ')';

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
  return `| ${o.fault} | ${outcome} | ${(o.recoverMs / 1000).toFixed(0)} s | ${o.recovery} | ${o.maxBorg}/${o.maxProxy} | ${failed.length ? `FAIL: ${failed.join(', ')}` : 'all pass'} |`;
}

runBench('chaos', async () => {
  const args = parseArgs({ only: '' }, usage);
  const chosen: Array<[string, Fault]> = Object.entries(faults).filter(([k]) => !args.only || args.only.split(',').includes(k));
  if (!chosen.length) throw new Error(`no fault named ${args.only}\n${usage}`);
  const [temporal, postgres, redis] = await Promise.all([startPrivateTemporal(), startPrivatePostgres(), startPrivateRedis()]);
  const rig = await startFaultRig({ temporal, temporalServer: temporal, postgres, redis, web: true });
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const outcomes: FaultOutcome[] = [];
  for (const [key, fault] of chosen) {
    process.stderr.write(`chaos: ${key}: ${fault.name}…\n`);
    const o = await runFault(rig, fault).catch(
      (err: Error): FaultOutcome => ({
        fault: fault.name,
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
    `Fault suite, ${new Date().toISOString().slice(0, 10)}, commit ${commit}: a 48 MiB backup at 3 MiB/s, hit mid-stream.`,
    '',
    '| fault | outcome | time to recover | how (job log) | max borg/proxy per job | checks |',
    '|---|---|---|---|---|---|',
    ...outcomes.map(row),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const notes = outcomes.filter((o) => o.notes.length);
  if (notes.length) process.stdout.write(`\n${notes.map((o) => `${o.fault}:\n${o.notes.map((n) => `  ${n.split('\n').slice(0, 40).join('\n  ')}`).join('\n')}`).join('\n')}\n`);
  if (!outcomes.every(passed)) throw new Error(`${outcomes.filter((o) => !passed(o)).length} of ${outcomes.length} faults failed a check`);
});
