/** Byte streams repacked into fixed-size buffers (tape blocks, wire frames). */

/**
 * Copies the stream's bytes into buffers of `size` bytes taken from `take` (which may wait for one to be free),
 * yielding each when full, and the last one with however many bytes it got (`fill`; none when the stream is
 * empty). A yielded buffer is the consumer's until it gives it back to whatever `take` draws from.
 *
 * With `flushWhenPaused`, a part-full buffer is yielded as soon as the stream pauses (has no bytes ready within the
 * current turn of the event loop): on a wire, the header and metadata records of an image stream reach the
 * receiver, which opens its volume and checks the base on them, while the sender walks its checksums, instead of
 * waiting in a frame until a megabyte of blocks follows.
 */
export async function* fixedChunks(stream: AsyncIterable<Buffer>, size: number, take: () => Promise<Buffer>, flushWhenPaused = false): AsyncGenerator<{ buf: Buffer; fill: number }> {
  const it = stream[Symbol.asyncIterator]();
  let buf: Buffer | null = null;
  let fill = 0;
  let done = false;
  try {
    for (;;) {
      // Asked for only once the previous chunk is copied: a producer may reuse a buffer once the next one is asked for.
      const next = it.next();
      if (flushWhenPaused && buf && fill > 0) {
        // A producer with bytes ready answers within the microtasks that run before this macrotask.
        const paused = await Promise.race([next.then(() => false, () => false), new Promise<boolean>((r) => setImmediate(() => r(true)))]);
        if (paused) {
          yield { buf, fill };
          buf = null;
          fill = 0;
        }
      }
      const r = await next;
      if (r.done) {
        done = true;
        break;
      }
      const chunk = r.value;
      let at = 0;
      while (at < chunk.length) {
        buf ??= await take();
        const n = Math.min(chunk.length - at, size - fill);
        chunk.copy(buf, fill, at, at + n);
        fill += n;
        at += n;
        if (fill === size) {
          yield { buf, fill };
          buf = null;
          fill = 0;
        }
      }
    }
  } finally {
    // A consumer that stops early closes the stream too (a sender's pinned planes and reads in flight), as for-await would.
    if (!done) await it.return?.();
  }
  if (buf && fill > 0) yield { buf, fill };
}
