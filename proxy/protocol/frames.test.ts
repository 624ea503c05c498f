import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, FrameError, MAX_FRAME } from './frames.js';

describe('proxy ↔ service framing', () => {
  it('round-trips frames split at every byte boundary', () => {
    const payload = Buffer.from('x'.repeat(1000));
    const wire = Buffer.concat([...encodeFrame({ t: 'put', rid: 1 }, payload), ...encodeFrame({ t: 'commit', rid: 2 })]);
    for (let cut = 1; cut < wire.length; cut += 37) {
      const d = new FrameDecoder();
      const frames = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(frames.map((f) => f.header)).toEqual([{ t: 'put', rid: 1 }, { t: 'commit', rid: 2 }]);
      expect(frames[0]!.payload.equals(payload)).toBe(true);
      expect(frames[1]!.payload.length).toBe(0);
    }
  });

  it('gives large frames an allocation of their own (transferable to a worker)', () => {
    const payload = Buffer.alloc(2 * 1024 * 1024, 7);
    const wire = Buffer.concat(encodeFrame({ t: 'put' }, payload));
    const d = new FrameDecoder();
    const frames = [];
    for (let o = 0; o < wire.length; o += 65536) frames.push(...d.push(wire.subarray(o, o + 65536)));
    expect(frames).toHaveLength(1);
    const f = frames[0]!;
    expect(f.owned).toBe(true);
    expect(f.payload.equals(payload)).toBe(true);
    expect(f.payload.buffer.byteLength).toBe(wire.length);
  });

  it('refuses lengths beyond the limit before buffering, and garbage headers', () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(MAX_FRAME + 1, 0);
    expect(() => new FrameDecoder().push(bad)).toThrow(FrameError);
    const notJson = Buffer.concat([Buffer.from([0, 0, 0, 7, 0, 0, 0, 3]), Buffer.from('{{{')]);
    expect(() => new FrameDecoder().push(notJson)).toThrow(/not JSON/);
    const lying = Buffer.from([0, 0, 0, 8, 0, 0, 0, 200, 1, 2, 3, 4]);
    expect(() => new FrameDecoder().push(lying)).toThrow(/header length/);
  });
});
