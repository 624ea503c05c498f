// Issue 3 acceptance, adversarial part 2: a hacked client destroys nothing. Client A's "borg" is
// test/fixtures/evil-borg.py, which builds objects that are valid under its job key except for the
// one thing each attack breaks, and speaks raw bytes for the attacks borg's client cannot express.
// Every attempt must end the job in `violation` through the workflow's `violation` signal, be
// recorded, leave the job's folder gone from the client, and leave the repository as it was: the
// same archives with the same ids, no object of the attack left behind (`borg check` counts
// orphans as errors), and `borg check --verify-data` clean at the end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { borgCheck } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { expectCaught, runAttack, setUpWorld, type AdversarialWorld } from '../fixtures/adversarial.js';

describe('a hacked client destroys nothing through the proxy', () => {
  let w: AdversarialWorld;

  beforeAll(async () => {
    w = await setUpWorld();
  }, 300_000);
  afterAll(async () => {
    if (w) process.stdout.write(`\nadversarial writes, per attack:\n${w.timings.map((t) => `  ${t.attack.padEnd(20)} ${String(t.ms).padStart(6)} ms  ${t.state}  ${t.kinds.join(',')}`).join('\n')}\n`);
    await runCleanups();
  });

  const attack = async (name: string, kinds: string[], targets: Record<string, string | number> = {}) => {
    const run = await runAttack(w, w.a, name, targets);
    await expectCaught(w, w.a, run, kinds);
    return run;
  };

  it('a put whose id does not match its content', async () => {
    await attack('put-id-mismatch', ['id-mismatch']);
  });

  it('a put with a corrupted MAC', async () => {
    await attack('put-bad-mac', ['bad-mac']);
  });

  it('a manifest write that drops an archive', async () => {
    // Archives the client was not given are not in its manifest, so leaving them out drops
    // nothing (its first write below omits all of them and is merged). Dropping what it can
    // name — its own committed archive, which is not a checkpoint — is refused, and the job's
    // archive leaves the repository again with the violation.
    const run = await attack('manifest-drop', ['manifest-tamper']);
    expect(run.result!.steps.map((s) => s.what)).toContain('the first manifest (own archive, nothing of the others) was accepted');
  });

  it("a manifest write that renames another client's archive to this job's name", async () => {
    await attack('manifest-rename', ['unknown-archive'], { archive_id: w.bArchive.id });
  });

  it("a manifest write that overwrites another client's archive", async () => {
    await attack('manifest-overwrite', ['manifest-tamper'], { archive_name: w.bArchive.name });
  });

  it('a manifest write that adds a second archive', async () => {
    await attack('manifest-second', ['manifest-tamper']);
  });

  it("a delete of another client's archive (anything but its own checkpoint)", async () => {
    await attack('delete-archive', ['forbidden-delete'], { archive_id: w.bArchive.id });
  });

  it('an archive that references a chunk the client was never given', async () => {
    await attack('unknown-chunk', ['unknown-chunk-reference'], { chunk: w.bChunk.id, chunk_size: w.bChunk.size, chunk_csize: w.bChunk.csize });
  });

  it('malformed msgpack', async () => {
    const run = await attack('malformed', ['malformed-input']);
    expect(run.result!.hangup_seconds).toBeLessThan(10);
  });

  it('a bin-typed value', async () => {
    const run = await attack('bin-value', ['malformed-input']);
    expect(run.result!.hangup_seconds).toBeLessThan(10);
  });

  it('a frame claiming 100 MB: the proxy hangs up at the header, without waiting for the rest', async () => {
    const run = await attack('frame-100mb', ['malformed-input']);
    expect(run.result!.hangup_seconds).toBeLessThan(10);
  });

  it('malformed msgpack as the very first bytes, before negotiate and open', async () => {
    const run = await attack('malformed-first', ['malformed-input']);
    expect(run.result!.hangup_seconds).toBeLessThan(10);
  });

  it('a frame claiming 100 MB as the very first message', async () => {
    const run = await attack('frame-100mb-first', ['malformed-input']);
    expect(run.result!.hangup_seconds).toBeLessThan(10);
  });

  it('a put with a broken MAC from a client that leaves at once, without waiting for the refusal', async () => {
    // borg create exits (rc 2) while the violation is still being recorded: the job must still end
    // as a violation, not as an ordinary failure.
    await attack('hit-and-run', ['bad-mac']);
  });

  it('afterwards: every earlier archive intact, borg check --verify-data clean', async () => {
    await borgCheck(w.stack, w.repo, '--verify-data');
  });
});
