// Against a real borg 1.2.4 `borg serve`: the cleanup of a job that flooded the repository with
// objects (issue 21 point 4) does not hold the commit lock for its whole sweep, so another
// tenant's commit goes through meanwhile, and nothing another live session claims is deleted.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../infra/logger.js';
import { runChecked } from '../../infra/subprocess.js';
import { tempDir } from '../../test/harness/temp-dir.js';
import type { BorgKey } from '../borg/keys.js';
import type { CryptoPool } from './crypto-pool.js';
import { RepositoryHandle, type LiveSession } from './repository.js';
import { Upstream } from './upstream.js';
import { sweepPutLog } from './sweep.js';

const log = createLogger({ name: 'test', level: 'warn' });
const COMMIT = { save_space: false, compact: false, threshold: 0.1, cleanup_commits: false };

describe('sweeping a flooding job', () => {
  const open: Upstream[] = [];
  afterEach(async () => {
    for (const up of open.splice(0)) await up.close();
  });

  it("another tenant's commit runs while the sweep goes on; claimed objects stay", async () => {
    const dir = tempDir('sweep');
    const repoPath = join(dir, 'repo');
    await runChecked('borg', ['init', '--encryption', 'none', repoPath]);
    const up = await Upstream.start({ borgPath: 'borg', repoPath, lockWait: 5, log });
    open.push(up);
    await up.openRepository();
    // The sweep needs neither the key nor the crypto pool.
    const pool = { registerKey: () => {} } as unknown as CryptoPool;
    const repo = new RepositoryHandle({ id: 'r', name: 'r', path: repoPath, borgId: '' }, {} as BorgKey, { borgPath: 'borg', stateDir: join(dir, 'state'), log, pool });

    // Job A's flood: 3,000 uncommitted objects in the shared transaction, listed in its put log.
    const ids = Array.from({ length: 3000 }, () => randomBytes(32));
    await Promise.all(ids.map((id) => up.call('put', { id, data: randomBytes(16) })));
    const putLog = join(dir, 'A.puts');
    writeFileSync(putLog, Buffer.concat(ids));
    // A live session of job B put one of the same ids (the same content): it must stay.
    const kept = ids[2321]!.toString('hex');
    const b: LiveSession = { jobId: 'B', claims: new Set<string>(), puts: new Set([kept]), logPuts: () => {} };
    repo.sessions.add(b);

    let sweepDone = false;
    const sweeping = sweepPutLog(repo, up, putLog, 'A').then((n) => ((sweepDone = true), n));
    // Let the sweep take the lock first, as a job cleaned up before C commits.
    await new Promise((r) => setImmediate(r));
    expect(repo.commitLock.locked).toBe(true);
    const c = randomBytes(32);
    const t0 = Date.now();
    await repo.commitLock.run(async () => {
      await up.call('put', { id: c, data: Buffer.from('carol') });
      await up.commit(COMMIT);
    });
    const commitMs = Date.now() - t0;
    // Before, C waited for every one of A's deletes.
    expect(sweepDone, `C's commit took ${commitMs} ms`).toBe(false);

    expect(await sweeping).toBe(ids.length - 1);
    // What was committed, as a fresh borg serve sees it.
    await up.close();
    const again = await Upstream.start({ borgPath: 'borg', repoPath, lockWait: 5, log });
    open.push(again);
    await again.openRepository();
    expect(Buffer.from((await again.call('get', { id: c })) as Buffer).toString()).toBe('carol');
    expect(await again.call('get', { id: Buffer.from(kept, 'hex') })).toBeInstanceOf(Buffer);
    for (const id of [ids[0]!, ids[1500]!, ids[2999]!]) await expect(again.call('get', { id })).rejects.toMatchObject({ cls: 'ObjectNotFound' });
  }, 120_000);
});
