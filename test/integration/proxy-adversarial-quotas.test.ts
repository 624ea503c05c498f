// Issue 21 points 4 and 5 (DESIGN.md §4 invariants 11 and 12): a hostile client's job costs the
// shared repository service a bounded amount, and learns nothing of other tenants' data from its
// answers. Each attack is a whole backup job through the real path, with test/fixtures/evil-borg.py
// as the client's borg (see adversarial.ts); the quotas are the client's own (`clients.limits`).
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastLogLines, lastLogSeq, listViolations } from '../../db/queries/jobs.js';
import { ChunkIndex } from '../../proxy/borg/hashindex.js';
import { updateClient } from '../../services/clients.js';
import { runCleanups } from '../harness/cleanup.js';
import { describeJob } from '../harness/backup.js';
import { chunkOf, expectCaught, listArchives, runAttack, setUpWorld, type AdversarialWorld } from '../fixtures/adversarial.js';

const kib = (n: number) => `${Math.round(n / 1024)} KiB`;

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** The borg `chunks` file below a looted job folder. */
function findChunksFile(dir: string): string | undefined {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      const f = findChunksFile(p);
      if (f) return f;
    } else if (name === 'chunks') return p;
  }
  return undefined;
}

/** Forced commands (proxy processes) still running for a job. */
function proxyPids(jobId: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.includes('--job') && argv.includes(jobId)) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('per-job bounds and no existence oracle', () => {
  let w: AdversarialWorld;

  beforeAll(async () => {
    w = await setUpWorld();
  }, 300_000);
  afterAll(async () => {
    if (w) process.stdout.write(`\nadversarial quotas, per attack:\n${w.timings.map((t) => `  ${t.attack.padEnd(20)} ${String(t.ms).padStart(6)} ms  ${t.state}  ${t.kinds.join(',')}`).join('\n')}\n`);
    await runCleanups();
  });

  it('a 2 KB object that decompresses to 64 MiB, sent 20 times: a violation, and the service never holds the plaintext', async () => {
    const pid = w.stack.storage.pid!;
    const before = procStatus(pid, 'VmRSS');
    // Resets the peak (VmHWM) to the current RSS, so the peak below is this attack's.
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const run = await runAttack(w, w.a, 'bomb', { count: 20 });
    const peak = procStatus(pid, 'VmHWM');
    process.stdout.write(`bombs: service RSS before ${kib(before)}, peak during ${kib(peak)} (+${kib(peak - before)})\n`);
    await expectCaught(w, w.a, run, ['quota-object-size']);
    // One plaintext would be 64 MiB; the decoders refuse from the frame header, before allocating.
    expect(peak - before).toBeLessThan(40 * 2 ** 20);
  });

  it('many connections of one credential that never send a byte: a violation past the fourth, all of them closed at once, another tenant unaffected', async () => {
    const n = 12;
    const [run, honest] = await Promise.all([runAttack(w, w.a, 'connection-flood', { count: n, wait: 45 }), runAttack(w, w.b, 'legit')]);
    const r = run.result;
    const context = `${JSON.stringify(r?.steps)} ${r?.error ?? ''}\n${await describeJob(w.stack, run.job.id)}`;
    process.stdout.write(`connection flood (${n}): closed after ${JSON.stringify(r?.closed_seconds)} s; B's backup ${honest.ms} ms\n`);
    expect(honest.job.state, `${honest.job.error}\n${await describeJob(w.stack, honest.job.id)}`).toBe('succeeded');
    // The repository as it was, plus B's new archive.
    const withB = (await listArchives(w.stack, w.repo)).filter((x) => x.name === honest.job.archiveName);
    expect(withB).toHaveLength(1);
    // B's archive is part of the repository from now on, also for the cases after this one.
    w.earlier = [...w.earlier, ...withB].sort((p, q) => p.name.localeCompare(q.name));
    await expectCaught(w, w.a, run, ['quota-connections']);
    const v = await listViolations(w.stack.deps.db, run.job.id);
    expect(v.find((x) => x.kind === 'quota-connections')?.detail, context).toMatch(/connections of the job at once \(at most 4\)/);
    // Before, each stayed until the 30 s open timeout: a proxy process apiece for the whole time.
    expect(r?.closed_seconds?.length, context).toBeGreaterThan(0);
    expect(Math.max(...r!.closed_seconds!), context).toBeLessThan(25);
    expect(r?.still_open ?? 0, context).toBe(0);
    expect(proxyPids(run.job.id)).toEqual([]);
  });

  it('commit spam beyond the client’s commits per minute: a violation', async () => {
    await updateClient(w.stack.deps, w.a.client, { limits: { commitsPerMinute: 10 } });
    try {
      const run = await runAttack(w, w.a, 'commit-spam', { count: 200 });
      await expectCaught(w, w.a, run, ['quota-commits']);
    } finally {
      await updateClient(w.stack.deps, w.a.client, { limits: {} });
    }
  });

  it('puts beyond the client’s put quota: a violation, nothing of them left in the repository', async () => {
    await updateClient(w.stack.deps, w.a.client, { limits: { putsPerJob: 100 } });
    try {
      const run = await runAttack(w, w.a, 'put-flood', { count: 1000 });
      await expectCaught(w, w.a, run, ['quota-puts']);
      // The 900 puts past the quota are refused, but the violation is recorded once, not 900 times.
      expect(await listViolations(w.stack.deps.db, run.job.id)).toHaveLength(1);
    } finally {
      await updateClient(w.stack.deps, w.a.client, { limits: {} });
    }
  });

  it('a flood of WARNING lines: the log is cut at the client’s bound with one line saying so, the backup succeeds', async () => {
    await updateClient(w.stack.deps, w.a.client, { limits: { logLinesPerJob: 2000 } });
    try {
      const run = await runAttack(w, w.a, 'warning-flood', { count: 20_000 });
      const context = `${run.job.state}: ${run.job.error}\n${await describeJob(w.stack, run.job.id)}`;
      expect(run.job.state, context).toBe('succeeded');
      const lines = await lastLogSeq(w.stack.deps.db, run.job.id);
      expect(lines).toBeLessThanOrEqual(2000 + 20);
      const tail = await lastLogLines(w.stack.deps.db, run.job.id, 50);
      expect(tail.filter((l) => l.message.includes('reached its bound'))).toHaveLength(1);
      expect(tail.some((l) => l.message.includes('/evil/19999'))).toBe(false);
    } finally {
      await updateClient(w.stack.deps, w.a.client, { limits: {} });
    }
  });

  it("a client that uploads another client's chunk (padded) sees only its own sizes in its next cache", async () => {
    // A's file alice.txt is one chunk; B guesses its content and uploads it with obfuscate padding.
    const alice = (await listArchives(w.stack, w.repo)).find((a) => a.name.startsWith('alice-'))!;
    const aChunk = await chunkOf(w.stack, w.repo, alice.name, /alice\.txt$/);
    const run = await runAttack(w, w.b, 'oracle-pad', { content: 'alice\n'.repeat(5000) });
    expect(run.job.state, `${run.job.error}\n${await describeJob(w.stack, run.job.id)}`).toBe('succeeded');
    const padded = (run.result as unknown as { padded: { id: string; size: number; csize: number } }).padded;
    // The same content, so the same id: the repository already had it (A's copy).
    expect(padded.id).toBe(aChunk.id);
    expect(padded.csize).not.toBe(aChunk.csize);

    // B's next job: its prepared cache is what the evil borg loots first.
    const next = await runAttack(w, w.b, 'legit');
    expect(next.job.state, `${next.job.error}\n${await describeJob(w.stack, next.job.id)}`).toBe('succeeded');
    const chunksFile = findChunksFile(w.b.host.path('loot', next.job.id));
    expect(chunksFile, 'no chunks file in the looted job folder').toBeDefined();
    const index = ChunkIndex.parse(readFileSync(chunksFile!));
    const entry = index.get(Buffer.from(aChunk.id, 'hex'));
    expect(entry, 'B’s own archive references the chunk, so its cache lists it').toBeDefined();
    expect({ size: entry!.size, csize: entry!.csize }).toEqual({ size: padded.size, csize: padded.csize });
    expect(entry!.refcount).toBe(1);
  });
});
