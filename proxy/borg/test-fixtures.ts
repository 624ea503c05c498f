// Test-only helpers: load the fixtures written by testdata/generate.sh (real borg 1.2.4) and describe
// them with zod, so the tests never trust the JSON shape blindly either.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ChunkIndex } from './hashindex.js';
import { iterSegment, replayCommitted, type SegmentEntry } from './segments.js';

export const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
export const MODES = ['repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2', 'authenticated', 'authenticated-blake2', 'none'] as const;
export type Mode = (typeof MODES)[number];

const objectSchema = z.object({
  id: z.string(),
  kind: z.enum(['manifest', 'archive', 'items', 'data']),
  type: z.number(),
  size: z.number(),
  compression: z.string(),
  payloadLen: z.number(),
  plainLen: z.number(),
  plainSha256: z.string(),
  iv: z.number().optional(),
});

const expectSchema = z.object({
  mode: z.string(),
  keyType: z.number(),
  repositoryId: z.string(),
  key: z
    .object({
      id_key: z.string(),
      enc_key: z.string(),
      enc_hmac_key: z.string(),
      chunk_seed: z.number(),
      repository_id: z.string(),
      tam_required: z.boolean(),
    })
    .optional(),
  loadKey: z.string().optional(),
  archives: z.record(
    z.string(),
    z.object({
      id: z.string(),
      time: z.string(),
      items: z.array(z.string()),
      refs: z.array(z.string()),
      nitems: z.number(),
      keys: z.array(z.string()),
      tam: z.string(),
      plainSha256: z.string(),
    }),
  ),
  manifest: z.object({ id: z.string(), timestamp: z.string(), plain: z.string(), tam: z.string(), tamVerifiedByBorg: z.boolean() }),
  objects: z.array(objectSchema),
});
export type Expect = z.infer<typeof expectSchema>;
export type ExpectObject = z.infer<typeof objectSchema>;

export function loadExpect(mode: Mode): Expect {
  return expectSchema.parse(JSON.parse(readFileSync(join(TESTDATA, 'repos', mode, 'expect.json'), 'utf8')));
}

export function repoDir(mode: Mode): string {
  return join(TESTDATA, 'repos', mode, 'repo');
}

/** The key text as the client would get it: key file contents, or the repokey text `load_key` returns. */
export function keyText(mode: Mode): string | undefined {
  const kf = join(TESTDATA, 'repos', mode, 'keyfile');
  if (existsSync(kf)) return readFileSync(kf, 'utf8');
  return loadExpect(mode).loadKey;
}

export const msgpackVectorSchema = z.array(
  z.object({
    name: z.string(),
    value: z.unknown(),
    hex: z.string().nullable(),
    len: z.number(),
    sha256: z.string(),
    head: z.string(),
  }),
);

// ------------------------------------------------------------------------------------------------
// Real borg as an oracle at test time (optional: tests using it are skipped when borg is absent).

import { execFileSync, spawnSync } from 'node:child_process';

function detectBorg(): boolean {
  try {
    const r = spawnSync('/usr/bin/python3', ['-c', 'import borg; assert borg.__version__ == "1.2.4"'], { stdio: 'ignore' });
    return r.status === 0 && spawnSync('borg', ['--version'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
}
/** True when borg 1.2.4 and its Python modules are installed. */
export const HAVE_BORG = detectBorg();

/** The independent lab implementation (shared/tools/borg/verify.py), if the shared folder is beside the repo. */
export const VERIFY_PY = [join(TESTDATA, '..', '..', '..', '..', 'shared', 'tools', 'borg', 'verify.py'), '/work/shared/tools/borg/verify.py'].find((p) =>
  existsSync(p),
);

/** Runs testdata/extract.py with borg's own modules; returns parsed JSON. */
export function borgPython(args: string[], input?: unknown): unknown {
  const out = execFileSync('/usr/bin/python3', [join(TESTDATA, 'extract.py'), ...args], {
    input: input === undefined ? undefined : JSON.stringify(input),
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(out.toString('utf8'));
}

export const borgCheckSchema = z.object({
  objects: z.array(z.object({ ok: z.boolean(), plainSha256: z.string().optional(), error: z.string().optional() })),
  manifests: z.array(z.object({ ok: z.boolean(), verified: z.boolean().optional(), error: z.string().optional() })),
  ids: z.array(z.string()),
  chunkSeed: z.number().nullable(),
});

/** The chunks index borg should hold for the repokey fixture, derived from what borg reported (expect.json). */
export function expectedCacheIndex(e: Expect, archiveIds?: string[]): ChunkIndex {
  const objSize = new Map(e.objects.map((o) => [o.id, o]));
  const idx = new ChunkIndex();
  const add = (id: string): void => {
    const o = objSize.get(id);
    if (!o) throw new Error(`unknown object ${id}`);
    idx.add(Buffer.from(id, 'hex'), 1, o.plainLen, o.size);
  };
  for (const a of Object.values(e.archives)) {
    if (archiveIds && !archiveIds.includes(a.id)) continue;
    add(a.id);
    for (const i of a.items) add(i);
    for (const r of a.refs) add(r);
  }
  return idx;
}

// Repository segment files on disk (segments.ts parses them).

/** Segment numbers of a repository, ascending: files `data/<n // 1000>/<n>`. */
export function listSegments(repoDir: string): { segment: number; path: string }[] {
  const out: { segment: number; path: string }[] = [];
  const data = join(repoDir, 'data');
  for (const dir of readdirSync(data)) {
    if (!/^\d+$/.test(dir)) continue;
    for (const f of readdirSync(join(data, dir))) if (/^\d+$/.test(f)) out.push({ segment: Number(f), path: join(data, dir, f) });
  }
  return out.sort((a, b) => a.segment - b.segment);
}

/** Iterates every entry of every segment of a repository directory, in log order. */
export function* iterRepository(repoDir: string): Generator<SegmentEntry> {
  for (const { segment, path } of listSegments(repoDir)) {
    const buf = readFileSync(path);
    if (buf.length === 0) continue; // logically deleted segments may be left truncated
    yield* iterSegment(buf, segment);
  }
}

/** Committed objects of a repository directory (hex id -> object). */
export function liveObjects(repoDir: string): Map<string, Buffer> {
  return replayCommitted(iterRepository(repoDir));
}

/** Splits a relay.py log into the client->server and server->client byte streams. */
export function relayStreams(file: string): { c2s: Buffer[]; s2c: Buffer[] } {
  const log = readFileSync(file);
  const c2s: Buffer[] = [];
  const s2c: Buffer[] = [];
  for (let pos = 0; pos < log.length; ) {
    const tag = String.fromCharCode(log[pos] ?? 0);
    const len = log.readUInt32LE(pos + 9);
    (tag === 'C' ? c2s : s2c).push(log.subarray(pos + 13, pos + 13 + len));
    pos += 13 + len;
  }
  return { c2s, s2c };
}
