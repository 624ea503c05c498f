// `npm run bench:fleet -- --console-only`: the console's target of issue 23 alone — the
// dashboard's and the jobs list's p99 < 300 ms with 10,000 clients and 100,000 jobs in the
// database — without Temporal and without the fleet's schedules. The database is seeded as the
// full run seeds it (fleet-stack.ts seed), the web console runs as its own process, and one
// viewer (an API token of the viewer role) requests every page of a round in turn, `rounds`
// times. Besides the two pages of the target it requests the variants a person uses: the jobs
// list filtered by state, by client and by repository, a page deep in the history (keyset
// cursor), the clients list (first page, a name search, a later page) and the JSON API's lists.
//
// `--load`: while the viewer measures, a writer does to the database what a running fleet does
// (fleet-load.ts): jobs created, running and finished, log lines, archive rows.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Stack } from '../../test/harness/stack-launcher.js';
import { dist, sampleProcs } from './fleet-figures.js';
import { f1, mb, note, print, table } from './report.js';

export interface ConsolePage {
  name: string;
  path: string;
  /** One of the pages the target is about. */
  target?: boolean;
}

/** The pages of one round; the cursors of the later pages are read from the seeded database. */
export async function consolePages(stack: Stack): Promise<ConsolePage[]> {
  const q = <T extends Record<string, unknown>>(text: string) => stack.db.handle.pool.query<T>(text).then((r) => r.rows);
  const [client] = await q<{ name: string }>(`select name from clients order by name offset (select count(*) / 2 from clients) limit 1`);
  const [repo] = await q<{ name: string }>(`select name from repositories order by name limit 1`);
  // Half-way through the history: the keyset cursor the jobs list itself hands out (micros_id).
  const [deep] = await q<{ us: string; id: string }>(`select (extract(epoch from created_at) * 1000000)::bigint::text as us, id from jobs order by created_at desc, id desc offset (select count(*) / 2 from jobs) limit 1`);
  const [later] = await q<{ name: string }>(`select name from clients order by name offset (select count(*) / 2 from clients) limit 1`);
  const prefix = client ? client.name.slice(0, -2) : 'fleet-';
  const pages: ConsolePage[] = [
    { name: 'dashboard', path: '/', target: true },
    { name: 'jobs', path: '/jobs', target: true },
    { name: 'jobs state=failed', path: '/jobs?state=failed', target: true },
    { name: 'jobs state=running', path: '/jobs?state=running', target: true },
    { name: 'jobs client=…', path: `/jobs?client=${encodeURIComponent(client?.name ?? '')}`, target: true },
    { name: 'jobs kind=restore (none)', path: '/jobs?kind=restore', target: true },
    { name: 'jobs repository=… kind=backup', path: `/jobs?repository=${encodeURIComponent(repo?.name ?? '')}&kind=backup`, target: true },
    { name: 'jobs, page 1,000', path: deep ? `/jobs?cursor=${deep.us}_${deep.id}` : '/jobs', target: true },
    { name: 'clients', path: '/clients' },
    { name: `clients search=${prefix}`, path: `/clients?search=${encodeURIComponent(prefix)}` },
    { name: 'clients, later page', path: `/clients?cursor=${encodeURIComponent(later?.name ?? '')}` },
    { name: 'API jobs', path: '/api/v1/jobs' },
    { name: 'API clients limit=100', path: '/api/v1/clients?limit=100' },
  ];
  return pages;
}

/** The web process's event loop delay since the last scrape (prom-client's default metrics, reset by each scrape). */
async function eventLoop(url: string): Promise<{ p50: number; p99: number; max: number } | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
    const v = (name: string) => Number(new RegExp(`^borgcube_web_nodejs_eventloop_lag_${name}_seconds(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1]) * 1000;
    return { p50: v('p50'), p99: v('p99'), max: v('max') };
  } catch {
    return undefined;
  }
}

export interface ConsoleRun {
  lat: Map<string, number[]>;
  bytes: Map<string, number>;
  errors: string[];
  loop?: { p50: number; p99: number; max: number };
  webCpuS: number;
  wallS: number;
}

/** `rounds` rounds over `pages`, one request at a time, `pauseMs` between rounds. */
export async function measureConsole(url: string, token: string, webPid: number | undefined, pages: ConsolePage[], rounds: number, pauseMs: number): Promise<ConsoleRun> {
  const lat = new Map(pages.map((p) => [p.name, [] as number[]]));
  const bytes = new Map<string, number>();
  const errors: string[] = [];
  const headers = { authorization: `Bearer ${token}` };
  // One round first, unmeasured: the web process's first dashboard reads the per-client summaries.
  for (const p of pages) await (await fetch(`${url}${p.path}`, { headers })).text();
  await eventLoop(url);
  const cpu0 = sampleProcs({ web: webPid });
  for (let r = 0; r < rounds; r++) {
    for (const p of pages) {
      const t = performance.now();
      try {
        const res = await fetch(`${url}${p.path}`, { headers });
        const body = await res.text();
        const dt = performance.now() - t;
        if (res.status !== 200) errors.push(`${p.path}: HTTP ${res.status} ${body.slice(0, 160)}`);
        else {
          lat.get(p.name)!.push(dt);
          bytes.set(p.name, body.length);
        }
      } catch (err) {
        errors.push(`${p.path}: ${(err as Error).message}`);
      }
    }
    if ((r + 1) % 25 === 0) note(`${r + 1} of ${rounds} rounds`);
    if (pauseMs) await sleep(pauseMs);
  }
  const cpu1 = sampleProcs({ web: webPid });
  const loop = await eventLoop(url);
  return { lat, bytes, errors, loop, webCpuS: cpu1.cpu.web! - cpu0.cpu.web!, wallS: (cpu1.t - cpu0.t) / 1000 };
}

/** The table of the run and the target's verdicts; true when every target page passed. */
export function printConsoleRun(run: ConsoleRun, pages: ConsolePage[], targetMs: number): boolean {
  table(
    ['page', 'path', 'p50 ms', 'p99 ms', 'max ms', 'n', 'size'],
    pages.map((p) => {
      const d = dist(run.lat.get(p.name) ?? []);
      return [p.name, p.path.length > 48 ? `${p.path.slice(0, 45)}…` : p.path, f1(d.p50), f1(d.p99), f1(d.max), String(d.n), mb(run.bytes.get(p.name) ?? NaN)];
    }),
  );
  if (run.errors.length) print(`  ${run.errors.length} failed requests, e.g. ${run.errors[0]}`);
  print(`Web process: ${f1(run.webCpuS)} CPU-s over ${f1(run.wallS)} s (${(run.webCpuS / run.wallS).toFixed(2)} cores)${run.loop ? `; event loop delay p50 ${f1(run.loop.p50)} ms, p99 ${f1(run.loop.p99)} ms, max ${f1(run.loop.max)} ms` : ''}`);
  print();
  print('Targets:');
  let ok = !run.errors.length;
  for (const p of pages.filter((x) => x.target)) {
    const d = dist(run.lat.get(p.name) ?? []);
    const pass = d.n > 0 && d.p99 < targetMs;
    ok &&= pass;
    print(`  ${pass ? 'PASS' : 'FAIL'}  ${p.name} p99 ${f1(d.p99)} ms < ${targetMs} ms`);
  }
  if (run.errors.length) print('  FAIL  every request answered 200');
  return ok;
}
