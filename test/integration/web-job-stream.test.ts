// The live job stream over a real WebSocket: catch-up from PostgreSQL, then Redis, resume after
// a seq.
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as jobsQ from '../../db/queries/jobs.js';
import { jobChannel } from '../../infra/events.js';
import type { ServiceDeps } from '../../services/deps.js';
import type { WebApp } from '../../web/app.js';
import type { JobEventHub } from '../../infra/job-event-hub.js';
import { Browser } from './web-browser.js';
import { insertRepositoryRow } from './web-fixtures.js';
import { useWebTestApp, type WebTestApp } from './web-test-app.js';

describe('web app', () => {
  const w = useWebTestApp();
  let app: WebApp;
  let deps: ServiceDeps;
  let hub: JobEventHub;
  let redis: WebTestApp['redis'];
  let publisher: WebTestApp['publisher'];
  beforeAll(() => {
    ({ app, deps, hub, redis, publisher } = w);
  });

  describe('live job stream over WebSocket', () => {
    let base: string;
    let close: () => Promise<void>;
    let jobId: string;
    let cookie: string;

    beforeAll(async () => {
      const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
      app.injectWebSocket(server);
      await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
      base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      close = () =>
        new Promise((r) => {
          app.closeWebSockets();
          server.close(() => r());
        });
      const b = new Browser(app);
      await b.login('viewer');
      cookie = b.cookieHeader();
      const repo = await insertRepositoryRow(deps.db, 'ws-repo');
      jobId = randomUUID();
      await jobsQ.insertJob(deps.db, { id: jobId, kind: 'backup', repositoryId: repo.id });
      await jobsQ.insertLogLines(
        deps.db,
        [1, 2, 3].map((seq) => ({ jobId, seq, time: new Date(), level: 'INFO', type: 'borgcube', msgid: null, message: `stored ${seq}` })),
      );
    });
    afterAll(async () => close());

    interface Msg {
      type: string;
      seq?: number;
      message?: string;
      state?: string;
      n?: number;
    }

    function open(path: string, headers: Record<string, string> = { cookie }) {
      const ws = new WebSocket(`ws://${base}${path}`, { headers });
      const messages: Msg[] = [];
      const waiters: Array<() => void> = [];
      ws.on('message', (d: Buffer) => {
        messages.push(JSON.parse(d.toString()) as Msg);
        for (const w of waiters.splice(0)) w();
      });
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      const until = async (pred: (m: Msg[]) => boolean, ms = 5000) => {
        const end = Date.now() + ms;
        while (!pred(messages)) {
          if (Date.now() > end) throw new Error(`timed out; got ${JSON.stringify(messages)}`);
          await new Promise<void>((r) => {
            waiters.push(r);
            setTimeout(r, 100);
          });
        }
      };
      return { ws, messages, until, closed };
    }

    function refused(path: string, headers: Record<string, string>): Promise<number> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${base}${path}`, { headers });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => reject(new Error('the socket opened')));
        ws.on('error', () => {});
      });
    }

    it('refuses unauthenticated (401), cross-origin (403) and unknown-job (404) upgrades', async () => {
      expect(await refused(`/ws/jobs/${jobId}`, {})).toBe(401);
      expect(await refused(`/ws/jobs/${jobId}`, { cookie: 'borgcube_session=forged' })).toBe(401);
      expect(await refused(`/ws/jobs/${jobId}`, { cookie, origin: 'https://evil.example' })).toBe(403);
      expect(await refused(`/ws/jobs/${randomUUID()}`, { cookie })).toBe(404);
    });

    it('sends the stored tail, then live lines and progress without doubles, and resumes after a seq', async () => {
      const a = open(`/ws/jobs/${jobId}?after=1`, { cookie, origin: `http://${base}` });
      await a.until((m) => m.filter((x) => x.type === 'log').length === 2);
      expect(a.messages[0]!.type).toBe('hello');
      expect(a.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([2, 3]);
      // Live: a line already stored (3) is dropped; 4 and 5 pass; progress passes.
      const live = (seq: number) => ({ type: 'log' as const, seq, time: new Date().toISOString(), level: 'INFO', kind: 'file_status', msgid: null, message: `live ${seq}` });
      await jobsQ.insertLogLines(deps.db, [4, 5].map((seq) => ({ jobId, seq, time: new Date(), level: 'INFO', type: 'file_status', msgid: null, message: `live ${seq}` })));
      await publisher.publish(jobId, live(3));
      await publisher.publish(jobId, live(4));
      await publisher.publish(jobId, { type: 'progress', originalSize: 1000, compressedSize: 500, deduplicatedSize: 100, nfiles: 3, path: '/srv/<b>x</b>', time: Date.now() / 1000, n: 1 });
      await publisher.publish(jobId, live(5));
      await a.until((m) => m.some((x) => x.seq === 5));
      expect(a.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([2, 3, 4, 5]);
      expect(a.messages.filter((x) => x.type === 'progress')).toHaveLength(1);

      // A line that is published before it reaches PostgreSQL, after a gap: filled from the database.
      await publisher.publish(jobId, live(8));
      await new Promise((r) => setTimeout(r, 300));
      await jobsQ.insertLogLines(deps.db, [6, 7, 8].map((seq) => ({ jobId, seq, time: new Date(), level: 'INFO', type: 'file_status', msgid: null, message: `late ${seq}` })));
      await a.until((m) => m.some((x) => x.seq === 8));
      expect(a.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([2, 3, 4, 5, 6, 7, 8]);

      // Reconnect with the last seq seen: nothing lost, nothing doubled.
      a.ws.close();
      const b = open(`/ws/jobs/${jobId}?after=6`);
      await b.until((m) => m.filter((x) => x.type === 'log').length === 2);
      expect(b.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([7, 8]);

      // The job ends: the final state is sent and the socket closes normally.
      await jobsQ.completeJob(deps.db, jobId, 'succeeded', null, null);
      await publisher.publish(jobId, { type: 'state', jobId, state: 'succeeded', phase: 'done', error: null });
      await b.until((m) => m.some((x) => x.type === 'state'));
      expect(await b.closed).toBe(1000);
      expect(b.messages.at(-1)).toMatchObject({ type: 'state', state: 'succeeded' });
      await new Promise((r) => setTimeout(r, 100));
      expect(hub.channels()).toBe(0);
    });

    it('shares one Redis subscription between the viewers of a job', async () => {
      const repo = await insertRepositoryRow(deps.db, 'ws-repo-2');
      const id = randomUUID();
      await jobsQ.insertJob(deps.db, { id, kind: 'backup', repositoryId: repo.id });
      const viewers = Array.from({ length: 5 }, () => open(`/ws/jobs/${id}`));
      await Promise.all(viewers.map((v) => v.until((m) => m.some((x) => x.type === 'hello'))));
      expect(hub.channels()).toBe(1);
      const numsub = (await redis.call('PUBSUB', 'NUMSUB', jobChannel(id))) as [string, number];
      expect(Number(numsub[1])).toBe(1);
      // The stream is one-way: a viewer that sends something is closed (1003).
      viewers[0]!.ws.send('hello?');
      expect(await viewers[0]!.closed).toBe(1003);
      for (const v of viewers) v.ws.close();
      await Promise.all(viewers.map((v) => v.closed));
      await new Promise((r) => setTimeout(r, 100));
      expect(hub.channels()).toBe(0);
    });
  });
});
