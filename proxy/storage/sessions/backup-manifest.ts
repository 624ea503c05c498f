// The manifest a backup client writes, merged into the real one (DESIGN.md §4): it may only add,
// replace or drop its own reserved archive and that archive's checkpoints. New entries get the
// server's clock, so a client cannot make old archives survive a prune or new ones expire.
import { decompress } from '../../borg/compression.js';
import type { BorgKey } from '../../borg/keys.js';
import { parseManifest, type Manifest, type ManifestArchive } from '../../borg/manifest.js';
import { MAX_DATA_SIZE } from '../../borg/msgpack.js';
import { decryptObject } from '../../borg/objects.js';
import { nowBorgTime } from '../../borg/timestamps.js';
import { isCheckpointName, isOwnName, show, type JobContext } from './backup-context.js';
import type { SessionArchive } from './backup-archive.js';
import { PolicyViolation, SessionError } from './errors.js';

/** The client's manifest object, opened and verified under the job key. */
export async function openClientManifest(jobKey: BorgKey, object: Buffer): Promise<{ plaintext: Buffer; parsed: Manifest }> {
  let payload: Buffer;
  try {
    payload = decryptObject(jobKey, object).payload;
  } catch (err) {
    throw new PolicyViolation('bad-mac', `manifest: ${(err as Error).message}`);
  }
  let plaintext: Buffer;
  try {
    plaintext = (await decompress(payload, { maxOutput: MAX_DATA_SIZE })).data;
  } catch (err) {
    throw new PolicyViolation('undecodable-manifest', (err as Error).message);
  }
  try {
    return { plaintext, parsed: parseManifest(jobKey, plaintext) };
  } catch (err) {
    throw new PolicyViolation('manifest-tamper', `manifest does not verify under the job key: ${(err as Error).message}`);
  }
}

/** What the client changed against what it was given; only its own names may change. */
export function diffManifest(ctx: JobContext, base: Manifest, next: Manifest): { added: Array<[string, ManifestArchive]>; removed: string[] } {
  const added: Array<[string, ManifestArchive]> = [];
  const removed: string[] = [];
  for (const [name, a] of next.archives) {
    const before = base.archives.get(name);
    if (before && before.id.equals(a.id)) continue;
    if (!isOwnName(ctx, name)) {
      throw new PolicyViolation('manifest-tamper', before ? `overwrites archive ${show(name)}, which is not this job's` : `adds archive ${show(name)}; this job may only write ${show(ctx.archiveName)}`);
    }
    added.push([name, a]);
  }
  for (const name of base.archives.keys()) {
    if (next.archives.has(name)) continue;
    if (!isCheckpointName(ctx, name)) throw new PolicyViolation('manifest-tamper', `drops archive ${show(name)}, which it may not remove`);
    removed.push(name);
  }
  return { added, removed };
}

export interface MergedManifest {
  real: Map<string, ManifestArchive>;
  /** Real archive objects to delete right before the commit (replaced checkpoints). */
  deletes: Buffer[];
  removedArchives: string[];
}

/** The real manifest's archives with the job's changes applied (under the repository's commit lock). */
export function mergeIntoReal(ctx: JobContext, previous: Manifest, removed: string[], newArchives: Array<{ name: string; entry: SessionArchive }>): MergedManifest {
  const real = new Map(previous.archives);
  const deletes: Buffer[] = [];
  const removedArchives: string[] = [];
  const mine = (a: ManifestArchive) => [...ctx.idMap.values()].includes(a.id.toString('hex'));
  const dropReal = (name: string) => {
    const cur = real.get(name);
    // Only entries this job put there (through this or an earlier session) may go.
    if (!cur || !mine(cur)) return;
    real.delete(name);
    deletes.push(cur.id);
    removedArchives.push(cur.id.toString('hex'));
  };
  for (const name of removed) dropReal(name);
  const time = nowBorgTime();
  for (const { name, entry } of newArchives) {
    const cur = real.get(name);
    if (cur) {
      // Names are reserved per job, so only someone working on the repository by hand can
      // have taken this one: the job fails, but the client did nothing wrong.
      if (!mine(cur)) throw new SessionError('ProxyError', `archive ${show(name)} already exists in the repository and was not written by this job`);
      dropReal(name);
    }
    real.set(name, { id: entry.realId, time });
  }
  return { real, deletes, removedArchives };
}
