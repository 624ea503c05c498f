import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LIMITS, MsgFloat, Unpacker, type Value, type ValueMap } from '../borg/msgpack.js';
import { parseRequest } from '../borg/rpc.js';
import { TESTDATA, relayStreams } from '../borg/test-fixtures.js';
import { BadArguments, checkCallArgs, checkNegotiateArgs, hasSignature } from './call-args.js';

/** Every request of a real `borg create` (borg 1.2.4) recorded by relay.py. */
function recordedRequests() {
  const u = new Unpacker(LIMITS.server);
  const out = [];
  for (const c of relayStreams(join(TESTDATA, 'relay', 'repokey-create.log')).c2s) {
    u.feed(c);
    for (const v of u) out.push(parseRequest(v));
  }
  return out;
}

const stockOpen = (exclusive: boolean): ValueMap =>
  new Map<string, Value>([
    ['path', Buffer.from('/0b7d6c1e-1111-4222-8333-444455556666')],
    ['create', false],
    ['lock_wait', 1],
    ['lock', true],
    ['exclusive', exclusive],
    ['append_only', false],
    ['make_parent_dirs', false],
  ]);

const stockCommit = (): ValueMap =>
  new Map<string, Value>([
    ['save_space', false],
    ['compact', false],
    ['threshold', new MsgFloat(0.1)],
    ['cleanup_commits', false],
  ]);

const refused = (method: string, args: ValueMap) => expect(() => checkCallArgs(method, args)).toThrow(BadArguments);

describe('call arguments: what stock borg sends passes, anything else is refused', () => {
  it('every call of a recorded stock `borg create` session passes', () => {
    const reqs = recordedRequests();
    expect(reqs.length).toBeGreaterThan(10);
    const [negotiate, ...calls] = reqs;
    expect(() => checkNegotiateArgs(negotiate!.args)).not.toThrow();
    for (const r of calls) {
      expect(hasSignature(r.method), r.method).toBe(true);
      expect(() => checkCallArgs(r.method, r.args as ValueMap), r.method).not.toThrow();
    }
  });

  it('open as borg create (exclusive) and borg extract (not exclusive) sends it', () => {
    expect(() => checkCallArgs('open', stockOpen(true))).not.toThrow();
    expect(() => checkCallArgs('open', stockOpen(false))).not.toThrow();
  });

  it.each<[string, Value | undefined]>([
    ['create', true],
    ['make_parent_dirs', true],
    ['append_only', true],
    ['lock', false],
    ['exclusive', 1],
    ['exclusive', null],
    ['lock_wait', -1],
    ['lock_wait', 1e9],
    ['lock_wait', new MsgFloat(1.5)],
    ['lock_wait', null],
    ['lock_wait', Buffer.from('1')],
    ['path', 7],
    ['path', Buffer.alloc(5000, 0x61)],
    ['path', undefined],
  ])('open with %s = %o is refused', (k, v) => {
    const a = stockOpen(true);
    if (v === undefined) a.delete(k);
    else a.set(k, v);
    refused('open', a);
  });

  it('open with an argument stock borg never sends is refused', () => {
    refused('open', new Map([...stockOpen(true), ['storage_quota', 1]]));
  });

  it.each<[string, Value]>([
    ['compact', true],
    ['save_space', true],
    ['cleanup_commits', true],
    ['threshold', new MsgFloat(-0.5)],
    ['threshold', new MsgFloat(7)],
    ['threshold', 0],
  ])('commit with %s = %o is refused', (k, v) => {
    refused('commit', new Map([...stockCommit(), [k, v]]));
  });

  it('ids, data and counters are checked by type and size', () => {
    const id = Buffer.alloc(32, 1);
    expect(() => checkCallArgs('put', new Map<string, Value>([['id', id], ['data', Buffer.alloc(100)]]))).not.toThrow();
    expect(() => checkCallArgs('put', new Map<string, Value>([['id', id], ['data', Buffer.alloc(100)], ['wait', true]]))).not.toThrow();
    refused('put', new Map<string, Value>([['id', id], ['data', Buffer.alloc(100)], ['wait', false]]));
    refused('put', new Map<string, Value>([['id', id], ['data', Buffer.alloc(100)], ['flush', true]]));
    refused('put', new Map<string, Value>([['id', Buffer.alloc(31)], ['data', Buffer.alloc(100)]]));
    refused('put', new Map<string, Value>([['id', id], ['data', 5]]));
    refused('get', new Map<string, Value>([['id', 'x'.repeat(32) as unknown as Value]]));
    refused('delete', new Map<string, Value>());
    refused('load_key', new Map<string, Value>([['x', 1]]));
    refused('rollback', new Map<string, Value>([['everything', true]]));
    expect(() => checkCallArgs('commit_nonce_reservation', new Map<string, Value>([['next_unreserved', 2n ** 63n], ['start_nonce', null]]))).not.toThrow();
    refused('commit_nonce_reservation', new Map<string, Value>([['next_unreserved', -1], ['start_nonce', null]]));
    refused('commit_nonce_reservation', new Map<string, Value>([['next_unreserved', 5]]));
  });

  it('negotiate carries only the client version', () => {
    expect(() => checkNegotiateArgs([new Map<string, Value>([['client_version', [1, 2, 4, -1]]])])).not.toThrow();
    expect(() => checkNegotiateArgs(new Map<string, Value>([['client_data', new Map<string, Value>([['client_version', [1, 2, 8, -1]]])]]))).not.toThrow();
    expect(() => checkNegotiateArgs([2])).toThrow(BadArguments);
    expect(() => checkNegotiateArgs([new Map<string, Value>([['client_version', [1, 2, 4]], ['debug', true]])])).toThrow(BadArguments);
    expect(() => checkNegotiateArgs([new Map<string, Value>([['client_version', Buffer.from('1.2.4')]])])).toThrow(BadArguments);
  });

  it('methods without a signature are left to the dispatcher (refused as forbidden)', () => {
    for (const m of ['list', 'scan', 'destroy', 'break_lock', 'save_key', 'check', 'negotiate']) expect(hasSignature(m)).toBe(false);
  });
});
