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

/** Fed every item in stream order; throws UnsafeArchivePath at the first that could escape. */
export class RestorePathGuard {
  /** Paths of the archive's symlinks (binary strings): nothing may be below one of them. */
  private readonly symlinks = new Set<string>();

  check(item: ArchiveItem): void {
    const path = keyOf(item.path);
    const shown = JSON.stringify(item.path.toString('utf8'));
    const parts = path.split('/');
    // `borg create ::a .` stores the folder itself as '.'; extracting it only sets the target's own attributes.
    if (path === '.') return;
    if (path === '' || path.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..') || path.includes('\0')) {
      throw new UnsafeArchivePath(`the archive holds the path ${shown}, which borg create never writes (empty, absolute, "." or ".." components)`);
    }
    if (this.symlinks.size) {
      for (let i = path.indexOf('/'); i > 0; i = path.indexOf('/', i + 1)) {
        if (this.symlinks.has(path.slice(0, i))) throw new UnsafeArchivePath(`the archive holds ${shown} below its own symlink ${JSON.stringify(item.path.subarray(0, i).toString('utf8'))}`);
      }
    }
    if ((item.mode & S_IFMT) === S_IFLNK) this.symlinks.add(path);
  }
}
