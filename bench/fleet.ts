// `npm run bench:fleet` (issue 23 point 4): a fleet of clients on BorgCube's control plane — a
// Temporal dev server of the run's own (SQLite file), a fresh PostgreSQL database, the worker's
// real workflows and job/policy/alert activities, the web console as its own process — with the
// client side simulated (bench/lib/fleet-sim.ts): a compressed day where every policy's Temporal
// Schedule fires every --every minutes for --minutes minutes.
//
// REAL: Temporal (Schedules with jitter, the scheduledBackup and backup workflows, activity
// tasks, heartbeats, history), PostgreSQL (job rows and their whole lifecycle, phases, log lines,
// archives, incidents), Redis progress events, the web console process and its queries, the
// concurrency queue if the build has one (it lives in the workflows and job activities).
// SIMULATED: SSH to the clients, borg on the clients, the proxy and the repository service,
// repository reads and writes — the client and storage activities take 20–120 s (--run-min,
// --run-max), heartbeat every 2 s and write progress and log lines like the real ones, and
// finalize records an archive row with made-up figures.
//
// The database holds --db-clients clients (default 10,000) and --seed-jobs finished jobs (default
// 100,000) whatever --clients is, so that the console is measured at the issue's scale even in a
// reduced run; --clients of them have a policy and a schedule.
//
// `--real` runs bench/fleet-real.ts instead (real clients, real borg; built separately).
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from './lib/args.js';
import { dbBytes, dist, histogramAbove, histogramDelta, histogramQuantile, jobCounts, jobWaits, pages, perMinute, sampleProcs, sampleSchedules, scrapeHistogram, sqliteBytes, viewer, type Histogram, type Page, type ProcSample } from './lib/fleet-figures.js';
import { consolePages, measureConsole, printConsoleRun } from './lib/fleet-console.js';
import { startFleetLoad } from './lib/fleet-load.js';
import { createSchedules, seed, startConsoleStack, startFleet, type Fleet } from './lib/fleet-stack.js';
import { f1, mb, note, print, printHeader, runInfo, table } from './lib/report.js';
import { runBench } from './lib/run-bench.js';

const usage = `usage: npm run bench:fleet [-- --clients 10000 --minutes 30 --every 10 --jitter S --db-clients 10000 --seed-jobs 100000
                                 --run-min 20 --run-max 120 --slots 1000 --drain S --page-pause-ms 1000 --host-limit 9999 --repo-limit 9999
                                 --create-rate 25 --create-concurrency 16 --sample 300]
       npm run bench:fleet -- --console-only [--rounds 100 --page-pause-ms 200 --db-clients 10000 --seed-jobs 100000 --load --hold S]
       npm run bench:fleet -- --real     (real clients and borg: bench/fleet-real.ts)
  --console-only   the console's target alone: seed, start the web process (no Temporal, no schedules), measure the
                   dashboard, jobs and clients pages over --rounds rounds; PASS/FAIL for dashboard and jobs p99
  --load           with --console-only: meanwhile write to the database what a running fleet writes (bench/lib/fleet-load.ts)
  --hold S         with --console-only: keep the stack up S seconds after the report (to profile it by hand)
  --clients N      clients with a policy and a Temporal Schedule (simulated client side)
  --minutes M      length of the compressed day (schedules fire during it)
  --every E        each policy's schedule: @every E minutes
  --jitter S       the schedules' jitter in seconds (default: 90 % of the interval)
  --db-clients N   clients in the database (console scale; at least --clients)
  --seed-jobs N    finished jobs inserted before the run (console scale)
  --run-min/--run-max S   duration of a simulated borg create
  --slots N        concurrent activities of the simulated worker's Temporal workers
  --drain S        after the day: wait this long for running jobs to end (default run-max + 120)
  --host-limit N / --repo-limit N   backups at once per storage host / repository (BORGCUBE_MAX_BACKUPS_PER_*;
                   default 9999: the one simulated storage host stands in for the many a fleet this size has)
  --create-rate R  schedules created a second, expected (sets when the day starts; a slower creation starts late schedules one interval later)
  --create-concurrency N   schedule creations in flight at once
  --sample N       schedules described after the day for exact lag figures (the server's histogram covers all)`;

const TARGET = { pageP99Ms: 300, lateS: 60 };

function options() {
  const o = parseArgs({ clients: 10_000, minutes: 30, every: 10, jitter: -1, dbClients: 10_000, seedJobs: 100_000, runMin: 20, runMax: 120, slots: 1000, drain: -1, pagePauseMs: 1000, hostLimit: 9999, repoLimit: 9999, createRate: 25, createConcurrency: 16, sample: 300, consoleOnly: false, rounds: 100, load: false, hold: 0 }, usage);
  if (o.clients < 1 || o.minutes <= 0 || o.every <= 0) throw new Error(`--clients, --minutes and --every must be positive\n${usage}`);
  if (o.runMax < o.runMin) throw new Error('--run-max must be at least --run-min');
  if (o.createRate <= 0 || o.createConcurrency < 1) throw new Error('--create-rate and --create-concurrency must be positive');
  const jitterS = o.jitter >= 0 ? o.jitter : Math.floor(o.every * 60 * 0.9);
  if (jitterS >= o.every * 60) throw new Error('--jitter must be shorter than the interval (--every)');
  return { ...o, jitterS, dbClients: Math.max(o.dbClients, o.clients), drainS: o.drain >= 0 ? o.drain : o.runMax + 120 };
}
type Opts = ReturnType<typeof options>;

const passFail = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

// ---------------------------------------------------------------------------------------------

/** Before the day: the stack, the database at console scale, the schedules; storage baselines. */
async function prepare(o: Opts) {
  const f = await startFleet(o);
  await seed(f.stack, o);
  const pgBefore = await dbBytes(f.stack);
  const tmpBefore = sqliteBytes(f.temporal.dbFile);
  const sch = await createSchedules(f.stack, o);
  note(`${sch.ids.length} schedules created in ${f1(sch.seconds)} s (${f1(sch.ids.length / sch.seconds)} a second, ${o.createConcurrency} at a time)${sch.late ? `; ${sch.late} of them after the day began: they start one interval later` : ''}; the day runs ${o.minutes} min from ${sch.dayStart.toISOString()}`);
  await sleep(Math.max(0, sch.dayStart.getTime() - Date.now()));
  return { f, sch, pgBefore, tmpBefore, tmpAfterSchedules: sqliteBytes(f.temporal.dbFile) };
}

/** The server's schedule action delay (real start − jittered scheduled time), one GET per minute. */
const DELAY_METRIC = 'schedule_action_delay';

interface LagMinute {
  minute: number;
  delay: Histogram;
}

/** Scrapes the delay histogram every minute from t0, keeping each minute's share, until stopped. */
function watchLag(f: Fleet, t0: Date) {
  const minutes: LagMinute[] = [];
  let last: Histogram | undefined;
  let errors = 0;
  const scrape = async () => {
    try {
      const h = await scrapeHistogram(f.temporal.metricsUrl, DELAY_METRIC);
      if (last) minutes.push({ minute: Math.round((Date.now() - t0.getTime()) / 60_000) - 1, delay: histogramDelta(last, h) });
      last = h;
    } catch {
      errors++;
    }
  };
  const first = scrape();
  const timer = setInterval(() => void scrape(), 60_000);
  return {
    minutes,
    async stop() {
      clearInterval(timer);
      await first;
      await scrape();
      return { minutes, errors };
    },
  };
}

/** The day: schedules fire, a viewer clicks through the console, processes are sampled. */
async function runDay(o: Opts, f: Fleet, t0: Date) {
  const pids = { worker: f.worker.pid, web: f.web.pid, temporal: f.temporal.pid };
  const s0 = sampleProcs(pids);
  const peakRss: Record<string, number> = {};
  const sampler = setInterval(() => {
    for (const [k, v] of Object.entries(sampleProcs(pids).rss)) peakRss[k] = Math.max(peakRss[k] ?? 0, v || 0);
  }, 5000);
  // The day ends on the clock, however late creation let it begin.
  const dayEnd = t0.getTime() + o.minutes * 60_000;
  const progress = setInterval(() => {
    void jobCounts(f.stack, t0).then((c) => note(`jobs of the run so far: ${JSON.stringify(c)}`)).catch(() => {});
  }, 60_000);
  const views = await viewer(f, () => Date.now() >= dayEnd, o.pagePauseMs);
  clearInterval(progress);
  return { pids, s0, sDay: sampleProcs(pids), peakRss, views, stopSampler: () => clearInterval(sampler) };
}

/** After the day: the schedules have ended by themselves (endAt); the running jobs may end (storage per job counts whole jobs); then a sample of schedules for exact lag. */
async function afterDay(o: Opts, f: Fleet, sch: Awaited<ReturnType<typeof prepare>>['sch'], t0: Date, lag: ReturnType<typeof watchLag>) {
  const drainEnd = Date.now() + o.drainS * 1000;
  for (;;) {
    const c = await jobCounts(f.stack, t0);
    const open = (c.running ?? 0) + (c.queued ?? 0);
    if (!open || Date.now() > drainEnd) break;
    note(`draining: ${open} jobs still open`);
    await sleep(10_000);
  }
  const lagMinutes = await lag.stop();
  note(`reading ${Math.min(o.sample, sch.ids.length)} schedules picked at random`);
  const sample = await sampleSchedules(f.stack.temporal, sch.ids, o.sample, t0, o.every, sch.phaseS);
  const counts = await jobCounts(f.stack, t0);
  return { sample, lagMinutes, counts, jobsRun: Object.values(counts).reduce((a, b) => a + b, 0), minutes: await perMinute(f.stack, t0), waits: await jobWaits(f.stack, t0, sample.taken) };
}

type After = Awaited<ReturnType<typeof afterDay>>;

/** Actions the day's schedules should take: one per interval boundary in the day; a schedule created after the day began misses the first. */
function expectedActions(o: Opts, sch: { ids: string[]; late: number }): number {
  const rounds = Math.ceil(o.minutes / o.every);
  return (sch.ids.length - sch.late) * rounds + sch.late * Math.max(0, rounds - 1);
}

function printSchedules(o: Opts, a: After, expected: number) {
  const { sample, waits } = a;
  const lagBy = new Map(a.lagMinutes.minutes.map((m) => [m.minute, m.delay]));
  const all = a.lagMinutes.minutes.reduce<Histogram | undefined>((acc, m) => (acc ? { buckets: acc.buckets.map(([b, c], i) => [b, c + (m.delay.buckets[i]?.[1] ?? 0)]), count: acc.count + m.delay.count, sumS: acc.sumS + m.delay.sumS } : m.delay), undefined);
  // The histogram only holds actions taken: one a backlogged server has not taken yet shows only as missing here.
  print(`Jobs of the run: ${a.jobsRun} (${Object.entries(a.counts).map(([k, v]) => `${k} ${v}`).join(', ')}); schedule actions taken (server histogram): ${all?.count ?? 0} of ${expected} the schedules asked for`);
  print('Per minute of the run (created = schedule fired and the row was reserved; started = the backup began; finished = ended in any state;');
  print('actions and lag = the dev server\'s schedule_action_delay histogram for that minute: real start − jittered scheduled time, as bucket upper bounds):');
  const minutes = [...new Set([...a.minutes.map((m) => m.minute), ...lagBy.keys()])].sort((x, y) => x - y);
  const jobsBy = new Map(a.minutes.map((m) => [m.minute, m]));
  table(['minute', 'created', 'started', 'finished', 'actions', 'lag p50 ≤', 'lag p99 ≤'], minutes.map((m) => {
    const j = jobsBy.get(m);
    const h = lagBy.get(m);
    return [String(m), String(j?.created ?? 0), String(j?.started ?? 0), String(j?.finished ?? 0), String(h?.count ?? '–'), h?.count ? `${f1(histogramQuantile(h, 0.5))} s` : '–', h?.count ? `${f1(histogramQuantile(h, 0.99))} s` : '–'];
  }));
  if (a.lagMinutes.errors) print(`  (${a.lagMinutes.errors} scrapes of the metrics failed)`);
  const late = dist(sample.lateS);
  const toRow = dist(waits.toRowS);
  const queue = dist(waits.queueS);
  const jit = dist(sample.jitterS);
  print();
  print(`Schedules, all actions (server histogram, ${all?.count ?? 0} actions): lag beyond jitter p50 ≤ ${all ? f1(histogramQuantile(all, 0.5)) : '–'} s, p99 ≤ ${all ? f1(histogramQuantile(all, 0.99)) : '–'} s, mean ${all?.count ? f1(all.sumS / all.count) : '–'} s`);
  const over = all ? histogramAbove(all, TARGET.lateS) : undefined;
  if (over) print(`  later than ${TARGET.lateS} s: ${over.atLeast === over.atMost ? over.atLeast : `between ${over.atLeast} (> ${f1(over.upperBound)} s) and ${over.atMost} (> ${f1(over.lowerBound)} s)`}`);
  print(`Schedules, exact (recent actions of ${sample.described} schedules picked at random${sample.unreadable ? `, ${sample.unreadable} unreadable` : ''}; skipped for overlap ${sample.skippedOverlap}, missed the catch-up window ${sample.missedCatchup}):`);
  print(`  jitter applied (scheduled − interval boundary): p50 ${f1(jit.p50)} s, max ${f1(jit.max)} s (configured ${o.jitterS} s)`);
  print(`  lag beyond jitter (taken − scheduled):          p50 ${f1(late.p50)} s, p99 ${f1(late.p99)} s, max ${f1(late.max)} s (n=${late.n})`);
  print(`  action taken → job row reserved:                p50 ${f1(toRow.p50)} s, p99 ${f1(toRow.p99)} s, max ${f1(toRow.max)} s (n=${toRow.n})`);
  print(`Queue wait, all backups of the run (job started − row created): p50 ${f1(queue.p50)} s, p99 ${f1(queue.p99)} s, max ${f1(queue.max)} s (n=${queue.n}); still queued at the end: ${waits.queued}`);
  return { late, all, over };
}

function printProcesses(day: Awaited<ReturnType<typeof runDay>>, sEnd: ProcSample) {
  const { s0, sDay, peakRss } = day;
  const wallDay = (sDay.t - s0.t) / 1000;
  print(`Processes (CPU over the ${f1(wallDay / 60)} min day, in CPU-seconds and busy cores; RSS at the end of the day / peak):`);
  table(['process', 'CPU-s', 'cores', 'RSS', 'peak RSS'], Object.keys(day.pids).map((k) => {
    const cpu = sDay.cpu[k]! - s0.cpu[k]!;
    return [k, f1(cpu), (cpu / wallDay).toFixed(2), mb(sDay.rss[k]!), mb(peakRss[k] ?? NaN)];
  }));
  print(`  (with the drain: worker ${f1(sEnd.cpu.worker! - s0.cpu.worker!)} CPU-s, web ${f1(sEnd.cpu.web! - s0.cpu.web!)} CPU-s, Temporal ${f1(sEnd.cpu.temporal! - s0.cpu.temporal!)} CPU-s in all)`);
}

function printConsole(o: Opts, views: Awaited<ReturnType<typeof runDay>>['views'], jobs: number) {
  print(`Console latency while the fleet ran (one viewer, full HTML pages over HTTP, ${o.dbClients} clients, ${jobs} jobs):`);
  const lat = Object.fromEntries((Object.keys(pages) as Page[]).map((p) => [p, dist(views.lat[p])])) as Record<Page, ReturnType<typeof dist>>;
  table(['page', 'p50 ms', 'p99 ms', 'max ms', 'n', 'size'], (Object.keys(pages) as Page[]).map((p) => [`${p} (${pages[p]})`, f1(lat[p].p50), f1(lat[p].p99), f1(lat[p].max), String(lat[p].n), mb(views.bytes[p])]));
  if (views.errors.length) print(`  ${views.errors.length} failed requests, e.g. ${views.errors[0]}`);
  return lat;
}

async function fleetBench(): Promise<void> {
  const o = options();
  printHeader("bench:fleet — a simulated fleet on BorgCube's control plane (issue 23.4)", await runInfo());
  print(`  ${o.clients} clients with a policy (@every ${o.every}m, jitter ${o.jitterS} s) for ${o.minutes} min; ${o.dbClients} clients and ${o.seedJobs} seeded jobs in the database; simulated borg create ${o.runMin}-${o.runMax} s`);
  print('  REAL: Temporal dev server (SQLite), Schedules + jitter, scheduledBackup/backup workflows, job/policy/alert activities, PostgreSQL rows');
  print('        (jobs, phases, log lines, archives, incidents), Redis progress events, the web console process, the job queue if built in');
  print('  SIMULATED: SSH, borg on the clients, the proxy, the repository service and repository reads/writes (bench/lib/fleet-sim.ts)');
  const { f, sch, pgBefore, tmpBefore, tmpAfterSchedules } = await prepare(o);
  const t0 = sch.dayStart;
  const lag = watchLag(f, t0);
  const day = await runDay(o, f, t0);
  const a = await afterDay(o, f, sch, t0, lag);
  day.stopSampler();
  const sEnd = sampleProcs(day.pids);
  const pgAfter = await dbBytes(f.stack);
  const tmpAfter = sqliteBytes(f.temporal.dbFile);

  print();
  const expected = expectedActions(o, sch);
  const sched = printSchedules(o, a, expected);
  print();
  printProcesses(day, sEnd);
  print();
  const per1k = (bytes: number) => (a.jobsRun ? mb((bytes / a.jobsRun) * 1000) : '–');
  print('Storage:');
  print(`  PostgreSQL: ${mb(pgBefore)} after seeding → ${mb(pgAfter)}: ${per1k(pgAfter - pgBefore)} per 1,000 jobs of the run`);
  print(`  Temporal (SQLite file + WAL): ${mb(tmpBefore)} → ${mb(tmpAfterSchedules)} with ${sch.ids.length} schedules → ${mb(tmpAfter)}: ${per1k(tmpAfter - tmpAfterSchedules)} per 1,000 jobs of the run`);
  print();
  const lat = printConsole(o, day.views, o.seedJobs + a.jobsRun);
  print();
  print('Targets:');
  const dashOk = lat.dashboard.n > 0 && lat.dashboard.p99 < TARGET.pageP99Ms;
  const jobsOk = lat.jobs.n > 0 && lat.jobs.p99 < TARGET.pageP99Ms;
  // Every action, from the histogram: none in a bucket above the target (a bucket that straddles it counts as late).
  const lateOk = (sched.all?.count ?? 0) >= expected && sched.over!.atMost === 0;
  print(`  ${passFail(dashOk)}  dashboard p99 ${f1(lat.dashboard.p99)} ms < ${TARGET.pageP99Ms} ms`);
  print(`  ${passFail(jobsOk)}  jobs list p99 ${f1(lat.jobs.p99)} ms < ${TARGET.pageP99Ms} ms`);
  print(`  ${passFail(lateOk)}  no schedule late by more than ${TARGET.lateS} s beyond its jitter (${sched.all?.count ?? 0} of ${expected} actions taken; ${sched.over?.atMost ?? '–'} in buckets above ${f1(sched.over?.lowerBound ?? NaN)} s; sample max ${f1(sched.late.max)} s over ${sched.late.n} actions; waits in the concurrency queue are counted apart, above)`);
  if (o.clients < 10_000 || o.minutes < 30) print(`  (a reduced run: ${o.clients} scheduled clients for ${o.minutes} min, not the issue's 10,000 for 30 min)`);
}

/** `--console-only`: the console's target alone (bench/lib/fleet-console.ts). */
async function consoleBench(): Promise<void> {
  const o = options();
  const pauseMs = process.argv.includes('--page-pause-ms') ? o.pagePauseMs : 200;
  printHeader("bench:fleet --console-only — the console at fleet scale (issue 23: dashboard and jobs list p99 < 300 ms)", await runInfo());
  const c = await startConsoleStack();
  await seed(c.stack, { ...o, clients: o.dbClients });
  const pages = await consolePages(c.stack);
  const load = o.load ? await startFleetLoad(c.stack) : undefined;
  const jobs = async () => Number((await c.stack.db.handle.pool.query<{ n: string }>('select count(*)::text as n from jobs')).rows[0]!.n);
  print(`  ${o.dbClients} clients, ${await jobs()} jobs in the database; one viewer, ${o.rounds} rounds of ${pages.length} requests, ${pauseMs} ms between rounds; web process at the bench's nice level${load ? `; background fleet load: ${load.describe}` : ''}`);
  const run = await measureConsole(c.url, c.token, c.web.pid, pages, o.rounds, pauseMs);
  const written = await load?.stop();
  if (written) print(`  background load wrote meanwhile: ${written}`);
  print();
  const ok = printConsoleRun(run, pages, TARGET.pageP99Ms);
  print(`  ${passFail(ok)}  all of the above`);
  if (o.hold) {
    note(`holding the stack ${o.hold} s: ${c.url}, database ${c.stack.db.name}, web pid ${c.web.pid}`);
    await sleep(o.hold * 1000);
  }
}

/** `--real`: bench/fleet-real.ts, when this build has it. */
async function realBench(): Promise<void> {
  const real = new URL('./fleet-real.js', import.meta.url);
  if (!existsSync(fileURLToPath(real))) {
    process.stderr.write('bench:fleet --real: not built: this build has no bench/fleet-real.ts (the real-clients mode of issue 23.5)\n');
    process.exit(2);
  }
  // fleet-real.ts only exports its entry point, and its option parser refuses `--real`.
  process.argv.splice(process.argv.indexOf('--real'), 1);
  const { fleetReal } = (await import(real.href)) as { fleetReal: () => void };
  fleetReal();
}

if (process.argv.includes('--real')) void realBench();
else if (process.argv.includes('--console-only')) runBench('bench:fleet --console-only', consoleBench);
else runBench('bench:fleet', fleetBench);
