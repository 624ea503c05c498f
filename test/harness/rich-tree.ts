// A file tree with everything a restore must bring back (issue 20's acceptance): regular, empty
// and sparse files, hard links, symlinks, a FIFO, odd and non-UTF-8 names, modes, mtimes and
// xattrs — and a picture of a tree that compares all of that, for checking a restore.
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../infra/subprocess.js';
import { pseudoRandomBytes } from './client-host.js';

/** A file name that is not UTF-8 ("n\xff\xfe.bin"). */
export const nonUtf8Name = Buffer.from([0x6e, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]);

const t = (iso: string) => new Date(iso);

/** Writes the tree into `base` (made here), everything owned by `owner`. */
export async function writeRichTree(base: string, owner: { uid: number; gid: number }): Promise<void> {
  const own = (p: string | Buffer) => lchownSync(p, owner.uid, owner.gid);
  const dir = (rel: string, mode = 0o755) => {
    mkdirSync(join(base, rel), { recursive: true });
    chmodSync(join(base, rel), mode);
    own(join(base, rel));
  };
  const file = (rel: string, content: string | Buffer, mode = 0o644, mtime = t('2021-02-03T04:05:06.123Z')) => {
    writeFileSync(join(base, rel), content);
    chmodSync(join(base, rel), mode);
    own(join(base, rel));
    utimesSync(join(base, rel), mtime, mtime);
  };
  dir('');
  dir('links');
  dir('odd');
  dir('private', 0o700);
  dir('deep/er/est');
  file('plain.txt', 'plain text\n', 0o640);
  file('empty', '');
  file('exec.sh', '#!/bin/sh\necho hi\n', 0o750, t('2019-12-31T23:59:59Z'));
  file('private/secret', 'only mine\n', 0o600);
  file('deep/er/est/leaf.bin', pseudoRandomBytes(3 * 1024 * 1024 + 17, 'leaf'), 0o644, t('2020-06-01T00:00:00Z'));
  file('odd/with space', 'space\n');
  file('odd/new\nline', 'newline\n');
  file(`odd/quote'"and<b>`, 'quotes\n');
  file('odd/-dash', 'dash\n');
  file('odd/ünïcödé ✓', 'unicode\n');
  const raw = Buffer.concat([Buffer.from(join(base, 'odd') + '/'), nonUtf8Name]);
  writeFileSync(raw, 'not utf-8\n');
  own(raw);
  // Sparse: data at both ends of a 24 MiB hole.
  const sparse = join(base, 'sparse.img');
  const fd = openSync(sparse, 'w');
  writeSync(fd, Buffer.from('head'), 0, 4, 0);
  writeSync(fd, Buffer.from('tail'), 0, 4, 24 * 1024 * 1024);
  closeSync(fd);
  own(sparse);
  // Hard links: three names of one file in two folders, and a second group.
  file('links/one', 'linked\n', 0o604);
  linkSync(join(base, 'links/one'), join(base, 'links/two'));
  linkSync(join(base, 'links/one'), join(base, 'hl-other'));
  file('links/pair-a', pseudoRandomBytes(600 * 1024, 'pair'));
  linkSync(join(base, 'links/pair-a'), join(base, 'links/pair-b'));
  for (const [rel, target] of [['links/rel', '../plain.txt'], ['links/abs', '/etc/hostname'], ['links/dangling', 'nowhere/at all']] as const) {
    symlinkSync(target, join(base, rel));
    own(join(base, rel));
    lutimesSync(join(base, rel), t('2018-01-01T00:00:00Z'), t('2018-01-01T00:00:00Z'));
  }
  const fifo = await run('mkfifo', ['-m', '0620', '--', join(base, 'fifo')], { timeoutMs: 10_000 });
  if (fifo.code !== 0) throw new Error(`mkfifo failed: ${fifo.stderr.toString()}`);
  own(join(base, 'fifo'));
  for (const [rel, name, value] of [['plain.txt', 'user.comment', 'hello'], ['odd', 'user.bin', '0x00ff10'], ['links/one', 'user.k', 'v']] as const) {
    const r = await run('setfattr', ['-h', '-n', name, '-v', value, '--', join(base, rel)], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`setfattr failed: ${r.stderr.toString()}`);
  }
  // Folder mtimes last, deepest first: writing into a folder changes its mtime.
  for (const rel of ['deep/er/est', 'deep/er', 'deep', 'private', 'odd', 'links']) utimesSync(join(base, rel), t('2017-07-07T07:07:07Z'), t('2017-07-07T07:07:07Z'));
}

export interface RichNode {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'other';
  mode: number;
  /** Nanoseconds (borg restores them exactly), as a string. */
  mtime: string;
  size?: number;
  sha256?: string;
  target?: string;
  /** user.* xattrs, hex values. */
  xattrs?: Record<string, string>;
  /** Files with several names: the first name of the group (in walk order). */
  linkGroup?: string;
  uid: number;
  gid: number;
}

/** A node without its owner and group (what a restore by a client that is not root keeps). */
export type OwnerlessNode = Omit<RichNode, 'uid' | 'gid'>;

const nameKey = (b: Buffer) => {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : `hex:${b.toString('hex')}`;
};

async function userXattrs(path: string): Promise<Record<string, string>> {
  const r = await run('getfattr', ['-h', '-d', '-m', '^user\\.', '-e', 'hex', '--absolute-names', '--', path], { timeoutMs: 10_000 });
  const out: Record<string, string> = {};
  for (const line of r.stdout.toString().split('\n')) {
    const m = /^(user\.[^=]+)=(0x[0-9a-f]*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** path (relative, UTF-8 or hex:) → everything a restore must keep. Owners (numeric uid/gid) are reported; withoutOwners drops them. */
export async function describeRichTree(root: string): Promise<Record<string, RichNode>> {
  const out: Record<string, RichNode> = {};
  const inodes = new Map<bigint, string>();
  const walk = async (dir: Buffer, rel: string) => {
    const names = readdirSync(dir, { encoding: 'buffer' }).sort((a, b) => Buffer.compare(a, b));
    for (const name of names) {
      const path = Buffer.concat([dir, Buffer.from('/'), name]);
      const key = rel ? `${rel}/${nameKey(name)}` : nameKey(name);
      const st = lstatSync(path, { bigint: true });
      const node: RichNode = {
        type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'other',
        mode: Number(st.mode & 0o7777n),
        mtime: st.mtimeNs.toString(),
        uid: Number(st.uid),
        gid: Number(st.gid),
      };
      if (st.isFile()) {
        node.size = Number(st.size);
        node.sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
        if (st.nlink > 1n) {
          if (!inodes.has(st.ino)) inodes.set(st.ino, key);
          node.linkGroup = inodes.get(st.ino);
        }
      } else if (st.isSymbolicLink()) node.target = nameKey(readlinkSync(path, { encoding: 'buffer' }));
      // Node passes argv as UTF-8: a name that is not cannot be handed to getfattr.
      if (!key.includes('hex:')) node.xattrs = await userXattrs(path.toString('utf8'));
      out[key] = node;
      if (st.isDirectory()) await walk(path, key);
    }
  };
  await walk(Buffer.from(root), '');
  return out;
}

/** The picture without owners (a client that is not root restores everything as its own). */
export function withoutOwners(tree: Record<string, RichNode>): Record<string, OwnerlessNode> {
  return Object.fromEntries(Object.entries(tree).map(([k, { uid: _uid, gid: _gid, ...rest }]) => [k, rest]));
}
