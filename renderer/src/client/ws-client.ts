/** The WebSocket transport: the web host's /api socket, authenticated by the launch token. */
import type { ConsoleEvent, MethodArgs, MethodName, MethodResult, Reply } from '../../../core/api/index.js';
import { Listeners, parseEvent, unwrap, ClientError, type Client, type ConnectionState } from './client.js';

interface Pending {
  resolve: (r: Reply) => void;
}

export class WsClient implements Client {
  readonly transport = 'websocket' as const;
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly queue: string[] = [];
  private readonly events = new Listeners<ConsoleEvent>();
  private readonly connection = new Listeners<ConnectionState>();
  private closed = false;

  constructor(private readonly url: string) {
    this.connect();
  }

  private connect(): void {
    this.connection.emit('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.connection.emit('open');
      for (const m of this.queue.splice(0)) ws.send(m);
    };
    ws.onmessage = (m: MessageEvent) => {
      let msg: { type?: string; id?: number; event?: unknown } & Partial<Reply>;
      try {
        msg = JSON.parse(String(m.data)) as typeof msg;
      } catch {
        return;
      }
      if (msg.type === 'event') {
        const e = parseEvent(msg.event);
        if (e) this.events.emit(e);
      } else if (msg.type === 'reply' && typeof msg.id === 'number') {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.resolve(msg as Reply);
      }
    };
    ws.onclose = () => {
      this.ws = null;
      this.connection.emit('closed');
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.resolve({ ok: false, error: { code: 'CLOSED', message: 'the connection to the console host closed' } });
      }
      if (!this.closed) setTimeout(() => this.connect(), 1000);
    };
  }

  call<M extends MethodName>(method: M, args: MethodArgs<M>): Promise<MethodResult<M>> {
    const id = this.nextId++;
    const text = JSON.stringify({ id, method, args });
    return new Promise<Reply>((resolve) => {
      this.pending.set(id, { resolve });
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
      else this.queue.push(text);
    }).then((r) => unwrap(r as Reply<M>));
  }

  onEvent(listener: (event: ConsoleEvent) => void): () => void {
    return this.events.add(listener);
  }

  onConnection(listener: (state: ConnectionState) => void): () => void {
    return this.connection.add(listener);
  }

  async pickFolder(): Promise<string | null> {
    return null;
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}

/** The WebSocket URL for the page the web host served, with the token from the URL fragment (or the session). */
export function webSocketUrl(location: Location, storage: Storage): string {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = hash.get('token') ?? storage.getItem('snapplane-token');
  if (!token) throw new ClientError({ code: 'AUTH', message: 'no console token: open the URL that `snapplane console` printed' });
  storage.setItem('snapplane-token', token);
  return `ws://${location.host}/api?token=${encodeURIComponent(token)}`;
}
