// What an untrusted client wrote into its archive must not reach outside a restore's target.
// borg 1.2.4's extract refuses only paths that start with '/' or '../' (archive.py extract_item):
// a hostile client's item `a/../../x`, or a file below one of its own symlinks (`a -> /etc`, then
// `a/passwd`), would be written outside the target — on whatever client the operator restores
// to. borg create never writes such items (make_path_safe, one item per path), so an archive
// holding one was crafted, and it is not restored at all.
import type { ArchiveItem } from '../borg/item.js';
import { S_IFLNK, S_IFMT } from '../borg/item.js';
import { keyOf } from '../borg/msgpack.js';

export class UnsafeArchivePath extends Error {
  override name = 'UnsafeArchivePath';
}

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * Whether `p` is a relative path of non-empty components, none "." or "..", without NUL: a byte
 * loop, as it runs for every item of the archive before the restore starts.
 */
function wellFormed(p: Uint8Array): boolean {
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    const c = i < p.length ? p[i] : SLASH;
    if (c === 0) return false;
    if (c !== SLASH) continue;
    const len = i - start;
    if (len === 0 || (p[start] === DOT && (len === 1 || (len === 2 && p[start + 1] === DOT)))) return false;
    start = i + 1;
  }
  return true;
}

const shown = (p: Uint8Array) => JSON.stringify(Buffer.from(p).toString('utf8'));

/** Fed every item in stream order; throws UnsafeArchivePath at the first that could escape. */
export class RestorePathGuard {
  /** Paths of the archive's symlinks (binary strings): nothing may be below one of them. */
  private readonly symlinks = new Set<string>();

  check(item: ArchiveItem): void {
    const p = item.path;
    // `borg create ::a .` stores the folder itself as '.'; extracting it only sets the target's own attributes.
    if (p.length === 1 && p[0] === DOT) return;
    if (!wellFormed(p)) throw new UnsafeArchivePath(`the archive holds the path ${shown(p)}, which borg create never writes (empty, absolute, "." or ".." components)`);
    const symlink = (item.mode & S_IFMT) === S_IFLNK;
    if (!symlink && !this.symlinks.size) return;
    const path = keyOf(p);
    if (this.symlinks.size) {
      for (let i = path.indexOf('/'); i > 0; i = path.indexOf('/', i + 1)) {
        if (this.symlinks.has(path.slice(0, i))) throw new UnsafeArchivePath(`the archive holds ${shown(p)} below its own symlink ${shown(p.subarray(0, i))}`);
      }
    }
    if (symlink) this.symlinks.add(path);
  }
}
