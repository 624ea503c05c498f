// The forced command's connection to the repository service: frames out, and every frame in
// checked against the exact shapes of proxy/protocol/replies.ts; anything else breaks the link.
import type { Socket } from 'node:net';
import { FrameDecoder, writeFrame, type SlicedFrame } from '../protocol/frames.js';
import { parseServiceMessage, type ServiceMessage } from '../protocol/replies.js';

export interface StorageLink {
  send(header: unknown, payload?: Uint8Array): void;
  /**
   * Every message from the service (replies carry the request's rid), with its payload as the
   * slices of the socket's chunks it arrived in, `length` bytes in all.
   */
  onMessage(handler: (m: ServiceMessage, payload: Buffer[], length: number) => void): void;
  close(): void;
}

/** A StorageLink over the connected storage socket. */
export function storageSocketLink(sock: Socket, onBroken: () => void): StorageLink {
  const decoder = new FrameDecoder();
  let handler: (m: ServiceMessage, payload: Buffer[], length: number) => void = () => {};
  // Once a frame was bad the rest of the stream means nothing: read no further.
  let broken = false;
  const breakLink = () => {
    broken = true;
    onBroken();
  };
  sock.on('data', (chunk: Buffer) => {
    if (broken) return;
    let frames: SlicedFrame[];
    try {
      frames = decoder.pushSliced(chunk);
    } catch {
      return breakLink();
    }
    for (const f of frames) {
      const m = parseServiceMessage(f.header);
      if (!m) return breakLink();
      handler(m, f.parts, f.length);
    }
  });
  sock.on('close', onBroken);
  sock.on('error', onBroken);
  return {
    send: (header, payload) => {
      writeFrame(sock, header, payload);
    },
    onMessage: (h) => {
      handler = h;
    },
    close: () => sock.end(),
  };
}
