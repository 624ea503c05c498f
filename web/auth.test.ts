import { describe, expect, it } from 'vitest';
import { clientAddress } from './auth.js';

describe('clientAddress', () => {
  it('is the socket peer unless the peer is a configured proxy', () => {
    expect(clientAddress('198.51.100.7', '203.0.113.9', [])).toBe('198.51.100.7');
    expect(clientAddress('127.0.0.1', '203.0.113.9', [])).toBe('127.0.0.1');
    expect(clientAddress('198.51.100.7', '203.0.113.9', ['127.0.0.1'])).toBe('198.51.100.7');
  });

  it('behind configured proxies: the nearest forwarded address that is not one of them', () => {
    expect(clientAddress('127.0.0.1', '203.0.113.9', ['127.0.0.1'])).toBe('203.0.113.9');
    expect(clientAddress('::ffff:127.0.0.1', '203.0.113.9', ['127.0.0.1'])).toBe('203.0.113.9');
    // A visitor's own X-Forwarded-For entries sit on the left and are not believed.
    expect(clientAddress('127.0.0.1', '10.9.9.9, 203.0.113.9', ['127.0.0.1'])).toBe('203.0.113.9');
    // Two proxies of ours: skip both.
    expect(clientAddress('127.0.0.1', '203.0.113.9, 192.0.2.1', ['127.0.0.1', '192.0.2.1'])).toBe('203.0.113.9');
    // Garbage or only our own proxies: the peer.
    expect(clientAddress('127.0.0.1', 'not-an-address', ['127.0.0.1'])).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '127.0.0.1', ['127.0.0.1'])).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', undefined, ['127.0.0.1'])).toBe('127.0.0.1');
  });
});
