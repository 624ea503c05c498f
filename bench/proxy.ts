// `npm run bench:proxy` (issue 3): what the proxy costs a backup. The same ≥ 500 MB tree is
// backed up by stock `borg create` (a) directly to `borg serve` over SSH and (b) through BorgCube
// (proxy + repository service), repokey, lz4, several times each: first backups into fresh
// repositories and unchanged second backups. Only `borg create` is timed, in both paths: `borg
// init` (a) and BorgCube's repository creation and job preparation (b) happen before the clock
// starts. (b) runs the backup workflow's activity code without Temporal (bench/lib/driver.ts).
//
// Prints every sample, the medians, the ratios b/a against the targets (≤ 1.15 first, ≤ 1.10
// second), the CPU the proxy and the repository service used per GB, and one JSON line last.
//
// This machine is shared: before each timed backup the bench waits (up to --quiet-wait seconds)
// for a moment in which the machine is idle, marks samples that started busy, and reports, next
// to the ratio of the medians, the median of the per-run paired ratios (a and b of one run are
// measured a few seconds apart, so they share most of the background load).
//
// Options: --runs N (fresh repositories per path, default 3), --seconds N (unchanged backups
// after each first one, default 2), --random-mib N (incompressible part of the tree, default
// 200), --quiet-wait S (default 60; 0: do not wait), --profile DIR (node --cpu-prof for the
// repository service and every proxy process; profiles and a summary in DIR — timings are then
// not comparable).
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireAccount } from '../infra/accounts.js';
import { loadConfig } from '../infra/config.js';
import type { Client } from '../db/schema.js';
import { addClient } from '../services/clients.js';
import { addRepository } from '../services/repositories.js';
import { sweepLeftovers } from '../test/harness/leftovers.js';
import { parseArgs } from './lib/args.js';
import { runBench } from './lib/run-bench.js';
import { borgcubeServerClass, directServerClass, listenerPid, setupClientSide, type ClientSide } from './lib/client-side.js';
import { printProfileSummary, profilesIn } from './lib/cpuprofile.js';
import { JobDriver } from './lib/driver.js';
import { measure, servicePart, sshdPart, quietBeforeSample, type Measured } from './lib/measure.js';
import { f2, f3, mb, median, note, print, printHeader, runInfo, table, verdict, type RunInfo } from './lib/report.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { warmTree, writeBigTree, writeSmallTree, type TreeInfo } from './lib/tree.js';

const usage = 'usage: npm run bench:proxy [-- --runs 3 --seconds 2 --random-mib 200 --quiet-wait 60 --profile DIR]';
const TARGET = { first: 1.15, second: 1.1 };

interface Sample extends Measured {
  run: number;
  /** 0: the first backup into the repository, 1…: unchanged backups. */
  k: number;
  path: 'direct' | 'proxy';
  kind: 'first' | 'second';
  uploadedBytes?: number;
  /** Busy CPUs (of other processes) when the sample started, if the machine did not get quiet. */
  busyAtStart?: number;
}

type Opts = ReturnType<typeof parseOptions>;
type Profile = { service: string; proxy: string };

function parseOptions() {
  return parseArgs({ runs: 3, seconds: 2, randomMib: 200, quietWait: 60, profile: undefined as string | undefined }, usage);
}

/** Profile folders writable by the service and the proxy accounts. */
function profileDirs(dir: string | undefined): Profile | undefined {
  if (!dir) return undefined;
  const profile = { service: join(dir, 'service'), proxy: join(dir, 'proxy') };
  mkdirSync(profile.service, { recursive: true, mode: 0o755 });
  mkdirSync(profile.proxy, { recursive: true, mode: 0o755 });
  const cfg = loadConfig();
  const st = requireAccount(cfg.accounts.storage);
  const px = requireAccount(cfg.accounts.proxy);
  chownSync(profile.service, st.uid, st.gid);
  chownSync(profile.proxy, px.uid, px.gid);
  return profile;
}

interface Setup {
  opts: Opts;
  stack: BenchStack;
  side: ClientSide;
  driver: JobDriver;
  tree: TreeInfo;
  small: TreeInfo;
  bcClient: Client;
  warmClient: Client;
}

/** One BorgCube backup through the job driver; only borg create is measured. */
async function runProxyJob(su: Setup, clientRow: Client, repositoryId: string, wait = false): Promise<Sample & { uploadedBytes: number }> {
  const { stack, side, driver } = su;
  const job = await driver.prepare(clientRow, repositoryId, side.client);
  let m: Measured;
  let busyAtStart: number | undefined;
  try {
    if (wait) busyAtStart = await quietBeforeSample(su.opts.quietWait);
    m = await measure([sshdPart(listenerPid(stack.sshd), borgcubeServerClass), servicePart(stack.storage.pid!, 'service', 'service borg serve')], () => driver.run(job, side.client));
  } catch (err) {
    await driver.finish(job, false).catch(() => {});
    throw err;
  }
  const stats = await driver.finish(job, true);
  return { ...m, run: 0, k: 0, path: 'proxy', kind: 'first', uploadedBytes: Number(stats?.uploadedBytes ?? 0), busyAtStart };
}

/** Warm-up (not counted): borg's and node's code into the page cache, the tree too. */
async function warmUp(su: Setup): Promise<void> {
  note('warming up…');
  warmTree(su.tree.path);
  const loc = await su.side.direct.init('warmup');
  await su.side.direct.create(loc, 'w1', su.small.path);
  su.side.direct.remove('warmup');
  const repo = await addRepository(su.stack.deps, { name: 'warmup', path: join(su.stack.reposDir, 'warmup') });
  await runProxyJob(su, su.warmClient, repo.id);
}

/** Fresh repositories per path and run, a first backup and unchanged ones each; paths alternate order. */
async function collectSamples(su: Setup): Promise<Sample[]> {
  const { opts, side, stack } = su;
  const samples: Sample[] = [];
  const show = (s: Sample) => note(`run ${s.run} ${s.path.padEnd(6)} ${s.kind.padEnd(6)} ${f2(s.wallS)} s`);
  for (let run = 1; run <= opts.runs; run++) {
    const order: Array<'direct' | 'proxy'> = run % 2 ? ['direct', 'proxy'] : ['proxy', 'direct'];
    for (const path of order) {
      const name = `r${run}`;
      if (path === 'direct') {
        const loc = await side.direct.init(name);
        for (let k = 0; k <= opts.seconds; k++) {
          const busyAtStart = await quietBeforeSample(opts.quietWait);
          const m = await measure([sshdPart(listenerPid(side.sshd), directServerClass)], () => side.direct.create(loc, `a${k}`, su.tree.path));
          const s: Sample = { ...m, run, k, path, kind: k === 0 ? 'first' : 'second', busyAtStart };
          samples.push(s);
          show(s);
        }
        side.direct.remove(name);
      } else {
        const repo = await addRepository(stack.deps, { name, path: join(stack.reposDir, name) });
        for (let k = 0; k <= opts.seconds; k++) {
          const s: Sample = { ...(await runProxyJob(su, su.bcClient, repo.id, true)), run, k, kind: k === 0 ? 'first' : 'second' };
          samples.push(s);
          show(s);
        }
      }
    }
  }
  return samples;
}

async function setUp(opts: Opts, profile: Profile | undefined): Promise<Setup> {
  note('starting BorgCube (database, data dir, sshd, repository service)…');
  const stack = await startBenchStack({
    mode: 'service-host',
    storageNodeArgs: profile ? ['--cpu-prof', '--cpu-prof-dir', profile.service] : [],
    proxyNodeArgs: profile ? `--cpu-prof --cpu-prof-dir ${profile.proxy}` : undefined,
  });
  const side = await setupClientSide(stack.serverPublicKey);
  note('writing the tree…');
  const tree = await writeBigTree(side.client, opts.randomMib);
  const small = await writeSmallTree(side.client);
  note(`tree: ${mb(tree.bytes)} in ${tree.files} files`);
  const bcClient = await addClient(stack.deps, { name: 'bench', host: '127.0.0.1', port: side.sshd.port, user: side.client.name, paths: [tree.path] });
  const warmClient = await addClient(stack.deps, { name: 'warmup', host: '127.0.0.1', port: side.sshd.port, user: side.client.name, paths: [small.path] });
  return { opts, stack, side, driver: new JobDriver(stack), tree, small, bcClient, warmClient };
}

runBench('bench:proxy', async () => {
  if (process.getuid?.() !== 0) throw new Error('bench:proxy sets up users, sshd and accounts: run it as root');
  const opts = parseOptions();
  const info = await runInfo();
  const swept = await sweepLeftovers({ databaseUrl: loadConfig().databaseUrl });
  if (swept.length) note(`removed leftovers of earlier bench runs: ${swept.join(', ')}`);
  const profile = profileDirs(opts.profile);
  const su = await setUp(opts, profile);
  await warmUp(su);
  const samples = await collectSamples(su);
  await report({ info, opts, profile, tree: su.tree, samples, stack: su.stack });
});

/** The figures: every sample, medians and ratios against the targets, CPU per GB, profiles, one JSON line. */
async function report(r: { info: RunInfo; opts: Opts; profile: Profile | undefined; tree: TreeInfo; samples: Sample[]; stack: BenchStack }): Promise<void> {
  const { info, opts, profile, tree, samples, stack } = r;
  const gb = tree.bytes / 1e9;
  printHeader('bench:proxy — stock borg create, direct to borg serve over SSH (a) vs through the BorgCube proxy (b)', info);
  print(`  tree: ${mb(tree.bytes)}, ${tree.files} files (Python stdlib + dist-packages, node_modules, ${opts.randomMib} MiB pseudo-random); repokey, lz4`);
  print('  timed: borg create only, as the client user (b: with the environment of runScript()); borg init and BorgCube job preparation are excluded');
  print(`  ${opts.runs} fresh repositories per path, each: 1 first backup + ${opts.seconds} unchanged backups; paths alternate order per run${profile ? '; PROFILING ON: timings not comparable' : ''}`);
  print(`  each sample waited up to ${opts.quietWait} s for an idle machine; "busy at start" marks those that did not get one (CPUs used by others then)`);
  print();
  print('All samples (seconds; CPU seconds by process; "other" = CPU of unrelated processes on the machine during the run)');
  const groups = ['client', 'sshd', 'borg serve', 'proxy', 'authorized-keys', 'service', 'service borg serve'];
  table(
    ['run', 'path', 'backup', 'wall', ...groups.map((g) => (g === 'client' ? 'client borg+ssh' : g)), 'machine busy', 'other', 'busy at start'],
    samples.map((s) => [String(s.run), s.path, s.kind, f2(s.wallS), ...groups.map((g) => (s.cpu[g] === undefined ? '' : f2(s.cpu[g]))), f2(s.machineBusyS), f2(s.otherCpuS), s.busyAtStart === undefined ? '' : f2(s.busyAtStart)]),
  );
  const pick = (path: Sample['path'], kind: Sample['kind']) => samples.filter((s) => s.path === path && s.kind === kind);
  const med = (path: Sample['path'], kind: Sample['kind']) => median(pick(path, kind).map((s) => s.wallS));
  const ratio = { first: med('proxy', 'first') / med('direct', 'first'), second: med('proxy', 'second') / med('direct', 'second') };
  // b/a of the two samples of one run with the same position (first, 1st unchanged, …).
  const paired = (kind: Sample['kind']) =>
    median(
      pick('proxy', kind).flatMap((b) => {
        const a = samples.find((s) => s.path === 'direct' && s.run === b.run && s.k === b.k);
        return a ? [b.wallS / a.wallS] : [];
      }),
    );
  print();
  print('Medians (wall seconds of borg create); the target applies to b/a of the medians');
  table(
    ['backup', 'n', '(a) direct', '(b) proxy', 'b/a', 'target', 'result', 'paired b/a (median)'],
    (['first', 'second'] as const).map((k) => [k, String(pick('proxy', k).length), f2(med('direct', k)), f2(med('proxy', k)), f3(ratio[k]), `≤ ${TARGET[k].toFixed(2)}`, verdict(ratio[k], TARGET[k]), f3(paired(k))]),
  );
  const perGb = (kind: Sample['kind'], g: string) => median(pick('proxy', kind).map((s) => (s.cpu[g] ?? 0) / gb));
  const perGbDirect = (kind: Sample['kind'], g: string) => median(pick('direct', kind).map((s) => (s.cpu[g] ?? 0) / gb));
  print();
  print(`CPU seconds per GB of tree (${f3(gb)} GB), medians; first backups upload ~${mb(median(pick('proxy', 'first').map((s) => s.uploadedBytes ?? 0)))} through the proxy`);
  table(
    ['backup', 'proxy', 'service', 'proxy+service', 'service borg serve', 'BorgCube sshd', 'client borg+ssh (b)', '| direct: borg serve', 'sshd', 'client (a)'],
    (['first', 'second'] as const).map((k) => [
      k,
      f2(perGb(k, 'proxy')),
      f2(perGb(k, 'service')),
      f2(median(pick('proxy', k).map((s) => ((s.cpu.proxy ?? 0) + (s.cpu.service ?? 0)) / gb))),
      f2(perGb(k, 'service borg serve')),
      f2(perGb(k, 'sshd') + perGb(k, 'authorized-keys')),
      f2(perGb(k, 'client')),
      f2(perGbDirect(k, 'borg serve')),
      f2(perGbDirect(k, 'sshd')),
      f2(perGbDirect(k, 'client')),
    ]),
  );

  if (profile) await printProfiles(profile, stack, opts.profile!);

  const wall = (path: Sample['path'], kind: Sample['kind']) => pick(path, kind).map((s) => Number(s.wallS.toFixed(2)));
  const summary = {
    bench: 'proxy',
    at: info.startedAt,
    commit: info.commit,
    dirty: info.dirty,
    tree: { bytes: tree.bytes, files: tree.files },
    runs: opts.runs,
    profiling: Boolean(profile),
    directS: { first: Number(med('direct', 'first').toFixed(2)), second: Number(med('direct', 'second').toFixed(2)) },
    proxyS: { first: Number(med('proxy', 'first').toFixed(2)), second: Number(med('proxy', 'second').toFixed(2)) },
    ratio: { first: Number(ratio.first.toFixed(3)), second: Number(ratio.second.toFixed(3)) },
    pairedRatio: { first: Number(paired('first').toFixed(3)), second: Number(paired('second').toFixed(3)) },
    busySamples: samples.filter((s) => s.busyAtStart !== undefined).length,
    target: TARGET,
    pass: { first: ratio.first <= TARGET.first, second: ratio.second <= TARGET.second },
    cpuSecondsPerGB: { proxy: Number(perGb('first', 'proxy').toFixed(2)), service: Number(perGb('first', 'service').toFixed(2)) },
    samples: { direct: { first: wall('direct', 'first'), second: wall('direct', 'second') }, proxy: { first: wall('proxy', 'first'), second: wall('proxy', 'second') } },
  };
  print();
  print(JSON.stringify(summary));
}

async function printProfiles(profile: Profile, stack: BenchStack, dir: string): Promise<void> {
  print();
  printProfileSummary('Proxy processes (node --cpu-prof)', profilesIn(profile.proxy));
  print();
  note('stopping the repository service to collect its profiles…');
  await stack.storage.stop();
  printProfileSummary('Repository service, main thread', profilesIn(profile.service, (n) => /\.0\.\d+\.cpuprofile$/.test(n)));
  print();
  printProfileSummary('Repository service, crypto worker threads', profilesIn(profile.service, (n) => !/\.0\.\d+\.cpuprofile$/.test(n)));
  print(`profiles: ${dir}`);
}
