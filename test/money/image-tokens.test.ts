import { imageTokens } from '../../lambda/money/image-tokens';

/** A PNG header (signature + IHDR) of the given size: all image-size reads. */
function pngDataUrl(width: number, height: number): string {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'ascii');
  ihdr.writeUInt32BE(width, 8);
  ihdr.writeUInt32BE(height, 12);
  ihdr.set([8, 6, 0, 0, 0], 16);
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]);
  return `data:image/png;base64,${png.toString('base64')}`;
}

const tiles = { kind: 'tiles', base: 85, tile: 170 } as const;
const anthropic = { kind: 'anthropic' } as const;

describe('imageTokens (image-size loaded on the first inline image)', () => {
  it('measures an inline image from its header', () => {
    // 1000×1000: shortest side to 768 → 2×2 tiles.
    expect(imageTokens(pngDataUrl(1000, 1000), 'auto', tiles)).toBe(85 + 4 * 170);
    expect(imageTokens(pngDataUrl(1000, 1000), 'high', anthropic)).toBe(Math.ceil((1000 * 1000) / 750));
    // 3000×1000: long edge fitted to 1,568 first.
    expect(imageTokens(pngDataUrl(3000, 1000), undefined, anthropic)).toBe(Math.ceil((1568 * ((1000 * 1568) / 3000)) / 750));
  });

  it('counts an image behind a URL, or one it cannot read, as the largest the rule allows', () => {
    expect(imageTokens('https://example.com/cat.png', 'auto', anthropic)).toBe(1600);
    expect(imageTokens('data:image/png;base64,AAAA', 'auto', anthropic)).toBe(1600);
    // 2048×768, the largest after fitting: 4×2 tiles.
    expect(imageTokens('https://example.com/cat.png', 'auto', tiles)).toBe(85 + 8 * 170);
    expect(imageTokens(pngDataUrl(1000, 1000), 'low', tiles)).toBe(85);
  });
});
