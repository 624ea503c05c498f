// Issue 21 point 9 (DESIGN.md §4.12): what a client is told when something goes wrong carries no
// server path, no other job's name and no internal message — the repository's PermissionError or
// ENOSPC becomes "the repository is unavailable (ref …)", a violation its kind — while the job's
// log on the server has the real text under the same ref. Provoked through the real path (worker
// → SSH → client → test/fixtures/evil-borg.py, which records every byte the proxy sends back →
// BorgCube's sshd → proxy → repository service → borg serve), on a repository that lives on a
// small tmpfs of its own, so that it can be made unwritable and then full.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logLinesAfter } from '../../db/queries/jobs.js';
import type { Job } from '../../db/schema.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { run } from '../../infra/subprocess.js';
import { readResult, runAttack, setUpWorld, type AdversarialWorld, type AttackResult } from '../fixtures/adversarial.js';

/** Words of internal messages a client must never see. */
const INTERNAL = /Errno|Permission denied|No space|ENOSPC|EACCES|EIO|Insufficient free space|borg serve|Traceback|\.py"/;

describe('what a client sees of errors on the server', () => {
  let w: AdversarialWorld;
  let fullRepoPath: string;
  const fullRepo = 'small';

  beforeAll(async () => {
    w = await setUpWorld();
    fullRepoPath = `${w.stack.dataDir}-repos/${fullRepo}`;
    mkdirSync(fullRepoPath, { recursive: true });
    const m = await run('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'borgcube-test-small', fullRepoPath]);
    expect(m.code, m.stderr.toString()).toBe(0);
    // Lazily: borg serve may still hold files in it while the stack stops after this.
    registerCleanup(`unmount ${fullRepoPath}`, async () => void (await run('umount', ['-l', fullRepoPath])));
    const r = await w.stack.cli(['repo', 'add', fullRepo, '--path', fullRepoPath]);
    expect(r.code, r.err).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await runCleanups();
  });

  /** Everything the client got from BorgCube: the RPC bytes, the error it saw, the lines it printed. */
  async function clientSide(job: Job, result: AttackResult | undefined): Promise<string> {
    const received = readFileSync(w.a.host.path('loot', job.id, 'received')).toString('latin1');
    const lines = (await logLinesAfter(w.stack.deps.db, job.id, 0, 10_000)).filter((l) => l.type !== 'borgcube');
    return [received, result?.error ?? '', ...lines.map((l) => l.message)].join('\n');
  }

  async function serverSide(job: Job): Promise<string> {
    return (await logLinesAfter(w.stack.deps.db, job.id, 0, 10_000))
      .filter((l) => l.type === 'borgcube')
      .map((l) => l.message)
      .join('\n');
  }

  /** No path of the server, no other client's archive, nothing internal. */
  function expectNothingInternal(seen: string) {
    expect(seen).not.toContain(w.stack.dataDir);
    expect(seen).not.toContain(fullRepoPath);
    expect(seen).not.toContain(w.repoPath);
    for (const a of w.earlier.filter((x) => x.name.startsWith('bob-'))) expect(seen).not.toContain(a.name);
    expect(seen).not.toMatch(INTERNAL);
  }

  it('a repository folder borg serve cannot write: "repository unavailable (ref …)"; the job log has the real error', async () => {
    const segments = join(fullRepoPath, 'data', '0');
    chmodSync(segments, 0o500);
    try {
      const { job, result } = await runAttack({ ...w, repo: fullRepo }, w.a, 'legit');
      expect(job.state).not.toBe('succeeded');
      const seen = await clientSide(job, result);
      expectNothingInternal(seen);
      const ref = /repository is unavailable; try again later \(ref ([0-9a-f]{8})\)/.exec(seen)?.[1];
      expect(ref, seen.slice(-2000)).toBeDefined();
      const log = await serverSide(job);
      expect(log).toContain(`ref ${ref}`);
      expect(log).toMatch(/Permission denied/);
      expect(log).toContain(fullRepoPath);
    } finally {
      chmodSync(segments, 0o700);
    }
  });

  it('a full repository file system: the same, with ENOSPC (or borg\'s free-space check) in the job log only', async () => {
    // Fill the tmpfs up to the last byte (root is held to the size limit too).
    const filler = join(fullRepoPath, 'filler');
    await run('sh', ['-c', `dd if=/dev/zero of='${filler}' bs=1M 2>/dev/null; dd if=/dev/zero of='${filler}.2' bs=4k 2>/dev/null; true`]);
    const df = await run('df', ['-B1', '--output=avail', fullRepoPath]);
    expect(Number(df.stdout.toString().split('\n')[1])).toBeLessThan(64 * 1024);
    const { job, result } = await runAttack({ ...w, repo: fullRepo }, w.a, 'legit');
    writeFileSync(filler, '');
    writeFileSync(`${filler}.2`, '');
    expect(job.state).not.toBe('succeeded');
    const seen = await clientSide(job, result);
    expectNothingInternal(seen);
    const ref = /\(ref ([0-9a-f]{8})\)/.exec(seen)?.[1];
    expect(ref, seen.slice(-2000)).toBeDefined();
    const log = await serverSide(job);
    expect(log).toContain(`ref ${ref}`);
    expect(log).toMatch(/No space left on device|Insufficient free space/);
  });

  it('a violation: the client is told its kind, the job log has what it attempted', async () => {
    const { job } = await runAttack(w, w.a, 'put-bad-mac', {});
    expect(job.state).toBe('violation');
    const seen = await clientSide(job, readResult(w.a, job.id));
    expectNothingInternal(seen);
    expect(seen).toContain('BorgCube refused this (bad-mac)');
    // The detail (which object, what did not verify) is the server's to read.
    const log = await serverSide(job);
    expect(log).toMatch(/violation \(bad-mac\): put [0-9a-f]{64}/);
    expect(seen).not.toMatch(/put [0-9a-f]{64}:/);
  });
});
