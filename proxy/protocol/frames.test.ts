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

  it('leaves payloads in the chunks they arrived in when sliced, whatever the cuts', () => {
    const big = Buffer.alloc(100_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const small = Buffer.from('y'.repeat(5000));
    const wire = Buffer.concat([...encodeFrame({ t: 'reply', rid: 1 }, big), ...encodeFrame({ t: 'reply', rid: 2 }), ...encodeFrame({ t: 'reply', rid: 3 }, small)]);
    for (const step of [1, 3, 7, 4096, 65536, wire.length]) {
      const d = new FrameDecoder();
      const chunks: Buffer[] = [];
      const frames = [];
      for (let o = 0; o < wire.length; o += step) {
        const c = Buffer.from(Uint8Array.prototype.slice.call(wire, o, o + step));
        chunks.push(c);
        frames.push(...d.pushSliced(c));
      }
      expect(frames.map((f) => f.header)).toEqual([{ t: 'reply', rid: 1 }, { t: 'reply', rid: 2 }, { t: 'reply', rid: 3 }]);
      expect(frames.map((f) => f.length)).toEqual([big.length, 0, small.length]);
      expect(Buffer.concat(frames[0]!.parts).equals(big)).toBe(true);
      expect(frames[1]!.parts).toEqual([]);
      expect(Buffer.concat(frames[2]!.parts).equals(small)).toBe(true);
      // Not copied: every part is a view of one of the chunks pushed.
      const pushed = new Set(chunks.map((c) => c.buffer));
      for (const part of frames.flatMap((f) => f.parts)) expect(pushed.has(part.buffer)).toBe(true);
    }
  });

  it('refuses bad frames when sliced as when not', () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(MAX_FRAME + 1, 0);
    expect(() => new FrameDecoder().pushSliced(bad)).toThrow(FrameError);
    expect(() => new FrameDecoder().pushSliced(Buffer.concat([Buffer.from([0, 0, 0, 7, 0, 0, 0, 3]), Buffer.from('{{{')]))).toThrow(/not JSON/);
    expect(() => new FrameDecoder().pushSliced(Buffer.from([0, 0, 0, 8, 0, 0, 0, 200, 1, 2, 3, 4]))).toThrow(/header length/);
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
