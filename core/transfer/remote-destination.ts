/** A destination volume under a remote `snapplane serve`, reached over an authenticated connection. */
import { SnapplaneError, isSnapplaneError } from '../common/errors.js';
import type { DestinationStatus, MirrorMarker, ProgressEvent, ReceiveReport } from '../api/types.js';
import { connectTo } from '../net/endpoint.js';
import { pumpStream, type RateLimit } from '../net/pump.js';
import type { WireConnection, WireMessage } from '../net/wire.js';
import type { Destination, ReceiveRequest, RolledBack } from './destination.js';

export class RemoteDestination implements Destination {
  readonly remote = true;
  private constructor(
    readonly label: string,
    private readonly conn: WireConnection,
    private readonly name: string,
    private readonly limit: RateLimit | null,
  ) {}

  /** Connects and authenticates; `name` is the volume's name under the server's root. */
  static async connect(host: string, port: number, name: string, key: Buffer, limit: RateLimit | null): Promise<RemoteDestination> {
    const conn = await connectTo(host, port, key);
    // An IPv6 address keeps its brackets: the label is how the user wrote the destination, and how holds name it.
    return new RemoteDestination(`${host.includes(':') ? `[${host}]` : host}:${port}/${name}`, conn, name, limit);
  }

  private async call(op: string, args: WireMessage = {}): Promise<WireMessage> {
    await this.conn.send({ op, volume: this.name, ...args });
    // `alive` says a busy server is still there (STREAM.md §5.2); it is never the reply.
    for (;;) {
      const m = await this.conn.nextMessage();
      if (m.alive !== true) return m;
    }
  }

  async status(): Promise<DestinationStatus> {
    return (await this.call('status')).status as DestinationStatus;
  }

  async receive(stream: AsyncIterable<Buffer>, request: ReceiveRequest, onProgress?: (p: ProgressEvent) => void): Promise<ReceiveReport> {
    await this.call('receive', { ...request });
    // The server's replies (progress, then the result or an error) are read while the stream goes out.
    const replies = (async (): Promise<ReceiveReport> => {
      for (;;) {
        const m = await this.conn.nextMessage();
        if (m.progress) onProgress?.(m.progress as ProgressEvent);
        else if (m.result) return m.result as ReceiveReport;
      }
    })();
    let pumpError: unknown = null;
    const pumping = pumpStream(this.conn, stream, this.limit).catch((e: unknown) => {
      pumpError = e;
      // Without the end of the stream the server would wait forever: drop the connection (it keeps a token).
      this.conn.destroy();
    });
    try {
      const report = await replies;
      await pumping;
      return report;
    } catch (e) {
      await pumping;
      // A local failure (the source) explains a dropped connection better than the drop itself.
      if (pumpError && !isSnapplaneError(pumpError, 'NET') && isSnapplaneError(e, 'NET')) throw pumpError;
      // The endpoint keeps what landed up to its last resume point (STREAM.md §3.3); say so, as a failed local receive does.
      if (e instanceof SnapplaneError && e.code === 'NET') throw new SnapplaneError('NET', `${e.message} during the transfer; what landed on ${this.label} is kept: the next replication or mirror update of it resumes from there`, { volume: this.label, cause: e });
      throw e;
    }
  }

  async rollBack(common: string, guard?: { relationship: string }): Promise<RolledBack> {
    const r = (await this.call('rollBack', { common, ...(guard ? { guard } : {}) })).rolledBack as Partial<RolledBack>;
    // A `serve` from before the guard answers without discardedBlocks (and rolled back unguarded).
    return { discarded: r.discarded ?? [], discardedBlocks: r.discardedBlocks ?? 0 };
  }

  async setMarker(marker: MirrorMarker | null): Promise<void> {
    await this.call('setMarker', { marker });
  }

  wireBytes(): number {
    return this.conn.bytesOut;
  }

  async close(): Promise<void> {
    await this.conn.end();
  }
}
