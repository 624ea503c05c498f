// The restore session's gate while the selection is walked (prepare-restore.ts prepareRestoreStart):
// a get beyond the manifest and the archive waits for the walk, then is allowed or a violation as
// before; a walk that failed or is not running is an error of the session, never a violation.
// Only the gate is exercised: an allowed get ends at a stub of the repository read.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jobServerDir } from '../../../infra/storage-layout.js';
import { IdCollector } from '../id-set.js';
import { allowedIdsPath, servedArchivePath } from '../job-state.js';
import { PolicyViolation, SessionError } from './errors.js';
import type { SessionOpening } from './policy.js';
import { RestoreSession } from './restore.js';

const root = mkdtempSync(join(tmpdir(), 'borgcube-restore-session-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const config = { paths: { storageDir: root } };

function writeIds(jobId: string, ids: Buffer[]): void {
  const c = new IdCollector();
  for (const id of ids) c.add(id);
  c.writeSorted(allowedIdsPath(config as never, jobId));
}

/** A session of a job whose selection is being walked: `walk` is what the service has for it. */
function session(walk: () => Promise<unknown> | undefined) {
  const jobId = randomUUID();
  mkdirSync(jobServerDir(config, jobId), { recursive: true });
  writeFileSync(servedArchivePath(config as never, jobId), Buffer.from('archive'));
  writeIds(jobId, []);
  const opening = {
    job: { id: jobId },
    jobKey: { key: {} },
    state: { fakeRepoId: 'f'.repeat(64), servedManifest: '', idMap: { ['a'.repeat(64)]: 'b'.repeat(64) }, selecting: true },
    config,
    // A get the gate lets through ends here: no repository is read in these tests.
    repo: { sessions: new Set(), info: { path: join(root, 'no-repository') }, use: () => Promise.reject(new Error('reached a repository read')) },
    pool: { registerKey: () => {}, forgetKey: () => {} },
    hooks: { restoreSelection: walk },
    log: { child: () => ({ debug: () => {}, info: () => {}, warn: () => {} }) },
  } as unknown as SessionOpening;
  return { jobId, s: new RestoreSession(opening) };
}

describe('a restore session while its selection is walked', () => {
  it('holds a get back until the walk ends, then serves an id the selection allows', async () => {
    let done!: () => void;
    const { jobId, s } = session(() => new Promise<void>((r) => (done = r)));
    const allowed = randomBytes(32);
    let settled = false;
    const get = s.get(allowed).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    writeIds(jobId, [allowed]);
    done();
    await expect(get).rejects.toThrow(/reached a repository read/);
    await s.close();
  });

  it('holds a get back until the walk ends, then refuses an id the selection does not allow as a violation', async () => {
    let done!: () => void;
    const walk = new Promise<void>((r) => (done = r));
    let asked = 0;
    const { jobId, s } = session(() => (asked++, walk));
    const allowed = randomBytes(32);
    let settled = false;
    const get = s.get(randomBytes(32)).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    // What the walk writes before it ends: the selection's ids replace the empty file.
    writeIds(jobId, [allowed]);
    done();
    await expect(get).rejects.toBeInstanceOf(PolicyViolation);
    // Once made, the selection answers at once: a forbidden id waits for no walk.
    await expect(s.get(randomBytes(32))).rejects.toBeInstanceOf(PolicyViolation);
    expect(asked).toBe(1);
    await s.close();
  });

  it('ends a get with an error of the session, not a violation, when the walk failed or is not running', async () => {
    const failed = session(() => Promise.reject(new Error('path /srv/x is not in archive a')));
    const err = await failed.s.get(randomBytes(32)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SessionError);
    // The client learns nothing of the archive from it.
    expect((err as Error).message).not.toMatch(/srv|archive a/);
    const lost = session(() => undefined);
    await expect(lost.s.get(randomBytes(32))).rejects.toBeInstanceOf(SessionError);
    await failed.s.close();
    await lost.s.close();
  });

  it('opens nothing once closed while a get waited for the walk', async () => {
    let done!: () => void;
    const { jobId, s } = session(() => new Promise<void>((r) => (done = r)));
    const get = s.get(randomBytes(32));
    await new Promise((r) => setTimeout(r, 20));
    await s.close();
    writeIds(jobId, []);
    done();
    await expect(get).rejects.toThrow(/session has ended/);
  });
});
