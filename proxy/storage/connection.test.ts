// The order of a connection's close and its `hello`: the registry is the job's count of
// connections, and an entry left behind holds up every later attach of the job.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../infra/logger.js';
import { ProxyConnection, type ConnectionContext } from './connection.js';
import { SessionRegistry } from './session-registry.js';

const auth = vi.hoisted(() => ({ answer: undefined as undefined | ((ok: boolean) => void) }));
vi.mock('./credentials.js', () => ({
  authenticatedFor: () => new Promise<boolean>((resolve) => (auth.answer = resolve)),
  reusedCredentialOf: () => Promise.resolve(false),
}));

function fakeSocket(): Socket {
  const s = new EventEmitter() as unknown as Socket & { destroyed: boolean };
  Object.assign(s, { destroyed: false, write: () => true, end: () => {}, destroy: () => void (s.destroyed = true), pause: () => {}, resume: () => {} });
  return s;
}

const jobId = '6f1c1c43-5d53-4a35-9a3b-2f0d3d7e8a11';

function connection(sessions: SessionRegistry): ProxyConnection {
  const c = { db: {}, log: createLogger({ name: 'test', level: 'silent' }), sessions, attach: () => Promise.reject(new Error('not in this test')) } as unknown as ConnectionContext;
  return new ProxyConnection(fakeSocket(), c);
}

describe('ProxyConnection hello', () => {
  it('a connection that closes while its credential is checked is not counted for the job', async () => {
    const sessions = new SessionRegistry();
    const conn = connection(sessions);
    conn.onFrame({ t: 'hello', jobId, authInfo: 'publickey ssh-ed25519 AAAA' }, Buffer.alloc(0), false);
    await vi.waitFor(() => expect(auth.answer).toBeDefined());
    await conn.onClose();
    auth.answer!(true);
    await new Promise((r) => setImmediate(r));
    expect(sessions.count(jobId)).toBe(0);
  });

  it('a connection still open when the check answers is counted', async () => {
    const sessions = new SessionRegistry();
    const conn = connection(sessions);
    auth.answer = undefined;
    conn.onFrame({ t: 'hello', jobId, authInfo: 'publickey ssh-ed25519 AAAA' }, Buffer.alloc(0), false);
    await vi.waitFor(() => expect(auth.answer).toBeDefined());
    auth.answer!(true);
    await vi.waitFor(() => expect(sessions.count(jobId)).toBe(1));
    await conn.onClose();
    expect(sessions.count(jobId)).toBe(0);
  });
});
