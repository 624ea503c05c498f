// sftpGetCapped against an SFTP server that lies (an ssh2 Server written here): a client's host is
// untrusted, and so is what its sftp-server claims about the files cache BorgCube pulls back.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2, { type SFTPWrapper } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RefusedRemoteFileError, sftpGetCapped } from './sftp.js';
import { generateEd25519 } from './ssh-keygen.js';

const { STATUS_CODE } = ssh2.utils.sftp;

const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;

/** How the fake server answers for its one file. */
interface Behaviour {
  lstatMode?: number;
  lstatSize?: number;
  fstatMode?: number;
  fstatSize?: number;
  /** Bytes the file really has (Infinity: it never ends, like /dev/zero or a file that grows). */
  content?: number;
  /** Never answer OPEN (what an open of a FIFO does to OpenSSH's sftp-server). */
  hangOnOpen?: boolean;
  /** Stop answering READ after this many bytes. */
  hangAfter?: number;
}

let behaviour: Behaviour = {};
const seen = { opens: 0, readBytes: 0 };

const attrs = (mode: number, size: number) => ({ mode, size, uid: 0, gid: 0, atime: 0, mtime: 0 });
const byteAt = (pos: number) => (pos * 7 + 3) & 0xff;

function serveSftp(sftp: ssh2.SFTPWrapper) {
  sftp.on('LSTAT', (reqid: number) => sftp.attrs(reqid, attrs(behaviour.lstatMode ?? S_IFREG | 0o600, behaviour.lstatSize ?? behaviour.content ?? 0)));
  sftp.on('STAT', (reqid: number) => sftp.attrs(reqid, attrs(S_IFREG | 0o600, behaviour.content ?? 0)));
  sftp.on('OPEN', (reqid: number) => {
    seen.opens++;
    if (!behaviour.hangOnOpen) sftp.handle(reqid, Buffer.from('h1'));
  });
  sftp.on('FSTAT', (reqid: number) => sftp.attrs(reqid, attrs(behaviour.fstatMode ?? S_IFREG | 0o600, behaviour.fstatSize ?? behaviour.lstatSize ?? behaviour.content ?? 0)));
  sftp.on('READ', (reqid: number, _h: Buffer, offset: number, length: number) => {
    const total = behaviour.content ?? 0;
    if (behaviour.hangAfter !== undefined && offset >= behaviour.hangAfter) return;
    if (offset >= total) return sftp.status(reqid, STATUS_CODE.EOF);
    const n = Math.min(length, total - offset);
    seen.readBytes += n;
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = byteAt(offset + i);
    sftp.data(reqid, out);
  });
  sftp.on('CLOSE', (reqid: number) => sftp.status(reqid, STATUS_CODE.OK));
}

describe('sftpGetCapped against a lying SFTP server', () => {
  let server: ssh2.Server;
  let port = 0;
  let client: ssh2.Client | undefined;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'borgcube-sftp-'));
    server = new ssh2.Server({ hostKeys: [generateEd25519('lying-host').private] }, (conn) => {
      conn.on('authentication', (ctx) => ctx.accept());
      conn.on('ready', () => conn.on('session', (accept) => accept().on('sftp', (acc) => serveSftp(acc()))));
      conn.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    client?.end();
    client = undefined;
  });

  async function sftp(): Promise<SFTPWrapper> {
    const c = new ssh2.Client();
    client = c;
    await new Promise<void>((resolve, reject) => c.on('ready', resolve).on('error', reject).connect({ host: '127.0.0.1', port, username: 'x', password: 'x' }));
    return new Promise((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
  }

  async function pull(b: Behaviour, max: number, timeouts: { requestTimeoutMs?: number; totalTimeoutMs?: number } = {}) {
    behaviour = b;
    seen.opens = 0;
    seen.readBytes = 0;
    const local = join(dir, `f${Math.random()}`);
    const fd = openSync(local, 'w', 0o600);
    const t0 = Date.now();
    try {
      const bytes = await sftpGetCapped(await sftp(), '/job/cache/x/files', fd, { max, ...timeouts });
      return { bytes, error: undefined, local, ms: Date.now() - t0 };
    } catch (error) {
      return { bytes: undefined, error: error as Error, local, ms: Date.now() - t0 };
    } finally {
      closeSync(fd);
    }
  }

  it('copies an honest file exactly', async () => {
    const r = await pull({ content: 700_000 }, 1 << 20);
    expect(r.error).toBeUndefined();
    expect(r.bytes).toBe(700_000);
    const got = readFileSync(r.local);
    expect(got.length).toBe(700_000);
    expect(got.every((x, i) => x === byteAt(i))).toBe(true);
  });

  it('a file claimed to be 50 GB is refused without being opened', async () => {
    const r = await pull({ lstatSize: 50 * 1024 ** 3, content: 50 * 1024 ** 3 }, 1 << 20);
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(r.error!.message).toMatch(/53687091200 bytes, more than 1048576/);
    expect(seen.opens).toBe(0);
    expect(seen.readBytes).toBe(0);
  });

  it('a file claimed small that never ends (or grows while read) is cut at the limit', async () => {
    const max = 2 << 20;
    const r = await pull({ lstatSize: 100, content: Infinity }, max);
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(r.error!.message).toMatch(/more than 2097152 bytes \(it claimed 100\)/);
    // Read up to the limit and one buffer beyond at most; never written past the limit.
    expect(seen.readBytes).toBeLessThanOrEqual(max + 1);
    expect(statSync(r.local).size).toBeLessThanOrEqual(max);
  });

  it('a file whose fstat, once open, says 50 GB is still read only up to the limit', async () => {
    const max = 1 << 20;
    const r = await pull({ lstatSize: 10, fstatSize: 50 * 1024 ** 3, content: 50 * 1024 ** 3 }, max);
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(seen.readBytes).toBeLessThanOrEqual(max + 1);
  });

  it.each([
    ['a symbolic link', S_IFLNK | 0o777],
    ['a FIFO', S_IFIFO | 0o600],
    ['a device', S_IFCHR | 0o666],
  ])('%s is refused before it is opened', async (what, mode) => {
    const r = await pull({ lstatMode: mode, lstatSize: 9, content: 1000 }, 1 << 20);
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(r.error!.message).toContain(`is ${what}`);
    expect(seen.opens).toBe(0);
  });

  it('a file replaced by a FIFO between lstat and open is refused once open', async () => {
    const r = await pull({ fstatMode: S_IFIFO | 0o600, content: 1000 }, 1 << 20);
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(r.error!.message).toContain('is a FIFO once opened');
    expect(seen.readBytes).toBe(0);
  });

  it('an open that is never answered times out (and the channel is ended)', async () => {
    const r = await pull({ content: 1000, hangOnOpen: true }, 1 << 20, { requestTimeoutMs: 500 });
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(r.error!.message).toMatch(/open got no answer/);
    expect(r.ms).toBeLessThan(5000);
  });

  it('a server that stops answering in the middle times out', async () => {
    const r = await pull({ content: 1 << 20, hangAfter: 256 * 1024 }, 2 << 20, { requestTimeoutMs: 500 });
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(r.error!.message).toMatch(/read got no answer/);
    expect(r.ms).toBeLessThan(5000);
  });

  it('a server that trickles is stopped by the overall deadline', async () => {
    const r = await pull({ content: Infinity, lstatSize: 10 }, 1 << 30, { requestTimeoutMs: 5000, totalTimeoutMs: 300 });
    expect(r.error).toBeInstanceOf(RefusedRemoteFileError);
    expect(r.error!.message).toMatch(/not read within/);
  });
});
