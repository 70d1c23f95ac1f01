/** The web host (`snapplane console`) as a child process, started the way a user starts it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface HostProcess {
  url: string;
  port: number;
  token: string;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/** Starts `snapplane console` and reads the URL from the first line of its stdout. */
export async function startConsole(args: string[], env: Record<string, string>): Promise<HostProcess> {
  const child = spawn(process.execPath, [join(process.cwd(), 'bin', 'snapplane.js'), 'console', '--port', '0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => resolve(l));
    child.once('exit', (code) => reject(new Error(`snapplane console exited (${code}): ${err}`)));
  });
  const m = /^http:\/\/127\.0\.0\.1:(\d+)\/#token=([A-Za-z0-9_-]+)$/.exec(first);
  if (!m) throw new Error(`the first line of stdout is not the URL: ${first}`);
  return {
    url: first,
    port: Number(m[1]),
    token: m[2],
    child,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

