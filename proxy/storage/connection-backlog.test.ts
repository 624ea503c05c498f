// The backlog bound of one connection (issue 21, point 4): a client that sends puts faster than
// the service answers them is not read any further once MAX_PENDING requests or
// MAX_PENDING_BYTES bytes wait, and is read again once half of them have been answered. Over a
// real Unix socket and the service's own listener, with a session whose puts answer only when
// the test says so.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../infra/config.js';
import { createLogger } from '../../infra/logger.js';
import { FrameDecoder, writeFrame } from '../protocol/frames.js';
import { MAX_PENDING, MAX_PENDING_BYTES, ProxyConnection, type ConnectionContext } from './connection.js';
import { listen } from './listener.js';
import { SessionRegistry } from './session-registry.js';
import type { JobSession, SessionPolicy } from './sessions/policy.js';

/** A session whose puts wait until answered; it keeps their sizes, not their bytes. */
class HeldPuts {
  private readonly held: Array<{ bytes: number; answer: () => void }> = [];
  received = 0;

  get waiting(): number {
    return this.held.length;
  }

  get waitingBytes(): number {
    return this.held.reduce((n, p) => n + p.bytes, 0);
  }

  /** Answers the oldest `n` puts. */
  answer(n: number): void {
    for (const p of this.held.splice(0, n)) p.answer();
  }

  session(): JobSession {
    const s = {
      jobId: randomUUID(),
      repo: { release: () => {} },
      put: (_id: Buffer, object: Buffer) => {
        this.received++;
        return new Promise<void>((answer) => this.held.push({ bytes: object.length, answer }));
      },
      close: () => Promise.resolve(),
    };
    return s as unknown as JobSession;
  }
}

const putsOnly: SessionPolicy = {
  allows: new Set(['put']),
  exclusive: true,
  refuses: () => undefined,
  open: () => {
    throw new Error('not in this test');
  },
};

/** Socket reads are at most this large (libuv's read buffer): frames already read are still handed on. */
const READ_CHUNK = 64 * 1024;

describe('ProxyConnection backlog', () => {
  let dir: string;
  let servers: Server[];
  let service: Socket | undefined;
  let puts: HeldPuts;
  let client: Socket;
  let answered = 0;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'backlog-'));
    puts = new HeldPuts();
    answered = 0;
    const log = createLogger({ name: 'test', level: 'silent' });
    const session = puts.session();
    const c = {
      log,
      sessions: new SessionRegistry(),
      attach: () => Promise.resolve({ session, policy: putsOnly, result: { keyText: 'k', repoId: 'r' } }),
    } as unknown as ConnectionContext;
    servers = await listen({
      config: loadConfig({ BORGCUBE_DATA_DIR: dir }),
      log,
      authorizedKeys: () => Promise.resolve([]),
      connection: (sock) => {
        service = sock;
        return new ProxyConnection(sock, c);
      },
      control: (sock) => sock.destroy(),
    });
    client = connect(join(dir, 'run', 'storage.sock'));
    await new Promise<void>((r) => client.once('connect', r));
    const decoder = new FrameDecoder();
    client.on('data', (chunk: Buffer) => (answered += decoder.push(chunk).length));
    const jobId = randomUUID();
    writeFrame(client, { t: 'attach', rid: 0, jobId, path: `/${jobId}`, authInfo: 'publickey ssh-ed25519 AAAA', exclusive: true });
    await vi.waitFor(() => expect(answered).toBe(1));
  });

  afterEach(async () => {
    client.destroy();
    // A paused socket would not even see the client go.
    service?.destroy();
    for (const s of servers) await new Promise((r) => s.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const sendPuts = (n: number, payload: Buffer) => {
    for (let i = 0; i < n; i++) writeFrame(client, { t: 'put', rid: i + 1, id: randomBytes(32).toString('hex') }, payload);
  };

  /** The client has more to send, and none of it is read for a while: the service stopped reading. */
  async function stopsReading(): Promise<void> {
    // What the socket read before the pause took effect lands in its buffer first.
    await new Promise((r) => setTimeout(r, 200));
    const read = service!.bytesRead;
    const received = puts.received;
    await new Promise((r) => setTimeout(r, 300));
    expect(service!.isPaused()).toBe(true);
    expect(client.writableLength).toBeGreaterThan(0);
    expect(service!.bytesRead).toBe(read);
    expect(puts.received).toBe(received);
  }

  /**
   * Answers all but one of the puts that bring the backlog to half (`shortOfHalf`): nothing new is
   * read; the last one: reading resumes before anything else is answered; then every put the
   * client sent (`sent`) arrives and is answered.
   */
  async function resumesAtHalf(shortOfHalf: number, sent: number): Promise<void> {
    const before = puts.received;
    puts.answer(shortOfHalf);
    await stopsReading();
    expect(puts.received).toBe(before);
    puts.answer(1);
    await vi.waitFor(() => expect(puts.received).toBeGreaterThan(before), { timeout: 10_000 });
    await vi.waitFor(
      () => {
        puts.answer(puts.waiting);
        expect(answered).toBe(1 + sent);
      },
      { timeout: 20_000, interval: 20 },
    );
  }

  it(`stops reading at ${MAX_PENDING_BYTES} bytes of unanswered puts and reads on once half are answered`, async () => {
    // One buffer sent 48 times: the client's memory is not the point.
    const object = randomBytes(4 * 1024 * 1024);
    const perBound = MAX_PENDING_BYTES / object.length;
    sendPuts(perBound * 1.5, object);

    await vi.waitFor(() => expect(puts.waitingBytes).toBeGreaterThanOrEqual(MAX_PENDING_BYTES), { timeout: 10_000 });
    await stopsReading();
    // What the service holds: the bound plus the frame that reached it (and what one read still held).
    expect(puts.waitingBytes).toBeLessThanOrEqual(MAX_PENDING_BYTES + object.length);
    // The rest waits on the client's side.
    expect(client.writableLength).toBeGreaterThan(perBound * 0.25 * object.length);

    await resumesAtHalf(perBound / 2 - 1, perBound * 1.5);
    expect(client.writableLength).toBe(0);
  });

  it(`stops reading at ${MAX_PENDING} unanswered requests and reads on once half are answered`, async () => {
    // More than the service, the kernel and the socket's buffers hold together.
    const n = MAX_PENDING * 16;
    sendPuts(n, Buffer.alloc(0));

    await vi.waitFor(() => expect(puts.waiting).toBeGreaterThanOrEqual(MAX_PENDING), { timeout: 10_000 });
    await stopsReading();
    // The bound, plus the frames of the read that reached it (each is at least its header long).
    expect(puts.waiting).toBeLessThanOrEqual(MAX_PENDING + READ_CHUNK / 90);
    expect(puts.received).toBeLessThan(n);

    await resumesAtHalf(puts.waiting - MAX_PENDING / 2 - 1, n);
  });
});
