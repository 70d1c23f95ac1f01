/** Byte streams repacked into fixed-size buffers (tape blocks, wire frames). */

/**
 * Copies the stream's bytes into buffers of `size` bytes taken from `take` (which may wait for one to be free),
 * yielding each when full, and the last one with however many bytes it got (`fill`; none when the stream is
 * empty). A yielded buffer is the consumer's until it gives it back to whatever `take` draws from.
 */
export async function* fixedChunks(stream: AsyncIterable<Buffer>, size: number, take: () => Promise<Buffer>): AsyncGenerator<{ buf: Buffer; fill: number }> {
  let buf: Buffer | null = null;
  let fill = 0;
  for await (const chunk of stream) {
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
  if (buf && fill > 0) yield { buf, fill };
}
