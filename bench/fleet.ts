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
import { registerCleanup } from '../test/harness/cleanup.js';
import { parseArgs } from './lib/args.js';
import { dbBytes, dist, jobCounts, jobWaits, pages, perMinute, sampleProcs, scheduleFigures, sqliteBytes, viewer, type Page, type ProcSample } from './lib/fleet-figures.js';
import { createSchedules, removeSchedules, seed, startFleet, type Fleet } from './lib/fleet-stack.js';
import { f1, mb, note, print, printHeader, runInfo, table } from './lib/report.js';
import { runBench } from './lib/run-bench.js';

const usage = `usage: npm run bench:fleet [-- --clients 10000 --minutes 30 --every 10 --jitter S --db-clients 10000 --seed-jobs 100000
                                 --run-min 20 --run-max 120 --slots 1000 --drain S --page-pause-ms 1000 --host-limit 9999 --repo-limit 9999]
       npm run bench:fleet -- --real     (real clients and borg: bench/fleet-real.ts)
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
                   default 9999: the one simulated storage host stands in for the many a fleet this size has)`;

const TARGET = { pageP99Ms: 300, lateS: 60 };

function options() {
  const o = parseArgs({ clients: 10_000, minutes: 30, every: 10, jitter: -1, dbClients: 10_000, seedJobs: 100_000, runMin: 20, runMax: 120, slots: 1000, drain: -1, pagePauseMs: 1000, hostLimit: 9999, repoLimit: 9999 }, usage);
  if (o.clients < 1 || o.minutes <= 0 || o.every <= 0) throw new Error(`--clients, --minutes and --every must be positive\n${usage}`);
  if (o.runMax < o.runMin) throw new Error('--run-max must be at least --run-min');
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
  registerCleanup('fleet schedules', () => removeSchedules(f.stack.temporal, sch.ids).catch(() => {}));
  note(`${sch.ids.length} schedules created in ${f1(sch.seconds)} s; the day runs ${o.minutes} min from the first interval boundary, ${sch.dayStart.toISOString()}`);
  await sleep(Math.max(0, sch.dayStart.getTime() - Date.now()));
  return { f, sch, pgBefore, tmpBefore, tmpAfterSchedules: sqliteBytes(f.temporal.dbFile) };
}

/** The day: schedules fire, a viewer clicks through the console, processes are sampled. */
async function runDay(o: Opts, f: Fleet) {
  const t0 = new Date();
  const pids = { worker: f.worker.pid, web: f.web.pid, temporal: f.temporal.pid };
  const s0 = sampleProcs(pids);
  const peakRss: Record<string, number> = {};
  const sampler = setInterval(() => {
    for (const [k, v] of Object.entries(sampleProcs(pids).rss)) peakRss[k] = Math.max(peakRss[k] ?? 0, v || 0);
  }, 5000);
  const dayEnd = Date.now() + o.minutes * 60_000;
  const progress = setInterval(() => {
    void jobCounts(f.stack, t0).then((c) => note(`jobs of the run so far: ${JSON.stringify(c)}`)).catch(() => {});
  }, 60_000);
  const views = await viewer(f, () => Date.now() >= dayEnd, o.pagePauseMs);
  clearInterval(progress);
  return { t0, pids, s0, sDay: sampleProcs(pids), peakRss, views, stopSampler: () => clearInterval(sampler) };
}

/** After the day: what Temporal did with the schedules; then no new starts, and the running jobs may end (storage per job counts whole jobs). */
async function afterDay(o: Opts, f: Fleet, scheduleIds: string[], t0: Date) {
  note('the day is over: reading the schedules');
  const figs = await scheduleFigures(f.stack.temporal, scheduleIds, t0, o.every);
  await removeSchedules(f.stack.temporal, scheduleIds);
  const drainEnd = Date.now() + o.drainS * 1000;
  for (;;) {
    const c = await jobCounts(f.stack, t0);
    const open = (c.running ?? 0) + (c.queued ?? 0);
    if (!open || Date.now() > drainEnd) break;
    note(`draining: ${open} jobs still open`);
    await sleep(10_000);
  }
  const counts = await jobCounts(f.stack, t0);
  return { figs, counts, jobsRun: Object.values(counts).reduce((a, b) => a + b, 0), minutes: await perMinute(f.stack, t0), waits: await jobWaits(f.stack, t0, figs.taken) };
}

type After = Awaited<ReturnType<typeof afterDay>>;

function printSchedules(o: Opts, a: After) {
  const { figs, waits } = a;
  print(`Jobs of the run: ${a.jobsRun} (${Object.entries(a.counts).map(([k, v]) => `${k} ${v}`).join(', ')}); schedule actions taken: ${figs.actions}, skipped for overlap: ${figs.skippedOverlap}, missed the catch-up window: ${figs.missedCatchup}${figs.unreadable ? `; ${figs.unreadable} schedules could not be read` : ''}`);
  print('Jobs per minute of the run (created = schedule fired and the row was reserved; started = the backup began; finished = ended in any state):');
  table(['minute', 'created', 'started', 'finished'], a.minutes.map((m) => [String(m.minute), String(m.created), String(m.started), String(m.finished)]));
  const late = dist(figs.lateS);
  const toRow = dist(waits.toRowS);
  const queue = dist(waits.queueS);
  const jit = dist(figs.jitterS);
  print();
  print("Schedules (Temporal's recent actions, the last 10 per schedule; an action's scheduled time already includes the jitter Temporal applied):");
  print(`  jitter applied (scheduled − interval boundary): p50 ${f1(jit.p50)} s, max ${f1(jit.max)} s (configured ${o.jitterS} s)`);
  print(`  lag beyond jitter (taken − scheduled):          p50 ${f1(late.p50)} s, p99 ${f1(late.p99)} s, max ${f1(late.max)} s (n=${late.n})`);
  print(`  action taken → job row reserved:                p50 ${f1(toRow.p50)} s, p99 ${f1(toRow.p99)} s, max ${f1(toRow.max)} s (n=${toRow.n})`);
  print(`  queue wait (job started − row created):         p50 ${f1(queue.p50)} s, p99 ${f1(queue.p99)} s, max ${f1(queue.max)} s (n=${queue.n}); still queued at the end: ${waits.queued}`);
  return late;
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
  const day = await runDay(o, f);
  const a = await afterDay(o, f, sch.ids, day.t0);
  day.stopSampler();
  const sEnd = sampleProcs(day.pids);
  const pgAfter = await dbBytes(f.stack);
  const tmpAfter = sqliteBytes(f.temporal.dbFile);

  print();
  const late = printSchedules(o, a);
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
  const lateOk = late.n > 0 && late.max <= TARGET.lateS;
  print(`  ${passFail(dashOk)}  dashboard p99 ${f1(lat.dashboard.p99)} ms < ${TARGET.pageP99Ms} ms`);
  print(`  ${passFail(jobsOk)}  jobs list p99 ${f1(lat.jobs.p99)} ms < ${TARGET.pageP99Ms} ms`);
  print(`  ${passFail(lateOk)}  no schedule late by more than ${TARGET.lateS} s beyond its jitter (max ${f1(late.max)} s over ${late.n} actions; waits in the concurrency queue are counted apart, above)`);
  if (o.clients < 10_000 || o.minutes < 30) print(`  (a reduced run: ${o.clients} scheduled clients for ${o.minutes} min, not the issue's 10,000 for 30 min)`);
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
else runBench('bench:fleet', fleetBench);
