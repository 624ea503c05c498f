// Issue 21 point 11: every argument of every call the proxy allows is what stock `borg create` /
// `borg extract` send (proxy/session/call-args.ts). A client that sends anything else — `open`
// with create, make_parent_dirs, append_only or the lock switched off, an odd lock_wait, a commit
// asking for compaction, an argument borg never sends — is a violation: recorded against its
// job, the job ends, nothing is committed. Each attack is a whole backup job through the real
// path (test/fixtures/evil-borg.py speaking raw RPC over the job's own SSH credential); stock
// borg create and extract keep passing in the backup and restore suites.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listViolations } from '../../db/queries/jobs.js';
import { borgCheck } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { expectCaught, runAttack, setUpWorld, type AdversarialWorld } from '../fixtures/adversarial.js';

describe('a client that sends arguments stock borg never sends is stopped', () => {
  let w: AdversarialWorld;

  beforeAll(async () => {
    w = await setUpWorld();
  }, 300_000);
  afterAll(async () => {
    if (w) process.stdout.write(`\nadversarial arguments, per attack:\n${w.timings.map((t) => `  ${t.attack.padEnd(12)} ${String(t.ms).padStart(6)} ms  ${t.state}  ${t.kinds.join(',')}`).join('\n')}\n`);
    await runCleanups();
  });

  const caught = async (attack: string, targets: Record<string, unknown>, detail: RegExp) => {
    const run = await runAttack(w, w.a, attack, targets);
    // The repository is listed after each attack (nothing new in it); `borg check` once at the end.
    await expectCaught(w, w.a, run, ['bad-arguments'], { check: false });
    const v = await listViolations(w.stack.deps.db, run.job.id);
    expect(v.map((x) => x.detail).join('\n')).toMatch(detail);
  };

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['create=True', { create: true }, /open: create must be false/],
    ['make_parent_dirs=True', { make_parent_dirs: true }, /open: make_parent_dirs/],
    ['append_only=True', { append_only: true }, /open: append_only/],
    ['lock=False', { lock: false }, /open: lock must be true/],
    ['exclusive as a string', { exclusive: 'yes' }, /open: exclusive not a boolean/],
    ['lock_wait=-1', { lock_wait: -1 }, /open: lock_wait/],
    ['lock_wait=10**9', { lock_wait: 1_000_000_000 }, /open: lock_wait/],
    ['lock_wait=1.5', { lock_wait: 1.5 }, /open: lock_wait .*float 1\.5/],
    ['lock_wait=None', { lock_wait: null }, /open: lock_wait .*null/],
    ['an argument borg never sends', { storage_quota: 1 }, /open: unexpected argument "storage_quota"/],
    ['no exclusive at all', { exclusive: '<absent>' }, /open: argument exclusive is missing/],
    // Stock for borg extract, never for borg create: which value is stock depends on the job's kind.
    ['exclusive=False in a backup job', { exclusive: false }, /open: exclusive=False, but a backup job's stock borg opens with exclusive=True/],
  ])('open with %s', async (_what, openArgs, detail) => {
    await caught('open-args', { open_args: openArgs }, detail);
  });

  it.each<[string, string, Record<string, unknown>, RegExp]>([
    ['commit asking for compaction', 'commit', { save_space: false, compact: true, threshold: 0.1, cleanup_commits: false }, /commit: compact must be false/],
    ['commit with cleanup_commits', 'commit', { save_space: false, compact: false, threshold: 0.1, cleanup_commits: true }, /commit: cleanup_commits/],
    ['commit with an integer threshold', 'commit', { save_space: false, compact: false, threshold: 5, cleanup_commits: false }, /commit: threshold/],
    ['put with wait=False sent along', 'put', { id: { hex: '11'.repeat(32) }, data: { hex: '00'.repeat(64) }, wait: false }, /put: wait must be true/],
    ['get with a 31-byte id', 'get', { id: { hex: '22'.repeat(31) } }, /get: id 31 bytes, not 32/],
    ['delete with an extra argument', 'delete', { id: { hex: '33'.repeat(32) }, force: true }, /delete: unexpected argument "force"/],
    ['a negative nonce reservation', 'commit_nonce_reservation', { next_unreserved: -5, start_nonce: null }, /commit_nonce_reservation: next_unreserved/],
    ['load_key with an argument', 'load_key', { passphrase: 'x' }, /load_key: unexpected argument/],
  ])('%s', async (_what, method, args, detail) => {
    await caught('call-args', { method, args }, detail);
  });

  it('afterwards: every earlier archive intact, borg check clean', async () => {
    await borgCheck(w.stack, w.repo);
  });
});
