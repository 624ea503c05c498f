// The file trees the benchmarks back up, written into a client user's home:
//  * big (≥ 500 MB, tens of thousands of files, like PERF_NOTES.md's anchor): copies of the
//    Python standard library and dist-packages and of this checkout's node_modules (without the
//    native binaries of Temporal and koffi, to keep the size near the anchor) — compressible —
//    plus 200 MB of deterministic pseudo-random data — incompressible;
//  * small: 100 small text files in 10 folders.
import { createHash } from 'node:crypto';
import { chownSync, closeSync, lstatSync, openSync, readdirSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runChecked } from '../../infra/subprocess.js';
import { pseudoRandomBytes } from '../../test/harness/client-host.js';
import { projectRoot } from './paths.js';
import type { BenchUser } from './users.js';

export interface TreeInfo {
  path: string;
  bytes: number;
  files: number;
}

export function measureTree(path: string): TreeInfo {
  let bytes = 0;
  let files = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        files++;
        bytes += st.size;
      }
    }
  };
  walk(path);
  return { path, bytes, files };
}

/** Reads every file once, so the first timed backup does not pay for a cold page cache. */
export function warmTree(path: string): void {
  const buf = Buffer.allocUnsafe(1024 * 1024);
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const fd = openSync(p, 'r');
        try {
          while (readSync(fd, buf, 0, buf.length, null) > 0);
        } finally {
          closeSync(fd);
        }
      }
    }
  };
  walk(path);
}

export async function writeBigTree(user: BenchUser, randomMiB = 200): Promise<TreeInfo> {
  const base = join(user.home, 'data');
  user.mkdir(base, 0o755);
  await runChecked('cp', ['-a', '/usr/lib/python3.11', join(base, 'python3.11')], { timeoutMs: 600_000 });
  await runChecked('cp', ['-a', '/usr/lib/python3', join(base, 'python3-dist')], { timeoutMs: 600_000 });
  await runChecked('rsync', ['-a', '--exclude=/@temporalio/', '--exclude=/koffi/', '--exclude=/.cache/', `${projectRoot}/node_modules/`, join(base, 'node_modules/')], { timeoutMs: 600_000 });
  const rnd = join(base, 'random');
  user.mkdir(rnd, 0o755);
  const fileMiB = 20;
  for (let i = 0; i < Math.ceil(randomMiB / fileMiB); i++) {
    const fd = openSync(join(rnd, `blob-${String(i).padStart(2, '0')}.bin`), 'w', 0o644);
    try {
      for (let off = 0; off < fileMiB * 1024 * 1024; off += 4 * 1024 * 1024) writeSync(fd, pseudoRandomBytes(4 * 1024 * 1024, `blob-${i}`, off));
    } finally {
      closeSync(fd);
    }
  }
  await runChecked('chown', ['-R', `${user.uid}:${user.gid}`, base]);
  return measureTree(base);
}

/**
 * 100 small text files in 10 folders. Each file gets its own ctime (ext4 stamps at timer-tick
 * granularity; borg leaves files whose ctime equals the newest one it saw out of its files
 * cache, so a tree written within one tick would never be cached at all).
 */
export async function writeSmallTree(user: BenchUser): Promise<TreeInfo> {
  const base = join(user.home, 'small');
  user.mkdir(base, 0o755);
  for (let d = 0; d < 10; d++) {
    const dir = join(base, `dir-${d}`);
    user.mkdir(dir, 0o755);
    for (let f = 0; f < 10; f++) {
      const n = d * 10 + f;
      const lines = 20 + ((n * 37) % 80);
      let text = '';
      for (let l = 0; l < lines; l++) text += `file ${n} line ${l}: ${createHash('sha1').update(`${n}:${l}`).digest('hex')}\n`;
      const p = join(dir, `file-${n}.txt`);
      writeFileSync(p, text, { mode: 0o644 });
      chownSync(p, user.uid, user.gid);
      await sleep(5);
    }
  }
  return measureTree(base);
}
