// What `borgcube repo repair` does around `borg check --repair` (issue 22.4), with the real key and
// the repository's lock held throughout:
//  * before: the manifest's archive ids, so that afterwards it is known which archives the repair
//    rewrote (it replaces a lost chunk by zeros in every item that referenced it, which gives the
//    archive a new id);
//  * after: borg 1.2.4 writes such an archive with its old TAM, which no longer matches, and the
//    repository service then refuses to open the repository. Exactly the archives the repair
//    rewrote are re-signed with the real key (a TAM that fails on an archive the repair did not
//    touch is left alone and reported: that is damage or tampering, not ours to bless);
//  * the server-side caches built from the old archives are dropped: every client's files cache of
//    the repository (it lists the lost chunk ids of unchanged files) and the per-archive chunk
//    indexes, which the service rebuilds from the archives on its next open.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../infra/logger.js';
import { filesCachePath, filesCachesDir, repoStateDir, type StorageLayoutConfig } from '../../infra/storage-layout.js';
import { parseArchive } from '../borg/archive.js';
import { compressNone } from '../borg/compression.js';
import { IntegrityError } from '../borg/errors.js';
import type { BorgKey } from '../borg/keys.js';
import { packManifest, parseManifest, type Manifest } from '../borg/manifest.js';
import { LIMITS, asBytes, asMap, unpackb } from '../borg/msgpack.js';
import { decryptUnchecked, encryptObject, idHash, MANIFEST_ID } from '../borg/objects.js';
import { packWithTam } from '../borg/tam.js';
import { nextTimestamp } from '../borg/timestamps.js';
import { blocksFor, RealNonces } from './nonces.js';
import { loadRepositoryKey, type RepositoryEncryption } from './repository-key.js';
import { MAX_PLAINTEXT } from './repository.js';
import { nonceCalls, Upstream } from './upstream.js';

export interface RepairTarget {
  repositoryId: string;
  path: string;
  encryption: RepositoryEncryption;
  keyText: string;
  passphrase: string;
  borgPath: string;
  /** The storage account: borg serve runs as it, so every file of the repository stays its own. */
  runAs: { uid: number; gid: number };
  /** A nonce file of the caller's own (the repository's reservation is what counts, nonces.ts). */
  nonceFile: string;
  log: Logger;
  /**
   * The archive ids BorgCube recorded, by name (UTF-8). They still hold the ids from before the
   * repair after a run that failed halfway, and after a repair of a manifest too damaged to read.
   */
  recorded?: Map<string, string>;
}

export interface RepairOutcome {
  /** borg check --repair's exit code. */
  code: number;
  /** Archives whose id changed (the repair rewrote them), by name: before → now. */
  changed: Array<{ name: string; before: string; after: string }>;
  /** Of those, the ones re-signed here (their TAM no longer matched). */
  resigned: string[];
  /** Archives whose TAM fails although the repair did not rewrite them: left as they are. */
  untouchedBadTam: string[];
  /** Client files caches dropped. */
  droppedFilesCaches: number;
}

type Opened = { up: Upstream; key: BorgKey; manifest: Manifest; manifestBound: bigint };

async function openRepository(t: RepairTarget, key: BorgKey): Promise<Opened> {
  const up = await Upstream.start({ borgPath: t.borgPath, repoPath: t.path, lockWait: 60, log: t.log, runAs: t.runAs });
  try {
    await up.openRepository();
    const object = asBytes(await up.call('get', { id: MANIFEST_ID }), 'manifest');
    const dec = await decryptUnchecked(key, object, { maxOutput: MAX_PLAINTEXT });
    return { up, key, manifest: parseManifest(key, dec.data), manifestBound: (dec.iv ?? 0n) + blocksFor(object.length) };
  } catch (err) {
    await up.close();
    throw err;
  }
}

async function readObject(o: Opened, id: Buffer): Promise<Buffer> {
  const dec = await decryptUnchecked(o.key, asBytes(await o.up.call('get', { id }), 'object'), { maxOutput: MAX_PLAINTEXT });
  if (!idHash(o.key, dec.data).equals(id)) throw new IntegrityError(`object ${id.toString('hex')} does not match its id`, 'id');
  return dec.data;
}

/** The manifest's archive ids by name (names as borg keeps them: latin1 binary strings). */
async function archiveIds(t: RepairTarget, key: BorgKey): Promise<Map<string, string>> {
  const o = await openRepository(t, key);
  try {
    return new Map([...o.manifest.archives].map(([name, a]) => [name, a.id.toString('hex')]));
  } finally {
    await o.up.close();
  }
}

/**
 * Runs `repair` (borg check --repair, which takes the repository's lock itself) between a look at
 * the archives before and the re-signing and cache drop after. The caller holds the repository
 * service's lease, so no session opens the repository in between.
 */
export async function repairRepositoryStorage(t: RepairTarget & StorageLayoutConfig, repair: () => Promise<number>): Promise<RepairOutcome> {
  const key = loadRepositoryKey(t.encryption, t.keyText, t.passphrase);
  // A manifest too damaged to read leaves nothing to compare: the repair rebuilds it, and only
  // archives that verify afterwards are opened by the service.
  const before = await archiveIds(t, key).catch((err: Error) => {
    t.log.warn({ err: err.message }, 'the archives before the repair could not be read');
    return new Map<string, string>();
  });
  // The records win: an earlier repair that ended before its re-signing left the manifest with
  // the rewritten ids, and only the records still show that those archives were rewritten.
  for (const [name, id] of t.recorded ?? []) before.set(Buffer.from(name, 'utf8').toString('latin1'), id);
  const code = await repair();
  const outcome: RepairOutcome = { code, changed: [], resigned: [], untouchedBadTam: [], droppedFilesCaches: 0 };
  if (code !== 0 && code !== 1) return outcome;

  const o = await openRepository(t, key);
  try {
    const archives = new Map(o.manifest.archives);
    const rewrite: Array<{ name: string; id: Buffer; value: ReturnType<typeof asMap> }> = [];
    for (const [name, a] of archives) {
      const plaintext = await readObject(o, a.id);
      try {
        parseArchive(key, plaintext, { required: false });
      } catch (err) {
        if (!(err instanceof IntegrityError && err.code === 'tam')) throw err;
        const was = before.get(name);
        if (was === undefined || was === a.id.toString('hex')) {
          outcome.untouchedBadTam.push(name);
          continue;
        }
        const value = asMap(unpackb(plaintext, LIMITS.items), 'archive');
        value.delete('tam');
        rewrite.push({ name, id: a.id, value });
      }
    }
    if (rewrite.length) {
      const nonces = new RealNonces(t.nonceFile, undefined);
      nonces.attach(nonceCalls(o.up), o.manifestBound);
      const seal = async (plaintext: Buffer) => {
        const payload = compressNone(plaintext);
        return encryptObject(key, payload, await nonces.allocate(payload.length));
      };
      for (const r of rewrite) {
        const signed = packWithTam(key, r.value, 'archive');
        parseArchive(key, signed); // the keys borg allows, and a TAM that verifies
        const id = idHash(key, signed);
        await o.up.call('put', { id, data: await seal(signed) });
        await o.up.call('delete', { id: r.id });
        archives.set(r.name, { ...archives.get(r.name)!, id });
        outcome.resigned.push(r.name);
      }
      const prev = o.manifest;
      const manifest = packManifest(key, { archives, timestamp: nextTimestamp(prev.timestamp), config: prev.config, itemKeys: prev.itemKeys.length ? prev.itemKeys : undefined });
      await o.up.call('put', { id: MANIFEST_ID, data: await seal(manifest) });
      await o.up.commit({ save_space: false, compact: false, threshold: 0.1, cleanup_commits: false });
    }
    for (const [name, a] of archives) {
      const was = before.get(name);
      const now = a.id.toString('hex');
      if (was !== undefined && was !== now) outcome.changed.push({ name, before: was, after: now });
    }
  } finally {
    await o.up.close();
  }
  outcome.droppedFilesCaches = dropServerCaches(t, t.repositoryId);
  return outcome;
}

/**
 * Drops what the repository service derived from the archives as they were: every client's files
 * cache of the repository and the per-archive chunk indexes (rebuilt from the archives at the
 * service's next open, counting only chunks that exist). Returns the files caches dropped.
 */
function dropServerCaches(c: StorageLayoutConfig, repositoryId: string): number {
  let dropped = 0;
  const filesCaches = filesCachesDir(c);
  if (existsSync(filesCaches)) {
    for (const clientId of readdirSync(filesCaches)) {
      const p = filesCachePath(c, clientId, repositoryId);
      if (!existsSync(p)) continue;
      rmSync(p, { force: true });
      dropped++;
    }
  }
  const indexes = join(repoStateDir(c, repositoryId), 'chunks', 'archives');
  if (existsSync(indexes)) for (const f of readdirSync(indexes)) rmSync(join(indexes, f), { force: true });
  return dropped;
}
