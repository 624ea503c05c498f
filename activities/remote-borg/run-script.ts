// The run.sh protocol: how the server runs borg on a client detached from the SSH session, so
// that a worker restart re-attaches to it instead of starting over (DESIGN.md §3 step 5).
//
// run.sh runs in the job folder. It writes `run.pid` first, holds `run.lock` until it exits,
// starts borg with its output in `borg.out` / `borg.log`, writes `borg.pid`, and when borg exits
// its exit code to `rc`. A pid file holds "<pid> <start time>": the start time (field 22 of
// /proc/<pid>/stat) tells the process from a later one that got the same pid, wherever it runs
// (borg extract runs in the folder it restores into, not in the job folder).
import { posix } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { sftpWriteFile } from '../../infra/sftp.js';
import { shellCommand, shellQuote } from '../../infra/shell-quote.js';
import type { SshConnection } from '../../infra/ssh.js';

/**
 * Shell functions every script here shares. `started PID` prints the process's start time, or
 * fails when there is no such process or it is a zombie (a client's init may reap orphans late);
 * `alive PID START` says whether PID is still the process that started at START.
 */
export const PROCESS_IDENTITY = [
  'started() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*\\)}; set -- $s; case $1 in Z|X) return 1 ;; esac; printf %s "${20}"; }',
  'alive() { [ -n "$1" ] && [ -n "$2" ] && [ "$(started "$1")" = "$2" ]; }',
].join('\n');

export interface RunScriptInput {
  jobId: string;
  /** The job folder on the client (absolute). */
  dir: string;
  /** borg's argv, the borg command first. */
  argv: string[];
  /** Where borg runs; the job folder when not given. */
  cwd?: string;
  /** Shell lines around borg (database dumps and loads: dump-streams.ts). */
  parts?: ScriptParts;
  /**
   * The job key is `authenticated` (a restore's, proxy/storage/job-key.ts): borg asks before it
   * reads an unencrypted repository its security folder has not seen, and the job folder's is new
   * each time. The client reaches only BorgCube's sshd, pinned in known_hosts.
   */
  authenticatedKey?: boolean;
}

/**
 * Lines run.sh runs around borg, in the job folder, with PROCESS_IDENTITY's functions.
 * `before` runs before borg starts (to give up, it writes rc and exits); `started` after, with
 * borg's pid and start time in $bp and $bs; `ended` after borg exited, its exit code in $rc,
 * before rc is written. `stdout` replaces borg.out as borg's stdout (a redirection target).
 */
export interface ScriptParts {
  before?: string[];
  stdout?: string;
  started?: string[];
  ended?: string[];
}

/** The ssh command borg uses to reach BorgCube's sshd with the job's credential. */
function borgRsh(dir: string): string {
  return shellCommand([
    'ssh', '-F', '/dev/null',
    '-i', posix.join(dir, 'id'),
    '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
    '-o', `UserKnownHostsFile=${posix.join(dir, 'known_hosts')}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
    '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=4',
  ]);
}

/** The script that runs borg on the client, detached from the SSH session. */
export function runScript({ jobId, dir, argv, cwd, parts = {}, authenticatedKey = false }: RunScriptInput): string {
  const q = shellQuote;
  const borg = cwd === undefined ? shellCommand(argv) : `(cd ${q(cwd)} && exec ${shellCommand(argv)})`;
  return [
    '#!/bin/sh',
    `# BorgCube job ${jobId}: written by the server, runs borg ${argv[1] ?? ''} detached from the SSH session.`,
    'umask 077',
    `cd ${q(dir)} || exit 97`,
    `export BORG_BASE_DIR=${q(posix.join(dir, 'home'))}`,
    `export BORG_CACHE_DIR=${q(posix.join(dir, 'cache'))}`,
    `export BORG_KEY_FILE=${q(posix.join(dir, 'key'))}`,
    `export BORG_PASSCOMMAND=${q(shellCommand(['cat', posix.join(dir, 'passphrase')]))}`,
    // OpenSSH prefers chacha20-poly1305, which is the faster choice only without AES
    // instructions (docs/performance.md). Both names are in OpenSSH since 6.5; `^` to reorder
    // the default list needs 8.2, too new for some hosts.
    'if grep -qw aes /proc/cpuinfo 2> /dev/null; then ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com; else ciphers=chacha20-poly1305@openssh.com,aes128-gcm@openssh.com; fi',
    `export BORG_RSH=${q(borgRsh(dir))}" -o Ciphers=$ciphers"`,
    `export BORG_RELOCATED_REPO_ACCESS_IS_OK=no BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=${authenticatedKey ? 'yes' : 'no'} BORG_EXIT_CODES=legacy`,
    'export LANG=C.UTF-8 LC_ALL=C.UTF-8',
    'unset BORG_PASSPHRASE BORG_PASSPHRASE_FD BORG_REPO BORG_NEW_PASSPHRASE',
    PROCESS_IDENTITY,
    // Held until this script exits, so the server's waiter learns the end at once (flock is in
    // util-linux and busybox; without it the waiter polls). Taken before run.pid is written, which
    // the waiter waits for. borg does not inherit it: only this script's exit releases it.
    'exec 9>> run.lock',
    'command -v flock > /dev/null 2>&1 && flock -x 9',
    'echo "$$ $(started $$)" > run.pid',
    ...(parts.before ?? []),
    `${borg} ${parts.stdout ? `>${parts.stdout}` : '>> borg.out'} 2>> borg.log < /dev/null 9>&- &`,
    'bp=$!; bs=$(started $bp); echo "$bp $bs" > borg.pid',
    ...(parts.started ?? []),
    'wait $bp; rc=$?',
    ...(parts.ended ?? []),
    'echo $rc > rc.tmp && mv rc.tmp rc',
    '',
  ].join('\n');
}

/** Writes run.sh into the job folder and starts it in a session of its own. */
export async function startRunScript(conn: SshConnection, sftp: SFTPWrapper, dir: string, script: string): Promise<void> {
  await sftpWriteFile(sftp, posix.join(dir, 'run.sh'), script, 0o700);
  // Detached from the SSH session entirely: with any of its descriptors still open, the exec
  // channel (and the activity) would wait for borg to finish.
  const r = await conn.execRaw(`${shellCommand(['setsid', '-f', 'sh', posix.join(dir, 'run.sh')])} </dev/null >/dev/null 2>&1`, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`starting borg on the client failed: ${r.stderr.toString('utf8').trim().slice(0, 300)}`);
}

/** Whether the borg an earlier run.sh in this job folder started still runs. */
export async function borgRunning(conn: SshConnection, dir: string): Promise<boolean> {
  const script = [PROCESS_IDENTITY, `read -r bp bs 2>/dev/null < ${shellQuote(posix.join(dir, 'borg.pid'))} || exit 1`, 'alive "$bp" "$bs"'].join('\n');
  const r = await conn.execRaw(script, { timeoutMs: 30_000 });
  return r.code === 0;
}

/**
 * Returns when run.sh (started or re-attached to just before) has ended, i.e. borg exited and its
 * rc is written; at once if it is not running. It waits on run.sh's lock when the client has
 * flock, which the kernel releases the moment run.sh exits; then, or without flock, a builtin read
 * of /proc every 0.2 s until run.sh is gone (plain sh, works with busybox). `tail --pid` would
 * wait for run.sh to be reaped, and a client's init may reap its orphans late.
 */
export async function waitForRunEnd(conn: SshConnection, dir: string, signal: AbortSignal): Promise<void> {
  const script = [
    `cd ${shellQuote(dir)} || exit 0`,
    PROCESS_IDENTITY,
    // run.sh writes its pid first thing; give a just-started one a moment.
    'i=0; while [ ! -s run.pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
    'read -r rp rs 2>/dev/null < run.pid; alive "$rp" "$rs" || exit 0',
    // Blocks until run.sh exits (it holds run.lock); the loop below then ends at once.
    'if [ -e run.lock ] && command -v flock > /dev/null 2>&1; then flock -s run.lock true 2>/dev/null; fi',
    // Until it is gone or a zombie (state Z/X after the command name).
    'while read -r st 2>/dev/null < "/proc/$rp/stat"; do case "$st" in *") Z "*|*") X "*) break ;; esac; sleep 0.2; done',
  ].join('\n');
  const r = await conn.execRaw(script, { signal, maxOutput: 4096 });
  if (r.code !== 0) throw new Error(`waiting for borg on the client failed (${r.code ?? r.signal})`);
}

/**
 * A script that sends SIGTERM to borg and run.sh's process group (run.sh is the session leader),
 * then SIGKILL if borg lingers. It ends with `exit`: another script runs it in a subshell.
 */
export function stopRunScript(dir: string): string {
  return [
    PROCESS_IDENTITY,
    `read -r rp rs 2>/dev/null < ${shellQuote(posix.join(dir, 'run.pid'))}; read -r bp bs 2>/dev/null < ${shellQuote(posix.join(dir, 'borg.pid'))}`,
    'alive "$bp" "$bs" || alive "$rp" "$rs" || exit 0',
    // The group outlives run.sh while any member lives, and no other process can take its id.
    'alive "$bp" "$bs" && kill -TERM "$bp" 2>/dev/null; [ -n "$rp" ] && kill -TERM "-$rp" 2>/dev/null',
    'i=0; while alive "$bp" "$bs" && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done',
    'alive "$bp" "$bs" && kill -KILL "$bp" 2>/dev/null; [ -n "$rp" ] && kill -KILL "-$rp" 2>/dev/null; exit 0',
  ].join('\n');
}

/** Stops borg if it still runs (stopRunScript). */
export async function stopRun(conn: SshConnection, dir: string): Promise<void> {
  await conn.execRaw(stopRunScript(dir), { timeoutMs: 60_000 });
}

/** Forgets a finished run's exit, so that the next attempt starts borg again. */
export async function clearRunExit(conn: SshConnection, dir: string): Promise<void> {
  await conn.exec(['rm', '-f', '--', posix.join(dir, 'rc'), posix.join(dir, 'borg.pid')], { timeoutMs: 30_000 });
}
