/** The e2e harness: the real web host as a child process, Debian's Chromium driven by playwright-core, and pixel reads. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
export { CHROMIUM, CHROMIUM_ARGS, launchBrowser } from '../helpers/browser.js';
export { startConsole, type HostProcess } from '../helpers/console-host.js';

export const ARTIFACTS = join(process.cwd(), 'test-artifacts');

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
