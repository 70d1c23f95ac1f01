/**
 * A renderer Client wired straight to a real engine host's router (no socket): what the renderer's store and
 * component tests use. Arguments and replies go through JSON as they would over a transport.
 */
import type { ConsoleEvent, MethodArgs, MethodName, MethodResult, Reply } from '../../core/api/index.js';
import type { ConsoleHost } from '../../core/service/index.js';
import { Listeners, parseEvent, unwrap, type Client, type ConnectionState } from '../../renderer/src/client/client.js';

export class DirectClient implements Client {
  readonly transport = 'direct' as const;
  private readonly events = new Listeners<ConsoleEvent>();
  readonly calls: { method: string; args: unknown }[] = [];

  constructor(private readonly host: ConsoleHost) {
    host.onEvent((e) => {
      const parsed = parseEvent(JSON.parse(JSON.stringify(e)));
      if (parsed) this.events.emit(parsed);
    });
  }

  async call<M extends MethodName>(method: M, args: MethodArgs<M>): Promise<MethodResult<M>> {
    this.calls.push({ method, args });
    const reply = JSON.parse(JSON.stringify(await this.host.router.call(method, JSON.parse(JSON.stringify(args))))) as Reply<M>;
    return unwrap(reply);
  }

  onEvent(listener: (event: ConsoleEvent) => void): () => void {
    return this.events.add(listener);
  }

  onConnection(listener: (state: ConnectionState) => void): () => void {
    listener('open');
    return () => undefined;
  }

  async pickFolder(): Promise<string | null> {
    return null;
  }
}
