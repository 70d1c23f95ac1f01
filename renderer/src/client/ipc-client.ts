/** The Electron transport: the typed bridge the preload exposes as `window.snapplane` (one function per method). */
import type { ConsoleEvent, MethodArgs, MethodName, MethodResult, Reply, SnapplaneBridge } from '../../../core/api/index.js';
import { Listeners, parseEvent, unwrap, type Client, type ConnectionState } from './client.js';

export class IpcClient implements Client {
  readonly transport = 'ipc' as const;
  private readonly events = new Listeners<ConsoleEvent>();

  constructor(private readonly bridge: SnapplaneBridge) {
    bridge.onEvent((raw) => {
      const e = parseEvent(raw);
      if (e) this.events.emit(e);
    });
  }

  async call<M extends MethodName>(method: M, args: MethodArgs<M>): Promise<MethodResult<M>> {
    const fn = this.bridge[method] as (a: MethodArgs<M>) => Promise<Reply<M>>;
    return unwrap(await fn(args));
  }

  onEvent(listener: (event: ConsoleEvent) => void): () => void {
    return this.events.add(listener);
  }

  onConnection(listener: (state: ConnectionState) => void): () => void {
    listener('open');
    return () => undefined;
  }

  pickFolder(): Promise<string | null> {
    return this.bridge.pickFolder();
  }
}
