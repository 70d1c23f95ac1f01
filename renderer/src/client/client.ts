/**
 * The renderer's one way to the engine: a `Client` with two transports, Electron IPC (`window.snapplane`, see
 * ipc-client.ts) and a WebSocket to the web host (ws-client.ts). Views and stores never know which one they use.
 */
import { consoleEventSchema, type ConsoleEvent, type MethodArgs, type MethodName, type MethodResult, type Reply, type WireError } from '../../../core/api/index.js';

/** An engine error as the renderer sees it: the typed error's code and message, and the rest of it. */
export class ClientError extends Error {
  readonly code: string;
  constructor(readonly detail: WireError) {
    super(detail.message);
    this.name = 'ClientError';
    this.code = detail.code;
  }
}

export type ConnectionState = 'connecting' | 'open' | 'closed';

export interface Client {
  readonly transport: 'ipc' | 'websocket' | 'direct';
  /** Calls one method of the contract; rejects with a ClientError. */
  call<M extends MethodName>(method: M, args: MethodArgs<M>): Promise<MethodResult<M>>;
  /** Subscribes to pushed events (job progress, volume changes); returns the unsubscribe function. */
  onEvent(listener: (event: ConsoleEvent) => void): () => void;
  /** A native folder dialog (Electron); null where there is none (the view then asks for a path). */
  pickFolder(): Promise<string | null>;
  onConnection(listener: (state: ConnectionState) => void): () => void;
}

/** Unwraps a transport's reply. */
export function unwrap<M extends MethodName>(reply: Reply<M>): MethodResult<M> {
  if (reply.ok) return reply.result;
  throw new ClientError(reply.error);
}

/** Validates an event pushed by a host; malformed ones are dropped. */
export function parseEvent(raw: unknown): ConsoleEvent | null {
  const r = consoleEventSchema.safeParse(raw);
  return r.success ? (r.data as ConsoleEvent) : null;
}

/** A set of listeners. */
export class Listeners<T> {
  private readonly set = new Set<(v: T) => void>();
  add(l: (v: T) => void): () => void {
    this.set.add(l);
    return () => this.set.delete(l);
  }
  emit(v: T): void {
    for (const l of this.set) l(v);
  }
}

/** The error's message, for the screen. */
export function errorText(e: unknown): string {
  if (e instanceof ClientError) return `${e.message} (${e.code})`;
  return e instanceof Error ? e.message : String(e);
}
