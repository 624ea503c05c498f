// A private temporary folder for one test, removed with the file's other cleanups (cleanup.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerCleanup } from './cleanup.js';

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  registerCleanup(`folder ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
