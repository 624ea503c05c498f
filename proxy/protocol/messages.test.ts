import { describe, expect, it } from 'vitest';
import { parseServiceMessage } from './replies.js';
import { proxyRequest } from './requests.js';

describe('proxy ↔ service messages', () => {
  it('accepts every request shape and refuses others', () => {
    const id = 'ab'.repeat(32);
    for (const m of [
      { t: 'attach', rid: 1, jobId: '5afdb41d-5cd2-4a18-8aef-d7dbacfa99e3', path: '/x', authInfo: '', exclusive: true },
      { t: 'getManifest', rid: 2 },
      { t: 'nonce', rid: 3, op: 'get' },
      { t: 'nonce', rid: 4, op: 'commit', next: '268435484', start: null },
      { t: 'put', rid: 5, id },
      { t: 'putManifest', rid: 6 },
      { t: 'delete', rid: 7, id },
      { t: 'get', rid: 8, id },
      { t: 'commit', rid: 9 },
      { t: 'rollback', rid: 10 },
      { t: 'violation', kind: 'x', detail: 'y' },
    ]) {
      expect(proxyRequest.safeParse(m).success, JSON.stringify(m)).toBe(true);
    }
    expect(proxyRequest.safeParse({ t: 'put', rid: 1, id: 'zz' }).success).toBe(false);
    expect(proxyRequest.safeParse({ t: 'list', rid: 1 }).success).toBe(false);
    expect(proxyRequest.safeParse({ t: 'nonce', rid: 1, op: 'commit', next: '-1' }).success).toBe(false);
  });

  it('accepts every service message shape and nothing else', () => {
    const repoId = 'cd'.repeat(32);
    for (const m of [
      { t: 'reply', rid: 1, ok: true, result: null },
      { t: 'reply', rid: 1, ok: true, result: { int: '5' } },
      { t: 'reply', rid: 1, ok: true, result: { bytes: true } },
      { t: 'reply', rid: 1, ok: true, result: { keyText: 'BORG_KEY …', repoId } },
      { t: 'reply', rid: 1, ok: false, error: { cls: 'ObjectNotFound', message: 'x', fatal: true } },
      { t: 'reply', rid: 1, ok: false, error: { cls: 'ObjectNotFound', message: 'x' } },
      { t: 'abort', reason: 'r' },
    ]) {
      expect(parseServiceMessage(m), JSON.stringify(m)).toEqual(m);
    }
    for (const m of [
      null,
      [],
      'reply',
      { t: 'reply', rid: 1, ok: true },
      { t: 'reply', rid: -1, ok: true, result: null },
      { t: 'reply', rid: 1.5, ok: true, result: null },
      { t: 'reply', rid: 1, ok: true, result: { int: '-5' } },
      { t: 'reply', rid: 1, ok: true, result: { int: 5 } },
      { t: 'reply', rid: 1, ok: true, result: { bytes: false } },
      { t: 'reply', rid: 1, ok: true, result: { keyText: 'k', repoId: 'xyz' } },
      { t: 'reply', rid: 1, ok: true, result: null, extra: 1 },
      { t: 'reply', rid: 1, ok: 'yes', result: null },
      { t: 'reply', rid: 1, ok: false, error: { cls: 'X'.repeat(129), message: 'm' } },
      { t: 'reply', rid: 1, ok: false, error: { cls: 'X', message: 'm', fatal: 'no' } },
      { t: 'abort', reason: 'r'.repeat(4097) },
      { t: 'abort' },
      { t: 'hello' },
    ]) {
      expect(parseServiceMessage(m), JSON.stringify(m)).toBeUndefined();
    }
  });
});
