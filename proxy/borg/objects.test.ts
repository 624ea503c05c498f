import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compressLz4, compressNone } from './compression.js';
import { IntegrityError } from './errors.js';
import { asKeyType, createJobKey, isEncrypted, loadKey, type BorgKey } from './keys.js';
import { MANIFEST_ID, blocksUsed, decryptObject, decryptUnchecked, encryptObject, idHash, reencrypt, resealInPlace, verifyChunk } from './objects.js';
import { iterRepository, liveObjects, HAVE_BORG, MODES, VERIFY_PY, borgCheckSchema, borgPython, keyText, loadExpect, repoDir, type Mode } from './test-fixtures.js';
import { encodeRequest } from './rpc.js';
import { tempDir } from '../../test/harness/temp-dir.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const keyFor = (mode: Mode): BorgKey => loadKey(keyText(mode) ?? '', 'test', asKeyType(loadExpect(mode).keyType));

describe.each(MODES)('objects written by borg 1.2.4 (%s)', (mode) => {
  const e = loadExpect(mode);
  const key = keyFor(mode);
  const live = liveObjects(repoDir(mode));
  const objects = e.objects.map((o) => ({ o, obj: live.get(o.id) ?? Buffer.alloc(0), id: Buffer.from(o.id, 'hex') }));

  it('every object verifies: type byte, MAC, decompression, recomputed id', async () => {
    for (const { o, obj, id } of objects) {
      expect(obj[0]).toBe(o.type);
      if (o.kind === 'manifest') {
        const d = await decryptUnchecked(key, obj);
        expect(sha(d.data)).toBe(o.plainSha256);
        continue;
      }
      const v = await verifyChunk(key, id, obj);
      expect(v.plaintextLength).toBe(o.plainLen);
      expect(v.compression).toBe(o.compression);
      expect(v.payload.length).toBe(o.payloadLen);
      expect(sha(v.plaintext)).toBe(o.plainSha256);
      if (o.iv !== undefined) expect(v.iv).toBe(BigInt(o.iv));
    }
  });

  it('refuses a wrong type byte, a tampered MAC or payload, and a mismatching id', async () => {
    const target = objects.find((x) => x.o.kind === 'data' && x.o.plainLen > 0);
    if (!target) throw new Error('no data object');
    const { obj, id } = target;
    const wrongType = Buffer.from(obj);
    wrongType[0] = key.type === 0x00 ? 0x03 : 0x00;
    await expect(verifyChunk(key, id, wrongType)).rejects.toMatchObject({ code: 'type-byte' });
    if (isEncrypted(key.type)) {
      const badMac = Buffer.from(obj);
      badMac[5] = (badMac[5] ?? 0) ^ 1;
      await expect(verifyChunk(key, id, badMac)).rejects.toMatchObject({ code: 'mac' });
      const badCt = Buffer.from(obj);
      badCt[badCt.length - 1] = (badCt[badCt.length - 1] ?? 0) ^ 1;
      await expect(verifyChunk(key, id, badCt)).rejects.toMatchObject({ code: 'mac' });
      const badIv = Buffer.from(obj);
      badIv[40] = (badIv[40] ?? 0) ^ 1;
      await expect(verifyChunk(key, id, badIv)).rejects.toMatchObject({ code: 'mac' });
    } else {
      // no MAC: the id check is all there is (assert_id)
      const badPayload = Buffer.from(obj);
      badPayload[badPayload.length - 1] = (badPayload[badPayload.length - 1] ?? 0) ^ 1;
      await expect(verifyChunk(key, id, badPayload)).rejects.toThrow();
    }
    const otherId = Buffer.from(id);
    otherId[0] = (otherId[0] ?? 0) ^ 0x80;
    await expect(verifyChunk(key, otherId, obj)).rejects.toMatchObject({ code: 'id' });
    await expect(verifyChunk(key, MANIFEST_ID, obj)).rejects.toBeInstanceOf(IntegrityError);
  });

  it('encrypt -> decrypt round trip at a chosen IV; re-encryption keeps P and the id', async () => {
    const data = Buffer.concat([Buffer.from('hello borg '.repeat(300)), randomBytes(100)]);
    const id = idHash(key, data);
    const p = compressLz4(data);
    const obj = encryptObject(key, p, 12345n);
    const v = await verifyChunk(key, id, obj);
    expect(v.plaintext).toEqual(data);
    expect(v.payload).toEqual(p);
    if (isEncrypted(key.type)) {
      expect(obj.length).toBe(41 + p.length);
      expect(obj.readBigUInt64BE(33)).toBe(12345n);
      expect(decryptObject(key, obj).iv).toBe(12345n);
    } else expect(obj.length).toBe(1 + p.length);
    if (key.type !== 0x02) {
      const job = createJobKey(key).key;
      const jobObj = encryptObject(job, p, 7);
      const checked = await verifyChunk(job, id, jobObj);
      const back = reencrypt(key, checked.payload, 99n);
      expect((await verifyChunk(key, id, back)).plaintext).toEqual(data);
      if (isEncrypted(key.type)) await expect(verifyChunk(key, id, jobObj)).rejects.toMatchObject({ code: 'mac' });
    }
  });

  it.runIf(HAVE_BORG)('borg 1.2.4 decrypts objects encrypted here', () => {
    const datas = [Buffer.from('x'), Buffer.alloc(70000, 1), randomBytes(3000)];
    const objects = datas.map((d, i) => ({ id: idHash(key, d).toString('hex'), obj: encryptObject(key, i === 1 ? compressLz4(d) : compressNone(d), 100 * i).toString('hex') }));
    const r = borgCheckSchema.parse(borgPython(['check'], { type: key.type, keyText: keyText(mode) ?? '', passphrase: 'test', objects }));
    expect(r.objects.map((o) => o.plainSha256)).toEqual(datas.map(sha));
  });
});

describe('AES-CTR nonces in the fixture repositories', () => {
  it.each(MODES.filter((m) => isEncrypted(asKeyType(loadExpect(m).keyType))))('%s: no counter block is used twice', (mode) => {
    const ranges: [bigint, bigint][] = [];
    for (const ent of iterRepository(repoDir(mode))) {
      if (ent.tag !== 'put' || !ent.data) continue;
      const iv = ent.data.readBigUInt64BE(33);
      ranges.push([iv, iv + BigInt(blocksUsed(ent.data.length - 41))]);
    }
    ranges.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]?.[0]).toBeGreaterThanOrEqual(ranges[i - 1]?.[1] ?? 0n);
    expect(ranges.length).toBeGreaterThan(20);
  });
  it('blocksUsed is ceil(len/16)', () => {
    expect([0, 1, 16, 17, 32].map(blocksUsed)).toEqual([0, 1, 1, 2, 2]);
  });
});

describe.runIf(HAVE_BORG && VERIFY_PY !== undefined)('the independent verify.py accepts PUTs encoded here', () => {
  it.each(['repokey', 'repokey-blake2', 'authenticated'] as const)('%s', (mode) => {
    const key = keyFor(mode);
    // a relay.py log: tag 'C', f64 timestamp, u32 length, bytes — one record per put request
    const records = [Buffer.from('plain data'), Buffer.from('lz4 data '.repeat(500)), randomBytes(4000)].map((d, i) => {
      const obj = encryptObject(key, i === 1 ? compressLz4(d) : compressNone(d), BigInt(i * 1000));
      const msg = encodeRequest(i + 10, 'put', { id: idHash(key, d), data: obj });
      const h = Buffer.alloc(13);
      h.write('C', 0);
      h.writeDoubleLE(0, 1);
      h.writeUInt32LE(msg.length, 9);
      return Buffer.concat([h, msg]);
    });
    const log = join(tempDir('verifypy'), 'relay.log');
    writeFileSync(log, Buffer.concat(records));
    const out = execFileSync('/usr/bin/python3', [VERIFY_PY ?? '', join(repoDir(mode), 'config'), 'test', 'relaylog', log, key.type.toString(16)]).toString();
    const lines = out.split('\n').filter((l) => /^\d+ [0-9a-f]{16} /.test(l));
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).toMatch(/ id-ok$/);
    expect(lines[1]).toMatch(/comp=lz4/);
  });
});

describe('resealInPlace: a restore object resealed for the job key in its own memory', () => {
  it.each(['repokey', 'repokey-blake2', 'keyfile'] as const)('%s: the same bytes as decrypt + encrypt, in the same buffer', (mode) => {
    const key = keyFor(mode);
    const job = createJobKey(key).key;
    for (const data of [Buffer.alloc(0), Buffer.from('x'), randomBytes(4000), randomBytes(300_000)]) {
      const stored = encryptObject(key, compressNone(data), 12345n);
      const expected = encryptObject(job, decryptObject(key, stored).payload, 999n);
      const obj = Buffer.from(stored);
      expect(resealInPlace(key, job, obj, 999n)).toBe(obj);
      expect(obj.equals(expected)).toBe(true);
      expect(decryptObject(job, obj).payload.equals(compressNone(data))).toBe(true);
    }
  });

  it.each([
    ['repokey', 0x07],
    ['repokey-blake2', 0x06],
  ] as const)('%s to an authenticated job key: [type][payload] in the same memory, no counter needed', (mode, type) => {
    const key = keyFor(mode);
    const job = createJobKey(key, type).key;
    for (const data of [Buffer.alloc(0), Buffer.from('x'), randomBytes(4000), randomBytes(300_000)]) {
      const stored = encryptObject(key, compressNone(data), 12345n);
      const obj = Buffer.from(stored);
      const out = resealInPlace(key, job, obj);
      expect(out.buffer).toBe(obj.buffer);
      expect(out.byteOffset).toBe(obj.byteOffset + 40);
      expect(out.equals(encryptObject(job, decryptObject(key, stored).payload))).toBe(true);
      expect(decryptObject(job, out).payload.equals(compressNone(data))).toBe(true);
    }
    // A damaged object is refused before a byte changes, as for an AES job key.
    const damaged = encryptObject(key, compressNone(randomBytes(100)), 7n);
    damaged[60]! ^= 1;
    const before = Buffer.from(damaged);
    expect(() => resealInPlace(key, job, damaged)).toThrow(IntegrityError);
    expect(damaged.equals(before)).toBe(true);
    // An AES job key still needs its counter.
    expect(() => resealInPlace(key, createJobKey(key).key, encryptObject(key, compressNone(Buffer.from('a')), 1n))).toThrow(RangeError);
  });

  it('refuses a damaged object before changing a byte, and non-AES keys', () => {
    const key = keyFor('repokey');
    const job = createJobKey(key).key;
    const obj = encryptObject(key, compressNone(randomBytes(100)), 7n);
    obj[60]! ^= 1;
    const before = Buffer.from(obj);
    expect(() => resealInPlace(key, job, obj, 1n)).toThrow(IntegrityError);
    expect(obj.equals(before)).toBe(true);
    expect(() => resealInPlace(job, key, encryptObject(key, compressNone(Buffer.from('a')), 1n), 1n)).toThrow(IntegrityError);
    const plain = keyFor('authenticated');
    expect(() => resealInPlace(plain, plain, encryptObject(plain, compressNone(Buffer.from('a'))), 1n)).toThrow(RangeError);
  });
});
