// A "client machine" for tests: a fresh unprivileged Unix user on this host, reached through
// startClientSshd() with a key in its ~/.ssh/authorized_keys, with a home the test fills with a
// file tree. It belongs to no group of BorgCube's accounts, so the data dir and the repositories
// (0700 of other accounts) stay closed to it — which is what the proxy's invariants assume.
import { createCipheriv, createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { registerCleanup } from './cleanup.js';
import { createTaggedUser, newTestUserName, removeTestUser } from './users.js';

/**
 * One entry of a test tree, keyed by its path relative to the tree's base:
 * - a string or Buffer: a regular file with that content (mode 0644);
 * - `{ type: 'file', content }` or `{ type: 'file', size, seed }`: `size` pseudo-random bytes
 *   (incompressible, identical for the same seed, so two files with one seed deduplicate);
 * - `{ type: 'dir' }`: a folder (parents of other entries are made implicitly, 0755);
 * - `{ type: 'symlink', target }`: a symbolic link (target not checked).
 * `mtime` is a Date or seconds since the epoch; `mode` the permission bits.
 */
export type TreeEntry =
  | string
  | Buffer
  | { type: 'file'; content?: string | Buffer; size?: number; seed?: string | number; mode?: number; mtime?: Date | number }
  | { type: 'dir'; mode?: number; mtime?: Date | number }
  | { type: 'symlink'; target: string; mtime?: Date | number };

export type TreeSpec = Record<string, TreeEntry>;

/** Deterministic incompressible bytes: AES-256-CTR keystream keyed by the seed. */
export function pseudoRandomBytes(size: number, seed: string | number = 0, offset = 0): Buffer {
  const key = createHash('sha256').update(`borgcube-test:${seed}`).digest();
  const iv = Buffer.alloc(16);
  // CTR counter = block index, so any offset can be produced without the bytes before it.
  iv.writeBigUInt64BE(BigInt(Math.floor(offset / 16)), 8);
  const c = createCipheriv('aes-256-ctr', key, iv);
  const skip = offset % 16;
  return c.update(Buffer.alloc(size + skip)).subarray(skip);
}

function safeRelative(path: string): string {
  const n = normalize(path);
  if (!n || n === '.' || isAbsolute(n) || n === '..' || n.startsWith(`..${sep}`)) throw new Error(`tree paths must stay inside the base: ${path}`);
  return n;
}

/**
 * Writes `spec` under `base` (which must exist). Everything belongs to uid/gid. Folder mtimes
 * are set last, deepest first, because writing into a folder changes its mtime.
 */
export function writeTree(base: string, spec: TreeSpec, owner: { uid: number; gid: number }): void {
  const dirTimes: Array<[string, Date | number]> = [];
  const ensureParents = (path: string) => {
    const parent = dirname(path);
    if (existsSync(parent)) return;
    ensureParents(parent);
    mkdirSync(parent, { mode: 0o755 });
    chownSync(parent, owner.uid, owner.gid);
  };
  for (const [rel, raw] of Object.entries(spec)) {
    const path = join(base, safeRelative(rel));
    ensureParents(path);
    const entry = typeof raw === 'string' || Buffer.isBuffer(raw) ? { type: 'file' as const, content: raw } : raw;
    switch (entry.type) {
      case 'file': {
        if (entry.content !== undefined) writeFileSync(path, entry.content);
        else {
          // Large files are written in slices: tests use files of hundreds of MB.
          const fd = openSync(path, 'w');
          try {
            const slice = 4 * 1024 * 1024;
            for (let off = 0; off < (entry.size ?? 0); off += slice) writeSync(fd, pseudoRandomBytes(Math.min(slice, entry.size! - off), entry.seed ?? rel, off));
          } finally {
            closeSync(fd);
          }
        }
        chmodSync(path, entry.mode ?? 0o644);
        chownSync(path, owner.uid, owner.gid);
        const t = entry.mtime;
        if (t !== undefined) utimesSync(path, t, t);
        break;
      }
      case 'dir': {
        if (!existsSync(path)) mkdirSync(path);
        chmodSync(path, entry.mode ?? 0o755);
        chownSync(path, owner.uid, owner.gid);
        if (entry.mtime !== undefined) dirTimes.push([path, entry.mtime]);
        break;
      }
      case 'symlink': {
        symlinkSync(entry.target, path);
        lchownSync(path, owner.uid, owner.gid);
        if (entry.mtime !== undefined) lutimesSync(path, entry.mtime, entry.mtime);
        break;
      }
    }
  }
  dirTimes.sort((a, b) => b[0].length - a[0].length);
  for (const [path, t] of dirTimes) utimesSync(path, t, t);
}

export interface TreeNode {
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds (borg keeps ns; restores are compared at this precision). */
  mtime: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/** A comparable picture of a tree: path → node, for checking a restore against its source. */
export function describeTree(root: string): Record<string, TreeNode> {
  const out: Record<string, TreeNode> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const node: TreeNode = {
        type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other',
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
      };
      if (st.isFile()) {
        node.size = st.size;
        node.sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
      } else if (st.isSymbolicLink()) node.target = readlinkSync(path);
      out[relative(root, path)] = node;
      if (st.isDirectory()) walk(path);
    }
  };
  walk(root);
  return out;
}

export interface ClientHostOptions {
  /** Public keys ("ssh-ed25519 AAAA… comment") allowed to log in, e.g. the server's key. */
  authorizedKeys?: string[];
  /** A tree written into the home right away. */
  tree?: TreeSpec;
  shell?: string;
  /**
   * Where the home is made (default /home). sshd's StrictModes refuses homes below a
   * world-writable folder such as /tmp.
   */
  homeRoot?: string;
}

export interface ClientHost {
  username: string;
  uid: number;
  gid: number;
  /** 0700, owned by the user. */
  home: string;
  /** home joined with `rel`. */
  path(...rel: string[]): string;
  /** Appends a key to ~/.ssh/authorized_keys (options such as `restrict` go before the key). */
  authorize(publicKey: string, options?: string): void;
  /** Writes a tree below the home (or below `base`, relative to the home). */
  writeTree(spec: TreeSpec, base?: string): void;
  /** Deletes the user, its processes and its home. Idempotent; also runs after the file's tests. */
  remove(): Promise<void>;
}

export async function createClientHost(opts: ClientHostOptions = {}): Promise<ClientHost> {
  const username = newTestUserName();
  const home = join(opts.homeRoot ?? '/home', username);
  const remove = registerCleanup(`client host ${username}`, () => removeTestUser(username));
  try {
    const account = await createTaggedUser(username, { home, shell: opts.shell });
    const owner = { uid: account.uid, gid: account.gid };
    mkdirSync(home, { mode: 0o700 });
    chmodSync(home, 0o700);
    chownSync(home, owner.uid, owner.gid);
    const sshDir = join(home, '.ssh');
    const authorizedKeys = join(sshDir, 'authorized_keys');
    mkdirSync(sshDir, { mode: 0o700 });
    chownSync(sshDir, owner.uid, owner.gid);
    // StrictModes: ~/.ssh 0700 and authorized_keys 0600, both the user's, home not group-writable.
    writeFileSync(authorizedKeys, '', { mode: 0o600 });
    chownSync(authorizedKeys, owner.uid, owner.gid);
    const host: ClientHost = {
      username,
      uid: owner.uid,
      gid: owner.gid,
      home,
      path: (...rel) => join(home, ...rel),
      authorize: (publicKey, options) => {
        const line = `${options ? `${options} ` : ''}${publicKey.trim()}\n`;
        writeFileSync(authorizedKeys, line, { flag: 'a' });
      },
      writeTree: (spec, base) => {
        const dir = base ? join(home, safeRelative(base)) : home;
        if (!existsSync(dir)) {
          mkdirSync(dir, { recursive: true, mode: 0o755 });
          // Folders made for `base` belong to the user too.
          for (let d = dir; d !== home && d.startsWith(home); d = dirname(d)) chownSync(d, owner.uid, owner.gid);
        }
        writeTree(dir, spec, owner);
      },
      remove,
    };
    for (const k of opts.authorizedKeys ?? []) host.authorize(k);
    if (opts.tree) host.writeTree(opts.tree);
    return host;
  } catch (err) {
    await remove();
    throw err;
  }
}

/**
 * The real borg behind a gate: `borg create` (or `subcommand`) waits while the gate is held, every
 * other command runs at once. For tests that need a backup (a restore) to be still running at some
 * point, without timing assumptions. Use `path` as the client's borg path; the gate starts open.
 */
export function gatedBorg(host: ClientHost, subcommand: 'create' | 'extract' = 'create'): { path: string; hold(): void; release(): void } {
  const holdFile = host.path('hold');
  host.writeTree({ 'gated-borg': { type: 'file', mode: 0o755, content: ['#!/bin/sh', `if [ "$1" = "${subcommand}" ]; then while [ -e ${holdFile} ]; do sleep 0.1; done; fi`, 'exec borg "$@"', ''].join('\n') } });
  return {
    path: host.path('gated-borg'),
    hold: () => host.writeTree({ hold: '' }),
    release: () => rmSync(holdFile, { force: true }),
  };
}
