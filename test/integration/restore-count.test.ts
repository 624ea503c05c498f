// How a restore into an empty folder is checked without borg's --list (activities/remote-borg/
// restore-target.ts): the decision before borg starts and the count afterwards, both shell scripts
// run over a real SSH session as an unprivileged client account (Debian's dash as its shell); and
// the failed restore's cleanup of the target folders it made (job-folder.ts removeScript).
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreSpec } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import { createLogger } from '../../infra/logger.js';
import { SshConnection } from '../../infra/ssh.js';
import { createJobFolders } from '../../activities/remote-borg/job-folder.js';
import { countRestoreTarget, MADE_TARGET, prepareRestoreTarget } from '../../activities/remote-borg/restore-target.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { generateTestKey } from '../harness/keys.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';

describe('restore check by counting the target', () => {
  let sshd: ClientSshd;
  let host: ClientHost;
  let conn: SshConnection;
  let jobs = 0;

  beforeAll(async () => {
    const key = generateTestKey();
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [key.publicKey] });
    conn = await SshConnection.connect({ host: sshd.host, port: sshd.port, username: host.username }, { privateKey: key.privateKey, pinnedHostKey: sshd.hostPublicKey });
  });
  afterAll(async () => {
    conn?.close();
    await sshd?.stop();
    await runCleanups();
  });

  const spec = (target: string, over: Partial<RestoreSpec> = {}): RestoreSpec => ({ archiveId: 'x', archiveBorgId: 'f'.repeat(64), archiveName: 'a', sourceClientId: null, paths: [], target, inPlace: false, stripComponents: 0, ...over });
  /** A fresh job folder, as pushJobFolder leaves it. */
  async function jobDir(): Promise<string> {
    const dir = host.path('.borgcube', 'jobs', `job-${++jobs}`);
    await sh(`mkdir -p -m 0700 ${dir}`);
    return dir;
  }
  async function sh(script: string): Promise<void> {
    const r = await conn.execRaw(script, { timeoutMs: 30_000 });
    expect(r.code, r.stderr.toString()).toBe(0);
  }

  it('counts into a new folder, and keeps that decision when the folder has filled (a retried run)', async () => {
    const dir = await jobDir();
    const s = spec(host.path('new', 'target'));
    expect(await prepareRestoreTarget(conn, s, dir, true)).toBe('count');
    // What borg might restore: files, a symlink, a FIFO, a name with a newline, nested folders.
    await sh(`cd ${s.target} && mkdir -p a/b/c && echo x > a/f && ln -s f a/l && mkfifo a/p && touch "a/new
line" && : > a/b/c/empty`);
    expect(await prepareRestoreTarget(conn, s, dir, true)).toBe('count');
    expect(await countRestoreTarget(conn, s, dir)).toEqual({ nondirs: 5, dirs: 3, unreadable: false });
  });

  it('a failed restore’s cleanup removes the target folders the job made while they are empty, and nothing else', async () => {
    // remove() reads nothing of the storage side.
    const folders = createJobFolders({ config: { paths: { storageDir: host.path('unused') } } as unknown as Config, log: createLogger({ name: 'test', level: 'silent' }), storageAccount: () => { throw new Error('not needed'); } });
    const prepared = async (target: string) => {
      const dir = await jobDir();
      expect(await prepareRestoreTarget(conn, spec(target), dir, true)).toBe('count');
      return dir;
    };
    // Three folders made, all still empty: all gone, with the job folder; what was there stays.
    const made = host.path('made', 'a', 'b');
    await folders.remove(conn, await prepared(made), made);
    expect(existsSync(host.path('made'))).toBe(false);
    expect(existsSync(host.home)).toBe(true);
    // What borg restored stays, and the folders above it.
    const kept = host.path('kept', 'x');
    const keptDir = await prepared(kept);
    await sh(`echo restored > ${kept}/f`);
    await folders.remove(conn, keptDir, kept);
    expect(readdirSync(kept)).toEqual(['f']);
    // A folder that existed before the job stays, even empty; so does a made one after a success (no target given).
    const existing = host.path('existing');
    await sh(`mkdir ${existing}`);
    await folders.remove(conn, await prepared(existing), existing);
    expect(existsSync(existing)).toBe(true);
    const succeeded = host.path('succeeded');
    await folders.remove(conn, await prepared(succeeded));
    expect(existsSync(succeeded)).toBe(true);
    // The record is the client's file: anything but a number is no count, never a command.
    const forged = host.path('forged');
    const forgedDir = await prepared(forged);
    writeFileSync(join(forgedDir, MADE_TARGET), `1; touch ${host.path('ran')}`);
    await folders.remove(conn, forgedDir, forged);
    expect(existsSync(forged)).toBe(true);
    expect(existsSync(host.path('ran'))).toBe(false);
    expect(existsSync(forgedDir)).toBe(false);
    // A leading zero (no number to the shell's arithmetic) neither stops the folder's removal.
    const octal = host.path('octal');
    const octalDir = await prepared(octal);
    writeFileSync(join(octalDir, MADE_TARGET), '08');
    await folders.remove(conn, octalDir, octal);
    expect(existsSync(octal)).toBe(true);
    expect(existsSync(octalDir)).toBe(false);
  });

  it('lists into a folder that holds something, in place, and with --strip-components (the folder still made)', async () => {
    await sh(`mkdir -p ${host.path('used')} && touch ${host.path('used', '.hidden')}`);
    expect(await prepareRestoreTarget(conn, spec(host.path('used')), await jobDir(), true)).toBe('list');
    expect(await prepareRestoreTarget(conn, spec('/', { inPlace: true }), await jobDir(), true)).toBe('list');
    const stripped = spec(host.path('stripped'), { stripComponents: 2 });
    expect(await prepareRestoreTarget(conn, stripped, await jobDir(), true)).toBe('list');
    await sh(`test -d ${stripped.target}`);
    // A storage host that prepared without the distinct counts: listed.
    expect(await prepareRestoreTarget(conn, spec(host.path('old-host')), await jobDir(), false)).toBe('list');
  });

  it('a job folder gone from the client ends the round as JobFolderMissing, not as a retried error', async () => {
    const gone = host.path('.borgcube', 'jobs', 'never-pushed');
    await expect(prepareRestoreTarget(conn, spec(host.path('for-gone')), gone, true)).rejects.toMatchObject({ type: 'JobFolderMissing', nonRetryable: true });
  });

  it('follows a target that is a link to an empty folder', async () => {
    await sh(`mkdir ${host.path('real')} && ln -s real ${host.path('linked')}`);
    const s = spec(host.path('linked'));
    const dir = await jobDir();
    expect(await prepareRestoreTarget(conn, s, dir, true)).toBe('count');
    await sh(`mkdir ${host.path('real', 'd')} && touch ${host.path('real', 'd', 'f')}`);
    expect(await countRestoreTarget(conn, s, dir)).toEqual({ nondirs: 1, dirs: 1, unreadable: false });
  });

  it('says so when a restored folder cannot be read, and fails when find fails otherwise', async () => {
    const s = spec(host.path('closed'));
    const dir = await jobDir();
    expect(await prepareRestoreTarget(conn, s, dir, true)).toBe('count');
    await sh(`cd ${s.target} && mkdir -p shut open && touch shut/x open/y && chmod 000 shut`);
    try {
      expect(await countRestoreTarget(conn, s, dir)).toEqual({ nondirs: 1, dirs: 2, unreadable: true });
    } finally {
      await sh(`chmod 700 ${host.path('closed', 'shut')}`);
    }
    await expect(countRestoreTarget(conn, spec(host.path('no-such-folder')), dir)).rejects.toThrow(/counting what was restored into ".*no-such-folder" failed: exit 3/);
  });

  it('counts with one walk where find has -printf (GNU), with two where it has none (BusyBox): the same', async () => {
    // The same account behind sshds whose sessions find a `find` shim first that refuses one option.
    const key = generateTestKey();
    host.authorize(key.publicKey);
    const opened: Array<{ sshd: ClientSshd; conn?: SshConnection }> = [];
    async function refusing(option: string): Promise<SshConnection> {
      const shim = `find-without${option}`;
      host.writeTree({ [`${shim}/find`]: { type: 'file', mode: 0o755, content: ['#!/bin/sh', `for a; do [ "$a" = ${option} ] && { echo "find: unrecognized: ${option}" >&2; exit 1; }; done`, 'exec /usr/bin/find "$@"', ''].join('\n') } });
      const d = await startClientSshd({ extraConfig: [`SetEnv PATH=${host.path(shim)}:/usr/bin:/bin`] });
      const o: { sshd: ClientSshd; conn?: SshConnection } = { sshd: d };
      opened.push(o);
      const c = await SshConnection.connect({ host: d.host, port: d.port, username: host.username }, { privateKey: key.privateKey, pinnedHostKey: d.hostPublicKey });
      o.conn = c;
      const r = await c.execRaw(`find . -maxdepth 0 ${option} x`, { timeoutMs: 30_000 });
      expect(r.code).not.toBe(0);
      return c;
    }
    try {
      const busybox = await refusing('-printf');
      // Only the one walk with -printf can count here.
      const gnu = await refusing('-print0');
      const s = spec(host.path('both'));
      const dir = await jobDir();
      expect(await prepareRestoreTarget(busybox, s, dir, true)).toBe('count');
      await sh(`cd ${s.target} && mkdir -p a/b shut && echo x > a/f && ln -s f a/l && mkfifo a/p && touch "a/new
line" shut/x && chmod 000 shut`);
      try {
        const counted = { nondirs: 4, dirs: 3, unreadable: true };
        expect(await countRestoreTarget(busybox, s, dir)).toEqual(counted);
        expect(await countRestoreTarget(gnu, s, dir)).toEqual(counted);
        expect(await countRestoreTarget(conn, s, dir)).toEqual(counted);
      } finally {
        await sh(`chmod 700 ${host.path('both', 'shut')}`);
      }
    } finally {
      for (const o of opened) {
        o.conn?.close();
        await o.sshd.stop();
      }
    }
  });
});
