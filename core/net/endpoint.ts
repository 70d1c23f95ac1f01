/**
 * Both ends of a replication connection: a listening endpoint that authenticates every connection before handing
 * it to a request handler, and a client connect that authenticates the server.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { SnapplaneError } from '../common/errors.js';
import { clientHandshake, serverHandshake, type WireConnection } from './wire.js';

export interface Endpoint {
  readonly port: number;
  readonly host: string;
  /** Stops accepting, ends open connections, resolves when closed. */
  close(): Promise<void>;
}

/** Listens on `host:port` (port 0 picks one); each authenticated connection goes to `handle`. */
export function listen(host: string, port: number, key: Buffer, handle: (conn: WireConnection) => Promise<void>, onRefused?: (peer: string, e: SnapplaneError) => void): Promise<Endpoint> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    void serverHandshake(socket, key, peer).then(
      (conn) => {
        // The connection may go on in a socket of its own (wire.ts): that is the one to end on close.
        if (conn.socket !== socket) {
          sockets.add(conn.socket);
          conn.socket.on('close', () => sockets.delete(conn.socket));
        }
        return handle(conn).catch(() => conn.destroy());
      },
      (e: unknown) => {
        onRefused?.(peer, e instanceof SnapplaneError ? e : new SnapplaneError('AUTH', String(e)));
        socket.destroy();
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new SnapplaneError('NET', `cannot listen on ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`, { cause: e })));
    server.listen(port, host, () => {
      const addr = server.address();
      const bound = typeof addr === 'object' && addr ? addr.port : port;
      resolve({
        port: bound,
        host,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Connects to a replication endpoint and authenticates both ways. */
export function connectTo(host: string, port: number, key: Buffer, timeoutMs = 10_000): Promise<WireConnection> {
  // An IPv6 address keeps its brackets, as it is typed in a destination ([::1]:7400/name).
  const peer = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SnapplaneError('NET', `cannot reach ${peer}: timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new SnapplaneError('NET', `cannot reach ${peer}: ${e.code === 'ECONNREFUSED' ? 'connection refused (is `snapplane serve` running there?)' : e.message}`, { cause: e }));
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      clientHandshake(socket, key, peer, timeoutMs).then(resolve, (e: unknown) => {
        socket.destroy();
        reject(e);
      });
    });
  });
}
