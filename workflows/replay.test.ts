// Replays the recorded histories (workflows/histories/, recorded from real runs by
// test/integration/record-histories.test.ts) against today's workflow code, so that a
// non-deterministic change — a step added, removed or reordered — fails here instead of on a
// production worker with running workflows.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';

const dir = new URL('./histories/', import.meta.url);

// The SDK's historyFromJSON fails here ("type must be a Type"): npm installed one copy of
// protobufjs under @temporalio/common and another under @temporalio/proto. The JSON is read with
// the copy that built the History type.
const require = createRequire(import.meta.url);
const { fromJson } = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as {
  fromJson: (type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }) => proto.temporal.api.history.v1.History | null;
};
const historyType = (patchProtobufRoot(require('@temporalio/proto')) as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');

function loadHistory(file: string): proto.temporal.api.history.v1.History {
  const history = fromJson(historyType, JSON.parse(readFileSync(new URL(file, dir), 'utf8')), { ignoreUnknownFields: true });
  if (!history) throw new Error(`${file} is not a history`);
  return history;
}

describe('workflow replay', () => {
  it('replays every recorded history deterministically', async () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const histories = files.map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: loadHistory(f) }));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: fileURLToPath(new URL('./index.ts', import.meta.url)) }, histories)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
