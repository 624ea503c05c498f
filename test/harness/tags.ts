// How the harness marks what it creates on the machine, so that a later run removes the
// leftovers of a crashed one and never touches anything else: every Unix user, temp folder and
// database carries a fixed prefix and the pid of the process that owns it. A resource whose owner
// is gone is a leftover.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Unix user names of client hosts: `bctest-<8 hex>`; sshd's AllowUsers matches the prefix. */
export const userPrefix = 'bctest-';
/** The GECOS field of those users: `borgcube-test owner=<pid>`. */
export const userComment = (owner = process.pid) => `borgcube-test owner=${owner}`;
export const userCommentPattern = /^borgcube-test owner=(\d+)$/;

/** Temp folders: `<tmpdir>/borgcube-test-<kind>-XXXXXX` with an owner.json inside. */
export const dirPrefix = 'borgcube-test-';

/** Databases: `borgcube_test_<owner pid>_<random>`. */
export const databasePrefix = 'borgcube_test_';
export const databasePattern = /^borgcube_test_(\d+)_[a-z0-9]+$/;

export interface OwnerRecord {
  owner: number;
  /** Processes started for this folder; `marker` must appear in /proc/<pid>/cmdline (pid reuse). */
  processes: Array<{ pid: number; marker: string }>;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A fresh tagged temp folder (mode 0700) owned by this process. */
export function makeTaggedDir(kind: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${dirPrefix}${kind}-`));
  writeOwner(dir, { owner: process.pid, processes: [] });
  return dir;
}

export function readOwner(dir: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

function writeOwner(dir: string, rec: OwnerRecord): void {
  writeFileSync(join(dir, 'owner.json'), JSON.stringify(rec));
}

/** Notes a process started for `dir` so a later sweep can end it if this process dies first. */
export function recordProcess(dir: string, pid: number, marker: string): void {
  const rec = readOwner(dir) ?? { owner: process.pid, processes: [] };
  rec.processes = rec.processes.filter((p) => isAlive(p.pid));
  rec.processes.push({ pid, marker });
  writeOwner(dir, rec);
}

/** True when /proc says `pid` still runs a command line containing `marker`. */
export function processMatches(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(marker);
  } catch {
    return false;
  }
}
