import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectTo, listen, type Endpoint } from '../../../core/net/endpoint.js';
import { pumpStream, receiveStreamBytes } from '../../../core/net/pump.js';
import type { WireConnection } from '../../../core/net/wire.js';

const key = randomBytes(32);
let endpoint: Endpoint | null = null;
afterEach(async () => {
  await endpoint?.close();
  endpoint = null;
});

/** The byte at stream offset `i` of the test pattern. */
const at = (i: number): number => (i ^ (i >>> 8) ^ (i >>> 17)) & 255;

/** `total` pattern bytes in pieces of 1 MiB (fresh each: the pump copies them into its frames anyway). */
async function* patternBytes(total: number): AsyncGenerator<Buffer> {
  for (let o = 0; o < total; o += 1 << 20) {
    const b = Buffer.allocUnsafe(Math.min(1 << 20, total - o));
    for (let k = 0; k < b.length; k++) b[k] = at(o + k);
    yield b;
  }
}

describe('the wire, receiving', () => {
  it('reads into reused receive memory and hands every byte on intact to a slow consumer', async () => {
    const total = 40 << 20;
    let serverConn: WireConnection | null = null;
    const checked = new Promise<{ bytes: number; chunks: number; bad: number }>((resolve, reject) => {
      void listen('127.0.0.1', 0, key, async (conn) => {
        serverConn = conn;
        let offset = 0;
        let chunks = 0;
        let bad = 0;
        try {
          for await (const chunk of receiveStreamBytes(conn)) {
            // Held across waits while more arrives (every receive slab fills, and reading stops and starts): the
            // chunk must stay as it was until the next one is asked for.
            if (chunks++ % 4 === 0) await sleep(5);
            for (let k = 0; k < chunk.length; k++) if (chunk[k] !== at(offset + k)) bad++;
            offset += chunk.length;
          }
          await conn.send({ done: offset });
          resolve({ bytes: offset, chunks, bad });
        } catch (e) {
          reject(e as Error);
        }
      }).then((e) => (endpoint = e), reject);
    });
    while (!endpoint) await sleep(10);
    const client = await connectTo('127.0.0.1', endpoint.port, key);
    await pumpStream(client, patternBytes(total), null);
    expect(await client.nextMessage()).toEqual({ done: total });
    const r = await checked;
    expect(r).toMatchObject({ bytes: total, bad: 0 });
    // The server's socket was moved to reads into its own memory (otherwise this test checks the fallback only).
    expect(serverConn!.reusesChunks).toBe(true);
    expect(client.reusesChunks).toBe(true);
    client.destroy();
  });

  it('closing the endpoint ends connections that were moved to their own sockets', async () => {
    const handled = new Promise<WireConnection>((resolve) => {
      void listen('127.0.0.1', 0, key, async (conn) => {
        resolve(conn);
        // Waits on the peer until the connection ends.
        await conn.next().catch(() => undefined);
      }).then((e) => (endpoint = e));
    });
    while (!endpoint) await sleep(10);
    const client = await connectTo('127.0.0.1', endpoint.port, key);
    const server = await handled;
    expect(server.reusesChunks).toBe(true);
    const closing = endpoint.close();
    endpoint = null;
    await closing;
    await expect(client.next()).rejects.toMatchObject({ code: 'NET' });
    expect(server.isClosed).toBe(true);
  });
});
