// `npm run bench:restore` (issue 20): what a whole BorgCube restore job costs compared with running
// `borg extract` directly. BorgCube's figure is the restore workflow end to end — reserve, prepare
// (job key, the archive read and the selection made with the real key), push, deploy check,
// extract through the proxy in its read-only mode, the check of what was restored, cleanup — from
// the start request until the workflow has completed. The direct figure is `borg extract` of the
// same tree from `borg serve` over SSH, as the same client user, into a fresh folder.
//
// Both restore the ≥ 500 MB tree of bench:backup's big client from an archive made before the
// clock starts. Paths alternate order per run; the per-run paired ratio is printed beside the
// medians, and the server side's CPU seconds per GB restored (direct: sshd + borg serve;
// BorgCube: sshd with the proxy, the repository service with its borg serve, the worker).
//
// Options: --runs N (default 3), --random-mib N (default 200), --quiet-wait S (default 60),
// --profile DIR (node --cpu-prof for the repository service and the worker; profiles and a
// summary in DIR — timings are then not comparable), --service-node-args "…" (node options of the
// repository service, e.g. --perf-basic-prof for `perf record -p`), --show-log (each BorgCube
// restore's job log, timed from the start request).
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireAccount } from '../infra/accounts.js';
import { loadConfig } from '../infra/config.js';
import { addClient } from '../services/clients.js';
import { logLinesAfter } from '../db/queries/jobs.js';
import { getJob, startBackup } from '../services/jobs.js';
import { startRestore } from '../services/restores.js';
import { addRepository } from '../services/repositories.js';
import { sweepLeftovers } from '../test/harness/leftovers.js';
import { parseArgs } from './lib/args.js';
import { printServiceProfiles } from './lib/cpuprofile.js';
import { workflowPhases, type Phases } from './lib/history.js';
import { borgcubeServerClass, directServerClass, listenerPid, setupClientSide, type ClientSide } from './lib/client-side.js';
import { measure, quietBeforeSample, servicePart, sshdPart, userPart, type TimedRun } from './lib/measure.js';
import { f2, f3, mb, median, note, print, printHeader, runInfo, table, verdict } from './lib/report.js';
import { runBench } from './lib/run-bench.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { warmTree, writeBigTree, type TreeInfo } from './lib/tree.js';

const usage = 'usage: npm run bench:restore [-- --runs 3 --random-mib 200 --quiet-wait 60 --profile DIR --service-node-args "--perf-basic-prof" --show-log]';
const TARGET = { ratio: 1.15, stretch: 1.05 };

interface Sample {
  run: number;
  path: 'direct' | 'borgcube';
  wallS: number;
  /** CPU seconds of the server side (see the header). */
  serverCpuS: number;
  /** CPU seconds by process group, and the client account's breakdown with its run-queue waits. */
  cpu: Record<string, number>;
  busyAtStart?: number;
  /** BorgCube: the workflow's activities and the time between them. */
  phases?: Phases;
}

interface Setup {
  stack: BenchStack;
  side: ClientSide;
  tree: TreeInfo;
  directLocation: string;
  /** The BorgCube archive of the tree. */
  archive: string;
  /** The two repositories' folders on this machine. */
  directRepo: string;
  borgcubeRepo: string;
}

/** The client account's processes by what they are. */
const clientClass = (cmd: string) => (/\bborg(\.exe)?\b.*\bextract\b/.test(cmd) ? 'client borg' : /^ssh\b|\/ssh\b/.test(cmd) ? 'client ssh' : 'client other');

const SERVER_PARTS: Record<Sample['path'], string[]> = {
  direct: ['sshd', 'borg serve'],
  borgcube: ['sshd', 'proxy', 'authorized-keys', 'service', 'service borg serve', 'worker', 'worker children'],
};

/** The repository service's profile folder (writable by the storage account) and the worker's. */
function profileDirs(profile: string | undefined): { service: string; worker: string } | undefined {
  if (!profile) return undefined;
  const dirs = { service: join(profile, 'service'), worker: join(profile, 'worker') };
  mkdirSync(dirs.service, { recursive: true, mode: 0o755 });
  mkdirSync(dirs.worker, { recursive: true, mode: 0o755 });
  const st = requireAccount(loadConfig().accounts.storage);
  chownSync(dirs.service, st.uid, st.gid);
  return dirs;
}

async function setUp(randomMiB: number, profile: ReturnType<typeof profileDirs>, serviceNodeArgs: string[]): Promise<Setup> {
  note('starting BorgCube (Temporal dev server, database, data dir, sshd, repository service, worker)…');
  const stack = await startBenchStack({
    mode: 'full',
    storageNodeArgs: [...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile.service] : []), ...serviceNodeArgs],
    workerNodeArgs: profile ? ['--cpu-prof', '--cpu-prof-dir', profile.worker] : [],
  });
  const side = await setupClientSide(stack.serverPublicKey);
  note('writing the tree…');
  const tree = await writeBigTree(side.client, randomMiB);
  note(`tree: ${mb(tree.bytes)} in ${tree.files} files`);
  await addClient(stack.deps, { name: 'big', host: '127.0.0.1', port: side.sshd.port, user: side.client.name, paths: [tree.path] });
  await addRepository(stack.deps, { name: 'restore', path: join(stack.reposDir, 'restore') });
  warmTree(tree.path);
  note('backing the tree up, directly and through BorgCube (not timed)…');
  const directLocation = await side.direct.init('restore');
  await side.direct.create(directLocation, 'a1', tree.path);
  const backup = await startBackup(stack.deps, { client: 'big', repository: 'restore', triggeredBy: 'bench' });
  await stack.temporal.workflow.getHandle(backup.id).result();
  const done = await getJob(stack.deps, backup.id);
  if (done.state !== 'succeeded' || !done.archiveName) throw new Error(`the backup ended ${done.state}: ${done.error}`);
  const directRepo = join(side.repoHost.home, 'repos', 'restore');
  return { stack, side, tree, directLocation, archive: done.archiveName, directRepo, borgcubeRepo: join(stack.reposDir, 'restore') };
}

/** One whole BorgCube restore, timed from the start request to the workflow's completion. */
async function borgcubeRestore(s: Setup, target: string, showLog: boolean): Promise<TimedRun & { phases: Phases }> {
  const t0 = process.hrtime.bigint();
  const job = await startRestore(s.stack.deps, { actor: 'bench', userId: null, role: 'admin' }, { archive: s.archive, client: 'big', target });
  const handle = s.stack.temporal.workflow.getHandle(job.id);
  await handle.result().catch(() => {});
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const startedAt = Date.now() - wallS * 1000;
  const done = await getJob(s.stack.deps, job.id);
  if (done.state !== 'succeeded') throw new Error(`restore job ${job.id} ended ${done.state}: ${done.error}`);
  if (showLog) {
    // Where the fixed costs are: each log line's time from the start request.
    for (const l of await logLinesAfter(s.stack.deps.db, job.id, 0, 60)) note(`  +${f2((l.time.getTime() - startedAt) / 1000)} s  ${l.message.slice(0, 150)}`);
  }
  return { wallS, clientCpuS: 0, code: 0, stderr: '', phases: await workflowPhases(handle) };
}

async function sample(s: Setup, path: Sample['path'], run: number, quietWait: number, showLog = false): Promise<Sample> {
  const target = join(s.side.client.home, `restored-${path}-${run}`);
  // No sample pays for an earlier one's writeback (the tree, or 553 MB restored and removed), nor
  // for the kernel's page-cache state after it: on this VM each restore written and removed made
  // the next one's writes cost ~3 s more system time until the page cache was dropped
  // (docs/performance.md, "the kernel's share"). Both repositories are then read back in, so
  // that both paths start from the same warm cache.
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '1\n');
  warmFolder(s.directRepo);
  warmFolder(s.borgcubeRepo);
  // …and borg's own files (Python and its modules), which both paths start on the client.
  execFileSync('borg', ['--version'], { stdio: 'ignore' });
  const busyAtStart = await quietBeforeSample(quietWait);
  // The client's account on both paths: its borg extract (BorgCube's is detached, out of any
  // tree we time), its ssh, and how long they waited for a core.
  const clientUser = userPart(s.side.client.uid, clientClass);
  const parts =
    path === 'direct'
      ? [sshdPart(listenerPid(s.side.sshd), directServerClass), clientUser]
      : [
          clientUser,
          servicePart(s.stack.worker.pid!, 'worker', 'worker children'),
          servicePart(s.stack.storage.pid!, 'service', 'service borg serve'),
          sshdPart(listenerPid(s.stack.sshd), borgcubeServerClass),
        ];
  let phases: Phases | undefined;
  const m = await measure(parts, async () => {
    if (path === 'direct') return s.side.direct.extract(s.directLocation, 'a1', target);
    const r = await borgcubeRestore(s, target, showLog);
    phases = r.phases;
    return r;
  });
  rmSync(target, { recursive: true, force: true });
  const serverCpuS = SERVER_PARTS[path].reduce((n, k) => n + (m.cpu[k] ?? 0), 0);
  const steps = phases ? `: ${Object.entries(phases.activities).map(([name, a]) => `${name} ${f2(a.ms / 1000)}`).join(', ')}, between ${f2(phases.betweenMs / 1000)}` : '';
  note(`run ${run} ${path.padEnd(8)} ${f2(m.wallS)} s${steps}`);
  return { run, path, wallS: m.wallS, serverCpuS, cpu: { ...m.cpu, ...m.detail }, busyAtStart, phases };
}

/** Reads every file below `dir` once (into the page cache; segments are up to 500 MiB each). */
function warmFolder(dir: string): void {
  execFileSync('sh', ['-c', 'find "$1" -type f -exec cat {} + > /dev/null', 'sh', dir]);
}

runBench('bench:restore', async () => {
  if (process.getuid?.() !== 0) throw new Error('bench:restore sets up users, sshd and accounts: run it as root');
  const opts = parseArgs({ runs: 3, randomMib: 200, quietWait: 60, profile: undefined as string | undefined, serviceNodeArgs: '', showLog: false }, usage);
  const info = await runInfo();
  const swept = await sweepLeftovers({ databaseUrl: loadConfig().databaseUrl });
  if (swept.length) note(`removed leftovers of earlier bench runs: ${swept.join(', ')}`);
  const profile = profileDirs(opts.profile);
  const s = await setUp(opts.randomMib, profile, opts.serviceNodeArgs.split(/\s+/).filter(Boolean));
  const samples: Sample[] = [];
  for (let run = 1; run <= opts.runs; run++) {
    const order = run % 2 ? (['direct', 'borgcube'] as const) : (['borgcube', 'direct'] as const);
    for (const path of order) samples.push(await sample(s, path, run, opts.quietWait, opts.showLog));
  }
  report(samples, s.tree, info, opts.quietWait);
  if (profile) await printServiceProfiles(s.stack, profile);
});


function report(samples: Sample[], tree: TreeInfo, info: Awaited<ReturnType<typeof runInfo>>, quietWait: number): void {
  const gb = tree.bytes / 1e9;
  const of = (path: Sample['path']) => samples.filter((x) => x.path === path);
  const med = (path: Sample['path'], f: (x: Sample) => number) => median(of(path).map(f));
  const ratio = med('borgcube', (x) => x.wallS) / med('direct', (x) => x.wallS);
  const paired = median(of('borgcube').flatMap((b) => samples.filter((a) => a.path === 'direct' && a.run === b.run).map((a) => b.wallS / a.wallS)));
  printHeader('bench:restore — a whole BorgCube restore job (the workflow end to end) vs borg extract directly over SSH', info);
  print(`  tree: ${mb(tree.bytes)} in ${tree.files} files; repokey, lz4; each sample waited up to ${quietWait} s for an idle machine, after sync, a dropped page cache and both repositories read in`);
  print('  BorgCube: start request → workflow completed; direct: borg extract only. Server CPU: direct sshd + borg serve; BorgCube sshd + proxy + repository service (+ its borg serve) + worker');
  print();
  const cols = ['client', 'client borg', 'client borg run-queue wait', 'client ssh', 'client other', 'sshd', 'borg serve', 'proxy', 'authorized-keys', 'service', 'service borg serve', 'worker', 'worker children'];
  table(
    ['run', 'path', 'wall', 'server CPU-s', 'server CPU-s/GB', ...cols, 'busy at start'],
    samples.map((x) => [String(x.run), x.path, f2(x.wallS), f2(x.serverCpuS), f2(x.serverCpuS / gb), ...cols.map((c) => (x.cpu[c] === undefined ? '' : f2(x.cpu[c]))), x.busyAtStart === undefined ? '' : f2(x.busyAtStart)]),
  );
  print();
  table(
    ['n', 'direct (a)', 'BorgCube (b)', 'b/a', 'paired b/a', 'target', 'result', 'stretch', 'server CPU-s/GB a', 'server CPU-s/GB b'],
    [[String(of('borgcube').length), f2(med('direct', (x) => x.wallS)), f2(med('borgcube', (x) => x.wallS)), f3(ratio), f3(paired), `≤ ${TARGET.ratio}`, verdict(ratio, TARGET.ratio), verdict(ratio, TARGET.stretch), f2(med('direct', (x) => x.serverCpuS) / gb), f2(med('borgcube', (x) => x.serverCpuS) / gb)]],
  );
  print();
  print(JSON.stringify({ bench: 'restore', at: info.startedAt, commit: info.commit, dirty: info.dirty, tree: { bytes: tree.bytes, files: tree.files }, directS: med('direct', (x) => x.wallS), borgcubeS: med('borgcube', (x) => x.wallS), ratio, pairedRatio: paired, target: TARGET, pass: ratio <= TARGET.ratio }));
}
