import { spawnSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BorgFormatError } from './errors.js';
import { LIMITS, Unpacker, asBytes, asMap, packb, unpackb, type UnpackLimits, type Value } from './msgpack.js';
import {
  encodeError,
  encodeLegacyError,
  encodeLegacyReply,
  encodeNegotiate,
  encodeReply,
  encodeRequest,
  negotiateResult,
  parseReply,
  parseRequest,
  replyBytesHead,
} from './rpc.js';
import { HAVE_BORG, TESTDATA, relayStreams, repoDir } from './test-fixtures.js';
import { tempDir } from '../../test/harness/temp-dir.js';

function decodeStream(chunks: Buffer[], limits: UnpackLimits): { values: Value[]; raw: Buffer[] } {
  const u = new Unpacker(limits);
  const values: Value[] = [];
  for (const c of chunks) {
    u.feed(c);
    for (const v of u) values.push(v);
  }
  expect(u.bufferedBytes).toBe(0);
  // re-split the concatenated stream into each value's raw bytes (packb is canonical for borg's output)
  const all = Buffer.concat(chunks);
  const raw: Buffer[] = [];
  let at = 0;
  for (const v of values) {
    const n = packb(v).length;
    raw.push(all.subarray(at, at + n));
    at += n;
  }
  expect(at).toBe(all.length);
  return { values, raw };
}

describe('a real `borg create` session recorded by relay.py', () => {
  const { c2s, s2c } = relayStreams(join(TESTDATA, 'relay', 'repokey-create.log'));
  const requests = decodeStream(c2s, LIMITS.server);
  const replies = decodeStream(s2c, LIMITS.client);

  it('every client message is a valid request; the first is the legacy negotiate', () => {
    const parsed = requests.values.map((v) => parseRequest(v));
    expect(parsed[0]).toMatchObject({ format: 'legacy', msgid: 1, method: 'negotiate' });
    expect(parsed.slice(1).every((r) => r.format === 'dict')).toBe(true);
    const methods = parsed.map((r) => r.method);
    expect(methods).toEqual(expect.arrayContaining(['open', 'get', 'load_key', 'get_free_nonce', 'commit_nonce_reservation', 'put', 'commit']));
    const open = parsed.find((r) => r.method === 'open');
    expect(open?.format === 'dict' && [...open.args.keys()].sort()).toEqual(['append_only', 'create', 'exclusive', 'lock', 'lock_wait', 'make_parent_dirs', 'path']);
  });

  it('our request encoders reproduce the client\'s bytes', () => {
    requests.values.forEach((v, n) => {
      const r = parseRequest(v);
      const ours = r.format === 'legacy' ? encodeNegotiate(r.msgid) : encodeRequest(r.msgid, r.method, r.args);
      expect(ours.equals(requests.raw[n] ?? Buffer.alloc(0))).toBe(true);
    });
  });

  it('every server message is a valid reply, and our reply encoders reproduce the bytes', () => {
    replies.values.forEach((v, n) => {
      const r = parseReply(v);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      const ours = Array.isArray(v) ? encodeLegacyReply(r.msgid, r.result) : encodeReply(r.msgid, r.result);
      expect(ours.equals(replies.raw[n] ?? Buffer.alloc(0))).toBe(true);
    });
    expect(encodeLegacyReply(1, negotiateResult()).equals(replies.raw[0] ?? Buffer.alloc(0))).toBe(true);
  });

  it('the manifest get reply carries a repokey object (type 03) and load_key text with newlines', () => {
    const parsed = requests.values.map((v) => parseRequest(v));
    const byId = new Map(replies.values.map((v) => [parseReply(v).msgid, parseReply(v)]));
    const get = parsed.find((r) => r.method === 'get');
    const obj = get && byId.get(get.msgid);
    expect(obj?.ok && asBytes(obj.result, 'obj')[0]).toBe(3);
    const lk = parsed.find((r) => r.method === 'load_key');
    const key = lk && byId.get(lk.msgid);
    expect(key?.ok && asBytes(key.result, 'key').toString()).toContain('\n');
  });
});

describe('request validation', () => {
  it.each([
    ['dict without a', { i: 1, m: 'get' }],
    ['dict without m', { i: 1, a: {} }],
    ['extra key', { i: 1, m: 'get', a: {}, x: 1 }],
    ['msgid 0', { i: 0, m: 'get', a: {} }],
    ['msgid not int', { i: 'x', m: 'get', a: {} }],
    ['method with a dot', { i: 1, m: 'os.system', a: {} }],
    ['method not utf-8', new Map<string, Value>([['i', 1], ['m', Buffer.from([0xff])], ['a', new Map()]])],
    ['args not a map', { i: 1, m: 'get', a: [] }],
    ['bad argument name', { i: 1, m: 'get', a: { 'Id-': 1 } }],
    ['legacy put', [1, 2, 'put', []]],
    ['legacy type 2', [2, 1, 'negotiate', [1]]],
    ['3-element array', [1, 1, 'negotiate']],
    ['a number', 5],
  ])('refuses %s', (_name, msg) => {
    expect(() => parseRequest(unpackb(packb(msg), LIMITS.server))).toThrow(BorgFormatError);
  });
  it('accepts a dict-format negotiate and reads named arguments', () => {
    const r = parseRequest(unpackb(packb({ i: 1, m: 'negotiate', a: { client_data: { client_version: [1, 2, 4, -1] } } }), LIMITS.server));
    expect(r.format).toBe('dict');
    expect(r.format === 'dict' && asMap(r.args.get('client_data'), 'cd').has('client_version')).toBe(true);
  });
});

describe('error replies', () => {
  it('have borg serve\'s key order and defaults (§1.3 ProxyPolicyError example)', () => {
    const bytes = encodeError(9, { exceptionClass: 'ProxyPolicyError', args: ['nope'], short: ['Proxy: chunk id mismatch'], sysinfo: 'proxy' });
    const m = asMap(unpackb(bytes, LIMITS.client), 'err');
    expect([...m.keys()]).toEqual(['i', 'exception_class', 'exception_args', 'exception_full', 'exception_short', 'exception_trace', 'sysinfo']);
    expect(m.get('exception_trace')).toBe(false);
    const r = parseReply(m);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.exceptionClass).toBe('ProxyPolicyError');
    expect(parseReply(unpackb(encodeLegacyError(3, 'PathNotAllowed'), LIMITS.client))).toMatchObject({ msgid: 3, ok: false, error: { exceptionClass: 'PathNotAllowed' } });
  });

  it.runIf(HAVE_BORG)('match real borg serve errors byte for byte (ObjectNotFound, InvalidRPCMethod)', () => {
    const tmp = tempDir('rpc');
    const repo = join(tmp, 'repo');
    cpSync(repoDir('repokey'), repo, { recursive: true });
    const input = Buffer.concat([
      encodeNegotiate(1),
      encodeRequest(2, 'open', { path: repo, create: false, lock_wait: 1, lock: true, exclusive: false, append_only: false, make_parent_dirs: false }),
      encodeRequest(3, 'get', { id: Buffer.alloc(32, 0xab) }),
      encodeRequest(4, 'frobnicate', {}),
      encodeRequest(5, '__len__'),
    ]);
    const r = spawnSync('borg', ['serve'], { input, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BORG_BASE_DIR: tmp, LANG: 'C.UTF-8' } });
    const { values, raw } = decodeStream([r.stdout], LIMITS.client);
    const replies = values.map(parseReply);
    expect(replies.map((x) => x.msgid)).toEqual([1, 2, 3, 4, 5]);
    expect(replies[0]).toMatchObject({ ok: true });
    expect(encodeLegacyReply(1, negotiateResult()).equals(raw[0] ?? Buffer.alloc(0))).toBe(true);
    for (const [n, cls] of [[2, 'ObjectNotFound'], [3, 'InvalidRPCMethod']] as const) {
      const e = replies[n];
      expect(e?.ok).toBe(false);
      if (!e || e.ok) continue;
      expect(e.error.exceptionClass).toBe(cls);
      const text = (v: Value): string => asBytes(v, 'line').toString('utf8');
      const ours = encodeError(e.msgid, {
        exceptionClass: e.error.exceptionClass,
        args: e.error.args.map((a) => (Buffer.isBuffer(a) ? a.toString('utf8') : a)),
        short: e.error.short.map(text),
        full: e.error.full.map(text),
        trace: e.error.trace,
        sysinfo: text(e.error.sysinfo ?? Buffer.alloc(0)),
      });
      expect(ours.equals(raw[n] ?? Buffer.alloc(0))).toBe(true);
    }
    const len = replies[4];
    expect(len?.ok && typeof len.result).toBe('number'); // __len__
  });
});

describe('replyBytesHead', () => {
  it('is encodeReply of the bytes up to the bytes themselves, at every header size', () => {
    for (const msgid of [0, 1, 127, 128, 70_000, 2 ** 31]) {
      for (const n of [0, 1, 31, 32, 0xffff, 0x10000, 3_000_000]) {
        const bytes = Buffer.alloc(n, 0x5a);
        expect(Buffer.concat([replyBytesHead(msgid, n), bytes]).equals(encodeReply(msgid, bytes)), `msgid ${msgid}, ${n} bytes`).toBe(true);
      }
    }
  });
});
