// `npm run bench:fleet -- --real` (issue 23 point 5): a storage host's capacity. Eight real
// clients' first backups at once into one storage host through BorgCube — eight whole backup
// workflows, each into a repository of its own, on one repository service, one BorgCube sshd and
// one worker — against eight direct `borg create` runs at once into eight repositories over SSH
// (one plain sshd, `borg serve --restrict-to-path` per client key, as a repository host sets it
// up; bench/lib/direct.ts), in the same run. Each client has its own tree of distinct data (seeded
// pseudo-random blobs plus compressible text, nothing shared: deduplication between clients
// cannot make it easy). Repositories are fresh for every sample (first backups; init excluded).
//
// Per run, the two paths go one after the other, the order alternating between runs (paired). It
// prints the wall time of each batch (start → the last backup done), their ratio (target ≤ 1.3 on
// a 2-core machine), and the server side's CPU seconds per GB backed up: direct = the sshd
// sessions and their `borg serve`s; BorgCube = its sshd and the proxies (forced commands), the
// repository service with its `borg serve`s, and the worker. The clients' borg and ssh are the
// same in both paths and not the server's.
//
// Options: --clients N (default 8), --mib N per client (default 128: ≥ 100 MB each), --runs N
// (default 2), --quiet-wait S (default 60), --profile DIR (node --cpu-prof for the repository
// service and the worker; timings are then not comparable).
import { chownSync, closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { requireAccount } from '../infra/accounts.js';
import { loadConfig } from '../infra/config.js';
import { addClient } from '../services/clients.js';
import { getJob, startBackup } from '../services/jobs.js';
import { addRepository } from '../services/repositories.js';
import { pseudoRandomBytes } from '../test/harness/client-host.js';
import { sweepLeftovers } from '../test/harness/leftovers.js';
import { startClientSshd, type ClientSshd } from '../test/harness/sshd.js';
import { parseArgs } from './lib/args.js';
import { borgcubeServerClass, directServerClass, listenerPid } from './lib/client-side.js';
import { printServiceProfiles } from './lib/cpuprofile.js';
import { setupDirect, type DirectBorg } from './lib/direct.js';
import { measure, quietBeforeSample, servicePart, sshdPart, type TimedRun } from './lib/measure.js';
import { f2, f3, mb, median, note, print, printHeader, runInfo, table, verdict, type RunInfo } from './lib/report.js';
import { runBench } from './lib/run-bench.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { measureTree, warmTree, type TreeInfo } from './lib/tree.js';
import { createBenchUser, type BenchUser } from './lib/users.js';

const usage = 'usage: npm run bench:fleet -- --real [--clients 8 --mib 128 --runs 2 --quiet-wait 60 --profile DIR]';
const TARGET = { ratio: 1.3 };

type Path = 'direct' | 'borgcube';
interface Sample {
  run: number;
  path: Path;
  wallS: number;
  /** Each backup's own time (start → its end), seconds. */
  eachS: number[];
  serverCpuS: number;
  cpu: Record<string, number>;
  machineCpuS: number;
  load1: number;
  busyAtStart?: number;
}

interface Fleet {
  stack: BenchStack;
  sshd: ClientSshd;
  clients: Array<{ name: string; user: BenchUser; tree: TreeInfo; direct: DirectBorg }>;
  bytes: number;
}

/** The server side of each path (see the header). */
const SERVER_PARTS: Record<Path, string[]> = {
  direct: ['sshd', 'borg serve'],
  borgcube: ['sshd', 'proxy', 'authorized-keys', 'service', 'service borg serve', 'worker', 'worker children'],
};

/**
 * One client's tree: three quarters seeded pseudo-random blobs (8 MiB files, incompressible), one
 * quarter text in 64 KiB files (lz4 compresses it), all of it unique to the client.
 */
function writeClientTree(user: BenchUser, index: number, mib: number): TreeInfo {
  const base = join(user.home, 'data');
  user.mkdir(base, 0o755);
  const own = (p: string) => chownSync(p, user.uid, user.gid);
  const randomBytes = Math.round(mib * 0.75 * 1024 * 1024);
  const blob = 8 * 1024 * 1024;
  mkdirSync(join(base, 'blobs'), { mode: 0o755 });
  own(join(base, 'blobs'));
  for (let i = 0, off = 0; off < randomBytes; i++, off += blob) {
    const p = join(base, 'blobs', `blob-${String(i).padStart(3, '0')}.bin`);
    const fd = openSync(p, 'w', 0o644);
    try {
      const size = Math.min(blob, randomBytes - off);
      for (let o = 0; o < size; o += 4 * 1024 * 1024) writeSync(fd, pseudoRandomBytes(Math.min(4 * 1024 * 1024, size - o), `fleet-${index}`, off + o));
    } finally {
      closeSync(fd);
    }
    own(p);
  }
  const textBytes = Math.round(mib * 0.25 * 1024 * 1024);
  const fileBytes = 64 * 1024;
  for (let n = 0; n * fileBytes < textBytes; n++) {
    const dir = join(base, 'text', `d${Math.floor(n / 50)}`);
    if (n % 50 === 0) {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      own(join(base, 'text'));
      own(dir);
    }
    let text = '';
    for (let l = 0; text.length < fileBytes; l++) text += `client ${index} file ${n} line ${l}: ${pseudoRandomBytes(12, `fleet-text-${index}`, (n * 4096 + l) * 12).toString('hex')} lorem ipsum dolor sit amet\n`;
    const p = join(dir, `f${n}.txt`);
    writeFileSync(p, text.slice(0, fileBytes), { mode: 0o644 });
    own(p);
  }
  return measureTree(base);
}

function profileDirs(profile: string | undefined): { service: string; worker: string } | undefined {
  if (!profile) return undefined;
  const dirs = { service: join(profile, 'service'), worker: join(profile, 'worker') };
  mkdirSync(dirs.service, { recursive: true, mode: 0o755 });
  mkdirSync(dirs.worker, { recursive: true, mode: 0o755 });
  const st = requireAccount(loadConfig().accounts.storage);
  chownSync(dirs.service, st.uid, st.gid);
  return dirs;
}

async function setUp(o: { clients: number; mib: number }, profile: ReturnType<typeof profileDirs>): Promise<Fleet> {
  note('starting BorgCube (Temporal dev server, database, data dir, sshd, repository service, worker)…');
  const stack = await startBenchStack({
    mode: 'full',
    storageNodeArgs: profile ? ['--cpu-prof', '--cpu-prof-dir', profile.service] : [],
    workerNodeArgs: profile ? ['--cpu-prof', '--cpu-prof-dir', profile.worker] : [],
  });
  // One sshd plays the clients' machines (BorgCube logs in there) and the direct path's
  // repository host (the clients' borg reaches `borg serve` there), as in bench:backup.
  const sshd = await startClientSshd({ logLevel: 'INFO' });
  const repoHost = await createBenchUser();
  const clients: Fleet['clients'] = [];
  note(`writing ${o.clients} trees of ${o.mib} MiB each…`);
  for (let i = 0; i < o.clients; i++) {
    const user = await createBenchUser();
    user.authorize(stack.serverPublicKey);
    const tree = writeClientTree(user, i, o.mib);
    const name = `c${i}`;
    await addClient(stack.deps, { name, host: '127.0.0.1', port: sshd.port, user: user.name, paths: [tree.path] });
    clients.push({ name, user, tree, direct: setupDirect(user, repoHost, sshd) });
  }
  for (const c of clients) warmTree(c.tree.path);
  const bytes = clients.reduce((n, c) => n + c.tree.bytes, 0);
  note(`${o.clients} clients, ${mb(bytes)} in ${clients.reduce((n, c) => n + c.tree.files, 0)} files`);
  return { stack, sshd, clients, bytes };
}

/** Runs `fn` for every client at once; the batch's wall time ends with the last. */
async function batch(fleet: Fleet, fn: (c: Fleet['clients'][number]) => Promise<void>): Promise<{ run: TimedRun; eachS: number[] }> {
  const t0 = process.hrtime.bigint();
  const eachS = await Promise.all(
    fleet.clients.map(async (c) => {
      await fn(c);
      return Number(process.hrtime.bigint() - t0) / 1e9;
    }),
  );
  return { run: { wallS: Number(process.hrtime.bigint() - t0) / 1e9, clientCpuS: 0, code: 0, stderr: '' }, eachS };
}

async function directSample(fleet: Fleet, run: number, quietWait: number): Promise<Sample> {
  const locations = new Map<string, string>();
  for (const c of fleet.clients) locations.set(c.name, await c.direct.init(`${c.name}-r${run}`));
  const busyAtStart = await quietBeforeSample(quietWait);
  let eachS: number[] = [];
  const m = await measure([sshdPart(listenerPid(fleet.sshd), directServerClass)], async () => {
    const r = await batch(fleet, async (c) => {
      const t = await c.direct.create(locations.get(c.name)!, 'first', c.tree.path);
      if (t.code !== 0 && t.code !== 1) throw new Error(`direct borg create of ${c.name} exited with ${t.code}`);
    });
    eachS = r.eachS;
    return r.run;
  });
  for (const c of fleet.clients) c.direct.remove(`${c.name}-r${run}`);
  return finish(run, 'direct', m, eachS, busyAtStart);
}

async function borgcubeSample(fleet: Fleet, run: number, quietWait: number): Promise<Sample> {
  const { stack } = fleet;
  for (const c of fleet.clients) await addRepository(stack.deps, { name: `${c.name}-r${run}`, path: join(stack.reposDir, `${c.name}-r${run}`) });
  const busyAtStart = await quietBeforeSample(quietWait);
  const parts = [
    servicePart(stack.worker.pid!, 'worker', 'worker children'),
    servicePart(stack.storage.pid!, 'service', 'service borg serve'),
    sshdPart(listenerPid(stack.sshd), borgcubeServerClass),
    // The clients' machines: BorgCube's sessions into them (pushes, the detached run) — not the server's.
    sshdPart(listenerPid(fleet.sshd), () => undefined, 'client sshd'),
  ];
  let eachS: number[] = [];
  const m = await measure(parts, async () => {
    const r = await batch(fleet, async (c) => {
      const job = await startBackup(stack.deps, { client: c.name, repository: `${c.name}-r${run}`, triggeredBy: 'bench' });
      await stack.temporal.workflow.getHandle(job.id).result().catch(() => {});
      const done = await getJob(stack.deps, job.id);
      if (done.state !== 'succeeded') throw new Error(`job ${job.id} of ${c.name} ended ${done.state}: ${done.error}`);
    });
    eachS = r.eachS;
    return r.run;
  });
  return finish(run, 'borgcube', m, eachS, busyAtStart);
}

function finish(run: number, path: Path, m: Awaited<ReturnType<typeof measure>>, eachS: number[], busyAtStart: number | undefined): Sample {
  const serverCpuS = SERVER_PARTS[path].reduce((n, k) => n + (m.cpu[k] ?? 0), 0);
  note(`run ${run} ${path.padEnd(8)} ${f2(m.wallS)} s (each: ${eachS.map(f2).join(' ')}), server CPU ${f2(serverCpuS)} s, machine ${f2(m.machineBusyS)} CPU-s`);
  return { run, path, wallS: m.wallS, eachS, serverCpuS, cpu: m.cpu, machineCpuS: m.machineBusyS, load1: m.load1, busyAtStart };
}

export function fleetReal(): void {
  runBench('bench:fleet --real', async () => {
    if (process.getuid?.() !== 0) throw new Error('bench:fleet --real sets up users, sshd and accounts: run it as root');
    const opts = parseArgs({ clients: 8, mib: 128, runs: 2, quietWait: 60, profile: undefined as string | undefined }, usage);
    if (opts.clients < 1 || opts.mib < 1 || opts.runs < 1) throw new Error(`--clients, --mib and --runs must be at least 1\n${usage}`);
    const info = await runInfo();
    const swept = await sweepLeftovers({ databaseUrl: loadConfig().databaseUrl });
    if (swept.length) note(`removed leftovers of earlier bench runs: ${swept.join(', ')}`);
    const profile = profileDirs(opts.profile);
    const fleet = await setUp(opts, profile);
    const samples: Sample[] = [];
    for (let run = 1; run <= opts.runs; run++) {
      const order: Path[] = run % 2 ? ['direct', 'borgcube'] : ['borgcube', 'direct'];
      for (const path of order) samples.push(path === 'direct' ? await directSample(fleet, run, opts.quietWait) : await borgcubeSample(fleet, run, opts.quietWait));
    }
    report(samples, fleet, info, opts);
    if (profile) await printServiceProfiles(fleet.stack, profile);
  });
}


function report(samples: Sample[], fleet: Fleet, info: RunInfo, opts: { clients: number; mib: number; quietWait: number }): void {
  const gb = fleet.bytes / 1e9;
  const of = (p: Path) => samples.filter((x) => x.path === p);
  const med = (p: Path, f: (x: Sample) => number) => median(of(p).map(f));
  const ratio = med('borgcube', (x) => x.wallS) / med('direct', (x) => x.wallS);
  const paired = median(of('borgcube').flatMap((b) => of('direct').filter((a) => a.run === b.run).map((a) => b.wallS / a.wallS)));
  const cpuPerGb = (p: Path) => med(p, (x) => x.serverCpuS) / gb;
  printHeader(`bench:fleet --real — ${opts.clients} clients' first backups at once into one storage host: BorgCube vs borg create directly over SSH`, info);
  print(`  ${opts.clients} clients × ${mb(fleet.bytes / opts.clients)} (distinct data: 3/4 seeded random blobs, 1/4 text), ${mb(fleet.bytes)} in all; repokey, lz4; one repository per client and path, fresh per run`);
  print('  wall = all backups started at once → the last one done. BorgCube: whole backup workflows (reserve … cleanup); direct: borg create only');
  print('  server CPU: direct = sshd sessions + borg serve; BorgCube = sshd + proxies + repository service (+ its borg serve) + worker');
  print(`  paths alternate order per run; each sample waited up to ${opts.quietWait} s for an idle machine`);
  print();
  const cols = ['sshd', 'borg serve', 'proxy', 'authorized-keys', 'service', 'service borg serve', 'worker', 'worker children', 'client sshd'];
  table(
    ['run', 'path', 'wall', 'slowest/fastest', 'server CPU-s', 'server CPU-s/GB', ...cols, 'machine CPU-s', 'load1', 'busy at start'],
    samples.map((x) => [String(x.run), x.path, f2(x.wallS), `${f2(Math.max(...x.eachS))}/${f2(Math.min(...x.eachS))}`, f2(x.serverCpuS), f2(x.serverCpuS / gb), ...cols.map((c) => (x.cpu[c] === undefined ? '' : f2(x.cpu[c]))), f2(x.machineCpuS), f2(x.load1), x.busyAtStart === undefined ? '' : f2(x.busyAtStart)]),
  );
  print();
  table(
    ['n', 'direct (a)', 'BorgCube (b)', 'b/a', 'paired b/a', 'target', 'result', 'server CPU-s/GB a', 'server CPU-s/GB b'],
    [[String(of('borgcube').length), f2(med('direct', (x) => x.wallS)), f2(med('borgcube', (x) => x.wallS)), f3(ratio), f3(paired), `≤ ${TARGET.ratio}`, verdict(ratio, TARGET.ratio), f2(cpuPerGb('direct')), f2(cpuPerGb('borgcube'))]],
  );
  print();
  print(JSON.stringify({ bench: 'fleet-real', at: info.startedAt, commit: info.commit, dirty: info.dirty, clients: opts.clients, bytes: fleet.bytes, directS: med('direct', (x) => x.wallS), borgcubeS: med('borgcube', (x) => x.wallS), ratio, pairedRatio: paired, serverCpuSPerGb: { direct: cpuPerGb('direct'), borgcube: cpuPerGb('borgcube') }, target: TARGET, pass: ratio <= TARGET.ratio }));
}
