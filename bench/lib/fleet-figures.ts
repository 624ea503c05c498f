// bench:fleet's figures: process samples from /proc, the viewer that clicks through the console,
// storage sizes, and what the job rows and the schedules' recent actions say after the day.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ScheduleNotFoundError, type Client as TemporalClient, type ScheduleDescription } from '@temporalio/client';
import type { Stack } from '../../test/harness/stack-launcher.js';
import type { Fleet } from './fleet-stack.js';
import { mapLimit } from './fleet-stack.js';
import { treeCpu } from './procfs.js';

export function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
export function dist(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s.at(-1) ?? NaN, n: s.length };
}

export function rssBytes(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** The SQLite file of the dev server with its write-ahead log. */
export function sqliteBytes(file: string | undefined): number {
  if (!file) return NaN;
  return ['', '-wal', '-shm'].reduce((sum, ext) => sum + (existsSync(file + ext) ? statSync(file + ext).size : 0), 0);
}

// ---------------------------------------------------------------------------------------------
// While the day runs: process samples and a viewer clicking through the console.

export interface ProcSample {
  t: number;
  cpu: Record<string, number>;
  rss: Record<string, number>;
}

export function sampleProcs(procs: Record<string, number | undefined>): ProcSample {
  const cpu: Record<string, number> = {};
  const rss: Record<string, number> = {};
  for (const [name, pid] of Object.entries(procs)) {
    cpu[name] = pid ? treeCpu(pid) : NaN;
    rss[name] = rssBytes(pid);
  }
  return { t: performance.now(), cpu, rss };
}

export const pages = { dashboard: '/', clients: '/clients', jobs: '/jobs' } as const;
export type Page = keyof typeof pages;

export async function viewer(f: Fleet, until: () => boolean, pauseMs: number): Promise<{ lat: Record<Page, number[]>; errors: string[]; bytes: Record<Page, number> }> {
  const lat: Record<Page, number[]> = { dashboard: [], clients: [], jobs: [] };
  const bytes: Record<Page, number> = { dashboard: 0, clients: 0, jobs: 0 };
  const errors: string[] = [];
  const headers = { authorization: `Bearer ${f.token}` };
  while (!until()) {
    for (const [page, path] of Object.entries(pages) as Array<[Page, string]>) {
      const t = performance.now();
      try {
        const res = await fetch(`${f.url}${path}`, { headers });
        const body = await res.text();
        const dt = performance.now() - t;
        if (res.status !== 200) errors.push(`${path}: HTTP ${res.status} ${body.slice(0, 120)}`);
        else {
          lat[page].push(dt);
          bytes[page] = body.length;
        }
      } catch (err) {
        errors.push(`${path}: ${(err as Error).message}`);
      }
    }
    await sleep(pauseMs);
  }
  return { lat, errors, bytes };
}

export async function dbBytes(stack: Stack): Promise<number> {
  const r = await stack.db.handle.pool.query<{ n: string }>('select pg_database_size(current_database())::text as n');
  return Number(r.rows[0]!.n);
}

export async function jobCounts(stack: Stack, since: Date): Promise<Record<string, number>> {
  const r = await stack.db.handle.pool.query<{ state: string; n: number }>(`select state::text, count(*)::int as n from jobs where created_at >= $1 group by 1`, [since]);
  return Object.fromEntries(r.rows.map((x) => [x.state, x.n]));
}

// ---------------------------------------------------------------------------------------------
// Figures after the day.

/** Jobs created, started and finished per minute of the run, from the job rows. */
export async function perMinute(stack: Stack, t0: Date): Promise<Array<{ minute: number; created: number; started: number; finished: number }>> {
  const r = await stack.db.handle.pool.query<{ col: string; m: number; n: number }>(
    `select 'created' as col, floor(extract(epoch from created_at - $1) / 60)::int as m, count(*)::int as n from jobs where created_at >= $1 group by 2
     union all select 'started', floor(extract(epoch from started_at - $1) / 60)::int, count(*)::int from jobs where created_at >= $1 and started_at is not null group by 2
     union all select 'finished', floor(extract(epoch from finished_at - $1) / 60)::int, count(*)::int from jobs where created_at >= $1 and finished_at is not null group by 2`,
    [t0],
  );
  const rows = new Map<number, { minute: number; created: number; started: number; finished: number }>();
  for (const x of r.rows) {
    const row = rows.get(x.m) ?? { minute: x.m, created: 0, started: 0, finished: 0 };
    row[x.col as 'created' | 'started' | 'finished'] = x.n;
    rows.set(x.m, row);
  }
  return [...rows.values()].sort((a, b) => a.minute - b.minute);
}

// ---------------------------------------------------------------------------------------------
// Schedule lag, read cheaply: a 10,000-client run cannot describe every schedule (500 describes
// already stalled a loaded dev server), so the lag comes from two sources whose cost does not grow
// with the fleet: the server's own `schedule_action_delay` histogram (every action: real start −
// jittered scheduled time, one HTTP GET per minute) and the recent actions of a fixed-size random
// sample of schedules (exact values, a few hundred describes at the end).

/** A Prometheus histogram summed over its label sets: cumulative counts by upper bound, in seconds. */
export interface Histogram {
  /** [upper bound in seconds, cumulative count], ascending; the last bound is Infinity. */
  buckets: Array<[number, number]>;
  count: number;
  sumS: number;
}

const emptyHistogram = (): Histogram => ({ buckets: [], count: 0, sumS: 0 });

/**
 * `name`'s histogram from a Prometheus text page. Temporal's default (tally) exports timers with
 * bounds in seconds under the bare name; under OpenTelemetry the name ends in `_milliseconds`.
 */
export function parseHistogram(text: string, name: string): Histogram & { metric?: string } {
  const byLe = new Map<number, number>();
  let count = 0;
  let sum = 0;
  let metric: string | undefined;
  const re = new RegExp(`^(${name}(?:_milliseconds|_seconds|_ms)?)_(bucket|count|sum)(\\{[^}]*\\})?\\s+(\\S+)`);
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    metric = m[1];
    const v = Number(m[4]);
    if (m[2] === 'count') count += v;
    else if (m[2] === 'sum') sum += v;
    else {
      const le = /le="([^"]+)"/.exec(m[3] ?? '')?.[1];
      if (!le) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      byLe.set(bound, (byLe.get(bound) ?? 0) + v);
    }
  }
  const scale = metric?.endsWith('_milliseconds') || metric?.endsWith('_ms') ? 1 / 1000 : 1;
  return { buckets: [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([b, c]) => [b * scale, c]), count, sumS: sum * scale, metric };
}

export async function scrapeHistogram(url: string | undefined, name: string): Promise<Histogram & { metric?: string }> {
  if (!url) return emptyHistogram();
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return parseHistogram(await res.text(), name);
}

/** What happened between two scrapes of the same histogram. */
export function histogramDelta(before: Histogram, after: Histogram): Histogram {
  const prev = new Map(before.buckets);
  return { buckets: after.buckets.map(([b, c]) => [b, c - (prev.get(b) ?? 0)]), count: after.count - before.count, sumS: after.sumS - before.sumS };
}

/** The upper bound of the bucket that holds quantile q (a histogram only bounds it). */
export function histogramQuantile(h: Histogram, q: number): number {
  if (!h.count) return NaN;
  const rank = Math.ceil(q * h.count);
  return h.buckets.find(([, c]) => c >= rank)?.[0] ?? Infinity;
}

/** Observations above `limitS`, as the range the buckets allow: [certainly above, perhaps above]. */
export function histogramAbove(h: Histogram, limitS: number): { atLeast: number; atMost: number; lowerBound: number; upperBound: number } {
  const below = (bound: number) => h.buckets.filter(([b]) => b <= bound).at(-1)?.[1] ?? 0;
  const upper = h.buckets.find(([b]) => b >= limitS)?.[0] ?? Infinity;
  const lower = h.buckets.filter(([b]) => b <= limitS).at(-1)?.[0] ?? 0;
  return { atLeast: h.count - below(upper), atMost: h.count - below(lower), lowerBound: lower, upperBound: upper };
}

export interface ScheduleSample {
  /** takenAt − scheduledAt (scheduledAt already includes the jitter Temporal applied), seconds. */
  lateS: number[];
  /** workflow id of each action → when Temporal took it. */
  taken: Map<string, Date>;
  described: number;
  /** Schedules whose description could not be read (gone, or the server kept failing). */
  unreadable: number;
  skippedOverlap: number;
  missedCatchup: number;
  jitterS: number[];
}

/** A loaded dev server fails some describes ("Failed to describe schedule"): a few tries, then undefined. */
async function describeSchedule(temporal: TemporalClient, id: string, signal: AbortSignal): Promise<ScheduleDescription | undefined> {
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      // Aborted at the sample's deadline: no call (or its client-side retry) outlives the report and the connection.
      return await temporal.withAbortSignal(signal, () => temporal.schedule.getHandle(id).describe());
    } catch (err) {
      if (err instanceof ScheduleNotFoundError || attempt >= 5 || signal.aborted) return undefined;
      await sleep(1000 * attempt, undefined, { signal }).catch(() => {});
    }
  }
  return undefined;
}

/**
 * Exact lag and jitter from the recent actions (Temporal keeps the last 10) of `size` schedules
 * picked at random. A describe queries the schedule's workflow, which a backlogged server answers
 * late: after `deadlineMs` the rest are counted unread instead of holding the report.
 */
export async function sampleSchedules(temporal: TemporalClient, ids: string[], size: number, since: Date, every: number, phaseS: number, deadlineMs = 180_000): Promise<ScheduleSample> {
  const fig: ScheduleSample = { lateS: [], taken: new Map(), described: 0, unreadable: 0, skippedOverlap: 0, missedCatchup: 0, jitterS: [] };
  const pick = [...ids];
  for (let i = pick.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [pick[i], pick[j]] = [pick[j]!, pick[i]!];
  }
  const period = every * 60_000;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), deadlineMs);
  await mapLimit(pick.slice(0, size), 8, async (id) => {
    // At the deadline the signal ends every describe, its client-side retries and its own tries.
    const d = await describeSchedule(temporal, id, stop.signal);
    if (!d) {
      fig.unreadable++;
      return;
    }
    fig.described++;
    fig.skippedOverlap += d.info.numActionsSkippedOverlap;
    fig.missedCatchup += d.info.numActionsMissedCatchupWindow;
    for (const a of d.info.recentActions) {
      if (a.takenAt < since) continue;
      fig.lateS.push((a.takenAt.getTime() - a.scheduledAt.getTime()) / 1000);
      // The jitter itself: how far the jittered time lies after the nominal one (a multiple of the interval plus the phase).
      fig.jitterS.push((((a.scheduledAt.getTime() - phaseS * 1000) % period) + period) % period / 1000);
      if ('workflow' in a.action) fig.taken.set(a.action.workflow.workflowId, a.takenAt);
    }
  });
  // Whatever is still being described is given up now, before the caller closes the connection.
  clearTimeout(timer);
  stop.abort();
  return fig;
}

/** Per job of the run: schedule action → job row (reserve), and job row → started (queue wait). */
export async function jobWaits(stack: Stack, since: Date, taken: Map<string, Date>): Promise<{ toRowS: number[]; queueS: number[]; queued: number }> {
  const r = await stack.db.handle.pool.query<{ triggered_by: string | null; created_at: Date; started_at: Date | null; state: string }>(
    `select triggered_by, created_at, started_at, state::text from jobs where created_at >= $1 and kind = 'backup'`,
    [since],
  );
  const toRowS: number[] = [];
  const queueS: number[] = [];
  let queued = 0;
  for (const j of r.rows) {
    const wf = j.triggered_by?.replace(/^schedule /, '');
    const t = wf ? taken.get(wf) : undefined;
    if (t) toRowS.push((j.created_at.getTime() - t.getTime()) / 1000);
    if (j.started_at) queueS.push((j.started_at.getTime() - j.created_at.getTime()) / 1000);
    if (j.state === 'queued') queued++;
  }
  return { toRowS, queueS, queued };
}

