// Small network probes shared by the local stack and the test harness: free ports, "does
// something answer there", and a polling loop with a deadline that says what it waited for.
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port" or "[v6]:port" (the TEMPORAL_ADDRESS form). */
export function parseHostPort(address: string): HostPort {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(address);
  if (!m) throw new Error(`${address}: expected host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}

/** The address to connect to for a service that listens on `host` (0.0.0.0 = every address). */
export function connectableHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

/** A port nothing listens on right now (the kernel picks it; a small race remains, as always). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/**
 * Connects, optionally writes `send`, and resolves with the first bytes received ('' when the
 * peer accepted and sent nothing before `timeoutMs`); undefined when the connection failed.
 */
export function probeTcp(host: string, port: number, opts: { timeoutMs?: number; send?: string; waitForData?: boolean } = {}): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host: connectableHost(host), port });
    let got = '';
    let connected = false;
    const finish = (v: string | undefined) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(connected ? got : undefined), opts.timeoutMs ?? 1000);
    sock.on('connect', () => {
      connected = true;
      if (opts.send) sock.write(opts.send);
      if (!opts.waitForData) finish('');
    });
    sock.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (got.includes('\n')) finish(got);
    });
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(connected ? got : undefined));
  });
}

export async function tcpAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return (await probeTcp(host, port, { timeoutMs })) !== undefined;
}

/** The SSH identification line ("SSH-2.0-OpenSSH_9.2p1 …") of a server, or undefined. */
export async function sshBanner(host: string, port: number, timeoutMs = 2000): Promise<string | undefined> {
  const got = await probeTcp(host, port, { timeoutMs, waitForData: true });
  return got?.startsWith('SSH-') ? got.trim() : undefined;
}

/**
 * True when some socket on this machine listens on TCP `port` (any address). Reads
 * /proc/net/tcp{,6} instead of connecting, so the server does not log a probe connection.
 */
export function isListening(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    // Columns: sl local_address rem_address st …; st 0A = LISTEN.
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && f[1]?.endsWith(`:${hexPort}`)) return true;
    }
  }
  return false;
}

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

/**
 * Polls `probe` until it returns something other than undefined/false. Throws a WaitTimeoutError
 * naming `what` after `timeoutMs`, or the abort reason when `signal` fires.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new WaitTimeoutError(`${what}: still not ready after ${Math.round(opts.timeoutMs / 1000)} s${why}`);
    }
    await sleep(opts.intervalMs ?? 200, undefined, opts.signal ? { signal: opts.signal } : undefined);
  }
}

/** GET url → status code, or undefined when nothing answers. */
export async function httpStatus(url: string, timeoutMs = 2000): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel();
    return res.status;
  } catch {
    return undefined;
  }
}
