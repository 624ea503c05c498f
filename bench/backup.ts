// `npm run bench:backup` (issue 4): what a whole BorgCube backup job costs compared with running
// `borg create` directly. BorgCube's figure is the backup workflow end to end — reserve,
// prepare, push (job key, cache, credential), deploy check, run, finalize, pull the files cache,
// cleanup — from the start request until the workflow has completed, on a stack of its own
// (Temporal dev server, worker, repository service, sshd). The direct figure is `borg create` of
// the same tree to `borg serve` over SSH (borg init excluded in both: repositories are created
// before the clock starts).
//
//  1. a small client (100 small files): overhead = BorgCube − direct, medians (target ≤ 3 s);
//  2. the ≥ 500 MB tree of bench:proxy: BorgCube / direct, medians (target ≤ 1.2).
// Both for first backups into fresh repositories and for unchanged second backups. Per-phase
// timings come from the workflows' Temporal histories.
//
// As bench:proxy, each sample first waits (up to --quiet-wait seconds) for an idle machine, and
// the per-run paired figures are reported next to the medians.
//
// Options: --small-runs N (default 5), --big-runs N (default 3), --random-mib N (default 200),
// --skip-big, --quiet-wait S (default 60; 0: do not wait), --profile DIR (node --cpu-prof for
// the repository service and the worker).
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireAccount } from '../infra/accounts.js';
import { loadConfig } from '../infra/config.js';
import { addClient } from '../services/clients.js';
import { getJob, startBackup } from '../services/jobs.js';
import { addRepository } from '../services/repositories.js';
import { parseArgs } from './lib/args.js';
import { runBench } from './lib/run-bench.js';
import { borgcubeServerClass, directServerClass, listenerPid, setupClientSide, type ClientSide } from './lib/client-side.js';
import { printProfileSummary, profilesIn } from './lib/cpuprofile.js';
import { workflowPhases, type Phases } from './lib/history.js';
import { measure, servicePart, sshdPart, quietBeforeSample, type TimedRun } from './lib/measure.js';
import { f2, f3, mb, median, note, print, printHeader, runInfo, table, verdict, type RunInfo } from './lib/report.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { sweepLeftovers } from '../test/harness/leftovers.js';
import { warmTree, writeBigTree, writeSmallTree, type TreeInfo } from './lib/tree.js';

const usage = 'usage: npm run bench:backup [-- --small-runs 5 --big-runs 3 --random-mib 200 --skip-big --quiet-wait 60 --profile DIR]';
const TARGET = { smallOverheadS: 3, bigRatio: 1.2 };

type Size = 'small' | 'big';
type Kind = 'first' | 'second';
interface Sample {
  size: Size;
  kind: Kind;
  run: number;
  path: 'direct' | 'borgcube';
  wallS: number;
  /** CPU seconds the whole machine used during the sample (the job's own processes included). */
  machineCpuS: number;
  /** CPU seconds by process (borg create on the client is detached from the worker's SSH session in the BorgCube path, so it is not among them). */
  cpu: Record<string, number>;
  load1: number;
  phases?: Phases;
  uploadedBytes?: number;
  /** Busy CPUs (of other processes) when the sample started, if the machine did not get quiet. */
  busyAtStart?: number;
}

type Opts = ReturnType<typeof parseOptions>;
type Trees = { small: TreeInfo; big?: TreeInfo };

function parseOptions() {
  return parseArgs({ smallRuns: 5, bigRuns: 3, randomMib: 200, skipBig: false, quietWait: 60, profile: undefined as string | undefined }, usage);
}

/** The repository service's profile folder, writable by the storage account. */
function profileDir(profile: string | undefined): string | undefined {
  if (!profile) return undefined;
  const dir = join(profile, 'service');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  mkdirSync(join(profile, 'worker'), { recursive: true, mode: 0o755 });
  const st = requireAccount(loadConfig().accounts.storage);
  chownSync(dir, st.uid, st.gid);
  return dir;
}

/** One whole BorgCube backup, timed from the start request to the workflow's completion. */
async function borgcube(stack: BenchStack, clientName: string, repository: string): Promise<{ run: TimedRun; phases: Phases; uploadedBytes: number }> {
  const t0 = process.hrtime.bigint();
  const job = await startBackup(stack.deps, { client: clientName, repository, triggeredBy: 'bench' });
  const handle = stack.temporal.workflow.getHandle(job.id);
  // A failed job is reported below with its own error, not as a bare WorkflowFailedError.
  await handle.result().catch(() => {});
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const done = await getJob(stack.deps, job.id);
  if (done.state !== 'succeeded') throw new Error(`job ${job.id} ended ${done.state}: ${done.error}`);
  return { run: { wallS, clientCpuS: 0, code: 0, stderr: '' }, phases: await workflowPhases(handle), uploadedBytes: Number(done.stats?.uploadedBytes ?? 0) };
}

async function setUp(opts: Opts, serviceProfile: string | undefined): Promise<{ stack: BenchStack; side: ClientSide; trees: Trees }> {
  note('starting BorgCube (Temporal dev server, database, data dir, sshd, repository service, worker)…');
  const stack = await startBenchStack({
    mode: 'full',
    storageNodeArgs: serviceProfile ? ['--cpu-prof', '--cpu-prof-dir', serviceProfile] : [],
    workerNodeArgs: opts.profile ? ['--cpu-prof', '--cpu-prof-dir', join(opts.profile, 'worker')] : [],
  });
  const side = await setupClientSide(stack.serverPublicKey);
  note('writing the trees…');
  const small = await writeSmallTree(side.client);
  const big = opts.skipBig ? undefined : await writeBigTree(side.client, opts.randomMib);
  if (big) note(`big tree: ${mb(big.bytes)} in ${big.files} files`);
  const trees: Trees = { small, big };
  for (const size of ['small', 'big'] as const) {
    const t = trees[size];
    if (t) await addClient(stack.deps, { name: size, host: '127.0.0.1', port: side.sshd.port, user: side.client.name, paths: [t.path] });
  }
  note('warming up…');
  if (big) warmTree(big.path);
  const loc = await side.direct.init('warmup');
  await side.direct.create(loc, 'w1', small.path);
  side.direct.remove('warmup');
  await addRepository(stack.deps, { name: 'warmup', path: join(stack.reposDir, 'warmup') });
  await borgcube(stack, 'small', 'warmup');
  return { stack, side, trees };
}

/** Direct borg create into a fresh repository: a first and an unchanged backup. */
async function directSamples(su: { opts: Opts; side: ClientSide }, tree: TreeInfo, size: Size, run: number): Promise<Sample[]> {
  const { side } = su;
  const name = `${size}${run}`;
  const out: Sample[] = [];
  const loc = await side.direct.init(name);
  for (const kind of ['first', 'second'] as const) {
    const busyAtStart = await quietBeforeSample(su.opts.quietWait);
    const m = await measure([sshdPart(listenerPid(side.sshd), directServerClass)], () => side.direct.create(loc, kind, tree.path));
    out.push({ size, kind, run, path: 'direct', wallS: m.wallS, machineCpuS: m.machineBusyS, cpu: m.cpu, load1: m.load1, busyAtStart });
    note(`${size} run ${run} direct   ${kind.padEnd(6)} ${f2(m.wallS)} s`);
  }
  side.direct.remove(name);
  return out;
}

/** A whole BorgCube job into a fresh repository: a first and an unchanged backup. */
async function borgcubeSamples(su: { opts: Opts; stack: BenchStack; side: ClientSide }, size: Size, run: number): Promise<Sample[]> {
  const { stack, side } = su;
  const name = `${size}${run}`;
  const out: Sample[] = [];
  await addRepository(stack.deps, { name, path: join(stack.reposDir, name) });
  for (const kind of ['first', 'second'] as const) {
    let extra: { phases: Phases; uploadedBytes: number } | undefined;
    const busyAtStart = await quietBeforeSample(su.opts.quietWait);
    const parts = [
      servicePart(stack.worker.pid!, 'worker', 'worker children'),
      servicePart(stack.storage.pid!, 'service', 'service borg serve'),
      sshdPart(listenerPid(stack.sshd), borgcubeServerClass),
      sshdPart(listenerPid(side.sshd), () => undefined, 'client sshd'),
    ];
    const m = await measure(parts, async () => {
      const r = await borgcube(stack, size, name);
      extra = r;
      return r.run;
    });
    out.push({ size, kind, run, path: 'borgcube', wallS: m.wallS, machineCpuS: m.machineBusyS, cpu: m.cpu, load1: m.load1, phases: extra?.phases, uploadedBytes: extra?.uploadedBytes, busyAtStart });
    note(`${size} run ${run} borgcube ${kind.padEnd(6)} ${f2(m.wallS)} s`);
  }
  return out;
}

/** Runs of one tree size; paths alternate order per run. */
async function series(su: { opts: Opts; stack: BenchStack; side: ClientSide }, tree: TreeInfo, size: Size, runs: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let run = 1; run <= runs; run++) {
    const order = run % 2 ? (['direct', 'borgcube'] as const) : (['borgcube', 'direct'] as const);
    for (const path of order) samples.push(...(path === 'direct' ? await directSamples(su, tree, size, run) : await borgcubeSamples(su, size, run)));
  }
  return samples;
}

runBench('bench:backup', async () => {
  if (process.getuid?.() !== 0) throw new Error('bench:backup sets up users, sshd and accounts: run it as root');
  const opts = parseOptions();
  const info = await runInfo();
  const swept = await sweepLeftovers({ databaseUrl: loadConfig().databaseUrl });
  if (swept.length) note(`removed leftovers of earlier bench runs: ${swept.join(', ')}`);
  const serviceProfile = profileDir(opts.profile);
  const { stack, side, trees } = await setUp(opts, serviceProfile);
  const su = { opts, stack, side };
  const samples = await series(su, trees.small, 'small', opts.smallRuns);
  if (trees.big) samples.push(...(await series(su, trees.big, 'big', opts.bigRuns)));
  await report({ info, opts, trees, samples, stack, serviceProfile });
});

/** Medians and paired figures over the samples. */
function statsOf(samples: Sample[]) {
  const pick = (size: Size, kind: Kind, path: Sample['path']) => samples.filter((s) => s.size === size && s.kind === kind && s.path === path);
  const med = (size: Size, kind: Kind, path: Sample['path']) => median(pick(size, kind, path).map((s) => s.wallS));
  const overhead = (kind: Kind) => med('small', kind, 'borgcube') - med('small', kind, 'direct');
  const ratio = (kind: Kind) => med('big', kind, 'borgcube') / med('big', kind, 'direct');
  /** Per run: BorgCube's sample against the direct one of the same run, then the median. */
  const paired = (size: Size, kind: Kind, f: (b: number, a: number) => number) =>
    median(
      pick(size, kind, 'borgcube').flatMap((b) => {
        const a = samples.find((s) => s.path === 'direct' && s.size === size && s.kind === kind && s.run === b.run);
        return a ? [f(b.wallS, a.wallS)] : [];
      }),
    );
  return { pick, med, overhead, ratio, paired };
}

type Report = { info: RunInfo; opts: Opts; trees: Trees; samples: Sample[]; stack: BenchStack; serviceProfile: string | undefined };

/** The figures: every sample, medians against the targets, phases, profiles, one JSON line. */
async function report(r: Report): Promise<void> {
  printTables(r);
  printPhases(r);
  if (r.opts.profile) await printProfiles(r);
  printSummary(r);
}

function printTables(r: Report): void {
  const { info, opts, samples } = r;
  const { small, big } = r.trees;
  const { pick, med, overhead, ratio, paired } = statsOf(samples);
  printHeader('bench:backup — a whole BorgCube backup job (the workflow end to end) vs borg create directly over SSH', info);
  print(`  small client: ${small.files} files, ${mb(small.bytes)}${big ? `; big client: ${mb(big.bytes)}, ${big.files} files (as bench:proxy)` : ''}; repokey, lz4`);
  print('  BorgCube: start request → workflow completed (reserve, prepare, push, deploy check, run, finalize, pull files cache, cleanup); direct: borg create only');
  print('  borg init / repository creation excluded from both; paths alternate order per run');
  print(`  each sample waited up to ${opts.quietWait} s for an idle machine; "busy at start" marks those that did not get one (CPUs used by others then)`);
  print();
  print('All samples (wall seconds; CPU seconds by process — direct: borg create + ssh as "client", BorgCube: the server side and the client sshd serving the');
  print('worker\'s sessions, not the detached borg create; machine CPU = everything the machine used meanwhile)');
  const cpuCols = ['client', 'sshd', 'borg serve', 'worker', 'worker children', 'client sshd', 'proxy', 'authorized-keys', 'service', 'service borg serve'];
  table(
    ['client', 'run', 'path', 'backup', 'wall', 'uploaded', ...cpuCols, 'machine CPU', 'busy at start'],
    samples.map((s) => [s.size, String(s.run), s.path, s.kind, f2(s.wallS), s.uploadedBytes === undefined ? '' : mb(s.uploadedBytes), ...cpuCols.map((c) => (s.cpu[c] === undefined || (c === 'client' && s.path === 'borgcube') ? '' : f2(s.cpu[c]))), f2(s.machineCpuS), s.busyAtStart === undefined ? '' : f2(s.busyAtStart)]),
  );
  print();
  print('Small client (medians, seconds)');
  table(
    ['backup', 'n', 'direct', 'BorgCube', 'overhead', 'target', 'result', 'paired overhead (median)'],
    (['first', 'second'] as const).map((k) => [k, String(pick('small', k, 'borgcube').length), f2(med('small', k, 'direct')), f2(med('small', k, 'borgcube')), f2(overhead(k)), `≤ ${TARGET.smallOverheadS} s`, verdict(overhead(k), TARGET.smallOverheadS), f2(paired('small', k, (b, a) => b - a))]),
  );
  if (big) {
    print();
    print('Big tree (medians, seconds)');
    table(
      ['backup', 'n', 'direct', 'BorgCube', 'ratio', 'target', 'result', 'paired ratio (median)'],
      (['first', 'second'] as const).map((k) => [k, String(pick('big', k, 'borgcube').length), f2(med('big', k, 'direct')), f2(med('big', k, 'borgcube')), f3(ratio(k)), `≤ ${TARGET.bigRatio}`, verdict(ratio(k), TARGET.bigRatio), f3(paired('big', k, (b, a) => b / a))]),
    );
  }

}

/** Per-phase medians from the Temporal histories. */
function printPhases(r: Report): void {
  const { samples } = r;
  const { big } = r.trees;
  const { pick, med } = statsOf(samples);
  const groups: Array<[Size, Kind]> = [['small', 'first'], ['small', 'second'], ...(big ? ([['big', 'first'], ['big', 'second']] as Array<[Size, Kind]>) : [])];
  const names = new Set<string>();
  for (const s of samples) for (const n of Object.keys(s.phases?.activities ?? {})) names.add(n);
  const phaseMed = (size: Size, kind: Kind, f: (p: Phases) => number) => median(pick(size, kind, 'borgcube').map((s) => f(s.phases!)));
  print();
  print('Where a BorgCube job spends its time (medians per group, seconds, from the Temporal history; activity = scheduled → completed, dispatch = of which waiting for a worker)');
  const rows: string[][] = [];
  for (const n of names) {
    rows.push([n, ...groups.flatMap(([size, kind]) => [f2(phaseMed(size, kind, (p) => (p.activities[n]?.ms ?? 0) / 1000)), f2(phaseMed(size, kind, (p) => (p.activities[n]?.dispatchMs ?? 0) / 1000))])]);
  }
  rows.push(['(workflow tasks, gaps)', ...groups.flatMap(([size, kind]) => [f2(phaseMed(size, kind, (p) => p.betweenMs / 1000)), ''])]);
  rows.push(['workflow total', ...groups.flatMap(([size, kind]) => [f2(phaseMed(size, kind, (p) => p.totalMs / 1000)), ''])]);
  rows.push(['bench wall (incl. start, result)', ...groups.flatMap(([size, kind]) => [f2(med(size, kind, 'borgcube')), ''])]);
  rows.push(['direct borg create', ...groups.flatMap(([size, kind]) => [f2(med(size, kind, 'direct')), ''])]);
  table(['phase', ...groups.flatMap(([size, kind]) => [`${size} ${kind}`, 'dispatch'])], rows);

}

async function printProfiles(r: Report): Promise<void> {
  const { opts, stack } = r;
  const profileDir = r.serviceProfile;
  if (opts.profile) {
    note('stopping the worker and the repository service to collect their profiles…');
    await stack.worker.stop();
    await stack.storage.stop();
    print();
    printProfileSummary('Repository service (storage-main), main thread', profilesIn(profileDir!, (n) => /\.0\.\d+\.cpuprofile$/.test(n)));
    print();
    printProfileSummary('Repository service, crypto worker threads', profilesIn(profileDir!, (n) => !/\.0\.\d+\.cpuprofile$/.test(n)));
    print();
    printProfileSummary('Worker (workflows + client activities), all threads', profilesIn(join(opts.profile, 'worker')));
    print(`profiles: ${opts.profile}`);
  }
}

function printSummary(r: Report): void {
  const { info, opts, samples } = r;
  const { big } = r.trees;
  const { pick, med, overhead, ratio, paired } = statsOf(samples);
  const r2 = (v: number) => Number(v.toFixed(2));
  const walls = (size: Size, kind: Kind, path: Sample['path']) => pick(size, kind, path).map((s) => r2(s.wallS));
  const summary = {
    bench: 'backup',
    at: info.startedAt,
    commit: info.commit,
    dirty: info.dirty,
    profiling: Boolean(opts.profile),
    small: Object.fromEntries(
      (['first', 'second'] as const).map((k) => [k, { directS: r2(med('small', k, 'direct')), borgcubeS: r2(med('small', k, 'borgcube')), overheadS: r2(overhead(k)), pairedOverheadS: r2(paired('small', k, (b, a) => b - a)), pass: overhead(k) <= TARGET.smallOverheadS, samples: { direct: walls('small', k, 'direct'), borgcube: walls('small', k, 'borgcube') } }]),
    ),
    big: big
      ? {
          tree: { bytes: big.bytes, files: big.files },
          ...Object.fromEntries(
            (['first', 'second'] as const).map((k) => [k, { directS: r2(med('big', k, 'direct')), borgcubeS: r2(med('big', k, 'borgcube')), ratio: Number(ratio(k).toFixed(3)), pairedRatio: Number(paired('big', k, (b, a) => b / a).toFixed(3)), pass: ratio(k) <= TARGET.bigRatio, samples: { direct: walls('big', k, 'direct'), borgcube: walls('big', k, 'borgcube') } }]),
          ),
        }
      : null,
    target: TARGET,
    busySamples: samples.filter((s) => s.busyAtStart !== undefined).length,
  };
  print();
  print(JSON.stringify(summary));
}
