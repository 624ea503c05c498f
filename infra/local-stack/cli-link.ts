// `borgcube` on PATH after `npm start`, as the README writes it: a symlink in /usr/local/bin to
// this checkout's bin/borgcube. Made only where nothing is, or refreshed where our own link is;
// a file or link someone else put there is left alone and the banner says how to run the CLI.
import { lstatSync, mkdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';

export type CliLink = { linked: true; path: string; created: boolean } | { linked: false; path: string; reason: string };

export const defaultCliLinkPath = '/usr/local/bin/borgcube';

export function ensureCliLink(cli: string, path = defaultCliLinkPath): CliLink {
  let target: string | undefined;
  try {
    const st = lstatSync(path);
    if (!st.isSymbolicLink()) return { linked: false, path, reason: `${path} exists and is not a link of BorgCube's` };
    target = readlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (target === cli) return { linked: true, path, created: false };
  if (target !== undefined) return { linked: false, path, reason: `${path} points to ${target}, not to this checkout` };
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  symlinkSync(cli, path);
  return { linked: true, path, created: true };
}

/** The banner's line on how to reach the CLI. */
export function describeCliLink(link: CliLink, cli: string): string {
  if (link.linked) return `run \`borgcube --help\` (${link.path} → ${cli})`;
  return `run \`${cli} --help\` (${link.reason}; not overwritten)`;
}
