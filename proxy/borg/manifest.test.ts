import { describe, expect, it } from 'vitest';
import { IntegrityError } from './errors.js';
import { asKeyType, createJobKey, loadKey, type BorgKey } from './keys.js';
import { ITEM_KEYS, archiveName, archiveNameText, manifestId, mandatoryFeatures, packManifest, parseManifest } from './manifest.js';
import { LIMITS, asMap, getBytes, getMap, packb, sortedMap, unpackb, type Packable } from './msgpack.js';
import { packWithTam, tamKey, verifyTam } from './tam.js';
import { HAVE_BORG, MODES, borgCheckSchema, borgPython, keyText, loadExpect, type Mode } from './test-fixtures.js';

const keyFor = (mode: Mode): BorgKey => loadKey(keyText(mode) ?? '', 'test', asKeyType(loadExpect(mode).keyType));
const saltOf = (plain: Buffer): Buffer => getBytes(getMap(asMap(unpackb(plain, LIMITS.manifest), 'm'), 'tam'), 'salt');

describe.each(MODES)('manifest written by borg 1.2.4 (%s)', (mode) => {
  const e = loadExpect(mode);
  const key = keyFor(mode);
  const plain = Buffer.from(e.manifest.plain, 'hex');

  it('parses with the manifest limits and its TAM verifies', () => {
    expect(e.manifest.tam).toBe('TAM-ok'); // verify.py (independent) agrees
    const m = parseManifest(key, plain);
    expect(m.tamVerified).toBe(true);
    expect(m.version).toBe(1);
    expect(m.timestamp).toBe(e.manifest.timestamp);
    expect(m.itemKeys).toEqual(ITEM_KEYS);
    expect([...m.archives.keys()].map(archiveNameText).sort()).toEqual(Object.keys(e.archives).sort());
    for (const [name, a] of Object.entries(e.archives)) expect(m.archives.get(archiveName(name))?.id.toString('hex')).toBe(a.id);
    expect(mandatoryFeatures(m).size).toBe(0);
    expect(m.config.get('tam_required')).toBe(mode === 'none' ? undefined : true); // PlaintextKey: tam_required False
  });

  it('manifest id is id_hash(plaintext), the value borg put in the cache config', () => {
    expect(manifestId(key, plain).toString('hex')).toBe(e.manifest.id);
  });

  it('re-packing with the same salt reproduces borg\'s bytes exactly', () => {
    const m = parseManifest(key, plain);
    const again = packManifest(key, { archives: m.archives, timestamp: m.timestamp, itemKeys: m.itemKeys, config: m.config }, saltOf(plain));
    expect(again.toString('hex')).toBe(plain.toString('hex'));
  });

  it('detects tampering, a foreign key, a missing TAM and other suites', () => {
    const t = Buffer.from(plain);
    const at = t.indexOf(Buffer.from(e.manifest.timestamp));
    t[at + 3] = t[at + 3] === 0x31 ? 0x32 : 0x31; // change the year
    expect(() => parseManifest(key, t)).toThrow(IntegrityError);
    if (key.type !== 0x02) expect(() => parseManifest(createJobKey(key).key, plain)).toThrow(/did not verify/);
    const value = asMap(unpackb(plain, LIMITS.manifest), 'm');
    value.delete('tam');
    const noTam = packb(value);
    expect(() => parseManifest(key, noTam)).toThrow(expect.objectContaining({ code: 'tam-missing' }));
    expect(parseManifest(key, noTam, { required: false }).tamVerified).toBe(false);
    value.set('evil', 1);
    expect(() => parseManifest(key, packb(value), { required: false })).toThrow(/unexpected key "evil"/);
    const other = asMap(unpackb(plain, LIMITS.manifest), 'm');
    asMap(other.get('tam'), 'tam').set('type', Buffer.from('HKDF_HMAC_SHA256'));
    expect(() => parseManifest(key, packb(other))).toThrow(expect.objectContaining({ code: 'tam-suite' }));
    expect(() => parseManifest(key, Buffer.concat([Buffer.from('c1c1c1c1', 'hex'), plain]))).toThrow(/future/);
  });
});

describe('TAM', () => {
  it('the TAM key of a BLAKE2 key uses the full 128-byte id_key and enc_hmac_key (288-byte ikm)', () => {
    const k = keyFor('repokey-blake2');
    const truncated = { ...k, idKey: k.idKey.subarray(0, 64), encHmacKey: k.encHmacKey.subarray(0, 64) };
    expect(tamKey(k, Buffer.alloc(64), 'manifest').equals(tamKey(truncated, Buffer.alloc(64), 'manifest'))).toBe(false);
    expect(tamKey(k, Buffer.alloc(64), 'manifest').equals(tamKey(k, Buffer.alloc(64), 'archive'))).toBe(false);
  });
  it('plaintext key: TAM key is salt ‖ context', () => {
    const k = keyFor('none');
    expect(tamKey(k, Buffer.from('ab', 'hex'), 'archive')).toEqual(Buffer.concat([Buffer.from('ab', 'hex'), Buffer.from('archive')]));
  });
  it('verification zeroes the FIRST occurrence of the hmac bytes, like 1.2.4', () => {
    const k = keyFor('repokey');
    const salt = Buffer.alloc(64, 3);
    // A map whose earlier field holds 64 zero bytes: packing puts it before `tam`; the real hmac is later.
    const packed = packWithTam(k, new Map<string, Packable>([['a', Buffer.alloc(64)], ['b', 1]]), 'manifest', salt);
    expect(verifyTam(k, packed, 'manifest', LIMITS.manifest).verified).toBe(true);
    // A copy of the hmac placed in an earlier field is what 1.2.4 zeroes; the authenticated bytes changed: refused.
    const hmac = getBytes(getMap(asMap(unpackb(packed, LIMITS.manifest), 'm'), 'tam'), 'hmac');
    const value = asMap(unpackb(packed, LIMITS.manifest), 'm');
    const moved = packb(new Map<string, Packable>([['a', hmac], ...[...value].filter(([key]) => key !== 'a')]));
    expect(() => verifyTam(k, moved, 'manifest', LIMITS.manifest)).toThrow(/did not verify/);
  });
  it('pack -> parse round trip with a job key; sorted keys', () => {
    const job = createJobKey(keyFor('repokey-blake2')).key;
    const archives = new Map([[archiveName('ä-name'), { id: Buffer.alloc(32, 9), time: '2026-01-02T03:04:05.000006' }], ['b', { id: Buffer.alloc(32, 1), time: '2026-01-01T00:00:00.000000' }]]);
    const plain = packManifest(job, { archives, timestamp: '2026-11-26T03:36:18.670482' });
    expect(plain.subarray(0, 10).toString('hex')).toBe(`86a8${Buffer.from('archives').toString('hex')}`);
    const m = parseManifest(job, plain);
    expect([...m.archives.keys()]).toEqual(['b', archiveName('ä-name')]);
    expect(m.archives.get('b')?.time).toBe('2026-01-01T00:00:00.000000');
    expect(m.timestamp).toBe('2026-11-26T03:36:18.670482');
    expect(() => packManifest(job, { archives: new Map([['x'.repeat(256), { id: Buffer.alloc(32), time: '2026-01-01T00:00:00' }]]), timestamp: '2026-01-01T00:00:00' })).toThrow(/255/);
  });
  it('sortedMap orders like StableDict', () => {
    expect([...sortedMap({ version: 1, archives: 1, timestamp: 1, config: 1, item_keys: 1, tam: 1 }).keys()]).toEqual(['archives', 'config', 'item_keys', 'tam', 'timestamp', 'version']);
  });
  it.runIf(HAVE_BORG)('borg 1.2.4 verifies a manifest packed here with a rendered job key', async () => {
    const { renderRepokey } = await import('./keys.js');
    for (const mode of ['repokey', 'repokey-blake2', 'authenticated'] as const) {
      const real = keyFor(mode);
      const job = createJobKey(real);
      const m = parseManifest(real, Buffer.from(loadExpect(mode).manifest.plain, 'hex'));
      const fake = packManifest(job.key, { archives: m.archives, timestamp: m.timestamp });
      const tampered = Buffer.from(fake);
      tampered.writeUInt8(tampered.readUInt8(tampered.length - 2) ^ 1, tampered.length - 2);
      const r = borgCheckSchema.parse(borgPython(['check'], { type: job.key.type, keyText: renderRepokey(job.key, job.passphrase, 1000), passphrase: job.passphrase, manifests: [fake.toString('hex'), tampered.toString('hex')] }));
      expect(r.manifests).toEqual([{ ok: true, verified: true }, { ok: false, error: 'TAMInvalid' }]);
    }
  });
});
