// The lint config enforces DESIGN §6 (STYLE.md §20): a deliberate violation of each kind must
// fail lint. Runs ESLint's API with the project's own config on probe files; the type-aware
// rules are switched off for the probes, which are not part of the TypeScript project.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const eslint = new ESLint({ cwd: root, overrideConfig: [tseslint.configs.disableTypeChecked] });
const probes: string[] = [];

afterAll(() => {
  for (const dir of probes) rmSync(dir, { recursive: true, force: true });
});

async function problems(filePath: string, code: string): Promise<Array<{ rule: string | null; message: string }>> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => ({ rule: m.ruleId, message: m.message }));
}

/** A probe folder inside `parent` (zones are path-based), removed after the file's tests. */
function probeDir(parent: string): string {
  const dir = mkdtempSync(join(root, parent, '.lint-probe-'));
  probes.push(dir);
  return dir;
}

describe('lint enforces the layout', () => {
  it.each([
    ['infra adapters import nothing internal', 'infra/probe.ts', "export { createDb } from '../db/client.js';\n"],
    ['the local stack does not import the product', 'infra/local-stack/probe.ts', "export type { ServiceDeps } from '../../services/deps.js';\n"],
    ['db imports only infra', 'db/probe.ts', "export type { ServiceDeps } from '../services/deps.js';\n"],
    ["Borg's formats import nothing internal", 'proxy/borg/probe.ts', "export type { Config } from '../../infra/config.js';\n"],
    ['the forced command does not reach the database', 'proxy/session/probe.ts', "export type { Db } from '../../db/client.js';\n"],
    ['services see only the public API of the repository service', 'services/probe.ts', "export type { Upstream } from '../proxy/storage/upstream.js';\n"],
    ['activities do not import workflows', 'activities/probe.ts', "export type { JobPhase } from '../workflows/messages.js';\n"],
    ['workflows do not import services', 'workflows/probe.ts', "export type { ServiceDeps } from '../services/deps.js';\n"],
    ['nothing imports a composition root', 'services/probe.ts', "export {} from '../worker/lifecycle.js';\n"],
    ['nothing imports test/', 'db/probe.ts', "export {} from '../test/harness/temp-dir.js';\n"],
  ])('%s', async (_what, file, code) => {
    const found = await problems(join(root, file), code);
    expect(found.map((p) => p.rule)).toContain('import-x/no-restricted-paths');
  });

  it("Borg's formats do no I/O", async () => {
    const found = await problems(join(root, 'proxy/borg/probe.ts'), "import { readFileSync } from 'node:fs';\nexport const read = () => readFileSync('/dev/null');\n");
    expect(found.map((p) => p.rule)).toContain('@typescript-eslint/no-restricted-imports');
  });

  it.each([
    ['a database driver', "import pg from 'pg';\nexport const p = pg;\n"],
    ['the Temporal client', "import { Connection } from '@temporalio/client';\nexport const c = Connection;\n"],
    ['the SQL builder', "import { eq } from 'drizzle-orm';\nexport const e = eq;\n"],
  ])('the forced command does not import %s', async (_what, code) => {
    const found = await problems(join(root, 'proxy/session/probe.ts'), code);
    expect(found.map((p) => p.rule)).toContain('@typescript-eslint/no-restricted-imports');
  });

  it('an import cycle fails, also when one side imports only types', async () => {
    const dir = probeDir('services');
    writeFileSync(join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = (): number => b();\n");
    writeFileSync(join(dir, 'b.ts'), "import type { a } from './a.js';\nexport const b = (): ReturnType<typeof a> => 1;\n");
    const found = await problems(join(dir, 'b.ts'), "import type { a } from './a.js';\nexport const b = (): ReturnType<typeof a> => 1;\n");
    const cycle = found.find((p) => p.rule === 'layout/no-cycle');
    expect(cycle?.message).toContain(`${relative(root, join(dir, 'b.ts'))} → ${relative(root, join(dir, 'a.ts'))} → ${relative(root, join(dir, 'b.ts'))}`);
  });

  it('files over 400 lines and functions over 80 lines fail', async () => {
    const long = `export function f(): number {\n${'  void 0;\n'.repeat(90)}  return 1;\n}\n${'export const x = 1;\n'.repeat(320)}`;
    const rules = (await problems(join(root, 'services/probe.ts'), long)).map((p) => p.rule);
    expect(rules).toContain('max-lines');
    expect(rules).toContain('max-lines-per-function');
  });
});
