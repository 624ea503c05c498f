// `npm run bench:attacks` (issue 21 points 4 and 5): the slow floods, with figures. A hostile
// client (test/fixtures/evil-borg.py as its borg, a job prepared like any other) attacks a
// repository while an honest client backs a tree up into the same repository; printed per attack:
// what the attacker achieved, how it was refused, the repository service's RSS (sampled every
// 100 ms: before, peak, and per put for the flood) and the honest backup's time against alone.
// Then the existence-oracle timing: round trips of puts of new ids and of ids the repository
// already has, medians over N.
//
// Runs the repository service without Temporal (bench/lib/service-host.ts), like bench:proxy.
// Options: --puts N (tiny puts of the flood, default 10,000,000; the quota may stop it first),
// --put-quota N (the attacker's putsPerJob; default: the default limit), --bombs N (64 MiB
// decompression bombs per job, default 20), --bomb-jobs N (default 3), --random-mib N (the
// honest tree's incompressible part, default 50), --timing N (put pairs, default 2000),
// --runs N (honest backups alone, default 2), --connections N (connections of one credential
// that never send a byte, default 1000), --cleanup-wait S (after the flood, wait at most S seconds
// for its job's cleanup — the sweep of up to a quota's objects — before going on; 0, the
// default: to its end), --flood-alone (the flood without the honest backup beside it, so that the
// service's RSS is the flood's own), --service-node-args ARGS (node options for the repository
// service, e.g. a heap limit: what of its RSS is garbage V8 has not collected yet), --attacks LIST (which to run, comma-separated, of
// flood,connections,bombs,commits,timing; default all).
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JOB_LIMIT_DEFAULTS, type Client } from '../db/schema.js';
import { loadConfig } from '../infra/config.js';
import { addClient } from '../services/clients.js';
import { addRepository } from '../services/repositories.js';
import { listViolations } from '../db/queries/jobs.js';
import { sweepLeftovers } from '../test/harness/leftovers.js';
import { projectRoot } from '../test/harness/paths.js';
import { parseArgs } from './lib/args.js';
import { setupClientSide, type ClientSide } from './lib/client-side.js';
import { sessionEnv } from './lib/direct.js';
import { JobDriver } from './lib/driver.js';
import { runAsUser } from './lib/measure.js';
import { f1, f2, mb, median, note, print, table } from './lib/report.js';
import { runBench } from './lib/run-bench.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { writeBigTree, type TreeInfo } from './lib/tree.js';
import { createBenchUser, type BenchUser } from './lib/users.js';

const usage = 'usage: npm run bench:attacks [-- --puts 10000000 --put-quota N --bombs 20 --bomb-jobs 3 --random-mib 50 --timing 2000 --runs 2 --connections 1000 --cleanup-wait S --flood-alone --service-node-args ARGS --attacks flood,connections,bombs,commits,timing]';

/**
 * The bound the README states for a put flood's rise of the service's RSS: the put table per put,
 * plus the connection's backlog (128 MiB), V8's young generation (3 × the 64 MiB semi-space) and
 * the old space V8 fills before its first full collection (256 MiB; bin/borgcube-storage).
 */
const FLOOD_RSS_BOUND = { perPut: 85, fixed: 576 * 2 ** 20 };

/** The flood's rise of the service's RSS against FLOOD_RSS_BOUND, printed and returned. */
function checkFloodBound(rss: { before: number; peak: number }, quota: number) {
  const rise = rss.peak - rss.before;
  const bound = FLOOD_RSS_BOUND.perPut * quota + FLOOD_RSS_BOUND.fixed;
  note(`flood: service RSS rose ${mb(rise)}; the README's bound (${FLOOD_RSS_BOUND.perPut} B × quota + ${FLOOD_RSS_BOUND.fixed / 2 ** 20} MiB) is ${mb(bound)}: ${rise <= bound ? 'within' : 'OVER'}`);
  return { rise, bound, within: rise <= bound };
}

interface Setup {
  stack: BenchStack;
  side: ClientSide;
  attacker: BenchUser;
  driver: JobDriver;
  tree: TreeInfo;
  honest: Client;
  evil: Client;
  repos: number;
}

/**
 * Samples a process's RSS every 100 ms until stopped; `died` says the process was gone at some
 * sample (the service crashing under an attack is a finding, not a bench error).
 */
function rssSampler(pid: number) {
  let died = false;
  const rss = () => {
    try {
      return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      died = true;
      return 0;
    }
  };
  const before = rss();
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rss())), 100);
  return {
    before,
    peek: () => ({ before, peak: Math.max(peak, rss()), died }),
    stop: () => {
      clearInterval(timer);
      return { before, peak: Math.max(peak, rss()), died };
    },
  };
}

async function freshRepository(su: Setup): Promise<string> {
  const name = `attacks-${++su.repos}`;
  return (await addRepository(su.stack.deps, { name, path: join(su.stack.reposDir, name) })).id;
}

/** One honest first backup of the tree into `repositoryId`: borg create's wall time. */
async function honestBackup(su: Setup, repositoryId: string): Promise<number> {
  const job = await su.driver.prepare(su.honest, repositoryId, su.side.client);
  try {
    const r = await su.driver.run(job, su.side.client);
    await su.driver.finish(job, true);
    return r.wallS;
  } catch (err) {
    await su.driver.finish(job, false).catch(() => {});
    throw err;
  }
}

interface AttackOutcome {
  wallS: number;
  result: { outcome?: string; error?: string; puts_sent?: number; opening_seconds?: number; closed_seconds?: number[]; still_open?: number; steps?: Array<{ what: string; [k: string]: unknown }>; timing?: { new_us: number[]; dup_us: number[] } } | undefined;
  violations: string[];
  /**
   * The job's end (revoke, cleanup, the sweep of its objects), resolving to its seconds: with
   * `deferCleanup` it runs on after the attack's outcome is known, so `during` can report the
   * attack apart from the sweep of a flood's million objects (minutes on a loaded machine).
   */
  cleanup?: Promise<number>;
  /** The attacker's job could not be prepared (e.g. its last job still cleaning up): nothing ran. */
  notStarted?: boolean;
}

/** One job of the attacker running `attack`; ends like a failed job (revoked, cleaned up). */
async function attackJob(su: Setup, repositoryId: string, attack: string, targets: Record<string, number | string> = {}, deferCleanup = false): Promise<AttackOutcome> {
  su.attacker.writeFile(join(su.attacker.home, 'attack.json'), JSON.stringify({ attack, targets }));
  let job: Awaited<ReturnType<JobDriver['prepare']>>;
  try {
    job = await su.driver.prepare(su.evil, repositoryId, su.attacker);
  } catch (err) {
    return { wallS: NaN, result: { error: (err as Error).message }, violations: [], notStarted: true };
  }
  const r = await runAsUser(su.attacker, ['sh', job.script], sessionEnv(su.attacker), su.attacker.home);
  // The violation is recorded asynchronously to the client's exit.
  await new Promise((res) => setTimeout(res, 500));
  const violations = (await listViolations(su.stack.db.handle.db, job.jobId)).map((v) => `${v.kind}: ${v.detail.slice(0, 120)}`);
  const f = join(su.attacker.home, 'results', `${job.jobId}.json`);
  const result = existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as AttackOutcome['result']) : undefined;
  const t0 = performance.now();
  const cleanup = su.driver.finish(job, false).then(
    () => (performance.now() - t0) / 1000,
    () => (performance.now() - t0) / 1000,
  );
  if (!deferCleanup) await cleanup;
  return { wallS: r.wallS, result, violations, cleanup };
}

/**
 * The attack and an honest backup into the same repository (the tenants share it), the backup
 * starting `delayMs` after the attack; the service's RSS sampled throughout.
 */
async function during(su: Setup, attack: (repositoryId: string) => Promise<AttackOutcome>, delayMs: number, cleanupWaitS = 0, withHonest = true) {
  const repoId = await freshRepository(su);
  const rss = rssSampler(su.stack.storage.pid!);
  const failed = (err: Error): AttackOutcome => ({ wallS: NaN, result: { error: err.message }, violations: [] });
  const attacking = attack(repoId).catch(failed);
  await new Promise((r) => setTimeout(r, delayMs));
  const honestS = withHonest ? await honestBackup(su, repoId) : NaN;
  const outcome = await attacking;
  // Up to here: the attack and the honest backup. A deferred cleanup is then waited for at most
  // `cleanupWaitS` (0: to its end) with the RSS still sampled, and reported on its own.
  const atAttack = rss.peek();
  let cleanup: { seconds: number; done: boolean } | undefined;
  if (outcome.cleanup) {
    const t0 = performance.now();
    const limit = cleanupWaitS > 0 ? new Promise<undefined>((r) => setTimeout(() => r(undefined), cleanupWaitS * 1000).unref()) : new Promise<undefined>(() => {});
    const s = await Promise.race([outcome.cleanup, limit]);
    cleanup = s === undefined ? { seconds: (performance.now() - t0) / 1000, done: false } : { seconds: s, done: true };
  }
  return { outcome, honestS, rss: atAttack, cleanup, rssWithCleanup: rss.stop() };
}

/**
 * Samples, every 250 ms, the forced commands (proxy processes) and sshd processes running: the
 * peak count of each and the peak of the proxies' summed RSS.
 */
function processSampler() {
  const peak = { proxies: 0, proxiesRss: 0, sshd: 0 };
  const sample = () => {
    let proxies = 0;
    let rss = 0;
    let sshd = 0;
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8');
        if (argv.includes('proxy/session/main.js')) {
          proxies++;
          rss += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1] ?? 0) * 1024;
        } else if (argv.startsWith('sshd')) sshd++;
      } catch {
        // gone meanwhile
      }
    }
    peak.proxies = Math.max(peak.proxies, proxies);
    peak.proxiesRss = Math.max(peak.proxiesRss, rss);
    peak.sshd = Math.max(peak.sshd, sshd);
  };
  const timer = setInterval(sample, 250);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}

const stepOf = (o: AttackOutcome, what: string) => o.result?.steps?.find((s) => s.what === what);

type Opts = ReturnType<typeof parseOptions>;

function parseOptions() {
  return parseArgs({ puts: 10_000_000, putQuota: 0, bombs: 20, bombJobs: 3, randomMib: 50, timing: 2000, runs: 2, connections: 1000, cleanupWait: 0, floodAlone: false, serviceNodeArgs: '', attacks: 'flood,connections,bombs,commits,timing' }, usage);
}

/** The stack, the honest client with its tree, and the attacker with evil-borg.py as its borg. */
async function setUp(o: Opts): Promise<Setup> {
  const swept = await sweepLeftovers({ databaseUrl: loadConfig().databaseUrl });
  if (swept.length) note(`removed leftovers of earlier bench runs: ${swept.join(', ')}`);
  note('starting BorgCube (database, data dir, sshd, repository service)…');
  const stack = await startBenchStack({ mode: 'service-host', storageNodeArgs: o.serviceNodeArgs.split(/\s+/).filter(Boolean) });
  const side = await setupClientSide(stack.serverPublicKey);
  const attacker = await createBenchUser();
  attacker.authorize(stack.serverPublicKey);
  attacker.mkdir(join(attacker.home, 'bin'), 0o755);
  const evilPath = join(attacker.home, 'bin', 'borg');
  attacker.writeFile(evilPath, readFileSync(join(projectRoot, 'test/fixtures/evil-borg.py')), 0o755);
  chmodSync(evilPath, 0o755);
  note('writing the honest tree…');
  const tree = await writeBigTree(side.client, o.randomMib);
  note(`tree: ${mb(tree.bytes)} in ${tree.files} files`);
  const honest = await addClient(stack.deps, { name: 'honest', host: '127.0.0.1', port: side.sshd.port, user: side.client.name, paths: [tree.path] });
  const evil = await addClient(stack.deps, {
    name: 'evil',
    host: '127.0.0.1',
    port: side.sshd.port,
    user: attacker.name,
    paths: [attacker.home],
    borgPath: evilPath,
    limits: o.putQuota ? { putsPerJob: o.putQuota } : {},
  });
  return { stack, side, attacker, driver: new JobDriver(stack), tree, honest, evil, repos: 0 };
}

/**
 * The connection flood comes from this loopback address, the honest client from 127.0.0.1: two
 * hosts to sshd, as tenants are. From one address the honest backup shares sshd's 24
 * unauthenticated connections per source (PerSourceMaxStartups) with the flood and is dropped —
 * what clients behind the attacker's NAT would see.
 */
const ATTACKER_ADDRESS = '127.0.0.2';

/**
 * Connections of one credential that never send a byte, during an honest backup: the proxies (one
 * process each) and sshd's processes sampled (MAX_CONNECTIONS_PER_JOB in connection.ts).
 */
async function connectionFlood(su: Setup, count: number) {
  note(`connections: ${count} of one credential at once from ${ATTACKER_ADDRESS}, none sending anything…`);
  const procs = processSampler();
  const r = await during(su, (repo) => attackJob(su, repo, 'connection-flood', { count, wait: 120, source: ATTACKER_ADDRESS }), 2000);
  const peak = procs.stop();
  const closed = r.outcome.result?.closed_seconds ?? [];
  const last = closed.length ? Math.max(...closed) : NaN;
  const stillOpen = r.outcome.result?.still_open;
  const achieved = `${count} connections (started over ${f1(r.outcome.result?.opening_seconds ?? NaN)} s): ${closed.length} closed, the last after ${f1(last)} s, ${stillOpen ?? '?'} left open; peak ${peak.proxies} proxies (${mb(peak.proxiesRss)}), ${peak.sshd} sshd processes`;
  return { during: r, achieved, extra: { closedSeconds: closed, stillOpen, peakProxies: peak.proxies, peakProxiesRss: peak.proxiesRss, peakSshd: peak.sshd } };
}

function bombJobs(su: Setup, o: Opts) {
  note(`bombs: ${o.bombJobs} jobs of ${o.bombs} 64 MiB bombs…`);
  return during(
    su,
    async (repo) => {
      // One row for all jobs: every job's violations, and "did not run" only if none ran.
      const all: AttackOutcome[] = [];
      for (let i = 0; i < o.bombJobs; i++) all.push(await attackJob(su, repo, 'bomb', { count: o.bombs }));
      const ran = all.filter((a) => !a.notStarted);
      const last = ran.at(-1) ?? all.at(-1)!;
      return { ...last, violations: ran.flatMap((a) => a.violations), notStarted: ran.length === 0 };
    },
    2000,
  );
}

async function putTiming(su: Setup, pairs: number) {
  note(`put timing: ${pairs} pairs…`);
  const timingRepo = await freshRepository(su);
  return (await attackJob(su, timingRepo, 'put-timing', { count: pairs })).result?.timing;
}

runBench('bench:attacks', async () => {
  if (process.getuid?.() !== 0) throw new Error('bench:attacks sets up users, sshd and accounts: run it as root');
  const o = parseOptions();
  const su = await setUp(o);
  const { tree } = su;
  note('honest backups alone…');
  const alone: number[] = [];
  for (let i = 0; i < o.runs; i++) alone.push(await honestBackup(su, await freshRepository(su)));
  const aloneS = median(alone);
  note(`alone: ${alone.map(f2).join(' / ')} s`);

  const rows: string[][] = [];
  const summary: Record<string, unknown> = { aloneS, alone };
  const row = (name: string, r: Awaited<ReturnType<typeof during>>, achieved: string, extra: Record<string, unknown> = {}) => {
    const res = r.outcome.result;
    // An attack whose job could not even be prepared (e.g. the attacker's last job still cleaning up) is no finding.
    const didNotRun = r.outcome.notStarted === true;
    const refused = r.outcome.violations[0]?.split(':')[0] ?? (res?.outcome === 'refused' ? `refused (${res.error?.slice(0, 60)})` : didNotRun ? `the attack did not run (${res?.error?.slice(0, 80)})` : 'not refused');
    const honest = Number.isNaN(r.honestS) ? ['— (none)', '—'] : [f2(r.honestS), f2(r.honestS / aloneS)];
    rows.push([name, achieved, refused, `${mb(r.rss.before)} → ${mb(r.rss.peak)}${r.rss.died ? ' (the service died)' : ''}`, ...honest]);
    summary[name] = { achieved, violations: r.outcome.violations, rssBefore: r.rss.before, rssPeak: r.rss.peak, serviceDied: r.rss.died, honestS: r.honestS, attackS: r.outcome.wallS, ...extra };
    note(`${name}: ${achieved}; ${refused}; RSS ${mb(r.rss.before)} → ${mb(r.rss.peak)}; honest ${f2(r.honestS)} s`);
  };

  const run = new Set(o.attacks.split(','));
  // 1. A thousand connections of one credential that never send a byte.
  if (o.connections > 0 && run.has('connections')) {
    const r = await connectionFlood(su, o.connections);
    row('connection flood', r.during, r.achieved, r.extra);
  }

  // 2. Decompression bombs: a ~2 KB object that decompresses to 64 MiB, many times, several jobs.
  if (run.has('bombs')) {
    const bombs = await bombJobs(su, o);
    const bomb = stepOf(bombs.outcome, 'sending decompression bombs');
    row('decompression bombs', bombs, `${o.bombJobs}×${o.bombs} objects of ${typeof bomb?.csize === 'number' ? bomb.csize : '?'} B → 64 MiB`);
  }

  // 3. Commit spam (the default bound: commitsPerMinute).
  if (run.has('commits')) {
    note('commit spam…');
    const commits = await during(su, (repo) => attackJob(su, repo, 'commit-spam', { count: 1000 }), 2000);
    row('commit spam', commits, `up to 1000 put+commit pairs, ${f1(commits.outcome.wallS)} s`);
  }

  // 4. The existence oracle: put round trips of new ids and of ids the repository has.
  const t = run.has('timing') ? await putTiming(su, o.timing) : undefined;
  if (t) {
    const newUs = median(t.new_us);
    const dupUs = median(t.dup_us);
    summary.putTiming = { pairs: t.new_us.length, newMedianUs: newUs, existingMedianUs: dupUs };
    note(`put round trip, median of ${t.new_us.length}: new id ${f1(newUs)} µs, existing id ${f1(dupUs)} µs (difference ${f1(newUs - dupUs)} µs)`);
  }

  // 5. Tiny puts, as fast as the attacker's borg sends them, until the quota or the count
  // (--puts 0 leaves it out). Last: the sweep of the flood's objects runs on after the attack
  // (see --cleanup-wait), and the attacker's next job could not start before it ends.
  const quota = o.putQuota || JOB_LIMIT_DEFAULTS.putsPerJob;
  if (o.puts > 0 && run.has('flood')) {
    note(`flood: ${o.puts.toLocaleString('en')} tiny puts (quota ${quota.toLocaleString('en')})…`);
    const flood = await during(su, (repo) => attackJob(su, repo, 'put-flood', { count: o.puts }, true), 5000, o.cleanupWait, !o.floodAlone);
    // What evil-borg handed to its client (the service may have refused while more were in
    // flight); the service accepts at most the quota, so the table per put is over those.
    const sent = flood.outcome.result?.puts_sent ?? NaN;
    const accepted = Math.min(Number.isNaN(sent) ? o.puts : sent, quota);
    const perPut = (flood.rss.peak - flood.rss.before) / accepted;
    const c = flood.cleanup;
    const cleanup = c ? { cleanupS: c.seconds, cleanupDone: c.done, rssPeakWithCleanup: flood.rssWithCleanup.peak } : {};
    row('tiny-put flood', flood, `${sent.toLocaleString('en')} puts sent (quota ${quota.toLocaleString('en')}) in ${f1(flood.outcome.wallS)} s`, { putsSent: sent, quota, rssPerPutBytes: perPut, ...cleanup });
    summary.floodRssBound = checkFloodBound(flood.rss, quota);
    note(`flood: ${f1(perPut)} bytes of service RSS per accepted put at the peak${o.floodAlone ? '' : " (the honest backup's own use included)"}`);
    if (c) note(`flood: the job's cleanup (the sweep of its objects) ${c.done ? 'took' : 'was still running after'} ${f1(c.seconds)} s; service RSS peak with it ${mb(flood.rssWithCleanup.peak)}${flood.rssWithCleanup.died ? ' (the service died)' : ''}`);
  }

  print();
  print(`honest backup alone (${mb(tree.bytes)}, ${tree.files} files): ${alone.map(f2).join(' / ')} s, median ${f2(aloneS)} s`);
  table(['attack', 'attacker', 'refused as', 'service RSS before → peak', 'honest s', 'vs alone'], rows);
  if (t) print(`put round trip (median of ${t.new_us.length}): new id ${f1(median(t.new_us))} µs, an id the repository has ${f1(median(t.dup_us))} µs`);
  print(JSON.stringify(summary));
});
