/**
 * Socket reads into memory the caller owns (Node's `onread`). By default every read of a socket allocates a fresh
 * 64 KiB buffer: a 4 GiB receive makes 65,536 of them, and the external memory they add set off ~130 full garbage
 * collections in the receiving `serve`, about a quarter of its CPU, with ~40,000 page faults (bench/RESULTS.md,
 * 2026-12-03 16:13).
 */
import { Socket } from 'node:net';

/** Where the next read lands (asked for before each read) and what is done with what landed (false: stop reading). */
export interface OwnReads {
  buffer: () => Uint8Array;
  landed: (bytes: number, into: Uint8Array) => boolean;
}

/** The parts of a TCP socket's handle this module relies on (Node's stream handle). */
interface StreamHandle {
  reading: boolean;
  readStop(): number;
  useUserBuffer(b: Uint8Array): void;
}

/**
 * The same connection as a new socket whose reads land where `reads` says, and the bytes the old socket had already
 * read; null where the socket cannot be moved (then it is left as it was).
 *
 * Node gives `onread` only to sockets it is asked to make (`new Socket`, `net.connect`); a server's socket arrives
 * made. Its handle is moved into a new socket the way `net.Server` makes every socket (the `handle` option, which
 * Node does not document: hence the checks, and the fallback). The old socket is destroyed without its handle, so
 * its server stops counting it; whoever tracks connections must track the new socket.
 */
export function moveToOwnReads(socket: Socket, reads: OwnReads): { socket: Socket; buffered: Buffer[] } | null {
  const inside = socket as unknown as { _handle?: Partial<StreamHandle> | null; _readableState?: { ended?: boolean } };
  const handle = inside._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || typeof handle.readStop !== 'function') return null;
  // Writes still queued in the old socket would be lost with it (the handshake's are written at once, as a rule),
  // and an end of input it has seen would never reach the new one.
  if (socket.writableLength > 0 || socket.destroyed || socket.connecting || !socket.readable || inside._readableState?.ended !== false) return null;
  socket.pause();
  // What the old socket read ahead is taken first (read() may start the handle reading again: stopped after).
  const buffered: Buffer[] = [];
  for (let c: unknown = socket.read(); c !== null; c = socket.read()) buffered.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  handle.reading = false;
  handle.readStop();
  inside._handle = null;
  const options = { handle, readable: true, writable: true, allowHalfOpen: socket.allowHalfOpen, onread: { buffer: reads.buffer, callback: reads.landed } };
  const moved = new Socket(options as ConstructorParameters<typeof Socket>[0]);
  socket.destroy();
  return { socket: moved, buffered };
}
