/** Progress bars on an interactive terminal (stderr), silence when piped or with --json. */
import cliProgress from 'cli-progress';
import { formatBytes, type ProgressEvent } from '../core/service/index.js';

export type ProgressSink = ((p: ProgressEvent) => void) & { stop(): void };

/** A progress callback that draws a bar when stderr is a TTY and output is not JSON. */
export function progressBar(json: boolean): ProgressSink {
  if (json || !process.stderr.isTTY) {
    const quiet = (() => undefined) as unknown as ProgressSink;
    quiet.stop = () => undefined;
    return quiet;
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: ' {phase} [{bar}] {percentage}% | {doneText} of {totalText} | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      fps: 8,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const text = (n: number, unit: string): string => (unit === 'bytes' ? formatBytes(n) : `${n} ${unit}`);
  const sink = ((p: ProgressEvent) => {
    const payload = { phase: p.phase, doneText: text(p.done, p.unit), totalText: text(p.total, p.unit) };
    if (!started) {
      bar.start(Math.max(p.total, 1), p.done, payload);
      started = true;
    } else {
      bar.setTotal(Math.max(p.total, 1));
      bar.update(p.done, payload);
    }
  }) as ProgressSink;
  sink.stop = () => {
    if (started) bar.stop();
  };
  return sink;
}
