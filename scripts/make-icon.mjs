// Renders assets/icon.png (512×512) from the same shapes as assets/icon.svg, with no image library.
import { writeFileSync } from 'node:fs';
import { deflateSync, crc32 } from 'node:zlib';

const W = 512;
const px = Buffer.alloc(W * W * 4);
const bars = [
  [96, 96, 64, 320, 0.95],
  [192, 160, 64, 256, 0.8],
  [288, 224, 64, 192, 0.65],
  [384, 288, 32, 128, 0.5],
];
const inRound = (x, y, x0, y0, w, h, r) => {
  if (x < x0 || y < y0 || x >= x0 + w || y >= y0 + h) return false;
  const cx = Math.min(Math.max(x, x0 + r), x0 + w - r);
  const cy = Math.min(Math.max(y, y0 + r), y0 + h - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
};
for (let y = 0; y < W; y++) {
  for (let x = 0; x < W; x++) {
    const o = (y * W + x) * 4;
    if (!inRound(x, y, 0, 0, W, W, 96)) continue;
    let [r, g, b] = [0x12, 0x32, 0x4a];
    for (const [x0, y0, w, h, a] of bars) {
      if (inRound(x, y, x0, y0, w, h, 10)) [r, g, b] = [r + (0x4f - r) * a, g + (0xc3 - g) * a, b + (0xf7 - b) * a];
    }
    px[o] = r;
    px[o + 1] = g;
    px[o + 2] = b;
    px[o + 3] = 255;
  }
}
const raw = Buffer.alloc(W * (W * 4 + 1));
for (let y = 0; y < W; y++) px.copy(raw, y * (W * 4 + 1) + 1, y * W * 4, (y + 1) * W * 4);
const chunk = (type, data) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
};
const ihdr = Buffer.alloc(13);
ihdr.writeUInt32BE(W, 0);
ihdr.writeUInt32BE(W, 4);
ihdr[8] = 8;
ihdr[9] = 6;
writeFileSync('assets/icon.png', Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]));
