// Issue 3 acceptance, adversarial part 1: a hacked client reads nothing. Client A's "borg" is
// test/fixtures/evil-borg.py; each attack is a real backup job (worker → SSH → client → evil borg
// → BorgCube's sshd → proxy → repository service). Every attempt must end the job in `violation`
// through the workflow's `violation` signal, be recorded, and leave the repository as it was.
// Last, everything the client received in all these jobs (job keys, fake manifests, caches, every
// reply byte) is checked against the repository's objects from before: none of it opens them.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decompress } from '../../proxy/borg/compression.js';
import { asKeyType, loadKey, type BorgKey } from '../../proxy/borg/keys.js';
import { parseManifest } from '../../proxy/borg/manifest.js';
import { LIMITS, Unpacker } from '../../proxy/borg/msgpack.js';
import { decryptObject } from '../../proxy/borg/objects.js';
import { iterRepository } from '../../proxy/borg/test-fixtures.js';
import { getRepository, openRepositorySecrets } from '../../services/repositories.js';
import { borgCheck } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { expectCaught, filesBelow, runAttack, setUpWorld, type AdversarialWorld } from '../fixtures/adversarial.js';

describe('a hacked client reads nothing through the proxy', () => {
  let w: AdversarialWorld;
  /** Every object stored in the repository before the first attack (segment entries). */
  let before: Buffer[];
  const attackJobs: string[] = [];

  beforeAll(async () => {
    w = await setUpWorld();
    before = [];
    for (const e of iterRepository(w.repoPath)) if (e.tag === 'put' && e.data) before.push(e.data);
    expect(before.length).toBeGreaterThan(5);
  }, 300_000);
  afterAll(async () => {
    if (w) process.stdout.write(`\nadversarial reads, per attack:\n${w.timings.map((t) => `  ${t.attack.padEnd(12)} ${String(t.ms).padStart(6)} ms  ${t.state}  ${t.kinds.join(',')}`).join('\n')}\n`);
    await runCleanups();
  });

  const cases: Array<{ attack: string; kinds: string[]; targets: () => Record<string, string> }> = [
    { attack: 'get-chunk', kinds: ['forbidden-get'], targets: () => ({ chunk: w.bChunk.id }) },
    { attack: 'get-archive', kinds: ['forbidden-get'], targets: () => ({ archive_id: w.bArchive.id }) },
    { attack: 'list', kinds: ['forbidden-method'], targets: () => ({}) },
    { attack: 'scan', kinds: ['forbidden-method'], targets: () => ({}) },
    { attack: 'destroy', kinds: ['forbidden-method'], targets: () => ({}) },
    { attack: 'break-lock', kinds: ['forbidden-method'], targets: () => ({}) },
    { attack: 'save-key', kinds: ['forbidden-method'], targets: () => ({}) },
    { attack: 'check', kinds: ['forbidden-method'], targets: () => ({}) },
  ];
  for (const c of cases) {
    it(`${c.attack}: refused, recorded, signalled; the repository is unchanged`, async () => {
      const run = await runAttack(w, w.a, c.attack, c.targets());
      attackJobs.push(run.job.id);
      await expectCaught(w, w.a, run, c.kinds);
      // The client got a refusal, never data.
      expect(run.result!.error ?? '').toMatch(/BorgCube|Connection closed|RPC/i);
    });
  }

  it('nothing the client received opens anything that was in the repository before', async () => {
    const repo = await getRepository(w.stack.deps, w.repo);
    const secrets = await openRepositorySecrets(w.stack.deps, repo);
    const real = loadKey(secrets.keyText, secrets.passphrase, asKeyType(0x03));
    const lootRoot = w.a.host.path('loot');
    const looted = readdirSync(lootRoot);
    expect(looted.sort()).toEqual([...attackJobs].sort());

    let replies = 0;
    let served = 0;
    for (const jobId of looted) {
      const dir = join(lootRoot, jobId);
      // The key material the client got: the job key file and its passphrase.
      const jobKey = loadKey(readFileSync(join(dir, 'key'), 'utf8'), readFileSync(join(dir, 'passphrase'), 'utf8').trim(), asKeyType(0x00));
      expect(jobKey.encKey.equals(real.encKey)).toBe(false);
      expect(jobKey.encHmacKey.equals(real.encHmacKey)).toBe(false);
      // By design (§2.2) the job key shares id_key and chunk_seed, so the client's chunk ids match.
      expect(jobKey.idKey.equals(real.idKey)).toBe(true);
      // Not one earlier object authenticates (let alone decrypts) under it, whatever its type byte says.
      const asReal: BorgKey = { ...jobKey, type: real.type };
      for (const obj of before) expect(() => decryptObject(asReal, obj)).toThrow(/MAC/);

      // Every byte the client holds: no real key, no earlier object (by its MAC), no byte of B's data id.
      const blobs = filesBelow(dir).map((f) => readFileSync(f));
      const needles: Array<[string, Buffer]> = [
        ['the real enc_key', real.encKey],
        ['the real enc_hmac_key', real.encHmacKey],
        ["B's data chunk id", Buffer.from(w.bChunk.id, 'hex')],
        ["B's archive id", Buffer.from(w.bArchive.id, 'hex')],
        ...before.map((o, i): [string, Buffer] => [`earlier object #${i}`, o.subarray(1, 33)]),
      ];
      for (const blob of blobs) for (const [what, needle] of needles) expect(blob.includes(needle), `${what} is in the client's loot of job ${jobId}`).toBe(false);

      // The replies themselves: every object the proxy served opens with the job key only, and the
      // manifest it served lists nothing (a fresh job sees no archive at all).
      const u = new Unpacker(LIMITS.client);
      u.feed(readFileSync(join(dir, 'received')));
      for (let v = u.next(); v !== undefined; v = u.next()) {
        replies++;
        const r = v instanceof Map ? v.get('r') : undefined;
        if (!Buffer.isBuffer(r) || r.length < 41 || (r[0] !== 0x00 && r[0] !== 0x03)) continue;
        served++;
        expect(() => decryptObject({ ...real, type: asKeyType(r[0]!) }, r)).toThrow(/MAC/);
        const { payload } = decryptObject(jobKey, r);
        const plain = (await decompress(payload)).data;
        const m = parseManifest(jobKey, plain);
        expect([...m.archives.keys()]).toEqual([]);
      }
    }
    expect(replies).toBeGreaterThan(looted.length * 2);
    expect(served).toBeGreaterThanOrEqual(looted.length);
    await borgCheck(w.stack, w.repo, '--verify-data');
  });
});
