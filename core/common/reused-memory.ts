/**
 * Memory that its owner reuses as soon as its reader asks for more: a connection's receive slabs. A byte stream
 * reader that finds a buffer over such memory copies out what it keeps before asking for the next one; any other
 * buffer it may hand on as a slice, as long as its producer keeps it unchanged. Marking the memory itself (not the
 * stream) keeps the rule whatever wraps the stream on its way to the reader.
 */

const reused = new WeakSet<ArrayBufferLike>();

/** Registers a buffer's memory as reused once its reader moves on; returns the buffer. */
export function markReused<T extends Uint8Array>(b: T): T {
  reused.add(b.buffer);
  return b;
}

/** True when `b` lies in memory that is reused once its reader asks for the next buffer. */
export function isReused(b: Uint8Array): boolean {
  return reused.has(b.buffer);
}
