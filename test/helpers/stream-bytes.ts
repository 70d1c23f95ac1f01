/** A stream held whole in memory: collected from a sender, and given back to a receiver. */

/** All the bytes `gen` yields, copied (senders reuse their buffers). */
export async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of gen) parts.push(Buffer.from(b));
  return Buffer.concat(parts);
}

/** `b` as a stream source of one chunk. */
export async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}
