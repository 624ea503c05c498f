// A restore into an empty folder runs borg extract without --list (restore-target.ts), so borg
// reports only bytes: the items restored so far are counted in the target while it runs and go
// out with its progress (DetachedBorg.countSoFar). Here the "borg" is a script that makes a file
// every 0.2 s and reports its progress as borg does; the follower, SSH, PostgreSQL and Redis are real.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { borgExtract, countSoFar } from '../../activities/remote-borg/borg-extract.js';
import { runDetached, type DetachedResult } from '../../activities/remote-borg/detached-run.js';
import * as jobsQ from '../../db/queries/jobs.js';
import { insertRepository } from '../../db/queries/repositories.js';
import type { Job, RestoreSpec } from '../../db/schema.js';
import { loadConfig } from '../../infra/config.js';
import { createEventPublisher, createRedis, jobChannel, jobEvent, type EventPublisher, type ProgressEvent } from '../../infra/events.js';
import { shellQuote } from '../../infra/shell-quote.js';
import { SshConnection } from '../../infra/ssh.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { createTestDatabase, type TestDatabase } from '../harness/db.js';
import { generateTestKey } from '../harness/keys.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';

const files = 40;

/** Makes f1…f40 in its folder, one every 0.2 s, and says so as borg extract's --progress --log-json would. */
const fakeBorg = [
  '#!/bin/sh',
  'i=0',
  `while [ $i -lt ${files} ]; do`,
  '  i=$((i + 1)); : > "f$i"',
  `  printf '{"type": "progress_percent", "msgid": "extract", "finished": false, "current": %d, "total": ${files * 100}, "info": ["f%d"], "time": %s}\\n' $((i * 100)) $i "$(date +%s)" >&2`,
  '  sleep 0.2',
  'done',
  `printf '{"type": "progress_percent", "msgid": "extract", "finished": true, "time": %s}\\n' "$(date +%s)" >&2`,
  '',
].join('\n');

describe('a restore counted in its target: live item counts', () => {
  let t: TestDatabase;
  let events: EventPublisher;
  let sshd: ClientSshd;
  let host: ClientHost;
  let conn: SshConnection;
  let repositoryId: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    events = createEventPublisher(createRedis(loadConfig().redisUrl));
    registerCleanup('event publisher', () => events.close());
    const repo = await insertRepository(t.handle.db, { name: 'r1', path: '/nonexistent/r1', storageHost: 'local', encryption: 'repokey', borgId: 'ab'.repeat(32), keySealed: 'x', passphraseSealed: 'x' });
    repositoryId = repo.id;
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

  /**
   * A job, its folder on the client as pushJobFolder leaves it, and the fake borg's restore into
   * the new, empty folder `targetName`, counted there.
   */
  async function restoreRun(targetName: string) {
    const jobId = (await jobsQ.insertJob(t.handle.db, { id: randomUUID(), kind: 'backup', repositoryId })).id;
    const dir = host.path('.borgcube', 'jobs', jobId);
    const target = host.path(targetName);
    host.writeTree({ 'fake-borg': { type: 'file', mode: 0o755, content: fakeBorg } });
    const prep = await conn.execRaw(`mkdir -p -m 0700 ${dir} ${target} && : > ${dir}/key`, { timeoutMs: 30_000 });
    expect(prep.code, prep.stderr.toString()).toBe(0);
    const spec: RestoreSpec = { archiveId: 'x', archiveBorgId: 'f'.repeat(64), archiveName: 'a', sourceClientId: null, paths: [], target, inPlace: false, stripComponents: 0 };
    return { jobId, dir, borg: borgExtract('ssh://borgcube@127.0.0.1:1/job', { id: jobId, restore: spec } as Job, 'a', host.path('fake-borg'), 'count') };
  }

  it('counts what is in the target', async () => {
    const target = host.path('counted');
    const r = await conn.execRaw(`mkdir -p ${target}/a/b && touch ${target}/a/f "${target}/a/new\nline" && ln -s f ${target}/a/l`, { timeoutMs: 30_000 });
    expect(r.code, r.stderr.toString()).toBe(0);
    expect(await countSoFar(conn, target, new AbortController().signal)).toBe(5);
    expect(await countSoFar(conn, host.path('not-there'), new AbortController().signal)).toBe(0);
    // The target is data, whatever it holds.
    const hostile = host.path(`it's a $(touch ${host.path('pwned')}) \`x\` "dir"\nline`);
    const made = await conn.execRaw(`mkdir -p ${shellQuote(hostile)}/sub && touch ${shellQuote(hostile)}/sub/f`, { timeoutMs: 30_000 });
    expect(made.code, made.stderr.toString()).toBe(0);
    expect(await countSoFar(conn, hostile, new AbortController().signal)).toBe(2);
    expect(existsSync(host.path('pwned'))).toBe(false);
  });

  it('sends the items counted so far with the progress while borg runs, and the run ends as before', async () => {
    const { jobId, dir, borg } = await restoreRun('restore-into');

    const sub = createRedis(loadConfig().redisUrl);
    registerCleanup('redis subscriber', () => void sub.disconnect());
    const progress: ProgressEvent[] = [];
    sub.on('message', (_ch, msg: string) => {
      const e = jobEvent.parse(JSON.parse(msg));
      if (e.type === 'progress') progress.push(e);
    });
    await sub.subscribe(jobChannel(jobId));

    expect(borg.argv).not.toContain('--list');
    const res: DetachedResult = await new MockActivityEnvironment().run(() => runDetached({ db: t.handle.db, events, pollMs: 100 }, { conn, jobId, dir }, borg));
    expect(res.rc).toBe(0);
    expect(res.listed).toBe(0);
    // The run took ~8 s: at least one count (the first after 5 s) went out with a progress line
    // while borg was still making files; before it, the items were not known.
    await new Promise((r) => setTimeout(r, 200));
    expect(progress.length).toBeGreaterThan(files / 2);
    const live = progress.filter((p) => p.nfiles > 0);
    expect(live.length, JSON.stringify(progress.map((p) => [p.originalSize, p.nfiles]))).toBeGreaterThan(0);
    expect(live[0]!.nfiles).toBeLessThan(files);
    expect(progress[0]!.nfiles).toBe(0);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.nfiles).toBeGreaterThanOrEqual(progress[i - 1]!.nfiles);
  });

  it('a count that hangs holds back neither the heartbeats nor the end of the run, and is stopped with it', async () => {
    const { jobId, dir, borg: counted } = await restoreRun('restore-hung-count');
    let counts = 0;
    let stopped = false;
    const borg = {
      ...counted,
      // A walk over a slow disk: it answers only when it is told to stop.
      countSoFar: (_conn: SshConnection, signal: AbortSignal) =>
        new Promise<number | undefined>((resolve) => {
          counts++;
          signal.addEventListener('abort', () => ((stopped = true), resolve(undefined)), { once: true });
        }),
    };
    const env = new MockActivityEnvironment();
    const beats: number[] = [];
    env.on('heartbeat', () => beats.push(Date.now()));
    const t0 = Date.now();
    const res: DetachedResult = await env.run(() => runDetached({ db: t.handle.db, events, pollMs: 100 }, { conn, jobId, dir }, borg));
    expect(res.rc).toBe(0);
    // The fake borg takes ~8 s; the run ended with it, not with the count.
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(counts).toBe(1);
    expect(stopped).toBe(true);
    // Heartbeats went on while the count hung (it started after 5 s).
    expect(beats.filter((b) => b > t0 + 6000).length).toBeGreaterThan(0);
  });
});
