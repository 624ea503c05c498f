import { describe, expect, it } from 'vitest';
import { BorgFormatError, PassphraseWrongError } from './errors.js';
import {
  asKeyType,
  createJobKey,
  decryptKeyEnvelope,
  encryptKeyEnvelope,
  loadKey,
  packInnerKey,
  parseInnerKey,
  parseKeyText,
  renderKeyfile,
  renderRepokey,
  wrapBase64,
} from './keys.js';
import { idHash } from './objects.js';
import { HAVE_BORG, MODES, borgCheckSchema, borgPython, keyText, loadExpect } from './test-fixtures.js';

const ENCRYPTED_MODES = MODES.filter((m) => m !== 'none');

describe('keys written by borg 1.2.4', () => {
  it.each(ENCRYPTED_MODES)('%s: decrypts with passphrase "test" to the fields borg loaded', (mode) => {
    const e = loadExpect(mode);
    const text = keyText(mode);
    expect(text).toBeDefined();
    const key = loadKey(text ?? '', 'test', asKeyType(e.keyType));
    const want = e.key;
    expect(key.idKey.toString('hex')).toBe(want?.id_key);
    expect(key.encKey.toString('hex')).toBe(want?.enc_key);
    expect(key.encHmacKey.toString('hex')).toBe(want?.enc_hmac_key);
    expect(key.chunkSeed).toBe(want?.chunk_seed);
    expect(key.repositoryId.toString('hex')).toBe(want?.repository_id);
    expect(key.tamRequired).toBe(want?.tam_required);
    expect(key.idKey.length).toBe([4, 5, 6].includes(e.keyType) ? 128 : 32);
  });
  it.each(ENCRYPTED_MODES)('%s: a wrong passphrase is detected', (mode) => {
    const e = loadExpect(mode);
    expect(() => loadKey(keyText(mode) ?? '', 'tesT', asKeyType(e.keyType))).toThrow(PassphraseWrongError);
  });
  it('key files carry BORG_KEY <repo id>; repokey text from load_key keeps its newlines', () => {
    const kf = parseKeyText(keyText('keyfile') ?? '');
    expect(kf.kind).toBe('keyfile');
    if (kf.kind === 'keyfile') expect(kf.repositoryId.toString('hex')).toBe(loadExpect('keyfile').repositoryId);
    const rk = keyText('repokey') ?? '';
    expect(rk).toContain('\n');
    expect(parseKeyText(rk).kind).toBe('repokey');
  });
  it('re-rendering reproduces borg\'s text layout (70-column base64)', () => {
    const text = keyText('repokey') ?? '';
    const env = parseKeyText(text).envelope;
    expect(wrapBase64(env)).toBe(text);
    const kf = keyText('keyfile') ?? '';
    const parsed = parseKeyText(kf);
    expect(`BORG_KEY ${loadExpect('keyfile').repositoryId}\n${wrapBase64(parsed.envelope)}\n`).toBe(kf);
  });
  it('refuses malformed key text and envelopes', () => {
    expect(() => parseKeyText('BORG_KEY abc\nAAAA')).toThrow(BorgFormatError);
    expect(() => parseKeyText('not*base64')).toThrow(BorgFormatError);
    const inner = packInnerKey(loadKey(keyText('repokey') ?? '', 'test', 3));
    const env = encryptKeyEnvelope(inner, 'pw', 10);
    expect(decryptKeyEnvelope(env, 'pw')).toEqual(inner);
    expect(() => decryptKeyEnvelope(encryptKeyEnvelope(inner, 'pw', 5_000_000), 'pw')).toThrow(/outside/);
    expect(() => parseInnerKey(inner, 5)).toThrow(/expected 128 bytes/); // a 32-byte HMAC key is not a BLAKE2 key
  });
});

describe('job keys', () => {
  it.each(ENCRYPTED_MODES)('%s: same id_key/chunk_seed/repository_id, fresh enc keys, identical chunk ids', (mode) => {
    const e = loadExpect(mode);
    const real = loadKey(keyText(mode) ?? '', 'test', asKeyType(e.keyType));
    const job = createJobKey(real);
    expect(job.key.idKey).toEqual(real.idKey);
    expect(job.key.chunkSeed).toBe(real.chunkSeed);
    expect(job.key.repositoryId).toEqual(real.repositoryId);
    expect(job.key.encKey.equals(real.encKey)).toBe(false);
    expect(job.key.encHmacKey.equals(real.encHmacKey)).toBe(false);
    expect(job.key.encHmacKey.length).toBe(real.encHmacKey.length);
    if (real.encHmacKey.length === 128) expect(job.key.encHmacKey.subarray(64)).toEqual(Buffer.alloc(64));
    const data = Buffer.from(`chunk content for ${mode}`);
    expect(idHash(job.key, data)).toEqual(idHash(real, data));
    // round trip through both text forms at a low iteration count
    const again = loadKey(renderRepokey(job.key, job.passphrase, 1000), job.passphrase, job.key.type);
    expect(again).toEqual(job.key);
    const kf = renderKeyfile(job.key, job.passphrase, 1000);
    expect(kf.startsWith(`BORG_KEY ${real.repositoryId.toString('hex')}\n`)).toBe(true);
    expect(kf.endsWith('\n')).toBe(true);
    expect(loadKey(kf, job.passphrase, job.key.type)).toEqual(job.key);
  });
  it('refuses a job key from the other id-hash family', () => {
    const real = loadKey(keyText('repokey') ?? '', 'test', 3);
    expect(() => createJobKey(real, 5)).toThrow(/same id hash/);
    expect(createJobKey(real, 7).key.type).toBe(7);
  });
  it.runIf(HAVE_BORG).each(ENCRYPTED_MODES)('%s: borg 1.2.4 loads the rendered job key and computes the same ids', (mode) => {
    const e = loadExpect(mode);
    const real = loadKey(keyText(mode) ?? '', 'test', asKeyType(e.keyType));
    const job = createJobKey(real);
    const text = [0, 4].includes(e.keyType) ? renderKeyfile(job.key, job.passphrase, 1000) : renderRepokey(job.key, job.passphrase, 1000);
    const data = [Buffer.from('a'), Buffer.alloc(5000, 7)];
    const r = borgCheckSchema.parse(borgPython(['check'], { type: e.keyType, keyText: text, passphrase: job.passphrase, idData: data.map((d) => d.toString('hex')) }));
    expect(r.ids).toEqual(data.map((d) => idHash(real, d).toString('hex')));
    expect(r.chunkSeed).toBe(real.chunkSeed);
  });
});
