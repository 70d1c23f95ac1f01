/**
 * The replication wire: a mutual HMAC challenge–response over a TCP socket, then frames. A frame is a u32 LE
 * length (of type + payload), a u8 type and the payload: JSON control messages, image-stream bytes, and the end of
 * the stream bytes. Nothing but the fixed-size handshake is read from a peer before it has proved the key.
 * Written down in core/STREAM.md §9.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { SnapplaneError, isSnapplaneError, type ErrorCode } from '../common/errors.js';
import { moveToOwnReads } from './own-reads.js';
import { ReceiveSlabs } from './receive-slabs.js';

export const WIRE_MAGIC = Buffer.from('SNAPNET1', 'ascii');
const NONCE = 32;
const PROOF = 32;
export const FrameType = { json: 1, data: 2, dataEnd: 3 } as const;
/** Control messages are small; a bigger length is a protocol error, not an allocation. */
const MAX_JSON = 1 << 20;
const MAX_DATA = 16 << 20;
/**
 * Waiting this long on a peer that sends nothing means it is gone (a network partition, a stopped or hung peer):
 * the connection fails with NET instead of holding the transfer, and the volume it receives into, for ever. Only
 * time spent waiting counts (a server busy committing is not waiting); a sender's stream bytes flow at least every
 * second, and a receiving server sends `alive` while blocks land and while it commits.
 */
export const IDLE_MS = Number(process.env.SNAPPLANE_NET_IDLE_MS ?? 120_000);
/** How often a server busy with a request tells the client it is still there. */
export const ALIVE_MS = Math.max(100, Math.floor(IDLE_MS / 4));

function proof(key: Buffer, role: 'server' | 'client', first: Buffer, second: Buffer): Buffer {
  return createHmac('sha256', key).update(`snapplane-${role}`).update(first).update(second).digest();
}

/** A JSON control message (requests, replies, progress). */
export type WireMessage = Record<string, unknown>;

export type WireEvent = { type: 'json'; message: WireMessage } | { type: 'data'; data: Buffer } | { type: 'dataEnd' };

/** A queued event and, for data that sits in a receive slab, which one (-1: memory of its own). */
type QueuedEvent = { event: WireEvent; slab: number };

/** Receive slabs per connection (1 MiB each, made as reads first need them): up to ~14 MiB read ahead. */
const RECEIVE_SLABS = 16;

/**
 * A socket after the handshake: parses frames as they arrive (data payloads are handed on as slices of the memory
 * they were read into, no copy) and stops reading while too much is queued.
 *
 * Where the socket can be moved to reads into our own memory (own-reads.ts), reads land in reused receive slabs, and
 * the bytes of a data event stay valid only until `next` is called again (`reusesChunks`): a consumer keeping them
 * longer copies them. Otherwise each read is fresh memory of its own, valid as long as it is referenced.
 */
export class WireConnection {
  private readonly events: QueuedEvent[] = [];
  private queued = 0;
  private readonly slabs = new ReceiveSlabs(RECEIVE_SLABS);
  /** The slab of the data event handed out last: released when the next event is asked for (-1: none). */
  private handedSlab = -1;
  /** Reading stopped for want of a free slab. */
  private stopped = false;
  /** The connection's socket (a new one when moved to own reads: the handshake's socket is then destroyed). */
  readonly socket: Socket;
  /** True when a data event's bytes are valid only until the next call of `next`. */
  readonly reusesChunks: boolean;
  private waiter: (() => void) | null = null;
  private failure: SnapplaneError | null = null;
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current data frame still to come. */
  private dataLeft = 0;
  private closed = false;
  /** Bytes written to the socket (payloads and frame headers). */
  bytesOut = 0;
  /** When the peer last sent anything. */
  private lastHeard = performance.now();
  /** Since when a caller of `next` has been waiting on the peer (null: nobody is). */
  private waitingSince: number | null = null;

  constructor(
    handshaken: Socket,
    readonly peer: string,
    initial: Buffer,
  ) {
    const moved = moveToOwnReads(handshaken, { buffer: () => this.slabs.next(), landed: (n, into) => this.landed(n, into) });
    const socket = (this.socket = moved?.socket ?? handshaken);
    this.reusesChunks = moved !== null;
    socket.setNoDelay(true);
    if (!moved) {
      socket.on('data', (chunk: Buffer) => {
        this.lastHeard = performance.now();
        this.onData(chunk, -1);
      });
    }
    socket.on('error', (e) => this.fail(new SnapplaneError('NET', `connection to ${peer}: ${e.message}`, { cause: e })));
    socket.on('close', () => {
      this.fail(new SnapplaneError('NET', `connection to ${peer} closed`));
      // No read lands any more: slabs nobody holds serve later connections.
      if (moved) this.slabs.giveBack(this.handedSlab);
    });
    const early = moved && moved.buffered.length > 0 ? Buffer.concat([initial, ...moved.buffered]) : initial;
    if (early.length > 0) this.onData(early, -1);
    socket.resume();
    this.watchIdle();
  }

  /** A read landed in the slab being filled: parsed at once; false stops reading until a slab is free again. */
  private landed(bytes: number, into: Uint8Array): boolean {
    this.lastHeard = performance.now();
    const slab = this.slabs.filling;
    this.slabs.landed(bytes);
    this.onData(Buffer.from(into.buffer, into.byteOffset, bytes), slab);
    if (this.slabs.roomAhead) return true;
    this.stopped = true;
    return false;
  }

  private fail(e: SnapplaneError): void {
    this.closed = true;
    if (!this.failure) this.failure = e;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private push(event: WireEvent, bytes: number, slab = -1): void {
    if (slab >= 0) this.slabs.hold(slab);
    this.events.push({ event, slab });
    this.queued += bytes;
    // Reads into slabs stop when the slabs are full instead (landed).
    if (!this.reusesChunks && this.queued > 8 << 20) this.socket.pause();
    this.wake();
  }

  /** Parses what arrived (`slab`: the receive slab it sits in, -1 for memory of its own). */
  private onData(chunk: Buffer, slab: number): void {
    // A frame begun in an earlier read (rare: frames are large) is completed in memory of its own.
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    const bufSlab = this.pending.length > 0 ? -1 : slab;
    this.pending = Buffer.alloc(0);
    while (buf.length > 0) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, buf.length);
        this.push({ type: 'data', data: buf.subarray(0, n) }, n, bufSlab);
        this.dataLeft -= n;
        buf = buf.subarray(n);
        continue;
      }
      if (buf.length < 5) break;
      const length = buf.readUInt32LE(0);
      const type = buf[4];
      if (length < 1 || (type === FrameType.json && length - 1 > MAX_JSON) || (type === FrameType.data && length - 1 > MAX_DATA) || (type === FrameType.dataEnd && length !== 1) || type < 1 || type > 3) {
        this.protocolError(`bad frame (type ${type}, length ${length})`);
        return;
      }
      if (type === FrameType.data) {
        this.dataLeft = length - 1;
        buf = buf.subarray(5);
        continue;
      }
      if (buf.length < 4 + length) break;
      if (type === FrameType.dataEnd) this.push({ type: 'dataEnd' }, 0);
      else {
        let message: WireMessage;
        try {
          const parsed: unknown = JSON.parse(buf.subarray(5, 4 + length).toString('utf8'));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          message = parsed as WireMessage;
        } catch (e) {
          this.protocolError(`bad control message: ${(e as Error).message}`);
          return;
        }
        this.push({ type: 'json', message }, length);
      }
      buf = buf.subarray(4 + length);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
  }

  private protocolError(message: string): void {
    this.fail(new SnapplaneError('NET', `${this.peer}: ${message}`));
    this.socket.destroy();
  }

  /** The next event from the peer; a closed or failed connection throws. */
  async next(): Promise<WireEvent> {
    // The consumer is done with the data it was handed last.
    if (this.handedSlab >= 0) {
      this.slabs.release(this.handedSlab);
      this.handedSlab = -1;
      if (this.stopped && this.slabs.roomAhead) {
        this.stopped = false;
        this.socket.resume();
      }
    }
    for (;;) {
      const q = this.events.shift();
      if (q) {
        const e = q.event;
        this.waitingSince = null;
        this.queued -= e.type === 'data' ? e.data.length : 0;
        if (!this.reusesChunks && this.queued < 2 << 20 && this.socket.isPaused()) this.socket.resume();
        this.handedSlab = q.slab;
        return e;
      }
      if (this.failure) {
        this.waitingSince = null;
        throw this.failure;
      }
      this.waitingSince ??= performance.now();
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Fails the connection when a wait on the peer has heard nothing for the idle time (one timer per connection). */
  private watchIdle(): void {
    const check = setInterval(() => {
      if (this.closed) return clearInterval(check);
      if (this.waitingSince === null || performance.now() - Math.max(this.waitingSince, this.lastHeard) < IDLE_MS) return;
      this.fail(new SnapplaneError('NET', `connection to ${this.peer}: nothing heard for ${IDLE_MS / 1000} s (the peer stopped, or the network between us is down)`));
      this.socket.destroy();
    }, Math.min(1000, ALIVE_MS));
    // The socket keeps the process alive while it is open; this timer must not on its own.
    check.unref();
  }

  /** The next control message; stream bytes here are a protocol error. An `{error}` reply is thrown as that error. */
  async nextMessage(): Promise<WireMessage> {
    const e = await this.next();
    if (e.type !== 'json') throw new SnapplaneError('NET', `${this.peer}: expected a control message, got stream bytes`);
    const err = e.message.error;
    if (err && typeof err === 'object') throw errorFromWire(err as Record<string, unknown>);
    return e.message;
  }

  /** Writes one frame; resolves when the socket has room again. */
  async write(type: number, payload: Buffer): Promise<void> {
    if (this.closed) throw this.failure ?? new SnapplaneError('NET', `connection to ${this.peer} closed`);
    const head = Buffer.alloc(5);
    head.writeUInt32LE(payload.length + 1, 0);
    head[4] = type;
    this.bytesOut += 5 + payload.length;
    this.socket.write(head);
    const room = payload.length === 0 ? true : this.socket.write(payload);
    if (!room) await this.drained();
  }

  /** Writes a frame whose payload buffer the caller wants back: `done` runs once the socket no longer needs it. */
  writeOwned(type: number, payload: Buffer, done: () => void): boolean {
    if (this.closed) {
      done();
      throw this.failure ?? new SnapplaneError('NET', `connection to ${this.peer} closed`);
    }
    const head = Buffer.alloc(5);
    head.writeUInt32LE(payload.length + 1, 0);
    head[4] = type;
    this.bytesOut += 5 + payload.length;
    this.socket.write(head);
    return this.socket.write(payload, () => done());
  }

  /** Resolves when the socket's write buffer has drained (or the connection failed). */
  drained(): Promise<void> {
    if (this.socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        this.socket.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        this.socket.off('drain', onDrain);
        reject(this.failure ?? new SnapplaneError('NET', `connection to ${this.peer} closed`));
      };
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  /** Sends a control message. */
  send(message: WireMessage): Promise<void> {
    return this.write(FrameType.json, Buffer.from(JSON.stringify(message)));
  }

  /** Sends an error reply built from any thrown value. */
  sendError(e: unknown): Promise<void> {
    return this.send({ error: errorToWire(e) }).catch(() => undefined);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Ends the connection after what was written has gone out. */
  async end(): Promise<void> {
    if (this.socket.destroyed) return;
    await new Promise<void>((r) => {
      this.socket.once('close', () => r());
      this.socket.end();
      setTimeout(() => {
        this.socket.destroy();
        r();
      }, 2000).unref();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A thrown value as a wire error (typed errors keep their code). */
export function errorToWire(e: unknown): Record<string, unknown> {
  if (isSnapplaneError(e)) return e.toJSON();
  return { code: 'IO', message: e instanceof Error ? e.message : String(e) };
}

const CODES = new Set<ErrorCode>(['ENOSPC', 'CHECKSUM', 'BAD_STREAM', 'LOCKED', 'NOT_FOUND', 'EXISTS', 'NOT_DIR', 'IS_DIR', 'NOT_EMPTY', 'INVALID', 'READ_ONLY', 'BAD_FORMAT', 'IO', 'HELD', 'LIMIT', 'OUTSIDE', 'CANCELLED', 'CLOSED', 'AUTH', 'NET', 'BUSY', 'DIVERGED']);

/** A wire error back as a SnapplaneError with its code. */
export function errorFromWire(w: Record<string, unknown>): SnapplaneError {
  const code = typeof w.code === 'string' && CODES.has(w.code as ErrorCode) ? (w.code as ErrorCode) : 'IO';
  const str = (k: string): string | undefined => (typeof w[k] === 'string' ? (w[k] as string) : undefined);
  return new SnapplaneError(code, str('message') ?? 'remote error', { volume: str('volume'), path: str('path'), snapshot: str('snapshot'), vbn: typeof w.vbn === 'number' ? w.vbn : undefined });
}

/** Reads exactly `n` bytes during the handshake (before frames exist); returns them and whatever came after. */
function readExactly(socket: Socket, n: number, have: Buffer, timeoutMs: number, peer: string): Promise<[Buffer, Buffer]> {
  return new Promise((resolve, reject) => {
    let buf = have;
    const done = (err: SnapplaneError | null): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      socket.pause();
      if (err) reject(err);
      else resolve([buf.subarray(0, n), buf.subarray(n)]);
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= n) done(null);
    };
    // Never a wrong key: both ends say so before closing. The peer stopped, or does not speak this protocol (a
    // reset is the same hang-up, seen while our bytes were still in flight).
    const hungUp = (cause?: Error): SnapplaneError => new SnapplaneError('NET', `${peer} closed the connection during the handshake (it stopped, or is not a Snapplane endpoint)`, { cause });
    const onClose = (): void => done(hungUp());
    const onError = (e: NodeJS.ErrnoException): void => done(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? hungUp(e) : new SnapplaneError('NET', `${peer}: ${e.message}`, { cause: e }));
    const timer = setTimeout(() => done(new SnapplaneError('AUTH', `${peer}: handshake timed out`)), timeoutMs);
    if (buf.length >= n) {
      clearTimeout(timer);
      resolve([buf.subarray(0, n), buf.subarray(n)]);
      return;
    }
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
    socket.resume();
  });
}

/** The connecting side of the handshake: proves the key and checks that the server has it too. */
export async function clientHandshake(socket: Socket, key: Buffer, peer: string, timeoutMs = 10_000): Promise<WireConnection> {
  const clientNonce = randomBytes(NONCE);
  socket.write(Buffer.concat([WIRE_MAGIC, clientNonce]));
  const [hello, rest] = await readExactly(socket, WIRE_MAGIC.length + NONCE + PROOF, Buffer.alloc(0), timeoutMs, peer);
  if (!hello.subarray(0, WIRE_MAGIC.length).equals(WIRE_MAGIC)) throw new SnapplaneError('AUTH', `${peer} is not a Snapplane replication endpoint`);
  const serverNonce = hello.subarray(WIRE_MAGIC.length, WIRE_MAGIC.length + NONCE);
  const serverProof = hello.subarray(WIRE_MAGIC.length + NONCE);
  if (!timingSafeEqual(serverProof, proof(key, 'server', clientNonce, serverNonce))) {
    // Zeros in place of our proof: the server can tell its admin the keys differ (STREAM.md §5.1).
    socket.end(Buffer.alloc(PROOF));
    throw new SnapplaneError('AUTH', `${peer} does not know our key: authentication failed (check the key file, --key-file, on both sides)`);
  }
  socket.write(proof(key, 'client', serverNonce, clientNonce));
  const [verdict, after] = await readExactly(socket, 1, rest, timeoutMs, peer);
  if (verdict[0] !== 1) throw new SnapplaneError('AUTH', `${peer} refused our key: authentication failed (check the key file, --key-file, on both sides)`);
  return new WireConnection(socket, peer, after);
}

/** The accepting side: sends its proof, then reads nothing beyond the client's proof until it verifies. */
export async function serverHandshake(socket: Socket, key: Buffer, peer: string, timeoutMs = 10_000): Promise<WireConnection> {
  const [hello, rest] = await readExactly(socket, WIRE_MAGIC.length + NONCE, Buffer.alloc(0), timeoutMs, peer);
  if (!hello.subarray(0, WIRE_MAGIC.length).equals(WIRE_MAGIC)) throw new SnapplaneError('AUTH', `${peer} did not speak the replication protocol`);
  const clientNonce = hello.subarray(WIRE_MAGIC.length);
  const serverNonce = randomBytes(NONCE);
  socket.write(Buffer.concat([WIRE_MAGIC, serverNonce, proof(key, 'server', clientNonce, serverNonce)]));
  const [clientProof, after] = await readExactly(socket, PROOF, rest, timeoutMs, peer);
  if (!timingSafeEqual(clientProof, proof(key, 'client', serverNonce, clientNonce))) {
    socket.end(Buffer.from([0]));
    throw new SnapplaneError('AUTH', `${peer}: authentication failed (wrong key)`);
  }
  socket.write(Buffer.from([1]));
  return new WireConnection(socket, peer, after);
}

/** Reads a pre-shared key file: at least 16 bytes after trimming whitespace. */
export function parseKey(text: Buffer, path: string): Buffer {
  const key = Buffer.from(text.toString('utf8').trim(), 'utf8');
  if (key.length < 16) throw new SnapplaneError('INVALID', `key file '${path}' holds ${key.length} bytes; a pre-shared key needs at least 16 (e.g. \`(umask 077; head -c 32 /dev/urandom | base64 > ${path})\`)`, { path });
  return key;
}
