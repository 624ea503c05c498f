import { readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/harness/temp-dir.js';
import { describeCliLink, ensureCliLink } from './cli-link.js';

describe('linking borgcube onto PATH', () => {
  const cli = '/checkout/bin/borgcube';

  it('links where nothing is, and keeps its own link', () => {
    const path = join(tempDir('cli-link'), 'bin', 'borgcube');
    expect(ensureCliLink(cli, path)).toEqual({ linked: true, path, created: true });
    expect(readlinkSync(path)).toBe(cli);
    expect(ensureCliLink(cli, path)).toEqual({ linked: true, path, created: false });
    expect(describeCliLink({ linked: true, path, created: false }, cli)).toMatch(/^run `borgcube --help`/);
  });

  it('never overwrites a file or a link of someone else, and says how to run the CLI instead', () => {
    const dir = tempDir('cli-link');
    const file = join(dir, 'file');
    writeFileSync(file, '#!/bin/sh\n');
    const link = join(dir, 'link');
    symlinkSync('/elsewhere/borgcube', link);
    for (const path of [file, link]) {
      const r = ensureCliLink(cli, path);
      expect(r.linked).toBe(false);
      expect(describeCliLink(r, cli)).toContain(`${cli} --help`);
    }
    expect(readlinkSync(link)).toBe('/elsewhere/borgcube');
  });
});
