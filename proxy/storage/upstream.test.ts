// Against a real borg 1.2.4 `borg serve`: what the upstream relies on of its transactions.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../infra/logger.js';
import { runChecked } from '../../infra/subprocess.js';
import { tempDir } from '../../test/harness/temp-dir.js';
import { Upstream, UpstreamError } from './upstream.js';

const log = createLogger({ name: 'test', level: 'warn' });

describe('borg serve transactions', () => {
  const open: Upstream[] = [];
  afterEach(async () => {
    for (const up of open.splice(0)) await up.close();
  });

  async function upstream(): Promise<Upstream> {
    const repoPath = join(tempDir('upstream'), 'repo');
    await runChecked('borg', ['init', '--encryption', 'none', repoPath]);
    const up = await Upstream.start({ borgPath: 'borg', repoPath, lockWait: 5, log });
    open.push(up);
    await up.openRepository();
    return up;
  }

  it('borg fails a commit with nothing written since the last one; Upstream.commit skips it', async () => {
    const up = await upstream();
    await up.call('put', { id: randomBytes(32), data: randomBytes(100) });
    await up.call('commit', { save_space: false, compact: false, threshold: 0.1, cleanup_commits: false });
    // What a client's second commit did to its session before.
    await expect(up.call('commit', { save_space: false, compact: false, threshold: 0.1, cleanup_commits: false })).rejects.toBeInstanceOf(UpstreamError);
  }, 60_000);

  it('commits what was written, and a commit with nothing new is a no-op', async () => {
    const up = await upstream();
    const args = { save_space: false, compact: false, threshold: 0.1, cleanup_commits: false };
    await up.commit(args);
    const id = randomBytes(32);
    await up.call('put', { id, data: Buffer.from('kept') });
    await up.commit(args);
    await up.commit(args);
    await up.commit(args);
    expect(Buffer.from((await up.call('get', { id })) as Buffer).toString()).toBe('kept');
    await up.call('delete', { id });
    await up.commit(args);
    await expect(up.call('get', { id })).rejects.toMatchObject({ cls: 'ObjectNotFound' });
  }, 60_000);
});
