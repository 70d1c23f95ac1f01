/** The e2e harness: the real web host as a child process, Debian's Chromium driven by playwright-core, and pixel reads. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.SNAPPLANE_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const ARTIFACTS = join(process.cwd(), 'test-artifacts');

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

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

export interface GridGeometry {
  level: number;
  topVbn: number;
  blocksPerRow: number;
  rowHeight: number;
  colWidth: number;
  columns: string[];
}

export async function gridGeometry(page: Page): Promise<GridGeometry> {
  const c = page.getByTestId('grid-canvas');
  const attr = async (n: string): Promise<string> => (await c.getAttribute(n)) ?? '';
  return {
    level: Number(await attr('data-level')),
    topVbn: Number(await attr('data-top-vbn')),
    blocksPerRow: Number(await attr('data-blocks-per-row')),
    rowHeight: Number(await attr('data-row-height')),
    colWidth: Number(await attr('data-col-width')),
    columns: JSON.parse(await attr('data-columns')) as string[],
  };
}

/** The color of the grid cell of block `vbn` in column `k` (read at the cell's centre, in canvas pixels). */
export async function cellColors(page: Page, g: GridGeometry, column: number, vbns: number[]): Promise<[number, number, number][]> {
  const points = vbns.map((v) => ({ x: Math.floor(column * g.colWidth + g.colWidth / 2), y: Math.floor(((v - g.topVbn) / g.blocksPerRow) * g.rowHeight + g.rowHeight / 2) }));
  return page.evaluate((pts) => {
    const canvas = document.querySelector<HTMLCanvasElement>('[data-testid=grid-canvas]')!;
    const ctx = canvas.getContext('2d')!;
    const dpr = canvas.width / canvas.clientWidth;
    return pts.map((p) => {
      const d = ctx.getImageData(Math.floor(p.x * dpr), Math.floor(p.y * dpr), 1, 1).data;
      return [d[0], d[1], d[2]] as [number, number, number];
    });
  }, points);
}
