/**
 * The engine worker: Electron main starts it as a worker thread so a long consistency point, a plane evaluation or
 * a transfer never blocks the UI. It runs the console's engine host (the same router the web host uses, and the
 * scheduler) and answers main's calls; events go back to main, which pushes them to the window.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { ConsoleHost, ensureDemoVolume, snapplaneHome } from '../core/service/index.js';
import type { FromWorker, ToWorker, WorkerConfig } from './channels.js';

const port = parentPort;
if (!port) throw new Error('engine-worker must run as a worker thread');
const config = workerData as WorkerConfig;
const post = (m: FromWorker): void => port.postMessage(m);

async function main(): Promise<void> {
  const volumes = [...config.volumes];
  if (config.demo) {
    const demo = join(snapplaneHome(), 'demo', 'demo.img');
    await ensureDemoVolume(demo);
    volumes.push(demo);
  }
  const host = await ConsoleHost.start({ transport: 'ipc', volumes, version: config.version });
  host.onEvent((event) => post({ type: 'event', event }));
  port!.on('message', (m: ToWorker) => {
    if (m.type === 'close') {
      void host.close().finally(() => post({ type: 'closed' }));
      return;
    }
    void host.router.call(m.method, m.args).then((reply) => post({ type: 'reply', id: m.id, reply }));
  });
  post({ type: 'ready' });
}

main().catch((e: unknown) => post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) }));
