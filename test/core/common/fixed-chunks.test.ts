import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixedChunks } from '../../../core/common/fixed-chunks.js';

/** A stream of `parts`, pausing `pauseMs` before each part after the first; records when each part was asked for. */
function pausing(parts: Buffer[], pauseMs: number, log: string[]): AsyncIterable<Buffer> & { closed: boolean } {
  const s = {
    closed: false,
    async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < parts.length; i++) {
          if (i > 0) await sleep(pauseMs);
          log.push(`part ${i}`);
          yield parts[i];
        }
      } finally {
        s.closed = true;
      }
    },
  };
  return s;
}

const take = async (): Promise<Buffer> => Buffer.alloc(16);

describe('fixedChunks', () => {
  it('packs bytes into full buffers and a last partial one', async () => {
    const log: string[] = [];
    const out: string[] = [];
    for await (const { buf, fill } of fixedChunks(pausing([Buffer.from('abcdefghij'), Buffer.from('klmnopqrstuvwxyz0123')], 0, log), 16, take)) out.push(buf.subarray(0, fill).toString());
    expect(out).toEqual(['abcdefghijklmnop', 'qrstuvwxyz0123']);
  });

  it('without flushWhenPaused, a part-full buffer waits for the stream through a pause', async () => {
    const log: string[] = [];
    const got: string[] = [];
    for await (const { buf, fill } of fixedChunks(pausing([Buffer.from('head'), Buffer.from('body')], 50, log), 16, take)) {
      got.push(`${buf.subarray(0, fill).toString()} after ${log.join(',')}`);
    }
    expect(got).toEqual(['headbody after part 0,part 1']);
  });

  it('with flushWhenPaused, a part-full buffer goes out when the stream pauses, before the next part exists', async () => {
    const log: string[] = [];
    const got: string[] = [];
    for await (const { buf, fill } of fixedChunks(pausing([Buffer.from('head'), Buffer.from('body')], 50, log), 16, take, true)) {
      got.push(`${buf.subarray(0, fill).toString()} after ${log.join(',')}`);
    }
    expect(got).toEqual(['head after part 0', 'body after part 0,part 1']);
  });

  it('a stream with bytes ready is not cut into small buffers', async () => {
    const parts = Array.from({ length: 8 }, (_, i) => Buffer.from(String.fromCharCode(97 + i).repeat(4)));
    const fills: number[] = [];
    for await (const { fill } of fixedChunks(ready(parts), 16, take, true)) fills.push(fill);
    expect(fills).toEqual([16, 16]);
  });

  it('a consumer that stops early closes the stream, also while a pause is pending', async () => {
    for (const flush of [false, true]) {
      const log: string[] = [];
      const s = pausing([Buffer.from('a'.repeat(20)), Buffer.from('b'), Buffer.from('c')], 20, log);
      for await (const _ of fixedChunks(s, 16, take, flush)) break;
      expect(s.closed).toBe(true);
    }
  });
});

/** A stream whose parts are all ready at once (a plain async generator with no waits). */
async function* ready(parts: Buffer[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield p;
}
