// Issue 21 point 6: after a backup the worker pulls the client's files cache back over SFTP from
// the job folder — a folder the client controls. Here the client (test/fixtures/evil-borg.py, real
// sshd, real proxy) writes a valid archive and then replaces the files cache with a symlink to
// /dev/zero, a FIFO, a device node, or a hard link to a 50 GB (sparse) file. Each time the backup
// still succeeds, the pull refuses the file with a line in the job's log, nothing is kept on the
// server, nothing hangs, and the job folder is removed as always.
import { chownSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logLinesAfter } from '../../db/queries/jobs.js';
import { run } from '../../infra/subprocess.js';
import { jobPulledFilesCachePath } from '../../infra/storage-layout.js';
import { runCleanups } from '../harness/cleanup.js';
import { describeJob } from '../harness/backup.js';
import { runAttack, setUpWorld, type AdversarialWorld } from '../fixtures/adversarial.js';

describe('a files cache the client replaced is not pulled back', () => {
  let w: AdversarialWorld;

  beforeAll(async () => {
    w = await setUpWorld();
  }, 300_000);
  afterAll(async () => {
    await runCleanups();
  });

  async function swapped(how: string, refusal: RegExp) {
    const run0 = await runAttack(w, w.a, 'legit-swap', { files_cache: how });
    const { job } = run0;
    const context = `${job.state}: ${job.error}\n${await describeJob(w.stack, job.id)}`;
    expect(run0.result?.steps.map((s) => s.what), context).toContain('replaced the files cache');
    // The backup's outcome does not depend on its files cache.
    expect(job.state, context).toBe('succeeded');
    const lines = (await logLinesAfter(w.stack.deps.db, job.id, 0, 10_000)).filter((l) => l.type === 'borgcube').map((l) => l.message);
    expect(lines.join('\n'), context).toMatch(refusal);
    expect(existsSync(jobPulledFilesCachePath(w.stack.config, job.id))).toBe(false);
    expect(existsSync(w.a.host.path('.borgcube', 'jobs', job.id)), 'the job folder is still on the client').toBe(false);
    // Well within the activity timeouts: nothing waited on the file.
    expect(run0.ms).toBeLessThan(90_000);
  }

  it('a symlink to /dev/zero', async () => {
    await swapped('symlink:/dev/zero', /files cache was not kept: .*files is a symbolic link/);
  });

  it('a FIFO (opening it would block the sftp-server forever)', async () => {
    await swapped('fifo', /files cache was not kept: .*files is a FIFO/);
  });

  it('a device node', async () => {
    // The client account cannot make one; root makes it in the client's home, the client moves it.
    const node = w.a.host.path('zero-device');
    const r = await run('mknod', [node, 'c', '1', '5']);
    expect(r.code, r.stderr.toString()).toBe(0);
    chownSync(node, w.a.host.uid, w.a.host.gid);
    await swapped(`rename:${node}`, /files cache was not kept: .*files is a device/);
  });

  it('a hard link to a 50 GB file', async () => {
    const big = w.a.host.path('big.sparse');
    const r = await run('truncate', ['-s', '50G', big]);
    expect(r.code, r.stderr.toString()).toBe(0);
    chownSync(big, w.a.host.uid, w.a.host.gid);
    await swapped(`hardlink:${big}`, /files cache was not kept: .*files is 53687091200 bytes, more than 1073741824/);
  });
});
