/** Helpers for replication tests: a `snapplane serve` child process, a fault-injecting TCP proxy, workloads, tree digests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../core/fs/volume.js';
import type { SnapshotInfo } from '../../core/api/index.js';
import { readTree, pattern, type Tree } from './model.js';

const BIN = join(process.cwd(), 'bin', 'snapplane.js');

export interface ServerProcess {
  port: number;
  proc: ChildProcess;
  log: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `snapplane serve` over `root` and waits until it listens. */
export function startServer(root: string, keyFile: string, port = 0, env: NodeJS.ProcessEnv = process.env, extra: string[] = []): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'serve', '--port', String(port), '--key-file', keyFile, '--root', root, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (?:127\.0\.0\.1|\[[0-9a-f:]+\]):(\d+)/.exec(out);
      if (m) {
        resolve({
          port: Number(m[1]),
          proc,
          log: () => err,
          kill: async (signal = 'SIGKILL') => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
            await exited;
          },
        });
      }
    });
    proc.once('exit', (code) => reject(new Error(`serve exited (${code}) before listening: ${err}`)));
  });
}

/** A key file with a fresh random key. */
export async function makeKey(dir: string, name = 'key'): Promise<string> {
  const path = join(dir, name);
  // Readable by its owner only, as a key file should be (serve and the CLI warn otherwise).
  await writeFile(path, randomBytes(32).toString('base64'), { mode: 0o600 });
  return path;
}

/**
 * A TCP proxy in front of a server. `cutAt` (bytes from the client) drops both sides once that many have passed;
 * `onBytes` sees the running count (to kill a process at that point); `dropReply` drops on a chosen answer.
 */
export class FaultProxy {
  private server!: Server;
  port = 0;
  passed = 0;
  cutAt: number | null = null;
  onBytes: ((n: number) => void) | null = null;
  /** Drops both sides instead of passing a reply from the server for which this returns true. */
  dropReply: ((d: Buffer) => boolean) | null = null;
  /** Holds a reply from the server until what this returns settles: something happens between two requests. */
  beforeReply: ((d: Buffer) => Promise<void> | undefined) | null = null;
  /**
   * A network partition once this many bytes from the client have passed: nothing more goes either way and
   * nothing is closed (both sockets stop being read, so the senders' buffers fill as with a dead link).
   */
  stallAt: number | null = null;
  stalled = false;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly target: number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.target, '127.0.0.1');
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop);
      upstream.on('error', drop);
      client.on('close', drop);
      upstream.on('close', drop);
      upstream.on('data', (d: Buffer) => {
        if (this.stalled) return void upstream.pause();
        if (this.dropReply?.(d)) return drop();
        const held = this.beforeReply?.(d);
        if (!held) return void client.write(d);
        upstream.pause();
        void held.finally(() => {
          client.write(d);
          upstream.resume();
        });
      });
      client.on('data', (d: Buffer) => {
        if (this.stalled) return;
        if (this.stallAt !== null && this.passed + d.length >= this.stallAt) {
          upstream.write(d.subarray(0, Math.max(0, this.stallAt - this.passed)));
          this.passed = this.stallAt;
          this.stalled = true;
          client.pause();
          upstream.pause();
          return;
        }
        if (this.cutAt !== null && this.passed + d.length >= this.cutAt) {
          upstream.write(d.subarray(0, Math.max(0, this.cutAt - this.passed)));
          this.passed = this.cutAt;
          drop();
          return;
        }
        this.passed += d.length;
        upstream.write(d);
        this.onBytes?.(this.passed);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A deterministic random number source. */
export function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** Random changes: new files, rewrites in place, deletions, renames, a folder now and then. */
export async function randomWork(v: Volume, rnd: () => number, ops: number, tag: string): Promise<void> {
  for (let i = 0; i < ops; i++) {
    const files = (await v.readdir('/')).filter((e) => e.type === 'file');
    const r = rnd();
    if (r < 0.45 || files.length < 3) {
      await v.writeFile(`/${tag}-${i}.bin`, pattern(Math.floor(rnd() * 300_000) + 1, Math.floor(rnd() * 1e9)));
    } else if (r < 0.7) {
      const f = files[Math.floor(rnd() * files.length)];
      await v.writeAt(f.path, Math.floor(rnd() * Math.max(1, f.size)), pattern(Math.floor(rnd() * 20_000) + 1, Math.floor(rnd() * 1e9)));
    } else if (r < 0.88) {
      await v.remove(files[Math.floor(rnd() * files.length)].path);
    } else if (r < 0.95) {
      const f = files[Math.floor(rnd() * files.length)];
      await v.rename(f.path, `/${tag}-moved-${i}.bin`);
    } else {
      await v.mkdir(`/${tag}-dir-${i}`);
      await v.writeFile(`/${tag}-dir-${i}/inner.txt`, Buffer.from(`round ${tag} op ${i}\n`));
    }
  }
}

/** A digest of a tree: paths and contents. */
export function treeDigest(t: Tree): string {
  const h = createHash('sha256');
  for (const p of [...t.keys()].sort()) {
    const x = t.get(p)!;
    h.update(p).update('\0');
    h.update(x === 'dir' ? 'dir' : x).update('\0');
  }
  return h.digest('hex');
}

/**
 * Reads a volume read-only with `read`, again on a fresh view when a writer in another process (an endpoint still
 * finishing a request whose client was killed) moved past the view meanwhile (BUSY "changed while it was being read").
 */
async function readFresh<T>(path: string, snapshot: string | undefined, read: (v: Volume) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const v = await Volume.open(path, { readOnly: true, snapshot, cpIntervalMs: 0 });
    try {
      return await read(v);
    } catch (e) {
      const moved = (e as { code?: string }).code === 'BUSY' && /changed while it was being read/.test((e as Error).message);
      if (!moved || attempt >= 20) throw e;
    } finally {
      await v.close();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The tree of a volume (or one of its snapshots), opened read-only. */
export function treeOf(path: string, snapshot?: string): Promise<Tree> {
  return readFresh(path, snapshot, (v) => readTree(v));
}

/** Changes the source (thinning its files now and then), takes snapshot `name`, marks it master; returns its tree digest. */
export async function newMaster(src: string, name: string, rnd: () => number, ops: number): Promise<string> {
  const v = await Volume.open(src, { cpIntervalMs: 0 });
  try {
    // Long runs would fill the volume: thin the files out now and then.
    const files = (await v.readdir('/')).filter((e) => e.type === 'file');
    if (files.length > 40) for (const f of files.slice(0, 20)) await v.remove(f.path);
    await randomWork(v, rnd, ops, name);
    await v.createSnapshot(name);
    await v.setSnapshotFlags(name, { master: true });
  } finally {
    await v.close();
  }
  return treeDigest(await treeOf(src, name));
}

/** Writes `bytes` of pattern `seed` to `file` of the volume at `path`, then takes snapshot `snapshot`. */
export async function writeAndSnapshot(path: string, file: string, bytes: number, seed: number, snapshot: string): Promise<void> {
  const v = await Volume.open(path, { cpIntervalMs: 0 });
  try {
    await v.writeFile(file, pattern(bytes, seed));
    await v.createSnapshot(snapshot);
  } finally {
    await v.close();
  }
}

/** A volume's snapshots, opened read-only. */
export function snapshots(path: string): Promise<SnapshotInfo[]> {
  return readFresh(path, undefined, (v) => v.listSnapshots());
}

/** One fault of a drill: none, the connection dropped, or the server or the client killed, once `at` bytes from the client passed. */
export type ByteFault = 'none' | 'drop' | 'server' | 'client';

/**
 * Arms `fault` on `proxy` for the transfer `child` runs, and waits for the child to exit. A killed server is
 * started again on its port (`restart`). Returns the child's exit code and which kill happened.
 */
export async function runWithFault(proxy: FaultProxy, fault: ByteFault, at: number, child: ChildProcess, server: ServerProcess, restart: () => Promise<void>): Promise<{ code: number | null; serverKilled: boolean; clientKilled: boolean }> {
  proxy.passed = 0;
  proxy.cutAt = fault === 'drop' ? at : null;
  proxy.onBytes = null;
  let serverKilled = false;
  let clientKilled = false;
  if (fault === 'server') {
    proxy.onBytes = (n) => {
      if (n >= at && !serverKilled) {
        serverKilled = true;
        void server.kill();
      }
    };
  } else if (fault === 'client') {
    proxy.onBytes = (n) => {
      if (n >= at && child.exitCode === null && !clientKilled) {
        clientKilled = true;
        child.kill('SIGKILL');
      }
    };
  }
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  proxy.onBytes = null;
  if (serverKilled) {
    await server.kill();
    await restart();
  }
  return { code, serverKilled, clientKilled };
}
