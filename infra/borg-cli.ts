// Running borg on the server against a repository with its real key. The key material reaches
// borg only through the environment (BORG_PASSPHRASE) and a private temporary key file
// (BORG_KEY_FILE, keyfile modes), never through argv; the temporary folder is 0700, owned by the
// storage account, and removed afterwards.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, run, type RunOptions, type RunResult } from './subprocess.js';

export interface BorgAccount {
  uid: number;
  gid: number;
}

export interface BorgInvocation {
  borgPath: string;
  /**
   * When the caller is not the storage account (the admin CLI runs as root): borg runs here as the
   * caller — so `extract` writes files with the caller's rights — while the repository side,
   * `borg serve`, runs as this account through a local BORG_RSH, so every file in the repository
   * stays owned by the storage account. Use repoLocation() for the repository argument.
   */
  serveAs?: BorgAccount;
  /** BORG_BASE_DIR: borg's cache and security folders for the server-side borg. */
  baseDir: string;
  passphrase: string;
  /** Key-file text for keyfile modes (`BORG_KEY <id>` …); absent for repokey modes. */
  keyFileText?: string;
  /** Extra environment (e.g. BORG_CHECK_I_KNOW_WHAT_I_AM_DOING). */
  env?: Record<string, string>;
}

/** Runs `borg ARGS…` with the repository's key. The caller puts the repository path in args. */
export async function runBorg(inv: BorgInvocation, args: readonly string[], opts: Omit<RunOptions, 'env' | 'uid' | 'gid'> = {}): Promise<RunResult> {
  ensureDir(inv.baseDir);
  let tmp: string | undefined;
  try {
    const env: Record<string, string | undefined> = baseEnv({
      HOME: inv.baseDir,
      BORG_BASE_DIR: inv.baseDir,
      BORG_PASSPHRASE: inv.passphrase,
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'no',
      ...inv.env,
    });
    if (inv.serveAs) {
      // ssh command = BORG_RSH + [host] + [remote path, "serve", …]; with the host "env" this runs
      // `setpriv … env -i … env borg serve …` — borg serve as the storage account, clean environment.
      const { uid, gid } = inv.serveAs;
      env.BORG_RSH = `setpriv --reuid=${uid} --regid=${gid} --clear-groups -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/nonexistent`;
      env.BORG_REMOTE_PATH = inv.borgPath;
    }
    if (inv.keyFileText) {
      tmp = privateTempDir(inv.baseDir);
      const keyFile = join(tmp, 'key');
      writeFileSync(keyFile, inv.keyFileText, { mode: 0o600 });
      env.BORG_KEY_FILE = keyFile;
    }
    return await run(inv.borgPath, args, { ...opts, env });
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** `borg init`; returns the key text (read from the key file in keyfile modes, else from the repo). */
export async function initRepository(
  inv: Omit<BorgInvocation, 'keyFileText'>,
  repoPath: string,
  encryption: string,
  opts: { signal?: AbortSignal } = {},
): Promise<{ result: RunResult; keysDir: string }> {
  const keysDir = privateTempDir(inv.baseDir);
  const result = await runBorg({ ...inv, env: { ...inv.env, BORG_KEYS_DIR: keysDir, BORG_NEW_PASSPHRASE: inv.passphrase } }, ['init', '--encryption', encryption, repoPath], {
    ...opts,
    timeoutMs: 120_000,
  });
  return { result, keysDir };
}

/** The repository argument for borg: a local path, or the local-RSH location when serveAs is set. */
export function repoLocation(inv: Pick<BorgInvocation, 'serveAs'>, path: string, archive?: string): string {
  const base = inv.serveAs ? `ssh://env${path}` : path;
  return archive === undefined ? base : `${base}::${archive}`;
}

export function privateTempDir(parent: string): string {
  ensureDir(parent);
  return mkdtempSync(join(parent, '.tmp-'));
}

function ensureDir(dir: string) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Borg's last error message from its stderr (plain or --log-json), for one-line errors. */
export function borgErrorLine(stderr: Buffer | string): string {
  const lines = stderr.toString().split('\n').map((l) => l.trim()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!;
    if (l.startsWith('{')) {
      try {
        const j = JSON.parse(l) as { type?: string; message?: string; levelname?: string };
        if (j.type === 'log_message' && j.message && (j.levelname === 'ERROR' || j.levelname === 'CRITICAL')) return j.message;
      } catch {
        /* not JSON after all */
      }
      continue;
    }
    if (!/^(Traceback|File |\s)/.test(l)) return l.slice(0, 500);
  }
  return lines[lines.length - 1]?.slice(0, 500) ?? '';
}

/**
 * Reads `<repo>/config` (an ini file written by borg's ConfigParser): the repository id and, in
 * repokey modes, the key text. Continuation lines (indented) belong to the previous value.
 */
export function parseRepositoryConfig(text: string): { id: string; key?: string; appendOnly: boolean } {
  const values = new Map<string, string>();
  let section = '';
  let lastKey: string | undefined;
  for (const raw of text.split('\n')) {
    if (/^\s*[#;]/.test(raw) || raw.trim() === '') continue;
    const sec = /^\[(.+)\]\s*$/.exec(raw);
    if (sec) {
      section = sec[1]!;
      lastKey = undefined;
      continue;
    }
    if (/^\s/.test(raw) && lastKey) {
      values.set(lastKey, `${values.get(lastKey)}\n${raw.trim()}`);
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(raw);
    if (kv) {
      lastKey = `${section}.${kv[1]!.trim()}`;
      values.set(lastKey, kv[2]!.trim());
    }
  }
  const id = values.get('repository.id');
  if (!id || !/^[0-9a-f]{64}$/.test(id)) throw new Error('repository config has no valid [repository] id');
  const key = values.get('repository.key');
  return { id, key: key ? key.trim() : undefined, appendOnly: values.get('repository.append_only') === '1' };
}
